/*-------------------------------------------------------------------------
 *
 * log_queue.c
 *	  Taking a batch of receipts off attribution.log_queue for
 *	  integration (log.c).
 *
 * On one node the queue is a plain heap, read and emptied here in place:
 * one heap scan up to the batch's size, then each row deleted by its
 * ctid.  The DELETE ... USING (SELECT ctid ... LIMIT) ... RETURNING
 * statement it replaces scanned the queue twice, hashed the batch's
 * ctids, formed each row again for its CTE, its sort and SPI: 13,500
 * instructions per receipt against about 4,000 here, most of them the
 * heap deletion itself (test/bench/log_callgrind.sh, doc/receipts.md).
 * The batch is sorted in C, by advertiser_id (COLLATE "C": byte order),
 * timestamp and receipt_id, as the statement's ORDER BY did.
 *
 * A batch holds the rows of committed receipts only: a command still
 * running adds its rows to a later batch.  A receipt deleted behind the
 * triggers' back before it was integrated still gets its entry (its queue
 * row says what it was), which verify_all() then reports.
 *
 * On Citus the queue is a distributed table, whose rows are in the shards
 * on the worker nodes: integrate_advertiser_log() takes one advertiser's
 * batch by a statement naming that advertiser, which Citus routes to the
 * shard (TAKE_ADVERTISER_BATCH_SQL), and the rows are copied into the same
 * form.
 *
 * Lock protocol: the caller holds integration's advisory lock
 * (FP_LOG_LOCK_KEY, log.c), so no other integrator deletes queue rows
 * meanwhile; commands only insert, in transactions that the scan's
 * snapshot either sees committed or does not see at all.  The queue is
 * opened in RowExclusiveLock, the mode of a DELETE.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/uuid.h"

#include "fp_attribution/extension_tables.h"
#include "fp_attribution/log.h"

/* The columns of attribution.log_queue, in the order of its script */
enum
{
	QUEUE_ADVERTISER_ID = 1,
	QUEUE_RECEIPT_ID,
	QUEUE_RECEIPT_HASH,
	QUEUE_TIMESTAMP,
	QUEUE_NATTS = QUEUE_TIMESTAMP
};

/*
 * One advertiser's batch on Citus: every table named with the advertiser,
 * so that the statement is one shard's, pushed down whole (a ctid join
 * across shards cannot be planned).  Not a kept generic plan: Citus
 * routes a statement by its parameters' values, and it runs once per
 * call.
 */
#define TAKE_ADVERTISER_BATCH_SQL \
	"WITH q AS (DELETE FROM attribution.log_queue q" \
	"  USING (SELECT ctid AS c FROM attribution.log_queue" \
	"   WHERE advertiser_id OPERATOR(pg_catalog.=) $1 LIMIT $2) b" \
	"  WHERE q.advertiser_id OPERATOR(pg_catalog.=) $1 AND q.ctid OPERATOR(pg_catalog.=) b.c" \
	"  RETURNING q.receipt_id, q.receipt_hash, q.\"timestamp\")" \
	" SELECT receipt_id, receipt_hash, \"timestamp\" FROM q"

/* Integration order: advertiser (byte order), timestamp, receipt_id */
static int
pending_cmp(const void *a, const void *b)
{
	const FpLogPending *x = a;
	const FpLogPending *y = b;
	int			c = strcmp(x->advertiser_id, y->advertiser_id);

	if (c != 0)
		return c;
	if (x->timestamp != y->timestamp)
		return x->timestamp < y->timestamp ? -1 : 1;
	return memcmp(x->receipt_id.data, y->receipt_id.data, UUID_LEN);
}

/*
 * The queue, opened for deletion after the checks a DELETE would make:
 * the caller's privileges, and a heap (the scan reads heap tuples).
 */
static Relation
open_queue(void)
{
	Relation	rel = fp_attribution_open_table("log_queue", RowExclusiveLock,
												ACL_SELECT | ACL_DELETE);

	if (rel->rd_tableam != GetHeapamTableAmRoutine() ||
		RelationGetDescr(rel)->natts != QUEUE_NATTS)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"%s\" is not the extension's heap table",
						RelationGetRelationName(rel))));
	return rel;
}

