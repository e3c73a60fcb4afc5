/*-------------------------------------------------------------------------
 *
 * delegation.h
 *	  Trace context for commands that Citus sends whole to a worker
 *	  (delegation.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_DELEGATION_H
#define FP_ATTRIBUTION_DELEGATION_H

extern void fp_attribution_delegation_install_hook(void);

#endif							/* FP_ATTRIBUTION_DELEGATION_H */
