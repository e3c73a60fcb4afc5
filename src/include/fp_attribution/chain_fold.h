/*-------------------------------------------------------------------------
 *
 * chain_fold.h
 *	  The state a receipt chain gives (chain_fold.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_CHAIN_FOLD_H
#define FP_ATTRIBUTION_CHAIN_FOLD_H

#include "utils/jsonb.h"

extern Jsonb *fp_attribution_fold_event(MemoryContext cxt, Jsonb *state,
										Jsonb *event);

#endif							/* FP_ATTRIBUTION_CHAIN_FOLD_H */
