/*-------------------------------------------------------------------------
 *
 * verify_parallel.c
 *	  verify_all's parallel read of one table: parallel workers share the
 *	  table's blocks with the leader, and send it what they keep.
 *
 * verify_all's cost is per row (hashing each receipt, canonicalising each
 * row's payload), so its reads of the receipts and of the rows are split
 * between the leader and up to max_parallel_maintenance_workers workers,
 * as a parallel index build splits its scan: a parallel heap scan of the
 * relation under the leader's snapshot (the workers run as the leader's
 * user, in its transaction).  What a worker would keep (an item for the
 * leader's match or sort) it sends through its own message queue; what it
 * adds up (multiset sums, counts) it leaves in a result slot of its own,
 * which the leader adds to its own at the end.
 *
 * Lock protocol of the shared memory: each queue has one sender (its
 * worker) and one receiver (the leader); each result slot is written by
 * its worker only, before it detaches from its queue, and read by the
 * leader only after every worker has finished; the count of rows the
 * workers read is an atomic counter they add to, for progress only.  The
 * scan's block allocation is the heap's (table_parallelscan_*).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/parallel.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/shm_mq.h"
#include "utils/snapmgr.h"

#include "fp_attribution/verify_parallel.h"

#define KEY_FIXED		UINT64CONST(0xFA7710B000000001)
#define KEY_SCAN		UINT64CONST(0xFA7710B000000002)
#define KEY_ARG			UINT64CONST(0xFA7710B000000003)
#define KEY_QUEUES		UINT64CONST(0xFA7710B000000004)
#define KEY_RESULTS		UINT64CONST(0xFA7710B000000005)

/* Bytes of each worker's queue to the leader */
#define QUEUE_SIZE		(256 * 1024)

/* The leader reads its queues after this many of its own rows */
#define POLL_EVERY		64

typedef struct ParallelFixed
{
	Oid			relid;
	Size		result_len;
	pg_atomic_uint64 worker_rows;	/* rows the workers read, added in
									 * batches of ROWS_BATCH: progress */
} ParallelFixed;

#define ROWS_BATCH		1024

struct FpParallelScan
{
	ParallelContext *pcxt;
	ParallelFixed *fixed;
	TableScanDesc scan;			/* the leader's share */
	shm_mq_handle **queues;		/* one per launched worker */
	bool	   *detached;
	int			nlaunched;
	char	   *results;
	Size		result_len;
	uint64		rows;
};

struct FpParallelWorker
{
	ParallelFixed *fixed;
	uint64		rows;
	Relation	rel;
	TableScanDesc scan;
	shm_mq_handle *queue;
	char	   *result;
	Size		result_len;
};

/*
 * Start the parallel scan of rel with up to nworkers workers running
 * worker_function (of this library), each given arg (arglen bytes) and a
 * zeroed result slot of result_len bytes.  Enters parallel mode until
 * fp_attribution_parallel_scan_end.
 */
FpParallelScan *
fp_attribution_parallel_scan_begin(Relation rel, const char *worker_function,
								   int nworkers, const void *arg, Size arglen,
								   Size result_len)
{
	FpParallelScan *ps = palloc0(sizeof(FpParallelScan));
	Snapshot	snapshot = GetActiveSnapshot();
	Size		scan_len = table_parallelscan_estimate(rel, snapshot);
	ParallelContext *pcxt;
	ParallelFixed *fixed;
	ParallelTableScanDesc pscan;
	char	   *queues;
	char	   *copy;

	EnterParallelMode();
	pcxt = CreateParallelContext("fp_attribution", worker_function, nworkers);
	shm_toc_estimate_chunk(&pcxt->estimator, sizeof(ParallelFixed));
	shm_toc_estimate_chunk(&pcxt->estimator, scan_len);
	shm_toc_estimate_chunk(&pcxt->estimator, Max(arglen, 1));
	shm_toc_estimate_chunk(&pcxt->estimator, mul_size(QUEUE_SIZE, nworkers));
	shm_toc_estimate_chunk(&pcxt->estimator, mul_size(result_len, nworkers));
	shm_toc_estimate_keys(&pcxt->estimator, 5);
	InitializeParallelDSM(pcxt);

	fixed = shm_toc_allocate(pcxt->toc, sizeof(ParallelFixed));
	fixed->relid = RelationGetRelid(rel);
	fixed->result_len = result_len;
	pg_atomic_init_u64(&fixed->worker_rows, 0);
	shm_toc_insert(pcxt->toc, KEY_FIXED, fixed);
	pscan = shm_toc_allocate(pcxt->toc, scan_len);
	table_parallelscan_initialize(rel, pscan, snapshot);
	shm_toc_insert(pcxt->toc, KEY_SCAN, pscan);
	copy = shm_toc_allocate(pcxt->toc, Max(arglen, 1));
	memcpy(copy, arg, arglen);
	shm_toc_insert(pcxt->toc, KEY_ARG, copy);
	queues = shm_toc_allocate(pcxt->toc, mul_size(QUEUE_SIZE, nworkers));
	for (int i = 0; i < nworkers; i++)
		shm_mq_set_receiver(shm_mq_create(queues + i * QUEUE_SIZE, QUEUE_SIZE),
							MyProc);
	shm_toc_insert(pcxt->toc, KEY_QUEUES, queues);
	ps->results = shm_toc_allocate(pcxt->toc, mul_size(result_len, nworkers));
	memset(ps->results, 0, result_len * nworkers);
	shm_toc_insert(pcxt->toc, KEY_RESULTS, ps->results);

	LaunchParallelWorkers(pcxt);
	ps->pcxt = pcxt;
	ps->fixed = fixed;
	ps->nlaunched = pcxt->nworkers_launched;
	ps->result_len = result_len;
	ps->queues = palloc0(sizeof(shm_mq_handle *) * Max(ps->nlaunched, 1));
	ps->detached = palloc0(sizeof(bool) * Max(ps->nlaunched, 1));
	for (int i = 0; i < ps->nlaunched; i++)
		ps->queues[i] = shm_mq_attach((shm_mq *) (queues + i * QUEUE_SIZE),
									  pcxt->seg, pcxt->worker[i].bgwhandle);
	ps->scan = table_beginscan_parallel(rel, pscan);
	return ps;
}

