#!/bin/bash
# Benchmark of postbacks, on a private server (test/e2e/cluster.sh) with
# test/bench/postback_sink.c (built here with cc) as the affiliates'
# endpoint on 127.0.0.1:PORT (default 0: a free port).  The sink answers
# with the least work an answer needs: a real endpoint's CPU is not on
# this machine, and the benchmark measures the postbacks' own cost.
# Assumes "make install" was done.  Run as root (drops to postgres) or
# postgres:
#   ROUNDS=3 SECONDS_PER_RUN=10 BACKLOG=5000 PORT=0 bash test/bench/postbacks.sh
# Prints:
#   - pgbench TPS of one click + one attributed conversion per
#     transaction with the affiliate's postback endpoint active (every
#     conversion enqueues a postback, which the worker delivers meanwhile)
#     and inactive (none), and active with delivery off (enqueued only: the
#     command's own cost, without the worker and the receiver competing
#     for the CPUs), alternated ROUNDS times, medians and the ratios to
#     off (on/off target >= 0.95);
#   - delivery throughput: a backlog of BACKLOG signed POST postbacks
#     enqueued with delivery off, then delivered: requests per second.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" = 0 ]; then
	exec su postgres -s /bin/bash -c "ROUNDS=${ROUNDS:-3} SECONDS_PER_RUN=${SECONDS_PER_RUN:-10} BACKLOG=${BACKLOG:-5000} PORT=${PORT:-0} bash '$here/../e2e/cluster.sh' bash '$here/postbacks.sh' inner"
fi
if [ "${1:-}" != inner ]; then
	exec bash "$here/../e2e/cluster.sh" bash "$here/postbacks.sh" inner
fi

rounds=${ROUNDS:-3} secs=${SECONDS_PER_RUN:-10} backlog=${BACKLOG:-5000}
work=$(mktemp -d /tmp/fp_postback_bench.XXXXXX)
cc -O2 -o "$work/postback_sink" "$here/postback_sink.c"
"$work/postback_sink" "${PORT:-0}" > "$work/port" &
rcv_pid=$!
trap 'kill $rcv_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do grep -q ready "$work/port" && break; sleep 0.1; done
port=$(sed -n 's/^ready //p' "$work/port")

q() { psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
setting() {
	q "ALTER SYSTEM SET $1 = $2" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
}
id=$(q "INSERT INTO attribution.postback_endpoints (affiliate_id, url_template, method)
	VALUES ('aff-pb', 'http://127.0.0.1:$port/ok/pb?o={order_id}&s={status}', 'POST') RETURNING endpoint_id")
q "INSERT INTO attribution.postback_secrets (endpoint_id, secret) VALUES ($id, 'bench-secret-0123456789')" >/dev/null
active() { q "UPDATE attribution.postback_endpoints SET active = $1" >/dev/null; }

cat > "$work/convert.sql" <<'SQL'
SELECT 1 FROM attribution.track_click('aff-pb') c,
	LATERAL attribution.track_conversion('o-' || c.aggregate_id, 1999, click_id => c.aggregate_id::uuid);
SQL
tps() {
	pgbench -n -c 2 -j 2 -T "$secs" -f "$work/convert.sql" 2>/dev/null |
		sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

on=(); off=(); queued=()
for _ in $(seq "$rounds"); do
	active true
	on+=("$(tps)")
	active false
	off+=("$(tps)")
	# enqueued but not delivered (the worker off): the command's own cost;
	# the rows are then marked delivered so that the next "on" run does
	# not deliver them
	active true
	setting fp_attribution.postback_enabled off
	queued+=("$(tps)")
	q "UPDATE attribution.postback_outbox SET state = 'delivered', done_at = now()
		WHERE state = 'pending'" >/dev/null
	setting fp_attribution.postback_enabled on
done
echo "command: ROUNDS=$rounds SECONDS_PER_RUN=$secs BACKLOG=$backlog PORT=${PORT:-0} bash test/bench/postbacks.sh"
echo "click + conversion TPS, postbacks on:  ${on[*]}"
echo "click + conversion TPS, postbacks off: ${off[*]}"
echo "click + conversion TPS, enqueued only: ${queued[*]}"
awk -v a="$(median "${on[@]}")" -v b="$(median "${off[@]}")" -v c="$(median "${queued[@]}")" \
	'BEGIN { printf "medians on %.1f / off %.1f / enqueued only %.1f; ratio on/off: %.3f (target >= 0.95), enqueued only/off: %.3f\n", a, b, c, a / b, c / b }'

# delivery throughput: a backlog enqueued with delivery off, then drained
for _ in $(seq 600); do
	[ "$(q "SELECT count(*) FROM attribution.postback_outbox WHERE state = 'pending'")" = 0 ] && break
	sleep 0.2
done
active true
setting fp_attribution.postback_enabled off
q "SELECT count(*) FROM generate_series(1, $backlog) i, LATERAL attribution.track_click('aff-pb') c,
	LATERAL attribution.track_conversion('b-' || c.aggregate_id, 100, click_id => c.aggregate_id::uuid)" >/dev/null
start=$(date +%s.%N)
setting fp_attribution.postback_enabled on
for _ in $(seq 3000); do
	[ "$(q "SELECT count(*) FROM attribution.postback_outbox WHERE state = 'pending'")" = 0 ] && break
	sleep 0.05
done
end=$(date +%s.%N)
failed=$(q "SELECT count(*) FROM attribution.postback_outbox WHERE state <> 'delivered'")
awk -v n="$backlog" -v s="$start" -v e="$end" -v f="$failed" \
	'BEGIN { printf "delivery: %d postbacks in %.2f s = %.0f requests/s (%d not delivered)\n", n, e - s, n / (e - s), f }'
