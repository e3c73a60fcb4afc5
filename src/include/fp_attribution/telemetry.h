/*-------------------------------------------------------------------------
 *
 * telemetry.h
 *	  Spans, log records and metric points kept in shared memory, and the
 *	  API through which the SQL views and the OTLP exporter read them.
 *
 * This header is the contract between the telemetry core (telemetry.c,
 * which records) and its consumers (the SQL views and the OTLP exporter).
 * Changes to it are additive only.
 *
 * Records are shaped like their OTLP messages so that encoding is a field
 * by field copy:
 *
 *	- ids are raw bytes (16-byte trace id, 8-byte span id), an all-zero
 *	  parent span id means "root span" and is encoded as an empty field;
 *	- times are nanoseconds since the Unix epoch (OTLP fixed64
 *	  *_time_unix_nano);
 *	- enums carry the OTLP numeric values (SpanKind, Status.StatusCode,
 *	  SeverityNumber, AggregationTemporality);
 *	- attributes are typed key/value pairs with inline, bounded storage
 *	  (strings are UTF-8 whatever the database encoding, NUL-terminated and
 *	  truncated on a character boundary), so a record contains no pointers
 *	  and can be copied as is;
 *	- a span carries its events (the exception event on failure) with
 *	  their own time and attributes.
 *
 * Buffers: spans and log records each live in a ring of fixed capacity
 * (fp_attribution.max_spans, fp_attribution.max_logs; restart only).
 * Every record has a position: a 64-bit number, starting at 1, that
 * increases by one per record and never wraps or repeats, not even after
 * a reset.  The ring keeps the newest "capacity" records; a writer never
 * blocks or fails when it is full: the oldest record is overwritten, and
 * it is counted as dropped if no consumer had copied it yet.
 *
 * The SQL views read with a cursor: the position of the next record they
 * want (start with 0 or 1), copying under the ring's lock held in shared
 * mode for the duration of the copy only.  The exporter workers claim
 * batches instead: fp_attribution_telemetry_claim_packed() moves a claim
 * position shared by all of them (an atomic the exporter owns) past up to
 * "max" records and copies them into the caller's buffer, in one shared
 * acquisition of the lock, as they are packed in the ring (read them with
 * the views below, without unpacking), so several workers never copy the
 * same record; fp_attribution_telemetry_copy_packed() copies a claimed
 * batch again (a restarted worker resends its predecessor's).  Records of
 * a batch that were overwritten before the copy were lost to the
 * exporter: *lost receives their number, so it can add them to its own
 * "dropped before export" count with
 * fp_attribution_telemetry_count_export_drops().  Encode and send after
 * the copy, with no lock held.

 * Metrics are cumulative since start_time_unix_nano (set at server start
 * and by attribution.reset_telemetry('metrics')).  They are read as a
 * snapshot of points, one per series, with
 * fp_attribution_telemetry_collect_metrics(); no lock is held after it
 * returns.  The gauge affiliate.windows.active is not in shared memory: it
 * is a query (attribution.windows_active()), so
 * fp_attribution_telemetry_windows_active_point() needs a transaction in a
 * database where the extension is installed.
 *
 * Waking the exporter: each exporter worker stores its latch with
 * fp_attribution_telemetry_set_exporter_latch(worker, MyLatch) at start
 * (and NULL before exit).  A worker about to sleep without a batch of a
 * signal in hand calls fp_attribution_telemetry_await_batch(signal,
 * worker, batch size), and fp_attribution_telemetry_awake() when it wakes;
 * a backend whose push leaves a full batch uncopied while a worker awaits
 * one sets the latches, so a full batch is exported as soon as it is
 * queued.  At most FP_TELEMETRY_MAX_EXPORTERS workers.

 * Without shared_preload_libraries there is no shared memory: recording is
 * silently skipped, fp_attribution_telemetry_available() is false, and the
 * consumer functions raise the standard "must be loaded via
 * shared_preload_libraries" error.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_TELEMETRY_H
#define FP_ATTRIBUTION_TELEMETRY_H

#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/latch.h"

#include "fp_attribution/clock.h"
#include "fp_attribution/ids.h"
#include "fp_attribution/traceparent.h"

/* Bounds of the inline storage; longer strings are truncated */
#define FP_ATTR_KEY_LEN			32	/* key, including the NUL */
#define FP_ATTR_VALUE_LEN		128 /* string value, including the NUL */
#define FP_SPAN_NAME_LEN		64
#define FP_SPAN_MAX_ATTRS		16
#define FP_SPAN_MAX_EVENTS		2
#define FP_EVENT_NAME_LEN		32
#define FP_EVENT_MAX_ATTRS		4
#define FP_STATUS_MESSAGE_LEN	128
#define FP_LOG_BODY_LEN			256
#define FP_LOG_EVENT_NAME_LEN	48
#define FP_LOG_MAX_ATTRS		12
#define FP_METRIC_NAME_LEN		48
#define FP_METRIC_DESC_LEN		128
#define FP_METRIC_UNIT_LEN		16
#define FP_METRIC_MAX_ATTRS		2
#define FP_HISTOGRAM_MAX_BOUNDS 24

