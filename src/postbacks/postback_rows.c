/*-------------------------------------------------------------------------
 *
 * postback_rows.c
 *	  Writing attribution.postback_outbox rows in place, on one node: the
 *	  commands' enqueue of a conversion's postbacks, and the postback
 *	  worker's results of its attempts.
 *
 * Through SQL each statement cost its row an executor start-up, the
 * table's CHECK constraints compiled from their text and its indexes'
 * predicates prepared: an enqueue about 248,000 instructions (121,000
 * here with the foreign key to the endpoints that 2.0 had, 38,000 of them
 * its check; 78,000 without), a result 100,000 before
 * the row itself.  A worker's statement joined to arrays of a cycle's
 * keys would share that, but its plan rests on statistics: on a table
 * never analyzed the planner reads every row of the advertiser to find
 * sixteen.  Here rows go through the executor's own functions, as the
 * logical replication apply worker writes them (ExecSimpleRelationInsert,
 * RelationFindReplTupleByIndex, ExecSimpleRelationUpdate): constraints,
 * index entries and internal triggers (a foreign key's check) as an
 * INSERT or UPDATE has them, a result found by the primary key, so that
 * no plan can go wrong.
 *
 * Only for a plain heap table whose triggers for the write are all
 * internal (a foreign key's), and whose columns are exactly the ones
 * known here (no default of another column is skipped), and only where
 * the caller knows the outbox is not distributed by Citus: a coordinator's
 * shell of a distributed table is a plain heap table too, whose rows
 * nobody reads.  The callers keep their SQL for those cases.
 *
 * Lock protocol: the table is opened in RowExclusiveLock, an INSERT's or
 * UPDATE's mode (the enqueue's caller holds it already: postbacks.c,
 * "Deleting an endpoint"); a result's row is locked FOR NO KEY UPDATE
 * before it is written, as an UPDATE would, after waiting for a
 * transaction that holds it (enable_postback_endpoint() reschedules
 * pending rows).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_relation.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"

#include "fp_attribution/extension_tables.h"
#include "fp_attribution/postbacks.h"
#include "fp_attribution/random_uuid.h"
#include "fp_attribution/relcache_forget.h"

/* The outbox's columns */
typedef enum OutboxColumn
{
	COL_ADVERTISER_ID,
	COL_DELIVERY_ID,
	COL_ENDPOINT_ID,
	COL_EVENT,
	COL_ORDER_ID,
	COL_CLICK_ID,
	COL_AFFILIATE_ID,
	COL_OFFER_ID,
	COL_STATUS,
	COL_REVENUE_CENTS,
	COL_REFUNDED_CENTS,
	COL_COMMISSION_CENTS,
	COL_CURRENCY,
	COL_RECEIPT_ID,
	COL_TRACE_ID,
	COL_SPAN_ID,
	COL_SAMPLED,
	COL_CREATED_AT,
	COL_STATE,
	COL_ATTEMPTS,
	COL_NEXT_ATTEMPT_AT,
	COL_LAST_ATTEMPT_AT,
	COL_LAST_HTTP_STATUS,
	COL_LAST_ERROR,
	COL_DONE_AT,
	NUM_OUTBOX_COLUMNS
} OutboxColumn;

