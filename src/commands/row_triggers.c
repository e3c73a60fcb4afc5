/*-------------------------------------------------------------------------
 *
 * row_triggers.c
 *	  The BEFORE INSERT row triggers of attribution.clicks and
 *	  attribution.conversions: validation, defaults, the attribution window,
 *	  last-click attribution and the writer's trace context.
 *
 * Every INSERT, by a command or directly, takes this path, so a value is
 * judged the same way whichever way it arrives.  The triggers are C (not
 * PL/pgSQL) for two reasons: a PL/pgSQL body resolves names through the
 * caller's search_path unless it pays for a SET clause on every call, and
 * the interpreter was most of the cost of a command.  The lookups they need
 * (the affiliate's window, the named click, the visitor's latest click) are
 * keyed by the row's advertiser_id first: an advertiser's conversions are
 * attributed to its own clicks only, and with the tables distributed by
 * advertiser every lookup stays on the row's shard.  They are
 * saved SPI plans whose SQL names every object and operator with its
 * schema, and they run as the table's owner, as PostgreSQL's RI triggers
 * do, so an inserting role needs no privilege on attribution.windows or
 * on the clicks it converts.
 *
 * A restore (row_guard.c) takes the row as written.
 *
 * Shared memory: none.  Backend-local state: the saved plans.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "fp_attribution/columns.h"
#include "fp_attribution/currency.h"
#include "fp_attribution/fraud_rules.h"
#include "fp_attribution/ids.h"
#include "fp_attribution/late_clicks.h"
#include "fp_attribution/lifecycle.h"
#include "fp_attribution/random_uuid.h"
#include "fp_attribution/row_guard.h"
#include "fp_attribution/row_triggers.h"
#include "fp_attribution/spi_plans.h"
#include "fp_attribution/trace_context.h"
#include "fp_attribution/validate.h"

/* fp_attribution.attribution_window, in seconds */
static int	attribution_window_s = 30 * 24 * 60 * 60;

/* Longest user agent, URL (ids: FP_ID_MAX_CHARS) */
#define USER_AGENT_MAX_CHARS 1024
#define URL_MAX_CHARS 4096

/* The row being inserted, deformed so columns can be replaced */
typedef struct RowEdit
{
	TupleDesc	desc;
	Datum	   *values;
	bool	   *nulls;
	const FpColumnMap *map;		/* the table's columns (columns.c) */
} RowEdit;

/* The click a conversion is attributed to */
typedef struct FoundClick
{
	Datum		click_id;
	Datum		affiliate_id;
	Datum		offer_id;		/* 0 when the click names no offer */
	Datum		visitor_id;		/* 0 when the click names no visitor */
	Datum		ip;				/* 0 when the click has no IP address */
	TimestampTz clicked_at;
	TimestampTz window_ends_at;
} FoundClick;

#define CLICK_COLUMNS "c.click_id, c.affiliate_id, c.clicked_at, c.window_ends_at, c.offer_id, c.visitor_id, c.ip"

/* The lookups; each one's $1 is the row's advertiser_id (spi_plans.c) */
static FpGroupPlan window_plan = {
	.sql = "SELECT w.attribution_window FROM attribution.windows w"
		" WHERE w.advertiser_id OPERATOR(pg_catalog.=) $1"
		" AND w.affiliate_id OPERATOR(pg_catalog.=) $2",
	.nargs = 2,
	.argtypes = (Oid[]) {TEXTOID, TEXTOID}
};
static FpGroupPlan click_plan = {
	.sql = "SELECT " CLICK_COLUMNS " FROM attribution.clicks c"
		" WHERE c.advertiser_id OPERATOR(pg_catalog.=) $1"
		" AND c.click_id OPERATOR(pg_catalog.=) $2",
	.nargs = 2,
	.argtypes = (Oid[]) {TEXTOID, UUIDOID}
};
static FpGroupPlan await_plan = {
	.sql = "SELECT attribution.await_click('attribution.clicks'::pg_catalog.regclass, $1, $2)",
	.nargs = 2,
	.argtypes = (Oid[]) {TEXTOID, UUIDOID}
};