/* AnyValue variant of an attribute */
typedef enum FpAttrType
{
	FP_ATTR_STRING = 1,			/* value.str */
	FP_ATTR_BOOL = 2,			/* value.b */
	FP_ATTR_INT = 3,			/* value.i */
	FP_ATTR_DOUBLE = 4			/* value.d */
} FpAttrType;

/* opentelemetry.proto.common.v1.KeyValue */
typedef struct FpAttribute
{
	char		key[FP_ATTR_KEY_LEN];
	uint8		type;			/* FpAttrType */
	union
	{
		char		str[FP_ATTR_VALUE_LEN];
		bool		b;
		int64		i;
		double		d;
	}			value;
} FpAttribute;

/* opentelemetry.proto.trace.v1.Span.SpanKind */
typedef enum FpSpanKind
{
	FP_SPAN_KIND_UNSPECIFIED = 0,
	FP_SPAN_KIND_INTERNAL = 1,
	FP_SPAN_KIND_SERVER = 2,
	FP_SPAN_KIND_CLIENT = 3,
	FP_SPAN_KIND_PRODUCER = 4,
	FP_SPAN_KIND_CONSUMER = 5
} FpSpanKind;

/* opentelemetry.proto.trace.v1.Status.StatusCode */
typedef enum FpStatusCode
{
	FP_STATUS_UNSET = 0,
	FP_STATUS_OK = 1,
	FP_STATUS_ERROR = 2
} FpStatusCode;

/* opentelemetry.proto.trace.v1.Span.Event */
typedef struct FpSpanEvent
{
	char		name[FP_EVENT_NAME_LEN];
	int64		time_unix_nano;
	int			n_attrs;
	FpAttribute attrs[FP_EVENT_MAX_ATTRS];
} FpSpanEvent;

/*
 * opentelemetry.proto.trace.v1.Span.  Only the first n_attrs entries of
 * attrs and n_events of events are defined; copies may omit the rest (see
 * FP_SPAN_RECORD_SIZE).  flags holds the W3C trace flags of the span's
 * context (bit 0 = sampled; recorded spans are always sampled).
 * parent_is_remote: the parent span came from another process (a
 * traceparent), not from this backend; false for a root.
 */
typedef struct FpSpanRecord
{
	FpTraceId	trace_id;
	FpSpanId	span_id;
	FpSpanId	parent_span_id; /* all zero: root span, empty in OTLP */
	uint8		flags;
	uint8		kind;			/* FpSpanKind */
	uint8		status_code;	/* FpStatusCode */
	bool		parent_is_remote;
	char		name[FP_SPAN_NAME_LEN];
	int64		start_time_unix_nano;
	int64		end_time_unix_nano;
	char		status_message[FP_STATUS_MESSAGE_LEN];	/* "" unless ERROR */
	char		trace_state[FP_TRACESTATE_MAX_LEN + 1]; /* W3C tracestate */
	uint32		dropped_attributes_count;
	int			n_events;
	FpSpanEvent events[FP_SPAN_MAX_EVENTS];
	int			n_attrs;
	FpAttribute attrs[FP_SPAN_MAX_ATTRS];	/* keep last */
} FpSpanRecord;

