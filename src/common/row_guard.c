/*-------------------------------------------------------------------------
 *
 * row_guard.c
 *	  Two questions the row triggers ask before they act: is this INSERT a
 *	  restore of rows that already carry receipts, and is a click that a
 *	  conversion names still being inserted by another transaction?
 *
 * Restore.  pg_dump writes the extension's tables (registered with
 * pg_extension_config_dump) as COPY ... FROM stdin, with the rows exactly
 * as they were and, in attribution.receipts, the receipts they already
 * have.  The triggers fire during that COPY, and by default would stamp a
 * new trace context, recompute the window from attribution.windows
 * (restored later, alphabetically) and write a second receipt.  So a COPY
 * FROM issued at top level by a role with the privileges of the table's
 * owner is a restore: the row is taken as written, no receipt and no
 * telemetry are produced, and verify_all() proves afterwards that every
 * row equals its receipts.  Anyone else's COPY is an ordinary insert.
 * pg_dump --inserts is therefore not a supported backup format.
 *
 * On a Citus node the rows of a shard also arrive by COPY FROM when Citus
 * writes them: the rows of an INSERT ... SELECT that the coordinator
 * pulls to itself, of a COPY on the coordinator, and of a shard being
 * moved or split.  A move or split copies rows that already carry their
 * receipts, over a session with a replication origin set up: a restore.
 * The first two come on a connection of Citus' own (application_name
 * "citus_internal gpid=...", no replication origin) and cannot be told
 * apart on the worker; they are new rows, as an INSERT ... SELECT on one
 * node is, unless fp_attribution.restore is on: a restore through the
 * coordinator sets it with SET LOCAL, which Citus forwards to the workers
 * (doc/citus.md).
 *
 * In-flight clicks.  A conversion that names a click inserted by a
 * transaction that has not committed yet cannot see it; recording it as
 * "unknown_click" would be wrong for good.  As a unique-index check does,
 * we look for the key with a dirty snapshot and wait for the inserting
 * transaction to end, then the caller looks again.
 *
 * Shared memory: none.  No locks beyond the transaction lock waited on.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "access/xact.h"
#include "common/hashfn.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "replication/origin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "tcop/pquery.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/portal.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/uuid.h"

#include "fp_attribution/row_guard.h"

/* fp_attribution.restore */
static bool restore_through_citus = false;

/*
 * Define fp_attribution.restore.
 */
void
fp_attribution_row_guard_define_gucs(void)
{
	DefineCustomBoolVariable("fp_attribution.restore",
							 gettext_noop("Takes the rows Citus copies into the shards as restored."),
							 gettext_noop("Set it with SET LOCAL in the transaction that restores "
										  "a dump through a Citus coordinator; otherwise such "
										  "rows are new rows."),
							 &restore_through_citus,
							 false,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
}

/*
 * True when the statement being run at top level is a COPY FROM issued by
 * a role with the privileges of the owner of relation relowner, and not
 * Citus writing new rows into a shard: a restore of rows that already have
 * receipts (see the file header).
 */
bool
fp_attribution_restoring(Oid relowner)
{
	PlannedStmt *stmt;

	if (ActivePortal == NULL || ActivePortal->commandTag != CMDTAG_COPY ||
		list_length(ActivePortal->stmts) != 1)
		return false;
	stmt = linitial_node(PlannedStmt, ActivePortal->stmts);
	if (stmt->utilityStmt == NULL || !IsA(stmt->utilityStmt, CopyStmt) ||
		!((CopyStmt *) stmt->utilityStmt)->is_from)
		return false;
	if (replorigin_session_origin == InvalidRepOriginId &&
		fp_attribution_citus_internal_connection() && !restore_through_citus)
		return false;
	return has_privs_of_role(GetOuterUserId(), relowner);
}

/*
 * Take the late-click lock of a click key (advertiser_id text, click_id
 * uuid) until the end of the transaction: exclusive for a conversion about
 * to be recorded "unknown_click", which then looks for the click once
 * more; shared for a new click, which then looks for such conversions
 * (late_clicks.c).  Whichever comes second waits for the first to end and
 * then, in READ COMMITTED, sees what it wrote, so a click and its
 * conversion racing each other always meet; clicks never wait for each
 * other.  The keys are hashed into FP_LATE_CLICK_SLOTS locks per database,
 * so a transaction inserting any number of clicks holds at most that many
 * (one per key would exhaust the lock table); the price is that an
 * unknown-click conversion may wait for an unrelated click transaction of
 * its slot.  It is an advisory lock tag whose fourth field
 * (FP_LATE_CLICK_LOCK) no SQL advisory lock function uses, so it never
 * collides with an application's advisory locks.
 */
#define FP_LATE_CLICK_LOCK 0x4650
#define FP_LATE_CLICK_SLOTS 64

void
fp_attribution_lock_click_key(Datum advertiser_id, Datum click_id,
							  bool exclusive)
{
	text	   *adv = DatumGetTextPP(advertiser_id);
	uint32		slot;
	LOCKTAG		tag;

	slot = DatumGetUInt32(hash_any((unsigned char *) VARDATA_ANY(adv),
								   VARSIZE_ANY_EXHDR(adv))) ^
		DatumGetUInt32(hash_any(DatumGetUUIDP(click_id)->data, UUID_LEN));
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, slot % FP_LATE_CLICK_SLOTS, 0,
						 FP_LATE_CLICK_LOCK);
	(void) LockAcquire(&tag, exclusive ? ExclusiveLock : ShareLock, false, false);
}

