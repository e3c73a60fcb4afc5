/*-------------------------------------------------------------------------
 *
 * otlp.h
 *	  The OTLP exporter: settings, HTTP/gRPC transport, encoders, exporter
 *	  status in shared memory and the background worker.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_OTLP_H
#define FP_ATTRIBUTION_OTLP_H

#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "port/atomics.h"
#include "storage/spin.h"

#include "fp_attribution/telemetry.h"

/* The three OTLP signals; also the rows of attribution.exporter_status */
typedef enum FpOtlpSignal
{
	FP_OTLP_TRACES,
	FP_OTLP_METRICS,
	FP_OTLP_LOGS,
	FP_OTLP_NSIGNALS
} FpOtlpSignal;

/* A per-signal enum setting left to the general one */
#define FP_OTLP_INHERIT (-1)

typedef enum FpOtlpProtocol
{
	FP_OTLP_HTTP_PROTOBUF,
	FP_OTLP_HTTP_JSON,
	FP_OTLP_GRPC
} FpOtlpProtocol;

typedef enum FpOtlpCompression
{
	FP_OTLP_COMPRESSION_NONE,
	FP_OTLP_COMPRESSION_GZIP
} FpOtlpCompression;

/* Settings (otlp_settings.c); PGC_SIGHUP, read by the worker */
extern bool fp_attribution_otlp_enabled;
extern char *fp_attribution_otlp_endpoint;
extern char *fp_attribution_otlp_headers;
extern char *fp_attribution_otlp_certificate;
extern char *fp_attribution_otlp_client_key;
extern char *fp_attribution_otlp_client_certificate;
extern int	fp_attribution_otlp_protocol;
extern int	fp_attribution_otlp_compression;
extern int	fp_attribution_otlp_timeout_ms;
extern int	fp_attribution_otlp_batch_size;
extern int	fp_attribution_otlp_workers;
extern int	fp_attribution_otlp_schedule_delay_ms;
extern int	fp_attribution_otlp_metric_interval_ms;
extern char *fp_attribution_otlp_service_name;
extern char *fp_attribution_otlp_resource_attributes;
extern char *fp_attribution_otlp_environment;
extern char *fp_attribution_otlp_gcp_project;
extern char *fp_attribution_otlp_database;

/*
 * One signal's own settings, fp_attribution.otlp_<signal>_*: empty strings,
 * FP_OTLP_INHERIT or a 0 timeout leave it to the general setting.
 */
typedef struct FpOtlpSignalSettings
{
	char	   *endpoint;
	char	   *headers;
	int			protocol;
	int			compression;
	int			timeout_ms;
	char	   *certificate;
	char	   *client_key;
	char	   *client_certificate;
} FpOtlpSignalSettings;

extern FpOtlpSignalSettings fp_attribution_otlp_signal[FP_OTLP_NSIGNALS];

extern const char *const fp_attribution_otlp_signal_names[FP_OTLP_NSIGNALS];

/* Where and how one signal is sent: per-signal settings over general ones */
typedef struct FpOtlpTarget
{
	char	   *url;			/* palloc'd */
	int			protocol;
	int			compression;
	const char *headers;
	const char *certificate;	/* "" for the system's CAs */
	const char *client_key;		/* "" for no client certificate */
	const char *client_certificate;
} FpOtlpTarget;

/* One "key=value" of a header or resource attribute list */
typedef struct FpOtlpPair
{
	char	   *key;
	char	   *value;
} FpOtlpPair;

extern void fp_attribution_otlp_define_gucs(void);
extern bool fp_attribution_otlp_parse_pairs(const char *list, List **pairs,
											const char **error);
extern void fp_attribution_otlp_target(FpOtlpSignal signal, FpOtlpTarget *target);
extern int	fp_attribution_otlp_signal_protocol(FpOtlpSignal signal);
extern int	fp_attribution_otlp_signal_timeout(FpOtlpSignal signal);

/*
 * Record sources (otlp_source.c): copies of the telemetry core's records
 * (telemetry.h); spans and logs packed as in the rings, in buffers owned
 * by otlp_source.c, valid until the next fetch of the signal, metrics
 * palloc'd in the caller's memory context.
 */
extern int	fp_attribution_otlp_worker_number;
extern int	fp_attribution_otlp_fetch_packed(FpOtlpSignal signal,
											 char **records, int max);
extern void fp_attribution_otlp_release_batch(FpOtlpSignal signal);
extern bool fp_attribution_otlp_backlog(FpOtlpSignal signal, int n);
extern bool fp_attribution_otlp_await_batch(FpOtlpSignal signal, bool waiting);
extern int	fp_attribution_otlp_fetch_metrics(FpMetricPoint **points);

/* Encoders (otlp_encode.c, otlp_json.c, otlp_protobuf.c) */
/* The instrumentation scope's name (its version: FP_ATTRIBUTION_VERSION) */
#define FP_OTLP_SCOPE_NAME "fp_attribution"

