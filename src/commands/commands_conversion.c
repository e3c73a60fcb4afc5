/*-------------------------------------------------------------------------
 *
 * commands_conversion.c
 *	  attribution.track_conversion(): record a conversion, attributed to
 *	  the advertiser's last click, and return its receipt.
 *
 * The conversion is one INSERT into attribution.conversions (commands.c);
 * its validation, attribution, commission and receipt are the INSERT's,
 * as for a direct INSERT (row_triggers.c, receipts.c).
 *
 * Shared memory: none.  Backend-local state: the saved plans.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"

#include "fp_attribution/commands.h"

/* The arguments of attribution.track_conversion, in order */
enum
{
	ARG_ORDER_ID,
	ARG_REVENUE_CENTS,
	ARG_CURRENCY,
	ARG_CLICK_ID,
	ARG_VISITOR_ID,
	ARG_CONVERTED_AT,
	ARG_TRACEPARENT,
	ARG_TRACESTATE,
	ARG_ADVERTISER_ID
};

/* The INSERT's parameters before the context: which argument fills each */
static const int insert_args[] = {
	ARG_ADVERTISER_ID, ARG_ORDER_ID, ARG_REVENUE_CENTS, ARG_CURRENCY,
	ARG_CLICK_ID, ARG_VISITOR_ID, ARG_CONVERTED_AT
};

#define CONVERSION_NPARAMS (lengthof(insert_args) + FP_COMMAND_CONTEXT_PARAMS)

static Oid insert_types[CONVERSION_NPARAMS] = {
	TEXTOID, TEXTOID, INT8OID, TEXTOID, UUIDOID, TEXTOID, TIMESTAMPTZOID,
	TEXTOID, TEXTOID, TEXTOID, BOOLOID, TEXTOID
};

static FpCommandSpec conversion_command = {
	.aggregate_type = "conversion",
	.insert = {
		.sql = "INSERT INTO attribution.conversions"
			" (advertiser_id, order_id, revenue_cents, currency, click_id,"
			" visitor_id, converted_at,"
			" trace_id, span_id, parent_span_id, sampled, tracestate)"
			" VALUES ($1, $2, $3, $4, $5, $6, $7,"
			" $8::attribution.trace_id, $9::attribution.span_id,"
			" $10::attribution.span_id, $11, $12)"
			" ON CONFLICT (advertiser_id, order_id) DO NOTHING",
		.nargs = CONVERSION_NPARAMS,
		.argtypes = insert_types
	},
	.find = {
		.sql = "SELECT r.* FROM attribution.conversions c, attribution.receipts r"
			" WHERE c.advertiser_id OPERATOR(pg_catalog.=) $1"
			" AND c.order_id OPERATOR(pg_catalog.=) $2"
			" AND r.advertiser_id OPERATOR(pg_catalog.=) $1"
			" AND r.aggregate_type OPERATOR(pg_catalog.=) 'conversion'"
			" AND r.aggregate_id OPERATOR(pg_catalog.=) $2"
			" AND r.sequence OPERATOR(pg_catalog.=) 1"
			" AND r.trace_id OPERATOR(pg_catalog.=) c.trace_id"
			" AND r.span_id OPERATOR(pg_catalog.=) c.span_id",
		.nargs = 2,
		.argtypes = (Oid[]) {TEXTOID, TEXTOID}
	},
};

/*
 * attribution.track_conversion(order_id text, revenue_cents bigint,
 *		currency text, click_id uuid, visitor_id text,
 *		converted_at timestamptz, traceparent text, tracestate text,
 *		advertiser_id text)
 *	  returns attribution.receipts
 *
 * Idempotent by (advertiser_id, order_id): the same order again returns
 * the original receipt and writes nothing.
 */
PG_FUNCTION_INFO_V1(fp_attribution_track_conversion);
Datum
fp_attribution_track_conversion(PG_FUNCTION_ARGS)
{
	Datum		values[CONVERSION_NPARAMS];
	char		nulls[CONVERSION_NPARAMS];

	for (int i = 0; i < lengthof(insert_args); i++)
	{
		nulls[i] = PG_ARGISNULL(insert_args[i]) ? 'n' : ' ';
		values[i] = PG_GETARG_DATUM(insert_args[i]);
	}
	return fp_attribution_run_command(fcinfo, &conversion_command,
									  values, nulls,
									  fp_attribution_text_arg(fcinfo, ARG_TRACEPARENT),
									  fp_attribution_text_arg(fcinfo, ARG_TRACESTATE),
									  fp_attribution_text_arg(fcinfo, ARG_ADVERTISER_ID),
									  fp_attribution_text_arg(fcinfo, ARG_ORDER_ID));
}
