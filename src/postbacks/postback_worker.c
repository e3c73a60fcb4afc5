/*-------------------------------------------------------------------------
 *
 * postback_worker.c
 *	  The postback worker: delivers the rows of attribution.postback_outbox
 *	  over HTTP, retries, gives up, disables failing endpoints.
 *
 * A background worker of its own ("fp_attribution postbacks" in
 * pg_stat_activity), so a slow or dead affiliate endpoint never delays
 * OTLP export, nor the other way round.  It connects to
 * fp_attribution.otlp_database, where the extension must be installed.
 *
 * Loop: one transaction per cycle writes the results of the attempts that
 * finished (delivered; retry at next_attempt_at; or failed) and the
 * endpoints' failure counts (each outbox row in place, found by its key,
 * postback_rows.c; an UPDATE of the endpoints per advertiser), then
 * claims due pending rows (a LATERAL subquery per enabled endpoint, so
 * an endpoint with a deep backlog cannot take every slot; oldest due
 * first) and queues them:
 * at most fp_attribution.postback_concurrency requests are in flight, at
 * most fp_attribution.postback_endpoint_concurrency per endpoint.  After
 * the commit the requests start (postback_http.c, libcurl multi), and the
 * worker sleeps on its latch and their sockets together; backends set the
 * latch when a transaction that enqueued commits (postbacks.c), and the
 * sleep is at most POLL_MS otherwise (retries that came due, an endpoint
 * re-enabled).  Cycles are at least fp_attribution.postback_batch_delay
 * apart unless an endpoint with a backlog runs out of claimed rows, so
 * a steady trickle of conversions is claimed and written in batches
 * (wait_for_work).
 *
 * Claiming ahead: a claim takes up to CLAIM_AHEAD rows per request slot
 * (fp_attribution.postback_endpoint_concurrency times that per endpoint);
 * those beyond the slots wait in the worker's memory, and each request
 * that finishes between cycles gives its slot to the next queued row of
 * its endpoint (send_queued), with no transaction.  Under a backlog a
 * cycle's fixed cost (its transaction, the claim) is shared by that many
 * more postbacks: with one endpoint at the default 4 slots a cycle wrote
 * and claimed 2-4 postbacks, now up to 32 (8 per slot: 314 k instructions
 * per delivered postback at 4, 293 k at 8, 284 k at 16, where a slow
 * endpoint's queue dropped at every cycle grows too).  A queued row is
 * sent only until the next cycle, which drops the queue and claims again:
 * a row is never sent after a cycle that would not claim it (its endpoint
 * deactivated, disabled, or rescheduled), and no row of an endpoint is
 * sent after one of its attempts failed until that result is written
 * (its consecutive failures and perhaps its disabling).  Its URL, body
 * and signature are made when it is sent, so a dropped row costs only
 * its columns' copy.
 *
 * A row stays "pending" while its request is in flight: a crash (of the
 * worker or the server) at any point loses nothing; an attempt whose
 * result was not written yet is made again, with the same Idempotency-Key
 * (the row's delivery_id), which is why the receiver must deduplicate.
 * At most once is impossible over HTTP; at least once with a stable key
 * is what the receiver can turn into exactly once.
 *
 * Commits: the worker's transactions commit asynchronously
 * (synchronous_commit off): a result lost with the last moments of WAL
 * in a crash is only an attempt made again, as above, and the commands'
 * own commits do not wait behind the worker's WAL flushes.
 *
 * Retries: connection errors, timeouts, 429 and 5xx, after
 * fp_attribution.postback_retry_initial doubling with each attempt, times
 * a jitter factor in [0.5, 1.5), capped at fp_attribution.postback_retry_max;
 * a Retry-After replaces the computed wait, capped the same way.  Other
 * answers are final.  A row is given up ("failed") after
 * fp_attribution.postback_max_attempts attempts or when older than
 * fp_attribution.postback_max_age.  Each failed attempt adds one to its
 * endpoint's consecutive_failures (a success resets it); at
 * fp_attribution.postback_disable_after the endpoint is disabled, its rows
 * wait (they still age) until attribution.enable_postback_endpoint().
 *
 * Retention: delivered and given-up rows older than
 * fp_attribution.postback_retention (by done_at) are deleted, at most
 * PURGE_BATCH per cycle (one short transaction each: row locks on the
 * batch only, nothing that waits on or blocks the commands' inserts),
 * the next batch in the next cycle while a batch comes back full, then
 * once every EXPIRE_EVERY_MS.  A reload runs both jobs at the next cycle.
 *
 * Telemetry: each attempt of a sampled conversion's trace is a CLIENT span
 * in that trace, child of the receipt's span, whose id goes out in the
 * traceparent header; each counts in postbacks.sent/.failed/.retried and
 * postbacks.latency.
 *
 * Shared memory: the worker publishes its procno (shmem.h) so backends
 * can wake it, and pushes spans and counts through the telemetry core,
 * which does its own locking.  No lock of ours is held anywhere.
 *
 * SIGTERM: die (there is nothing to drain: rows in flight are sent again
 * after the restart).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "fp_attribution/otlp.h"
#include "fp_attribution/postbacks.h"
#include "fp_attribution/redact.h"
#include "fp_attribution/shmem.h"
#include "fp_attribution/spi_plans.h"
#include "fp_attribution/telemetry.h"
#include "fp_attribution/telemetry_record.h"

PGDLLEXPORT void fp_attribution_postback_worker_main(Datum main_arg);

/* Longest sleep: retries that came due and re-enabled endpoints wait this */
#define POLL_MS 1000
/*
 * How often rows past fp_attribution.postback_max_age are given up and
 * finished rows past fp_attribution.postback_retention deleted
 */
#define EXPIRE_EVERY_MS 60000
/* Most finished rows deleted in one cycle's transaction */
#define PURGE_BATCH 1000
#define MAX_REQUESTS 256
/* Rows claimed per request slot a claim has (see "Claiming ahead") */
#define CLAIM_AHEAD 8

