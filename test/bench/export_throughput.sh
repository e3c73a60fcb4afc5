#!/bin/bash
# Encode-and-send throughput of the OTLP exporter (target >= 100,000
# spans/s), on a private server (test/e2e/cluster.sh) sending to
# test/bench/discard_receiver.js on 127.0.0.1.  A backlog is built with
# export paused (pgbench, 2 clients x N transactions of 80 track_click
# calls: 800 N spans, 640 N logs), then export is resumed and the time to
# drain it is measured (polled every 20 ms, including the reload that
# resumes it), after a warm-up lap.  Assumes "make install".
#   test/bench/export_throughput.sh [N, default 75] [protocol, default http/protobuf]
# Run as root (drops to postgres) or postgres.  Prints spans/s, and the
# worker's CPU time during the drain (from /proc/PID/task/*/schedstat): spans per
# CPU-second is the rate of a worker with a core to itself, which on a
# shared machine varies far less than the drain's wall-clock rate.
# Receipt-log integration (fp_attribution.log_interval = $LOG_INTERVAL,
# default 0: off) runs in the ledger worker, a process of its own, so it no
# longer stalls the exporter (in the exporter's loop, it stretched a 2 s
# drain to 58 s); but the integration of the backlog's receipts takes
# seconds of CPU on the same shared cores, so it is off by default and the
# rate measures the exporter alone.  LOG_INTERVAL=1s measures the drain
# with integration running beside it.  Metrics are exported at the default
# interval (60 s), as the affiliate.windows.active query of a metric export
# grows with the clicks of the backlog.  OTLP_WORKERS=N (default 1) runs N
# exporter workers (fp_attribution.otlp_workers); the CPU line sums them.
# FP_BENCH_PORT=P puts the receivers on ports P and P + 1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
secs=${1:-75}
proto=${2:-http/protobuf}
if [ "$(id -u)" = 0 ]; then
	exec su postgres -s /bin/bash -c "PATH='$PATH' LOG_INTERVAL='${LOG_INTERVAL:-0}' OTLP_WORKERS='${OTLP_WORKERS:-}' FP_BENCH_PORT='${FP_BENCH_PORT:-0}' FP_BENCH_WARMUP_LAPS='${FP_BENCH_WARMUP_LAPS:-4}' FP_BENCH_PERF='${FP_BENCH_PERF:-}' bash '$0' $secs '$proto'"
fi
if [ "$secs" != --inner ]; then
	export E2E_EXTRA_CONF="fp_attribution.max_spans = 65536
fp_attribution.max_logs = 65536
fp_attribution.sampling_ratio = 1
fp_attribution.otlp_enabled = off
fp_attribution.otlp_protocol = '$proto'
fp_attribution.log_interval = '${LOG_INTERVAL:-0}'
fp_attribution.otlp_metric_interval = 60000
${OTLP_WORKERS:+fp_attribution.otlp_workers = $OTLP_WORKERS}"
	exec bash "$here/../e2e/cluster.sh" bash "$0" --inner "$secs"
fi
secs=$2
. "$here/discard_receiver.sh"
start_discard_receiver otlp_tput
port=$http_port
if q "SHOW fp_attribution.otlp_protocol" | grep -q grpc; then port=$grpc_port; fi
q "ALTER SYSTEM SET fp_attribution.otlp_endpoint = 'http://127.0.0.1:$port'" >/dev/null

# A backlog: 80 clicks per transaction (400 spans, within a transaction's
# bound), $1 transactions from each of two clients, with export paused.
echo "SELECT count(attribution.track_click('aff-' || (i % 100), ip => '203.0.113.7')) FROM generate_series(1, 80) i;" > "$work/clicks.sql"
backlog() {
	q "ALTER SYSTEM SET fp_attribution.otlp_enabled = off" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
	pgbench -n -M prepared -c 2 -j 2 -t "$1" -f "$work/clicks.sql" >/dev/null 2>&1
}
# Resume export and wait until every span written is accounted for but
# less than a batch (the rest waits for the schedule delay, as the
# OpenTelemetry batch processor does, and is not counted); prints the
# seconds it took.
drain() {
	local start end
	q "ALTER SYSTEM SET fp_attribution.otlp_enabled = on" >/dev/null
	start=$(date +%s.%N)
	q "SELECT pg_reload_conf()" >/dev/null
	for _ in $(seq 6000); do
		[ "$(q "SELECT e.sent + e.rejected + e.dropped + current_setting('fp_attribution.otlp_batch_size')::int > t.spans_written FROM attribution.exporter_status e, attribution.telemetry_status t WHERE e.signal = 'traces'")" = t ] && break
		sleep 0.02
	done
	end=$(date +%s.%N)
	awk -v t0="$start" -v t1="$end" 'BEGIN { printf "%.3f", t1 - t0 }'
}
sent() { q "SELECT sent FROM attribution.exporter_status WHERE signal = '$1'"; }

