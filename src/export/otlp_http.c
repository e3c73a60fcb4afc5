/*-------------------------------------------------------------------------
 *
 * otlp_http.c
 *	  Send encoded OTLP requests over HTTP/1.1, HTTP/2 or gRPC with
 *	  libcurl's multi interface, one request per signal at a time, the
 *	  signals concurrently, and classify the answers by the OTLP exporter
 *	  rules.
 *
 * Each signal has its own easy handle, kept for the worker's lifetime, in
 * one multi handle whose connection cache they share, so connections are
 * reused and a request that hangs (a slow collector, a dead endpoint of
 * one signal) holds back only its own signal.  The worker starts a request
 * (fp_attribution_otlp_start), goes on with its other work, and sleeps in
 * fp_attribution_otlp_wait, which waits for its latch and libcurl's
 * sockets together and moves every request forward; a finished request's
 * result is then taken with fp_attribution_otlp_take_result.  Bodies are
 * gzip-compressed with zlib when asked (libcurl only decompresses).  gRPC
 * is the same protobuf body with a 5-byte length prefix, sent over HTTP/2
 * (prior knowledge for http://, ALPN for https://); its status arrives in
 * the grpc-status trailer, which libcurl hands to the header callback.
 *
 * Outcome rules (OTLP specification, "Failures"): HTTP 429, 502, 503, 504,
 * the retryable gRPC codes and connection failures or timeouts may be
 * retried, honouring Retry-After or gRPC's RetryInfo; gRPC
 * RESOURCE_EXHAUSTED only with a RetryInfo; anything else is permanent.  A success
 * may carry partial_success, whose rejected count is reported.
 *
 * Only the worker calls this; nothing here touches shared memory, so there
 * is no lock protocol.  A request's allocations (URL, headers, compressed
 * body, bounded response) live in its signal's context, reset when the
 * request finishes.
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
#include "storage/latch.h"
#include "utils/memutils.h"

#include "fp_attribution/compat.h"
#include "fp_attribution/curl_multi_wait.h"
#include "fp_attribution/otlp.h"
#include "logs_service.pb-c.h"
#include "metrics_service.pb-c.h"
#include "trace_service.pb-c.h"

/* Longest response body we keep; partial_success is all we read */
#define MAX_RESPONSE_BYTES (64 * 1024)

/* What the header and body callbacks collect for one request */
typedef struct Response
{
	StringInfoData body;
	int			retry_after_ms;
	int			grpc_status;	/* -1 until a grpc-status trailer arrives */
	int			grpc_retry_ms;	/* RetryInfo of grpc-status-details-bin, or -1 */
	char		grpc_message[128];
} Response;

/* One signal's request: at most one in flight per signal */
typedef struct Transfer
{
	FpOtlpSignal signal;
	CURL	   *easy;			/* kept across requests; NULL until used */
	MemoryContext cxt;			/* the request's allocations */
	struct curl_slist *headers;
	char	   *url;
	int			protocol;		/* fp_attribution_otlp_protocol at start */
	Response	resp;
	instr_time	start;
	bool		busy;			/* in the multi handle, not finished */
	bool		done;			/* finished; result not taken yet */
	FpOtlpResult result;
} Transfer;

/*
 * gRPC codes the OTLP specification lists as retryable.  RESOURCE_EXHAUSTED
 * is retryable only when the server says when to retry (a RetryInfo in the
 * status details): without it, the limit may be permanent.
 */
static bool
grpc_retryable(int code, int retry_ms)
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
		case 8:					/* RESOURCE_EXHAUSTED */
			return retry_ms >= 0;
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
	const char *end = h + n;
	size_t		len = strlen(name);

	if (n <= len || pg_strncasecmp(h, name, len) != 0 || h[len] != ':')
		return NULL;
	h += len + 1;
	while (h < end && (*h == ' ' || *h == '\t'))
		h++;
	return h;
}

/*
 * libcurl header callback (also receives HTTP/2 trailers): Retry-After as
 * delta-seconds or an HTTP date, grpc-status, grpc-message and the
 * RetryInfo in grpc-status-details-bin (read from the whole line: it may
 * be longer than the copy kept for the others).
 */