/* One request: the row it delivers and what its span needs */
typedef struct PostbackRequest
{
	bool		used;
	bool		sent;			/* false: claimed, queued (not sent yet) */
	MemoryContext cxt;			/* its strings; deleted with it */
	char	   *advertiser_id;
	pg_uuid_t	delivery_id;
	int64		endpoint_id;
	int			attempts;		/* made before this one */
	TimestampTz created_at;
	char	   *event;
	FpPostbackValues values;	/* of its macros and body */
	char	   *url_template;
	char	   *secret;			/* NULL: unsigned */
	char	   *url_shown;		/* redacted, once sent */
	char		method[8];
	bool		sampled;
	FpTraceId	trace_id;
	FpSpanId	parent_span_id;
	FpSpanId	span_id;
	int64		start_ns;
	/* its endpoint's count was 0 when claimed, and failures_written then */
	bool		endpoint_clean;
	uint64		failures_written;
} PostbackRequest;

static PostbackRequest requests[MAX_REQUESTS];
/* Failure counts written by this worker (see write_advertiser_results) */
static uint64 failures_written = 0;
static MemoryContext worker_cxt;
static pg_prng_state prng;
static SPIPlanPtr claim_plan,
			result_plan,
			endpoint_plan;
/* whether they were prepared for a distributed outbox */
static bool plans_distributed = false;
static TimestampTz next_expire = 0;
static TimestampTz next_purge = 0;

/* Wait after a failed attempt number "attempts" (1 for the first) */
static long
retry_wait_ms(int attempts, int retry_after_ms)
{
	double		wait;

	if (retry_after_ms >= 0)
		return Min(retry_after_ms, fp_attribution_postback_retry_max_ms);
	wait = fp_attribution_postback_retry_initial_ms *
		pow(2.0, Min(attempts - 1, 30));
	wait *= 0.5 + pg_prng_double(&prng);
	return (long) Min(wait, (double) fp_attribution_postback_retry_max_ms);
}

/*
 * The worker's statements.  The results of a cycle's attempts are written
 * by one UPDATE of the outbox per attempt and one of the endpoints per
 * advertiser, the latter joined to arrays of the endpoints' keys and new
 * values (ROWS FROM unnest: the multi-array unnest() cannot be
 * schema-qualified; Citus refuses subscripts of a parameter in an
 * UPDATE).  An advertiser has few endpoints, so reading all of them is
 * no cost, where the outbox has all its postbacks.  Naming the advertiser
 * keeps every statement on one Citus shard.  The transaction's time goes
 * in as a parameter where a CASE chooses it: Citus refuses a
 * non-immutable function (now()) inside CASE in a modification of a
 * distributed table.
 */
/* An endpoint's consecutive failures once the cycle's results count */
#define NEW_FAILURES \
	" (r.failures OPERATOR(pg_catalog.+)" \
	" CASE WHEN r.reset THEN 0 ELSE e.consecutive_failures END)"
/* ... and whether they disable it now */
#define DISABLES \
	" e.disabled_at IS NULL AND $5 OPERATOR(pg_catalog.>) 0" \
	" AND" NEW_FAILURES " OPERATOR(pg_catalog.>=) $5"

/*
 * Prepare the worker's statements, as generic plans where the outbox is
 * a plain table.  Where it is a Citus distributed table they are not
 * generic: Citus cannot plan the claim's join with parameters in a
 * generic plan, and routes the UPDATEs by their parameters' values.
 */