/* Bytes of a span record that hold data: everything up to its last attribute */
#define FP_SPAN_RECORD_SIZE(n_attrs) \
	(offsetof(FpSpanRecord, attrs) + (n_attrs) * sizeof(FpAttribute))

/*
 * An attribute as the consumers read it, from a packed record
 * (fp_attribution_telemetry_attr_view) or an FpAttribute
 * (fp_attribution_attr_view_of): key and string value NUL-terminated,
 * with their lengths.
 */
typedef struct FpAttrView
{
	const char *key;
	int			key_len;
	uint8		type;			/* FpAttrType */
	const char *str;			/* FP_ATTR_STRING */
	int			str_len;
	bool		b;				/* FP_ATTR_BOOL */
	int64		i;				/* FP_ATTR_INT */
	double		d;				/* FP_ATTR_DOUBLE */
} FpAttrView;

static inline void
fp_attribution_attr_view_of(const FpAttribute *a, FpAttrView *v)
{
	v->key = a->key;
	v->key_len = strlen(a->key);
	v->type = a->type;
	v->str = a->value.str;
	v->str_len = a->type == FP_ATTR_STRING ? strlen(a->value.str) : 0;
	v->b = a->value.b;
	v->i = a->value.i;
	v->d = a->value.d;
}

/*
 * A packed span (as the ring and the exporter's copy hold it), read in
 * place: head gives the fields before trace_state, the rest are here;
 * attrs are n_attrs packed attributes, read one after the other with
 * fp_attribution_telemetry_attr_view.
 */
typedef struct FpSpanView
{
	const FpSpanRecord *head;
	const char *trace_state;
	uint32		dropped_attributes_count;
	int			n_events;
	const FpSpanEvent *events;
	int			n_attrs;
	const char *attrs;
} FpSpanView;

/* opentelemetry.proto.logs.v1.SeverityNumber, the values we use */
typedef enum FpSeverity
{
	FP_SEVERITY_DEBUG = 5,
	FP_SEVERITY_INFO = 9,
	FP_SEVERITY_WARN = 13,
	FP_SEVERITY_ERROR = 17
} FpSeverity;

/*
 * opentelemetry.proto.logs.v1.LogRecord.  trace_id and span_id are all
 * zero when the record belongs to no span (encode as empty); flags are the
 * W3C trace flags.  severity_text is the OTel short name ("INFO", ...).
 * event_name is LogRecord.event_name (field 12, e.g. "fp.click.tracked").
 */
typedef struct FpLogRecord
{
	int64		time_unix_nano;
	int64		observed_time_unix_nano;
	uint8		severity_number;	/* FpSeverity */
	char		severity_text[8];
	char		event_name[FP_LOG_EVENT_NAME_LEN];
	char		body[FP_LOG_BODY_LEN];
	FpTraceId	trace_id;
	FpSpanId	span_id;
	uint8		flags;
	uint32		dropped_attributes_count;
	int			n_attrs;
	FpAttribute attrs[FP_LOG_MAX_ATTRS];	/* keep last */
} FpLogRecord;

#define FP_LOG_RECORD_SIZE(n_attrs) \
	(offsetof(FpLogRecord, attrs) + (n_attrs) * sizeof(FpAttribute))

/*
 * A packed log record, read in place: head gives the fields before attrs,
 * attrs its n_attrs packed attributes (see FpSpanView).
 */
typedef struct FpLogView
{
	const FpLogRecord *head;
	int			n_attrs;
	const char *attrs;
} FpLogView;

/* Which OTLP Metric.data a point belongs to */
typedef enum FpMetricKind
{
	FP_METRIC_SUM = 1,			/* Sum, integer or double data point */
	FP_METRIC_GAUGE = 2,		/* Gauge */
	FP_METRIC_HISTOGRAM = 3		/* Histogram with explicit bounds */
} FpMetricKind;

/* opentelemetry.proto.metrics.v1.AggregationTemporality */
#define FP_TEMPORALITY_CUMULATIVE 2

/*
 * One data point of one metric: a Metric with a single NumberDataPoint or
 * HistogramDataPoint.  Points of the same name are series of one metric
 * (they differ in attributes) and should be grouped under one Metric.
 * Sums and gauges use value_int unless value_is_double.  Histograms have
 * n_bounds explicit_bounds and n_bounds + 1 bucket_counts (the last is the
 * +Inf bucket); count and sum as in HistogramDataPoint.
 */
