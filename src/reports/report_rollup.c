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
 * runs against the group's shards.  A conversion's delta is one
 * INSERT ... SELECT FROM attribution.report_contribution(), whose body the
 * planner inlines: the expressions of the one definition, evaluated in the
 * INSERT, with no function call.
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
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/rel.h"

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

/* The conversion columns report_contribution() takes after its sign */
static const FpColumn contribution_columns[] = {
	FP_COL_ADVERTISER_ID, FP_COL_CONVERTED_AT, FP_COL_AFFILIATE_ID,
	FP_COL_OFFER_ID, FP_COL_CURRENCY, FP_COL_STATUS, FP_COL_REVENUE_CENTS,
	FP_COL_REFUNDED_CENTS, FP_COL_COMMISSION_CENTS,
	FP_COL_COMMISSION_REVERSED_CENTS,
};

#define CONTRIBUTION_NARGS (1 + lengthof(contribution_columns))

/*
 * A conversion's delta: what attribution.report_contribution() (the one
 * definition, shared with rebuild_report()) makes of the row, inserted by
 * one statement into which the planner inlines the function's body
 */
static FpGroupPlan contribution_plan = {
	.sql = "INSERT INTO attribution.report_deltas"
		" SELECT * FROM attribution.report_contribution("
		"$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
	.nargs = CONTRIBUTION_NARGS,
	.argtypes = (Oid[]) {INT4OID, TEXTOID, TIMESTAMPTZOID, TEXTOID, TEXTOID,
	TEXTOID, TEXTOID, INT8OID, INT8OID, INT8OID, INT8OID}
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
 * Append what conversion row tuple contributes, times sign, to the
 * deltas.  Caller is connected to SPI as the table's owner.
 */
static void
append_contribution(TriggerData *trigdata, const FpColumnMap *map,
					HeapTuple tuple, int sign)
{
	Datum		values[CONTRIBUTION_NARGS];
	char		nulls[CONTRIBUTION_NARGS];

	values[0] = Int32GetDatum(sign);
	nulls[0] = ' ';
	for (int i = 0; i < lengthof(contribution_columns); i++)
		get_arg(tuple, RelationGetDescr(trigdata->tg_relation), map,
				contribution_columns[i], values, nulls, i + 1);
	run(fp_attribution_group_plan(&contribution_plan, values[1]), values, nulls);
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