/* Their names and types (a name: a type of the extension's schema) */
static const struct
{
	const char *name;
	Oid			type;
	const char *extension_type;
}			outbox_columns[NUM_OUTBOX_COLUMNS] = {
	[COL_ADVERTISER_ID] = {"advertiser_id", TEXTOID},
	[COL_DELIVERY_ID] = {"delivery_id", UUIDOID},
	[COL_ENDPOINT_ID] = {"endpoint_id", INT8OID},
	[COL_EVENT] = {"event", TEXTOID},
	[COL_ORDER_ID] = {"order_id", TEXTOID},
	[COL_CLICK_ID] = {"click_id", UUIDOID},
	[COL_AFFILIATE_ID] = {"affiliate_id", TEXTOID},
	[COL_OFFER_ID] = {"offer_id", TEXTOID},
	[COL_STATUS] = {"status", TEXTOID},
	[COL_REVENUE_CENTS] = {"revenue_cents", INT8OID},
	[COL_REFUNDED_CENTS] = {"refunded_cents", INT8OID},
	[COL_COMMISSION_CENTS] = {"commission_cents", INT8OID},
	[COL_CURRENCY] = {"currency", TEXTOID},
	[COL_RECEIPT_ID] = {"receipt_id", UUIDOID},
	[COL_TRACE_ID] = {"trace_id", InvalidOid, "trace_id"},
	[COL_SPAN_ID] = {"span_id", InvalidOid, "span_id"},
	[COL_SAMPLED] = {"sampled", BOOLOID},
	[COL_CREATED_AT] = {"created_at", TIMESTAMPTZOID},
	[COL_STATE] = {"state", TEXTOID},
	[COL_ATTEMPTS] = {"attempts", INT4OID},
	[COL_NEXT_ATTEMPT_AT] = {"next_attempt_at", TIMESTAMPTZOID},
	[COL_LAST_ATTEMPT_AT] = {"last_attempt_at", TIMESTAMPTZOID},
	[COL_LAST_HTTP_STATUS] = {"last_http_status", INT4OID},
	[COL_LAST_ERROR] = {"last_error", TEXTOID},
	[COL_DONE_AT] = {"done_at", TIMESTAMPTZOID},
};

/* The outbox opened for writing in place */
typedef struct OutboxWriter
{
	Relation	rel;
	int			off[NUM_OUTBOX_COLUMNS];	/* in its tuples, from 0 */
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot *slot;		/* a row to write */
	Oid			key;			/* for updates: (advertiser_id, delivery_id) */
} OutboxWriter;

/*
 * What is learnt of the table known_relid, until a relcache invalidation
 * of it (any change of its columns or constraints sends one):
 * find_columns' answer (each lookup by name cost 640 instructions, 16,000
 * of an enqueue), and its CHECK constraints prepared for evaluation in
 * known_checks_cxt.  The executor prepares those for each ResultRelInfo,
 * that is for each statement, from their stored text: 35,000 instructions
 * of an enqueue for "state IN (...)".  A prepared expression holds
 * nothing of the statement it was prepared for (ExecPrepareExpr: planned,
 * then initialized without a parent), so one serves every write.
 *
 * An invalidation may arrive in the middle of a write that uses the
 * checks (a lock taken, an index opened): their context is then only
 * retired, and deleted when the next write opens the table (writes do not
 * nest: the table's triggers are all internal).
 */
static Oid	known_relid = InvalidOid;
static bool known_match;
static int	known_off[NUM_OUTBOX_COLUMNS];
static MemoryContext known_checks_cxt = NULL;
static ExprState **known_checks = NULL;
static int	known_nchecks;
static MemoryContext retired_checks_cxt = NULL;

/* Drop the prepared checks: retired, for a write may be using them */
static void
retire_checks(void)
{
	if (known_checks_cxt != NULL)
	{
		if (retired_checks_cxt != NULL)
			MemoryContextDelete(retired_checks_cxt);
		retired_checks_cxt = known_checks_cxt;
	}
	known_checks_cxt = NULL;
	known_checks = NULL;
}

static void
forget_table(Datum arg, Oid relid)
{
	if (OidIsValid(relid) && relid != known_relid)
		return;
	known_relid = InvalidOid;
	retire_checks();
}

/*
 * The table's CHECK constraints, prepared (once, see above), for
 * ExecConstraints to use in place of its own; NULL without any.  Caller
 * has called find_columns for rel.
 */
