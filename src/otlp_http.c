/*-------------------------------------------------------------------------
 *
 * otlp_http.c
 *	  Send one encoded OTLP request over HTTP/1.1, HTTP/2 or gRPC with
 *	  libcurl, and classify the answer by the OTLP exporter rules.
 *
 * One libcurl easy handle is kept for the worker's lifetime so connections
 * are reused.  Bodies are gzip-compressed with zlib when asked (libcurl
 * only decompresses).  gRPC is the same protobuf body with a 5-byte
 * length prefix, sent over HTTP/2 (prior knowledge for http://, ALPN for
 * https://); its status arrives in the grpc-status trailer, which libcurl
 * hands to the header callback.
 *
 * Outcome rules (OTLP specification, "Failures"): HTTP 429, 502, 503, 504,
 * the retryable gRPC codes and connection failures or timeouts may be
 * retried, honouring Retry-After; anything else is permanent.  A success
 * may carry partial_success, whose rejected count is reported.
 *
 * Only the worker calls this; nothing here touches shared memory, so there
 * is no lock protocol.  Response bodies are read into the caller's memory
 * context and bounded in size.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>
#include <zlib.h>

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "portability/instr_time.h"
#include "postmaster/interrupt.h"

#include "fp_attribution/compat.h"
#include "fp_attribution/otlp.h"
#include "logs_service.pb-c.h"
#include "metrics_service.pb-c.h"
#include "trace_service.pb-c.h"

/* Longest response body we keep; partial_success is all we read */
#define MAX_RESPONSE_BYTES (64 * 1024)

static CURL *curl = NULL;

/* What the header and body callbacks collect for one request */
typedef struct Response
{
	StringInfoData body;
	int			retry_after_ms;
	int			grpc_status;	/* -1 until a grpc-status trailer arrives */
	char		grpc_message[128];
} Response;

/* gRPC codes the OTLP specification lists as retryable */
static bool
grpc_retryable(int code)
{
	switch (code)
	{
		case 1:					/* CANCELLED */
		case 4:					/* DEADLINE_EXCEEDED */
		case 10:				/* ABORTED */
		case 11:				/* OUT_OF_RANGE */
		case 14:				/* UNAVAILABLE */
		case 15:				/* DATA_LOSS */
			return true;
		default:
			return false;
	}
}

/* libcurl write callback: keep at most MAX_RESPONSE_BYTES of the body */
static size_t
on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	Response   *r = (Response *) arg;
	size_t		n = size * nmemb;

	if (r->body.len < MAX_RESPONSE_BYTES)
		appendBinaryStringInfo(&r->body, data,
							   Min(n, (size_t) (MAX_RESPONSE_BYTES - r->body.len)));
	return n;
}

/* Does header line h (of length n) start with name, case-insensitively? */
static const char *
header_value(const char *h, size_t n, const char *name)
{
	size_t		len = strlen(name);

	if (n <= len || pg_strncasecmp(h, name, len) != 0 || h[len] != ':')
		return NULL;
	h += len + 1;
	while (*h == ' ' || *h == '\t')
		h++;
	return h;
}

/*
 * libcurl header callback (also receives HTTP/2 trailers): Retry-After as
 * delta-seconds or an HTTP date, grpc-status and grpc-message.
 */
static size_t
on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	Response   *r = (Response *) arg;
	size_t		n = size * nmemb;
	char		line[256];
	const char *v;

	/* data is not NUL-terminated */
	memcpy(line, data, Min(n, sizeof(line) - 1));
	line[Min(n, sizeof(line) - 1)] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	if ((v = header_value(line, strlen(line), "retry-after")) != NULL)
	{
		char	   *end;
		long		secs = strtol(v, &end, 10);

		if (end == v)
		{
			time_t		when = curl_getdate(v, NULL);

			secs = (when < 0) ? -1 : (long) (when - time(NULL));
		}
		if (secs >= 0)
			r->retry_after_ms = (int) Min(secs, 3600) * 1000;
	}
	else if ((v = header_value(line, strlen(line), "grpc-status")) != NULL)
		r->grpc_status = atoi(v);
	else if ((v = header_value(line, strlen(line), "grpc-message")) != NULL)
		strlcpy(r->grpc_message, v, sizeof(r->grpc_message));
	return n;
}

