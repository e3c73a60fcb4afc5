/*-------------------------------------------------------------------------
 *
 * auto_approve.c
 *	  The maintenance worker's automatic approval: every
 *	  fp_attribution.auto_approve_interval (0: never) it approves the
 *	  pending conversions whose offer's hold period has passed, in its own
 *	  transaction.
 *
 * The work is attribution.approve_due_conversions(), which calls
 * attribution.approve_conversion() for each, so an automatic approval is
 * an ordinary command: its receipt ("reason": "hold period passed"), its
 * own root trace, span, logs and metrics.  A conversion held by a fraud
 * rule (review_reason set) or with no offer is never approved
 * automatically.  Called from the maintenance worker's loop (ledger_worker.c);
 * an error is logged and retried at the next interval.
 *
 * Shared memory: none.  Worker-local state: the time of the next run.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "utils/guc.h"
#include "utils/timestamp.h"

#include "fp_attribution/auto_approve.h"
#include "fp_attribution/worker_statement.h"

/* Conversions approved per transaction; a full batch runs again at once */
#define AUTO_APPROVE_BATCH 1000

/* fp_attribution.auto_approve_interval, in milliseconds; 0: off */
static int	auto_approve_interval_ms = 0;

static TimestampTz next_run = 0;

void
fp_attribution_auto_approve_define_gucs(void)
{
	DefineCustomIntVariable("fp_attribution.auto_approve_interval",
							gettext_noop("How often the worker approves the pending conversions whose hold period has passed."),
							gettext_noop("0 turns automatic approval off."),
							&auto_approve_interval_ms,
							0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
}

/*
 * Approve what is due when a run is due; returns the milliseconds until
 * the next run.
 */
long
fp_attribution_auto_approve_tick(TimestampTz now)
{
	bool		full;

	if (auto_approve_interval_ms == 0)
		return 60 * 1000;
	if (now < next_run)
		return (long) ((next_run - now) / 1000) + 1;
	next_run = TimestampTzPlusMilliseconds(now, auto_approve_interval_ms);

	full = fp_attribution_worker_statement("approving conversions past their hold period",
										   "SELECT attribution.approve_due_conversions("
										   CppAsString2(AUTO_APPROVE_BATCH) ")") == AUTO_APPROVE_BATCH;
	if (full)
		next_run = now;
	return full ? 0 : auto_approve_interval_ms;
}
