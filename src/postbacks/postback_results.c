/*-------------------------------------------------------------------------
 *
 * postback_results.c
 *	  Writing the results of the postback worker's attempts to
 *	  attribution.postback_outbox in place, on one node.
 *
 * Through SQL, one UPDATE per attempt (by the row's whole key, the only
 * plan no statistics can spoil: see postback_worker.c) cost each row an
 * executor start-up, the table's CHECK constraints compiled from their
 * text and its indexes' predicates prepared, about 100,000 instructions
 * before the row itself.  One UPDATE joined to arrays of the cycle's keys
 * costs that once, but its plan rests on statistics: on a table never
 * analyzed the planner reads every row of the advertiser to find sixteen.
 * Here every row is found through the primary key and updated as the
 * logical replication apply worker does it (RelationFindReplTupleByIndex,
 * ExecSimpleRelationUpdate): constraints, index entries and the foreign
 * key's trigger as an UPDATE has them, prepared once per cycle.
 *
 * Only for a plain heap table whose UPDATE triggers are all internal (its
 * foreign key's) and whose columns are the ones written here: on Citus
 * the outbox is in shards of other nodes, and the worker keeps its
 * statement for that case.
 *
 * Lock protocol: the table is opened in RowExclusiveLock (an UPDATE's
 * mode); each row is locked FOR NO KEY UPDATE before it is written, as
 * an UPDATE would, after waiting for a transaction that holds it
 * (enable_postback_endpoint() reschedules pending rows).
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
#include "parser/parse_relation.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/uuid.h"

#include "fp_attribution/extension_tables.h"
#include "fp_attribution/postbacks.h"

/* The outbox columns a result reads or writes */
typedef enum ResultColumn
{
	COL_ADVERTISER_ID,
	COL_DELIVERY_ID,
	COL_STATE,
	COL_ATTEMPTS,
	COL_LAST_ATTEMPT_AT,
	COL_LAST_HTTP_STATUS,
	COL_LAST_ERROR,
	COL_NEXT_ATTEMPT_AT,
	COL_DONE_AT,
	NUM_RESULT_COLUMNS
} ResultColumn;

static const struct
{
	const char *name;
	Oid			type;
}			result_columns[NUM_RESULT_COLUMNS] = {
	[COL_ADVERTISER_ID] = {"advertiser_id", TEXTOID},
	[COL_DELIVERY_ID] = {"delivery_id", UUIDOID},
	[COL_STATE] = {"state", TEXTOID},
	[COL_ATTEMPTS] = {"attempts", INT4OID},
	[COL_LAST_ATTEMPT_AT] = {"last_attempt_at", TIMESTAMPTZOID},
	[COL_LAST_HTTP_STATUS] = {"last_http_status", INT4OID},
	[COL_LAST_ERROR] = {"last_error", TEXTOID},
	[COL_NEXT_ATTEMPT_AT] = {"next_attempt_at", TIMESTAMPTZOID},
	[COL_DONE_AT] = {"done_at", TIMESTAMPTZOID},
};

/*
 * The columns' offsets in the table's tuples (from 0), or false when one
 * is missing or of another type
 */
static bool
find_columns(Relation rel, int *off)
{
	TupleDesc	desc = RelationGetDescr(rel);

	for (int c = 0; c < NUM_RESULT_COLUMNS; c++)
	{
		int			attnum = attnameAttNum(rel, result_columns[c].name, false);

		if (attnum <= 0 || TupleDescAttr(desc, attnum - 1)->atttypid != result_columns[c].type)
			return false;
		off[c] = attnum - 1;
	}
	return true;
}

/*
 * The primary key's index if it is (advertiser_id, delivery_id), the key
 * every row is found by; else InvalidOid
 */
static Oid
primary_key(Relation rel, const int *off)
{
	Oid			index = RelationGetPrimaryKeyIndex(rel);
	Relation	idx;
	bool		ok;

	if (!OidIsValid(index))
		return InvalidOid;
	idx = index_open(index, AccessShareLock);
	ok = IndexRelationGetNumberOfKeyAttributes(idx) == 2 &&
		idx->rd_index->indkey.values[0] == off[COL_ADVERTISER_ID] + 1 &&
		idx->rd_index->indkey.values[1] == off[COL_DELIVERY_ID] + 1;
	index_close(idx, AccessShareLock);
	return ok ? index : InvalidOid;
}

/* Whether every UPDATE trigger of the table is internal (a foreign key's) */
static bool
only_internal_update_triggers(Relation rel)
{
	TriggerDesc *t = rel->trigdesc;

	if (t == NULL)
		return true;
	for (int i = 0; i < t->numtriggers; i++)
		if (TRIGGER_FOR_UPDATE(t->triggers[i].tgtype) && !t->triggers[i].tgisinternal)
			return false;
	return true;
}

