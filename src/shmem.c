/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  Reservation and attachment of fp_attribution's shared memory.
 *
 * Locking: the segment is created once under AddinShmemInitLock.  The
 * counters in FpAttributionCounters are pg_atomic_uint64 and are updated
 * with fetch-add and read with pg_atomic_read_u64, so neither side takes a
 * lock; a reader may see one counter a moment ahead of another, which is
 * fine for monitoring.  reset_time is written only by the reset function
 * and read for display; a torn read is impossible on the 64-bit platforms
 * PostgreSQL supports for atomics, and harmless otherwise.
 *
 * log_lag_us has one writer, the ledger worker (log_worker.c), which
 * computes the whole gauge in its own memory after each integration run
 * and publishes it with one pg_atomic_write_u64; the exporter
 * (otlp_source.c) reads it with one pg_atomic_read_u64.  A single atomic
 * word, so the reader sees either the previous run's value or the new
 * one, never a mix, and no lock or barrier is needed: nothing else is
 * published with it.  FP_LOG_LAG_NONE means no value (no successful run
 * since the server started, or integration by the worker is off).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "fp_attribution/otlp.h"
#include "fp_attribution/shmem.h"
#include "fp_attribution/telemetry.h"

FpAttributionSharedState *fp_attribution_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static Size
fp_attribution_shmem_size(void)
{
	return MAXALIGN(sizeof(FpAttributionSharedState));
}

static void
fp_attribution_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(fp_attribution_shmem_size());
	RequestAddinShmemSpace(fp_attribution_otlp_status_size());
	fp_attribution_telemetry_shmem_request();
}

/*
 * Create or attach the segment.  Runs in the postmaster (and again in each
 * EXEC_BACKEND child); a postmaster crash-restart calls it again, hence the
 * reset of the pointer first.
 */
static void
fp_attribution_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	fp_attribution_shared = NULL;
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	fp_attribution_shared = ShmemInitStruct("fp_attribution state",
											fp_attribution_shmem_size(),
											&found);
	if (!found)
	{
		FpAttributionCounters *c = &fp_attribution_shared->counters;

		pg_atomic_init_u64(&c->invalid_traceparents, 0);
		pg_atomic_init_u64(&c->invalid_tracestates, 0);
		pg_atomic_init_u64(&c->verifications_success, 0);
		pg_atomic_init_u64(&c->verifications_failed, 0);
		c->reset_time = GetCurrentTimestamp();
		pg_atomic_init_u32(&fp_attribution_shared->postback_worker_procno,
						   PG_UINT32_MAX);
		pg_atomic_init_u64(&fp_attribution_shared->log_lag_us, FP_LOG_LAG_NONE);
	}
	fp_attribution_otlp_status_init();
	fp_attribution_telemetry_shmem_init();
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Chain our hooks in front of any previous ones.  Called from _PG_init
 * only while shared_preload_libraries is being processed.
 */
void
fp_attribution_shmem_install_hooks(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = fp_attribution_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = fp_attribution_shmem_startup;
}

/*
 * Raise the standard error when something needs shared memory that does
 * not exist because the library was loaded late.
 */
void
fp_attribution_require_shmem(void)
{
	if (fp_attribution_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("fp_attribution must be loaded via shared_preload_libraries"),
				 errhint("Add fp_attribution to shared_preload_libraries and restart the server.")));
}
