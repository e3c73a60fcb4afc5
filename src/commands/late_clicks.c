/*-------------------------------------------------------------------------
 *
 * late_clicks.c
 *	  Late clicks: a conversion recorded "unknown_click" because the click
 *	  it names had not arrived yet (edge ingestion lag) is attributed when
 *	  that click is recorded within fp_attribution.late_click_grace of the
 *	  conversion.
 *
 * The AFTER INSERT row trigger attribution.clicks_attribute_late() (named
 * write_late_attributions on attribution.clicks, so it fires after the
 * click's receipt is written: triggers of one event fire in name order)
 * takes the click key's late-click lock, shared (row_guard.c), then locks the
 * advertiser's conversions that name the click and are still
 * "unknown_click", pending and unrefunded, recorded at most the grace
 * period ago, and converted within the click's window.  Each is attributed
 * as the insert trigger would have done (affiliate, window, latency, offer,
 * commission and first status) by one UPDATE (lifecycle.c), and gets one
 * receipt on its chain: "conversion_attributed" with the row's columns as
 * they now are, caused by the click's receipt, in the click's trace
 * context.  The conversion's insert trigger takes the same lock before it
 * settles for "unknown_click", so the two race safely in either order
 * (isolation spec iso_late_click).  A conversion whose click arrives later
 * than the grace period, or that is converted outside the click's window,
 * stays unattributed.
 *
 * Shared memory: none.  Backend-local state: the saved plans.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "fp_attribution/columns.h"
#include "fp_attribution/extension_tables.h"
#include "fp_attribution/late_clicks.h"
#include "fp_attribution/lifecycle.h"
#include "fp_attribution/receipts.h"
#include "fp_attribution/row_guard.h"
#include "fp_attribution/spi_plans.h"
#include "fp_attribution/statement_batch.h"
#include "fp_attribution/telemetry_record.h"

/* fp_attribution.late_click_grace, in seconds; 0 turns it off */
static int	late_click_grace_s = 60 * 60;

/* $3 recorded since, $4 clicked_at, $5 window_ends_at */
static FpGroupPlan waiting_plan = {
	.sql = "SELECT c.order_id, c.revenue_cents, c.currency,"
		" c.converted_at OPERATOR(pg_catalog.-) $4"
		" FROM attribution.conversions c"
		" WHERE c.advertiser_id OPERATOR(pg_catalog.=) $1"
		" AND c.click_id OPERATOR(pg_catalog.=) $2"
		" AND c.unattributed_reason OPERATOR(pg_catalog.=) 'unknown_click'"
		" AND c.status OPERATOR(pg_catalog.=) 'pending'"
		" AND c.refunded_cents OPERATOR(pg_catalog.=) 0"
		" AND c.recorded_at OPERATOR(pg_catalog.>=) $3"
		" AND c.converted_at OPERATOR(pg_catalog.>=) $4"
		" AND c.converted_at OPERATOR(pg_catalog.<) $5"
		" ORDER BY c.order_id FOR UPDATE",
	.nargs = 5,
	.argtypes = (Oid[]) {TEXTOID, UUIDOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID}
};
static FpGroupPlan cause_plan = {
	.sql = "SELECT r.receipt_id FROM attribution.receipts r"
		" WHERE r.advertiser_id OPERATOR(pg_catalog.=) $1"
		" AND r.aggregate_type OPERATOR(pg_catalog.=) 'click'"
		" AND r.aggregate_id OPERATOR(pg_catalog.=) $2::pg_catalog.text"
		" AND r.sequence OPERATOR(pg_catalog.=) 1",
	.nargs = 2,
	.argtypes = (Oid[]) {TEXTOID, UUIDOID}
};
static SPIPlanPtr attribute_plan = NULL;