/* the latest click whose window covers the conversion time */
static FpGroupPlan visitor_plan = {
	.sql = "SELECT " CLICK_COLUMNS " FROM attribution.clicks c"
		" WHERE c.advertiser_id OPERATOR(pg_catalog.=) $1"
		" AND c.visitor_id OPERATOR(pg_catalog.=) $2"
		" AND c.clicked_at OPERATOR(pg_catalog.<=) $3"
		" AND c.window_ends_at OPERATOR(pg_catalog.>) $3"
		" ORDER BY c.clicked_at DESC, c.click_id DESC LIMIT 1",
	.nargs = 3,
	.argtypes = (Oid[]) {TEXTOID, TEXTOID, TIMESTAMPTZOID}
};
static FpGroupPlan visitor_any_plan = {
	.sql = "SELECT FROM attribution.clicks c"
		" WHERE c.advertiser_id OPERATOR(pg_catalog.=) $1"
		" AND c.visitor_id OPERATOR(pg_catalog.=) $2"
		" AND c.clicked_at OPERATOR(pg_catalog.<=) $3 LIMIT 1",
	.nargs = 3,
	.argtypes = (Oid[]) {TEXTOID, TEXTOID, TIMESTAMPTZOID}
};

/*
 * Define fp_attribution.attribution_window.
 */
void
fp_attribution_row_triggers_define_gucs(void)
{
	DefineCustomIntVariable("fp_attribution.attribution_window",
							gettext_noop("Default attribution window, from click to conversion."),
							gettext_noop("attribution.windows overrides it per affiliate."),
							&attribution_window_s,
							30 * 24 * 60 * 60, 1, INT_MAX,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
}

/*
 * fp_attribution.attribution_window as an interval of whole seconds.
 */
static Interval *
default_window(void)
{
	Interval   *result = palloc0(sizeof(Interval));

	result->time = (int64) attribution_window_s * USECS_PER_SEC;
	return result;
}

/*
 * attribution.default_attribution_window() returns interval
 */
PG_FUNCTION_INFO_V1(fp_attribution_default_attribution_window);
Datum
fp_attribution_default_attribution_window(PG_FUNCTION_ARGS)
{
	PG_RETURN_INTERVAL_P(default_window());
}

/*
 * Check that we were fired as a BEFORE INSERT row trigger and deform the
 * new row into edit.  Returns false for a restore, whose rows are taken
 * as written.
 */
static bool
begin_row_edit(FunctionCallInfo fcinfo, const char *name, FpRowTable table,
			   RowEdit *edit)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be a BEFORE INSERT FOR EACH ROW trigger", name)));
	if (fp_attribution_restoring(trigdata->tg_relation->rd_rel->relowner))
		return false;

	edit->desc = RelationGetDescr(trigdata->tg_relation);
	edit->map = fp_attribution_column_map(trigdata->tg_relation, table);
	edit->values = palloc(edit->desc->natts * sizeof(Datum));
	edit->nulls = palloc(edit->desc->natts * sizeof(bool));
	heap_deform_tuple(trigdata->tg_trigtuple, edit->desc, edit->values,
					  edit->nulls);
	return true;
}

/*
 * The attribute index (from 0) of column c; the table must have it.
 */
static int
col(const RowEdit *edit, FpColumn c)
{
	return fp_attribution_required_column(edit->map, c) - 1;
}

static bool
is_null(const RowEdit *edit, FpColumn c)
{
	return edit->nulls[col(edit, c)];
}

static Datum
get(const RowEdit *edit, FpColumn c)
{
	return edit->values[col(edit, c)];
}

static void
set(RowEdit *edit, FpColumn c, Datum value)
{
	edit->values[col(edit, c)] = value;
	edit->nulls[col(edit, c)] = false;
}

static void
set_null(RowEdit *edit, FpColumn c)
{
	edit->nulls[col(edit, c)] = true;
}

/*
 * Apply fp_attribution_check_text() to a text column.
 */
