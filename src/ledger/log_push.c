/*-------------------------------------------------------------------------
 *
 * log_push.c
 *	  Push the checkpoints the worker signs to the HTTP endpoints of
 *	  fp_attribution.log_push_endpoints (witnesses, monitors, an auditor's
 *	  archive off the database host).
 *
 * Each checkpoint the worker's integration signs (log.c calls
 * fp_attribution_log_push_note inside the run's transaction) is kept until
 * the run commits, then queued for every endpoint: one outbox per
 * endpoint, holding the newest checkpoint of each advertiser (a newer one
 * replaces an older one still waiting: a checkpoint commits to everything
 * before it).  Each endpoint gets one POST at a time, the note as the
 * text/plain body, through a libcurl multi handle of its own that the
 * ledger worker's loop (ledger_worker.c) drives without blocking
 * (fp_attribution_log_push_run); so a slow or dead endpoint never holds
 * back integration.
 * Connection failures, timeouts and HTTP 429, 502, 503 and 504 are retried
 * with exponential backoff and jitter (1 s doubling to 30 s, as OTLP
 * export), or after the answer's Retry-After (seconds or an HTTP date, as
 * libcurl parses it) when it has one, at most 5 minutes: a witness gets
 * the newest checkpoint of each log anyway, since a newer one replaces a
 * waiting one.  Any other answer but 2xx drops that checkpoint.  Failures are
 * logged once per endpoint until it works again, with the URL's secrets
 * redacted (redact.c).
 *
 * Only the ledger worker runs this, all in its own memory: no shared state, no
 * lock.  Outboxes live in the worker's memory, so checkpoints waiting when
 * the worker restarts are not pushed (the next ones are; every checkpoint
 * stays in attribution.log_checkpoints).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "common/pg_prng.h"
#include "nodes/pg_list.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "fp_attribution/log.h"
#include "fp_attribution/otlp.h"
#include "fp_attribution/redact.h"

#define PUSH_TIMEOUT_MS 10000
#define PUSH_CONNECT_TIMEOUT_MS 5000
#define PUSH_BACKOFF_INITIAL_MS 1000
#define PUSH_BACKOFF_MAX_MS 30000
#define PUSH_RETRY_AFTER_MAX_MS (5 * 60 * 1000)
/* How often the loop comes back while a request is in flight */
#define PUSH_POLL_MS 50
/* Advertisers whose checkpoints wait per endpoint; the oldest goes first */
#define PUSH_OUTBOX_MAX 10000
#define PUSH_MAX_ENDPOINTS 8

char	   *fp_attribution_log_push_endpoints = NULL;

/* A checkpoint to push */
typedef struct PushNote
{
	char	   *advertiser_id;
	char	   *note;
} PushNote;

typedef struct PushEndpoint
{
	char	   *url;
	char		redacted[256];	/* the URL for messages */
	CURL	   *easy;
	PushNote   *inflight;		/* NULL when idle */
	List	   *outbox;			/* PushNote *, oldest first */
	int			attempts;		/* failed attempts of the head */
	TimestampTz next_attempt;
	bool		failing;		/* a failure was logged since the last success */
} PushEndpoint;

static MemoryContext push_cxt = NULL;
static struct curl_slist *push_headers = NULL;
static CURLM *multi = NULL;
static PushEndpoint endpoints[PUSH_MAX_ENDPOINTS];
static int	nendpoints = 0;
static char *configured = NULL; /* the setting endpoints[] was built from */
static List *signed_notes = NIL;	/* signed in the current run */
static bool collecting = false;

