/*-------------------------------------------------------------------------
 *
 * shard_group_plans.c
 *	  On a Citus node, the command path's statements prepared against the
 *	  shards of the advertiser's shard group.
 *
 * A statement against a distributed table goes through Citus' planner
 * and local executor, which for every execution deparse a query on the
 * shard, parse and plan it again: most of
 * a worker's CPU went there (doc/citus.md, "Performance").  Yet every
 * statement on the command path names one advertiser_id, so all the rows
 * it reads or writes are in one shard group: the shards with the same
 * hash range of every table of the colocation group of attribution.clicks
 * (attribution.distribute() colocates them all).  When that group is on
 * this node, its statements are prepared once per group against the shard
 * relations themselves (the SQL's attribution.<table> names replaced by
 * the group's shards), which Citus leaves to PostgreSQL's planner.  The
 * group of an advertiser is found as Citus finds it: the hash of the
 * advertiser_id (text, collation "C") by the type's hash function, in the
 * hash ranges of pg_dist_shard.  A group is used only when each of its
 * shards has one placement, and it is on this node (pg_dist_local_group):
 * a replicated shard must be written through Citus, and a shard moved away
 * may linger here until Citus drops it.  Each statement on a group's
 * shards takes the lock Citus' executor takes for a statement on a shard,
 * which keeps the group from moving meanwhile (lock_group()).  On one node
 * (no citus extension), on a coordinator without shards and for a group on
 * another node, the statement is prepared against the tables.  A group's
 * plan is always the generic one: each is run a fraction of the times the
 * statement is (one group in so many), so the plan cache's first five
 * custom plans would be paid for in every group, and the statements are
 * key lookups and inserts whose plan does not depend on the values.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "fp_attribution/relcache_forget.h"
#include "fp_attribution/spi_plans.h"

/* One shard group: a hash range and the shards of the group's tables */
typedef struct ShardGroup
{
	int32		minvalue;
	int32		maxvalue;
	bool		local;			/* every shard here, with one placement */
	uint64		shardid;		/* the first table's shard */
	Oid		   *shards;			/* by the index in group_tables */
} ShardGroup;

/* Citus' ADV_LOCKTAG_CLASS_CITUS_SHARD_METADATA */
#define CITUS_SHARD_METADATA_LOCK 4

/* A statement prepared for one shard group, known by its first shard */
typedef struct GroupPlanKey
{
	FpGroupPlan *plan;
	uint64		shardid;
} GroupPlanKey;

typedef struct GroupPlanEntry
{
	GroupPlanKey key;
	SPIPlanPtr	plan;
} GroupPlanEntry;

/*
 * Backend-local: the colocation group of attribution.clicks as last read
 * from Citus' metadata, valid until a relcache invalidation of one of its
 * tables (Citus sends one for a distributed table whenever its shards or
 * placements change); and the plans prepared for shard groups, by shard
 * id, kept for the session: a plan names its shards, whose names do not
 * change, and the plan cache revalidates it when they do change (a shard
 * moved back is a new relation of the same name).  A plan may be running
 * when the metadata is read again (a trigger's statement under the
 * command's INSERT), so none is ever freed.
 */
static bool groups_valid = false;
static bool groups_callback = false;
static MemoryContext groups_cxt = NULL;
static Oid	group_anchor = InvalidOid;	/* attribution.clicks */
static int	ntables = 0;
static Oid *group_tables = NULL;	/* the distributed tables, by OID */
static int	ngroups = 0;
static ShardGroup *groups = NULL;	/* sorted by hash range */
static HTAB *group_plans = NULL;

/*
 * Relcache invalidation: forget the shard groups when it concerns one of
 * their tables (InvalidOid: every relation).  Not for a shard: ANALYZE
 * sends one for a shard, and the shards do not change without their
 * table's.
 */
static void
forget_groups(Datum arg, Oid relid)
{
	if (!groups_valid)
		return;
	if (!OidIsValid(relid) || relid == group_anchor)
	{
		groups_valid = false;
		return;
	}
	for (int t = 0; t < ntables; t++)
		if (group_tables[t] == relid)
		{
			groups_valid = false;
			return;
		}
}

/*
 * Read the shard groups of attribution.clicks' colocation group from
 * Citus' metadata.
 */