static void
check_text_column(RowEdit *edit, FpColumn c, int max_chars, bool required)
{
	fp_attribution_check_text(fp_attribution_column_names[c],
							  is_null(edit, c) ? NULL : DatumGetTextPP(get(edit, c)),
							  max_chars, required);
}

/*
 * Default a timestamp column to the transaction's start, as now() does.
 */
static TimestampTz
timestamp_or_now(RowEdit *edit, FpColumn c)
{
	if (is_null(edit, c))
		set(edit, c, TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()));
	return DatumGetTimestampTz(get(edit, c));
}

/*
 * Default a uuid column to a random (version 4) uuid.
 */
static void
uuid_or_random(RowEdit *edit, FpColumn c)
{
	pg_uuid_t  *uuid;

	if (!is_null(edit, c))
		return;
	uuid = palloc(sizeof(pg_uuid_t));
	fp_attribution_random_uuid(uuid);
	set(edit, c, UUIDPGetDatum(uuid));
}

/*
 * Stamp the row with the writer's trace context, unless the writer
 * supplied one (then span_id is required too), and with recorded_at.
 */
static void
stamp_trace_context(RowEdit *edit)
{
	FpCommandContext ctx;

	if (!is_null(edit, FP_COL_TRACE_ID))
	{
		if (is_null(edit, FP_COL_SPAN_ID))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("span_id must not be null when trace_id is given")));
		if (is_null(edit, FP_COL_SAMPLED))
			set(edit, FP_COL_SAMPLED, BoolGetDatum(true));
	}
	else
	{
		fp_attribution_begin_command(NULL, NULL, &ctx);
		set(edit, FP_COL_TRACE_ID, fp_attribution_id_datum(ctx.trace_id.bytes, FP_TRACE_ID_LEN));
		set(edit, FP_COL_SPAN_ID, fp_attribution_id_datum(ctx.span_id.bytes, FP_SPAN_ID_LEN));
		if (ctx.source == FP_CONTEXT_NEW_ROOT)
			set_null(edit, FP_COL_PARENT_SPAN_ID);
		else
			set(edit, FP_COL_PARENT_SPAN_ID,
				fp_attribution_id_datum(ctx.parent_span_id.bytes, FP_SPAN_ID_LEN));
		set(edit, FP_COL_SAMPLED, BoolGetDatum((ctx.flags & FP_TRACE_FLAG_SAMPLED) != 0));
		if (ctx.tracestate == NULL)
			set_null(edit, FP_COL_TRACESTATE);
		else
			set(edit, FP_COL_TRACESTATE, CStringGetTextDatum(ctx.tracestate));
	}
	set(edit, FP_COL_RECORDED_AT,
		TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()));
}

/*
 * Run a lookup (args[0]: the advertiser_id); returns the number of rows.
 */
