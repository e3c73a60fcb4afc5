/*-------------------------------------------------------------------------
 *
 * otlp_source.c
 *	  What the exporter sends: copies of the telemetry core's records
 *	  (telemetry.h), taken through its consumer API.
 *
 * Spans and log records are claimed in batches (telemetry.h): the
 * exporter workers (fp_attribution.otlp_workers) share one claim position
 * per signal, and each worker w records the batch it holds in
 * claims[w][signal] until the batch is counted as sent, rejected or
 * dropped (fp_attribution_otlp_release_batch).  A worker that dies with a
 * batch in hand (an ERROR, pg_cancel_backend) thus leaves it to its
 * successor, the worker with the same number, which copies and sends it
 * again before it claims anything new: every record is counted exactly
 * once, and delivered at least once.  Records that were overwritten
 * before the worker copied them are reported by the telemetry core as
 * lost; they are added to the exporter's "dropped" count and to the
 * core's export-drop count, and the claim's start moves past them at once
 * so that a successor does not count them again.
 * Metrics are a snapshot of cumulative counters, plus the
 * affiliate.windows.active gauge, which is a query and so needs a
 * transaction in fp_attribution.otlp_database, plus the trace-context
 * counters of shmem.h, plus the ledger.integration.lag gauge the same
 * process measured when it last integrated the receipt logs (log_worker.c).
 *
 * Locking: the telemetry core takes its ring locks in shared mode for the
 * claim and copy only, and moves the claim positions (atomics) with
 * compare-and-swap under it (see telemetry_rings.c); claims[w] is read and
 * written by worker w alone, with no lock; the counters are atomics.
 * Nothing is held while encoding or sending.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"

#include "fp_attribution/otlp.h"
#include "fp_attribution/shmem.h"

/* This process's number among the exporter workers (worker.c sets it) */
int			fp_attribution_otlp_worker_number = -1;

/* Bounds of the affiliate.windows.active query (windows_active_gauge) */
#define GAUGE_LOCK_TIMEOUT "1s"
#define GAUGE_STATEMENT_TIMEOUT_MS 5000

/* The trace-context counters of shmem.h, as monotonic sums */
static int
trace_context_points(FpMetricPoint *p, int64 now_ns)
{
	FpAttributionCounters *c = &fp_attribution_shared->counters;
	static const char *const names[] = {"fp.traceparent.invalid", "fp.tracestate.invalid"};
	static const char *const descriptions[] = {
		"Malformed traceparent values ignored (W3C: start a new trace).",
		"Malformed tracestate values dropped."
	};
	uint64		values[2];

	values[0] = pg_atomic_read_u64(&c->invalid_traceparents);
	values[1] = pg_atomic_read_u64(&c->invalid_tracestates);
	for (int i = 0; i < 2; i++)
	{
		memset(&p[i], 0, sizeof(FpMetricPoint));
		strlcpy(p[i].name, names[i], sizeof(p[i].name));
		strlcpy(p[i].description, descriptions[i], sizeof(p[i].description));
		strlcpy(p[i].unit, "1", sizeof(p[i].unit));
		p[i].kind = FP_METRIC_SUM;
		p[i].is_monotonic = true;
		p[i].temporality = FP_TEMPORALITY_CUMULATIVE;
		p[i].start_time_unix_nano = fp_attribution_timestamptz_to_unix_nano(c->reset_time);
		p[i].time_unix_nano = now_ns;
		p[i].value_int = (int64) values[i];
	}
	return 2;
}

/*
 * The affiliate.windows.active gauge into *point, in a transaction of its
 * own; false when there is none.  The query may wait for a lock (say an
 * ACCESS EXCLUSIVE lock on attribution.clicks held by a long transaction)
 * during which the worker exports nothing and a SIGTERM is not acted
 * upon, so it runs under GAUGE_LOCK_TIMEOUT and GAUGE_STATEMENT_TIMEOUT_MS.
 * An error, such as either timeout, skips the gauge for this export: it is
 * caught and the transaction aborted here rather than left to end the
 * worker, which would lose the batches it holds and, with the lock still
 * held, fail again after every restart.  It is logged like an export
 * failure (LOG once, then DEBUG1 until the gauge works again) and shown
 * as the metrics signal's last_error.  The caller's memory context is
 * restored.
 */