/*
 * Hand every message waiting in the workers' queues to handler.  Returns
 * true when every worker has detached (has sent all it will).
 */
static bool
receive(FpParallelScan *ps, FpParallelMessage handler, void *handler_arg)
{
	bool		all = true;

	for (int i = 0; i < ps->nlaunched; i++)
	{
		while (!ps->detached[i])
		{
			Size		len;
			void	   *data;
			shm_mq_result res = shm_mq_receive(ps->queues[i], &len, &data, true);

			if (res == SHM_MQ_WOULD_BLOCK)
				break;
			if (res == SHM_MQ_DETACHED)
				ps->detached[i] = true;
			else
				handler(handler_arg, data, len);
		}
		all = all && ps->detached[i];
	}
	return all;
}

/*
 * The leader's next row (NULL at the end of its share), reading the
 * workers' messages now and then so that they never wait long on a full
 * queue.
 */
HeapTuple
fp_attribution_parallel_scan_next(FpParallelScan *ps, FpParallelMessage handler,
								  void *handler_arg)
{
	if (++ps->rows % POLL_EVERY == 0)
		receive(ps, handler, handler_arg);
	return heap_getnext(ps->scan, ForwardScanDirection);
}


/* Rows read so far by the leader and (about) by the workers: progress */
uint64
fp_attribution_parallel_scan_rows(FpParallelScan *ps)
{
	return ps->rows + pg_atomic_read_u64(&ps->fixed->worker_rows);
}

/*
 * After the leader's share: hand over the workers' remaining messages,
 * wait for them to finish, leave parallel mode.  Returns the number of
 * workers that ran, and their result slots, one after the other, in
 * *results (palloc'd).
 */
int
fp_attribution_parallel_scan_end(FpParallelScan *ps, FpParallelMessage handler,
								 void *handler_arg, char **results)
{
	int			n = ps->nlaunched;

	table_endscan(ps->scan);
	while (!receive(ps, handler, handler_arg))
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	WaitForParallelWorkersToFinish(ps->pcxt);
	*results = palloc(Max(ps->result_len * n, 1));
	memcpy(*results, ps->results, ps->result_len * n);
	DestroyParallelContext(ps->pcxt);
	ExitParallelMode();
	pfree(ps->queues);
	pfree(ps->detached);
	pfree(ps);
	return n;
}

/*
 * In a worker: attach to its queue and result slot, open the relation
 * (under the leader's lock) and join the scan; *arg is the leader's.
 */
FpParallelWorker *
fp_attribution_parallel_worker_begin(dsm_segment *seg, shm_toc *toc,
									 const char **arg)
{
	FpParallelWorker *w = palloc0(sizeof(FpParallelWorker));
	ParallelFixed *fixed = shm_toc_lookup(toc, KEY_FIXED, false);
	char	   *queues = shm_toc_lookup(toc, KEY_QUEUES, false);
	shm_mq	   *mq = (shm_mq *) (queues + ParallelWorkerNumber * QUEUE_SIZE);

	*arg = shm_toc_lookup(toc, KEY_ARG, false);
	shm_mq_set_sender(mq, MyProc);
	w->queue = shm_mq_attach(mq, seg, NULL);
	w->fixed = fixed;
	w->result_len = fixed->result_len;
	w->result = (char *) shm_toc_lookup(toc, KEY_RESULTS, false) +
		ParallelWorkerNumber * fixed->result_len;
	w->rel = table_open(fixed->relid, AccessShareLock);
	w->scan = table_beginscan_parallel(w->rel,
									   shm_toc_lookup(toc, KEY_SCAN, false));
	return w;
}

/* The relation a worker reads */
Relation
fp_attribution_parallel_worker_relation(FpParallelWorker *w)
{
	return w->rel;
}

/* A worker's next row, or NULL */
HeapTuple
fp_attribution_parallel_worker_next(FpParallelWorker *w)
{
	HeapTuple	tuple = heap_getnext(w->scan, ForwardScanDirection);

	if (tuple == NULL)
		pg_atomic_fetch_add_u64(&w->fixed->worker_rows, w->rows % ROWS_BATCH);
	else if (++w->rows % ROWS_BATCH == 0)
		pg_atomic_fetch_add_u64(&w->fixed->worker_rows, ROWS_BATCH);
	return tuple;
}

/* Send the leader a message (waits while the queue is full) */
void
fp_attribution_parallel_worker_send(FpParallelWorker *w, const void *data,
									Size len)
{
	if (shm_mq_send(w->queue, len, data, false, true) != SHM_MQ_SUCCESS)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not send to the verify_all leader")));
}

/*
 * End a worker's scan: its result (result_len bytes) to its slot, then
 * detach, which tells the leader it has everything.
 */
void
fp_attribution_parallel_worker_end(FpParallelWorker *w, const void *result)
{
	table_endscan(w->scan);
	table_close(w->rel, AccessShareLock);
	memcpy(w->result, result, w->result_len);
	shm_mq_detach(w->queue);
}
