/*-------------------------------------------------------------------------
 *
 * otlp_source.c
 *	  What the exporter sends: copies of the telemetry records, turned into
 *	  the encoders' plain C records (FpOtlpSpan, FpOtlpLog, FpOtlpMetric).
 *
 * Metrics are a snapshot of cumulative counters taken at each interval;
 * their start time is the counters' reset time.  Spans and log records
 * come from the telemetry core's buffers (issue 4); until that lands,
 * there are none to fetch.
 *
 * Locking: counters are atomics read without a lock (see shmem.c).  Every
 * record is copied into the caller's memory context before encoding, so
 * no lock is ever held while encoding or sending.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "fp_attribution/otlp.h"
#include "fp_attribution/shmem.h"

/* Unix nanoseconds of a TimestampTz */
static uint64
unix_nanos(TimestampTz t)
{
	return (uint64) (t + (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) *
					 SECS_PER_DAY * USECS_PER_SEC) * 1000;
}

/* One monotonic integer sum with a single unlabelled series */
static void
counter(FpOtlpMetric *m, const char *name, const char *description,
		uint64 value, uint64 start_ns, uint64 now_ns)
{
	m->name = name;
	m->description = description;
	m->unit = "1";
	m->kind = FP_OTLP_SUM;
	m->start_ns = start_ns;
	m->time_ns = now_ns;
	m->npoints = 1;
	m->points = palloc0(sizeof(FpOtlpPoint));
	m->points[0].as_int = (int64) value;
}

/*
 * Snapshot every metric into *metrics (palloc'd); returns how many.
 */
int
fp_attribution_otlp_fetch_metrics(FpOtlpMetric **metrics)
{
	FpAttributionCounters *c = &fp_attribution_shared->counters;
	uint64		now_ns = unix_nanos(GetCurrentTimestamp());
	uint64		start_ns = unix_nanos(c->reset_time);
	FpOtlpMetric *m = palloc0(sizeof(FpOtlpMetric) * 2);

	counter(&m[0], "fp.traceparent.invalid",
			"Malformed traceparent values ignored (W3C: start a new trace).",
			pg_atomic_read_u64(&c->invalid_traceparents), start_ns, now_ns);
	counter(&m[1], "fp.tracestate.invalid",
			"Malformed tracestate values dropped.",
			pg_atomic_read_u64(&c->invalid_tracestates), start_ns, now_ns);
	*metrics = m;
	return 2;
}

/*
 * Copy up to max spans that have not been exported yet into *spans and
 * advance the export cursor; returns how many.
 */
int
fp_attribution_otlp_fetch_spans(FpOtlpSpan **spans, int max)
{
	*spans = NULL;
	return 0;
}

/*
 * Copy up to max log records that have not been exported yet into *logs
 * and advance the export cursor; returns how many.
 */
int
fp_attribution_otlp_fetch_logs(FpOtlpLog **logs, int max)
{
	*logs = NULL;
	return 0;
}