static size_t
on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	Response   *r = (Response *) arg;
	size_t		n = size * nmemb;
	char		line[256];
	const char *v;

	if ((v = header_value(data, n, "grpc-status-details-bin")) != NULL)
	{
		size_t		len = n - (v - data);

		while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n' ||
						   v[len - 1] == ' ' || v[len - 1] == '\t'))
			len--;
		r->grpc_retry_ms = fp_attribution_grpc_retry_delay_ms(v, len);
		return n;
	}

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
 * The multi handle, created on first use.  Its connection cache is shared
 * by the signals' easy handles, so each connection outlives the request
 * that opened it.
 */
static CURLM *multi = NULL;
static Transfer transfers[FP_OTLP_NSIGNALS];
static int	nbusy = 0;			/* transfers added to multi, not finished */
static bool writes_stalled = false; /* woken for a writable socket, the
									 * last curl_multi_perform sent no byte */
static bool reset_pending = false;	/* drop connections once none is busy */

static void release_transfer(Transfer *t);
static void collect_finished(void);

/* The multi handle, created on first use */
static CURLM *
get_multi(void)
{
	if (multi == NULL)
	{
		if ((multi = curl_multi_init()) == NULL)
			elog(ERROR, "could not initialize libcurl");

		/*
		 * No HTTP/2 multiplexing: gRPC requests must not share a connection
		 * (see FORBID_REUSE below), and HTTP/1.1 needs one per request.
		 */
		fp_attribution_check_curl_multi(curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_NOTHING));
	}
	return multi;
}

/*
 * Fill t's easy handle for one request of its signal: protocol, body
 * (compressed and framed as configured), headers, timeout.  Everything
 * it allocates is in t->cxt, the current memory context.
 */
static void
prepare_request(Transfer *t, const StringInfo body, int timeout_ms)
{
	FpOtlpTarget target;
	bool		gzip;
	StringInfo	payload;
	CURL	   *curl = t->easy;
	List	   *pairs = NIL;
	ListCell   *lc;
	const char *error;

	fp_attribution_otlp_target(t->signal, &target);
	gzip = (target.compression == FP_OTLP_COMPRESSION_GZIP);
	payload = gzip ? gzip_body(body) : body;
	t->protocol = target.protocol;
	t->url = target.url;
	t->headers = NULL;
	memset(&t->resp, 0, sizeof(t->resp));
	initStringInfo(&t->resp.body);
	t->resp.retry_after_ms = -1;
	t->resp.grpc_status = -1;
	t->resp.grpc_retry_ms = -1;
	curl_easy_reset(curl);

	if (t->protocol == FP_OTLP_GRPC)
	{
		StringInfo	framed = makeStringInfo();
		uint32		n = pg_hton32((uint32) payload->len);

		appendStringInfoChar(framed, gzip ? 1 : 0);
		appendBinaryStringInfo(framed, (char *) &n, 4);
		appendBinaryStringInfo(framed, payload->data, payload->len);
		payload = framed;
		t->headers = curl_slist_append(t->headers, "Content-Type: application/grpc");
		t->headers = curl_slist_append(t->headers, "TE: trailers");
		if (gzip)
			t->headers = curl_slist_append(t->headers, "grpc-encoding: gzip");
		curl_easy_setopt(curl, CURLOPT_HTTP_VERSION,
						 (long) (strncmp(t->url, "https:", 6) == 0 ?
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
		t->headers = curl_slist_append(t->headers,
									   t->protocol == FP_OTLP_HTTP_JSON ?
									   "Content-Type: application/json" :
									   "Content-Type: application/x-protobuf");
		if (gzip)
			t->headers = curl_slist_append(t->headers, "Content-Encoding: gzip");
	}
	t->headers = curl_slist_append(t->headers, "Expect:");
	if (fp_attribution_otlp_gcp_project[0])
		t->headers = curl_slist_append(t->headers,
									   psprintf("x-goog-user-project: %s",
												fp_attribution_otlp_gcp_project));
	(void) fp_attribution_otlp_parse_pairs(target.headers, &pairs, &error);
	foreach(lc, pairs)
	{
		FpOtlpPair *pair = lfirst(lc);

		t->headers = curl_slist_append(t->headers,
									   psprintf("%s: %s", pair->key, pair->value));
	}

	/* TLS: the collector's CA and our client certificate (mutual TLS) */
	if (target.certificate[0])
		curl_easy_setopt(curl, CURLOPT_CAINFO, target.certificate);
	if (target.client_certificate[0])
		curl_easy_setopt(curl, CURLOPT_SSLCERT, target.client_certificate);
	if (target.client_key[0])
		curl_easy_setopt(curl, CURLOPT_SSLKEY, target.client_key);

	curl_easy_setopt(curl, CURLOPT_URL, t->url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, t->headers);
	curl_easy_setopt(curl, CURLOPT_POST, 1L);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload->data);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long) payload->len);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long) timeout_ms);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "fp_attribution-otlp/1.0");
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t->resp);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t->resp);
	curl_easy_setopt(curl, CURLOPT_PRIVATE, t);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
}

