/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The OTLP export background worker.
 *
 * One worker ("fp_attribution exporter" in pg_stat_activity, waiting on
 * wait event "Extension") ships spans, log records and metrics to the
 * collector.  Each signal is a small state machine: fetch a batch (spans
 * and logs as soon as fp_attribution.otlp_batch_size records are queued,
 * found when the backends wake the worker or when its previous request
 * ends, else after fp_attribution.otlp_schedule_delay; metrics every
 * fp_attribution.otlp_metric_interval), encode it, send it; a retryable
 * failure keeps the encoded batch and schedules another attempt with
 * exponential backoff and jitter (or after Retry-After, at most
 * RETRY_AFTER_MAX_MS or the schedule delay), up to MAX_ATTEMPTS; anything
 * else drops the batch and counts it.  A batch is counted once, when it
 * is done, and the worker's claim on it is then released (otlp_source.c).
 *
 * fp_attribution.otlp_workers such workers may run (bgw_main_arg is the
 * worker's number, from 0); they share the spans and logs, each claiming
 * the next batch in shared memory, so N requests per signal can be in
 * flight; only worker 0 exports metrics (exports_signal).  A worker that
 * claims a full batch and sees another waiting wakes the others.
 *
 * The signals are sent concurrently (otlp_http.c: libcurl's multi
 * interface, one easy handle per signal): the worker starts a signal's
 * request and goes on fetching, encoding and starting the others, then
 * sleeps on its latch and the requests' sockets together.  Each signal's
 * attempts, backoff and Retry-After are its own, and retries are scheduled
 * through the wait's timeout, never by sleeping, so a signal whose
 * collector hangs or refuses holds back no other.  Memory is bounded: one
 * encoded batch per signal, plus the telemetry buffers, which drop and
 * count when full.  A request's own allocations (URL, headers, compressed
 * body, response) live in its signal's context in otlp_http.c, reset when
 * it finishes, never in TopMemoryContext, where the worker's transactions
 * leave CurrentMemoryContext.
 *
 * Backends never wait for the workers: they only SetLatch the latches the
 * workers register with the telemetry core, when a push leaves a full
 * batch queued while a worker sleeps without a batch of that signal
 * (await_batches).
 * The worker holds no lock while encoding or sending: records are copied
 * out first (otlp_source.c).
 *
 * SIGHUP: settings are re-read; the connections are dropped once no
 * request is in flight (those in flight finish where they were sent).
 * SIGTERM: SignalHandlerForShutdownRequest instead of die, because the
 * worker drains: it makes one last attempt per signal (a request in
 * flight is that attempt), the signals concurrently, bounded by
 * FINAL_FLUSH_MS in total, then exits with status 1 so the postmaster
 * restarts it after bgw_restart_time (pg_terminate_backend) unless the
 * server is shutting down.  An ERROR also exits and restarts.
 *
 * The exporter only exports: the jobs that write to the database on a
 * schedule (receipt-log integration, checkpoint push, automatic approval)
 * run in the ledger worker (ledger_worker.c), so none of them can hold
 * back a batch.
 *
 * The worker connects to fp_attribution.otlp_database (default
 * "postgres") for one short transaction per metric export, to read the
 * affiliate.windows.active gauge; like any connection, it keeps DROP
 * DATABASE of that database waiting.  That transaction is bounded by a
 * lock and a statement timeout, and its errors skip the gauge instead of
 * ending the worker (otlp_source.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "fp_attribution/compat.h"
#include "fp_attribution/otlp.h"
#include "fp_attribution/redact.h"
#include "fp_attribution/shmem.h"

PGDLLEXPORT void fp_attribution_worker_main(Datum main_arg);

/* Attempts per batch before it is dropped (first try + 5 retries) */
#define MAX_ATTEMPTS 6
/* Backoff: 1 s doubling to 30 s, times a jitter factor in [0.5, 1.5) */
#define BACKOFF_INITIAL_MS 1000
#define BACKOFF_MAX_MS 30000
/* Total time allowed for the final flush on shutdown */
#define FINAL_FLUSH_MS 5000
/*
 * Longest wait a Retry-After may impose, unless the schedule delay is
 * longer: a collector asking for an hour would otherwise stall its signal
 * while the ring overwrites the records behind the batch.
 */
#define RETRY_AFTER_MAX_MS 30000

typedef struct SignalState
{
	MemoryContext cxt;			/* holds the batch; reset when it is done */
	void	   *records;		/* the batch: packed spans or logs, or metric
								 * points (telemetry.h) */
	int			nrecords;		/* how many; 0 when there is no batch */
	StringInfo	batch;			/* records encoded, or NULL */
	int			batch_protocol; /* the protocol batch was encoded for */
	int			attempts;		/* attempts made for batch */
	TimestampTz retry_at;		/* next attempt of batch */
	TimestampTz next_fetch;		/* when to look for the next batch */
	bool		in_flight;		/* an attempt at batch is being sent */
	bool		failing;		/* an error was logged; stay quiet */
	uint64		sent_in_config; /* config_generation when the attempt began */
} SignalState;

static SignalState state[FP_OTLP_NSIGNALS];

/*
 * Reloads processed so far: an attempt begun before the latest says
 * nothing of the new settings, so its failure, logged, does not silence
 * theirs.
 */
static uint64 config_generation = 0;

/*
 * Whether this worker exports signal s: every worker shares the spans and
 * logs, the first alone sends the metrics (a snapshot each would repeat).
 */
static bool
exports_signal(FpOtlpSignal s)
{
	return s != FP_OTLP_METRICS || fp_attribution_otlp_worker_number == 0;
}

/*
 * (Re-)encode a signal's records for the current protocol.  A reload may
 * change the protocol while a batch waits for a retry; its records are
 * kept so that it is sent in the new format rather than lost.
 */
static void
encode_batch(FpOtlpSignal s, SignalState *st)
{
	MemoryContext old = MemoryContextSwitchTo(st->cxt);

	if (st->batch)
		pfree(st->batch->data);
	switch (s)
	{
		case FP_OTLP_TRACES:
			st->batch = fp_attribution_otlp_encode_spans(st->records, st->nrecords);
			break;
		case FP_OTLP_LOGS:
			st->batch = fp_attribution_otlp_encode_logs(st->records, st->nrecords);
			break;
		default:
			st->batch = fp_attribution_otlp_encode_metrics(st->records, st->nrecords);
			break;
	}
	st->batch_protocol = fp_attribution_otlp_signal_protocol(s);
	MemoryContextSwitchTo(old);
}

/* Copy and encode the next batch of a signal, if there is one */
static void
fetch_batch(FpOtlpSignal s, SignalState *st, TimestampTz now)
{
	MemoryContext old = MemoryContextSwitchTo(st->cxt);
	int			max = fp_attribution_otlp_batch_size;
	int			delay = fp_attribution_otlp_schedule_delay_ms;

	switch (s)
	{
		case FP_OTLP_TRACES:
		case FP_OTLP_LOGS:
			st->nrecords = fp_attribution_otlp_fetch_packed(s, (char **) &st->records,
															max);
			/* more than this batch waits: another worker may take it */
			if (st->nrecords >= max && fp_attribution_otlp_workers > 1 &&
				fp_attribution_otlp_backlog(s, max))
				fp_attribution_telemetry_wake_other_exporters();
			break;
		default:
			st->nrecords = fp_attribution_otlp_fetch_metrics((FpMetricPoint **) &st->records);
			delay = fp_attribution_otlp_metric_interval_ms;
			break;
	}
	MemoryContextSwitchTo(old);
	st->attempts = 0;
	st->retry_at = now;
	/*
	 * The next partial batch waits for the schedule delay; a full one goes
	 * as soon as it is queued (run_signals), so under load every request
	 * is full
	 */
	st->next_fetch = TimestampTzPlusMilliseconds(now, delay);
	if (st->nrecords > 0)
		encode_batch(s, st);
	else
		MemoryContextReset(st->cxt);
}

/*
 * Forget the current batch of a signal, which has been counted (sent,
 * rejected or dropped): only now is this worker's claim on it released.
 */
static void
finish_batch(FpOtlpSignal s, SignalState *st)
{
	if (s != FP_OTLP_METRICS && st->nrecords > 0)
		fp_attribution_otlp_release_batch(s);
	st->batch = NULL;
	st->records = NULL;
	st->nrecords = 0;
	MemoryContextReset(st->cxt);
}

/* Delay before attempt number attempts + 1: exponential with jitter */
static int
backoff_ms(int attempts, int retry_after_ms)
{
	double		ms = BACKOFF_INITIAL_MS;

	if (retry_after_ms >= 0)
		return Min(retry_after_ms,
				   Max(RETRY_AFTER_MAX_MS, fp_attribution_otlp_schedule_delay_ms));
	for (int i = 1; i < attempts && ms < BACKOFF_MAX_MS; i++)
		ms *= 2;
	ms = Min(ms, BACKOFF_MAX_MS);
	return (int) (ms * (0.5 + pg_prng_double(&pg_global_prng_state)));
}

/*
 * Log a failure at LOG the first time after a success, DEBUG1 after that,
 * so an unreachable collector does not flood the server log.
 */
static void
report_failure(FpOtlpSignal s, SignalState *st, const char *what,
			   const FpOtlpResult *r)
{
	char		error[sizeof(r->error)];

	/* the error names the URL, which may hold credentials */
	fp_attribution_redact_urls(error, r->error, sizeof(error));
	fp_attribution_otlp_status_error(s, error);
	ereport(st->failing ? DEBUG1 : LOG,
			(errmsg("fp_attribution exporter: %s %s: %s",
					what, fp_attribution_otlp_signal_names[s], error)));
	if (st->sent_in_config == config_generation)
		st->failing = true;
}

/* Give up on a signal's batch: count it as failed and its records dropped */
static void
drop_batch(FpOtlpSignal s, SignalState *st, const FpOtlpResult *r)
{
	FpOtlpSignalStatus *ss = &fp_attribution_otlp_status->signal[s];

	pg_atomic_fetch_add_u64(&ss->failed, 1);
	pg_atomic_fetch_add_u64(&ss->dropped, st->nrecords);
	report_failure(s, st, "dropped a batch of", r);
	finish_batch(s, st);
}

/* Start an attempt at sending a signal's batch, within timeout_ms */
static void
start_send(FpOtlpSignal s, SignalState *st, int timeout_ms)
{
	if (st->batch_protocol != fp_attribution_otlp_signal_protocol(s))
		encode_batch(s, st);
	st->in_flight = true;
	st->sent_in_config = config_generation;
	fp_attribution_otlp_start(s, st->batch, timeout_ms);
}

/*
 * Account for the end of an attempt: the batch is done (sent, or dropped
 * when the failure is permanent, the attempts are used up or this was the
 * final flush), or it waits for its retry.
 */
static void
end_send(FpOtlpSignal s, SignalState *st, const FpOtlpResult *r, bool final)
{
	FpOtlpSignalStatus *ss = &fp_attribution_otlp_status->signal[s];

	st->in_flight = false;
	st->attempts++;
	pg_atomic_fetch_add_u64(&ss->requests, 1);
	pg_atomic_fetch_add_u64(&ss->request_us, (uint64) (r->elapsed_ms * 1000));
	elog(DEBUG1, "fp_attribution exporter: %s request of %d bytes, %d records: outcome %d in %.1f ms",
		 fp_attribution_otlp_signal_names[s], st->batch->len, st->nrecords,
		 (int) r->outcome, r->elapsed_ms);

	if (r->outcome == FP_OTLP_SENT)
	{
		int64		rejected = Min(Max(r->rejected, 0), st->nrecords);

		fp_attribution_otlp_status_success(s, st->nrecords - rejected);
		if (rejected > 0)
		{
			pg_atomic_fetch_add_u64(&ss->rejected, rejected);
			fp_attribution_otlp_status_error(s, r->error[0] ? r->error :
											 "collector rejected part of the request");
		}
		st->failing = false;
		finish_batch(s, st);
		return;
	}
	if (r->outcome == FP_OTLP_RETRYABLE && !final && st->attempts < MAX_ATTEMPTS)
	{
		pg_atomic_fetch_add_u64(&ss->retried, 1);
		report_failure(s, st, "will retry", r);
		st->retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												   backoff_ms(st->attempts, r->retry_after_ms));
		return;
	}
	drop_batch(s, st, r);
}