static bool
check_endpoints(char **newval, void **extra, GucSource source)
{
	char	   *copy;
	List	   *urls;
	ListCell   *lc;
	bool		ok;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	copy = pstrdup(*newval);
	ok = SplitGUCList(copy, ',', &urls);
	if (ok && list_length(urls) > PUSH_MAX_ENDPOINTS)
	{
		GUC_check_errdetail("At most %d endpoints can be set.", PUSH_MAX_ENDPOINTS);
		return false;
	}
	foreach(lc, urls)
	{
		const char *url = lfirst(lc);

		if (pg_strncasecmp(url, "http://", 7) != 0 &&
			pg_strncasecmp(url, "https://", 8) != 0)
		{
			GUC_check_errdetail("Every endpoint must be an http:// or https:// URL.");
			return false;
		}
	}
	if (!ok)
		GUC_check_errdetail("The endpoints must be a comma-separated list of URLs.");
	return ok;
}

/*
 * The setting (its URLs may hold credentials: superuser-only).
 */
void
fp_attribution_log_push_define_gucs(void)
{
	DefineCustomStringVariable("fp_attribution.log_push_endpoints",
							   gettext_noop("HTTP endpoints the worker POSTs each signed checkpoint to."),
							   gettext_noop("A comma-separated list of http:// or https:// URLs; empty pushes nothing."),
							   &fp_attribution_log_push_endpoints,
							   "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   check_endpoints, NULL, NULL);
}

/* Drop an endpoint's transfer, handle and queued notes */
static void
release_endpoint(PushEndpoint *ep)
{
	if (ep->easy != NULL)
	{
		if (ep->inflight != NULL)
			curl_multi_remove_handle(multi, ep->easy);
		curl_easy_cleanup(ep->easy);
	}
	memset(ep, 0, sizeof(*ep));
}

/*
 * Build endpoints[] from the setting when it changed (first use, reload);
 * checkpoints queued for the old endpoints are dropped.
 */
static void
configure(void)
{
	const char *setting = fp_attribution_log_push_endpoints ? fp_attribution_log_push_endpoints : "";
	List	   *urls;
	ListCell   *lc;
	char	   *copy;

	if (configured != NULL && strcmp(configured, setting) == 0)
		return;
	for (int i = 0; i < nendpoints; i++)
		release_endpoint(&endpoints[i]);
	nendpoints = 0;
	if (push_cxt == NULL)
		push_cxt = AllocSetContextCreate(TopMemoryContext, "fp_attribution log push",
										 ALLOCSET_SMALL_SIZES);
	MemoryContextReset(push_cxt);
	signed_notes = NIL;
	configured = MemoryContextStrdup(push_cxt, setting);
	copy = MemoryContextStrdup(push_cxt, setting);
	if (setting[0] == '\0' || !SplitGUCList(copy, ',', &urls))
		return;
	if (multi == NULL && (multi = curl_multi_init()) == NULL)
		elog(ERROR, "could not create a libcurl multi handle");
	foreach(lc, urls)
	{
		const char *url = lfirst(lc);
		PushEndpoint *ep = &endpoints[nendpoints];

		if (nendpoints == PUSH_MAX_ENDPOINTS)
			break;
		ep->url = MemoryContextStrdup(push_cxt, url);
		fp_attribution_redact_urls(ep->redacted, url, sizeof(ep->redacted));
		nendpoints++;
	}
}

/* A copy of a checkpoint to push, in push_cxt */
static PushNote *
copy_note(const char *advertiser_id, const char *note)
{
	PushNote   *pn = MemoryContextAlloc(push_cxt, sizeof(PushNote));

	pn->advertiser_id = MemoryContextStrdup(push_cxt, advertiser_id);
	pn->note = MemoryContextStrdup(push_cxt, note);
	return pn;
}

static void
free_note(PushNote *pn)
{
	pfree(pn->advertiser_id);
	pfree(pn->note);
	pfree(pn);
}

/* Remove and free the oldest checkpoint of an endpoint's outbox */
static void
drop_first(PushEndpoint *ep)
{
	free_note(linitial(ep->outbox));
	ep->outbox = list_delete_first(ep->outbox);
}

/*
 * Start collecting the checkpoints a run signs (before its transaction).
 */
void
fp_attribution_log_push_begin(void)
{
	configure();
	signed_notes = NIL;
	collecting = nendpoints > 0;
}

/*
 * Remember a checkpoint just signed, if the worker is collecting (log.c,
 * inside the run's transaction).
 */
void
fp_attribution_log_push_note(const char *advertiser_id, const char *note)
{
	MemoryContext old;

	if (!collecting)
		return;
	old = MemoryContextSwitchTo(push_cxt);
	signed_notes = lappend(signed_notes, copy_note(advertiser_id, note));
	MemoryContextSwitchTo(old);
}

/*
 * Queue a copy of a checkpoint for an endpoint, replacing the advertiser's
 * older one unless that one is being sent.
 */
static void
enqueue(PushEndpoint *ep, PushNote *pn)
{
	MemoryContext old = MemoryContextSwitchTo(push_cxt);
	ListCell   *lc;

	foreach(lc, ep->outbox)
	{
		PushNote   *queued = lfirst(lc);

		if (queued != ep->inflight &&
			strcmp(queued->advertiser_id, pn->advertiser_id) == 0)
		{
			free_note(queued);
			ep->outbox = foreach_delete_current(ep->outbox, lc);
			break;
		}
	}
	if (list_length(ep->outbox) >= PUSH_OUTBOX_MAX && ep->inflight == NULL)
	{
		ereport(LOG,
				(errmsg("fp_attribution log push to %s: checkpoints of more than %d advertisers waiting, dropping the oldest",
						ep->redacted, PUSH_OUTBOX_MAX)));
		drop_first(ep);
	}
	ep->outbox = lappend(ep->outbox, copy_note(pn->advertiser_id, pn->note));
	MemoryContextSwitchTo(old);
}

/*
 * End a run: queue what it signed for every endpoint if it committed,
 * forget it if not.
 */
void
fp_attribution_log_push_end(bool committed)
{
	ListCell   *lc;

	foreach(lc, signed_notes)
	{
		PushNote   *pn = lfirst(lc);

		for (int i = 0; committed && i < nendpoints; i++)
			enqueue(&endpoints[i], pn);
		free_note(pn);
	}
	list_free(signed_notes);
	signed_notes = NIL;
	collecting = false;
}

/* Delay before attempt number attempts + 1: exponential with jitter */
static int
backoff_ms(int attempts)
{
	double		ms = PUSH_BACKOFF_INITIAL_MS;

	for (int i = 1; i < attempts && ms < PUSH_BACKOFF_MAX_MS; i++)
		ms *= 2;
	ms = Min(ms, PUSH_BACKOFF_MAX_MS);
	return (int) (ms * (0.5 + pg_prng_double(&pg_global_prng_state)));
}

/* Discard the response body */
static size_t
ignore_body(char *data, size_t size, size_t nmemb, void *arg)
{
	return size * nmemb;
}

/* Start POSTing the endpoint's oldest queued checkpoint */
static void
start(PushEndpoint *ep)
{
	PushNote   *pn = linitial(ep->outbox);

	if (ep->easy == NULL && (ep->easy = curl_easy_init()) == NULL)
		elog(ERROR, "could not create a libcurl handle");
	curl_easy_reset(ep->easy);
	curl_easy_setopt(ep->easy, CURLOPT_URL, ep->url);
	curl_easy_setopt(ep->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	if (push_headers == NULL &&
		(push_headers = curl_slist_append(NULL, "Content-Type: text/plain; charset=utf-8")) == NULL)
		elog(ERROR, "could not build the push request's headers");
	curl_easy_setopt(ep->easy, CURLOPT_HTTPHEADER, push_headers);
	curl_easy_setopt(ep->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(ep->easy, CURLOPT_POSTFIELDS, pn->note);
	curl_easy_setopt(ep->easy, CURLOPT_POSTFIELDSIZE, (long) strlen(pn->note));
	curl_easy_setopt(ep->easy, CURLOPT_TIMEOUT_MS, (long) PUSH_TIMEOUT_MS);
	curl_easy_setopt(ep->easy, CURLOPT_CONNECTTIMEOUT_MS, (long) PUSH_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(ep->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(ep->easy, CURLOPT_USERAGENT, "fp_attribution-log/1.0");
	curl_easy_setopt(ep->easy, CURLOPT_WRITEFUNCTION, ignore_body);
	curl_easy_setopt(ep->easy, CURLOPT_PRIVATE, ep);
	ep->inflight = pn;
	if (curl_multi_add_handle(multi, ep->easy) != CURLM_OK)
		elog(ERROR, "could not start a libcurl transfer");
}

/*
 * Delay before the next attempt after a failed one: the answer's
 * Retry-After, capped, or the backoff.  libcurl reports no Retry-After
 * and "Retry-After: 0" alike, as 0; both get the backoff.
 */
static int
retry_wait_ms(PushEndpoint *ep)
{
	curl_off_t	retry_after = 0;

	if (curl_easy_getinfo(ep->easy, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK &&
		retry_after > 0)
		return (int) Min(retry_after * 1000, (curl_off_t) PUSH_RETRY_AFTER_MAX_MS);
	return backoff_ms(ep->attempts);
}

/* Account for a finished POST */
static void
finish(PushEndpoint *ep, CURLcode rc, TimestampTz now)
{
	long		status = 0;
	bool		retry;
	int			wait_ms = 0;
	char		why[128];

	curl_multi_remove_handle(multi, ep->easy);
	if (rc == CURLE_OK)
		curl_easy_getinfo(ep->easy, CURLINFO_RESPONSE_CODE, &status);
	ep->inflight = NULL;
	if (rc == CURLE_OK && status >= 200 && status < 300)
	{
		if (ep->failing)
			ereport(LOG,
					(errmsg("fp_attribution log push to %s works again", ep->redacted)));
		ep->failing = false;
		ep->attempts = 0;
		drop_first(ep);
		return;
	}
	retry = rc != CURLE_OK || status == 429 || status == 502 ||
		status == 503 || status == 504;
	if (rc != CURLE_OK)
		snprintf(why, sizeof(why), "%s", curl_easy_strerror(rc));
	else
		snprintf(why, sizeof(why), "HTTP status %ld", status);
	if (retry)
	{
		ep->attempts++;
		wait_ms = retry_wait_ms(ep);
	}
	ereport(ep->failing && retry ? DEBUG1 : LOG,
			(errmsg("fp_attribution log push to %s failed: %s", ep->redacted, why),
			 retry ? errdetail("The checkpoint is sent again in %.1f s.", wait_ms / 1000.0) :
			 errdetail("The checkpoint is dropped; the next one is sent.")));
	if (retry)
	{
		ep->failing = true;
		ep->next_attempt = TimestampTzPlusMilliseconds(now, wait_ms);
	}
	else
	{
		ep->attempts = 0;
		drop_first(ep);
	}
}

/*
 * Move the pushes forward without blocking: collect finished requests,
 * start the next ones that are due.  Returns the milliseconds until it
 * needs to run again (-1: nothing to do).
 */
long
fp_attribution_log_push_run(TimestampTz now)
{
	long		wait = -1;
	int			running;
	CURLMsg    *msg;
	int			left;

	configure();
	if (nendpoints == 0)
		return -1;
	curl_multi_perform(multi, &running);
	while ((msg = curl_multi_info_read(multi, &left)) != NULL)
	{
		PushEndpoint *ep;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &ep);
		finish(ep, msg->data.result, now);
	}
	for (int i = 0; i < nendpoints; i++)
	{
		PushEndpoint *ep = &endpoints[i];

		if (ep->inflight == NULL && ep->outbox != NIL)
		{
			if (now < ep->next_attempt)
			{
				long		due = (long) ((ep->next_attempt - now) / 1000) + 1;

				wait = wait < 0 ? due : Min(wait, due);
				continue;
			}
			start(ep);
		}
		if (ep->inflight != NULL)
			wait = PUSH_POLL_MS;
	}
	if (wait == PUSH_POLL_MS)
		curl_multi_perform(multi, &running);
	return wait;
}