static bool
windows_active_gauge(FpMetricPoint *point)
{
	static bool failing = false;
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool found = false;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		/* like SET LOCAL: undone when the transaction ends */
		(void) set_config_option("lock_timeout", GAUGE_LOCK_TIMEOUT,
								 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
								 true, 0, false);
		/* SPI does not arm statement_timeout; the worker does it itself */
		enable_timeout_after(STATEMENT_TIMEOUT, GAUGE_STATEMENT_TIMEOUT_MS);
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "counting active attribution windows");
		found = fp_attribution_telemetry_windows_active_point(point);
		PopActiveSnapshot();
		CommitTransactionCommand();
		failing = false;
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		char		error[256];

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		snprintf(error, sizeof(error), "affiliate.windows.active skipped: %s",
				 edata->message);
		FreeErrorData(edata);
		fp_attribution_otlp_status_error(FP_OTLP_METRICS, error);
		ereport(failing ? DEBUG1 : LOG,
				(errmsg("fp_attribution exporter: %s", error)));
		failing = true;
		found = false;
	}
	PG_END_TRY();

	/* a timeout that fires after the query ended must not cancel the worker */
	disable_timeout(STATEMENT_TIMEOUT, false);
	QueryCancelPending = false;
	pgstat_report_stat(true);
	MemoryContextSwitchTo(cxt);
	return found;
}

/*
 * The ledger.integration.lag gauge into *point, as the ledger worker last
 * published it (shmem.c); false when it published none.
 */
static bool
log_lag_point(FpMetricPoint *point)
{
	uint64		lag_us;

	if (fp_attribution_shared == NULL)
		return false;
	lag_us = pg_atomic_read_u64(&fp_attribution_shared->log_lag_us);
	if (lag_us == FP_LOG_LAG_NONE)
		return false;
	memset(point, 0, sizeof(FpMetricPoint));
	strlcpy(point->name, "ledger.integration.lag", sizeof(point->name));
	strlcpy(point->description,
			"How long the oldest receipt waiting for the latest integration run had waited when it was in its log.",
			sizeof(point->description));
	strlcpy(point->unit, "s", sizeof(point->unit));
	point->kind = FP_METRIC_GAUGE;
	point->value_is_double = true;
	point->value_double = (double) lag_us / USECS_PER_SEC;
	point->time_unix_nano = fp_attribution_now_unix_nano();
	return true;
}

/*
 * Snapshot every metric point into *points (palloc'd in the current
 * context); returns how many.  Runs one short transaction for the
 * affiliate.windows.active gauge.
 */
int
fp_attribution_otlp_fetch_metrics(FpMetricPoint **points)
{
	int			max = fp_attribution_telemetry_max_metric_points();
	FpMetricPoint *p = palloc0(sizeof(FpMetricPoint) * (max + 4));
	int			n;

	n = fp_attribution_telemetry_collect_metrics(p, max);
	n += trace_context_points(&p[n], fp_attribution_now_unix_nano());
	if (windows_active_gauge(&p[n]))
		n++;
	if (log_lag_point(&p[n]))
		n++;

	*points = p;
	return n;
}

/* Account for records overwritten before the worker copied them */
static void
count_lost(FpOtlpSignal signal, FpSignal core_signal, uint64 lost)
{
	if (lost == 0)
		return;
	pg_atomic_fetch_add_u64(&fp_attribution_otlp_status->signal[signal].dropped, lost);
	fp_attribution_telemetry_count_export_drops(core_signal, lost);
}