static ExprState **
prepared_checks(Relation rel)
{
	TupleConstr *constr = RelationGetDescr(rel)->constr;
	MemoryContext old;

	if (constr == NULL || constr->num_check == 0)
		return NULL;
	/* ExecRelCheck reads num_check of them: never fewer */
	if (known_checks != NULL && known_nchecks == constr->num_check)
		return known_checks;
	retire_checks();
	known_checks_cxt = AllocSetContextCreate(CacheMemoryContext,
											 "fp_attribution outbox checks",
											 ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(known_checks_cxt);
	known_checks = palloc(constr->num_check * sizeof(ExprState *));
	for (int i = 0; i < constr->num_check; i++)
		known_checks[i] = ExecInitExpr(expression_planner(stringToNode(constr->check[i].ccbin)),
									   NULL);
	known_nchecks = constr->num_check;
	MemoryContextSwitchTo(old);
	return known_checks;
}

/*
 * Whether the table's columns are exactly the known ones (offsets into
 * off): then no column is left to its default
 */
static bool
find_columns(Relation rel, int *off)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			live = 0;
	Oid			schema = RelationGetNamespace(rel);

	if (known_relid == RelationGetRelid(rel))
	{
		memcpy(off, known_off, sizeof(known_off));
		return known_match;
	}
	fp_attribution_on_relcache_inval(forget_table);
	forget_table((Datum) 0, InvalidOid);
	known_relid = RelationGetRelid(rel);
	known_match = false;
	for (int i = 0; i < desc->natts; i++)
		live += !TupleDescAttr(desc, i)->attisdropped;
	if (live != NUM_OUTBOX_COLUMNS)
		return false;
	for (int c = 0; c < NUM_OUTBOX_COLUMNS; c++)
	{
		int			attnum = attnameAttNum(rel, outbox_columns[c].name, false);
		Oid			type = outbox_columns[c].extension_type ?
			GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
							CStringGetDatum(outbox_columns[c].extension_type),
							ObjectIdGetDatum(schema)) :
			outbox_columns[c].type;

		if (attnum <= 0 || TupleDescAttr(desc, attnum - 1)->atttypid != type)
			return false;
		known_off[c] = off[c] = attnum - 1;
	}
	known_match = true;
	return true;
}

/* Whether every trigger of the table for event (TRIGGER_TYPE_*) is internal */
static bool
only_internal_triggers(Relation rel, int16 event)
{
	TriggerDesc *t = rel->trigdesc;

	for (int i = 0; t != NULL && i < t->numtriggers; i++)
		if ((t->triggers[i].tgtype & event) && !t->triggers[i].tgisinternal)
			return false;
	return true;
}

/* The table's primary key if it is (advertiser_id, delivery_id), else InvalidOid */
static Oid
row_key(Relation rel, const int *off)
{
	Oid			pkey = RelationGetPrimaryKeyIndex(rel);
	Relation	idx;
	bool		ok;

	if (!OidIsValid(pkey))
		return InvalidOid;
	idx = index_open(pkey, AccessShareLock);
	ok = IndexRelationGetNumberOfKeyAttributes(idx) == 2 &&
		idx->rd_index->indkey.values[0] == off[COL_ADVERTISER_ID] + 1 &&
		idx->rd_index->indkey.values[1] == off[COL_DELIVERY_ID] + 1;
	index_close(idx, AccessShareLock);
	return ok ? pkey : InvalidOid;
}

/*
 * Open the outbox (relid) to write in place, as a statement of kind event
 * (TRIGGER_TYPE_INSERT or _UPDATE) needing privilege required would;
 * false, with nothing open, when the table is not one this file writes
 * (for updates, also when its primary key is not the rows' key).
 */
static bool
outbox_writer_open(OutboxWriter *w, Oid relid, int16 event, AclMode required)
{
	RangeTblEntry *rte;

	if (retired_checks_cxt != NULL)
		MemoryContextDelete(retired_checks_cxt);
	retired_checks_cxt = NULL;
	w->rel = fp_attribution_open_table_oid(relid, RowExclusiveLock, required);
	if (w->rel->rd_rel->relkind != RELKIND_RELATION ||
		w->rel->rd_tableam != GetHeapamTableAmRoutine() ||
		!only_internal_triggers(w->rel, event) || !find_columns(w->rel, w->off) ||
		(event == TRIGGER_TYPE_UPDATE && !OidIsValid(w->key = row_key(w->rel, w->off))))
	{
		table_close(w->rel, RowExclusiveLock);
		return false;
	}

	/* an executor state as for a statement on the table (range table entry 1) */
	w->estate = CreateExecutorState();
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(w->rel);
	rte->relkind = w->rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	ExecInitRangeTable(w->estate, list_make1(rte));
	w->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(w->rri, w->rel, 1, NULL, 0);
	w->rri->ri_ConstraintExprs = prepared_checks(w->rel);
	/* where the after-trigger code finds it (else it opens the table again) */
	w->estate->es_opened_result_relations = list_make1(w->rri);
	ExecOpenIndices(w->rri, false);
	w->estate->es_output_cid = GetCurrentCommandId(true);
	w->slot = ExecInitExtraTupleSlot(w->estate, RelationGetDescr(w->rel), &TTSOpsVirtual);
	/*
	 * an internal trigger's event (a foreign key's check) is queued here,
	 * and run at the close
	 */
	AfterTriggerBeginQuery();
	return true;
}

