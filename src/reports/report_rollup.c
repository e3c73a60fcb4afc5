/*-------------------------------------------------------------------------
 *
 * report_rollup.c
 *	  The report rollup's row triggers (sql/fp_attribution--2.0.sql,
 *	  "Reporting"): every click, and every change of an attributed
 *	  conversion, appends a row to attribution.report_deltas.
 *
 * They are C, not PL/pgSQL, for the cost: a click pays for one saved
 * INSERT ... VALUES, not for the interpreter and the SECURITY DEFINER and
 * SET search_path of a PL/pgSQL function.  Less: a click's delta is
 * collected and written when its statement ends (statement_batch.c), one
 * delta per key for all the statement's clicks; a statement of one click
 * writes it with that INSERT ... VALUES.  Their SQL names every object
 * and operator with its schema, and they run as the owner of the table
 * that fired them (as row_triggers.c does), so an inserting role needs no
 * privilege on the rollup.  Each INSERT names its advertiser's shard
 * group (shard_group_plans.c): on Citus, where the triggers fire on the
 * shards (and write each click's delta at once: no batches there), it
 * runs against the group's shards.  A conversion's delta is computed
 * here (contribution(), which attribution.report_contribution() also
 * serves) and inserted with its values.
 * It gets the DB-operation span any write of the attribution schema gets
 * (telemetry_exec.c): it is a statement the command runs.
 *
 * A restore (pg_dump's COPY of the tables, row_guard.c) brings back
 * attribution.report_totals and attribution.report_deltas as dumped, in
 * the same snapshot as the clicks and conversions; the triggers then add
 * nothing, or every restored row would be counted twice.
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
#include "common/int.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "fp_attribution/columns.h"
#include "fp_attribution/row_guard.h"
#include "fp_attribution/spi_plans.h"
#include "fp_attribution/statement_batch.h"

/* A click's delta: its key and one click */
static FpGroupPlan click_plan = {
	.sql = "INSERT INTO attribution.report_deltas"
		" (advertiser_id, day, affiliate_id, offer_id, clicks)"
		" VALUES ($1, ($2 AT TIME ZONE 'UTC')::pg_catalog.date, $3, $4, 1)",
	.nargs = 4,
	.argtypes = (Oid[]) {TEXTOID, TIMESTAMPTZOID, TEXTOID, TEXTOID}
};

/* The deltas of many clicks: one per key, with the key's clicks */
static SPIPlanPtr clicks_plan = NULL;

/* The columns of a click's delta key, in the plans' parameter order */
static const FpColumn click_key[] = {
	FP_COL_ADVERTISER_ID, FP_COL_CLICKED_AT, FP_COL_AFFILIATE_ID, FP_COL_OFFER_ID
};
static const Oid click_key_types[] = {TEXTOID, TIMESTAMPTZOID, TEXTOID, TEXTOID};

static void write_click_deltas(FpStatementBatch *batch);

/* The clicks inserted by the current statement (statement_batch.c) */
static FpStatementBatch click_batch = {
	.what = "report click deltas",
	.ncolumns = lengthof(click_key),
	.types = click_key_types,
	.flush = write_click_deltas,
};

/* The conversion columns a contribution is made of, after its sign */
static const FpColumn contribution_columns[] = {
	FP_COL_ADVERTISER_ID, FP_COL_CONVERTED_AT, FP_COL_AFFILIATE_ID,
	FP_COL_OFFER_ID, FP_COL_CURRENCY, FP_COL_STATUS, FP_COL_REVENUE_CENTS,
	FP_COL_REFUNDED_CENTS, FP_COL_COMMISSION_CENTS,
	FP_COL_COMMISSION_REVERSED_CENTS,
};

/* contribution()'s inputs: the sign, then contribution_columns */
enum
{
	IN_SIGN, IN_ADVERTISER, IN_CONVERTED_AT, IN_AFFILIATE, IN_OFFER,
	IN_CURRENCY, IN_STATUS, IN_REVENUE, IN_REFUNDED, IN_COMMISSION,
	IN_COMMISSION_REVERSED, CONTRIBUTION_NARGS
};