/* gzip (RFC 1952) of src into a new StringInfo in the current context */
static StringInfo
gzip_body(const StringInfo src)
{
	z_stream	zs = {0};
	StringInfo	out = makeStringInfo();
	uLong		bound;

	if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
					 Z_DEFAULT_STRATEGY) != Z_OK)
		elog(ERROR, "could not initialize zlib");
	bound = deflateBound(&zs, src->len);
	enlargeStringInfo(out, (int) bound);
	zs.next_in = (Bytef *) src->data;
	zs.avail_in = src->len;
	zs.next_out = (Bytef *) out->data;
	zs.avail_out = (uInt) bound;
	if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
	{
		deflateEnd(&zs);
		elog(ERROR, "could not gzip an export request");
	}
	out->len = (int) zs.total_out;
	deflateEnd(&zs);
	return out;
}

/* protobuf-c allocator on palloc, so decoded responses live in our context */
static void *
pb_alloc(void *data, size_t size)
{
	return palloc(size);
}

static void
pb_free(void *data, void *ptr)
{
	if (ptr)
		pfree(ptr);
}

static ProtobufCAllocator pb_allocator = {pb_alloc, pb_free, NULL};

/*
 * Read partial_success from a protobuf response body: the rejected count
 * and message of whichever signal's response this is.
 */
static void
partial_from_protobuf(FpOtlpSignal signal, const uint8 *data, size_t len,
					  FpOtlpResult *result)
{
	const ProtobufCMessageDescriptor *desc[FP_OTLP_NSIGNALS] = {
		&opentelemetry__proto__collector__trace__v1__export_trace_service_response__descriptor,
		&opentelemetry__proto__collector__metrics__v1__export_metrics_service_response__descriptor,
		&opentelemetry__proto__collector__logs__v1__export_logs_service_response__descriptor
	};
	ProtobufCMessage *msg = protobuf_c_message_unpack(desc[signal], &pb_allocator,
													  len, data);
	const char *message = NULL;

	if (msg == NULL)
		return;
	switch (signal)
	{
		case FP_OTLP_TRACES:
			{
				Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse *r = (void *) msg;

				if (r->partial_success)
				{
					result->rejected = r->partial_success->rejected_spans;
					message = r->partial_success->error_message;
				}
				break;
			}
		case FP_OTLP_METRICS:
			{
				Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceResponse *r = (void *) msg;

				if (r->partial_success)
				{
					result->rejected = r->partial_success->rejected_data_points;
					message = r->partial_success->error_message;
				}
				break;
			}
		default:
			{
				Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceResponse *r = (void *) msg;

				if (r->partial_success)
				{
					result->rejected = r->partial_success->rejected_log_records;
					message = r->partial_success->error_message;
				}
				break;
			}
	}
	if (message && message[0])
		strlcpy(result->error, message, sizeof(result->error));
	protobuf_c_message_free_unpacked(msg, &pb_allocator);
}

/* Parser state for partial_from_json */
typedef struct JsonPartial
{
	const char *rejected_key;	/* the signal's rejected-count member */
	const char *field;			/* member whose value comes next */
	FpOtlpResult *result;
} JsonPartial;

static FP_JSON_ACTION
json_field(void *arg, char *fname, bool isnull)
{
	((JsonPartial *) arg)->field = fname;
	FP_JSON_ACTION_DONE;
}

static FP_JSON_ACTION
json_scalar(void *arg, char *token, JsonTokenType type)
{
	JsonPartial *p = (JsonPartial *) arg;

	if (p->field == NULL)
		FP_JSON_ACTION_DONE;
	/* int64 may come as a number or, per proto3 JSON, as a string */
	if (strcmp(p->field, p->rejected_key) == 0)
		p->result->rejected = strtoll(token, NULL, 10);
	else if (strcmp(p->field, "errorMessage") == 0 && type == JSON_TOKEN_STRING)
		strlcpy(p->result->error, token, sizeof(p->result->error));
	p->field = NULL;
	FP_JSON_ACTION_DONE;
}

