/*-------------------------------------------------------------------------
 *
 * lifecycle.h
 *	  Commissions, the status of a conversion and the commands that change
 *	  it (src/commands/lifecycle.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_LIFECYCLE_H
#define FP_ATTRIBUTION_LIFECYCLE_H

#include "executor/spi.h"
#include "utils/jsonb.h"

/* What a conversion earns from its offer */
typedef struct FpEarning
{
	const char *status;			/* "pending" or "approved" */
	bool		has_commission;
	int64		commission_cents;
} FpEarning;

extern bool fp_attribution_lifecycle_updating;

extern void fp_attribution_earn(Datum advertiser_id, Datum offer_id,
								int64 revenue_cents, Datum currency,
								FpEarning *earning);
extern int	fp_attribution_update_conversion(SPIPlanPtr plan, Datum *args,
											 const char *nulls);

#endif							/* FP_ATTRIBUTION_LIFECYCLE_H */