/* Its outputs: the columns of attribution.report_deltas, in order */
enum
{
	OUT_ADVERTISER, OUT_DAY, OUT_AFFILIATE, OUT_OFFER, OUT_CURRENCY,
	OUT_CLICKS, OUT_CONVERSIONS, OUT_PENDING, OUT_APPROVED, OUT_REJECTED,
	OUT_REVERSED, OUT_REVENUE, OUT_REFUNDED, OUT_COMMISSIONED,
	OUT_COMMISSION, OUT_COMMISSION_REVERSED, OUT_EARNED,
	OUT_EARNED_COMMISSION, OUT_EARNED_REVERSED, OUT_PENDING_COMMISSION,
	DELTA_NCOLUMNS
};

/* A conversion's delta, as contribution() made it */
static FpGroupPlan delta_plan = {
	.sql = "INSERT INTO attribution.report_deltas"
		" (advertiser_id, day, affiliate_id, offer_id, currency, clicks,"
		" conversions, pending, approved, rejected, reversed, revenue_cents,"
		" refunded_cents, commissioned, commission_cents,"
		" commission_reversed_cents, earned, earned_commission_cents,"
		" earned_reversed_cents, pending_commission_cents)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,"
		" $14, $15, $16, $17, $18, $19, $20)",
	.nargs = DELTA_NCOLUMNS,
	.argtypes = (Oid[]) {TEXTOID, DATEOID, TEXTOID, TEXTOID, TEXTOID,
		INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID,
		INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID,
	INT8OID}
};

static void
prepare_clicks_plan(void)
{
	if (clicks_plan != NULL)
		return;
	clicks_plan = fp_attribution_keep_plan("INSERT INTO attribution.report_deltas"
										   " (advertiser_id, day, affiliate_id, offer_id, clicks)"
										   " SELECT d.advertiser_id,"
										   " (d.clicked_at AT TIME ZONE 'UTC')::pg_catalog.date,"
										   " d.affiliate_id, d.offer_id, pg_catalog.count(*)"
										   " FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"
										   " pg_catalog.unnest($2::pg_catalog.timestamptz[]),"
										   " pg_catalog.unnest($3::pg_catalog.text[]),"
										   " pg_catalog.unnest($4::pg_catalog.text[]))"
										   " AS d(advertiser_id, clicked_at, affiliate_id, offer_id)"
										   " GROUP BY 1, 2, 3, 4",
										   4, (Oid[]) {TEXTARRAYOID, TIMESTAMPTZARRAYOID,
										   TEXTARRAYOID, TEXTARRAYOID});
}

/*
 * Check how the trigger was fired; false when the row is being restored.
 */
static bool
begin_rollup(FunctionCallInfo fcinfo, const char *name, bool updates)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!(TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ||
		  (updates && TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be an AFTER %s FOR EACH ROW trigger", name,
						updates ? "INSERT OR UPDATE" : "INSERT")));
	return !fp_attribution_restoring(trigdata->tg_relation->rd_rel->relowner);
}

/*
 * Column c of tuple into values[i] and nulls[i] (SPI's ' ' or 'n').
 */
static void
get_arg(HeapTuple tuple, TupleDesc desc, const FpColumnMap *map, FpColumn c,
		Datum *values, char *nulls, int i)
{
	bool		isnull;

	values[i] = heap_getattr(tuple, fp_attribution_required_column(map, c),
							 desc, &isnull);
	nulls[i] = isnull ? 'n' : ' ';
}

/*
 * Run a saved INSERT of one row.
 */
static void
run(SPIPlanPtr plan, Datum *values, const char *nulls)
{
	int			rc = SPI_execute_plan(plan, values, nulls, false, 0);

	if (rc != SPI_OK_INSERT || SPI_processed != 1)
		elog(ERROR, "report rollup statement failed: %s", SPI_result_code_string(rc));
}

/*
 * Flush of click_batch: one delta per key with its clicks, or the
 * single-row INSERT for one click.
 */
