/*-------------------------------------------------------------------------
 *
 * extension.h
 *	  The extension's own catalog entry (extension.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_EXTENSION_H
#define FP_ATTRIBUTION_EXTENSION_H

extern Oid	fp_attribution_extension_owner(void);

#endif							/* FP_ATTRIBUTION_EXTENSION_H */