static void
outbox_writer_close(OutboxWriter *w)
{
	AfterTriggerEndQuery(w->estate);
	ExecCloseResultRelations(w->estate);
	ExecResetTupleTable(w->estate->es_tupleTable, false);
	FreeExecutorState(w->estate);
	table_close(w->rel, NoLock);
	/* the transaction's next statements see the rows */
	CommandCounterIncrement();
}

/* Column col of a slot of the outbox whose column offsets are off */
#define SET_IN(slot, off, col, datum, null) \
	((slot)->tts_values[(off)[col]] = (datum), \
	 (slot)->tts_isnull[(off)[col]] = (null))
/* ... of the writer's row */
#define SET(w, col, datum, null) SET_IN((w)->slot, (w)->off, col, datum, null)
/* ... a C string, NULL for null */
#define SET_TEXT(w, col, s) \
	SET(w, col, (s) ? CStringGetTextDatum(s) : (Datum) 0, (s) == NULL)

/*
 * Enqueue a conversion's postback for each of endpoints[0..n) into the
 * outbox (outbox_relid, which the caller has locked), in the command's
 * transaction: row holds its values (NULL strings: null),
 * the rest are the columns' defaults (a new delivery_id, now, pending,
 * no attempt).  Returns false, having written nothing, when the outbox
 * is not a table this can write (see the file header).
 */
bool
fp_attribution_postback_enqueue_in_place(Oid outbox_relid, const FpOutboxRow *row,
										 const int64 *endpoints, int n)
{
	OutboxWriter w;
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	if (!outbox_writer_open(&w, outbox_relid, TRIGGER_TYPE_INSERT, ACL_INSERT))
		return false;
	for (int i = 0; i < n; i++)
	{
		pg_uuid_t  *delivery_id = palloc(sizeof(pg_uuid_t));

		fp_attribution_random_uuid(delivery_id);
		ExecClearTuple(w.slot);
		memset(w.slot->tts_isnull, true, w.slot->tts_tupleDescriptor->natts * sizeof(bool));
		SET_TEXT(&w, COL_ADVERTISER_ID, row->advertiser_id);
		SET(&w, COL_DELIVERY_ID, UUIDPGetDatum(delivery_id), false);
		SET(&w, COL_ENDPOINT_ID, Int64GetDatum(endpoints[i]), false);
		SET_TEXT(&w, COL_EVENT, row->event);
		SET_TEXT(&w, COL_ORDER_ID, row->order_id);
		SET(&w, COL_CLICK_ID, UUIDPGetDatum(&row->click_id), !row->has_click_id);
		SET_TEXT(&w, COL_AFFILIATE_ID, row->affiliate_id);
		SET_TEXT(&w, COL_OFFER_ID, row->offer_id);
		SET_TEXT(&w, COL_STATUS, row->status);
		SET(&w, COL_REVENUE_CENTS, Int64GetDatum(row->revenue_cents), !row->has_revenue_cents);
		SET(&w, COL_REFUNDED_CENTS, Int64GetDatum(row->refunded_cents), !row->has_refunded_cents);
		SET(&w, COL_COMMISSION_CENTS, Int64GetDatum(row->commission_cents),
			!row->has_commission_cents);
		SET_TEXT(&w, COL_CURRENCY, row->currency);
		SET(&w, COL_RECEIPT_ID, UUIDPGetDatum(&row->receipt_id), false);
		SET(&w, COL_TRACE_ID, PointerGetDatum(&row->trace_id), false);
		SET(&w, COL_SPAN_ID, PointerGetDatum(&row->span_id), false);
		SET(&w, COL_SAMPLED, BoolGetDatum(row->sampled), false);
		SET(&w, COL_CREATED_AT, TimestampTzGetDatum(now), false);
		SET_TEXT(&w, COL_STATE, "pending");
		SET(&w, COL_ATTEMPTS, Int32GetDatum(0), false);
		SET(&w, COL_NEXT_ATTEMPT_AT, TimestampTzGetDatum(now), false);
		ExecStoreVirtualTuple(w.slot);
		ExecSimpleRelationInsert(w.rri, w.estate, w.slot);
		ResetPerTupleExprContext(w.estate);
	}
	outbox_writer_close(&w);
	return true;
}

