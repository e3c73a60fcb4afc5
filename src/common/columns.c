/*-------------------------------------------------------------------------
 *
 * columns.c
 *	  The column map of clicks, conversions and receipts: every column the
 *	  C code reads or writes, its name and the type it is read as, and
 *	  where each sits in a given table.
 *
 * The row triggers (row_triggers.c), the receipts (receipts.c) and the
 * telemetry trigger (telemetry_row.c) find the columns of the row they
 * fire for here, by name in the table's tuple descriptor, never by the
 * table's name: a renamed copy of a table, or the shard of a distributed
 * one, carries the same triggers and works the same.  A column of another
 * type than the code reads it as is refused when the map is built.
 *
 * Backend-local state: one map per kind of table, for the last table of
 * that kind a trigger fired on, dropped by a relcache invalidation of that
 * table (ALTER TABLE) so a changed table is mapped again.  No shared
 * memory.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/rel.h"

#include "fp_attribution/columns.h"
#include "fp_attribution/ids.h"
#include "fp_attribution/relcache_forget.h"
#include "fp_attribution/validate.h"

const char *const fp_attribution_column_names[FP_NUM_COLUMNS] = {
	[FP_COL_ADVERTISER_ID] = "advertiser_id",
	[FP_COL_CLICK_ID] = "click_id",
	[FP_COL_AFFILIATE_ID] = "affiliate_id",
	[FP_COL_OFFER_ID] = "offer_id",
	[FP_COL_CAMPAIGN_ID] = "campaign_id",
	[FP_COL_VISITOR_ID] = "visitor_id",
	[FP_COL_IP] = "ip",
	[FP_COL_USER_AGENT] = "user_agent",
	[FP_COL_REFERRER] = "referrer",
	[FP_COL_LANDING_URL] = "landing_url",
	[FP_COL_CLICKED_AT] = "clicked_at",
	[FP_COL_WINDOW_ENDS_AT] = "window_ends_at",
	[FP_COL_ORDER_ID] = "order_id",
	[FP_COL_CONVERSION_ID] = "conversion_id",
	[FP_COL_REVENUE_CENTS] = "revenue_cents",
	[FP_COL_CURRENCY] = "currency",
	[FP_COL_CONVERTED_AT] = "converted_at",
	[FP_COL_ATTRIBUTED] = "attributed",
	[FP_COL_UNATTRIBUTED_REASON] = "unattributed_reason",
	[FP_COL_LATENCY] = "latency",
	[FP_COL_TRACE_ID] = "trace_id",
	[FP_COL_SPAN_ID] = "span_id",
	[FP_COL_PARENT_SPAN_ID] = "parent_span_id",
	[FP_COL_SAMPLED] = "sampled",
	[FP_COL_TRACESTATE] = "tracestate",
	[FP_COL_RECORDED_AT] = "recorded_at",
	[FP_COL_STATUS] = "status",
	[FP_COL_COMMISSION_CENTS] = "commission_cents",
	[FP_COL_REFUNDED_CENTS] = "refunded_cents",
	[FP_COL_COMMISSION_REVERSED_CENTS] = "commission_reversed_cents",
	[FP_COL_REVIEW_REASON] = "review_reason",
	[FP_COL_RECEIPT_ID] = "receipt_id",
	[FP_COL_AGGREGATE_TYPE] = "aggregate_type",
	[FP_COL_AGGREGATE_ID] = "aggregate_id",
	[FP_COL_KEY_ID] = "key_id",
	[FP_COL_SEQUENCE] = "sequence",
};

/*
 * The types the code reads those columns as; InvalidOid with a length:
 * the extension's trace and span id types (whose OIDs differ per
 * installation).
 */