static void
prepare_plans(bool distributed)
{
	SPIPlanPtr	(*keep) (const char *, int, Oid *) =
		distributed ? fp_attribution_keep_plan : fp_attribution_keep_generic_plan;

	if (distributed != plans_distributed)
	{
		SPIPlanPtr *plans[] = {&claim_plan, &result_plan, &endpoint_plan};

		for (int i = 0; i < lengthof(plans); i++)
		{
			if (*plans[i] != NULL)
				SPI_freeplan(*plans[i]);
			*plans[i] = NULL;
		}
		plans_distributed = distributed;
	}

	/*
	 * Each is kept as soon as prepared: an error in a later one loses none.
	 *
	 * The claim: every enabled endpoint, and for each its oldest due rows
	 * through postback_outbox_due_idx ('pending' a constant, so that its
	 * predicate is proven), whose order is the LIMIT's.  A generic plan on
	 * one node: the plan cache otherwise planned it again in every cycle
	 * for its values (the in-flight keys, the LIMITs), to the same plan (a
	 * third of the worker's instructions per postback); no table's
	 * statistics make reading an endpoint's rows in another order cheaper.
	 */
	if (claim_plan == NULL)
		claim_plan = keep("SELECT o.advertiser_id, o.delivery_id, o.endpoint_id, o.attempts,"
						  " o.created_at, o.event, o.order_id, o.click_id::text, o.affiliate_id,"
						  " o.offer_id, o.status, o.revenue_cents::text, o.refunded_cents::text,"
						  " o.commission_cents::text, o.currency, o.receipt_id::text,"
						  " o.trace_id::text, o.span_id::text, o.sampled, o.delivery_id::text,"
						  " e.url_template, e.method, s.secret,"
						  " e.consecutive_failures OPERATOR(pg_catalog.=) 0"
						  " FROM attribution.postback_endpoints e"
						  " CROSS JOIN LATERAL (SELECT * FROM attribution.postback_outbox o"
						  "  WHERE o.advertiser_id OPERATOR(pg_catalog.=) e.advertiser_id"
						  "  AND o.endpoint_id OPERATOR(pg_catalog.=) e.endpoint_id"
						  "  AND o.state OPERATOR(pg_catalog.=) 'pending'"
						  "  AND o.next_attempt_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
						  "  AND o.delivery_id OPERATOR(pg_catalog.<>) ALL ($1)"
						  "  ORDER BY o.next_attempt_at LIMIT $2) o"
						  " LEFT JOIN attribution.postback_secrets s"
						  " ON s.advertiser_id OPERATOR(pg_catalog.=) e.advertiser_id"
						  " AND s.endpoint_id OPERATOR(pg_catalog.=) e.endpoint_id"
						  " WHERE e.active AND e.disabled_at IS NULL"
						  " ORDER BY o.next_attempt_at LIMIT $3",
						  3, (Oid[]) {UUIDARRAYOID, INT4OID, INT4OID});

	/*
	 * Where the outbox is distributed (or not a plain table, see
	 * postback_rows.c, which writes the rows otherwise): one execution
	 * per finished attempt, by the row's whole primary key ($1, $2): $3
	 * HTTP status, $4 error, $5 state, $6 next attempt, $7 now, $8
	 * 'pending'.  Not one statement joined to arrays of the
	 * cycle's keys: that join's generic plan, made while the outbox was
	 * small or never analyzed (estimated a row or two per advertiser),
	 * read every row of the advertiser and hashed them, in every cycle,
	 * until the table was analyzed and the plan remade (2.45 M
	 * instructions per postback with 600 queued).  No statistics make a
	 * scan of the advertiser's rows cheaper than the unique key.  The
	 * next attempt's time is computed here: Citus refuses a STABLE
	 * function (timestamptz + interval) of a column in an UPDATE.
	 * 'pending' is a parameter so that the planner cannot prove
	 * postback_outbox_due_idx's predicate and take that index on
	 * advertiser_id alone.
	 */
	if (result_plan == NULL)
		result_plan = keep("UPDATE attribution.postback_outbox o SET"
						   " attempts = o.attempts OPERATOR(pg_catalog.+) 1,"
						   " last_attempt_at = pg_catalog.now(),"
						   " last_http_status = $3, last_error = $4,"
						   " state = $5, next_attempt_at = $6,"
						   " done_at = CASE WHEN $5 OPERATOR(pg_catalog.<>) $8"
						   "  THEN $7 END"
						   " WHERE o.advertiser_id OPERATOR(pg_catalog.=) $1"
						   " AND o.delivery_id OPERATOR(pg_catalog.=) $2"
						   " AND o.state OPERATOR(pg_catalog.=) $8",
						   8, (Oid[]) {TEXTOID, UUIDOID, INT4OID, TEXTOID,
						   TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID});

	/*
	 * $3 whether a success reset the count, $4 failures since (or in all),
	 * $5 fp_attribution.postback_disable_after, $6 reasons, $7 now; an
	 * endpoint whose count stays 0 is not written.  Returns the endpoints
	 * this statement disabled (disabled_at is the transaction's time).
	 * Generic, like the others: an advertiser's few endpoints are read
	 * whichever way the join goes.
	 */
	if (endpoint_plan == NULL)
		endpoint_plan = keep("UPDATE attribution.postback_endpoints e SET"
							 " consecutive_failures =" NEW_FAILURES ","
							 " disabled_at = CASE WHEN" DISABLES " THEN $7 ELSE e.disabled_at END,"
							 " disabled_reason = CASE WHEN" DISABLES
							 "  THEN r.reason ELSE e.disabled_reason END"
							 " FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3),"
							 "  pg_catalog.unnest($4), pg_catalog.unnest($6))"
							 "  AS r(endpoint_id, reset, failures, reason)"
							 " WHERE e.advertiser_id OPERATOR(pg_catalog.=) $1"
							 " AND e.endpoint_id OPERATOR(pg_catalog.=) r.endpoint_id"
							 " AND (r.failures OPERATOR(pg_catalog.>) 0"
							 "  OR e.consecutive_failures OPERATOR(pg_catalog.<>) 0)"
							 " RETURNING e.endpoint_id, e.disabled_at OPERATOR(pg_catalog.=) $7",
							 7, (Oid[]) {TEXTOID, INT8ARRAYOID, BOOLARRAYOID, INT4ARRAYOID,
							 INT4OID, TEXTARRAYOID, TIMESTAMPTZOID});
}

/* The span of a finished attempt, into the telemetry rings */
static void
record_span(const PostbackRequest *rq, const FpPostbackResult *res, int64 end_ns)
{
	FpSpanRecord *span;

	if (!rq->sampled || !fp_attribution_telemetry_enabled)
		return;
	span = palloc0(sizeof(FpSpanRecord));
	fp_attribution_span_init(span, rq->method, FP_SPAN_KIND_CLIENT);
	span->trace_id = rq->trace_id;
	span->span_id = rq->span_id;
	span->parent_span_id = rq->parent_span_id;
	span->flags = FP_TRACE_FLAG_SAMPLED;
	span->start_time_unix_nano = rq->start_ns;
	span->end_time_unix_nano = end_ns;
	fp_attribution_attr_str(fp_attribution_span_attr(span, "http.request.method"), rq->method);
	fp_attribution_attr_utf8(fp_attribution_span_attr(span, "url.full"), rq->url_shown);
	if (res->http_status > 0)
		fp_attribution_attr_int(fp_attribution_span_attr(span, "http.response.status_code"),
								res->http_status);
	if (rq->attempts > 0)
		fp_attribution_attr_int(fp_attribution_span_attr(span, "http.request.resend_count"),
								rq->attempts);
	fp_attribution_attr_str(fp_attribution_span_attr(span, "fp.postback.event"), rq->event);
	fp_attribution_attr_int(fp_attribution_span_attr(span, "fp.postback.endpoint_id"),
							rq->endpoint_id);
	fp_attribution_attr_utf8(fp_attribution_span_attr(span, "fp.advertiser.id"), rq->advertiser_id);
	if (res->outcome != FP_POSTBACK_SENT)
	{
		char		type[16];

		if (res->http_status > 0)
			snprintf(type, sizeof(type), "%d", res->http_status);
		else
			strlcpy(type, "connection", sizeof(type));
		fp_attribution_attr_str(fp_attribution_span_attr(span, "error.type"), type);
		span->status_code = FP_STATUS_ERROR;
		fp_attribution_copy_utf8(span->status_message, res->error,
								 sizeof(span->status_message));
	}
	fp_attribution_telemetry_push_spans(&span, 1);
	pfree(span);
}