/*
 * attribution.await_click(clicks regclass, advertiser_id text,
 *						   click_id uuid) returns boolean
 *
 * Waits until no transaction other than ours is inserting or deleting a
 * row with this key in clicks (whose primary key must be (advertiser_id
 * text, click_id uuid)), and says whether it had to wait: then the caller
 * reads the click again with a new snapshot.  Like the unique check of a
 * btree insert, it probes the primary key with a dirty snapshot, which
 * also sees uncommitted rows and names the transaction that wrote them.
 * The caller needs SELECT on the table.
 */
PG_FUNCTION_INFO_V1(fp_attribution_await_click);
Datum
fp_attribution_await_click(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	text	   *advertiser_id = PG_GETARG_TEXT_PP(1);
	pg_uuid_t  *click_id = PG_GETARG_UUID_P(2);
	bool		waited = false;
	Relation	heap;
	Relation	index;
	Oid			indexid;
	AclResult	acl;

	acl = pg_class_aclcheck(relid, GetUserId(), ACL_SELECT);
	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_TABLE, get_rel_name(relid));

	heap = table_open(relid, AccessShareLock);
	indexid = RelationGetPrimaryKeyIndex(heap);
	if (!OidIsValid(indexid))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("table \"%s\" has no primary key",
						RelationGetRelationName(heap))));
	index = index_open(indexid, AccessShareLock);
	if (IndexRelationGetNumberOfKeyAttributes(index) != 2 ||
		TupleDescAttr(RelationGetDescr(index), 0)->atttypid != TEXTOID ||
		TupleDescAttr(RelationGetDescr(index), 1)->atttypid != UUIDOID)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("primary key of table \"%s\" is not (text, uuid)",
						RelationGetRelationName(heap))));

	for (;;)
	{
		SnapshotData dirty;
		ScanKeyData key[2];
		IndexScanDesc scan;
		TupleTableSlot *slot = table_slot_create(heap, NULL);
		TransactionId xwait = InvalidTransactionId;

		InitDirtySnapshot(dirty);
		ScanKeyEntryInitialize(&key[0], 0, 1, BTEqualStrategyNumber,
							   InvalidOid, index->rd_indcollation[0],
							   F_TEXTEQ, PointerGetDatum(advertiser_id));
		ScanKeyInit(&key[1], 2, BTEqualStrategyNumber, F_UUID_EQ,
					UUIDPGetDatum(click_id));
		scan = index_beginscan(heap, index, &dirty, 2, 0);
		index_rescan(scan, key, 2, NULL, 0);
		while (index_getnext_slot(scan, ForwardScanDirection, slot))
		{
			xwait = TransactionIdIsValid(dirty.xmin) ? dirty.xmin : dirty.xmax;
			if (TransactionIdIsValid(xwait))
				break;
		}
		index_endscan(scan);
		ExecDropSingleTupleTableSlot(slot);
		if (!TransactionIdIsValid(xwait))
			break;
		XactLockTableWait(xwait, heap, NULL, XLTW_None);
		waited = true;

		/*
		 * Under REPEATABLE READ or SERIALIZABLE our snapshot can never see
		 * the click that just committed; the client must retry, as after a
		 * unique-key conflict.
		 */
		if (IsolationUsesXactSnapshot() && TransactionIdDidCommit(xwait))
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not serialize access due to a concurrent insert of click %s",
							DatumGetCString(DirectFunctionCall1(uuid_out,
																UUIDPGetDatum(click_id)))),
					 errhint("Retry the conversion.")));
	}

	index_close(index, AccessShareLock);
	table_close(heap, AccessShareLock);
	PG_RETURN_BOOL(waited);
}