void
fp_attribution_late_clicks_define_gucs(void)
{
	DefineCustomIntVariable("fp_attribution.late_click_grace",
							gettext_noop("How long a conversion naming an unknown click waits for that click."),
							gettext_noop("0 turns late attribution off."),
							&late_click_grace_s,
							60 * 60, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
}

bool
fp_attribution_late_clicks_enabled(void)
{
	return late_click_grace_s > 0;
}

static void
prepare_plans(void)
{
	if (attribute_plan != NULL)
		return;
	attribute_plan = fp_attribution_keep_plan("UPDATE attribution.conversions c SET attributed = true,"
											  " unattributed_reason = NULL, affiliate_id = $3,"
											  " window_ends_at = $4, latency = $5, offer_id = $6,"
											  " commission_cents = $7, commission_reversed_cents = $8,"
											  " status = $9"
											  " WHERE c.advertiser_id OPERATOR(pg_catalog.=) $1"
											  " AND c.order_id OPERATOR(pg_catalog.=) $2 RETURNING c.*",
											  9, (Oid[]) {TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID,
												  INTERVALOID, TEXTOID, INT8OID, INT8OID, TEXTOID});
}

/*
 * A column of the new click, by name.
 */
static Datum
click_column(TriggerData *trigdata, const char *name, bool *isnull)
{
	TupleDesc	desc = RelationGetDescr(trigdata->tg_relation);
	int			attnum = SPI_fnumber(desc, name);

	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("the trigger's table has no column \"%s\"", name)));
	return heap_getattr(trigdata->tg_trigtuple, attnum, desc, isnull);
}

/*
 * Attribute one waiting conversion (the row of a waiting_plan result) to
 * the click and append its receipt.
 */
static void
attribute_late(TriggerData *trigdata, HeapTuple waiting, TupleDesc wdesc,
			   Oid owner)
{
	bool		isnull;
	bool		offer_null;
	Datum		advertiser_id = click_column(trigdata, "advertiser_id", &isnull);
	Datum		offer_id = click_column(trigdata, "offer_id", &offer_null);
	Datum		order_id = SPI_getbinval(waiting, wdesc, 1, &isnull);
	FpEarning	earning;
	FpReceiptEnvelope env;
	Datum		args[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	Jsonb	   *payload;
	int			rc;

	fp_attribution_earn(advertiser_id, offer_null ? (Datum) 0 : offer_id,
						DatumGetInt64(SPI_getbinval(waiting, wdesc, 2, &isnull)),
						SPI_getbinval(waiting, wdesc, 3, &isnull), &earning);
	args[0] = advertiser_id;
	args[1] = order_id;
	args[2] = click_column(trigdata, "affiliate_id", &isnull);
	args[3] = click_column(trigdata, "window_ends_at", &isnull);
	args[4] = SPI_getbinval(waiting, wdesc, 4, &isnull);
	args[5] = offer_id;
	nulls[5] = offer_null ? 'n' : ' ';
	args[6] = Int64GetDatum(earning.commission_cents);
	args[7] = Int64GetDatum(0);
	if (!earning.has_commission)
		nulls[6] = nulls[7] = 'n';
	args[8] = CStringGetTextDatum(earning.status);
	rc = fp_attribution_update_conversion(attribute_plan, args, nulls);
	if (rc != SPI_OK_UPDATE_RETURNING || SPI_processed != 1)
		elog(ERROR, "could not attribute conversion: %s", SPI_result_code_string(rc));
	if (earning.has_commission && earning.commission_cents > 0)
		fp_attribution_telemetry_tally_lifecycle(FP_LIFECYCLE_COMMISSION_CENTS,
												 TextDatumGetCString(SPI_getbinval(waiting, wdesc, 3, &isnull)),
												 earning.commission_cents);

	/* the row as it now is, under the event's name */
	payload = fp_attribution_row_payload("conversion", SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc);
	payload = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(payload),
												 DirectFunctionCall1(jsonb_in,
																	 CStringGetDatum("{\"event\": \"conversion_attributed\"}"))));
	memset(&env, 0, sizeof(env));

	/*
	 * Caused by the click's receipt, collected by the trigger before this
	 * one in this statement (statement_batch.c): written now and read with
	 * a new snapshot, which sees it
	 */
	fp_attribution_write_pending_receipts();
	rc = SPI_execute_plan(fp_attribution_group_plan(&cause_plan, advertiser_id),
						  (Datum[]) {advertiser_id, click_column(trigdata, "click_id", &isnull)},
						  NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "click receipt lookup failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 1)
	{
		env.has_causation = true;
		env.causation_id = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0],
														SPI_tuptable->tupdesc, 1, &isnull));
	}
	env.advertiser_id = TextDatumGetCString(advertiser_id);
	env.aggregate_type = "conversion";
	env.aggregate_id = TextDatumGetCString(order_id);
	memcpy(&env.trace_id, DatumGetPointer(click_column(trigdata, "trace_id", &isnull)),
		   FP_TRACE_ID_LEN);
	memcpy(&env.span_id, DatumGetPointer(click_column(trigdata, "span_id", &isnull)),
		   FP_SPAN_ID_LEN);
	fp_attribution_append_row_event(&env, payload, owner);
}

