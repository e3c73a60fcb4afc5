/*-------------------------------------------------------------------------
 *
 * fp_attribution.c
 *	  Module entry point: settings, shared memory and hooks.
 *
 * Every setting lives under the reserved "fp_attribution." prefix.  Each
 * module defines its own settings from here, so _PG_init reads as the list
 * of what the extension installs.  Loaded without shared_preload_libraries
 * (say, by CREATE EXTENSION in a plain session) the commands still work;
 * only what needs shared memory raises an error (see shmem.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"

#include "fp_attribution/auto_approve.h"
#include "fp_attribution/delegation.h"
#include "fp_attribution/fraud_rules.h"
#include "fp_attribution/late_clicks.h"
#include "fp_attribution/log.h"
#include "fp_attribution/otlp.h"
#include "fp_attribution/postbacks.h"
#include "fp_attribution/receipts.h"
#include "fp_attribution/report_compaction.h"
#include "fp_attribution/row_guard.h"
#include "fp_attribution/row_triggers.h"
#include "fp_attribution/server_log.h"
#include "fp_attribution/shmem.h"
#include "fp_attribution/statement_batch.h"
#include "fp_attribution/telemetry.h"
#include "fp_attribution/trace_context.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* Seconds before the postmaster restarts a worker that exited */
#define FP_WORKER_RESTART_SECONDS 5

/*
 * Register one of the extension's background workers (the exporters, the
 * ledger, postbacks): all connect to a database, start once recovery is
 * over and are restarted alike; each is named after its job, which is
 * also its pg_stat_activity.backend_type.  number tells apart the workers
 * of one job (the exporters: fp_attribution.otlp_workers); it is their
 * argument, and the name of all but the first ends with it.
 */
static void
register_worker(const char *function, const char *type, int number)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = FP_WORKER_RESTART_SECONDS;
	strlcpy(worker.bgw_library_name, "fp_attribution", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, function, BGW_MAXLEN);
	if (number == 0)
		strlcpy(worker.bgw_name, type, BGW_MAXLEN);
	else
		snprintf(worker.bgw_name, BGW_MAXLEN, "%s %d", type, number + 1);
	strlcpy(worker.bgw_type, type, BGW_MAXLEN);
	worker.bgw_main_arg = Int32GetDatum(number);
	RegisterBackgroundWorker(&worker);
}

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * Shared memory of every subsystem is reserved and attached here, so that
 * the subsystems depend on shmem.c and never the other way round.
 */
static void
fp_attribution_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(fp_attribution_shmem_size());
	RequestAddinShmemSpace(fp_attribution_otlp_status_size());
	fp_attribution_telemetry_shmem_request();
}

/*
 * Create or attach the segments.  Runs in the postmaster (and again in each
 * EXEC_BACKEND child, and after a crash-restart).
 */
static void
fp_attribution_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	fp_attribution_shmem_init();
	fp_attribution_otlp_status_init();
	fp_attribution_telemetry_shmem_init();
	LWLockRelease(AddinShmemInitLock);
}

void
_PG_init(void)
{
	/* pg_upgrade must never run our hooks or start a worker */
	if (IsBinaryUpgrade)
		return;

	fp_attribution_row_triggers_define_gucs();
	fp_attribution_row_guard_define_gucs();
	fp_attribution_late_clicks_define_gucs();
	fp_attribution_fraud_rules_define_gucs();
	fp_attribution_auto_approve_define_gucs();
	fp_attribution_report_compaction_define_gucs();
	fp_attribution_trace_context_define_gucs();
	fp_attribution_otlp_define_gucs();
	fp_attribution_telemetry_define_gucs();
	fp_attribution_server_log_define_gucs();
	fp_attribution_receipts_define_gucs();
	fp_attribution_log_define_gucs();
	fp_attribution_postbacks_define_gucs();

	MarkGUCPrefixReserved("fp_attribution");
	fp_attribution_statement_batch_init();

	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = fp_attribution_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = fp_attribution_shmem_startup;
	for (int i = 0; i < fp_attribution_otlp_workers; i++)
		register_worker("fp_attribution_worker_main", "fp_attribution exporter", i);
	register_worker("fp_attribution_ledger_main", "fp_attribution ledger", 0);
	register_worker("fp_attribution_maintenance_main", "fp_attribution maintenance", 0);
	register_worker("fp_attribution_postback_worker_main", "fp_attribution postbacks", 0);
	fp_attribution_telemetry_install_hooks();
	fp_attribution_server_log_install_hook();
	fp_attribution_delegation_install_hook();
}
