/*-------------------------------------------------------------------------
 *
 * clock.h
 *	  The two clocks of telemetry: wall-clock time for the times records
 *	  carry (OTLP *_time_unix_nano), and a monotonic clock for durations,
 *	  which a wall-clock step (NTP, an administrator) cannot make negative
 *	  or huge.  Conversions between TimestampTz and Unix nanoseconds.
 *	  No shared memory and no locks.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_CLOCK_H
#define FP_ATTRIBUTION_CLOCK_H

#include <time.h>

#include "datatype/timestamp.h"

#define FP_NSEC_PER_SEC INT64CONST(1000000000)

/* Microseconds from the Unix epoch to the PostgreSQL epoch (2000-01-01) */
#define FP_UNIX_TO_POSTGRES_EPOCH_USECS \
	((TimestampTz) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * USECS_PER_SEC)

/* Current wall-clock time in nanoseconds since the Unix epoch */
static inline int64
fp_attribution_now_unix_nano(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64) ts.tv_sec * FP_NSEC_PER_SEC + ts.tv_nsec;
}

/*
 * Nanoseconds on the monotonic clock, from an arbitrary origin: only
 * differences between two readings mean something.
 */
static inline int64
fp_attribution_monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64) ts.tv_sec * FP_NSEC_PER_SEC + ts.tv_nsec;
}

/* TimestampTz (microseconds since 2000) to and from Unix nanoseconds */
static inline int64
fp_attribution_timestamptz_to_unix_nano(TimestampTz t)
{
	return (t + FP_UNIX_TO_POSTGRES_EPOCH_USECS) * 1000;
}

static inline TimestampTz
fp_attribution_unix_nano_to_timestamptz(int64 ns)
{
	return (TimestampTz) (ns / 1000) - FP_UNIX_TO_POSTGRES_EPOCH_USECS;
}

#endif							/* FP_ATTRIBUTION_CLOCK_H */