static void
write_click_deltas(FpStatementBatch *batch)
{
	Datum		values[lengthof(click_key)];
	char		nulls[lengthof(click_key)];
	bool		isnull;
	int			rc;

	prepare_clicks_plan();
	if (fp_attribution_batch_size(batch) == 1)
	{
		for (int i = 0; i < lengthof(click_key); i++)
		{
			values[i] = fp_attribution_batch_value(batch, i, 0, &isnull);
			nulls[i] = isnull ? 'n' : ' ';
		}
		fp_attribution_batch_reset(batch);
		run(fp_attribution_group_plan(&click_plan, values[0]), values, nulls);
		return;
	}
	for (int i = 0; i < lengthof(click_key); i++)
		values[i] = fp_attribution_batch_array(batch, i);
	fp_attribution_batch_reset(batch);
	rc = SPI_execute_plan(clicks_plan, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "report rollup statement failed: %s", SPI_result_code_string(rc));
}

/*
 * attribution.report_click() trigger: the click's delta, one click for its
 * advertiser, UTC day, affiliate and offer, collected for the end of the
 * statement (write_click_deltas) where Citus does not rule that out.
 */
PG_FUNCTION_INFO_V1(fp_attribution_report_click);
Datum
fp_attribution_report_click(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	const FpColumnMap *map;
	Datum		values[lengthof(click_key)];
	char		nulls[lengthof(click_key)];
	Oid			save_user;
	int			save_sec;

	if (!begin_rollup(fcinfo, "report_click", false))
		return PointerGetDatum(NULL);
	map = fp_attribution_column_map(trigdata->tg_relation, FP_TABLE_CLICKS);
	for (int i = 0; i < lengthof(click_key); i++)
		get_arg(trigdata->tg_trigtuple, RelationGetDescr(trigdata->tg_relation),
				map, click_key[i], values, nulls, i);
	if (fp_attribution_batching())
	{
		fp_attribution_batch_add(&click_batch, trigdata->tg_relation->rd_rel->relowner,
								 values, nulls);
		return PointerGetDatum(NULL);
	}
	fp_attribution_spi_connect_as_owner(trigdata->tg_relation, &save_user, &save_sec);
	run(fp_attribution_group_plan(&click_plan, values[0]), values, nulls);
	fp_attribution_spi_finish_as_caller(save_user, save_sec);
	return PointerGetDatum(NULL);
}

/*
 * value times sign, as SQL's bigint multiplication: an error on overflow
 */
static int64
times_sign(int64 value, int32 sign)
{
	int64		result;

	if (pg_mul_s64_overflow(value, sign, &result))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("bigint out of range")));
	return result;
}

/*
 * Output column col: value times sign, NULL if either is
 */
static void
set_times_sign(Datum *out, bool *outnull, int col, const bool *innull,
			   int32 sign, bool value_null, int64 value)
{
	outnull[col] = innull[IN_SIGN] || value_null;
	out[col] = outnull[col] ? (Datum) 0 : Int64GetDatum(times_sign(value, sign));
}

/*
 * Whether a text Datum is s
 */
static bool
text_is(Datum value, const char *s)
{
	text	   *t = DatumGetTextPP(value);
	size_t		len = strlen(s);

	return VARSIZE_ANY_EXHDR(t) == len && memcmp(VARDATA_ANY(t), s, len) == 0;
}

/*
 * What one attributed conversion (in, innull: the sign, then
 * contribution_columns) contributes to the rollup, times sign (-1 takes an
 * old row back), as a row of attribution.report_deltas (out, outnull): the
 * one definition the trigger and rebuild_report() (through
 * attribution.report_contribution()) share.  Written out in C rather than
 * as a SQL expression of 20 columns, which each of the trigger's INSERTs
 * compiled anew (half the cost of a conversion's delta).  A NULL input
 * gives NULL where SQL's arithmetic on it would: status compares as
 * unknown, a missing commission counts as none.
 */
