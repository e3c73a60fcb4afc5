#!/bin/bash
# The OTLP exporter under the highest command rate: pgbench runs
# attribution.track_click (-M prepared, CLIENTS clients, default 8: more
# than the two cores can serve, so the backends never wait for a client
# and the rate is the machine's highest) for SECONDS with the
# exporter's default settings and 100 % sampling, sending to
# test/bench/discard_receiver.js on 127.0.0.1, once per protocol
# (http/protobuf, http/json, grpc).  Prints, per signal, the records
# written, exported (sent), dropped (overwritten before export, or in a
# batch given up on), the exporter's throughput (sent per second of
# the run) and its requests' size and duration, and the exporter workers' CPU time over the run with the
# microseconds of it per record exported (spans and logs together).  Runs on a private server (test/e2e/cluster.sh); assumes
# "make install".  Run as root (drops to postgres) or postgres:
#   test/bench/export_load.sh [seconds, default 60] [protocols...]
# OTLP_WORKERS=N sets fp_attribution.otlp_workers (default: the default,
# 1); FP_BENCH_PORT=P puts the receivers on ports P and P + 1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" = 0 ]; then
	exec su postgres -s /bin/bash -c "PATH='$PATH' CLIENTS='${CLIENTS:-8}' OTLP_WORKERS='${OTLP_WORKERS:-}' FP_BENCH_PORT='${FP_BENCH_PORT:-0}' bash '$0' $*"
fi
if [ "${1:-}" != --inner ]; then
	secs=${1:-60}
	shift || true
	protos=("$@")
	[ ${#protos[@]} -gt 0 ] || protos=(http/protobuf http/json grpc)
	for proto in "${protos[@]}"; do
		# cluster.sh shortens the exporter's delays for the tests: restore the defaults
		E2E_EXTRA_CONF="fp_attribution.otlp_schedule_delay = 5000
fp_attribution.otlp_metric_interval = 60000
fp_attribution.otlp_timeout = 10000
fp_attribution.sampling_ratio = 1
fp_attribution.otlp_protocol = '$proto'
${OTLP_WORKERS:+fp_attribution.otlp_workers = $OTLP_WORKERS}" bash "$here/../e2e/cluster.sh" bash "$0" --inner "$secs"
	done
	exit 0
fi
secs=$2
. "$here/discard_receiver.sh"
start_discard_receiver otlp_load
proto=$(q "SHOW fp_attribution.otlp_protocol")
port=$http_port
if [ "$proto" = grpc ]; then port=$grpc_port; fi
q "ALTER SYSTEM SET fp_attribution.otlp_endpoint = 'http://127.0.0.1:$port'" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
sleep 1

echo "SELECT 1 FROM attribution.track_click('aff-' || (random() * 100)::int, ip => '203.0.113.7');" > "$work/click.sql"
wpids=$(q "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE backend_type = 'fp_attribution exporter'")
# the exporters' CPU time, summed (nanoseconds on the CPU from the
# scheduler, finer than the 10 ms ticks of /proc/PID/stat), and their
# voluntary context switches (each a wait for the latch or a socket: their
# wake-ups)
cpu_ns() { local p; for p in $wpids; do cat /proc/"$p"/task/*/schedstat; done | awk '{ n += $1 } END { printf "%.0f", n }'; }
wakeups() { local p; for p in $wpids; do cat "/proc/$p/status"; done | awk '/^voluntary_ctxt_switches/ { n += $2 } END { print n }'; }
c0=$(cpu_ns) v0=$(wakeups)
tps=$(pgbench -n -M prepared -c "${CLIENTS:-8}" -j 2 -T "$secs" -f "$work/click.sql" 2>/dev/null |
	sed -n 's/^tps = \([0-9.]*\) .*/\1/p')
# let the exporter finish what is queued (at most a schedule delay and a request)
settled="SELECT bool_and(e.sent + e.rejected + e.dropped =
	CASE e.signal WHEN 'traces' THEN t.spans_written ELSE t.logs_written END)
	FROM attribution.exporter_status e, attribution.telemetry_status t
	WHERE e.signal IN ('traces', 'logs')"
for _ in $(seq 150); do [ "$(q "$settled")" = t ] && break; sleep 0.1; done
c1=$(cpu_ns) v1=$(wakeups)
echo "== $proto: track_click at $tps clicks/s for $secs s, ${CLIENTS:-8} clients, load average $(cut -d' ' -f1-3 /proc/loadavg)"
q "SELECT format('%-6s written %s, exported %s, dropped %s (%s %%), exporter %s records/s, %s requests of %s records and %s ms on average',
		e.signal, w.written, e.sent, e.dropped,
		round(100.0 * e.dropped / greatest(w.written, 1), 2), round(e.sent / $secs.0),
		e.requests, round(e.sent / greatest(e.requests, 1)),
		round(e.avg_request_ms::numeric, 1))
	FROM attribution.exporter_status e, attribution.telemetry_status t,
		LATERAL (SELECT CASE e.signal WHEN 'traces' THEN t.spans_written ELSE t.logs_written END) w(written)
	WHERE e.signal IN ('traces', 'logs') ORDER BY e.signal DESC"
q "SELECT format('exporter CPU (%s workers): %s s, %s µs per record exported; %s wake-ups, %s per request',
		$(echo $wpids | wc -w), round($((c1 - c0)) / 1e9, 3),
		round($((c1 - c0)) / 1e3 / greatest(sum(sent), 1), 2),
		$((v1 - v0)), round($((v1 - v0)) / greatest(sum(requests), 1), 1))
	FROM attribution.exporter_status WHERE signal IN ('traces', 'logs')"
