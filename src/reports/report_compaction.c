/*-------------------------------------------------------------------------
 *
 * report_compaction.c
 *	  The maintenance worker's folding of the report rollup: every
 *	  fp_attribution.report_compact_interval (0: never) it folds the
 *	  deltas the commands appended into the totals, in its own
 *	  transaction.
 *
 * The work is attribution.compact_reports() (sql/fp_attribution--2.0.sql,
 * "Reporting" explains the rollup): one fold per advertiser with deltas.
 * The reports are exact whether or not it runs; unfolded deltas only make
 * them slower to read, and a fold costs about what the reads of its
 * deltas would.  Called from the maintenance worker's loop (ledger_worker.c);
 * an error is logged and retried at the next interval; a database without
 * the extension is skipped quietly.  On Citus,
 * compact_reports() folds on the coordinator only (every node sees all
 * the deltas there).
 *
 * Shared memory: none.  Worker-local state: the time of the next run.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/guc.h"
#include "utils/timestamp.h"

#include "fp_attribution/report_compaction.h"
#include "fp_attribution/worker_statement.h"

/* fp_attribution.report_compact_interval, in milliseconds; 0: off */
static int	report_compact_interval_ms = 10 * 1000;

static TimestampTz next_run = 0;

void
fp_attribution_report_compaction_define_gucs(void)
{
	DefineCustomIntVariable("fp_attribution.report_compact_interval",
							gettext_noop("How often the worker folds the report rollup's new rows into its totals."),
							gettext_noop("0 turns folding by the worker off; the reports stay exact, but slow down as rows accumulate."),
							&report_compact_interval_ms,
							10 * 1000, 0, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
}

/*
 * Fold the report deltas when a run is due; returns the milliseconds
 * until the next run.
 */
long
fp_attribution_report_compaction_tick(TimestampTz now)
{
	if (report_compact_interval_ms == 0)
		return 60 * 1000;
	if (now < next_run)
		return (long) ((next_run - now) / 1000) + 1;
	next_run = TimestampTzPlusMilliseconds(now, report_compact_interval_ms);

	(void) fp_attribution_worker_statement("folding report rollup",
										   "SELECT attribution.compact_reports()");
	return report_compact_interval_ms;
}
