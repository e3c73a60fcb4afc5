/*-------------------------------------------------------------------------
 *
 * log_rows.c
 *	  Appending a batch of rows to one of the log's tables in place, on
 *	  one node.
 *
 * Integration (log.c) writes one attribution.log_entries row per receipt,
 * an attribution.log_tiles row per 128 or per batch, an
 * attribution.log_nodes row per 15.  Through SQL (an INSERT ... SELECT
 * over unnest()ed arrays) each row was materialized by the function scan,
 * projected and inserted on its own: about 7,000 instructions per row
 * besides its index insertion.  Here the rows go to the heap with
 * table_multi_insert() (one WAL record per page rather than per row, as
 * COPY does), then into the table's indexes and through its constraints
 * by the executor's own functions, so the unique keys and the CHECK
 * constraints hold as for an INSERT.
 *
 * Only for a plain table without INSERT triggers whose columns are the
 * ones the caller fills (the extension's scripts create no such trigger):
 * on Citus the tables are in shards of other nodes, and log.c keeps its
 * INSERT statements for that case.
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
#include "utils/rel.h"

#include "fp_attribution/extension_tables.h"
#include "fp_attribution/log.h"

/*
 * Rows handed to table_multi_insert() at once, each in a slot of its own:
 * about a heap page of entries.  Each slot holds a reference to the
 * table's descriptor in the resource owner, which searches an array of up
 * to 64 of them from its end, and beyond that a hash table where one
 * descriptor's references all collide (1,000 slots cost 10,000
 * instructions each): so 64, released newest first.
 */
#define ROWS_PER_INSERT 64

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
 * Whether the table's columns are those of types (InvalidOid for a
 * dropped column), in that order
 */
static bool
columns_match(Relation rel, const Oid *types, int natts)
{
	TupleDesc	desc = RelationGetDescr(rel);

	if (desc->natts != natts)
		return false;
	for (int i = 0; i < natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped ? OidIsValid(types[i]) : att->atttypid != types[i])
			return false;
	}
	return true;
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
 * Append nrows rows to the extension's table: columns[i][r] is column i
 * of row r, of type types[i]; a dropped column has InvalidOid and no
 * array (NULL), and is null.  Returns false, having written nothing, when
 * the table is not a plain heap without INSERT triggers with those
 * columns (the caller then inserts by SQL).
 */
bool
fp_attribution_log_insert_rows(const char *table, const Oid *types, int natts,
							   Datum *const *columns, int nrows)
{
	Relation	rel = fp_attribution_open_table(table, RowExclusiveLock,
												ACL_INSERT);
	EState	   *estate;
	ResultRelInfo *rri;
	BulkInsertState bistate;
	TupleTableSlot **slots;
	int			nslots = Min(nrows, ROWS_PER_INSERT);
	int			used = 0;

	if (rel->rd_rel->relkind != RELKIND_RELATION ||
		rel->rd_tableam != GetHeapamTableAmRoutine() ||
		!columns_match(rel, types, natts) || has_insert_triggers(rel))
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

	for (int r = 0; r < nrows; r++)
	{
		TupleTableSlot *slot = slots[used++];

		ExecClearTuple(slot);
		for (int i = 0; i < natts; i++)
		{
			slot->tts_isnull[i] = columns[i] == NULL;
			slot->tts_values[i] = columns[i] == NULL ? (Datum) 0 : columns[i][r];
		}
		ExecStoreVirtualTuple(slot);
		if (used == nslots || r == nrows - 1)
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
	/* later statements of the integration see the rows */
	CommandCounterIncrement();
	return true;
}