static const struct
{
	Oid			typid;
	int			typlen;
}			column_types[FP_NUM_COLUMNS] = {
	[FP_COL_ADVERTISER_ID] = {TEXTOID},
	[FP_COL_CLICK_ID] = {UUIDOID},
	[FP_COL_AFFILIATE_ID] = {TEXTOID},
	[FP_COL_OFFER_ID] = {TEXTOID},
	[FP_COL_CAMPAIGN_ID] = {TEXTOID},
	[FP_COL_VISITOR_ID] = {TEXTOID},
	[FP_COL_IP] = {INETOID},
	[FP_COL_USER_AGENT] = {TEXTOID},
	[FP_COL_REFERRER] = {TEXTOID},
	[FP_COL_LANDING_URL] = {TEXTOID},
	[FP_COL_CLICKED_AT] = {TIMESTAMPTZOID},
	[FP_COL_WINDOW_ENDS_AT] = {TIMESTAMPTZOID},
	[FP_COL_ORDER_ID] = {TEXTOID},
	[FP_COL_CONVERSION_ID] = {UUIDOID},
	[FP_COL_REVENUE_CENTS] = {INT8OID},
	[FP_COL_CURRENCY] = {TEXTOID},
	[FP_COL_CONVERTED_AT] = {TIMESTAMPTZOID},
	[FP_COL_ATTRIBUTED] = {BOOLOID},
	[FP_COL_UNATTRIBUTED_REASON] = {TEXTOID},
	[FP_COL_LATENCY] = {INTERVALOID},
	[FP_COL_TRACE_ID] = {InvalidOid, FP_TRACE_ID_LEN},
	[FP_COL_SPAN_ID] = {InvalidOid, FP_SPAN_ID_LEN},
	[FP_COL_PARENT_SPAN_ID] = {InvalidOid, FP_SPAN_ID_LEN},
	[FP_COL_SAMPLED] = {BOOLOID},
	[FP_COL_TRACESTATE] = {TEXTOID},
	[FP_COL_RECORDED_AT] = {TIMESTAMPTZOID},
	[FP_COL_STATUS] = {TEXTOID},
	[FP_COL_COMMISSION_CENTS] = {INT8OID},
	[FP_COL_REFUNDED_CENTS] = {INT8OID},
	[FP_COL_COMMISSION_REVERSED_CENTS] = {INT8OID},
	[FP_COL_REVIEW_REASON] = {TEXTOID},
	[FP_COL_RECEIPT_ID] = {UUIDOID},
	[FP_COL_AGGREGATE_TYPE] = {TEXTOID},
	[FP_COL_AGGREGATE_ID] = {TEXTOID},
	[FP_COL_KEY_ID] = {TEXTOID},
	[FP_COL_SEQUENCE] = {INT8OID},
};

/* The map of the last table of each kind; relid InvalidOid: none */
static struct
{
	Oid			relid;
	FpColumnMap map;
}			maps[FP_NUM_ROW_TABLES];

/*
 * Relcache invalidation: forget the map of the table (of every table when
 * relid is InvalidOid).
 */
static void
forget_maps(Datum arg, Oid relid)
{
	for (int t = 0; t < FP_NUM_ROW_TABLES; t++)
		if (!OidIsValid(relid) || maps[t].relid == relid)
			maps[t].relid = InvalidOid;
}

/*
 * Map the columns of desc (a table's, or a query result's), checking the
 * type of each one found.
 */
void
fp_attribution_build_column_map(TupleDesc desc, FpColumnMap *map)
{
	for (int c = 0; c < FP_NUM_COLUMNS; c++)
	{
		int			attnum = SPI_fnumber(desc, fp_attribution_column_names[c]);

		map->attnum[c] = Max(attnum, 0);
		if (attnum > 0)
			fp_attribution_check_column_type(desc, attnum,
											 fp_attribution_column_names[c],
											 column_types[c].typid,
											 column_types[c].typlen);
	}
}

/*
 * The column map of rel, a table of kind table (as its trigger's argument
 * or function says), built on first use and kept until rel changes.
 */
const FpColumnMap *
fp_attribution_column_map(Relation rel, FpRowTable table)
{
	fp_attribution_on_relcache_inval(forget_maps);
	if (maps[table].relid != RelationGetRelid(rel))
	{
		maps[table].relid = InvalidOid;
		fp_attribution_build_column_map(RelationGetDescr(rel), &maps[table].map);
		maps[table].relid = RelationGetRelid(rel);
	}
	return &maps[table].map;
}

/*
 * The attribute number of col, which the table must have.
 */
int
fp_attribution_required_column(const FpColumnMap *map, FpColumn col)
{
	if (map->attnum[col] == 0)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("the trigger's table has no column \"%s\"",
						fp_attribution_column_names[col])));
	return map->attnum[col];
}
