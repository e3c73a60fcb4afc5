/*-------------------------------------------------------------------------
 *
 * log_entries.c
 *	  Appending a batch of entries to attribution.log_entries in place,
 *	  on one node.
 *
 * Integration (log.c) writes one entry per receipt.  Through SQL (an
 * INSERT ... SELECT over unnest()ed arrays) each row was materialized by
 * the function scan, projected and inserted on its own: about 7,000
 * instructions per receipt besides its index insertion.  Here the
 * rows go to the heap with table_multi_insert() (one WAL record per page
 * rather than per row, as COPY does), then into the table's indexes and
 * through its constraints by the executor's own functions, so the unique
 * keys and the CHECK constraints hold as for an INSERT.
 *
 * Only for a plain table without INSERT triggers (the extension's script
 * creates none): on Citus the entries are in shards of other nodes, and
 * log.c keeps its INSERT statement for that case.
 *
 * Lock protocol: the caller holds integration's advisory lock
 * (FP_LOG_LOCK_KEY, log.c), under which log indexes are assigned; the
 * table is opened in RowExclusiveLock, an INSERT's mode.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "utils/builtins.h"
#include "utils/rel.h"

#include "fp_attribution/extension_tables.h"
#include "fp_attribution/log.h"

/*
 * The columns of attribution.log_entries, in the order of its scripts:
 * 2.1 dropped leaf_hash (the leaf hashes moved to attribution.log_tiles),
 * which stays in the descriptor as a dropped column, always null
 */
enum
{
	ENTRY_ADVERTISER_ID = 1,
	ENTRY_LOG_INDEX,
	ENTRY_RECEIPT_ID,
	ENTRY_DROPPED_LEAF_HASH,
	ENTRY_INTEGRATED_AT,
	ENTRY_NATTS = ENTRY_INTEGRATED_AT
};

/*
 * Rows handed to table_multi_insert() at once, each in a slot of its own:
 * about a heap page of entries.  Each slot holds a reference to the
 * table's descriptor in the resource owner, which searches an array of up
 * to 64 of them from its end, and beyond that a hash table where one
 * descriptor's references all collide (1,000 slots cost 10,000
 * instructions each): so 64, released newest first.
 */
#define ENTRIES_PER_INSERT 64

/* Whether the table has INSERT triggers, which only an INSERT fires */
static bool
has_insert_triggers(Relation rel)
{
	TriggerDesc *t = rel->trigdesc;

	return t != NULL &&
		(t->trig_insert_before_row || t->trig_insert_after_row ||
		 t->trig_insert_instead_row || t->trig_insert_before_statement ||
		 t->trig_insert_after_statement || t->trig_insert_new_table);
}

/*
 * Insert the slots' rows, then their index entries, checking constraints
 * first, as ExecInsert() would.
 */
static void
insert_slots(ResultRelInfo *rri, EState *estate, TupleTableSlot **slots,
			 int n, BulkInsertState bistate)
{
	for (int i = 0; i < n; i++)
	{
		ExecConstraints(rri, slots[i], estate);
		ResetPerTupleExprContext(estate);
	}
	table_multi_insert(rri->ri_RelationDesc, slots, n,
					   GetCurrentCommandId(true), 0, bistate);
	for (int i = 0; i < n; i++)
	{
		list_free(ExecInsertIndexTuples(rri, slots[i], estate, false, false,
										NULL, NIL));
		ResetPerTupleExprContext(estate);
	}
}

/*
 * Append entries first .. first + n - 1 of an advertiser's log: the
 * receipts of pending.  Returns false, having written nothing, when the
 * table is not a plain heap without INSERT triggers with the columns of
 * the extension's scripts (the caller then inserts by SQL).
 */
bool
fp_attribution_log_append_entries(const char *advertiser_id, int64 first,
								  const FpLogPending *pending, int n)
{
	Relation	rel = fp_attribution_open_table("log_entries", RowExclusiveLock,
												ACL_INSERT);
	EState	   *estate;
	ResultRelInfo *rri;
	BulkInsertState bistate;
	TupleTableSlot **slots;
	int			nslots = Min(n, ENTRIES_PER_INSERT);
	int			used = 0;
	Datum		advertiser = CStringGetTextDatum(advertiser_id);
	Datum		now = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());

	if (rel->rd_rel->relkind != RELKIND_RELATION ||
		rel->rd_tableam != GetHeapamTableAmRoutine() ||
		RelationGetDescr(rel)->natts != ENTRY_NATTS ||
		!TupleDescAttr(RelationGetDescr(rel), ENTRY_DROPPED_LEAF_HASH - 1)->attisdropped ||
		has_insert_triggers(rel))
	{
		table_close(rel, RowExclusiveLock);
		return false;
	}

	estate = CreateExecutorState();
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 0, NULL, 0);
	ExecOpenIndices(rri, false);
	bistate = GetBulkInsertState();
	slots = palloc(nslots * sizeof(TupleTableSlot *));
	for (int i = 0; i < nslots; i++)
		slots[i] = table_slot_create(rel, NULL);

	for (int i = 0; i < n; i++)
	{
		TupleTableSlot *slot = slots[used++];

		ExecClearTuple(slot);
		slot->tts_values[ENTRY_ADVERTISER_ID - 1] = advertiser;
		slot->tts_values[ENTRY_LOG_INDEX - 1] = Int64GetDatum(first + i);
		slot->tts_values[ENTRY_RECEIPT_ID - 1] = UUIDPGetDatum(&pending[i].receipt_id);
		slot->tts_values[ENTRY_INTEGRATED_AT - 1] = now;
		memset(slot->tts_isnull, false, ENTRY_NATTS * sizeof(bool));
		slot->tts_isnull[ENTRY_DROPPED_LEAF_HASH - 1] = true;
		ExecStoreVirtualTuple(slot);
		if (used == nslots || i == n - 1)
		{
			insert_slots(rri, estate, slots, used, bistate);
			used = 0;
		}
	}

	for (int i = nslots - 1; i >= 0; i--)
		ExecDropSingleTupleTableSlot(slots[i]);
	FreeBulkInsertState(bistate);
	ExecCloseIndices(rri);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
	/* later statements of the integration see the entries */
	CommandCounterIncrement();
	return true;
}