/*
 * Advance every signal as far as now allows: take the results of finished
 * requests, fetch and start new ones; returns ms until the next scheduled
 * event.  A request in flight is no event of ours: its end wakes
 * fp_attribution_otlp_wait, and the other signals go on meanwhile.
 */
static long
run_signals(TimestampTz now)
{
	TimestampTz next = TimestampTzPlusMilliseconds(now, 60 * 1000);

	for (int s = 0; s < FP_OTLP_NSIGNALS; s++)
	{
		SignalState *st = &state[s];
		FpOtlpResult r;

		if (!exports_signal(s))
			continue;
		if (st->in_flight)
		{
			if (!fp_attribution_otlp_take_result(s, &r))
				continue;
			end_send(s, st, &r, false);
		}
		if (!fp_attribution_otlp_enabled)
			continue;
		/* a full batch goes at once, whatever the schedule (OTel batching) */
		if (st->batch == NULL &&
			(now >= st->next_fetch ||
			 (s != FP_OTLP_METRICS &&
			  fp_attribution_otlp_backlog(s, fp_attribution_otlp_batch_size))))
			fetch_batch(s, st, now);
		if (st->batch != NULL && now >= st->retry_at)
		{
			start_send(s, st, fp_attribution_otlp_signal_timeout(s));
			continue;
		}
		if (st->batch != NULL)
			next = Min(next, st->retry_at);
		else
			next = Min(next, st->next_fetch);
	}
	now = GetCurrentTimestamp();
	return next <= now ? 0 : (long) ((next - now + 999) / 1000);
}