static uint64
lookup(FpGroupPlan *plan, Datum *args)
{
	int			rc = SPI_execute_plan(fp_attribution_group_plan(plan, args[0]),
									  args, NULL, false, 1);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "attribution lookup failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/*
 * Copy the first row of a CLICK_COLUMNS result into click, in the
 * caller's memory context.
 */
static void
found_click(MemoryContext cxt, FoundClick *click)
{
	HeapTuple	tuple = SPI_tuptable->vals[0];
	TupleDesc	desc = SPI_tuptable->tupdesc;
	MemoryContext old = MemoryContextSwitchTo(cxt);
	bool		isnull;

	click->click_id = datumCopy(SPI_getbinval(tuple, desc, 1, &isnull), false, UUID_LEN);
	click->affiliate_id = datumCopy(SPI_getbinval(tuple, desc, 2, &isnull), false, -1);
	click->clicked_at = DatumGetTimestampTz(SPI_getbinval(tuple, desc, 3, &isnull));
	click->window_ends_at = DatumGetTimestampTz(SPI_getbinval(tuple, desc, 4, &isnull));
	click->offer_id = SPI_getbinval(tuple, desc, 5, &isnull);
	click->offer_id = isnull ? (Datum) 0 : datumCopy(click->offer_id, false, -1);
	click->visitor_id = SPI_getbinval(tuple, desc, 6, &isnull);
	click->visitor_id = isnull ? (Datum) 0 : datumCopy(click->visitor_id, false, -1);
	click->ip = SPI_getbinval(tuple, desc, 7, &isnull);
	click->ip = isnull ? (Datum) 0 : datumCopy(click->ip, false, -1);
	MemoryContextSwitchTo(old);
}

/*
 * The new row, built in the executor's memory context.
 */
static Datum
finish_row_edit(RowEdit *edit)
{
	return PointerGetDatum(heap_form_tuple(edit->desc, edit->values, edit->nulls));
}

/*
 * attribution.clicks_before_insert() trigger
 *
 * Validates the click, defaults click_id and clicked_at, fixes the end of
 * its attribution window (the affiliate's override in attribution.windows,
 * else fp_attribution.attribution_window) and stamps the trace context.
 */
PG_FUNCTION_INFO_V1(fp_attribution_clicks_before_insert);
Datum
fp_attribution_clicks_before_insert(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	MemoryContext cxt = CurrentMemoryContext;
	RowEdit		edit;
	TimestampTz clicked_at;
	Interval   *window;
	Datum		window_key[2];
	Oid			save_user;
	int			save_sec;

	if (!begin_row_edit(fcinfo, "clicks_before_insert", FP_TABLE_CLICKS, &edit))
		return PointerGetDatum(trigdata->tg_trigtuple);

	check_text_column(&edit, FP_COL_ADVERTISER_ID, FP_ID_MAX_CHARS, true);
	check_text_column(&edit, FP_COL_AFFILIATE_ID, FP_ID_MAX_CHARS, true);
	check_text_column(&edit, FP_COL_OFFER_ID, FP_ID_MAX_CHARS, false);
	check_text_column(&edit, FP_COL_CAMPAIGN_ID, FP_ID_MAX_CHARS, false);
	check_text_column(&edit, FP_COL_VISITOR_ID, FP_ID_MAX_CHARS, false);
	check_text_column(&edit, FP_COL_USER_AGENT, USER_AGENT_MAX_CHARS, false);
	check_text_column(&edit, FP_COL_REFERRER, URL_MAX_CHARS, false);
	check_text_column(&edit, FP_COL_LANDING_URL, URL_MAX_CHARS, false);
	uuid_or_random(&edit, FP_COL_CLICK_ID);
	clicked_at = timestamp_or_now(&edit, FP_COL_CLICKED_AT);

	window_key[0] = get(&edit, FP_COL_ADVERTISER_ID);
	window_key[1] = get(&edit, FP_COL_AFFILIATE_ID);
	fp_attribution_spi_connect_as_owner(trigdata->tg_relation, &save_user, &save_sec);
	if (lookup(&window_plan, window_key) == 1)
	{
		bool		isnull;
		MemoryContext old = MemoryContextSwitchTo(cxt);

		window = DatumGetIntervalP(datumCopy(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc,
														   1, &isnull),
											 false, sizeof(Interval)));
		MemoryContextSwitchTo(old);
	}
	else
		window = default_window();
	fp_attribution_spi_finish_as_caller(save_user, save_sec);

	set(&edit, FP_COL_WINDOW_ENDS_AT,
		DirectFunctionCall2(timestamptz_pl_interval,
							TimestampTzGetDatum(clicked_at),
							IntervalPGetDatum(window)));
	stamp_trace_context(&edit);
	return finish_row_edit(&edit);
}

/*
 * Check revenue_cents and currency; returns nothing, upper-cases currency.
 */
static void
check_money(RowEdit *edit)
{
	text	   *currency;
	char	   *code;

	if (is_null(edit, FP_COL_REVENUE_CENTS))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("revenue_cents must not be null")));
	if (DatumGetInt64(get(edit, FP_COL_REVENUE_CENTS)) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("revenue_cents must not be negative"),
				 errdetail("The value is " INT64_FORMAT ".",
						   DatumGetInt64(get(edit, FP_COL_REVENUE_CENTS))),
				 errhint("Record a refund as its own command, not as negative revenue.")));

	currency = fp_attribution_check_text("currency",
										 is_null(edit, FP_COL_CURRENCY) ? NULL :
										 DatumGetTextPP(get(edit, FP_COL_CURRENCY)),
										 3, true);
	code = text_to_cstring(currency);
	for (char *p = code; *p; p++)
		*p = pg_ascii_toupper((unsigned char) *p);
	if (!fp_attribution_currency_is_known(code))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown currency code \"%s\"", code),
				 errhint("Use an ISO 4217 alphabetic code such as USD or EUR.")));
	set(edit, FP_COL_CURRENCY, CStringGetTextDatum(code));
}

