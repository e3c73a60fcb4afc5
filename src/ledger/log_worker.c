/*-------------------------------------------------------------------------
 *
 * log_worker.c
 *	  The background worker's share of the receipt logs: every
 *	  fp_attribution.log_interval it integrates pending receipts and signs
 *	  checkpoints, in its own transaction.
 *
 * Called from the worker's loop (worker.c); an error is logged and
 * retried at the next interval, so it never stops the exporter.  The
 * checkpoints a run signs are pushed to fp_attribution.log_push_endpoints
 * once it commits (log_push.c).
 *
 * Each run also measures the integration lag, exported as the gauge
 * ledger.integration.lag by the same process (otlp_source.c): how long
 * the oldest receipt queued at the start of the run had waited when the
 * run committed (0 when none was queued).  A run that fails adds the time
 * since the last successful run to that run's lag, so a stuck integration
 * shows a growing lag.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "fp_attribution/log.h"
#include "fp_attribution/telemetry.h"

/* Receipts integrated per transaction; a full batch runs again at once */
#define LOG_WORKER_BATCH 10000

static TimestampTz next_run = 0;

/* The lag measured by the last successful run, and when it committed */
static double last_lag_seconds = 0;
static TimestampTz last_success = 0;

/* Whether a run has failed since last_success */
static bool failing = false;

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

	if (fp_attribution_log_interval_ms == 0)
		return 60 * 1000;
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

		/*
		 * The subquery reads the queue in the statement's snapshot, as it
		 * was before integrate_log() took its batch off.
		 */
		if (SPI_execute("SELECT attribution.integrate_log(" CppAsString2(LOG_WORKER_BATCH) "),"
						" (SELECT min(q.\"timestamp\") FROM attribution.log_queue q)"
						" FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'fp_attribution'",
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
		last_success = GetCurrentTimestamp();
		last_lag_seconds = oldest == 0 ? 0 :
			(double) (last_success - oldest) / USECS_PER_SEC;
		failing = false;
		fp_attribution_log_push_end(true);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		failing = true;
		fp_attribution_log_push_end(false);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
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

/*
 * The ledger.integration.lag gauge into *point; false before the first
 * run of this worker and when integration by the worker is off.
 */
bool
fp_attribution_log_lag_point(FpMetricPoint *point)
{
	TimestampTz now = GetCurrentTimestamp();
	double		lag = last_lag_seconds;

	if (fp_attribution_log_interval_ms == 0 || last_success == 0)
		return false;
	if (failing)
		lag += (double) (now - last_success) / USECS_PER_SEC;
	memset(point, 0, sizeof(FpMetricPoint));
	strlcpy(point->name, "ledger.integration.lag", sizeof(point->name));
	strlcpy(point->description,
			"How long the oldest receipt waiting for the latest integration run had waited when it was in its log.",
			sizeof(point->description));
	strlcpy(point->unit, "s", sizeof(point->unit));
	point->kind = FP_METRIC_GAUGE;
	point->value_is_double = true;
	point->value_double = lag;
	point->time_unix_nano = fp_attribution_timestamptz_to_unix_nano(now);
	return true;
}