# Warm-up laps: backlogs larger than the ring, until the worker has
# touched every page of it once; the first touch of a shared-memory page
# by a process is a page fault, which would otherwise be most of what is
# measured.  The rings pack records densely (attributes at their length),
# so a lap of the ring's capacity in records covers only about a ninth of
# its byte area (a click's spans average ~520 bytes, the byte area is sized
# for 4,840-byte spans): eight laps cover most of it, and the minor page
# faults printed below show what is left (FP_BENCH_WARMUP_LAPS).
for _ in $(seq "${FP_BENCH_WARMUP_LAPS:-4}"); do
	backlog 85
	drain >/dev/null
done
# The measured drain
backlog "$secs"
spans0=$(sent traces) logs0=$(sent logs)
wpids=$(q "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE backend_type = 'fp_attribution exporter'")
# FP_BENCH_PERF=FILE: profile the worker during the drain (perf record)
if [ -n "${FP_BENCH_PERF:-}" ]; then
	perf record -g -o "$FP_BENCH_PERF" -p "${wpids// /,}" 2>/dev/null &
	perf_pid=$!
fi
# the exporters' CPU time, summed: nanoseconds on the CPU from the
# scheduler (schedstat), finer than the 10 ms ticks of /proc/PID/stat
cpu_ns() { local p; for p in $wpids; do cat /proc/"$p"/task/*/schedstat; done | awk '{ n += $1 } END { printf "%.0f", n }'; }
# per worker: CPU time, minor page faults, voluntary and involuntary
# context switches (where a worker's CPU goes besides encoding and sending)
worker_counts() {
	local p
	for p in $wpids; do
		echo "$p $(cat /proc/"$p"/task/*/schedstat | awk '{ n += $1 } END { printf "%.0f", n }') $(awk '{ print $10 }' "/proc/$p/stat") $(awk '/^voluntary_ctxt_switches/ { v = $2 } /^nonvoluntary_ctxt_switches/ { n = $2 } END { print v, n }' "/proc/$p/status")"
	done
}
w0=$(worker_counts)
c0=$(cpu_ns)
t=$(drain)
c1=$(cpu_ns)
w1=$(worker_counts)
if [ -n "${FP_BENCH_PERF:-}" ]; then kill -INT $perf_pid; wait $perf_pid || true; fi
spans=$(($(sent traces) - spans0)) logs=$(($(sent logs) - logs0))
q "SELECT signal || ': ' || sent || ' sent, ' || dropped || ' dropped, ' || requests || ' requests of ' || round(avg_request_ms::numeric, 2) || ' ms on average' FROM attribution.exporter_status WHERE signal <> 'metrics' ORDER BY signal DESC"
awk -v s="$spans" -v l="$logs" -v t="$t" -v p="$(q 'SHOW fp_attribution.otlp_protocol')" -v w="${OTLP_WORKERS:-1}" \
	'BEGIN { printf "export throughput (%s, %d workers): %d spans (and %d logs) drained in %.2f s = %.0f spans/s (target >= 100000)\n", p, w, s, l, t, s / t }'
awk -v s="$spans" -v c="$((c1 - c0))" \
	'BEGIN { printf "exporter CPU (all workers) during the drain: %.3f s = %.0f spans per CPU-second\n", c / 1e9, s * 1e9 / (c > 0 ? c : 1) }'
paste -d ' ' <(echo "$w0") <(echo "$w1") | awk \
	'{ printf "worker %s during the drain: CPU %.3f s, %d minor page faults, %d voluntary and %d involuntary context switches\n", $1, ($7 - $2) / 1e9, $8 - $3, $9 - $4, $10 - $5 }'
