--
-- attribution.distribute() on the coordinator of a fresh cluster:
-- every table distributed by advertiser_id in one colocation group (the
-- signing keys too: registered per advertiser), the commands distributed
-- by their advertiser_id.
--
-- Few shards keep the suite fast; the placement of each is Citus' choice.
SET citus.shard_count = 4;
SELECT attribution.distribute();

-- every table, its kind, its key, and whether it shares the clicks' shards
-- (citus_tables does not list tables that belong to an extension)
SELECT p.logicalrelid AS table_name,
	   CASE p.partmethod WHEN 'h' THEN 'distributed' WHEN 'n' THEN 'reference' END AS kind,
	   column_to_column_name(p.logicalrelid, p.partkey) AS distribution_column,
	   p.colocationid = c.colocationid AS colocated_with_clicks,
	   (SELECT count(*) FROM pg_dist_shard s WHERE s.logicalrelid = p.logicalrelid) AS shards
  FROM pg_dist_partition p,
	   (SELECT colocationid FROM pg_dist_partition
		 WHERE logicalrelid = 'attribution.clicks'::regclass) c
 ORDER BY p.logicalrelid::text COLLATE "C";

-- the functions sent whole to the worker of their advertiser_id argument
SELECT o.objid::regprocedure AS function,
	   (SELECT proargnames[o.distribution_argument_index + 1] FROM pg_proc
		 WHERE oid = o.objid) AS by_argument,
	   o.colocationid = (SELECT colocationid FROM pg_dist_partition
						  WHERE logicalrelid = 'attribution.clicks'::regclass) AS colocated
  FROM pg_dist_object o
 WHERE o.classid = 'pg_proc'::regclass AND o.distribution_argument_index IS NOT NULL
 ORDER BY o.objid::regprocedure::text COLLATE "C";

-- the triggers exist on every shard placement, as on the logical tables
SELECT s.logicalrelid AS table_name, count(*) AS placements,
	   bool_and(r.result::bigint = (SELECT count(*) FROM pg_trigger t
									 WHERE t.tgrelid = s.logicalrelid AND NOT t.tgisinternal))
		   AS all_have_the_triggers
  FROM pg_dist_shard s,
	   LATERAL run_command_on_placements(s.logicalrelid,
			'SELECT count(*) FROM pg_trigger WHERE tgrelid = ''%s''::regclass AND NOT tgisinternal') r
 WHERE r.shardid = s.shardid
 GROUP BY 1 ORDER BY s.logicalrelid::regclass::text COLLATE "C";

-- SET LOCAL is forwarded to the workers in new sessions of this database
SELECT setconfig FROM pg_db_role_setting
 WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND setrole = 0;

-- a second call finds nothing left to do
SELECT attribution.distribute();
SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'attribution.%';

-- refused where it cannot work: in a database without Citus
CREATE DATABASE fp_nocitus;
\c fp_nocitus
CREATE EXTENSION fp_attribution;
\set VERBOSITY default
SELECT attribution.distribute();
\set VERBOSITY terse
\c postgres
DROP DATABASE fp_nocitus;
