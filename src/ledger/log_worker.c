/*-------------------------------------------------------------------------
 *
 * log_worker.c
 *	  The ledger worker's share of the receipt logs: it integrates pending
 *	  receipts and signs checkpoints, in a transaction of its own (on a
 *	  Citus coordinator, one per advertiser).
 *
 * Two paces: integration runs again fp_attribution.log_batch_delay
 * (200 ms) after a run that found receipts (at once after a full batch),
 * so a receipt waits about that long under load, while a checkpoint of a
 * grown log is signed at most once per fp_attribution.log_interval (1 s):
 * a signature (~0.6 M instructions) per log and batch would cost more
 * than the batch's integration, and auditors need no fresher checkpoint
 * than the interval.  After a run that found none the worker sleeps
 * log_interval (an idle database is not polled every batch delay), so
 * the first receipts after a quiet spell wait up to log_interval.  A
 * signing run signs every log that grew since its latest checkpoint
 * (integrate_log(sign => true): a loose scan of the logs' keys), so
 * growth left unsigned by a worker that stopped is signed by the next.
 *
 * Called from the ledger worker's loop (ledger_worker.c), never from the
 * exporter, so a long integration batch holds back no export; an error
 * is logged and retried at the next interval.  The checkpoints a run
 * signs are pushed to fp_attribution.log_push_endpoints once it commits
 * (log_push.c).
 *
 * Each run also measures the integration lag, exported as the gauge
 * ledger.integration.lag by the exporter (otlp_source.c) through an
 * atomic in shared memory (shmem.c has the protocol): how long the oldest
 * receipt queued at the start of the run had waited when the run
 * committed (0 when none was queued).  A run that fails publishes the
 * last successful run's lag plus the time since that run, so a stuck
 * integration shows a lag growing by about one interval per failed run.
 *
 * On Citus (attribution.log_queue distributed), integrate_log()'s batch,
 * read and deleted in place on one node (log_queue.c), is in shards
 * elsewhere (and a DELETE by ctid across shards cannot be planned): the
 * coordinator's worker reads which advertisers have queued receipts and
 * calls attribution.integrate_advertiser_log() for each, a call Citus
 * delegates to the worker node holding that advertiser's shards, where it
 * is one node's integration of that one log, on local shards
 * (doc/citus.md).
 * The ledger workers of the worker nodes leave their shards to those
 * calls, so one integrator drives each log.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/pg_list.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "fp_attribution/log.h"
#include "fp_attribution/shmem.h"
#include "fp_attribution/telemetry.h"
#include "fp_attribution/worker_statement.h"

/* Receipts integrated per transaction; a full batch runs again at once */
#define LOG_WORKER_BATCH 10000

static TimestampTz next_run = 0;

/* When integration next signs checkpoints (0: at the first run) */
static TimestampTz next_sign = 0;

/*
 * On a Citus coordinator: the advertisers whose logs grew without a
 * checkpoint (runs that did not sign), in TopMemoryContext; NIL with
 * seeded false until the first signing run adds every log.
 */
static List *unsigned_logs = NIL;
static bool unsigned_seeded = false;

/* The lag measured by the last successful run, and when it committed */
static int64 last_lag_us = 0;
static TimestampTz last_success = 0;

/*
 * Publish the lag for the exporter: the last successful run's, plus the
 * time since that run when the latest run failed; none before the first
 * successful run of this process or while integration is off.
 */
static void
publish_lag(bool failed)
{
	uint64		lag_us = FP_LOG_LAG_NONE;

	if (fp_attribution_shared == NULL)
		return;
	if (fp_attribution_log_interval_ms != 0 && last_success != 0)
	{
		lag_us = (uint64) last_lag_us;
		if (failed)
			lag_us += (uint64) Max(GetCurrentTimestamp() - last_success, 0);
	}
	pg_atomic_write_u64(&fp_attribution_shared->log_lag_us, lag_us);
}

/*
 * Whether attribution.log_queue is a Citus distributed table (inside the
 * run's transaction and SPI).  The queue is locked first, in the mode
 * integrate_log()'s deletion takes anyway: distribute() (Citus'
 * create_distributed_table) then cannot commit between this check and the
 * deletion, and the check, run in a snapshot taken after the lock, sees a
 * distribution that committed before it.  Citus' catalog exists only with
 * the extension, hence two statements.
 */