/*
 * Take up to max_entries committed receipts off the queue of one node (a
 * plain table, not Citus'): returns them sorted in integration order, in
 * the current memory context, and their number in *n.
 */
FpLogPending *
fp_attribution_log_take_batch(int32 max_entries, int *n)
{
	Relation	rel = open_queue();
	TupleDesc	desc = RelationGetDescr(rel);
	Snapshot	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	TableScanDesc scan = table_beginscan(rel, snapshot, 0, NULL);
	int			cap = Min(max_entries, 1024);
	FpLogPending *pending = palloc(cap * sizeof(FpLogPending));
	HeapTuple	tuple;

	*n = 0;
	while (*n < max_entries &&
		   (tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Datum		values[QUEUE_NATTS];
		bool		nulls[QUEUE_NATTS];
		FpLogPending *p;

		CHECK_FOR_INTERRUPTS();
		if (*n == cap)
		{
			cap = Min((int64) cap * 2, max_entries);
			pending = repalloc(pending, cap * sizeof(FpLogPending));
		}
		p = &pending[(*n)++];
		heap_deform_tuple(tuple, desc, values, nulls);
		p->advertiser_id = TextDatumGetCString(values[QUEUE_ADVERTISER_ID - 1]);
		memcpy(&p->receipt_id, DatumGetUUIDP(values[QUEUE_RECEIPT_ID - 1]), UUID_LEN);
		p->receipt_hash = DatumGetByteaPCopy(values[QUEUE_RECEIPT_HASH - 1]);
		p->timestamp = DatumGetTimestampTz(values[QUEUE_TIMESTAMP - 1]);
		p->tid = tuple->t_self;
	}
	table_endscan(scan);

	/*
	 * What the scan saw is what is deleted: no other integrator runs.  A row
	 * deleted meanwhile by hand fails the run ("tuple concurrently
	 * deleted"), which then leaves the queue as it was for the next run.
	 */
	for (int i = 0; i < *n; i++)
		simple_table_tuple_delete(rel, &pending[i].tid, snapshot);
	UnregisterSnapshot(snapshot);
	table_close(rel, NoLock);
	CommandCounterIncrement();
	qsort(pending, *n, sizeof(FpLogPending), pending_cmp);
	return pending;
}

/*
 * Take up to max_entries of one advertiser's committed receipts off the
 * queue by SQL (inside SPI), the queue possibly Citus': returns them
 * sorted in integration order and their number in *n.
 */
FpLogPending *
fp_attribution_log_take_advertiser_batch(text *advertiser_id, int32 max_entries,
										 int *n)
{
	Datum		values[2];
	char	   *adv = text_to_cstring(advertiser_id);
	FpLogPending *pending;

	values[0] = PointerGetDatum(advertiser_id);
	values[1] = Int32GetDatum(max_entries);
	if (SPI_execute_with_args(TAKE_ADVERTISER_BATCH_SQL, 2, (Oid[]) {TEXTOID, INT4OID},
							  values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read pending receipts");
	*n = SPI_processed;
	pending = palloc(Max(*n, 1) * sizeof(FpLogPending));
	for (int i = 0; i < *n; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		pending[i].advertiser_id = adv;
		memcpy(&pending[i].receipt_id, DatumGetUUIDP(SPI_getbinval(row, desc, 1, &isnull)), UUID_LEN);
		pending[i].receipt_hash = DatumGetByteaPCopy(SPI_getbinval(row, desc, 2, &isnull));
		pending[i].timestamp = DatumGetTimestampTz(SPI_getbinval(row, desc, 3, &isnull));
		ItemPointerSetInvalid(&pending[i].tid);
	}
	SPI_freetuptable(SPI_tuptable);
	qsort(pending, *n, sizeof(FpLogPending), pending_cmp);
	return pending;
}
