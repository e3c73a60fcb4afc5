/*-------------------------------------------------------------------------
 *
 * log_worker.c
 *	  The ledger worker's share of the receipt logs: every
 *	  fp_attribution.log_interval it integrates pending receipts and signs
 *	  checkpoints, in its own transaction.
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
 * On Citus, attribution.log_queue is a distributed table, and the batch's
 * DELETE by ctid cannot be planned on it (doc/citus.md): the worker does
 * not integrate while the queue is distributed and says so once per
 * worker process at LOG.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "fp_attribution/log.h"
#include "fp_attribution/shmem.h"
#include "fp_attribution/telemetry.h"

/* Receipts integrated per transaction; a full batch runs again at once */
#define LOG_WORKER_BATCH 10000

static TimestampTz next_run = 0;

/* The lag measured by the last successful run, and when it committed */
static int64 last_lag_us = 0;
static TimestampTz last_success = 0;

/* Whether the skip on a Citus cluster has been logged by this process */
static bool citus_skip_logged = false;

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
 * integrate_log()'s DELETE takes anyway: distribute() (Citus'
 * create_distributed_table) then cannot commit between this check and the
 * DELETE, and the check, run in a snapshot taken after the lock, sees a
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

/*
 * Run integration when it is due; returns the milliseconds until the next
 * run.
 */
static long
integrate_tick(TimestampTz now)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool full = false;
	volatile TimestampTz oldest = 0;
	volatile bool distributed = false;
	bool		installed;

	if (fp_attribution_log_interval_ms == 0)
	{
		publish_lag(false);
		return 60 * 1000;
	}
	if (now < next_run)
		return (long) ((next_run - now) / 1000) + 1;
	next_run = TimestampTzPlusMilliseconds(now, fp_attribution_log_interval_ms);

	pgstat_report_activity(STATE_RUNNING, "integrating receipt logs");
	fp_attribution_log_push_begin();
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		SPI_connect();
		/* a name in a missing schema is an error even when no row needs it */
		installed = OidIsValid(get_extension_oid("fp_attribution", true));
		distributed = installed && log_queue_distributed();

		/*
		 * The subquery reads the queue in the statement's snapshot, as it
		 * was before integrate_log() took its batch off.
		 */
		if (installed && !distributed &&
			SPI_execute("SELECT attribution.integrate_log(" CppAsString2(LOG_WORKER_BATCH) "),"
						" (SELECT min(q.\"timestamp\") FROM attribution.log_queue q)",
						false, 0) == SPI_OK_SELECT && SPI_processed == 1)
		{
			bool		isnull;
			Datum		d;

			full = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 1, &isnull)) == LOG_WORKER_BATCH;
			d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
			oldest = isnull ? 0 : DatumGetTimestampTz(d);
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		/* a distributed queue has no lag we measure: none is exported */
		last_success = distributed ? 0 : GetCurrentTimestamp();
		last_lag_us = oldest == 0 ? 0 : Max(last_success - oldest, 0);
		fp_attribution_log_push_end(true);
		publish_lag(false);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		fp_attribution_log_push_end(false);
		publish_lag(true);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
	if (distributed && !citus_skip_logged)
		ereport(LOG,
				(errmsg("fp_attribution ledger: receipts are not integrated into the logs on this Citus cluster"),
				 errdetail("attribution.log_queue is a distributed table."),
				 errhint("See doc/citus.md of fp_attribution.")));
	citus_skip_logged |= distributed;
	if (full)
		next_run = now;
	return full ? 0 : fp_attribution_log_interval_ms;
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