static void
load_groups(void)
{
	uint64		nrows;
	int			rc;

	if (!groups_callback)
	{
		fp_attribution_on_relcache_inval(forget_groups);
		groups_cxt = AllocSetContextCreate(TopMemoryContext,
										   "fp_attribution shard groups",
										   ALLOCSET_SMALL_SIZES);
		groups_callback = true;
	}
	MemoryContextReset(groups_cxt);
	ntables = ngroups = 0;
	group_anchor = InvalidOid;
	/* valid from here on: an invalidation while reading starts over */
	groups_valid = true;

	SPI_connect();
	rc = SPI_execute("SELECT pg_catalog.to_regclass('attribution.clicks')", true, 1);
	if (rc == SPI_OK_SELECT && SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			group_anchor = DatumGetObjectId(d);
	}
	if (!OidIsValid(group_anchor) || !OidIsValid(get_extension_oid("citus", true)))
	{
		SPI_finish();
		return;
	}
	rc = SPI_execute_with_args("SELECT s.shardminvalue::pg_catalog.int4, s.shardmaxvalue::pg_catalog.int4,"
							   " p.logicalrelid::pg_catalog.oid,"
							   " CASE WHEN (SELECT pg_catalog.count(*) FROM pg_catalog.pg_dist_placement l"
							   "            WHERE l.shardid OPERATOR(pg_catalog.=) s.shardid) OPERATOR(pg_catalog.=) 1"
							   "       AND EXISTS (SELECT FROM pg_catalog.pg_dist_placement l, pg_catalog.pg_dist_local_group g"
							   "                   WHERE l.shardid OPERATOR(pg_catalog.=) s.shardid"
							   "                     AND l.groupid OPERATOR(pg_catalog.=) g.groupid)"
							   " THEN pg_catalog.to_regclass(pg_catalog.shard_name(s.logicalrelid, s.shardid))::pg_catalog.oid END,"
							   " s.shardid"
							   " FROM pg_catalog.pg_dist_partition p"
							   " JOIN pg_catalog.pg_dist_shard s ON s.logicalrelid OPERATOR(pg_catalog.=) p.logicalrelid"
							   " WHERE p.partmethod OPERATOR(pg_catalog.=) 'h'"
							   " AND p.colocationid OPERATOR(pg_catalog.=) (SELECT c.colocationid"
							   "  FROM pg_catalog.pg_dist_partition c WHERE c.logicalrelid OPERATOR(pg_catalog.=) $1)"
							   " ORDER BY 1, 3",
							   1, (Oid[]) {REGCLASSOID},
							   (Datum[]) {ObjectIdGetDatum(group_anchor)}, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read the shard groups: %s", SPI_result_code_string(rc));
	nrows = SPI_processed;
	if (nrows > 0)
	{
		MemoryContext old = MemoryContextSwitchTo(groups_cxt);
		int32		first = 0;

		groups = palloc0(nrows * sizeof(ShardGroup));
		group_tables = palloc(nrows * sizeof(Oid));
		for (uint64 i = 0; i < nrows; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			int32		minvalue = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
			Oid			table = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
			bool		shard_null;
			Datum		shard = SPI_getbinval(tup, desc, 4, &shard_null);
			ShardGroup *group;
			int			t;

			if (i == 0)
				first = minvalue;
			if (minvalue == first)
				group_tables[ntables++] = table;
			if (ngroups == 0 || groups[ngroups - 1].minvalue != minvalue)
			{
				group = &groups[ngroups++];
				group->minvalue = minvalue;
				group->maxvalue = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
				group->local = true;
				group->shardid = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
				group->shards = palloc0(nrows * sizeof(Oid));
			}
			group = &groups[ngroups - 1];
			for (t = 0; t < ntables && group_tables[t] != table; t++)
				;
			if (t == ntables || shard_null)
				group->local = false;
			else
				group->shards[t] = DatumGetObjectId(shard);
		}
		/* a group lacking one of the tables' shards is not used */
		for (int g = 0; g < ngroups; g++)
			for (int t = 0; t < ntables; t++)
				if (!OidIsValid(groups[g].shards[t]))
					groups[g].local = false;
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
}

/*
 * The shard group holding advertiser_id's rows, or NULL when the tables
 * are not distributed.
 */
static int
group_of(Datum advertiser_id)
{
	int32		hash;
	int			lo = 0;
	int			hi;

	if (!groups_valid)
		load_groups();
	if (ngroups == 0)
		return -1;
	hash = DatumGetInt32(DirectFunctionCall1Coll(hashtext, C_COLLATION_OID,
												 advertiser_id));
	hi = ngroups - 1;
	while (lo < hi)
	{
		int			mid = (lo + hi + 1) / 2;

		if (groups[mid].minvalue <= hash)
			lo = mid;
		else
			hi = mid - 1;
	}
	if (hash < groups[lo].minvalue || hash > groups[lo].maxvalue)
		return -1;
	return lo;
}

/*
 * Lock shard group g's metadata in share mode until the end of the
 * transaction, as Citus' executor does before a statement on a shard
 * (Citus' own lock tag, SET_LOCKTAG_SHARD_METADATA_RESOURCE: advisory,
 * the shard id in two halves, class 4): a shard move or split, which
 * takes it in exclusive mode on every node for all the group's shards
 * before it switches over, waits for this transaction, so no write goes
 * to a shard that is being moved away.
 */
static void
lock_group(int g)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (groups[g].shardid >> 32),
						 (uint32) groups[g].shardid, CITUS_SHARD_METADATA_LOCK);
	(void) LockAcquire(&tag, ShareLock, false, false);
}