/*
 * Read partial_success from an OTLP/JSON response body with PostgreSQL's
 * JSON parser: the signal's rejected count and errorMessage.  A body that
 * does not parse is ignored (the request itself succeeded).
 */
static void
partial_from_json(FpOtlpSignal signal, char *body, int len,
				  FpOtlpResult *result)
{
	static const char *const keys[FP_OTLP_NSIGNALS] = {
		"rejectedSpans", "rejectedDataPoints", "rejectedLogRecords"
	};
	JsonPartial state = {keys[signal], NULL, result};
	JsonSemAction sem = {0};

	if (len == 0)
		return;
	sem.semstate = &state;
	sem.object_field_start = json_field;
	sem.scalar = json_scalar;
	(void) pg_parse_json(FP_JSON_LEXER(body, len), &sem);
}

/*
 * Abort a transfer when shutdown is requested outside the final flush
 * (libcurl progress callback; non-zero aborts).
 */
static int
on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
			curl_off_t ultotal, curl_off_t ulnow)
{
	return *(const bool *) arg && ShutdownRequestPending;
}

static bool abort_on_shutdown = false;

/*
 * Send body (an encoded Export*ServiceRequest) for one signal with the
 * configured protocol, compression, headers and timeout; fill *result.
 * Never throws for network or HTTP problems; only for out-of-memory or a
 * broken libcurl.
 */
