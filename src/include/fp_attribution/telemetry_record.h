/*-------------------------------------------------------------------------
 *
 * telemetry_record.h
 *	  The producer side of the telemetry core: what a backend calls, at
 *	  transaction end, to hand its spans, log records and metric
 *	  increments to shared memory (telemetry.c), and the helpers that fill
 *	  records (telemetry_attr.c).  Consumers use telemetry.h only.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_TELEMETRY_RECORD_H
#define FP_ATTRIBUTION_TELEMETRY_RECORD_H

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"

#include "fp_attribution/telemetry.h"
#include "fp_attribution/trace_context.h"

/* The commands, as the attribute fp.command.name of commands.* */
typedef enum FpCommandKind
{
	FP_COMMAND_UNKNOWN = 0,		/* context resolved, nothing written yet */
	FP_COMMAND_TRACK_CLICK,
	FP_COMMAND_TRACK_CONVERSION,
	FP_COMMAND_APPROVE_CONVERSION,
	FP_COMMAND_REJECT_CONVERSION,
	FP_COMMAND_REVERSE_CONVERSION,
	FP_COMMAND_REFUND_CONVERSION,
	FP_COMMAND_KINDS
} FpCommandKind;

/*
 * The business metrics of the conversion lifecycle (lifecycle.c,
 * fraud_rules.c): plain counters, or sums of minor units per currency, or
 * hits per fraud rule
 */
typedef enum FpLifecycleMetric
{
	FP_LIFECYCLE_APPROVED,		/* affiliate.conversions.approved */
	FP_LIFECYCLE_REJECTED,		/* affiliate.conversions.rejected */
	FP_LIFECYCLE_REVERSED,		/* affiliate.conversions.reversed */
	FP_LIFECYCLE_REFUNDS_CENTS, /* affiliate.refunds.cents, per currency */
	FP_LIFECYCLE_COMMISSION_CENTS,	/* affiliate.commission.cents, per
									 * currency */
	FP_LIFECYCLE_RULE_HITS,		/* affiliate.fraud_rule.hits, per fp.rule */
	FP_LIFECYCLE_METRICS
} FpLifecycleMetric;

/*
 * Samples of a latency histogram tallied in backend-local memory, added to
 * shared memory in one go (NULL key of a series: its overflow series).
 */
typedef struct FpLatencyTally
{
	uint64		count;
	uint64		sum;			/* nanoseconds (commands), milliseconds */
	uint64		buckets[FP_HISTOGRAM_MAX_BOUNDS + 1];
	FpExemplar	exemplar;		/* the latest of a recorded span, or none */
} FpLatencyTally;

/* What a postback attempt counts in postbacks.sent / .failed / .retried */
typedef enum FpPostbackMetric
{
	FP_POSTBACK_METRIC_SENT = 0,
	FP_POSTBACK_METRIC_FAILED,
	FP_POSTBACK_METRIC_RETRIED,
	FP_POSTBACK_OUTCOMES
} FpPostbackMetric;

extern bool fp_attribution_log_json;
extern bool fp_attribution_log_client_ip;
extern int	fp_attribution_max_pending_telemetry;	/* kB */

/* telemetry.c: shared memory, called with no lock held */
extern void fp_attribution_telemetry_push_spans(FpSpanRecord *const *spans,
												int n);
extern void fp_attribution_telemetry_push_logs(FpLogRecord *const *logs,
											   int n);
extern void fp_attribution_telemetry_count_drops(FpSignal signal, uint64 n);
extern bool fp_attribution_telemetry_logs_lock_held(void);
extern void fp_attribution_telemetry_count_commands(FpCommandKind kind,
													const FpLatencyTally *latency,
													bool failed);
extern void fp_attribution_telemetry_count_clicks(const char *affiliate_id,
												  uint64 n);
extern void fp_attribution_telemetry_count_conversions(const char *currency,
													   uint64 n,
													   int64 revenue_cents,
													   const FpLatencyTally *latency);
extern void fp_attribution_telemetry_count_receipts(uint64 n);
extern void fp_attribution_telemetry_count_postback(FpPostbackMetric outcome,
													double latency_ms);
extern void fp_attribution_telemetry_count_lifecycle(FpLifecycleMetric metric,
													 const char *key,
													 uint64 value);
extern void fp_attribution_telemetry_tally_exemplar(FpLatencyTally *t,
													int64 time_unix_nano,
													double seconds,
													const FpTraceId *trace_id,
													const FpSpanId *span_id);
extern void fp_attribution_telemetry_merge_tally(FpLatencyTally *dst,
												 const FpLatencyTally *src);
extern void fp_attribution_telemetry_park_begin(const char *gid);
extern void fp_attribution_telemetry_park_end(void);
extern void fp_attribution_telemetry_finish_prepared(const char *gid,
													 bool commit);
extern void fp_attribution_telemetry_tally_command(FpLatencyTally *t,
												   int64 duration_ns);
extern void fp_attribution_telemetry_tally_conversion(FpLatencyTally *t,
													  int64 latency_ms);
extern const char *fp_attribution_command_name(FpCommandKind kind);

/* telemetry.c: for the SQL functions (raise the not-preloaded error) */
extern int	fp_attribution_telemetry_peek_spans(uint64 *cursor,
												FpSpanRecord *out, int max);
