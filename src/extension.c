/*-------------------------------------------------------------------------
 *
 * extension.c
 *	  The extension's own catalog entry: who owns it.
 *
 * The install script creates every table, function and the schema as the
 * role running CREATE EXTENSION, recorded as the extension's owner in
 * pg_extension.  Code that must act with the rights of "the owner of the
 * extension's tables" outside a trigger (which knows its table) asks here,
 * so no table is looked up by its name: a table may be renamed, and on a
 * distributed database the rows live in shard tables under other names.
 *
 * Shared memory: none.  No state: pg_extension has no syscache in
 * PostgreSQL 15, so each call is one index probe, made only off the hot
 * path (attribution.append_receipt).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"

#include "fp_attribution/extension.h"

/*
 * The owner of the fp_attribution extension in the current database.
 * Raises an error if the extension is not installed.
 */
Oid
fp_attribution_extension_owner(void)
{
	Oid			extid = get_extension_oid("fp_attribution", false);
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			owner;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(extid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "could not find tuple for extension %u", extid);
	owner = ((Form_pg_extension) GETSTRUCT(tuple))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return owner;
}
