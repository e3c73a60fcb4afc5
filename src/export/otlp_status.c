/*-------------------------------------------------------------------------
 *
 * otlp_status.c
 *	  The exporter's counters in shared memory and the SQL function behind
 *	  attribution.exporter_status.
 *
 * Locking: only the exporter workers write.  The claim positions and
 * claims of spans and logs are otlp_source.c's (see its protocol): each
 * worker's claims are written by that worker alone and survive its
 * restarts, so a batch in hand is neither lost nor sent twice.  The
 * counters are pg_atomic_uint64,
 * bumped with fetch-add and read without a lock.  last_error and the two
 * timestamps are written and read under the signal's spinlock, held only
 * for a bounded copy (never across anything that can ereport).  The
 * struct is created once under AddinShmemInitLock (shmem.c calls
 * fp_attribution_otlp_status_init from its startup hook).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "fp_attribution/otlp.h"
#include "fp_attribution/redact.h"
#include "fp_attribution/shmem.h"

FpOtlpStatus *fp_attribution_otlp_status = NULL;

Size
fp_attribution_otlp_status_size(void)
{
	return MAXALIGN(sizeof(FpOtlpStatus));
}

/*
 * Create or attach the status struct; the caller holds AddinShmemInitLock.
 */
void
fp_attribution_otlp_status_init(void)
{
	bool		found;

	fp_attribution_otlp_status = ShmemInitStruct("fp_attribution otlp status",
												 fp_attribution_otlp_status_size(),
												 &found);
	if (found)
		return;
	for (int s = 0; s < FP_OTLP_NSIGNALS; s++)
	{
		FpOtlpSignalStatus *st = &fp_attribution_otlp_status->signal[s];

		pg_atomic_init_u64(&st->sent, 0);
		pg_atomic_init_u64(&st->failed, 0);
		pg_atomic_init_u64(&st->retried, 0);
		pg_atomic_init_u64(&st->dropped, 0);
		pg_atomic_init_u64(&st->rejected, 0);
		pg_atomic_init_u64(&st->requests, 0);
		pg_atomic_init_u64(&st->request_us, 0);
		SpinLockInit(&st->mutex);
		st->last_error[0] = '\0';
		st->last_error_time = 0;
		st->last_success_time = 0;
	}
	for (int s = 0; s < FP_OTLP_NSIGNALS; s++)
		pg_atomic_init_u64(&fp_attribution_otlp_status->claimed[s], 0);
	memset(fp_attribution_otlp_status->claims, 0,
		   sizeof(fp_attribution_otlp_status->claims));
}

/*
 * Record the latest error of a signal (worker only).  Every reader of
 * exporter_status sees it, so the secrets of URLs are removed here, the
 * one place last_error is written.
 */
void
fp_attribution_otlp_status_error(FpOtlpSignal signal, const char *error)
{
	FpOtlpSignalStatus *st = &fp_attribution_otlp_status->signal[signal];
	TimestampTz now = GetCurrentTimestamp();
	char		redacted[sizeof(st->last_error)];

	fp_attribution_redact_urls(redacted, error, sizeof(redacted));
	SpinLockAcquire(&st->mutex);
	strlcpy(st->last_error, redacted, sizeof(st->last_error));
	st->last_error_time = now;
	SpinLockRelease(&st->mutex);
}

/* Count records accepted by the collector (worker only) */
void
fp_attribution_otlp_status_success(FpOtlpSignal signal, uint64 records)
{
	FpOtlpSignalStatus *st = &fp_attribution_otlp_status->signal[signal];
	TimestampTz now = GetCurrentTimestamp();

	pg_atomic_fetch_add_u64(&st->sent, records);
	SpinLockAcquire(&st->mutex);
	st->last_success_time = now;
	SpinLockRelease(&st->mutex);
}

/*
 * attribution.exporter_status_internal() returns one row per signal.
 */
PG_FUNCTION_INFO_V1(fp_attribution_exporter_status);
Datum
fp_attribution_exporter_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	fp_attribution_require_shmem();
	InitMaterializedSRF(fcinfo, 0);
	for (int s = 0; s < FP_OTLP_NSIGNALS; s++)
	{
		FpOtlpSignalStatus *st = &fp_attribution_otlp_status->signal[s];
		Datum		values[11];
		bool		nulls[11] = {false};
		uint64		requests = pg_atomic_read_u64(&st->requests);
		uint64		request_us = pg_atomic_read_u64(&st->request_us);
		char		error[sizeof(st->last_error)];
		TimestampTz error_time;
		TimestampTz success_time;

		SpinLockAcquire(&st->mutex);
		memcpy(error, st->last_error, sizeof(error));
		error_time = st->last_error_time;
		success_time = st->last_success_time;
		SpinLockRelease(&st->mutex);

		values[0] = CStringGetTextDatum(fp_attribution_otlp_signal_names[s]);
		values[1] = Int64GetDatum((int64) pg_atomic_read_u64(&st->sent));
		values[2] = Int64GetDatum((int64) pg_atomic_read_u64(&st->failed));
		values[3] = Int64GetDatum((int64) pg_atomic_read_u64(&st->retried));
		values[4] = Int64GetDatum((int64) pg_atomic_read_u64(&st->dropped));
		values[5] = Int64GetDatum((int64) pg_atomic_read_u64(&st->rejected));
		values[6] = CStringGetTextDatum(error);
		nulls[6] = (error[0] == '\0');
		values[7] = TimestampTzGetDatum(error_time);
		nulls[7] = (error_time == 0);
		values[8] = TimestampTzGetDatum(success_time);
		nulls[8] = (success_time == 0);
		values[9] = Int64GetDatum((int64) requests);
		values[10] = Float8GetDatum(requests ? request_us / 1000.0 / requests : 0.0);
		nulls[10] = (requests == 0);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
