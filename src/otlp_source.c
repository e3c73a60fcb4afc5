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
static int64
unix_nanos(TimestampTz t)
{
	return (t + (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) *
			SECS_PER_DAY * USECS_PER_SEC) * 1000;
}

/* A monotonic cumulative integer sum with a single unlabelled series */
static void
counter(FpMetricPoint *p, const char *name, const char *description,
		uint64 value, int64 start_ns, int64 now_ns)
{
	strlcpy(p->name, name, sizeof(p->name));
	strlcpy(p->description, description, sizeof(p->description));
	strlcpy(p->unit, "1", sizeof(p->unit));
	p->kind = FP_METRIC_SUM;
	p->is_monotonic = true;
	p->temporality = FP_TEMPORALITY_CUMULATIVE;
	p->start_time_unix_nano = start_ns;
	p->time_unix_nano = now_ns;
	p->value_int = (int64) value;
}

/*
 * Snapshot every metric point into *points (palloc'd); returns how many.
 */
int
fp_attribution_otlp_fetch_metrics(FpMetricPoint **points)
{
	FpAttributionCounters *c = &fp_attribution_shared->counters;
	int64		now_ns = unix_nanos(GetCurrentTimestamp());
	int64		start_ns = unix_nanos(c->reset_time);
	FpMetricPoint *p = palloc0(sizeof(FpMetricPoint) * 2);

	counter(&p[0], "fp.traceparent.invalid",
			"Malformed traceparent values ignored (W3C: start a new trace).",
			pg_atomic_read_u64(&c->invalid_traceparents), start_ns, now_ns);
	counter(&p[1], "fp.tracestate.invalid",
			"Malformed tracestate values dropped.",
			pg_atomic_read_u64(&c->invalid_tracestates), start_ns, now_ns);
	*points = p;
	return 2;
}

/*
 * Copy up to max spans that have not been exported yet into *spans and
 * advance the export cursor; returns how many.
 */
int
fp_attribution_otlp_fetch_spans(FpSpanRecord **spans, int max)
{
	*spans = NULL;
	return 0;
}

/*
 * Copy up to max log records that have not been exported yet into *logs
 * and advance the export cursor; returns how many.
 */
int
fp_attribution_otlp_fetch_logs(FpLogRecord **logs, int max)
{
	*logs = NULL;
	return 0;
}
