/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  The fixed shared-memory segment: counters and single-word gauges.
 *
 * Locking: the segment is created once under AddinShmemInitLock, taken by
 * the startup hook in fp_attribution.c.  The counters in
 * FpAttributionCounters are pg_atomic_uint64 and are updated with fetch-add
 * and read with pg_atomic_read_u64, so neither side takes a lock; a reader
 * may see one counter a moment ahead of another, which is fine for
 * monitoring.  reset_time is written only by the reset function
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

#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "fp_attribution/shmem.h"

FpAttributionSharedState *fp_attribution_shared = NULL;

Size
fp_attribution_shmem_size(void)
{
	return MAXALIGN(sizeof(FpAttributionSharedState));
}

/*
 * Create or attach the segment, with AddinShmemInitLock held by the
 * caller (the startup hook in fp_attribution.c, which also sets up the
 * other subsystems' segments; shmem.c itself depends on none of them).
 * A postmaster crash-restart calls it again, hence the reset of the
 * pointer first.
 */
void
fp_attribution_shmem_init(void)
{
	bool		found;

	fp_attribution_shared = NULL;
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
