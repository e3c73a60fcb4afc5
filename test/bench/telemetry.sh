#!/bin/bash
# Benchmarks of the telemetry core (never run by the tests).
#
#   test/bench/telemetry.sh micro     cost of one span / metric / log record
#   test/bench/telemetry.sh pgbench   track_click throughput, telemetry on/off
#   test/bench/telemetry.sh           both
#
# Runs against the installed extension (make install first) on a private
# server in a temporary directory, as the postgres OS user when started as
# root.  Environment: ROUNDS (pgbench rounds, default 5), SECONDS_PER_RUN
# (default 10), CLIENTS (default 4), N (micro iterations, default 1000000).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
what=${1:-all}
rounds=${ROUNDS:-5}
secs=${SECONDS_PER_RUN:-10}
clients=${CLIENTS:-4}
n=${N:-1000000}
bin=$(pg_config --bindir)
port=${PGPORT_BENCH:-5477}
dir=$(mktemp -d /tmp/fp_attribution_bench.XXXXXX)

run() {
	if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}
psql_b() { run "$bin/psql -X -q -At -h $dir -p $port -d postgres -c \"$1\""; }

cleanup() {
	run "$bin/pg_ctl -D $dir/data -m immediate stop" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] && chown postgres: "$dir"

run "$bin/initdb -D $dir/data -A trust" >/dev/null
cat >> "$dir/data/postgresql.conf" <<CONF
shared_preload_libraries = 'fp_attribution'
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
fsync = off
synchronous_commit = off
max_connections = 20
CONF
run "$bin/pg_ctl -D $dir/data -l $dir/log -w start" >/dev/null
psql_b "CREATE EXTENSION fp_attribution"

if [ "$what" = micro ] || [ "$what" = all ]; then
	make -s -C "$here" >/dev/null
	[ "$(id -u)" = 0 ] && cp "$here/telemetry_bench.so" "$dir/" && chown postgres: "$dir/telemetry_bench.so"
	so=$([ "$(id -u)" = 0 ] && echo "$dir/telemetry_bench.so" || echo "$here/telemetry_bench.so")
	psql_b "CREATE FUNCTION telemetry_bench(text, int) RETURNS float8 AS '$so', 'fp_attribution_telemetry_bench' LANGUAGE C STRICT"
	echo "micro-benchmark: mean ns per record over $n records (median of 5 runs)"
	for kind in span counter histogram series log; do
		med=$(for i in 1 2 3 4 5; do psql_b "SELECT round(telemetry_bench('$kind', $n)::numeric, 1)"; done | sort -g | sed -n 3p)
		printf '  %-10s %8s ns\n' "$kind" "$med"
	done
fi

if [ "$what" = pgbench ] || [ "$what" = all ]; then
	cat > "$dir/click.sql" <<'SQL'
\set a random(1, 200)
SELECT count(*) FROM attribution.track_click('aff-' || :a, ip => '192.0.2.1', user_agent => 'bench');
SQL
	[ "$(id -u)" = 0 ] && chown postgres: "$dir/click.sql"
	tps() {
		psql_b "ALTER SYSTEM SET fp_attribution.telemetry = $1" && psql_b "SELECT pg_reload_conf()" >/dev/null
		run "$bin/pgbench -n -h $dir -p $port -c $clients -j 2 -T $secs -f $dir/click.sql postgres" |
			sed -n 's/^tps = \([0-9.]*\).*/\1/p'
	}
	echo "pgbench track_click, $clients clients, ${secs}s per run, sampling 100%: tps off / on / ratio"
	ratios=()
	tps off >/dev/null		# warm-up
	for r in $(seq "$rounds"); do
		if [ $((r % 2)) = 1 ]; then off=$(tps off); on=$(tps on); else on=$(tps on); off=$(tps off); fi
		ratio=$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.4f", a / b }')
		ratios+=("$ratio")
		printf '  round %d: %10s %10s %8s\n' "$r" "$off" "$on" "$ratio"
	done
	printf '  median on/off ratio: %s\n' "$(printf '%s\n' "${ratios[@]}" | sort -g | sed -n "$(( (rounds + 1) / 2 ))p")"
	psql_b "SELECT 'spans written: ' || spans_written || ', dropped: ' || spans_dropped FROM attribution.telemetry_status"
fi
