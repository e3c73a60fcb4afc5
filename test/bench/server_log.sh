#!/bin/bash
# Benchmark of the server log hook (fp_attribution.server_log_min_level),
# never run by the tests.
#
#   test/bench/server_log.sh lines     cost per log line, hook at warning vs off
#   test/bench/server_log.sh pgbench   TPS of track_click + one WARNING, on vs off
#   test/bench/server_log.sh           both
#
# Runs against the installed extension (make install first) on a private
# server in a temporary directory, as the postgres OS user when started as
# root.  Both sides write every line to the server log (log_min_messages =
# warning); the OTLP exporter is off, so the figures are the hook's: build
# a record and copy it into the logs ring.  The cost per line is the
# logging backend's own CPU time (/proc/self/schedstat), so other load on
# the machine disturbs it less than it does wall-clock time.  Environment: N (lines per run,
# default 20000), RUNS (per side, default 7), ROUNDS (pgbench rounds,
# default 3), SECONDS_PER_RUN (default 10), CLIENTS (default 4),
# PGPORT_BENCH (default 5478).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
what=${1:-all}
n=${N:-20000}
runs=${RUNS:-7}
rounds=${ROUNDS:-3}
secs=${SECONDS_PER_RUN:-10}
clients=${CLIENTS:-4}
bin=$(pg_config --bindir)
port=${PGPORT_BENCH:-5478}
dir=$(mktemp -d /tmp/fp_attribution_bench.XXXXXX)

run() {
	if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}
psql_b() { run "$bin/psql -X -q -At -h $dir -p $port -d postgres -c \"$1\""; }
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }

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
log_min_messages = warning
fp_attribution.otlp_enabled = off
CONF
run "$bin/pg_ctl -D $dir/data -l $dir/log -w start" >/dev/null
psql_b "CREATE EXTENSION fp_attribution"

# The hook's setting is a reload one: each psql or pgbench run below is a
# new session, started after the reload.
hook() {
	psql_b "ALTER SYSTEM SET fp_attribution.server_log_min_level = $1"
	psql_b "SELECT pg_reload_conf()" >/dev/null
}

if [ "$what" = lines ] || [ "$what" = all ]; then
	# CPU time of the backend itself (first field of /proc/self/schedstat,
	# nanoseconds on a CPU), not wall-clock time: the machine may be shared
	psql_b "CREATE FUNCTION bench_cpu_ns() RETURNS float8 LANGUAGE sql
		AS \\\$\\\$ SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::float8 \\\$\\\$"
	psql_b "CREATE FUNCTION bench_lines(n int) RETURNS float8 LANGUAGE plpgsql AS \\\$\\\$
		DECLARE t0 float8 := bench_cpu_ns();
		BEGIN
			FOR i IN 1 .. n LOOP RAISE WARNING 'bench line %', i; END LOOP;
			RETURN (bench_cpu_ns() - t0) / 1000;
		END \\\$\\\$"
	lines() { PGOPTIONS='-c client_min_messages=error' psql_b "SELECT bench_lines($n)"; }
	echo "cost per log line: $n RAISE WARNING in one function, backend CPU time, $runs runs per side, interleaved"
	off=() on=()
	hook off; lines >/dev/null	# warm-up
	for r in $(seq "$runs"); do
		hook off; off+=("$(lines)")
		hook warning; on+=("$(lines)")
	done
	m_off=$(median "${off[@]}") m_on=$(median "${on[@]}")
	awk -v off="$m_off" -v on="$m_on" -v n="$n" 'BEGIN {
		printf "  median per line: off %.3f µs, on %.3f µs; hook %.3f µs per line; ratio on/off %.4f\n",
			off / n, on / n, (on - off) / n, on / off }'
	psql_b "SELECT '  logs ring: written ' || logs_written || ', capacity ' || logs_capacity FROM attribution.telemetry_status"
fi

if [ "$what" = pgbench ] || [ "$what" = all ]; then
	cat > "$dir/click.sql" <<'SQL'
\set a random(1, 200)
SELECT count(*) FROM attribution.track_click('aff-' || :a, ip => '192.0.2.1', user_agent => 'bench');
DO $$ BEGIN RAISE WARNING 'bench warning'; END $$;
SQL
	[ "$(id -u)" = 0 ] && chown postgres: "$dir/click.sql"
	tps() {
		run "PGOPTIONS='-c client_min_messages=error' $bin/pgbench -n -h $dir -p $port -c $clients -j 2 -T $secs -f $dir/click.sql postgres" |
			sed -n 's/^tps = \([0-9.]*\).*/\1/p'
	}
	echo "pgbench: track_click + one RAISE WARNING per transaction, $clients clients, ${secs}s per run, interleaved rounds"
	printf '  %-6s %10s %10s %8s\n' round "tps off" "tps on" ratio
	ratios=()
	hook off; tps >/dev/null	# warm-up
	for r in $(seq "$rounds"); do
		if [ $((r % 2)) = 1 ]; then hook off; t_off=$(tps); hook warning; t_on=$(tps)
		else hook warning; t_on=$(tps); hook off; t_off=$(tps); fi
		ratios+=("$(awk -v a="$t_on" -v b="$t_off" 'BEGIN { printf "%.4f", a / b }')")
		printf '  %-6s %10s %10s %8s\n' "$r" "$t_off" "$t_on" "${ratios[-1]}"
	done
	printf '  median TPS on/off: %s\n' "$(median "${ratios[@]}")"
fi
