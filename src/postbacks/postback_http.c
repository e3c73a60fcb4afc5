/*-------------------------------------------------------------------------
 *
 * postback_http.c
 *	  The postback worker's HTTP transport: libcurl's multi interface,
 *	  up to 256 requests in flight, each in a slot of its own.
 *
 * The worker starts the requests of a cycle, each in a free slot
 * (fp_attribution_postback_http_start, which only queues it), then moves
 * every request forward at once (fp_attribution_postback_http_progress:
 * one curl_multi_perform for the batch, not one per request), sleeps in
 * fp_attribution_postback_http_wait, which waits for its latch and every
 * request's sockets together, and takes each finished request's result
 * with fp_attribution_postback_http_take.  A request has a total timeout
 * (CURLOPT_TIMEOUT_MS), so a receiver that never answers holds its slot
 * for that long and no other.  Connections are kept in the multi handle's
 * cache and reused (keep-alive); a slot's easy handle is kept too, with
 * the options every request shares set once, when it is made.
 *
 * Outcomes: 2xx is sent; 429, 5xx, connection failures and timeouts may
 * be retried (Retry-After, delta-seconds or an HTTP date, is reported);
 * every other answer is permanent.  Errors never hold the URL unredacted.
 *
 * Only the postback worker calls this; nothing here touches shared
 * memory, so there is no lock protocol.  libcurl copies the request's
 * strings; its header list is freed when the request finishes.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "miscadmin.h"
#include "portability/instr_time.h"
#include "storage/latch.h"
#include "utils/memutils.h"

#include "fp_attribution/compat.h"
#include "fp_attribution/curl_multi_wait.h"
#include "fp_attribution/otlp.h"
#include "fp_attribution/postbacks.h"
#include "fp_attribution/redact.h"

#define MAX_SLOTS 256

typedef struct PostbackSlot
{
	CURL	   *easy;			/* kept across requests; NULL until used */
	struct curl_slist *headers; /* malloc'd by libcurl, freed at finish */
	bool		busy;			/* in the multi handle */
	bool		done;			/* result waits to be taken */
	int			retry_after_ms;
	instr_time	start;
	char		errbuf[CURL_ERROR_SIZE];
	FpPostbackResult result;
} PostbackSlot;

static PostbackSlot slots[MAX_SLOTS];
static CURLM *multi = NULL;
static int	nbusy = 0;
static int	nfinished = 0;

/* libcurl write callback: the body is not needed */
static size_t
on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	return size * nmemb;
}

/* libcurl header callback: Retry-After, delta-seconds or an HTTP date */
static size_t
on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	PostbackSlot	   *s = (PostbackSlot *) arg;
	size_t		n = size * nmemb;
	char		line[256];
	char	   *v;
	char	   *end;
	long		secs;

	memcpy(line, data, Min(n, sizeof(line) - 1));
	line[Min(n, sizeof(line) - 1)] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	if (pg_strncasecmp(line, "retry-after:", 12) != 0)
		return n;
	v = line + 12;
	while (*v == ' ' || *v == '\t')
		v++;
	secs = strtol(v, &end, 10);
	if (end == v)
	{
		time_t		when = curl_getdate(v, NULL);

		secs = (when < 0) ? -1 : Max((long) (when - time(NULL)), 0);
	}
	if (secs >= 0)
		s->retry_after_ms = (int) Min(secs, 24 * 3600) * 1000;
	return n;
}

/* A slot's easy handle, made on first use with the options every request shares */
static CURL *
slot_handle(PostbackSlot *s)
{
	CURL	   *curl;

	if (s->easy != NULL)
		return s->easy;
	if ((curl = curl_easy_init()) == NULL)
		elog(ERROR, "could not initialize libcurl");
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "fp_attribution-postback/" FP_ATTRIBUTION_VERSION);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, s);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, s->errbuf);
	curl_easy_setopt(curl, CURLOPT_PRIVATE, s);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	s->easy = curl;
	return curl;
}

/*
 * Queue a request in slot (free); fp_attribution_postback_http_progress
 * sends it.  headers are "Name: value" lines; body is sent for POST.
 * Everything is copied.
 */
void
fp_attribution_postback_http_start(int slot, const char *method,
								   const char *url, const char *body,
								   const char *const *headers, int nheaders)
{
	PostbackSlot	   *s = &slots[slot];
	CURL	   *curl;

	Assert(slot >= 0 && slot < MAX_SLOTS && !s->busy && !s->done);
	if (multi == NULL)
	{
		if ((multi = curl_multi_init()) == NULL)
			elog(ERROR, "could not initialize libcurl");
		fp_attribution_check_curl_multi(curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) MAX_SLOTS));
	}
	curl = slot_handle(s);
	for (int i = 0; i < nheaders; i++)
	{
		struct curl_slist *h = curl_slist_append(s->headers, headers[i]);

		if (h == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		s->headers = h;
	}
	/* libcurl copies every string option */
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, s->headers);
	if (strcmp(method, "POST") == 0)
	{
		curl_easy_setopt(curl, CURLOPT_POST, 1L);
		curl_easy_setopt(curl, CURLOPT_COPYPOSTFIELDS, body);
	}
	else
		curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long) fp_attribution_postback_timeout_ms);
	s->errbuf[0] = '\0';
	s->retry_after_ms = -1;
	INSTR_TIME_SET_CURRENT(s->start);
	fp_attribution_check_curl_multi(curl_multi_add_handle(multi, curl));
	s->busy = true;
	nbusy++;
}