/*
 * Start sending body (an encoded Export*ServiceRequest) for a signal with
 * the configured protocol, compression and headers, within timeout_ms.
 * At most one request per signal is in flight: the previous one's result
 * must have been taken.  body must stay valid until then.  Never throws
 * for network or HTTP problems (they are the request's result); only for
 * out-of-memory or a broken libcurl.
 */
void
fp_attribution_otlp_start(FpOtlpSignal signal, const StringInfo body,
						  int timeout_ms)
{
	Transfer   *t = &transfers[signal];
	MemoryContext old;
	int			running;

	Assert(!t->busy && !t->done);
	if (t->cxt == NULL)
		t->cxt = AllocSetContextCreate(TopMemoryContext,
									   "fp_attribution exporter request",
									   ALLOCSET_DEFAULT_SIZES);
	t->signal = signal;
	if (t->easy == NULL && (t->easy = curl_easy_init()) == NULL)
		elog(ERROR, "could not initialize libcurl");
	old = MemoryContextSwitchTo(t->cxt);
	prepare_request(t, body, timeout_ms);
	MemoryContextSwitchTo(old);
	fp_attribution_check_curl_multi(curl_multi_add_handle(get_multi(), t->easy));
	t->busy = true;
	nbusy++;
	INSTR_TIME_SET_CURRENT(t->start);
	/* connect and write what the socket takes now, rather than after a wait */
	fp_attribution_check_curl_multi(curl_multi_perform(multi, &running));
	/* the new request has writes of its own to make */
	writes_stalled = false;
	collect_finished();
}

/*
 * Classify the answer of a finished transfer by the OTLP rules into
 * t->result, and release the request's resources.
 */
static void
finish_transfer(Transfer *t, CURLcode rc)
{
	FpOtlpResult *result = &t->result;
	Response   *resp = &t->resp;
	bool		grpc = (t->protocol == FP_OTLP_GRPC);
	long		status = 0;
	instr_time	duration;

	memset(result, 0, sizeof(*result));
	INSTR_TIME_SET_CURRENT(duration);
	INSTR_TIME_SUBTRACT(duration, t->start);
	result->elapsed_ms = INSTR_TIME_GET_MILLISEC(duration);
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
	result->retry_after_ms = resp->retry_after_ms;

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
				 t->url, curl_easy_strerror(rc));
	}
	else if (grpc && status == 200 && resp->grpc_status > 0)
	{
		result->outcome = grpc_retryable(resp->grpc_status, resp->grpc_retry_ms) ?
			FP_OTLP_RETRYABLE : FP_OTLP_PERMANENT;
		/* the server's RetryInfo delay, like HTTP's Retry-After */
		if (resp->grpc_retry_ms >= 0)
			result->retry_after_ms = resp->grpc_retry_ms;
		snprintf(result->error, sizeof(result->error), "%s: grpc-status %d %s",
				 t->url, resp->grpc_status, resp->grpc_message);
	}
	else if (status >= 200 && status < 300 && (!grpc || resp->grpc_status == 0))
	{
		MemoryContext old = MemoryContextSwitchTo(t->cxt);

		result->outcome = FP_OTLP_SENT;
		if (grpc && resp->body.len > 5)
			partial_from_protobuf(t->signal, (uint8 *) resp->body.data + 5,
								  resp->body.len - 5, result);
		else if (t->protocol == FP_OTLP_HTTP_JSON)
			partial_from_json(t->signal, resp->body.data, resp->body.len, result);
		else if (!grpc)
			partial_from_protobuf(t->signal, (uint8 *) resp->body.data,
								  resp->body.len, result);
		MemoryContextSwitchTo(old);
	}
	else
	{
		result->outcome = (status == 429 || status == 502 || status == 503 ||
						   status == 504) ? FP_OTLP_RETRYABLE : FP_OTLP_PERMANENT;
		snprintf(result->error, sizeof(result->error), "%s: HTTP %ld %.100s",
				 t->url, status, resp->body.data);
	}
	t->done = true;
	release_transfer(t);
}