void
fp_attribution_otlp_send(FpOtlpSignal signal, const StringInfo body,
						 FpOtlpResult *result)
{
	bool		grpc = (fp_attribution_otlp_protocol == FP_OTLP_GRPC);
	bool		gzip = (fp_attribution_otlp_compression == FP_OTLP_COMPRESSION_GZIP);
	struct curl_slist *headers = NULL;
	StringInfo	payload = gzip ? gzip_body(body) : body;
	char	   *url = fp_attribution_otlp_signal_url(signal);
	List	   *pairs = NIL;
	ListCell   *lc;
	const char *error;
	Response	resp;
	CURLcode	rc;
	long		status = 0;
	instr_time	start;
	instr_time	duration;

	memset(result, 0, sizeof(*result));
	result->retry_after_ms = -1;
	memset(&resp, 0, sizeof(resp));
	initStringInfo(&resp.body);
	resp.retry_after_ms = -1;
	resp.grpc_status = -1;

	if (curl == NULL && (curl = curl_easy_init()) == NULL)
		elog(ERROR, "could not initialize libcurl");
	curl_easy_reset(curl);

	if (grpc)
	{
		StringInfo	framed = makeStringInfo();
		uint32		n = pg_hton32((uint32) payload->len);

		appendStringInfoChar(framed, gzip ? 1 : 0);
		appendBinaryStringInfo(framed, (char *) &n, 4);
		appendBinaryStringInfo(framed, payload->data, payload->len);
		payload = framed;
		headers = curl_slist_append(headers, "Content-Type: application/grpc");
		headers = curl_slist_append(headers, "TE: trailers");
		if (gzip)
			headers = curl_slist_append(headers, "grpc-encoding: gzip");
		curl_easy_setopt(curl, CURLOPT_HTTP_VERSION,
						 (long) (strncmp(url, "https:", 6) == 0 ?
								 CURL_HTTP_VERSION_2TLS :
								 CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE));

		/*
		 * libcurl 7.88 fails the second POST on a reused HTTP/2 connection
		 * with CURLE_HTTP2 (reproduced against node's HTTP/2 server), so
		 * each gRPC request opens its own connection.
		 */
		curl_easy_setopt(curl, CURLOPT_FORBID_REUSE, 1L);
	}
	else
	{
		headers = curl_slist_append(headers,
									fp_attribution_otlp_protocol == FP_OTLP_HTTP_JSON ?
									"Content-Type: application/json" :
									"Content-Type: application/x-protobuf");
		if (gzip)
			headers = curl_slist_append(headers, "Content-Encoding: gzip");
	}
	headers = curl_slist_append(headers, "Expect:");
	if (fp_attribution_otlp_gcp_project[0])
		headers = curl_slist_append(headers,
									psprintf("x-goog-user-project: %s",
											 fp_attribution_otlp_gcp_project));
	(void) fp_attribution_otlp_parse_pairs(fp_attribution_otlp_headers, &pairs, &error);
	foreach(lc, pairs)
	{
		FpOtlpPair *pair = lfirst(lc);

		headers = curl_slist_append(headers, psprintf("%s: %s", pair->key, pair->value));
	}

	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_POST, 1L);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload->data);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long) payload->len);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long) fp_attribution_otlp_timeout_ms);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "fp_attribution-otlp/1.0");
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, &resp);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &abort_on_shutdown);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");

	INSTR_TIME_SET_CURRENT(start);
	rc = curl_easy_perform(curl);
	INSTR_TIME_SET_CURRENT(duration);
	INSTR_TIME_SUBTRACT(duration, start);
	result->elapsed_ms = INSTR_TIME_GET_MILLISEC(duration);
	curl_slist_free_all(headers);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	result->retry_after_ms = resp.retry_after_ms;

	if (rc != CURLE_OK)
	{
		switch (rc)
		{
			case CURLE_COULDNT_RESOLVE_HOST:
			case CURLE_COULDNT_CONNECT:
			case CURLE_OPERATION_TIMEDOUT:
			case CURLE_SEND_ERROR:
			case CURLE_RECV_ERROR:
			case CURLE_GOT_NOTHING:
			case CURLE_HTTP2:
			case CURLE_HTTP2_STREAM:
			case CURLE_PARTIAL_FILE:
				result->outcome = FP_OTLP_RETRYABLE;
				break;
			default:
				result->outcome = FP_OTLP_PERMANENT;
				break;
		}
		snprintf(result->error, sizeof(result->error), "%s: %s",
				 url, curl_easy_strerror(rc));
		return;
	}

	if (grpc && status == 200 && resp.grpc_status > 0)
	{
		result->outcome = grpc_retryable(resp.grpc_status) ?
			FP_OTLP_RETRYABLE : FP_OTLP_PERMANENT;
		snprintf(result->error, sizeof(result->error), "%s: grpc-status %d %s",
				 url, resp.grpc_status, resp.grpc_message);
		return;
	}
	if (status >= 200 && status < 300 && (!grpc || resp.grpc_status == 0))
	{
		result->outcome = FP_OTLP_SENT;
		if (grpc && resp.body.len > 5)
			partial_from_protobuf(signal, (uint8 *) resp.body.data + 5,
								  resp.body.len - 5, result);
		else if (fp_attribution_otlp_protocol == FP_OTLP_HTTP_JSON)
			partial_from_json(signal, resp.body.data, resp.body.len, result);
		else
			partial_from_protobuf(signal, (uint8 *) resp.body.data,
								  resp.body.len, result);
		return;
	}
	result->outcome = (status == 429 || status == 502 || status == 503 ||
					   status == 504) ? FP_OTLP_RETRYABLE : FP_OTLP_PERMANENT;
	snprintf(result->error, sizeof(result->error), "%s: HTTP %ld %.100s",
			 url, status, resp.body.data);
}

/*
 * Set whether a shutdown request aborts the transfer in progress (true in
 * normal operation; false during the bounded final flush).
 */
void
fp_attribution_otlp_http_abort_on_shutdown(bool on)
{
	abort_on_shutdown = on;
}

/* Drop the handle (and its connections), e.g. after an endpoint change */
void
fp_attribution_otlp_http_reset(void)
{
	if (curl)
		curl_easy_cleanup(curl);
	curl = NULL;
}