static void
contribution(const Datum *in, const bool *innull, Datum *out, bool *outnull)
{
	int32		sign = innull[IN_SIGN] ? 0 : DatumGetInt32(in[IN_SIGN]);
	bool		no_status = innull[IN_STATUS];
	bool		pending = !no_status && text_is(in[IN_STATUS], "pending");
	bool		approved = !no_status && text_is(in[IN_STATUS], "approved");
	bool		rejected = !no_status && text_is(in[IN_STATUS], "rejected");
	bool		reversed = !no_status && text_is(in[IN_STATUS], "reversed");
	bool		earning = approved || reversed;
	bool		has_commission = !innull[IN_COMMISSION];
	int64		commission = has_commission ? DatumGetInt64(in[IN_COMMISSION]) : 0;
	int64		commission_reversed = innull[IN_COMMISSION_REVERSED] ? 0 :
		DatumGetInt64(in[IN_COMMISSION_REVERSED]);
	int64		due = 0;

	out[OUT_ADVERTISER] = in[IN_ADVERTISER];
	outnull[OUT_ADVERTISER] = innull[IN_ADVERTISER];
	outnull[OUT_DAY] = innull[IN_CONVERTED_AT];
	out[OUT_DAY] = outnull[OUT_DAY] ? (Datum) 0 :
		DirectFunctionCall1(timestamp_date,
							DirectFunctionCall2(timestamptz_zone,
												CStringGetTextDatum("UTC"),
												in[IN_CONVERTED_AT]));
	out[OUT_AFFILIATE] = in[IN_AFFILIATE];
	outnull[OUT_AFFILIATE] = innull[IN_AFFILIATE];
	out[OUT_OFFER] = in[IN_OFFER];
	outnull[OUT_OFFER] = innull[IN_OFFER];
	out[OUT_CURRENCY] = in[IN_CURRENCY];
	outnull[OUT_CURRENCY] = innull[IN_CURRENCY];
	out[OUT_CLICKS] = Int64GetDatum(0);
	outnull[OUT_CLICKS] = false;

	set_times_sign(out, outnull, OUT_CONVERSIONS, innull, sign, false, 1);
	set_times_sign(out, outnull, OUT_PENDING, innull, sign, no_status, pending);
	set_times_sign(out, outnull, OUT_APPROVED, innull, sign, no_status, approved);
	set_times_sign(out, outnull, OUT_REJECTED, innull, sign, no_status, rejected);
	set_times_sign(out, outnull, OUT_REVERSED, innull, sign, no_status, reversed);
	set_times_sign(out, outnull, OUT_REVENUE, innull, sign, innull[IN_REVENUE],
				   innull[IN_REVENUE] ? 0 : DatumGetInt64(in[IN_REVENUE]));
	set_times_sign(out, outnull, OUT_REFUNDED, innull, sign, innull[IN_REFUNDED],
				   innull[IN_REFUNDED] ? 0 : DatumGetInt64(in[IN_REFUNDED]));
	set_times_sign(out, outnull, OUT_COMMISSIONED, innull, sign, false, has_commission);
	set_times_sign(out, outnull, OUT_COMMISSION, innull, sign, false, commission);
	set_times_sign(out, outnull, OUT_COMMISSION_REVERSED, innull, sign, false,
				   commission_reversed);
	/* commission IS NOT NULL AND status IN (...): unknown only with one */
	set_times_sign(out, outnull, OUT_EARNED, innull, sign,
				   has_commission && no_status, has_commission && earning);
	/* CASE WHEN status ...: an unknown status takes the ELSE 0 */
	set_times_sign(out, outnull, OUT_EARNED_COMMISSION, innull, sign, false,
				   earning ? commission : 0);
	set_times_sign(out, outnull, OUT_EARNED_REVERSED, innull, sign, false,
				   earning ? commission_reversed : 0);
	/* coalesce(commission - commission_reversed, 0) */
	if (pending && has_commission && !innull[IN_COMMISSION_REVERSED] &&
		pg_sub_s64_overflow(commission, commission_reversed, &due))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("bigint out of range")));
	set_times_sign(out, outnull, OUT_PENDING_COMMISSION, innull, sign, false,
				   pending && has_commission && !innull[IN_COMMISSION_REVERSED] ? due : 0);
	/* ELSE 0 is 0 whatever the sign */
	if (!pending)
		outnull[OUT_PENDING_COMMISSION] = false;
	if (!earning)
		outnull[OUT_EARNED_COMMISSION] = outnull[OUT_EARNED_REVERSED] = false;
}