/*
 * Shutdown: one last attempt per signal, no retries, all within
 * FINAL_FLUSH_MS.  A request in flight is that attempt; otherwise the
 * pending batch, else a fresh one, is sent.  Requests still in flight at
 * the deadline are abandoned and their batches dropped.
 */
static void
final_flush(void)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   FINAL_FLUSH_MS);
	bool		busy;

	for (int s = 0; s < FP_OTLP_NSIGNALS; s++)
	{
		SignalState *st = &state[s];

		if (st->in_flight || !fp_attribution_otlp_enabled || !exports_signal(s))
			continue;
		if (st->batch == NULL)
			fetch_batch(s, st, GetCurrentTimestamp());
		if (st->batch != NULL)
			start_send(s, st, Min(FINAL_FLUSH_MS,
								  fp_attribution_otlp_signal_timeout(s)));
	}
	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();

		busy = false;
		for (int s = 0; s < FP_OTLP_NSIGNALS; s++)
		{
			SignalState *st = &state[s];
			FpOtlpResult r;

			if (st->in_flight && fp_attribution_otlp_take_result(s, &r))
				end_send(s, st, &r, true);
			busy |= st->in_flight;
		}
		if (!busy || now >= deadline)
			break;
		fp_attribution_otlp_wait((long) ((deadline - now + 999) / 1000),
								 FP_WAIT_EVENT_EXPORTER);
		ResetLatch(MyLatch);
	}
	for (int s = 0; s < FP_OTLP_NSIGNALS; s++)
	{
		SignalState *st = &state[s];
		FpOtlpResult r = {0};

		if (!st->in_flight)
			continue;
		fp_attribution_otlp_cancel(s);
		st->in_flight = false;
		strlcpy(r.error, "the final flush on shutdown ran out of time", sizeof(r.error));
		drop_batch(s, st, &r);
	}
}

