/*-------------------------------------------------------------------------
 *
 * report_rollup.c
 *	  What the report rollup's row triggers (sql/fp_attribution--2.0.sql,
 *	  "Reporting") need from C: whether the row is being restored.
 *
 * A restore (pg_dump's COPY of the tables, row_guard.c) brings back
 * attribution.report_totals and attribution.report_deltas as dumped, in
 * the same snapshot as the clicks and conversions; the triggers must then
 * add nothing, or every restored row would be counted twice.  They are
 * PL/pgSQL, so they ask here.
 *
 * Shared memory: none.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "fmgr.h"
#include "utils/syscache.h"

#include "fp_attribution/row_guard.h"

PG_FUNCTION_INFO_V1(fp_attribution_restoring_into);

/*
 * attribution.restoring_into(rel regclass) returns boolean: true when the
 * running statement is a restore into rel, a COPY FROM by a role with the
 * privileges of rel's owner (row_guard.c).  rel is the table the trigger
 * fired on (TG_RELID: a copy or shard of the table has its own owner
 * check, as the C triggers do).
 */
Datum
fp_attribution_restoring_into(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	HeapTuple	tuple;
	Oid			relowner;

	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		PG_RETURN_BOOL(false);
	relowner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	PG_RETURN_BOOL(fp_attribution_restoring(relowner));
}
