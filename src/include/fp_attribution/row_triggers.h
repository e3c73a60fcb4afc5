/*-------------------------------------------------------------------------
 *
 * row_triggers.h
 *	  The BEFORE INSERT triggers of clicks and conversions (row_triggers.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_ROW_TRIGGERS_H
#define FP_ATTRIBUTION_ROW_TRIGGERS_H

extern void fp_attribution_row_triggers_define_gucs(void);

#endif							/* FP_ATTRIBUTION_ROW_TRIGGERS_H */