extern int	fp_attribution_telemetry_peek_logs(uint64 *cursor,
											   FpLogRecord *out, int max);
extern void fp_attribution_telemetry_buffer_state(FpSignal signal,
												  int64 *out);
extern void fp_attribution_telemetry_reset(FpSignal signal);

/*
 * telemetry_pending.c: called while commands run; begin_command is
 * fp_attribution_command_begun_hook
 */
extern void fp_attribution_telemetry_begin_command(const FpCommandContext *ctx);
extern bool fp_attribution_telemetry_current_command(FpTraceId *trace_id,
													 FpSpanId *span_id,
													 uint8 *flags);
extern void fp_attribution_telemetry_name_command(FpCommandKind kind,
												  const char *order_id);
extern void fp_attribution_telemetry_tally_lifecycle(FpLifecycleMetric metric,
													 const char *key,
													 uint64 value);
extern void fp_attribution_telemetry_rule_hit(const char *rule,
											  const char *order_id);

/* telemetry_attr.c: filling records, and their JSON form */
extern void fp_attribution_span_init(FpSpanRecord *span, const char *name,
									 FpSpanKind kind);
extern void fp_attribution_log_init(FpLogRecord *log, FpSeverity severity,
									const char *event_name, int64 time,
									const FpTraceId *trace_id,
									const FpSpanId *span_id, uint8 flags);
extern void fp_attribution_attr_str(FpAttribute *attr, const char *value);
extern void fp_attribution_attr_int(FpAttribute *attr, int64 value);
extern void fp_attribution_attr_bool(FpAttribute *attr, bool value);
extern void fp_attribution_attr_double(FpAttribute *attr, double value);
extern void fp_attribution_copy_text(char *dst, const char *src, Size size);
extern void fp_attribution_attrs_json(StringInfo buf, const FpAttribute *attrs,
									  int n);
extern void fp_attribution_span_events_json(StringInfo buf,
											const FpSpanRecord *span);
extern void fp_attribution_log_json_line(StringInfo buf,
										 const FpLogRecord *log);

/*
 * The helpers every attribute goes through, inline: a command fills some
 * sixty attributes, and inlined, the length of a literal key or value is
 * known at compile time.
 */

/* Where attributes beyond a record's capacity go; never read */
extern FpAttribute fp_attribution_overflow_attr;

/*
 * Copy an ASCII name (a key, a span or event name: always one of ours)
 * into a buffer of size bytes.
 */
static inline void
fp_attribution_copy_name(char *dst, const char *src, Size size)
{
	Size		len = strlen(src);

	if (len >= size)
		len = size - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

/*
 * Copy UTF-8 text src into dst of size bytes, truncated on a character
 * boundary and always NUL-terminated.
 */
static inline void
fp_attribution_copy_utf8(char *dst, const char *src, Size size)
{
	int			len = strlen(src);

	if (len >= size)
		len = pg_encoding_mbcliplen(PG_UTF8, src, len, size - 1);
	memcpy(dst, src, len);
	dst[len] = '\0';
}

/*
 * The next free attribute of attrs (*n used of max) with its key set; the
 * caller sets the value.  Past the capacity the attribute is counted in
 * *dropped and the value goes nowhere.
 */
static inline FpAttribute *
fp_attribution_next_attr(FpAttribute *attrs, int *n, int max,
						 uint32 *dropped, const char *key)
{
	FpAttribute *a;

	if (*n >= max)
	{
		(*dropped)++;
		return &fp_attribution_overflow_attr;
	}
	a = &attrs[(*n)++];
	fp_attribution_copy_name(a->key, key, FP_ATTR_KEY_LEN);
	return a;
}

/* The next free attribute of a span, key set (see above) */
static inline FpAttribute *
fp_attribution_span_attr(FpSpanRecord *span, const char *key)
{
	return fp_attribution_next_attr(span->attrs, &span->n_attrs,
									FP_SPAN_MAX_ATTRS,
									&span->dropped_attributes_count, key);
}

/* The next free attribute of a log record, key set (see above) */
static inline FpAttribute *
fp_attribution_log_attr(FpLogRecord *log, const char *key)
{
	return fp_attribution_next_attr(log->attrs, &log->n_attrs,
									FP_LOG_MAX_ATTRS,
									&log->dropped_attributes_count, key);
}

/* A string attribute from UTF-8 text (ours, or converted before) */
static inline void
fp_attribution_attr_utf8(FpAttribute *attr, const char *value)
{
	attr->type = FP_ATTR_STRING;
	fp_attribution_copy_utf8(attr->value.str, value, FP_ATTR_VALUE_LEN);
}

/*
 * Longest JSON line of a log record: every byte of its strings escaped as
 * \u00XX (6 bytes), plus the fixed keys, ids and numbers.
 */
#define FP_LOG_JSON_LINE_MAX \
	(6 * (FP_LOG_BODY_LEN + FP_LOG_EVENT_NAME_LEN + \
		  FP_LOG_MAX_ATTRS * (FP_ATTR_KEY_LEN + FP_ATTR_VALUE_LEN + 8)) + 512)

#endif							/* FP_ATTRIBUTION_TELEMETRY_RECORD_H */
