/*-------------------------------------------------------------------------
 *
 * telemetry_rings.h
 *	  Between the metrics half of the telemetry core (telemetry.c, which
 *	  owns the shared-memory hooks and the lock tranche) and the span and
 *	  log rings (telemetry_rings.c).  The consumers' API is telemetry.h.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_TELEMETRY_RINGS_H
#define FP_ATTRIBUTION_TELEMETRY_RINGS_H

#include "storage/lwlock.h"

#include "fp_attribution/telemetry.h"

/* telemetry_rings.c */
extern Size fp_attribution_telemetry_rings_shmem_size(void);
extern void fp_attribution_telemetry_rings_shmem_init(LWLock *spans_lock,
													  LWLock *logs_lock);
extern void fp_attribution_telemetry_ring_state(FpSignal signal, int64 *out);
extern void fp_attribution_telemetry_ring_reset(FpSignal signal);
extern void fp_attribution_telemetry_ring_export_drops(FpSignal signal,
													   uint64 n);

/* telemetry.c: the error for consumers when shared memory is missing */
extern void fp_attribution_telemetry_require(void);

#endif							/* FP_ATTRIBUTION_TELEMETRY_RINGS_H */
