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
	# CPU time of the whole server (postmaster, its live children, and the
	# children it has reaped: the pgbench backends) in clock ticks
	server_ticks() {
		local pm t
		pm=$(head -1 "$dir/data/postmaster.pid")
		t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat")
		for c in $(pgrep -P "$pm"); do
			t=$((t + $(awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || echo 0)))
		done
		echo "$t"
	}
	# One run: "<tps> <server CPU microseconds per transaction>"
	run_once() {
		local before out n after
		psql_b "ALTER SYSTEM SET fp_attribution.telemetry = $1" && psql_b "SELECT pg_reload_conf()" >/dev/null
		before=$(server_ticks)
		out=$(run "$bin/pgbench -n -h $dir -p $port -c $clients -j 2 -T $secs -f $dir/click.sql postgres")
		sleep 0.5	# let the postmaster reap the backends
		after=$(server_ticks)
		n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
		awk -v tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out")" -v d=$((after - before)) \
			-v hz="$(getconf CLK_TCK)" -v n="$n" 'BEGIN { printf "%s %.1f\n", tps, d * 1e6 / hz / n }'
	}
	median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
	echo "pgbench track_click, $clients clients, ${secs}s per run, sampling 100%, interleaved rounds"
	echo "  (TPS is noisy on a shared machine; server CPU per transaction is the stable figure)"
	printf '  %-8s %10s %10s %8s %12s %12s %8s\n' round "tps off" "tps on" ratio "cpu/tx off" "cpu/tx on" ratio
	tps_ratios=() cpu_ratios=()
	run_once off >/dev/null		# warm-up
	for r in $(seq "$rounds"); do
		if [ $((r % 2)) = 1 ]; then off=$(run_once off); on=$(run_once on); else on=$(run_once on); off=$(run_once off); fi
		read -r tps_off cpu_off <<<"$off"
		read -r tps_on cpu_on <<<"$on"
		tps_ratios+=("$(awk -v a="$tps_on" -v b="$tps_off" 'BEGIN { printf "%.4f", a / b }')")
		cpu_ratios+=("$(awk -v a="$cpu_on" -v b="$cpu_off" 'BEGIN { printf "%.4f", a / b }')")
		printf '  %-8s %10s %10s %8s %10s µs %10s µs %8s\n' "$r" "$tps_off" "$tps_on" "${tps_ratios[-1]}" \
			"$cpu_off" "$cpu_on" "${cpu_ratios[-1]}"
	done
	printf '  median TPS on/off: %s; median server CPU per transaction on/off: %s\n' \
		"$(median "${tps_ratios[@]}")" "$(median "${cpu_ratios[@]}")"
	psql_b "SELECT 'spans written: ' || spans_written || ', dropped: ' || spans_dropped FROM attribution.telemetry_status"
fi
