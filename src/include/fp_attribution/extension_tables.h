/*-------------------------------------------------------------------------
 *
 * extension_tables.h
 *	  The extension's own tables, for C code that reads or writes them in
 *	  place (extension_tables.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_EXTENSION_TABLES_H
#define FP_ATTRIBUTION_EXTENSION_TABLES_H

#include "utils/acl.h"
#include "utils/relcache.h"

extern Oid	fp_attribution_table_oid(const char *name);
extern Relation fp_attribution_open_table(const char *name, LOCKMODE lockmode,
										  AclMode required);
extern Relation fp_attribution_open_table_oid(Oid relid, LOCKMODE lockmode,
											  AclMode required);

#endif							/* FP_ATTRIBUTION_EXTENSION_TABLES_H */