/*
 * attribution.report_contribution(sign integer, advertiser text,
 *		converted_at timestamptz, affiliate_id text, offer_id text,
 *		currency text, status text, revenue bigint, refunded bigint,
 *		commission bigint, commission_reversed bigint)
 *	  returns attribution.report_deltas
 *
 * contribution(), for rebuild_report().  Not STRICT: a NULL argument
 * gives the NULLs contribution() documents.
 */
PG_FUNCTION_INFO_V1(fp_attribution_report_contribution);
Datum
fp_attribution_report_contribution(PG_FUNCTION_ARGS)
{
	Datum		in[CONTRIBUTION_NARGS];
	bool		innull[CONTRIBUTION_NARGS];
	Datum		out[DELTA_NCOLUMNS];
	bool		outnull[DELTA_NCOLUMNS];
	TupleDesc	desc;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (desc->natts != DELTA_NCOLUMNS)
		elog(ERROR, "attribution.report_deltas must have %d columns",
			 DELTA_NCOLUMNS);
	for (int i = 0; i < CONTRIBUTION_NARGS; i++)
	{
		innull[i] = PG_ARGISNULL(i);
		in[i] = innull[i] ? (Datum) 0 : PG_GETARG_DATUM(i);
	}
	contribution(in, innull, out, outnull);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc),
													  out, outnull)));
}

/*
 * Append what conversion row tuple contributes, times sign, to the
 * deltas.  Caller is connected to SPI as the table's owner.
 */
static void
append_contribution(TriggerData *trigdata, const FpColumnMap *map,
					HeapTuple tuple, int sign)
{
	Datum		in[CONTRIBUTION_NARGS];
	bool		innull[CONTRIBUTION_NARGS];
	Datum		out[DELTA_NCOLUMNS];
	bool		outnull[DELTA_NCOLUMNS];
	char		nulls[DELTA_NCOLUMNS];

	in[IN_SIGN] = Int32GetDatum(sign);
	innull[IN_SIGN] = false;
	for (int i = 0; i < lengthof(contribution_columns); i++)
		in[i + 1] = heap_getattr(tuple,
								 fp_attribution_required_column(map, contribution_columns[i]),
								 RelationGetDescr(trigdata->tg_relation), &innull[i + 1]);
	contribution(in, innull, out, outnull);
	for (int i = 0; i < DELTA_NCOLUMNS; i++)
		nulls[i] = outnull[i] ? 'n' : ' ';
	run(fp_attribution_group_plan(&delta_plan, out[OUT_ADVERTISER]), out, nulls);
}

/*
 * Whether conversion row tuple is attributed.
 */
static bool
attributed(TriggerData *trigdata, const FpColumnMap *map, HeapTuple tuple)
{
	bool		isnull;
	Datum		value = heap_getattr(tuple,
									 fp_attribution_required_column(map, FP_COL_ATTRIBUTED),
									 RelationGetDescr(trigdata->tg_relation), &isnull);

	return !isnull && DatumGetBool(value);
}

/*
 * attribution.report_conversion() trigger: a conversion counts while
 * attributed.  An insert adds it; an update (a lifecycle command, a late
 * attribution) takes the old row back and adds the new one.
 */
PG_FUNCTION_INFO_V1(fp_attribution_report_conversion);
Datum
fp_attribution_report_conversion(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	bool		update;
	HeapTuple	old_row;
	HeapTuple	new_row;
	const FpColumnMap *map;
	Oid			save_user;
	int			save_sec;

	if (!begin_rollup(fcinfo, "report_conversion", true))
		return PointerGetDatum(NULL);
	update = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event);
	old_row = update ? trigdata->tg_trigtuple : NULL;
	new_row = update ? trigdata->tg_newtuple : trigdata->tg_trigtuple;
	map = fp_attribution_column_map(trigdata->tg_relation, FP_TABLE_CONVERSIONS);
	fp_attribution_spi_connect_as_owner(trigdata->tg_relation, &save_user, &save_sec);
	if (old_row != NULL && attributed(trigdata, map, old_row))
		append_contribution(trigdata, map, old_row, -1);
	if (attributed(trigdata, map, new_row))
		append_contribution(trigdata, map, new_row, 1);
	fp_attribution_spi_finish_as_caller(save_user, save_sec);
	return PointerGetDatum(NULL);
}
