#!/bin/bash
# Benchmark: attribution.track_click throughput on a Citus cluster
# (test/citus/cluster.sh: coordinator + 2 workers on this machine, after
# attribution.distribute()) against a single fp_attribution server, in the
# same run, with the same settings and the same pgbench command:
#
#   pgbench -n -M prepared -c CLIENTS -j 2 -T SECONDS_PER_RUN -f click.sql
#
# where click.sql tracks a click of one of 1000 advertisers (so every shard
# gets work); as a prepared statement with the advertiser a parameter,
# Citus plans each call anew and sends it whole to the advertiser's worker.
# The two targets alternate ROUNDS times (default 3); the medians are
# reported with the ratio cluster / single node.  synchronous_commit is
# off on every server, so the CPU cost, not the WAL flush, is compared.
# Needs citus (../shared/citus/build.sh) and the extension installed; run
# as root or postgres.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" = 0 ]; then
	exec su postgres -s /bin/bash -c "PATH='$PATH' ROUNDS=${ROUNDS:-} SECONDS_PER_RUN=${SECONDS_PER_RUN:-} CLIENTS=${CLIENTS:-} CITUS_PORTS='${CITUS_PORTS:-}' bash '$here/citus.sh'"
fi
if [ -z "${CITUS_DIR:-}" ]; then
	CITUS_EXTRA_CONF="synchronous_commit = off" exec bash "$here/../citus/cluster.sh" bash "$here/citus.sh"
fi

# Inside the cluster: PG* point at the coordinator
ROUNDS=${ROUNDS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
CLIENTS=${CLIENTS:-8}
bin=$(pg_config --bindir)
single=$CITUS_DIR/single
"$bin/initdb" -D "$single/data" -A trust -U postgres >/dev/null
cp "$CITUS_DIR/coordinator/data/pg_hba.conf" "$single/data/"
cat >>"$single/data/postgresql.conf" <<CONF
shared_preload_libraries = 'fp_attribution'
listen_addresses = ''
port = $PGPORT
unix_socket_directories = '$single'
max_connections = 100
fsync = off
full_page_writes = off
synchronous_commit = off
CONF
"$bin/pg_ctl" -D "$single/data" -l "$single/server.log" -w start >/dev/null
trap '"$bin/pg_ctl" -D "$single/data" -m immediate stop >/dev/null 2>&1 || true' EXIT
psql -XAtq -h "$single" -c "CREATE EXTENSION fp_attribution"
psql -XAtq -c "SELECT attribution.distribute()" >/dev/null

cat >"$single/click.sql" <<'SQL'
\set adv random(1, 1000)
SELECT 1 FROM attribution.track_click('aff-1', advertiser_id => :adv);
SQL
cmd="pgbench -n -M prepared -c $CLIENTS -j 2 -T $SECONDS_PER_RUN -f click.sql"
run() {							# run HOST: one pgbench run, prints its tps
	pgbench -n -M prepared -c "$CLIENTS" -j 2 -T "$SECONDS_PER_RUN" -h "$1" \
		-f "$single/click.sql" 2>&1 |
		awk '/^tps/ { printf "%.0f\n", $3 } /(error|aborted)/ { print > "/dev/stderr" }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# one short warm-up of each (connections, caches, the cluster's plans)
SECONDS_PER_RUN=2 run "$single" >/dev/null
SECONDS_PER_RUN=2 run 127.0.0.1 >/dev/null
: >"$single/single.tps"
: >"$single/cluster.tps"
for _ in $(seq 1 "$ROUNDS"); do
	run "$single" >>"$single/single.tps"
	run 127.0.0.1 >>"$single/cluster.tps"
done
s=$(median <"$single/single.tps")
c=$(median <"$single/cluster.tps")
echo "command: $cmd   ($ROUNDS rounds each, alternating)"
echo "single node: tps $(paste -sd' ' "$single/single.tps")  median $s"
echo "cluster (coordinator + 2 workers): tps $(paste -sd' ' "$single/cluster.tps")  median $c"
awk -v c="$c" -v s="$s" 'BEGIN { printf "cluster / single node: %.2fx\n", c / s }'