/*
 * Whether a conversion of the advertiser names the click, as a probe of
 * the conversions' index on (advertiser_id, click_id) with a new snapshot
 * (the one the lookup would take) finds.  Nearly every click is named by
 * none, and the probe costs a tenth of waiting_plan's executor start-up,
 * which then runs only for the few that are.  With Citus loaded the
 * conversions of the click's advertiser are in a shard that only a query
 * finds, so there it says yes and the query decides.
 */
static bool
conversion_names_click(Datum advertiser_id, Datum click_id)
{
	static Oid	probe_index = InvalidOid;	/* the index found last time */
	Relation	rel;
	const FpColumnMap *map;
	List	   *indexes;
	ListCell   *lc;
	bool		found = true;

	if (!fp_attribution_batching())
		return true;
	rel = table_open(fp_attribution_table_oid("conversions"), AccessShareLock);
	map = fp_attribution_column_map(rel, FP_TABLE_CONVERSIONS);
	indexes = RelationGetIndexList(rel);
	/* the index found last time, if the table still has it, is tried first */
	if (list_member_oid(indexes, probe_index))
		indexes = lcons_oid(probe_index, list_delete_oid(indexes, probe_index));
	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index form = index->rd_index;
		ScanKeyData key[2];
		SysScanDesc scan;

		if (form->indnkeyatts < 2 || !form->indisvalid ||
			!heap_attisnull(index->rd_indextuple, Anum_pg_index_indpred, NULL) ||
			form->indkey.values[0] != fp_attribution_required_column(map, FP_COL_ADVERTISER_ID) ||
			form->indkey.values[1] != fp_attribution_required_column(map, FP_COL_CLICK_ID) ||
			index->rd_rel->relam != BTREE_AM_OID)
		{
			index_close(index, AccessShareLock);
			continue;
		}
		ScanKeyEntryInitialize(&key[0], 0, form->indkey.values[0],
							   BTEqualStrategyNumber, InvalidOid,
							   index->rd_indcollation[0], F_TEXTEQ, advertiser_id);
		ScanKeyEntryInitialize(&key[1], 0, form->indkey.values[1],
							   BTEqualStrategyNumber, InvalidOid,
							   InvalidOid, F_UUID_EQ, click_id);
		scan = systable_beginscan(rel, RelationGetRelid(index), true,
								  GetTransactionSnapshot(), 2, key);
		found = HeapTupleIsValid(systable_getnext(scan));
		systable_endscan(scan);
		probe_index = RelationGetRelid(index);
		index_close(index, AccessShareLock);
		break;
	}
	list_free(indexes);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * attribution.clicks_attribute_late() AFTER INSERT row trigger on
 * attribution.clicks (see the file header).
 */
PG_FUNCTION_INFO_V1(fp_attribution_clicks_attribute_late);
Datum
fp_attribution_clicks_attribute_late(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Oid			owner;
	Oid			save_user;
	int			save_sec;
	bool		isnull;
	Datum		args[5];
	SPITupleTable *waiting;
	uint64		nwaiting;
	int			rc;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("clicks_attribute_late must be an AFTER INSERT FOR EACH ROW trigger")));
	owner = trigdata->tg_relation->rd_rel->relowner;
	if (!fp_attribution_late_clicks_enabled() || fp_attribution_restoring(owner))
		return PointerGetDatum(NULL);

	args[0] = click_column(trigdata, "advertiser_id", &isnull);
	args[1] = click_column(trigdata, "click_id", &isnull);
	args[2] = TimestampTzGetDatum(GetCurrentTimestamp() -
								  (int64) late_click_grace_s * USECS_PER_SEC);
	args[3] = click_column(trigdata, "clicked_at", &isnull);
	args[4] = click_column(trigdata, "window_ends_at", &isnull);

	fp_attribution_lock_click_key(args[0], args[1], false);
	if (!conversion_names_click(args[0], args[1]))
		return PointerGetDatum(NULL);
	SPI_connect();
	prepare_plans();
	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_NOFORCE_RLS);
	rc = SPI_execute_plan(fp_attribution_group_plan(&waiting_plan, args[0]),
						  args, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "late click lookup failed: %s", SPI_result_code_string(rc));
	waiting = SPI_tuptable;
	nwaiting = SPI_processed;
	for (uint64 i = 0; i < nwaiting; i++)
		attribute_late(trigdata, waiting->vals[i], waiting->tupdesc, owner);
	SetUserIdAndSecContext(save_user, save_sec);
	SPI_finish();
	return PointerGetDatum(NULL);
}
