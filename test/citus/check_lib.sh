# Shared by the cluster suite's shell checks (tests.sh and the scripts it
# runs); source it.  One PASS/FAIL line per check; status ends 1 after a
# FAIL.  PG* point at the coordinator.
status=0
pass() { echo "PASS citus: $*"; }
fail() { echo "FAIL citus: $*"; status=1; }
check() {						# check NAME EXPECTED ACTUAL
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: expected '$2', got '$3'"; fi
}
q() { psql -XAtq -v ON_ERROR_STOP=1 "$@"; }
worker_port() {					# the worker holding ADVERTISER's shards
	q -c "SELECT nodeport FROM pg_catalog.pg_dist_placement p
		  JOIN pg_catalog.pg_dist_node n USING (groupid)
		 WHERE p.shardid = pg_catalog.get_shard_id_for_distribution_column('attribution.clicks', '$1')"
}