/*
 * sql with every attribution.<table> of the colocation group replaced by
 * that table's shard in group g; NULL when a shard is gone.
 */
static char *
shard_sql(const char *sql, int g)
{
	static const char schema[] = "attribution.";
	StringInfoData buf;
	const char *p = sql;

	initStringInfo(&buf);
	while (*p)
	{
		const char *name = p + strlen(schema);
		const char *end = name;
		int			t;

		if (strncmp(p, schema, strlen(schema)) != 0 ||
			(p > sql && (IS_HIGHBIT_SET(p[-1]) || isalnum((unsigned char) p[-1]) ||
						 p[-1] == '_')))
		{
			appendStringInfoChar(&buf, *p++);
			continue;
		}
		while (*end == '_' || isalnum((unsigned char) *end))
			end++;
		for (t = 0; t < ntables; t++)
		{
			const char *table = get_rel_name(group_tables[t]);

			if (table != NULL && strlen(table) == end - name &&
				strncmp(name, table, end - name) == 0)
				break;
		}
		if (t < ntables)
		{
			Oid			shard = groups[g].shards[t];
			char	   *shard_name = get_rel_name(shard);

			if (shard_name == NULL)
				return NULL;	/* dropped meanwhile */
			appendStringInfoString(&buf,
								   quote_qualified_identifier(get_namespace_name(get_rel_namespace(shard)),
															  shard_name));
		}
		else
			appendBinaryStringInfo(&buf, p, end - p);
		p = end;
	}
	return buf.data;
}

/*
 * The plan of a statement whose rows all belong to advertiser_id (a text
 * Datum; 0 when it is NULL): against the shards of advertiser_id's shard
 * group when they are on this node, else against the tables (see the file
 * header).  Prepared on first use and kept.  Caller is connected to SPI.
 */
SPIPlanPtr
fp_attribution_group_plan(FpGroupPlan *plan, Datum advertiser_id)
{
	int			g = advertiser_id == (Datum) 0 ? -1 : group_of(advertiser_id);
	GroupPlanKey key;
	GroupPlanEntry *entry;
	bool		found;
	char	   *sql;

	if (g < 0 || !groups[g].local)
	{
		if (plan->plan == NULL)
			plan->plan = fp_attribution_keep_plan(plan->sql, plan->nargs,
												  plan->argtypes);
		return plan->plan;
	}
	if (group_plans == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(GroupPlanKey);
		ctl.entrysize = sizeof(GroupPlanEntry);
		group_plans = hash_create("fp_attribution shard group plans", 256, &ctl,
								  HASH_ELEM | HASH_BLOBS);
	}
	memset(&key, 0, sizeof(key));
	key.plan = plan;
	key.shardid = groups[g].shardid;
	entry = hash_search(group_plans, &key, HASH_ENTER, &found);
	if (!found)
		entry->plan = NULL;
	if (entry->plan == NULL)
	{
		sql = shard_sql(plan->sql, g);
		if (sql == NULL)
		{
			groups[g].local = false;
			return fp_attribution_group_plan(plan, advertiser_id);
		}
		entry->plan = fp_attribution_keep_generic_plan(sql, plan->nargs,
													   plan->argtypes);
	}
	lock_group(g);
	return entry->plan;
}
