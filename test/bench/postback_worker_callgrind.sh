#!/bin/bash
# Instructions the postback worker spends per delivered postback, counted
# by callgrind (stable where its CPU time on a shared machine is not).
# Twice, on a private server (test/e2e/cluster.sh): a backlog of signed
# POST postbacks is enqueued with delivery off, the server is restarted
# under valgrind --tool=callgrind, delivery is turned on, and once the
# outbox has no pending row the server is stopped and the worker's total
# read from its callgrind file.  The outbox is analyzed after each
# enqueue (see measure).  The figure is (I(MANY) - I(FEW)) /
# (MANY - FEW), so the worker's start-up, its plan preparation and its
# idle cycles cancel out, with the functions that weigh most per postback
# (inclusive, from the MANY run minus the FEW run).
# test/bench/postback_sink.c answers on 127.0.0.1:PORT (default 0: a free
# port).  Assumes "make install" was done (PATH leading to its pg_config);
# run as root (drops to postgres) or postgres; takes a few minutes:
#   MANY=1000 FEW=200 PORT=0 bash test/bench/postback_worker_callgrind.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" = 0 ]; then
	exec su postgres -s /bin/bash -c "PATH='$PATH' MANY=${MANY:-1000} FEW=${FEW:-200} PORT=${PORT:-0} KEEP=${KEEP:-} bash '$here/../e2e/cluster.sh' bash '$here/postback_worker_callgrind.sh' inner"
fi
if [ "${1:-}" != inner ]; then
	exec bash "$here/../e2e/cluster.sh" bash "$here/postback_worker_callgrind.sh" inner
fi

many=${MANY:-1000} few=${FEW:-200}
. "$here/postback_bench_lib.sh"
start_callgrind_bench fp_postback_cg

# measure N: the callgrind file of the worker that delivered N postbacks
measure() {
	local n=$1 wpid
	setting fp_attribution.postback_enabled off
	# track_click names i: see postbacks.sh
	q "SELECT count(*) FROM generate_series(1, $n) i,
		LATERAL attribution.track_click('aff-pb', visitor_id => 'v$n-' || i) c,
		LATERAL attribution.track_conversion('b-' || c.aggregate_id, 100, click_id => c.aggregate_id::uuid)" >/dev/null
	# the statistics autovacuum keeps (it runs too seldom for a short run):
	# planned on a never analyzed outbox, the worker's generic plan of its
	# result UPDATE reads every row of the advertiser in every cycle
	q "ANALYZE attribution.postback_outbox" >/dev/null
	restart_under_callgrind "$work/cg" "$work/server.log"
	for _ in $(seq 600); do
		wpid=$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'fp_attribution postbacks'")
		[ -n "$wpid" ] && break
		sleep 0.5
	done
	setting fp_attribution.postback_enabled on
	for _ in $(seq 2400); do
		[ "$(q "SELECT count(*) FROM attribution.postback_outbox WHERE state = 'pending'")" = 0 ] && break
		sleep 0.5
	done
	restart_plain "$work/server2.log"
	[ "$(q "SELECT count(*) FROM attribution.postback_outbox WHERE state <> 'delivered'")" = 0 ] ||
		{ echo "postback_worker_callgrind.sh: postbacks not delivered" >&2; exit 1; }
	mv "$work/cg.$wpid" "$work/worker.$n"
}
total() { sed -n 's/^totals: \([0-9]*\).*/\1/p' "$1"; }
# inclusive instructions per function of a callgrind file
functions() {
	callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null |
		awk '/^ *[0-9,]+ +\(/ { c = $1; gsub(",", "", c); l = $0; sub(/^ *[0-9,]+ +\([^)]*\) +/, "", l); split(l, a, " "); f = a[1]; sub(/^.*:/, "", f); s[f] += c } END { for (f in s) print f, s[f] }'
}
measure "$few"
measure "$many"
echo "command: MANY=$many FEW=$few PORT=${PORT:-0} bash test/bench/postback_worker_callgrind.sh"
awk -v a="$(total "$work/worker.$many")" -v b="$(total "$work/worker.$few")" -v m="$many" -v f="$few" \
	'BEGIN { printf "postback worker: %.0f instructions per postback (%d for %d, %d for %d)\n", (a - b) / (m - f), a, m, b, f }'
echo "per postback, inclusive, the 40 heaviest functions:"
join <(functions "$work/worker.$many" | sort) <(functions "$work/worker.$few" | sort) |
	awk -v m="$many" -v f="$few" '{ printf "%10.0f %s\n", ($2 - $3) / (m - f), $1 }' | sort -rn | sed -n 1,40p