/*
 * One measurement of a latency histogram and the span it was measured in,
 * exported as an OTLP exemplar; time_unix_nano 0 means none.
 */
typedef struct FpExemplar
{
	int64		time_unix_nano;
	double		value;			/* seconds */
	FpTraceId	trace_id;
	FpSpanId	span_id;
} FpExemplar;

typedef struct FpMetricPoint
{
	char		name[FP_METRIC_NAME_LEN];
	char		description[FP_METRIC_DESC_LEN];
	char		unit[FP_METRIC_UNIT_LEN];	/* UCUM, e.g. "s", "{click}" */
	uint8		kind;			/* FpMetricKind */
	bool		is_monotonic;	/* sums only */
	uint8		temporality;	/* FP_TEMPORALITY_CUMULATIVE */
	bool		value_is_double;
	int64		start_time_unix_nano;
	int64		time_unix_nano;
	int			n_attrs;
	FpAttribute attrs[FP_METRIC_MAX_ATTRS];
	int64		value_int;
	double		value_double;
	uint64		count;
	double		sum;
	FpExemplar	exemplar;		/* histograms: the latest, or none */
	int			n_bounds;
	double		explicit_bounds[FP_HISTOGRAM_MAX_BOUNDS];
	uint64		bucket_counts[FP_HISTOGRAM_MAX_BOUNDS + 1];
} FpMetricPoint;

/* Signals, for counters kept per signal */
typedef enum FpSignal
{
	FP_SIGNAL_SPANS = 0,
	FP_SIGNAL_LOGS = 1,
	FP_SIGNAL_METRICS = 2
} FpSignal;

#define FP_SIGNAL_COUNT 3

/* Exporter workers that may consume the rings together */
#define FP_TELEMETRY_MAX_EXPORTERS 8

/* Settings (telemetry.c) */
extern bool fp_attribution_telemetry_enabled;
extern int	fp_attribution_max_spans;
extern int	fp_attribution_max_logs;
extern int	fp_attribution_max_affiliate_series;

/* Module plumbing, called from fp_attribution.c and shmem.c */
extern void fp_attribution_telemetry_define_gucs(void);
extern void fp_attribution_telemetry_install_hooks(void);
extern void fp_attribution_telemetry_shmem_request(void);
extern void fp_attribution_telemetry_shmem_init(void);

/* Consumer API; see the file banner for the protocol */
extern bool fp_attribution_telemetry_available(void);
extern int	fp_attribution_telemetry_claim_packed(FpSignal signal,
												  pg_atomic_uint64 *claimed,
												  char *out, int max,
												  uint64 *start, uint64 *end,
												  uint64 *lost);
extern int	fp_attribution_telemetry_copy_packed(FpSignal signal, uint64 start,
												 uint64 end, char *out,
												 uint64 *lost);
extern Size fp_attribution_telemetry_packed_max(FpSignal signal);
extern const char *fp_attribution_telemetry_span_view(const char *packed,
													  FpSpanView *view);
extern const char *fp_attribution_telemetry_log_view(const char *packed,
													 FpLogView *view);
extern const char *fp_attribution_telemetry_attr_view(const char *packed,
													  FpAttrView *attr);

/* Position of the next record to be written (head of the ring) */
extern uint64 fp_attribution_telemetry_head(FpSignal signal);
extern int	fp_attribution_telemetry_max_metric_points(void);
extern int	fp_attribution_telemetry_collect_metrics(FpMetricPoint *out,
													 int max);
extern bool fp_attribution_telemetry_windows_active_point(FpMetricPoint *out);
extern void fp_attribution_telemetry_count_export_drops(FpSignal signal,
														uint64 n);
extern void fp_attribution_telemetry_set_exporter_latch(int worker,
													   Latch *latch);
extern void fp_attribution_telemetry_wake_other_exporters(void);
extern bool fp_attribution_telemetry_await_batch(FpSignal signal, int worker,
												 int batch);
extern void fp_attribution_telemetry_awake(FpSignal signal, int worker);

#endif							/* FP_ATTRIBUTION_TELEMETRY_H */
