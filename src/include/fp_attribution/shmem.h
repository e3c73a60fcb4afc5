/*-------------------------------------------------------------------------
 *
 * shmem.h
 *	  The fixed shared-memory segment of fp_attribution and its counters.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_SHMEM_H
#define FP_ATTRIBUTION_SHMEM_H

#include "port/atomics.h"

/*
 * Counters shared by all backends.  Each is a monotonic atomic, so readers
 * and writers need no lock; see shmem.c for the protocol of everything
 * else in the segment.
 */
typedef struct FpAttributionCounters
{
	pg_atomic_uint64 invalid_traceparents;	/* malformed traceparent seen */
	pg_atomic_uint64 invalid_tracestates;	/* tracestate dropped */
	pg_atomic_uint64 verifications_success; /* receipts that verified */
	pg_atomic_uint64 verifications_failed;	/* receipts/heads that did not */
	TimestampTz reset_time;		/* set by reset; read without lock */
} FpAttributionCounters;

typedef struct FpAttributionSharedState
{
	FpAttributionCounters counters;
	/* the postback worker's PGPROC number, PG_UINT32_MAX when none */
	pg_atomic_uint32 postback_worker_procno;

	/*
	 * The ledger worker's integration lag in microseconds (the gauge
	 * ledger.integration.lag), FP_LOG_LAG_NONE when there is none to export.
	 * Written only by the ledger worker, read by the exporter; see shmem.c.
	 */
	pg_atomic_uint64 log_lag_us;
} FpAttributionSharedState;

#define FP_LOG_LAG_NONE PG_UINT64_MAX

/* NULL unless loaded via shared_preload_libraries */
extern FpAttributionSharedState *fp_attribution_shared;

extern Size fp_attribution_shmem_size(void);
extern void fp_attribution_shmem_init(void);
extern void fp_attribution_require_shmem(void);

#define FP_COUNT(field) \
	do { \
		if (fp_attribution_shared != NULL) \
			pg_atomic_fetch_add_u64(&fp_attribution_shared->counters.field, 1); \
	} while (0)

#endif							/* FP_ATTRIBUTION_SHMEM_H */
