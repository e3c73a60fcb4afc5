/*-------------------------------------------------------------------------
 *
 * ledger_worker.c
 *	  The ledger background worker (receipt-log integration, checkpoint
 *	  signing and push) and the maintenance worker (automatic approval,
 *	  report folding).
 *
 * Two workers run the jobs that write to the database on a schedule
 * ("fp_attribution ledger" and "fp_attribution maintenance" in
 * pg_stat_activity, wait event "Extension", "FpAttributionLedger" from
 * PostgreSQL 17).  The ledger worker integrates pending receipts into the
 * logs and signs checkpoints (log_worker.c: every
 * fp_attribution.log_batch_delay while receipts come, signing every
 * fp_attribution.log_interval) and pushes the checkpoints to
 * fp_attribution.log_push_endpoints (log_push.c).  The maintenance worker
 * approves the conversions past their hold period every
 * fp_attribution.auto_approve_interval (auto_approve.c) and folds the
 * report rollup's deltas every fp_attribution.report_compact_interval
 * (report_compaction.c).  They were all in the exporter's loop once; an
 * integration batch of a large backlog then kept the exporter from
 * sending for as long as it took (a drain went from 2 s to 58 s).  For
 * the same reason the logs have a worker of their own: a fold of ten
 * seconds of report deltas took 2.3 s at 2,000 clicks/s on a loaded
 * 2-core machine, and held integration back as long (p99 lag 2.3 s with
 * them in one loop, 0.76 s without; test/bench/log_lag.sh).  Automatic
 * approval is a batch of ordinary commands, each writing a receipt that
 * the ledger worker integrates next, and its telemetry reaches the
 * exporter through the shared rings like any backend's.  The exporter
 * only exports; it reads the integration lag the ledger worker measures
 * from shared memory (shmem.c).
 *
 * Each worker sleeps on its latch, at most until its next job is due (the
 * intervals, or PUSH_POLL_MS while a push is in flight), and does its
 * jobs one after the other, each in its own transaction; an error in one
 * is logged and retried at its next interval.  It connects to
 * fp_attribution.otlp_database (default "postgres"), the exporter's
 * database, where the extension is installed.
 *
 * SIGHUP: settings are re-read (a new interval applies from the next
 * wait; new push endpoints at the next push).  SIGTERM: die, as in a
 * backend: a running batch is rolled back (integration and approval are
 * idempotent, the next run redoes it) and checkpoints waiting to be
 * pushed are forgotten (every one stays in attribution.log_checkpoints).
 * The worker exits with status 1 so the postmaster restarts it after
 * FP_WORKER_RESTART_SECONDS (fp_attribution.c; pg_terminate_backend)
 * unless the server is stopping.
 *
 * Shared memory: only the lag the ledger worker publishes (shmem.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "fp_attribution/auto_approve.h"
#include "fp_attribution/compat.h"
#include "fp_attribution/log.h"
#include "fp_attribution/otlp.h"
#include "fp_attribution/report_compaction.h"
#include "fp_attribution/shmem.h"

PGDLLEXPORT void fp_attribution_ledger_main(Datum main_arg);
PGDLLEXPORT void fp_attribution_maintenance_main(Datum main_arg);

/* One job of a worker: runs it when due, returns ms until it is due again */
typedef long (*WorkerTick) (TimestampTz now);

/*
 * The loop of both workers: the jobs in turn, then sleep until the first
 * is due again (or the latch is set).
 */
static void
worker_loop(const char *name, const WorkerTick *ticks, int nticks)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(fp_attribution_otlp_database, NULL, 0);
	fp_attribution_require_shmem();
	ereport(LOG, (errmsg("%s started", name)));

	for (;;)
	{
		long		timeout = 60 * 1000;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		for (int i = 0; i < nticks; i++)
			timeout = Min(timeout, ticks[i] (GetCurrentTimestamp()));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, FP_WAIT_EVENT_LEDGER);
		ResetLatch(MyLatch);
	}
}

/*
 * Entry point of the ledger worker: the receipt logs.
 */
void
fp_attribution_ledger_main(Datum main_arg)
{
	static const WorkerTick ticks[] = {fp_attribution_log_worker_tick};

	worker_loop("fp_attribution ledger", ticks, lengthof(ticks));
}

/*
 * Entry point of the maintenance worker: automatic approval and the
 * report rollup's folding.
 */
void
fp_attribution_maintenance_main(Datum main_arg)
{
	static const WorkerTick ticks[] = {
		fp_attribution_auto_approve_tick,
		fp_attribution_report_compaction_tick
	};

	worker_loop("fp_attribution maintenance", ticks, lengthof(ticks));
}