/* A finished attempt of the cycle, and the outcome it gives its row */
typedef struct FinishedAttempt
{
	PostbackRequest *rq;
	FpPostbackResult res;
	FpPostbackRowResult row;	/* what its row becomes */
	long		wait_ms;		/* before the retry */
	bool		written;		/* in its advertiser's statements already */
} FinishedAttempt;

/*
 * Decide the row's next state of a finished attempt (its next attempt
 * counted from xact_now, the transaction's time); count it
 */
static void
classify(FinishedAttempt *f, TimestampTz now, TimestampTz xact_now)
{
	int			attempts = f->rq->attempts + 1;
	FpPostbackRowResult *row = &f->row;

	f->wait_ms = 0;
	if (f->res.outcome == FP_POSTBACK_SENT)
		row->state = "delivered";
	else if (f->res.outcome == FP_POSTBACK_PERMANENT ||
			 attempts >= fp_attribution_postback_max_attempts)
		row->state = "failed";
	else
	{
		row->state = "pending";
		f->wait_ms = retry_wait_ms(attempts, f->res.retry_after_ms);
		if (TimestampTzPlusMilliseconds(now, f->wait_ms) >
			TimestampTzPlusMilliseconds(f->rq->created_at,
										(int64) fp_attribution_postback_max_age_s * 1000))
			row->state = "failed";
	}
	row->advertiser_id = f->rq->advertiser_id;
	row->delivery_id = &f->rq->delivery_id;
	row->http_status = f->res.http_status;
	row->error = f->res.outcome == FP_POSTBACK_SENT ? NULL : f->res.error;
	row->next_attempt_at = TimestampTzPlusMilliseconds(xact_now, f->wait_ms);
	fp_attribution_telemetry_count_postback(f->res.outcome == FP_POSTBACK_SENT ?
											FP_POSTBACK_METRIC_SENT :
											strcmp(row->state, "failed") == 0 ?
											FP_POSTBACK_METRIC_FAILED :
											FP_POSTBACK_METRIC_RETRIED,
											f->res.elapsed_ms);
}

/* A one-dimensional array of n elements of type (nulls may be NULL) */
static Datum
make_array(Datum *elems, bool *nulls, int n, Oid type)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, type,
											  typlen, typbyval, typalign));
}

/*
 * Write the results of the finished attempts fs[0..n) of one advertiser
 * (in the cycle's transaction): each row's new state unless rows_written
 * (in place already), then the endpoints' failure counts in one
 * statement, folded in the order of fs as if written one by one (a
 * success resets the count, a failure adds one).  The second statement is
 * left out when it has nothing to change: only successes, each of an
 * endpoint whose count the claim read as 0, and no failure written since
 * (failures_written counts the statements that wrote some; an endpoint's
 * count rises only here, enable_postback_endpoint() only resets it).
 */
static void
write_advertiser_results(FinishedAttempt **fs, int n, Datum xact_now, bool rows_written)
{
	/* per endpoint, in order of first appearance */
	Datum	   *endpoints = palloc(sizeof(Datum) * n);
	Datum	   *resets = palloc(sizeof(Datum) * n);
	Datum	   *failures = palloc(sizeof(Datum) * n);
	Datum	   *reasons = palloc(sizeof(Datum) * n);
	const char **last_error = palloc(sizeof(char *) * n);
	int			nendpoints = 0;
	bool		endpoints_change = false;
	Datum		advertiser = CStringGetTextDatum(fs[0]->rq->advertiser_id);
	Datum		pending = CStringGetTextDatum("pending");
	int			rc;

	for (int i = 0; i < n; i++)
	{
		const FinishedAttempt *f = fs[i];
		bool		sent = f->res.outcome == FP_POSTBACK_SENT;
		int			e;

		if (!rows_written)
		{
			const FpPostbackRowResult *row = &f->row;

			rc = SPI_execute_plan(result_plan,
								  (Datum[]) {advertiser, UUIDPGetDatum(row->delivery_id),
									  Int32GetDatum(row->http_status),
									  row->error ? CStringGetTextDatum(row->error) : (Datum) 0,
									  CStringGetTextDatum(row->state),
									  TimestampTzGetDatum(row->next_attempt_at),
								  xact_now, pending},
								  (char[]) {' ', ' ', row->http_status == 0 ? 'n' : ' ',
								  row->error ? ' ' : 'n', ' ', ' ', ' ', ' '},
								  false, 0);
			if (rc != SPI_OK_UPDATE)
				elog(ERROR, "could not record a postback attempt: %s",
					 SPI_result_code_string(rc));
		}

		for (e = 0; e < nendpoints; e++)
			if (DatumGetInt64(endpoints[e]) == f->rq->endpoint_id)
				break;
		if (e == nendpoints)
		{
			endpoints[e] = Int64GetDatum(f->rq->endpoint_id);
			resets[e] = BoolGetDatum(false);
			failures[e] = Int32GetDatum(0);
			last_error[e] = NULL;
			nendpoints++;
		}
		if (sent)
		{
			resets[e] = BoolGetDatum(true);
			failures[e] = Int32GetDatum(0);
		}
		else
		{
			failures[e] = Int32GetDatum(DatumGetInt32(failures[e]) + 1);
			last_error[e] = f->res.error;
		}

		/*
		 * Only this worker raises an endpoint's count: a success of an
		 * endpoint whose count was 0 when the row was claimed, with no
		 * failure written since, has nothing to reset
		 */
		if (!sent || !f->rq->endpoint_clean ||
			f->rq->failures_written != failures_written)
			endpoints_change = true;
	}
	for (int e = 0; e < nendpoints; e++)
		reasons[e] = CStringGetTextDatum(psprintf("%d failed attempts in a row, the last: %s",
												  fp_attribution_postback_disable_after,
												  last_error[e] ? last_error[e] : ""));

	if (!endpoints_change)
		return;
	for (int e = 0; e < nendpoints; e++)
		if (DatumGetInt32(failures[e]) > 0)
		{
			failures_written++;
			break;
		}
	rc = SPI_execute_plan(endpoint_plan,
						  (Datum[]) {advertiser, make_array(endpoints, NULL, nendpoints, INT8OID),
							  make_array(resets, NULL, nendpoints, BOOLOID),
							  make_array(failures, NULL, nendpoints, INT4OID),
							  Int32GetDatum(fp_attribution_postback_disable_after),
						  make_array(reasons, NULL, nendpoints, TEXTOID), xact_now},
						  NULL, false, 0);
	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not record postback endpoints' failures: %s",
			 SPI_result_code_string(rc));
	for (uint64 row = 0; row < SPI_processed; row++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[row];
		bool		isnull;
		int64		endpoint = DatumGetInt64(SPI_getbinval(tuple, SPI_tuptable->tupdesc, 1, &isnull));
		bool		disabled = DatumGetBool(SPI_getbinval(tuple, SPI_tuptable->tupdesc, 2, &isnull));
		const char *error = "";

		if (!disabled)
			continue;
		for (int e = 0; e < nendpoints; e++)
			if (DatumGetInt64(endpoints[e]) == endpoint && last_error[e] != NULL)
				error = last_error[e];
		ereport(LOG,
				(errmsg("postback endpoint %lld of advertiser \"%s\" disabled after %d failed attempts in a row",
						(long long) endpoint, fs[0]->rq->advertiser_id,
						fp_attribution_postback_disable_after),
				 errdetail("The last attempt failed with: %s", error),
				 errhint("Call attribution.enable_postback_endpoint(%lld, '%s') once it works again.",
						 (long long) endpoint, fs[0]->rq->advertiser_id)));
	}
}

