/*-------------------------------------------------------------------------
 *
 * lifecycle.h
 *	  Commissions, the status of a conversion and the commands that change
 *	  it (src/lifecycle.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_LIFECYCLE_H
#define FP_ATTRIBUTION_LIFECYCLE_H

#include "utils/jsonb.h"

extern bool fp_attribution_lifecycle_updating;

extern bool fp_attribution_commission(const char *payout_type, int64 payout,
									  const char *offer_currency,
									  int64 revenue_cents, const char *currency,
									  int64 *commission);
extern Jsonb *fp_attribution_fold_event(MemoryContext cxt, Jsonb *state,
										Jsonb *event);

#endif							/* FP_ATTRIBUTION_LIFECYCLE_H */
