/*-------------------------------------------------------------------------
 *
 * status.c
 *	  SQL access to the shared counters: attribution.telemetry_status and
 *	  its reset function.
 *
 * Counters are atomics (see shmem.c), so reading needs no lock.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/timestamp.h"

#include "fp_attribution/shmem.h"

/*
 * attribution.telemetry_status_internal() returns one row of counters.
 */
PG_FUNCTION_INFO_V1(fp_attribution_telemetry_status);
Datum
fp_attribution_telemetry_status(PG_FUNCTION_ARGS)
{
	FpAttributionCounters *c;
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false};

	fp_attribution_require_shmem();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	c = &fp_attribution_shared->counters;
	values[0] = Int64GetDatum((int64) pg_atomic_read_u64(&c->invalid_traceparents));
	values[1] = Int64GetDatum((int64) pg_atomic_read_u64(&c->invalid_tracestates));
	values[2] = TimestampTzGetDatum(c->reset_time);
	values[3] = Int64GetDatum((int64) pg_atomic_read_u64(&c->verifications_success));
	values[4] = Int64GetDatum((int64) pg_atomic_read_u64(&c->verifications_failed));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * attribution.reset_telemetry_status() zeroes the counters.
 */
PG_FUNCTION_INFO_V1(fp_attribution_reset_telemetry_status);
Datum
fp_attribution_reset_telemetry_status(PG_FUNCTION_ARGS)
{
	FpAttributionCounters *c;

	fp_attribution_require_shmem();
	c = &fp_attribution_shared->counters;
	pg_atomic_write_u64(&c->invalid_traceparents, 0);
	pg_atomic_write_u64(&c->invalid_tracestates, 0);
	pg_atomic_write_u64(&c->verifications_success, 0);
	pg_atomic_write_u64(&c->verifications_failed, 0);
	c->reset_time = GetCurrentTimestamp();
	PG_RETURN_VOID();
}