/*
 * Write the results of the cycle's finished attempts fs[0..n): the outbox
 * rows in place where it is a table of this node, else by one UPDATE
 * each; the endpoints by one UPDATE per advertiser (see prepare_plans).
 */
static void
write_results(FinishedAttempt *fs, int n, TimestampTz now)
{
	FinishedAttempt **group = palloc(sizeof(FinishedAttempt *) * n);
	FpPostbackRowResult *rows = palloc(sizeof(FpPostbackRowResult) * n);
	TimestampTz xact_start = GetCurrentTransactionStartTimestamp();
	Datum		xact_now = TimestampTzGetDatum(xact_start);
	bool		rows_written;

	for (int i = 0; i < n; i++)
	{
		classify(&fs[i], now, xact_start);
		rows[i] = fs[i].row;
	}
	rows_written = !plans_distributed &&
		fp_attribution_postback_results_in_place(rows, n, xact_start);
	for (int first = 0; first < n; first++)
	{
		int			ngroup = 0;

		if (fs[first].written)
			continue;
		for (int i = first; i < n; i++)
			if (!fs[i].written &&
				strcmp(fs[i].rq->advertiser_id, fs[first].rq->advertiser_id) == 0)
			{
				fs[i].written = true;
				group[ngroup++] = &fs[i];
			}
		write_advertiser_results(group, ngroup, xact_now, rows_written);
	}
}

/* Free a finished or queued request's slot */
static void
release_request(PostbackRequest *rq)
{
	MemoryContextDelete(rq->cxt);
	rq->cxt = NULL;
	rq->used = false;
}

/*
 * A claimed row's columns, deformed once: each read of a column by itself
 * walks the text columns before it
 */
#define CLAIM_COLUMNS 24
typedef struct ClaimedRow
{
	Datum		values[CLAIM_COLUMNS];
	bool		nulls[CLAIM_COLUMNS];
} ClaimedRow;

/* Column col (from 1, as in the claim's SELECT list) */
#define column_value(row, col) ((row)->values[(col) - 1])

/*
 * Column col as a C string, or NULL: a text column (the claim casts the
 * others it needs as strings), so its datum needs no output function,
 * nor the catalog lookup of one
 */
static char *
column_text(const ClaimedRow *row, int col)
{
	return row->nulls[col - 1] ? NULL : TextDatumGetCString(column_value(row, col));
}

/*
 * Queue a claimed row in slot (free): its columns, copied into a context
 * of the request's own (the tuple is the claim's); send_request sends it.
 */
