/*-------------------------------------------------------------------------
 *
 * extension_tables.c
 *	  Finding the extension's own tables for C code that works on them in
 *	  place instead of through SQL (verify_all, log integration, the late
 *	  attribution probe).
 *
 * These are the logical tables of the schema the extension's script
 * creates, found by name there as a statement naming them would be; the
 * tables rows are written to by triggers are never identified this way
 * (a trigger is told its table's kind: STYLE section 11).  One place, so
 * that a lookup by the extension's catalog entries can replace the names.
 *
 * No shared state: nothing to lock.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/namespace.h"
#include "miscadmin.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "fp_attribution/extension_tables.h"

/* The OID of the extension's table name; an error when it is missing */
Oid
fp_attribution_table_oid(const char *name)
{
	Oid			relid = get_relname_relid(name, get_namespace_oid("attribution", false));

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table \"%s\" of extension fp_attribution does not exist",
						name)));
	return relid;
}

/*
 * The extension's table name, opened in lockmode once the current user is
 * found to hold the privileges required, as the statement doing the same
 * work would check them.
 */
Relation
fp_attribution_open_table(const char *name, LOCKMODE lockmode, AclMode required)
{
	return fp_attribution_open_table_oid(fp_attribution_table_oid(name), lockmode, required);
}

/* ... the table relid, whose OID its caller looked up already */
Relation
fp_attribution_open_table_oid(Oid relid, LOCKMODE lockmode, AclMode required)
{
	Relation	rel = table_open(relid, lockmode);
	AclResult	acl = pg_class_aclcheck(relid, GetUserId(), required);

	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, get_relkind_objtype(rel->rd_rel->relkind),
					   RelationGetRelationName(rel));
	return rel;
}
