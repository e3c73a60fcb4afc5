--
-- attribution.distribute() on the coordinator of a fresh cluster:
-- every table distributed by advertiser_id in one colocation group (or a
-- reference table), the commands distributed by their advertiser_id.
--
-- Few shards keep the suite fast; the placement of each is Citus' choice.
SET citus.shard_count = 4;
SELECT attribution.distribute();

-- every table, its kind, its key, and whether it shares the clicks' shards
SELECT t.table_name, t.citus_table_type, t.distribution_column,
	   t.colocation_id = c.colocation_id AS colocated_with_clicks, t.shard_count
  FROM citus_tables t,
	   (SELECT colocation_id FROM citus_tables
		 WHERE table_name = 'attribution.clicks'::regclass) c
 ORDER BY t.table_name::text COLLATE "C";

-- the functions sent whole to the worker of their advertiser_id argument
SELECT o.objid::regprocedure AS function,
	   (pg_get_function_arguments(o.objid)::text ~ 'advertiser_id') AS by_advertiser,
	   o.colocationid = (SELECT colocation_id FROM citus_tables
						  WHERE table_name = 'attribution.clicks'::regclass) AS colocated
  FROM pg_dist_object o
 WHERE o.classid = 'pg_proc'::regclass AND o.distribution_argument_index IS NOT NULL
 ORDER BY 1::text COLLATE "C";

-- the triggers exist on every shard, under the logical tables' definitions
SELECT logicalrelid::regclass AS table_name, count(*) AS shards,
	   bool_and(triggers = expected) AS all_shards_have_the_triggers
  FROM (SELECT s.logicalrelid, s.shardid,
			   (SELECT count(*) FROM pg_trigger WHERE tgrelid = s.logicalrelid AND NOT tgisinternal) AS expected,
			   (SELECT result::bigint FROM run_command_on_placements(s.logicalrelid,
					'SELECT count(*) FROM pg_trigger WHERE tgrelid = ''%s''::regclass AND NOT tgisinternal') r
				 WHERE r.shardid = s.shardid) AS triggers
		  FROM pg_dist_shard s
		 WHERE s.logicalrelid::regclass::text LIKE 'attribution.%') x
 GROUP BY 1 ORDER BY 1::text COLLATE "C";

-- SET LOCAL is forwarded to the workers in new sessions of this database
SELECT setconfig FROM pg_db_role_setting
 WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND setrole = 0;

-- a second call finds nothing left to do
SELECT attribution.distribute();
SELECT count(*) FROM citus_tables WHERE table_name::text LIKE 'attribution.%';

-- refused where it cannot work: in a database without Citus
CREATE DATABASE fp_nocitus;
\c fp_nocitus
CREATE EXTENSION fp_attribution;
\set VERBOSITY default
SELECT attribution.distribute();
\set VERBOSITY terse
\c postgres
DROP DATABASE fp_nocitus;
