#!/bin/bash
# Encode-and-send throughput of the OTLP exporter (target >= 100,000
# spans/s), on a private server (test/e2e/cluster.sh) sending to
# test/bench/discard_receiver.js on 127.0.0.1.  A backlog of spans is built
# with export paused (pgbench for SECONDS, 80 track_click calls per
# transaction), then
# export is resumed and the time to drain it is measured (polled every
# 20 ms, and including the reload that resumes it).  Assumes "make install".
#   test/bench/export_throughput.sh [seconds, default 10] [protocol, default http/protobuf]
# Run as root (drops to postgres) or postgres.  Prints spans/s.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
secs=${1:-10}
proto=${2:-http/protobuf}
if [ "$(id -u)" = 0 ]; then
	exec su postgres -s /bin/bash -c "PATH='$PATH' bash '$0' $secs '$proto'"
fi
if [ "$secs" != --inner ]; then
	export E2E_EXTRA_CONF="fp_attribution.max_spans = 200000
fp_attribution.max_logs = 200000
fp_attribution.sampling_ratio = 1
fp_attribution.otlp_enabled = off
fp_attribution.otlp_protocol = '$proto'"
	exec bash "$here/../e2e/cluster.sh" bash "$0" --inner "$secs"
fi
secs=$2
work=$(mktemp -d /tmp/fp_otlp_tput.XXXXXX)
port=${FP_BENCH_PORT:-4631}
node "$here/discard_receiver.js" "$port" $((port + 1)) > "$work/ready" &
rcv=$!
trap 'kill $rcv 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do grep -q ready "$work/ready" && break; sleep 0.1; done
q() { psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
if q "SHOW fp_attribution.otlp_protocol" | grep -q grpc; then port=$((port + 1)); fi
q "ALTER SYSTEM SET fp_attribution.otlp_endpoint = 'http://127.0.0.1:$port'" >/dev/null

# the backlog: 80 clicks per transaction (400 spans, within a transaction's
# bound), from two clients
echo "SELECT count(attribution.track_click('aff-' || (i % 100), ip => '203.0.113.7')) FROM generate_series(1, 80) i;" > "$work/clicks.sql"
pgbench -n -M prepared -c 2 -j 2 -T "$secs" -f "$work/clicks.sql" >/dev/null 2>&1
q "SELECT 'backlog: ' || spans_used || ' spans, ' || spans_dropped || ' dropped' FROM attribution.telemetry_status"
backlog=$(q "SELECT spans_used FROM attribution.telemetry_status")
q "ALTER SYSTEM SET fp_attribution.otlp_enabled = on" >/dev/null
# FP_BENCH_PERF=FILE: profile the worker during the drain (perf record)
if [ -n "${FP_BENCH_PERF:-}" ]; then
	perf record -g -o "$FP_BENCH_PERF" -p "$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'fp_attribution exporter'")" 2>/dev/null &
	perf_pid=$!
fi
start=$(date +%s.%N)
q "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 3000); do
	[ "$(q "SELECT sent + dropped >= $backlog FROM attribution.exporter_status WHERE signal = 'traces'")" = t ] && break
	sleep 0.02
done
end=$(date +%s.%N)
if [ -n "${FP_BENCH_PERF:-}" ]; then kill -INT $perf_pid; wait $perf_pid || true; fi
q "SELECT 'traces ' || sent || ' sent, ' || dropped || ' dropped in ' || requests || ' requests of ' || round(avg_request_ms::numeric, 2) || ' ms' FROM attribution.exporter_status WHERE signal = 'traces'"
awk -v n="$backlog" -v t0="$start" -v t1="$end" -v p="$(q 'SHOW fp_attribution.otlp_protocol')" \
	'BEGIN { printf "export throughput (%s): %d spans in %.2f s = %.0f spans/s (target >= 100000)\n", p, n, t1 - t0, n / (t1 - t0) }'
