/*-------------------------------------------------------------------------
 *
 * ledger_worker.c
 *	  The ledger background worker: receipt-log integration, checkpoint
 *	  signing and push, and automatic approval.
 *
 * One worker ("fp_attribution ledger" in pg_stat_activity, wait event
 * "Extension", "FpAttributionLedger" from PostgreSQL 17) runs the jobs
 * that write to the database on a schedule: every
 * fp_attribution.log_interval it integrates pending receipts into the
 * logs and signs checkpoints (log_worker.c), pushes the checkpoints to
 * fp_attribution.log_push_endpoints (log_push.c), and every
 * fp_attribution.auto_approve_interval it approves the conversions past
 * their hold period (auto_approve.c), and every
 * fp_attribution.report_compact_interval it folds the report rollup's
 * deltas (report_compaction.c).  They were in the exporter's loop
 * once; an integration batch of a large backlog then kept the exporter
 * from sending for as long as it took (a drain went from 2 s to 58 s).
 * Automatic approval is here for the same reason: it is a batch of
 * ordinary commands, each writing a receipt that this worker integrates
 * next, and its telemetry reaches the exporter through the shared rings
 * like any backend's.  The exporter now only exports; it reads the
 * integration lag this worker measures from shared memory (shmem.c).
 *
 * The worker sleeps on its latch, at most until the next job is due (the
 * intervals, or PUSH_POLL_MS while a push is in flight), and does the
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
 * Shared memory: only the lag it publishes (shmem.c).
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


/*
 * Entry point of the worker.
 */
void
fp_attribution_ledger_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(fp_attribution_otlp_database, NULL, 0);
	fp_attribution_require_shmem();
	ereport(LOG, (errmsg("fp_attribution ledger started")));

	for (;;)
	{
		long		timeout;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		timeout = fp_attribution_log_worker_tick(GetCurrentTimestamp());
		timeout = Min(timeout, fp_attribution_auto_approve_tick(GetCurrentTimestamp()));
		timeout = Min(timeout, fp_attribution_report_compaction_tick(GetCurrentTimestamp()));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, FP_WAIT_EVENT_LEDGER);
		ResetLatch(MyLatch);
	}
}