/*
 * The semantic-conventions release whose attribute names and meanings the
 * records follow (every name checked against it; doc/export.md).
 */
#define FP_OTLP_SCHEMA_URL "https://opentelemetry.io/schemas/1.45.0"

/*
 * OTLP SpanFlags: the low byte is the W3C trace flags; bit 8 says that
 * bit 9 is known, bit 9 that the parent span is remote.  We always know.
 */
#define SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE 0x100
#define SPAN_FLAGS_CONTEXT_IS_REMOTE 0x200

extern List *fp_attribution_otlp_resource_pairs(void);
extern StringInfo fp_attribution_otlp_encode_spans(const char *packed, int n);
extern StringInfo fp_attribution_otlp_encode_logs(const char *packed, int n);
extern StringInfo fp_attribution_otlp_encode_metrics(const FpMetricPoint *points, int n);
extern void fp_attribution_otlp_json(StringInfo out, const void *message);
extern StringInfo fp_attribution_otlp_json_spans(const char *packed, int n);
extern StringInfo fp_attribution_otlp_json_logs(const char *packed, int n);
extern StringInfo fp_attribution_otlp_protobuf_spans(const char *packed, int n);
extern StringInfo fp_attribution_otlp_protobuf_logs(const char *packed, int n);

/* Transport (otlp_http.c): one request in flight per signal, concurrently */
typedef enum FpOtlpOutcome
{
	FP_OTLP_SENT,				/* accepted, perhaps partially */
	FP_OTLP_RETRYABLE,			/* 429/502/503/504, gRPC UNAVAILABLE..., no
								 * connection */
	FP_OTLP_PERMANENT			/* anything else: drop, never retry */
} FpOtlpOutcome;

typedef struct FpOtlpResult
{
	FpOtlpOutcome outcome;
	int			retry_after_ms; /* from Retry-After, or -1 */
	int64		rejected;		/* partial_success count */
	char		error[256];		/* why it failed, or the partial message */
	double		elapsed_ms;
} FpOtlpResult;

extern void fp_attribution_otlp_start(FpOtlpSignal signal, const StringInfo body,
									  int timeout_ms);
extern bool fp_attribution_otlp_take_result(FpOtlpSignal signal,
											FpOtlpResult *result);
extern void fp_attribution_otlp_cancel(FpOtlpSignal signal);
extern void fp_attribution_otlp_wait(long timeout_ms, uint32 wait_event_info);
extern void fp_attribution_otlp_http_reset(void);

/* gRPC RetryInfo (otlp_grpc_status.c) */
extern int	fp_attribution_grpc_retry_delay_ms(const char *b64, size_t len);

/* Exporter status in shared memory (otlp_status.c) */
typedef struct FpOtlpSignalStatus
{
	pg_atomic_uint64 sent;		/* records the collector accepted */
	pg_atomic_uint64 failed;	/* requests given up on */
	pg_atomic_uint64 retried;	/* attempts that were retried */
	pg_atomic_uint64 dropped;	/* records dropped by the exporter */
	pg_atomic_uint64 rejected;	/* records rejected by partial success */
	pg_atomic_uint64 requests;	/* HTTP/gRPC requests made */
	pg_atomic_uint64 request_us;	/* their total duration */
	slock_t		mutex;			/* protects the three fields below */
	char		last_error[256];
	TimestampTz last_error_time;
	TimestampTz last_success_time;
} FpOtlpSignalStatus;

/*
 * A batch of spans or logs that an exporter worker claimed and has not yet
 * accounted for (otlp_source.c): positions start .. end - 1.
 */
typedef struct FpOtlpClaim
{
	uint64		start;			/* first record not lost before the copy */
	uint64		end;			/* after the last; 0: no batch claimed */
} FpOtlpClaim;

typedef struct FpOtlpStatus
{
	FpOtlpSignalStatus signal[FP_OTLP_NSIGNALS];
	/* spans and logs (metrics unused): records below were claimed */
	pg_atomic_uint64 claimed[FP_OTLP_NSIGNALS];
	/* each worker's batch in hand, written by that worker only */
	FpOtlpClaim claims[FP_TELEMETRY_MAX_EXPORTERS][FP_OTLP_NSIGNALS];
} FpOtlpStatus;

extern FpOtlpStatus *fp_attribution_otlp_status;

extern Size fp_attribution_otlp_status_size(void);
extern void fp_attribution_otlp_status_init(void);
extern void fp_attribution_otlp_status_error(FpOtlpSignal signal,
											 const char *error);
extern void fp_attribution_otlp_status_success(FpOtlpSignal signal,
											   uint64 records);

/* Worker (worker.c) */

#endif							/* FP_ATTRIBUTION_OTLP_H */