/*
 * Write rows[0..n) to the outbox, in the caller's transaction: each row
 * still pending gets one more attempt made at now, its HTTP status and
 * error, its new state and next attempt, and done_at = now once it is no
 * longer pending; a row not pending any more (given up meanwhile) is left
 * alone, as the worker's UPDATE leaves it.  Returns false, having written
 * nothing, when the outbox is not a table this can write (see the file
 * header); the caller then writes by SQL.
 */
bool
fp_attribution_postback_results_in_place(const FpPostbackRowResult *rows, int n,
										 TimestampTz now)
{
	Relation	rel = fp_attribution_open_table("postback_outbox", RowExclusiveLock,
												ACL_UPDATE);
	int			off[NUM_RESULT_COLUMNS];
	Oid			pkey;
	int			natts = RelationGetDescr(rel)->natts;
	EState	   *estate;
	RangeTblEntry *rte;
	ResultRelInfo *rri;
	TupleTableSlot *key,
			   *old,
			   *new;

	if (rel->rd_rel->relkind != RELKIND_RELATION ||
		rel->rd_tableam != GetHeapamTableAmRoutine() ||
		!only_internal_update_triggers(rel) || !find_columns(rel, off) ||
		!OidIsValid(pkey = primary_key(rel, off)))
	{
		table_close(rel, RowExclusiveLock);
		return false;
	}

	/* an executor state as for an UPDATE of the table (range table entry 1) */
	estate = CreateExecutorState();
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(rel);
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	ExecInitRangeTable(estate, list_make1(rte));
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	ExecOpenIndices(rri, false);
	estate->es_output_cid = GetCurrentCommandId(true);
	/* the foreign key's trigger queues its check, if any, here */
	AfterTriggerBeginQuery();

	key = ExecInitExtraTupleSlot(estate, RelationGetDescr(rel), &TTSOpsVirtual);
	old = ExecInitExtraTupleSlot(estate, RelationGetDescr(rel), table_slot_callbacks(rel));
	new = ExecInitExtraTupleSlot(estate, RelationGetDescr(rel), &TTSOpsVirtual);
	for (int i = 0; i < n; i++)
	{
		const FpPostbackRowResult *r = &rows[i];
		char	   *state;

		ExecClearTuple(key);
		memset(key->tts_isnull, true, natts * sizeof(bool));
		key->tts_values[off[COL_ADVERTISER_ID]] = CStringGetTextDatum(r->advertiser_id);
		key->tts_isnull[off[COL_ADVERTISER_ID]] = false;
		key->tts_values[off[COL_DELIVERY_ID]] = UUIDPGetDatum(r->delivery_id);
		key->tts_isnull[off[COL_DELIVERY_ID]] = false;
		ExecStoreVirtualTuple(key);
		if (!RelationFindReplTupleByIndex(rel, pkey, LockTupleNoKeyExclusive, key, old))
			continue;
		slot_getallattrs(old);
		state = TextDatumGetCString(old->tts_values[off[COL_STATE]]);
		if (strcmp(state, "pending") != 0)
			continue;

		ExecClearTuple(new);
		memcpy(new->tts_values, old->tts_values, natts * sizeof(Datum));
		memcpy(new->tts_isnull, old->tts_isnull, natts * sizeof(bool));
#define SET(col, datum, null) \
		(new->tts_values[off[col]] = (datum), new->tts_isnull[off[col]] = (null))
		SET(COL_ATTEMPTS, Int32GetDatum(DatumGetInt32(old->tts_values[off[COL_ATTEMPTS]]) + 1),
			false);
		SET(COL_LAST_ATTEMPT_AT, TimestampTzGetDatum(now), false);
		SET(COL_LAST_HTTP_STATUS, Int32GetDatum(r->http_status), r->http_status == 0);
		SET(COL_LAST_ERROR, r->error ? CStringGetTextDatum(r->error) : (Datum) 0,
			r->error == NULL);
		SET(COL_STATE, CStringGetTextDatum(r->state), false);
		SET(COL_NEXT_ATTEMPT_AT, TimestampTzGetDatum(r->next_attempt_at), false);
		SET(COL_DONE_AT, TimestampTzGetDatum(now), strcmp(r->state, "pending") == 0);
#undef SET
		ExecStoreVirtualTuple(new);
		/* no BEFORE trigger (only internal ones), so no EvalPlanQual */
		ExecSimpleRelationUpdate(rri, estate, NULL, old, new);
		ResetPerTupleExprContext(estate);
	}

	AfterTriggerEndQuery(estate);
	ExecCloseIndices(rri);
	ExecResetTupleTable(estate->es_tupleTable, false);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
	/* the cycle's claim sees the rows as written */
	CommandCounterIncrement();
	return true;
}