static void
queue_request(int slot, HeapTuple tuple, TupleDesc desc)
{
	PostbackRequest *rq = &requests[slot];
	FpPostbackValues *v = &rq->values;
	ClaimedRow	row;
	MemoryContext old;

	if (desc->natts != CLAIM_COLUMNS)
		elog(ERROR, "unexpected postback claim row");
	rq->cxt = AllocSetContextCreate(worker_cxt, "fp_attribution postback request",
									ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(rq->cxt);
	heap_deform_tuple(tuple, desc, row.values, row.nulls);
	memset(v, 0, sizeof(*v));
	rq->used = true;
	rq->sent = false;
	rq->advertiser_id = column_text(&row, 1);
	rq->delivery_id = *DatumGetUUIDP(column_value(&row, 2));
	rq->endpoint_id = DatumGetInt64(column_value(&row, 3));
	rq->attempts = DatumGetInt32(column_value(&row, 4));
	rq->created_at = DatumGetTimestampTz(column_value(&row, 5));
	rq->event = column_text(&row, 6);
	v->event = rq->event;
	v->advertiser_id = rq->advertiser_id;
	v->order_id = column_text(&row, 7);
	v->click_id = column_text(&row, 8);
	v->affiliate_id = column_text(&row, 9);
	v->offer_id = column_text(&row, 10);
	v->status = column_text(&row, 11);
	v->revenue_cents = column_text(&row, 12);
	v->refunded_cents = column_text(&row, 13);
	v->commission_cents = column_text(&row, 14);
	v->currency = column_text(&row, 15);
	v->receipt_id = column_text(&row, 16);
	v->trace_id = column_text(&row, 17);
	if (!fp_attribution_hex_decode(v->trace_id, 2 * FP_TRACE_ID_LEN, rq->trace_id.bytes,
								   FP_TRACE_ID_LEN) ||
		!fp_attribution_hex_decode(column_text(&row, 18), 2 * FP_SPAN_ID_LEN,
								   rq->parent_span_id.bytes, FP_SPAN_ID_LEN))
		elog(ERROR, "invalid trace context in postback outbox");
	rq->sampled = DatumGetBool(column_value(&row, 19));
	v->delivery_id = column_text(&row, 20);
	rq->url_template = column_text(&row, 21);
	strlcpy(rq->method, column_text(&row, 22), sizeof(rq->method));
	rq->secret = column_text(&row, 23);
	rq->endpoint_clean = DatumGetBool(column_value(&row, 24));
	rq->failures_written = failures_written;
	MemoryContextSwitchTo(old);
}

/*
 * Send the queued request in slot: its URL, body, signature and headers,
 * made now (a queued request may be dropped unsent, see run_cycle).  In
 * or between the cycles' transactions.
 */
static void
send_request(int slot)
{
	PostbackRequest *rq = &requests[slot];
	const FpPostbackValues *v = &rq->values;
	char	   *url;
	char	   *body = NULL;
	const char *headers[8];
	int			nheaders = 0;
	char		traceparent[80];
	char		trace_hex[2 * FP_TRACE_ID_LEN + 1];
	char		span_hex[2 * FP_SPAN_ID_LEN + 1];
	char		shown[1024];
	uint64		r;
	MemoryContext old = MemoryContextSwitchTo(rq->cxt);

	Assert(rq->used && !rq->sent);
	url = fp_attribution_postback_expand(rq->url_template, v);
	fp_attribution_redact_urls(shown, url, sizeof(shown));
	rq->url_shown = pstrdup(shown);

	r = pg_prng_uint64(&prng);
	memcpy(rq->span_id.bytes, &r, FP_SPAN_ID_LEN);
	if (r == 0)
		rq->span_id.bytes[0] = 1;
	fp_attribution_hex_encode(rq->trace_id.bytes, FP_TRACE_ID_LEN, trace_hex);
	fp_attribution_hex_encode(rq->span_id.bytes, FP_SPAN_ID_LEN, span_hex);
	snprintf(traceparent, sizeof(traceparent), "traceparent: 00-%s-%s-%02x",
			 trace_hex, span_hex, rq->sampled ? FP_TRACE_FLAG_SAMPLED : 0);
	headers[nheaders++] = traceparent;
	headers[nheaders++] = psprintf("Idempotency-Key: %s", v->delivery_id);
	headers[nheaders++] = psprintf("X-Fp-Event: %s", v->event);
	/* no "Expect: 100-continue" round trip for a small body */
	headers[nheaders++] = "Expect:";
	if (strcmp(rq->method, "POST") == 0)
	{
		body = fp_attribution_postback_body(v);
		headers[nheaders++] = "Content-Type: application/json";
	}
	if (rq->secret != NULL)
	{
		const char *message = body;

		if (message == NULL)
		{
			/* GET: the request target, the path and query as sent */
			const char *target = strstr(url, "://") + 3;

			target += strcspn(target, "/?#");
			message = *target == '/' ? pnstrdup(target, strcspn(target, "#")) :
				psprintf("/%.*s", (int) strcspn(target, "#"), target);
		}
		headers[nheaders++] = psprintf("X-Fp-Signature: %s",
									   fp_attribution_postback_signature(rq->secret,
																		 (int64) time(NULL),
																		 message));
	}
	rq->start_ns = fp_attribution_now_unix_nano();
	fp_attribution_postback_http_start(slot, rq->method, url, body, headers, nheaders);
	rq->sent = true;
	MemoryContextSwitchTo(old);
}

/*
 * Send the queued requests that may go now (in slot order, which the
 * claim filled oldest due first): at most
 * fp_attribution.postback_concurrency in flight, and
 * fp_attribution.postback_endpoint_concurrency per endpoint; none of an
 * endpoint whose attempt failed since the last cycle (its results, and
 * perhaps its disabling, are written first).  Returns whether the next
 * cycle is due: an endpoint with a finished request has nothing left to
 * send (its next rows must be claimed) or is held back by a failure.
 */
static bool
send_queued(void)
{
	int			max = Min(fp_attribution_postback_concurrency, MAX_REQUESTS);
	int64		endpoints[MAX_REQUESTS];
	int			busy[MAX_REQUESTS];
	int			queued[MAX_REQUESTS];
	bool		finished[MAX_REQUESTS];
	bool		failed[MAX_REQUESTS];
	int			of[MAX_REQUESTS];	/* each request's endpoint, by index */
	int			nendpoints = 0;
	int			inflight = 0;
	bool		due = false;

	for (int i = 0; i < MAX_REQUESTS; i++)
	{
		const FpPostbackResult *res;
		int			e;

		if (!requests[i].used)
			continue;
		for (e = 0; e < nendpoints; e++)
			if (endpoints[e] == requests[i].endpoint_id)
				break;
		if (e == nendpoints)
		{
			endpoints[e] = requests[i].endpoint_id;
			busy[e] = queued[e] = 0;
			finished[e] = failed[e] = false;
			nendpoints++;
		}
		of[i] = e;
		if (!requests[i].sent)
			queued[e]++;
		else if (fp_attribution_postback_http_busy(i))
		{
			busy[e]++;
			inflight++;
		}
		else if ((res = fp_attribution_postback_http_result(i)) != NULL)
		{
			finished[e] = true;
			failed[e] = failed[e] || res->outcome != FP_POSTBACK_SENT;
		}
	}
	for (int i = 0; i < MAX_REQUESTS && inflight < max; i++)
	{
		int			e = of[i];

		if (!requests[i].used || requests[i].sent || failed[e] ||
			busy[e] >= fp_attribution_postback_endpoint_concurrency)
			continue;
		send_request(i);
		busy[e]++;
		queued[e]--;
		inflight++;
	}
	for (int e = 0; e < nendpoints; e++)
		if (finished[e] && (failed[e] || queued[e] == 0))
			due = true;
	return due;
}

/*
 * Now and then (in the cycle's transaction): give up the pending rows past
 * fp_attribution.postback_max_age, and delete one batch of the finished
 * rows past fp_attribution.postback_retention (see the file header).
 */
static void
expire_and_purge(TimestampTz now)
{
	if (now >= next_expire)
	{
		next_expire = TimestampTzPlusMilliseconds(now, EXPIRE_EVERY_MS);
		if (SPI_execute_with_args("UPDATE attribution.postback_outbox SET state = 'failed',"
								  " done_at = pg_catalog.now(),"
								  " last_error = 'given up: older than fp_attribution.postback_max_age'"
								  " WHERE state OPERATOR(pg_catalog.=) 'pending'"
								  " AND created_at OPERATOR(pg_catalog.<) (pg_catalog.now()"
								  " OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => $1))",
								  1, (Oid[]) {FLOAT8OID},
								  (Datum[]) {Float8GetDatum(fp_attribution_postback_max_age_s)},
								  NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not give up old postbacks");
		for (uint64 i = 0; i < SPI_processed; i++)
			fp_attribution_telemetry_count_postback(FP_POSTBACK_METRIC_FAILED, 0);
	}
	if (fp_attribution_postback_retention_s > 0 && now >= next_purge)
	{
		/* oldest first, through postback_outbox_done_idx */
		if (SPI_execute_with_args("DELETE FROM attribution.postback_outbox o"
								  " USING (SELECT f.advertiser_id, f.delivery_id"
								  "  FROM attribution.postback_outbox f"
								  "  WHERE f.state OPERATOR(pg_catalog.<>) 'pending'"
								  "  AND f.done_at OPERATOR(pg_catalog.<) (pg_catalog.now()"
								  "  OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => $1))"
								  "  ORDER BY f.done_at LIMIT $2) old"
								  " WHERE o.advertiser_id OPERATOR(pg_catalog.=) old.advertiser_id"
								  " AND o.delivery_id OPERATOR(pg_catalog.=) old.delivery_id",
								  2, (Oid[]) {FLOAT8OID, INT4OID},
								  (Datum[]) {Float8GetDatum(fp_attribution_postback_retention_s),
								  Int32GetDatum(PURGE_BATCH)},
								  NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not delete old postbacks");
		next_purge = SPI_processed >= PURGE_BATCH ? now :
			TimestampTzPlusMilliseconds(now, EXPIRE_EVERY_MS);
	}
}

/* Where the outbox is, as this node's worker sees it */
typedef enum OutboxPlacement
{
	OUTBOX_LOCAL,				/* a plain table: deliver */
	OUTBOX_DISTRIBUTED,			/* Citus coordinator: deliver for the cluster */
	OUTBOX_ELSEWHERE			/* Citus worker of a distributed outbox: do not */
} OutboxPlacement;

/*
 * On Citus, once attribution.distribute() has distributed the outbox,
 * every node sees all of it through Citus (the workers hold its shell
 * too), and each node's worker would send every postback: only the
 * coordinator's delivers then, for the whole cluster (its statements each
 * name the row's advertiser, so Citus routes them to the shard).  Without
 * Citus, or with the outbox local, it always does.
 */
static OutboxPlacement
outbox_placement(void)
{
	bool		isnull;
	Datum		distributed,
				coordinator;

	if (!OidIsValid(get_extension_oid("citus", true)))
		return OUTBOX_LOCAL;
	if (SPI_execute("SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition"
					" WHERE logicalrelid OPERATOR(pg_catalog.=)"
					" 'attribution.postback_outbox'::pg_catalog.regclass),"
					" pg_catalog.citus_is_coordinator()", true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not tell whether this Citus node delivers postbacks");
	distributed = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	coordinator = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	if (!DatumGetBool(distributed))
		return OUTBOX_LOCAL;
	return DatumGetBool(coordinator) ? OUTBOX_DISTRIBUTED : OUTBOX_ELSEWHERE;
}

/*
 * One cycle, in one transaction: write the finished attempts' results,
 * give up old rows and delete finished ones now and then, claim due rows for the free
 * slots and start their requests.
 */
static bool
run_cycle(void)
{
	TimestampTz now = GetCurrentTimestamp();
	FinishedAttempt *finished = palloc(sizeof(FinishedAttempt) * MAX_REQUESTS);
	int			nfinished = 0;
	volatile bool backlog = false;
	int			nfree = 0;
	int			max = Min(fp_attribution_postback_concurrency, MAX_REQUESTS);
	MemoryContext cxt = CurrentMemoryContext;

	/* what arrived while wait_for_work did not look (the pace) */
	fp_attribution_postback_http_progress();
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		bool		installed;	/* the extension is here, and this node delivers */

		PushActiveSnapshot(GetTransactionSnapshot());
		installed = OidIsValid(get_extension_oid("fp_attribution", true));
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		pgstat_report_activity(STATE_RUNNING, "delivering postbacks");
		if (installed)
		{
			OutboxPlacement placement = outbox_placement();

			installed = placement != OUTBOX_ELSEWHERE;
			if (installed)
				prepare_plans(placement == OUTBOX_DISTRIBUTED);
		}
		for (int i = 0; i < MAX_REQUESTS; i++)
			if (fp_attribution_postback_http_take(i, &finished[nfinished].res))
			{
				finished[nfinished].rq = &requests[i];
				finished[nfinished].written = false;
				record_span(&requests[i], &finished[nfinished].res,
							fp_attribution_now_unix_nano());
				nfinished++;
			}
		if (installed && nfinished > 0)
			write_results(finished, nfinished, now);
		for (int i = 0; i < nfinished; i++)
			release_request(finished[i].rq);
		if (installed)
			expire_and_purge(now);
		/* the queue of the last claim: claimed again below, if still due */
		for (int i = 0; i < MAX_REQUESTS; i++)
			if (requests[i].used && !requests[i].sent)
				release_request(&requests[i]);
		for (int i = 0; i < MAX_REQUESTS; i++)
			if (!requests[i].used)
				nfree++;
		nfree = Min(nfree, max * CLAIM_AHEAD);
		if (installed && fp_attribution_postback_enabled && nfree > 0)
		{
			Datum	   *inflight = palloc(sizeof(Datum) * MAX_REQUESTS);
			int			n = 0;
			int			per_endpoint = fp_attribution_postback_endpoint_concurrency * CLAIM_AHEAD;
			int64	   *endpoints = palloc(sizeof(int64) * nfree);
			int		   *claimed = palloc(sizeof(int) * nfree);
			int			nendpoints = 0;
			int			slot = 0;
			int			rc;

			for (int i = 0; i < MAX_REQUESTS; i++)
				if (requests[i].used)
					inflight[n++] = UUIDPGetDatum(&requests[i].delivery_id);

			/*
			 * Not read-only: the claim must see the results written above
			 * (a read-only query would use the cycle's first snapshot and
			 * find a row just scheduled for a retry still due)
			 */
			rc = SPI_execute_plan(claim_plan,
								  (Datum[]) {PointerGetDatum(construct_array(inflight, n, UUIDOID,
																			 UUID_LEN, false, TYPALIGN_CHAR)),
									  Int32GetDatum(per_endpoint),
								  Int32GetDatum(nfree)},
								  NULL, false, 0);
			if (rc != SPI_OK_SELECT)
				elog(ERROR, "could not claim postbacks: %s", SPI_result_code_string(rc));
			/* as many rows as asked for: more may be due */
			backlog = SPI_processed >= nfree;
			for (uint64 row = 0; row < SPI_processed; row++)
			{
				HeapTuple	tuple = SPI_tuptable->vals[row];
				bool		isnull;
				int64		endpoint = DatumGetInt64(SPI_getbinval(tuple, SPI_tuptable->tupdesc,
																   3, &isnull));
				int			e;

				for (e = 0; e < nendpoints; e++)
					if (endpoints[e] == endpoint)
						break;
				if (e == nendpoints)
				{
					endpoints[e] = endpoint;
					claimed[e] = 0;
					nendpoints++;
				}
				/* ... or as many of an endpoint's rows */
				if (++claimed[e] >= per_endpoint)
					backlog = true;
				while (requests[slot].used)
					slot++;
				queue_request(slot, tuple, SPI_tuptable->tupdesc);
			}
		}
		/* the cycle's requests start, all in one go, after the commit */
		send_queued();
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	fp_attribution_postback_http_progress();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return backlog;
}

/*
 * Sleep until there is work: a commit that enqueued (the latch), a
 * finished request, a reload, or POLL_MS after the last cycle's start
 * (retries that came due).  The next cycle also waits for
 * fp_attribution.postback_batch_delay after the last one's start, so
 * that the commits and answers of that time share one transaction (a
 * trickle of conversions would otherwise cost two cycles each, one to
 * claim and one to write the result); with a backlog (the last claim took
 * as many rows as it asked for) it starts at once when an endpoint with a
 * finished request has no queued row left to send (send_queued).
 * Meanwhile each finished request's slot goes to a queued row (see
 * "Claiming ahead").  Once there is work, the rest of that wait watches
 * the sockets only while rows are queued, and is a plain sleep otherwise:
 * the answers that arrive meanwhile wait in their sockets for the next
 * cycle, which reads them all at once, and the latch stays set, so the
 * commits of that time neither wake the worker one by one nor signal it
 * (SetLatch of a set latch does nothing); SIGTERM is seen at the end of
 * the sleep (at most POLL_MS, the setting's maximum: no wait is longer
 * anyway).
 */
static void
wait_for_work(TimestampTz cycle_start, bool backlog)
{
	long		pace = fp_attribution_postback_batch_delay_ms;
	bool		work = false;
	int			finished = 0;

	for (;;)
	{
		long		elapsed = TimestampDifferenceMilliseconds(cycle_start,
															  GetCurrentTimestamp());
		bool		queued = false;

		/* sending may collect more answers: each gets its turn */
		while (fp_attribution_postback_http_finished() > finished)
		{
			finished = fp_attribution_postback_http_finished();
			work = true;
			if (send_queued() && backlog)
				return;
			fp_attribution_postback_http_progress();
		}
		work = work || ConfigReloadPending;
		if (elapsed >= POLL_MS || (work && elapsed >= pace))
			return;
		for (int i = 0; i < MAX_REQUESTS && !queued; i++)
			queued = requests[i].used && !requests[i].sent;
		if (work && !queued)
			(void) WaitLatch(NULL, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, pace - elapsed,
							 PG_WAIT_EXTENSION);
		else
			fp_attribution_postback_http_wait((work ? pace : POLL_MS) - elapsed, !work,
											  PG_WAIT_EXTENSION);

		/*
		 * Read before the reset: a latch set between the two is seen by the
		 * next wait, which then returns at once
		 */
		if (MyLatch->is_set)
		{
			work = true;
			ResetLatch(MyLatch);
		}
		CHECK_FOR_INTERRUPTS();
	}
}

void
fp_attribution_postback_worker_main(Datum main_arg)
{
	MemoryContext loop_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(fp_attribution_otlp_database, NULL, 0);
	pgstat_report_appname("fp_attribution postbacks");
	/* see "Commits" in the file header */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);
	worker_cxt = AllocSetContextCreate(TopMemoryContext,
									   "fp_attribution postback requests",
									   ALLOCSET_DEFAULT_SIZES);
	loop_cxt = AllocSetContextCreate(TopMemoryContext,
									 "fp_attribution postback worker loop",
									 ALLOCSET_DEFAULT_SIZES);
	if (!pg_prng_strong_seed(&prng))
		pg_prng_seed(&prng, (uint64) MyProcPid ^ (uint64) GetCurrentTimestamp());
	if (fp_attribution_shared != NULL)
		pg_atomic_write_u32(&fp_attribution_shared->postback_worker_procno,
							MyProc->pgprocno);
	ereport(LOG,
			(errmsg("fp_attribution postback worker started in database \"%s\"",
					fp_attribution_otlp_database)));

	for (;;)
	{
		TimestampTz cycle_start;
		bool		backlog;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			/* a new max_age or retention applies at once */
			next_expire = next_purge = 0;
		}
		cycle_start = GetCurrentTimestamp();
		MemoryContextSwitchTo(loop_cxt);
		backlog = run_cycle();
		MemoryContextReset(loop_cxt);
		wait_for_work(cycle_start, backlog);
	}
}