/* The telemetry core's name of a signal with records (spans, logs) */
static FpSignal
core_signal(FpOtlpSignal signal)
{
	Assert(signal == FP_OTLP_TRACES || signal == FP_OTLP_LOGS);
	return signal == FP_OTLP_TRACES ? FP_SIGNAL_SPANS : FP_SIGNAL_LOGS;
}

/* This worker's claim of a signal */
static FpOtlpClaim *
my_claim(FpOtlpSignal signal)
{
	Assert(fp_attribution_otlp_worker_number >= 0 &&
		   fp_attribution_otlp_worker_number < FP_TELEMETRY_MAX_EXPORTERS);
	return &fp_attribution_otlp_status->claims[fp_attribution_otlp_worker_number][signal];
}

/*
 * Copy the next batch of spans or log records, up to max, into *records,
 * as they are packed in the ring (read them with the telemetry views), in
 * a buffer owned here, valid until the next fetch of the signal; returns
 * how many.  The batch is this worker's predecessor's when it left one
 * (see the file banner), else a new claim; it stays this worker's until
 * fp_attribution_otlp_release_batch.  The buffer is kept from one batch
 * to the next: a batch is megabytes, and a fresh allocation each time
 * (malloc'd and returned to the kernel) made the page faults of the copy
 * most of the exporter's cost.
 */
int
fp_attribution_otlp_fetch_packed(FpOtlpSignal signal, char **records,
								 int max)
{
	static char *buffer[FP_OTLP_NSIGNALS];
	static int	capacity[FP_OTLP_NSIGNALS];
	FpSignal	core = core_signal(signal);
	FpOtlpClaim *claim = my_claim(signal);
	uint64		lost = 0;
	int			n;

	if (capacity[signal] < max || claim->end - claim->start > capacity[signal])
	{
		int			size = Max(max, (int) (claim->end - claim->start));

		if (buffer[signal] != NULL)
			pfree(buffer[signal]);
		buffer[signal] = MemoryContextAllocHuge(TopMemoryContext,
												fp_attribution_telemetry_packed_max(core) * size);
		capacity[signal] = size;
	}
	*records = buffer[signal];
	if (claim->end != 0)
	{
		n = fp_attribution_telemetry_copy_packed(core, claim->start, claim->end,
												 *records, &lost);
		count_lost(signal, core, lost);
	}
	else
	{
		uint64		start;

		/* a batch lost whole is counted, and the next one claimed */
		do
		{
			n = fp_attribution_telemetry_claim_packed(core,
													  &fp_attribution_otlp_status->claimed[signal],
													  *records, max, &start,
													  &claim->end, &lost);
			count_lost(signal, core, lost);
		} while (n == 0 && claim->end > start);
	}
	if (n == 0)
		claim->end = 0;
	claim->start = claim->end - n;
	return n;
}

/*
 * This worker's batch of a signal has been counted: never fetch it again.
 */
void
fp_attribution_otlp_release_batch(FpOtlpSignal signal)
{
	FpOtlpClaim *claim = my_claim(signal);

	claim->start = claim->end = 0;
}

/*
 * Whether at least n records of a signal wait to be claimed: a full batch
 * is exported at once, whatever the schedule delay.
 */
bool
fp_attribution_otlp_backlog(FpOtlpSignal signal, int n)
{
	return fp_attribution_telemetry_head(core_signal(signal)) >=
		pg_atomic_read_u64(&fp_attribution_otlp_status->claimed[signal]) + n;
}

/*
 * Whether at least a batch of a signal is queued (waiting) and from now on
 * the backends wake this worker when one is, or (not waiting) stop doing
 * that; see fp_attribution_telemetry_await_batch.
 */
bool
fp_attribution_otlp_await_batch(FpOtlpSignal signal, bool waiting)
{
	if (!waiting)
	{
		fp_attribution_telemetry_awake(core_signal(signal),
									   fp_attribution_otlp_worker_number);
		return false;
	}
	return fp_attribution_telemetry_await_batch(core_signal(signal),
												fp_attribution_otlp_worker_number,
												fp_attribution_otlp_batch_size);
}