static bool
log_queue_distributed(void)
{
	bool		isnull;
	Datum		queue;
	bool		citus;

	if (SPI_execute("SELECT pg_catalog.to_regclass('attribution.log_queue')::pg_catalog.oid,"
					" pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL",
					true, 0) != SPI_OK_SELECT || SPI_processed != 1)
		return false;
	queue = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return false;
	citus = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	LockRelationOid(DatumGetObjectId(queue), RowExclusiveLock);
	if (!citus)
		return false;
	/* not read-only: a statement of its own takes a new snapshot */
	if (SPI_execute_with_args("SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition"
							  " WHERE logicalrelid OPERATOR(pg_catalog.=) $1)",
							  1, (Oid[]) {REGCLASSOID}, &queue, NULL,
							  false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		return false;
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* What a run found, in the tick's memory */
typedef struct IntegrateRun
{
	MemoryContext cxt;			/* the tick's: outlives the run's transaction */
	bool		sign;			/* sign checkpoints of the grown logs */
	bool		full;			/* a batch was full: run again at once */
	bool		found;			/* receipts were integrated */
	TimestampTz oldest;			/* the oldest queued receipt, 0 if none */
	List	   *advertisers;	/* on a Citus coordinator: those with queued
								 * receipts, oldest first */
} IntegrateRun;

/* Whether a list of advertiser ids has this one */
static bool
has_advertiser(List *advertisers, const char *advertiser_id)
{
	ListCell   *lc;

	foreach(lc, advertisers)
	{
		if (strcmp(lfirst(lc), advertiser_id) == 0)
			return true;
	}
	return false;
}

/* Remember a log that grew without a checkpoint (Citus coordinator) */
static void
add_unsigned_log(const char *advertiser_id)
{
	MemoryContext old;

	if (has_advertiser(unsigned_logs, advertiser_id))
		return;
	old = MemoryContextSwitchTo(TopMemoryContext);
	unsigned_logs = lappend(unsigned_logs, pstrdup(advertiser_id));
	MemoryContextSwitchTo(old);
}

/* Forget a log once a checkpoint covers it (Citus coordinator) */
static void
remove_unsigned_log(const char *advertiser_id)
{
	ListCell   *lc;

	foreach(lc, unsigned_logs)
	{
		if (strcmp(lfirst(lc), advertiser_id) == 0)
		{
			pfree(lfirst(lc));
			unsigned_logs = foreach_delete_current(unsigned_logs, lc);
			return;
		}
	}
}

/*
 * The run on one node, or on a Citus coordinator the list of advertisers
 * to integrate (each then in a transaction of its own, on its worker:
 * integrate_advertiser_job).  A Citus worker node leaves the integration
 * of its shards to the coordinator's calls.
 */
static void
integrate_job(void *arg)
{
	IntegrateRun *run = arg;
	bool		isnull;

	if (!log_queue_distributed())
	{
		/*
		 * The subquery reads the queue in the statement's snapshot, as it
		 * was before integrate_log() took its batch off.
		 */
		if (SPI_execute(psprintf("SELECT attribution.integrate_log(%d, %s),"
								 " (SELECT min(q.\"timestamp\") FROM attribution.log_queue q)",
								 LOG_WORKER_BATCH, run->sign ? "true" : "false"),
						false, 0) == SPI_OK_SELECT && SPI_processed == 1)
		{
			Datum		d;
			int64		n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
														SPI_tuptable->tupdesc, 1, &isnull));

			run->full = n == LOG_WORKER_BATCH;
			run->found = n > 0;
			d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
			run->oldest = isnull ? 0 : DatumGetTimestampTz(d);
		}
		return;
	}
	if (SPI_execute("SELECT pg_catalog.citus_is_coordinator()", true, 0) != SPI_OK_SELECT ||
		SPI_processed != 1 ||
		!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		return;
	if (SPI_execute("SELECT q.advertiser_id, min(q.\"timestamp\") FROM attribution.log_queue q"
					" GROUP BY 1 ORDER BY 2, 1",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read attribution.log_queue");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		MemoryContext old = MemoryContextSwitchTo(run->cxt);

		run->advertisers = lappend(run->advertisers,
								   SPI_getvalue(row, SPI_tuptable->tupdesc, 1));
		MemoryContextSwitchTo(old);
		if (i == 0)
			run->oldest = DatumGetTimestampTz(SPI_getbinval(row, SPI_tuptable->tupdesc, 2, &isnull));
	}
	if (run->sign && !unsigned_seeded)
	{
		/* the first signing run of this worker: every log, once */
		if (SPI_execute("SELECT DISTINCT t.advertiser_id FROM attribution.log_tiles t",
						true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read attribution.log_tiles");
		for (uint64 i = 0; i < SPI_processed; i++)
			add_unsigned_log(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		unsigned_seeded = true;
	}
}

/* The argument of integrate_advertiser_job */
typedef struct AdvertiserJob
{
	IntegrateRun *run;
	const char *advertiser_id;
	bool		found;			/* receipts of it were integrated */
} AdvertiserJob;

/*
 * One advertiser's integration on a Citus cluster: the call of
 * integrate_advertiser_log() is delegated to the worker holding the
 * advertiser's shards (its argument a constant, alone in the statement,
 * outside a transaction block, as Citus' delegation requires); the
 * checkpoint it signed is pushed from here, where the pushes are.
 */
static void
integrate_advertiser_job(void *arg)
{
	AdvertiserJob *job = arg;
	const char *adv = job->advertiser_id;
	bool		isnull;
	Datum		note;

	int64		n;

	if (SPI_execute(psprintf("SELECT integrated, checkpoint"
							 " FROM attribution.integrate_advertiser_log(%s, %d, %s)",
							 quote_literal_cstr(adv), LOG_WORKER_BATCH,
							 job->run->sign ? "true" : "false"),
					false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not integrate the log of advertiser \"%s\"", adv);
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	job->run->full |= n == LOG_WORKER_BATCH;
	job->found = n > 0;
	note = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	if (!isnull)
		fp_attribution_log_push_note(adv, TextDatumGetCString(note));
}

/*
 * Run integration when it is due; returns the milliseconds until the next
 * run.  On a Citus coordinator, each advertiser is a transaction of its
 * own: one that fails (its worker down) holds back no other; a signing
 * run also calls the advertisers whose logs grew unsigned since.
 */
static long
integrate_tick(TimestampTz now)
{
	IntegrateRun run = {CurrentMemoryContext, now >= next_sign, false, false, 0, NIL};
	bool		ok;
	ListCell   *lc;
	long		wait;

	if (fp_attribution_log_interval_ms == 0)
	{
		publish_lag(false);
		return 60 * 1000;
	}
	if (now < next_run)
		return (long) ((next_run - now) / 1000) + 1;

	fp_attribution_log_push_begin();
	ok = fp_attribution_worker_job("integrating receipt logs", integrate_job, &run);
	fp_attribution_log_push_end(ok);
	if (run.sign)
	{
		MemoryContext old = MemoryContextSwitchTo(run.cxt);

		foreach(lc, unsigned_logs)
		{
			if (!has_advertiser(run.advertisers, lfirst(lc)))
				run.advertisers = lappend(run.advertisers, pstrdup(lfirst(lc)));
		}
		MemoryContextSwitchTo(old);
	}
	foreach(lc, run.advertisers)
	{
		AdvertiserJob job = {&run, lfirst(lc), false};
		bool		adv_ok;

		fp_attribution_log_push_begin();
		adv_ok = fp_attribution_worker_job("integrating receipt logs",
										   integrate_advertiser_job, &job);
		fp_attribution_log_push_end(adv_ok);
		if (adv_ok && run.sign)
			remove_unsigned_log(job.advertiser_id);
		else if (adv_ok && job.found)
			add_unsigned_log(job.advertiser_id);
		run.found |= job.found;
		ok &= adv_ok;
	}
	list_free_deep(run.advertisers);
	if (ok)
	{
		last_success = GetCurrentTimestamp();
		last_lag_us = run.oldest == 0 ? 0 : Max(last_success - run.oldest, 0);
		if (run.sign)
			next_sign = TimestampTzPlusMilliseconds(now, fp_attribution_log_interval_ms);
	}
	publish_lag(!ok);

	/*
	 * Busy: again after the batch delay (at once after a full batch); idle:
	 * after the interval, or at the next signing when a log grew unsigned.
	 */
	if (run.full)
		wait = 0;
	else if (run.found)
		wait = Min(fp_attribution_log_batch_delay_ms, fp_attribution_log_interval_ms);
	else
		wait = fp_attribution_log_interval_ms;
	next_run = TimestampTzPlusMilliseconds(now, wait);
	if (!run.sign && next_sign < next_run)
		next_run = next_sign;
	return (long) Max((next_run - GetCurrentTimestamp()) / 1000, 0);
}

/*
 * The worker's share of the logs: integration when due, then the pushes of
 * checkpoints (log_push.c), which never block.  Returns the milliseconds
 * until either needs the worker again.
 */
long
fp_attribution_log_worker_tick(TimestampTz now)
{
	long		wait = integrate_tick(now);
	long		push_wait = fp_attribution_log_push_run(GetCurrentTimestamp());

	return push_wait >= 0 ? Min(wait, push_wait) : wait;
}