/*
 * Write rows[0..n) to the outbox, in the worker's cycle's transaction
 * (whose start is now): each row still pending gets one more attempt made
 * at now, its HTTP status and error, its new state and next attempt, and
 * done_at = now once it is no longer pending; a row not pending any more
 * (given up meanwhile) is left alone, as the worker's UPDATE leaves it.
 * Returns false, having written nothing, when the outbox is not a table
 * this can write (see the file header); the caller then writes by SQL.
 */
bool
fp_attribution_postback_results_in_place(const FpPostbackRowResult *rows, int n,
										 TimestampTz now)
{
	OutboxWriter w;
	TupleTableSlot *key,
			   *old;
	int			natts;

	if (!outbox_writer_open(&w, fp_attribution_table_oid("postback_outbox"),
							TRIGGER_TYPE_UPDATE, ACL_UPDATE))
		return false;
	natts = RelationGetDescr(w.rel)->natts;
	key = ExecInitExtraTupleSlot(w.estate, RelationGetDescr(w.rel), &TTSOpsVirtual);
	old = ExecInitExtraTupleSlot(w.estate, RelationGetDescr(w.rel), table_slot_callbacks(w.rel));
	for (int i = 0; i < n; i++)
	{
		const FpPostbackRowResult *r = &rows[i];

		ExecClearTuple(key);
		memset(key->tts_isnull, true, natts * sizeof(bool));
		SET_IN(key, w.off, COL_ADVERTISER_ID, CStringGetTextDatum(r->advertiser_id), false);
		SET_IN(key, w.off, COL_DELIVERY_ID, UUIDPGetDatum(r->delivery_id), false);
		ExecStoreVirtualTuple(key);
		if (!RelationFindReplTupleByIndex(w.rel, w.key, LockTupleNoKeyExclusive, key, old))
			continue;
		slot_getallattrs(old);
		if (strcmp(TextDatumGetCString(old->tts_values[w.off[COL_STATE]]), "pending") != 0)
			continue;

		ExecClearTuple(w.slot);
		memcpy(w.slot->tts_values, old->tts_values, natts * sizeof(Datum));
		memcpy(w.slot->tts_isnull, old->tts_isnull, natts * sizeof(bool));
		SET(&w, COL_ATTEMPTS,
			Int32GetDatum(DatumGetInt32(old->tts_values[w.off[COL_ATTEMPTS]]) + 1), false);
		SET(&w, COL_LAST_ATTEMPT_AT, TimestampTzGetDatum(now), false);
		SET(&w, COL_LAST_HTTP_STATUS, Int32GetDatum(r->http_status), r->http_status == 0);
		SET_TEXT(&w, COL_LAST_ERROR, r->error);
		SET_TEXT(&w, COL_STATE, r->state);
		SET(&w, COL_NEXT_ATTEMPT_AT, TimestampTzGetDatum(r->next_attempt_at), false);
		SET(&w, COL_DONE_AT, TimestampTzGetDatum(now), strcmp(r->state, "pending") == 0);
		ExecStoreVirtualTuple(w.slot);
		/* no BEFORE trigger (only internal ones), so no EvalPlanQual */
		ExecSimpleRelationUpdate(w.rri, w.estate, NULL, old, w.slot);
		ResetPerTupleExprContext(w.estate);
	}
	outbox_writer_close(&w);
	return true;
}