/*
 * Last click wins: the advertiser's click the conversion names (waiting
 * for a transaction still inserting it), else the latest click of the
 * advertiser's visitor whose window covers the conversion time.  Returns NULL and fills *click when
 * attributed, else the reason it is not.  Caller is connected to SPI.
 */
static const char *
attribute(RowEdit *edit, TimestampTz converted_at, FoundClick *click,
		  MemoryContext cxt)
{
	Datum		advertiser_id = get(edit, FP_COL_ADVERTISER_ID);

	if (!is_null(edit, FP_COL_CLICK_ID))
	{
		Datum		key[2] = {advertiser_id, get(edit, FP_COL_CLICK_ID)};

		if (lookup(&click_plan, key) == 0)
		{
			bool		isnull;

			if (lookup(&await_plan, key) != 1 ||
				!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 1, &isnull)) ||
				lookup(&click_plan, key) == 0)
			{
				/*
				 * Before recording "unknown_click", take the click's key
				 * lock and look once more: a click committed meanwhile is
				 * seen now, and one inserted later waits for this
				 * conversion to commit and attributes it (late_clicks.c).
				 */
				if (!fp_attribution_late_clicks_enabled())
					return "unknown_click";
				fp_attribution_lock_click_key(key[0], key[1], true);
				if (lookup(&click_plan, key) == 0)
					return "unknown_click";
			}
		}
		found_click(cxt, click);
		if (converted_at < click->clicked_at)
			return "click_after_conversion";
		if (converted_at >= click->window_ends_at)
			return "window_expired";
		return NULL;
	}
	if (!is_null(edit, FP_COL_VISITOR_ID))
	{
		Datum		args[3] = {advertiser_id, get(edit, FP_COL_VISITOR_ID),
		TimestampTzGetDatum(converted_at)};

		if (lookup(&visitor_plan, args) == 1)
		{
			found_click(cxt, click);
			return NULL;
		}
		return lookup(&visitor_any_plan, args) == 1 ?
			"window_expired" : "no_click_for_visitor";
	}
	return "no_click_reference";
}

/*
 * Set offer_id, commission_cents, commission_reversed_cents, refunded_cents
 * and status of a new conversion from the offer its click names (offer_id
 * 0: none, or not attributed); see fp_attribution_earn().  Caller is
 * connected to SPI.
 */
static void
earn_commission(RowEdit *edit, Datum offer_id)
{
	FpEarning	earning;

	fp_attribution_earn(get(edit, FP_COL_ADVERTISER_ID), offer_id,
						DatumGetInt64(get(edit, FP_COL_REVENUE_CENTS)),
						get(edit, FP_COL_CURRENCY), &earning);
	set(edit, FP_COL_REFUNDED_CENTS, Int64GetDatum(0));
	if (offer_id == (Datum) 0)
		set_null(edit, FP_COL_OFFER_ID);
	else
		set(edit, FP_COL_OFFER_ID, offer_id);
	if (earning.has_commission)
	{
		set(edit, FP_COL_COMMISSION_CENTS, Int64GetDatum(earning.commission_cents));
		set(edit, FP_COL_COMMISSION_REVERSED_CENTS, Int64GetDatum(0));
	}
	else
	{
		set_null(edit, FP_COL_COMMISSION_CENTS);
		set_null(edit, FP_COL_COMMISSION_REVERSED_CENTS);
	}
	set(edit, FP_COL_STATUS, CStringGetTextDatum(earning.status));
}

/*
 * The fraud rules (fraud_rules.c) for a conversion attributed to click:
 * a hit holds it pending, the rule its review_reason.  Caller is connected
 * to SPI, as the table's owner.
 */
