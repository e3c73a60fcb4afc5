/*-------------------------------------------------------------------------
 *
 * fraud_rules.c
 *	  Fraud and quality rules: a new attributed conversion that breaks one
 *	  is held "pending" with the rule's name as its review_reason, instead
 *	  of being approved blindly.
 *
 * The rules, each with its setting, checked in this order (the first hit
 * is the reason):
 *
 *	click_too_fast		converted less than fp_attribution.fraud_min_click_age
 *						after its click (click injection); 0 turns it off.
 *	self_referral		the conversion's visitor (or else the click's) is
 *						one of the affiliate's own visitors listed in
 *						attribution.affiliate_visitors;
 *						fp_attribution.fraud_self_referral turns it off.
 *	too_many_clicks_per_ip	the click's IP address made more than
 *						fp_attribution.fraud_max_clicks_per_ip clicks on the
 *						click's offer on the click's day (UTC); 0 turns it
 *						off.  Counted with the partial index
 *						clicks_ip_offer_idx, and never beyond the limit plus
 *						one, so the check costs the same whatever the
 *						traffic.
 *
 * The conversions insert trigger calls fp_attribution_fraud_rules() once,
 * for an attributed conversion, as the table's owner and connected to SPI;
 * a hit is counted (affiliate.fraud_rule.hits) and logged in the running
 * command's trace context (telemetry_pending.c), both dropped if the
 * conversion is rolled back.  The reason is a column of the row and so a
 * member of its first receipt.
 *
 * Shared memory: none.  Backend-local state: the saved plans.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "fp_attribution/fraud_rules.h"
#include "fp_attribution/spi_plans.h"
#include "fp_attribution/telemetry_record.h"

/* fp_attribution.fraud_min_click_age, in seconds; 0: off */
static int	min_click_age_s = 0;

/* fp_attribution.fraud_max_clicks_per_ip; 0: off */
static int	max_clicks_per_ip = 0;

/* fp_attribution.fraud_self_referral */
static bool self_referral = true;

/*
 * The lookups; each one's $1 is the advertiser_id (spi_plans.c).  The
 * click's own columns come with it from the attribution's lookup.
 */
static FpGroupPlan visitor_plan = {
	.sql = "SELECT 1 FROM attribution.affiliate_visitors v"
		" WHERE v.advertiser_id OPERATOR(pg_catalog.=) $1"
		" AND v.affiliate_id OPERATOR(pg_catalog.=) $2"
		" AND v.visitor_id OPERATOR(pg_catalog.=) $3",
	.nargs = 3,
	.argtypes = (Oid[]) {TEXTOID, TEXTOID, TEXTOID}
};
/* $4 the day's start; at most $5 rows are read */
static FpGroupPlan ip_plan = {
	.sql = "SELECT pg_catalog.count(*) FROM"
		" (SELECT FROM attribution.clicks c"
		" WHERE c.advertiser_id OPERATOR(pg_catalog.=) $1"
		" AND c.offer_id OPERATOR(pg_catalog.=) $2"
		" AND c.ip OPERATOR(pg_catalog.=) $3"
		" AND c.clicked_at OPERATOR(pg_catalog.>=) $4"
		" AND c.clicked_at OPERATOR(pg_catalog.<)"
		" ($4 OPERATOR(pg_catalog.+) '1 day'::pg_catalog.interval)"
		" LIMIT $5) s",
	.nargs = 5,
	.argtypes = (Oid[]) {TEXTOID, TEXTOID, INETOID, TIMESTAMPTZOID, INT8OID}
};

void
fp_attribution_fraud_rules_define_gucs(void)
{
	DefineCustomIntVariable("fp_attribution.fraud_min_click_age",
							gettext_noop("Holds a new conversion pending when it came sooner than this after its click."),
							gettext_noop("0 turns the rule off."),
							&min_click_age_s,
							0, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("fp_attribution.fraud_max_clicks_per_ip",
							gettext_noop("Holds a new conversion pending when its click's IP address made more clicks than this on the offer that day."),
							gettext_noop("0 turns the rule off."),
							&max_clicks_per_ip,
							0, 0, INT_MAX - 1,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("fp_attribution.fraud_self_referral",
							 gettext_noop("Holds a new conversion pending when its visitor is one of the affiliate's own."),
							 NULL,
							 &self_referral,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
}


/* Run a lookup (args[0]: the advertiser_id); the number of rows, at most one */
static uint64
run(FpGroupPlan *plan, Datum *args)
{
	int			rc = SPI_execute_plan(fp_attribution_group_plan(plan, args[0]),
									  args, NULL, true, 1);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "fraud rule lookup failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/*
 * The rule that in breaks (see the file header), counted and logged, or
 * NULL.  Caller is connected to SPI.
 */
const char *
fp_attribution_fraud_rules(const FpFraudInput *in)
{
	const char *rule = NULL;

	if (min_click_age_s > 0 &&
		in->converted_at - in->clicked_at < (int64) min_click_age_s * USECS_PER_SEC)
		rule = "click_too_fast";
	if (rule == NULL && self_referral)
	{
		Datum		visitor_id = in->visitor_id != (Datum) 0 ? in->visitor_id :
			in->click_visitor_id;

		if (visitor_id != (Datum) 0 &&
			run(&visitor_plan,
				(Datum[]) {in->advertiser_id, in->affiliate_id, visitor_id}) == 1)
			rule = "self_referral";
	}
	if (rule == NULL && max_clicks_per_ip > 0 &&
		in->offer_id != (Datum) 0 && in->ip != (Datum) 0)
	{
		Datum		day = DirectFunctionCall3(timestamptz_trunc_zone,
											  CStringGetTextDatum("day"),
											  TimestampTzGetDatum(in->clicked_at),
											  CStringGetTextDatum("UTC"));
		bool		isnull;

		if (run(&ip_plan, (Datum[]) {in->advertiser_id, in->offer_id, in->ip, day,
				Int64GetDatum((int64) max_clicks_per_ip + 1)}) == 1 &&
			DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
										1, &isnull)) > max_clicks_per_ip)
			rule = "too_many_clicks_per_ip";
	}
	if (rule != NULL)
		fp_attribution_telemetry_rule_hit(rule, TextDatumGetCString(in->order_id));
	return rule;
}
