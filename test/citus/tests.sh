#!/bin/bash
# The checks of the cluster suite, run by test/citus/run.sh inside
# test/citus/cluster.sh (PG* point at the coordinator).  The SQL files in
# sql/ run on the coordinator and are compared with expected/ (diffs
# printed on failure); the rest (delegation, trace context from each
# source, the spans the nodes export, concurrent writers, a worker backend killed mid-load, the
# receipt logs, the update refused on a cluster distributed at 2.0, run
# last) are shell checks.  One PASS/FAIL line per check.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$here/results				# kept for review, as pg_regress keeps its own
mkdir -p "$out"
. "$(dirname "$0")/check_lib.sh"
sqltest() {						# sqltest NAME: sql/NAME.sql against expected/NAME.out
	psql -X -a -q -v ON_ERROR_STOP=0 -v VERBOSITY=terse \
		<"$here/sql/$1.sql" >"$out/$1.out" 2>&1
	if diff -u "$here/expected/$1.out" "$out/$1.out" >"$out/$1.diff"; then
		pass "$1"
	else
		fail "$1 (diff follows)"
		cat "$out/$1.diff"
	fi
}

# Set-up and the SQL-level checks (outputs reviewed in expected/)
sqltest distribute
sqltest commands
sqltest lifecycle
sqltest bulk_load

# verify_all() runs on each node, one pass per shard group: the totals are
# those of every chain the cluster holds, and a row changed on a shard
# behind the triggers' back is found and named as on one node
check "verify_all() totals over the shard groups" \
	"$(q -c "SELECT 'true ' || count(*) || ' ' || sum(n) FROM (SELECT count(*) AS n FROM attribution.receipts
			  GROUP BY advertiser_id, aggregate_type, aggregate_id) c")" \
	"$(q -c "SELECT ok || ' ' || chains_checked || ' ' || receipts_checked FROM attribution.verify_all()")"
tamper() {						# tamper REFUNDED_CENTS: set adv-l's lc-2 on its shard
	psql -XAtq -v ON_ERROR_STOP=1 -p "$(worker_port adv-l)" >/dev/null <<SQL
SET session_replication_role = replica;
UPDATE $(q -c "SELECT pg_catalog.shard_name('attribution.conversions',
		pg_catalog.get_shard_id_for_distribution_column('attribution.conversions', 'adv-l'))")
   SET refunded_cents = $1 WHERE order_id = 'lc-2';
SQL
}
tamper 0
check "verify_all() finds a row changed on a shard" "f 1 adv-l conversion lc-2 row" \
	"$(q -c "SELECT concat_ws(' ', ok, chains_failed, failed_advertiser_id, failed_aggregate_type,
						  failed_aggregate_id, failed_check) FROM attribution.verify_all()")"
tamper 400
check "verify_all() passes once the row is put back" "true 0" \
	"$(q -c "SELECT ok || ' ' || chains_failed FROM attribution.verify_all()")"

check "distribute() on a worker is refused" "ERROR:  55000" \
	"$(psql -XAtq -p "$CITUS_WORKER1_PORT" -v VERBOSITY=sqlstate -c 'SELECT attribution.distribute()' 2>&1)"

# An autocommit command is delegated whole: one task, on the worker
# holding the advertiser's shards
for adv in adv-a adv-b; do
	plan=$(q -c "EXPLAIN (COSTS OFF) SELECT attribution.track_click('aff-x', advertiser_id => '$adv')")
	tasks=$(sed -n 's/.*Task Count: \([0-9]*\).*/\1/p' <<<"$plan")
	node=$(sed -n 's/.*Node: host=127.0.0.1 port=\([0-9]*\).*/\1/p' <<<"$plan")
	check "track_click for $adv is one task on its worker" "1 $(worker_port $adv)" "$tasks $node"
done

bash "$here/trace_context.sh" || status=1
node "$here/exported_spans.js" || status=1
bash "$here/concurrency.sh" || status=1
bash "$here/postbacks.sh" || status=1
bash "$here/reports.sh" || status=1
bash "$here/logs.sh" || status=1
bash "$here/upgrade.sh" || status=1
exit $status
