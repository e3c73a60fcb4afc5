/*-------------------------------------------------------------------------
 *
 * commands_click.c
 *	  attribution.track_click(): record a click and return its receipt.
 *
 * The click is one INSERT into attribution.clicks (commands.c); its
 * validation, window and receipt are the INSERT's, as for a direct INSERT
 * (row_triggers.c, receipts.c).  The click id is chosen here when the
 * caller gives none, so the command knows the receipt chain it waits for.
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
#include "utils/builtins.h"
#include "utils/uuid.h"

#include "fp_attribution/commands.h"
#include "fp_attribution/random_uuid.h"

/* The arguments of attribution.track_click, in order */
enum
{
	ARG_AFFILIATE_ID,
	ARG_CLICK_ID,
	ARG_IP,
	ARG_USER_AGENT,
	ARG_REFERRER,
	ARG_LANDING_URL,
	ARG_VISITOR_ID,
	ARG_OFFER_ID,
	ARG_CAMPAIGN_ID,
	ARG_CLICKED_AT,
	ARG_TRACEPARENT,
	ARG_TRACESTATE,
	ARG_ADVERTISER_ID
};

/* The INSERT's parameters before the context: which argument fills each */
static const int insert_args[] = {
	ARG_ADVERTISER_ID, ARG_CLICK_ID, ARG_AFFILIATE_ID, ARG_OFFER_ID,
	ARG_CAMPAIGN_ID, ARG_VISITOR_ID, ARG_IP, ARG_USER_AGENT, ARG_REFERRER,
	ARG_LANDING_URL, ARG_CLICKED_AT
};

#define CLICK_NPARAMS (lengthof(insert_args) + FP_COMMAND_CONTEXT_PARAMS)

static Oid insert_types[CLICK_NPARAMS] = {
	TEXTOID, UUIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INETOID, TEXTOID,
	TEXTOID, TEXTOID, TIMESTAMPTZOID,
	TEXTOID, TEXTOID, TEXTOID, BOOLOID, TEXTOID
};

static FpCommandSpec click_command = {
	.aggregate_type = "click",
	.insert = {
		.sql = "INSERT INTO attribution.clicks"
			" (advertiser_id, click_id, affiliate_id, offer_id, campaign_id,"
			" visitor_id, ip, user_agent, referrer, landing_url, clicked_at,"
			" trace_id, span_id, parent_span_id, sampled, tracestate)"
			" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,"
			" $12::attribution.trace_id, $13::attribution.span_id,"
			" $14::attribution.span_id, $15, $16)"
			" ON CONFLICT (advertiser_id, click_id) DO NOTHING",
		.nargs = CLICK_NPARAMS,
		.argtypes = insert_types
	},
	.find = {
		.sql = "SELECT r.* FROM attribution.clicks c, attribution.receipts r"
			" WHERE c.advertiser_id OPERATOR(pg_catalog.=) $1"
			" AND c.click_id OPERATOR(pg_catalog.=) $2::pg_catalog.uuid"
			" AND r.advertiser_id OPERATOR(pg_catalog.=) $1"
			" AND r.aggregate_type OPERATOR(pg_catalog.=) 'click'"
			" AND r.aggregate_id OPERATOR(pg_catalog.=) $2"
			" AND r.sequence OPERATOR(pg_catalog.=) 1"
			" AND r.trace_id OPERATOR(pg_catalog.=) c.trace_id"
			" AND r.span_id OPERATOR(pg_catalog.=) c.span_id",
		.nargs = 2,
		.argtypes = (Oid[]) {TEXTOID, TEXTOID}
	},
};

/*
 * A random (version 4) uuid.
 */
static Datum
random_uuid(void)
{
	pg_uuid_t  *uuid = palloc(sizeof(pg_uuid_t));

	fp_attribution_random_uuid(uuid);
	return UUIDPGetDatum(uuid);
}

/*
 * attribution.track_click(affiliate_id text, click_id uuid, ip inet,
 *		user_agent text, referrer text, landing_url text, visitor_id text,
 *		offer_id text, campaign_id text, clicked_at timestamptz,
 *		traceparent text, tracestate text, advertiser_id text)
 *	  returns attribution.receipts
 *
 * Idempotent by (advertiser_id, click_id): a retry returns the original
 * receipt and writes nothing.
 */
PG_FUNCTION_INFO_V1(fp_attribution_track_click);
Datum
fp_attribution_track_click(PG_FUNCTION_ARGS)
{
	Datum		values[CLICK_NPARAMS];
	char		nulls[CLICK_NPARAMS];
	Datum		click_id;

	for (int i = 0; i < lengthof(insert_args); i++)
	{
		nulls[i] = PG_ARGISNULL(insert_args[i]) ? 'n' : ' ';
		values[i] = PG_GETARG_DATUM(insert_args[i]);
	}
	click_id = PG_ARGISNULL(ARG_CLICK_ID) ? random_uuid() :
		PG_GETARG_DATUM(ARG_CLICK_ID);
	values[1] = click_id;
	nulls[1] = ' ';

	return fp_attribution_run_command(fcinfo, &click_command, values, nulls,
									  fp_attribution_text_arg(fcinfo, ARG_TRACEPARENT),
									  fp_attribution_text_arg(fcinfo, ARG_TRACESTATE),
									  fp_attribution_text_arg(fcinfo, ARG_ADVERTISER_ID),
									  DatumGetCString(DirectFunctionCall1(uuid_out, click_id)));
}