/* Classify a finished request into its slot's result */
static void
finish(PostbackSlot *s, CURLcode rc)
{
	FpPostbackResult *r = &s->result;
	long		status = 0;
	instr_time	duration;
	char		error[FP_POSTBACK_ERROR_LEN];

	memset(r, 0, sizeof(*r));
	INSTR_TIME_SET_CURRENT(duration);
	INSTR_TIME_SUBTRACT(duration, s->start);
	r->elapsed_ms = INSTR_TIME_GET_MILLISEC(duration);
	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
	r->http_status = (int) status;
	r->retry_after_ms = s->retry_after_ms;
	error[0] = '\0';
	if (rc != CURLE_OK)
	{
		/* a request that never got an answer may be retried, if it can */
		r->outcome = (rc == CURLE_COULDNT_RESOLVE_HOST ||
					  rc == CURLE_COULDNT_CONNECT ||
					  rc == CURLE_OPERATION_TIMEDOUT ||
					  rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR ||
					  rc == CURLE_GOT_NOTHING || rc == CURLE_PARTIAL_FILE ||
					  rc == CURLE_SSL_CONNECT_ERROR) ?
			FP_POSTBACK_RETRYABLE : FP_POSTBACK_PERMANENT;
		r->http_status = 0;
		snprintf(error, sizeof(error), "%s%s%s", curl_easy_strerror(rc),
				 s->errbuf[0] ? ": " : "", s->errbuf);
	}
	else if (status >= 200 && status < 300)
		r->outcome = FP_POSTBACK_SENT;
	else
	{
		r->outcome = (status == 429 || status >= 500) ?
			FP_POSTBACK_RETRYABLE : FP_POSTBACK_PERMANENT;
		snprintf(error, sizeof(error), "HTTP %ld", status);
	}
	fp_attribution_redact_urls(r->error, error, sizeof(r->error));
	fp_attribution_check_curl_multi(curl_multi_remove_handle(multi, s->easy));
	curl_slist_free_all(s->headers);
	s->headers = NULL;
	s->busy = false;
	s->done = true;
	nbusy--;
	nfinished++;
}

/* Classify every request libcurl reports finished */
static void
collect_finished(void)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(multi, &left)) != NULL)
	{
		PostbackSlot	   *s;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &s);
		finish(s, msg->data.result);
	}
}

/*
 * A slot's result, once its request finished: true and *result filled
 * (the slot is free again); false while in flight or free.
 */
bool
fp_attribution_postback_http_take(int slot, FpPostbackResult *result)
{
	PostbackSlot	   *s = &slots[slot];

	if (!s->done)
		return false;
	*result = s->result;
	s->done = false;
	nfinished--;
	return true;
}

/* Whether slot's request is in flight (sent, not finished) */
bool
fp_attribution_postback_http_busy(int slot)
{
	return slots[slot].busy;
}

/* The result of slot's request once it finished, until taken; else NULL */
const FpPostbackResult *
fp_attribution_postback_http_result(int slot)
{
	return slots[slot].done ? &slots[slot].result : NULL;
}

/* Finished requests whose results wait to be taken */
int
fp_attribution_postback_http_finished(void)
{
	return nfinished;
}

/*
 * Move every request forward without waiting: send what was queued,
 * read what arrived, classify what finished.
 */
void
fp_attribution_postback_http_progress(void)
{
	int			running;

	if (nbusy == 0)
		return;
	fp_attribution_check_curl_multi(curl_multi_perform(multi, &running));
	collect_finished();
}

/*
 * Sleep until the latch is set (unless latch is false), a request can
 * make progress or timeout_ms pass (even with results waiting: the caller
 * chooses when to take them), then move every request forward.  Exits on
 * postmaster death; the caller resets the latch.  The sleep is curl_multi_wait.c's (the latch
 * and libcurl's sockets in one WaitEventSet), so no request delays
 * another, nor the latch.
 */
void
fp_attribution_postback_http_wait(long timeout_ms, bool latch, uint32 wait_event_info)
{
	(void) fp_attribution_curl_multi_sleep(multi, nbusy > 0, false, latch, timeout_ms,
										   wait_event_info);
	fp_attribution_postback_http_progress();
}