static void
hold_for_review(RowEdit *edit, const FoundClick *click, TimestampTz converted_at)
{
	FpFraudInput in;
	const char *rule;

	in.advertiser_id = get(edit, FP_COL_ADVERTISER_ID);
	in.order_id = get(edit, FP_COL_ORDER_ID);
	in.click_id = click->click_id;
	in.affiliate_id = click->affiliate_id;
	in.visitor_id = is_null(edit, FP_COL_VISITOR_ID) ? (Datum) 0 :
		get(edit, FP_COL_VISITOR_ID);
	in.click_visitor_id = click->visitor_id;
	in.offer_id = click->offer_id;
	in.ip = click->ip;
	in.clicked_at = click->clicked_at;
	in.converted_at = converted_at;
	rule = fp_attribution_fraud_rules(&in);
	if (rule == NULL)
		set_null(edit, FP_COL_REVIEW_REASON);
	else
	{
		set(edit, FP_COL_REVIEW_REASON, CStringGetTextDatum(rule));
		set(edit, FP_COL_STATUS, CStringGetTextDatum("pending"));
	}
}

/*
 * attribution.conversions_before_insert() trigger
 *
 * Validates the conversion, defaults conversion_id and converted_at,
 * attributes it (any attribution supplied by the writer is replaced) and
 * stamps the trace context.
 */
PG_FUNCTION_INFO_V1(fp_attribution_conversions_before_insert);
Datum
fp_attribution_conversions_before_insert(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	MemoryContext cxt = CurrentMemoryContext;
	RowEdit		edit;
	TimestampTz converted_at;
	FoundClick	click;
	const char *reason;
	Oid			save_user;
	int			save_sec;

	if (!begin_row_edit(fcinfo, "conversions_before_insert", FP_TABLE_CONVERSIONS,
						&edit))
		return PointerGetDatum(trigdata->tg_trigtuple);

	check_text_column(&edit, FP_COL_ADVERTISER_ID, FP_ID_MAX_CHARS, true);
	check_text_column(&edit, FP_COL_ORDER_ID, FP_ID_MAX_CHARS, true);
	check_text_column(&edit, FP_COL_VISITOR_ID, FP_ID_MAX_CHARS, false);
	check_money(&edit);
	uuid_or_random(&edit, FP_COL_CONVERSION_ID);
	converted_at = timestamp_or_now(&edit, FP_COL_CONVERTED_AT);

	fp_attribution_spi_connect_as_owner(trigdata->tg_relation, &save_user, &save_sec);
	reason = attribute(&edit, converted_at, &click, cxt);
	if (reason != NULL)
		click.offer_id = (Datum) 0;
	earn_commission(&edit, click.offer_id);
	if (reason == NULL)
		hold_for_review(&edit, &click, converted_at);
	else
		set_null(&edit, FP_COL_REVIEW_REASON);
	fp_attribution_spi_finish_as_caller(save_user, save_sec);

	set(&edit, FP_COL_ATTRIBUTED, BoolGetDatum(reason == NULL));
	if (reason == NULL)
	{
		set_null(&edit, FP_COL_UNATTRIBUTED_REASON);
		set(&edit, FP_COL_CLICK_ID, click.click_id);
		set(&edit, FP_COL_AFFILIATE_ID, click.affiliate_id);
		set(&edit, FP_COL_WINDOW_ENDS_AT, TimestampTzGetDatum(click.window_ends_at));
		set(&edit, FP_COL_LATENCY,
			DirectFunctionCall2(timestamp_mi,
								TimestampTzGetDatum(converted_at),
								TimestampTzGetDatum(click.clicked_at)));
	}
	else
	{
		set(&edit, FP_COL_UNATTRIBUTED_REASON, CStringGetTextDatum(reason));
		set_null(&edit, FP_COL_AFFILIATE_ID);
		set_null(&edit, FP_COL_WINDOW_ENDS_AT);
		set_null(&edit, FP_COL_LATENCY);
	}
	stamp_trace_context(&edit);
	return finish_row_edit(&edit);
}