/*
 * Before sleeping: have the backends wake the worker when a full batch of
 * a signal it holds no batch of is queued.  Returns false when one already
 * is, and the worker must not sleep.
 */
static bool
await_batches(void)
{
	bool		sleep = true;

	for (int s = 0; s < FP_OTLP_NSIGNALS; s++)
	{
		if (s == FP_OTLP_METRICS || state[s].batch != NULL ||
			!fp_attribution_otlp_enabled)
			continue;
		if (fp_attribution_otlp_await_batch(s, true))
			sleep = false;
	}
	return sleep;
}

/* Awake: the backends need not wake the worker until it sleeps again */
static void
stop_awaiting(void)
{
	fp_attribution_otlp_await_batch(FP_OTLP_TRACES, false);
	fp_attribution_otlp_await_batch(FP_OTLP_LOGS, false);
}

/* Withdraw the latch from the telemetry core when the worker exits */
static void
unpublish_latch(int code, Datum arg)
{
	stop_awaiting();
	fp_attribution_telemetry_set_exporter_latch(fp_attribution_otlp_worker_number,
												NULL);
}

/*
 * Entry point of the worker.
 */
void
fp_attribution_worker_main(Datum main_arg)
{
	fp_attribution_otlp_worker_number = DatumGetInt32(main_arg);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(fp_attribution_otlp_database, NULL, 0);
	fp_attribution_require_shmem();

	for (int s = 0; s < FP_OTLP_NSIGNALS; s++)
	{
		state[s].cxt = AllocSetContextCreate(TopMemoryContext,
											 "fp_attribution exporter batch",
											 ALLOCSET_DEFAULT_SIZES);
		state[s].next_fetch = GetCurrentTimestamp();
	}
	/* the first metric export waits for a full interval */
	state[FP_OTLP_METRICS].next_fetch =
		TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
									fp_attribution_otlp_metric_interval_ms);
	fp_attribution_telemetry_set_exporter_latch(fp_attribution_otlp_worker_number,
												MyLatch);
	before_shmem_exit(unpublish_latch, (Datum) 0);
	ereport(LOG, (errmsg("fp_attribution exporter %d of %d started",
						 fp_attribution_otlp_worker_number + 1,
						 fp_attribution_otlp_workers)));

	for (;;)
	{
		long		timeout;

		CHECK_FOR_INTERRUPTS();
		if (ShutdownRequestPending)
			break;
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			config_generation++;
			/* new endpoint or protocol: fresh connections, errors logged anew */
			fp_attribution_otlp_http_reset();
			for (int s = 0; s < FP_OTLP_NSIGNALS; s++)
				state[s].failing = false;
		}
		pgstat_report_activity(STATE_RUNNING, "exporting telemetry");
		timeout = run_signals(GetCurrentTimestamp());
		pgstat_report_activity(STATE_IDLE, NULL);
		if (ShutdownRequestPending)
			break;
		/* the latch, the requests in flight or the next scheduled event */
		if (!await_batches())
			timeout = 0;
		fp_attribution_otlp_wait(timeout, FP_WAIT_EVENT_EXPORTER);
		stop_awaiting();
		ResetLatch(MyLatch);
	}

	final_flush();
	ereport(LOG, (errmsg("fp_attribution exporter shutting down")));
	/* status 1: restart after bgw_restart_time unless the server stops */
	proc_exit(1);
}

