#!/bin/bash
# The body of test/bench/export.sh; runs under test/e2e/cluster.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
secs=$1
work=$(mktemp -d /tmp/fp_otlp_bench.XXXXXX)
node "$here/../otlp_receiver/receiver.js" --discard > "$work/ports" &
rcv_pid=$!
trap 'kill $rcv_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do [ -s "$work/ports" ] && break; sleep 0.1; done
http=$(sed 's/.*"http":\([0-9]*\).*/\1/' "$work/ports")

q() { psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
endpoint() {
	q "ALTER SYSTEM SET fp_attribution.otlp_endpoint = '$1'" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
	sleep 0.5
}
enabled() {
	q "ALTER SYSTEM SET fp_attribution.otlp_enabled = $1" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
}
sent() { q "SELECT coalesce(sum(sent), 0) FROM attribution.exporter_status WHERE signal = '$1'"; }

echo "SELECT 1 FROM attribution.track_click('aff-' || (random() * 100)::int, ip => '203.0.113.7');" > "$work/click.sql"
tps() {
	pgbench -n -c 2 -j 2 -T "$secs" -f "$work/click.sql" 2>/dev/null |
		sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}

up=(); down=()
for round in 1 2; do
	endpoint "http://127.0.0.1:$http"
	up+=("$(tps)")
	endpoint "http://127.0.0.1:9"
	down+=("$(tps)")
done
endpoint "http://127.0.0.1:$http"
echo "track_click TPS, collector up:   ${up[*]}"
echo "track_click TPS, collector down: ${down[*]}"
awk -v a="${up[0]}" -v b="${up[1]}" -v c="${down[0]}" -v d="${down[1]}" \
	'BEGIN { printf "ratio down/up: %.3f (target >= 0.97)\n", (c + d) / (a + b) }'

# export throughput: build a backlog with export paused, then drain it
enabled off
pgbench -n -c 2 -j 2 -T "$secs" -f "$work/click.sql" >/dev/null 2>&1
before=$(sent traces)
start=$(date +%s.%N)
enabled on
last=$before
last_change=$start
for _ in $(seq 600); do
	sleep 0.2
	now=$(sent traces)
	if [ "$now" != "$last" ]; then
		last=$now
		last_change=$(date +%s.%N)
	elif awk -v t="$last_change" -v n="$(date +%s.%N)" 'BEGIN { exit !(n - t > 3) }'; then
		break
	fi
done
spans=$((last - before))
awk -v n="$spans" -v t0="$start" -v t1="$last_change" \
	'BEGIN { if (n > 0) printf "export: %d spans drained in %.2f s = %.0f spans/s (time resolution 0.2 s)\n", n, t1 - t0, n / (t1 - t0); else print "export: no spans were exported (no span source in this build)" }'
q "SELECT signal, requests, round(avg_request_ms::numeric, 2) AS avg_request_ms, sent, failed, retried, dropped FROM attribution.exporter_status ORDER BY signal" |
	sed 's/^/exporter_status: /'
