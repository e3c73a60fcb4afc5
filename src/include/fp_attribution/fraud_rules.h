/*-------------------------------------------------------------------------
 *
 * fraud_rules.h
 *	  Fraud and quality rules that hold a new conversion pending
 *	  (src/commands/fraud_rules.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_FRAUD_RULES_H
#define FP_ATTRIBUTION_FRAUD_RULES_H

#include "datatype/timestamp.h"

/* A new attributed conversion and the click it is attributed to */
typedef struct FpFraudInput
{
	Datum		advertiser_id;	/* text */
	Datum		order_id;		/* text */
	Datum		click_id;		/* uuid */
	Datum		affiliate_id;	/* text, the click's */
	Datum		visitor_id;		/* text, the conversion's; (Datum) 0: none */
	Datum		click_visitor_id;	/* text, the click's; (Datum) 0: none */
	Datum		offer_id;		/* text, the click's; (Datum) 0: none */
	Datum		ip;				/* inet, the click's; (Datum) 0: none */
	TimestampTz clicked_at;
	TimestampTz converted_at;
} FpFraudInput;

extern void fp_attribution_fraud_rules_define_gucs(void);
extern const char *fp_attribution_fraud_rules(const FpFraudInput *in);

#endif							/* FP_ATTRIBUTION_FRAUD_RULES_H */