/*
 * Take a transfer out of the multi handle and free what its request
 * allocated; the connection stays in the multi handle's cache.
 */
static void
release_transfer(Transfer *t)
{
	fp_attribution_check_curl_multi(curl_multi_remove_handle(multi, t->easy));
	curl_slist_free_all(t->headers);
	t->headers = NULL;
	MemoryContextReset(t->cxt);
	t->busy = false;
	nbusy--;
}

/* Drop the handles and their connections, once no transfer is busy */
static void
cleanup_handles(void)
{
	Assert(nbusy == 0);
	for (int s = 0; s < FP_OTLP_NSIGNALS; s++)
	{
		if (transfers[s].easy)
			curl_easy_cleanup(transfers[s].easy);
		transfers[s].easy = NULL;
	}
	if (multi)
		curl_multi_cleanup(multi);
	multi = NULL;
	reset_pending = false;
}

/* Classify every transfer libcurl reports finished */
static void
collect_finished(void)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(multi, &left)) != NULL)
	{
		Transfer   *t;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &t);
		finish_transfer(t, msg->data.result);
	}
	if (reset_pending && nbusy == 0)
		cleanup_handles();
}

/*
 * The result of a signal's request, once it has finished: true and
 * *result filled, and the signal may start its next request; false while
 * it is in flight.
 */
bool
fp_attribution_otlp_take_result(FpOtlpSignal signal, FpOtlpResult *result)
{
	Transfer   *t = &transfers[signal];

	if (!t->done)
		return false;
	*result = t->result;
	t->done = false;
	return true;
}

/* Abandon a signal's request in flight (the shutdown's deadline passed) */
void
fp_attribution_otlp_cancel(FpOtlpSignal signal)
{
	Transfer   *t = &transfers[signal];

	if (t->busy)
		release_transfer(t);
	t->done = false;
}

/*
 * Request bytes libcurl has sent so far, over the requests in flight:
 * when a curl_multi_perform after a wake-up for a writable socket leaves
 * it unchanged, the next sleep does not wait for the sockets' writability
 * (curl_multi_wait.c).
 */
static curl_off_t
bytes_sent(void)
{
	curl_off_t	total = 0;

	for (int s = 0; s < FP_OTLP_NSIGNALS; s++)
	{
		curl_off_t	n;

		if (transfers[s].busy &&
			curl_easy_getinfo(transfers[s].easy, CURLINFO_SIZE_UPLOAD_T, &n) == CURLE_OK)
			total += n;
	}
	return total;
}

/*
 * Sleep until the latch is set, a request in flight can make progress or
 * timeout_ms pass, then move every request forward; results are then
 * available to fp_attribution_otlp_take_result.  Exits on postmaster
 * death.  The caller resets the latch.
 *
 * The sleep is curl_multi_wait.c's (the latch and libcurl's sockets in
 * one WaitEventSet).  Whatever woke us, curl_multi_perform then serves
 * every transfer: a latch that is set again and again cannot starve them.
 * A result not yet taken (a request that failed at once, say a refused
 * connection) makes it return at once.
 */
void
fp_attribution_otlp_wait(long timeout_ms, uint32 wait_event_info)
{
	int			running;
	bool		writable;

	/* a request that ended when it was started waits for the caller */
	for (int s = 0; s < FP_OTLP_NSIGNALS; s++)
		if (transfers[s].done)
			timeout_ms = 0;
	writable = fp_attribution_curl_multi_sleep(multi, nbusy > 0, writes_stalled,
											   true, timeout_ms, wait_event_info);
	if (nbusy > 0)
	{
		curl_off_t	sent = bytes_sent();

		fp_attribution_check_curl_multi(curl_multi_perform(multi, &running));
		/* only a wake-up for writing that wrote nothing is a stall */
		writes_stalled = writable && bytes_sent() == sent;
		collect_finished();
	}
}

/*
 * Drop the handles and their connections, e.g. after an endpoint change:
 * at once if no request is in flight, else when the last one finishes
 * (those in flight go on to the endpoint they were started for).
 */
void
fp_attribution_otlp_http_reset(void)
{
	if (nbusy == 0)
		cleanup_handles();
	else
		reset_pending = true;
}
