#!/bin/bash
# Where the server's instructions per click + conversion go with postbacks
# on, enqueued only, and off: the whole server runs under callgrind (every
# process counted, stable where CPU time on a shared machine is not), on a
# private server (test/e2e/cluster.sh) with test/bench/postback_sink.c as
# the endpoint.  Each mode: the server restarted under valgrind, TXNS
# pgbench transactions of 2 clients (one click and one attributed
# conversion each, as in postbacks.sh), the outbox drained (on), the
# server stopped; the instructions of each process, by its type (from the
# server log: log_line_prefix names every line's process type and pid,
# log_connections the clients, log_autovacuum_min_duration the autovacuum
# workers that did something), per transaction.  autovacuum_naptime is
# 1 s, so that autovacuum keeps up within the run (as it does over minutes
# at the default) instead of running in one mode and not in another.
# Assumes "make install" was done; run as root (drops to postgres) or
# postgres; takes several minutes:
#   TXNS=400 WARMUP=2000 PORT=0 bash test/bench/postback_server_callgrind.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export E2E_EXTRA_CONF=$'log_line_prefix = \'%p|%b|\'\nlog_connections = on\nlog_autovacuum_min_duration = 0\nautovacuum_naptime = 1'
if [ "$(id -u)" = 0 ]; then
	exec su postgres -s /bin/bash -c "PATH='$PATH' TXNS=${TXNS:-400} WARMUP=${WARMUP:-2000} PORT=${PORT:-0} KEEP=${KEEP:-} bash '$here/../e2e/cluster.sh' bash '$here/postback_server_callgrind.sh' inner"
fi
if [ "${1:-}" != inner ]; then
	exec bash "$here/../e2e/cluster.sh" bash "$here/postback_server_callgrind.sh" inner
fi

txns=${TXNS:-400}
. "$here/postback_bench_lib.sh"
start_callgrind_bench fp_postback_scg
cat > "$work/convert.sql" <<'SQL'
SELECT 1 FROM attribution.track_click('aff-pb') c,
	LATERAL attribution.track_conversion('o-' || c.aggregate_id, 1999, click_id => c.aggregate_id::uuid);
SQL
# WARMUP transactions first (default 2000, the endpoint inactive, not
# measured), then everything vacuumed and analyzed (the catalogs CREATE
# EXTENSION changed too): from empty tables the first mode's run would
# cross autovacuum's early analyze thresholds (50 rows, then 10 % more)
# again and again, each analyze invalidating the backends' plans, and
# cost more than the next modes for it (seen: +120 k per transaction)
q "UPDATE attribution.postback_endpoints SET active = false" >/dev/null
pgbench -n -c 2 -j 2 -t $((${WARMUP:-2000} / 2)) -f "$work/convert.sql" >/dev/null 2>&1
vacuumdb --all --analyze --quiet
pending() { q "SELECT count(*) FROM attribution.postback_outbox WHERE state = 'pending'"; }

# measure MODE ACTIVE ENABLED: prints "MODE TYPE instructions-per-transaction" lines
measure() {
	local mode=$1 log="$work/log.$1" f pid type
	q "UPDATE attribution.postback_endpoints SET active = $2" >/dev/null
	setting fp_attribution.postback_enabled "$3"
	mkdir "$work/$mode"
	# a child's counts start at its fork (it inherits its parent's)
	restart_under_callgrind "$work/$mode/cg" "$log" --zero-before=fork_process
	# the processes that stay (most never log)
	q "SELECT pid || '|' || backend_type || '|' FROM pg_stat_activity WHERE pid <> pg_backend_pid()" > "$work/$mode/types"
	pgbench -n -c 2 -j 2 -t $((txns / 2)) -f "$work/convert.sql" >/dev/null 2>&1
	if [ "$3" = on ]; then
		for _ in $(seq 2400); do [ "$(pending)" = 0 ] && break; sleep 0.5; done
	fi
	sleep 3	# autovacuum catches up with what the run left
	restart_plain "$work/server.log"
	for f in "$work/$mode"/cg.*; do
		pid=${f##*.}
		type=$(cat "$work/$mode/types" "$log" | sed -n "s/^$pid|\([^|]*\)|.*/\1/p" | tail -1)
		if grep -q "^$pid|client backend|.*application_name=pgbench" "$log"; then
			type=pgbench
		elif [ "$type" = "client backend" ]; then
			type=psql	# this script's queries
		fi
		# never logged: autovacuum workers that found nothing to do, one
		# a second (their number follows the run's duration under
		# valgrind, not its transactions), failed connection attempts
		type=${type:-unlogged}
		echo "$mode ${type// /_} $(sed -n 's/^totals: \([0-9]*\).*/\1/p' "$f")"
	done | awk -v n="$txns" '{ s[$1 " " $2] += $NF } END { for (k in s) printf "%s %.0f\n", k, s[k] / n }'
}
{
	measure on true on
	measure queued true off
	q "UPDATE attribution.postback_outbox SET state = 'delivered', done_at = now() WHERE state = 'pending'" >/dev/null
	measure off false on
} > "$work/figures"
echo "command: TXNS=$txns WARMUP=${WARMUP:-2000} PORT=${PORT:-0} bash test/bench/postback_server_callgrind.sh"
echo "instructions per click + conversion transaction, by process type (on: postbacks delivered; queued: enqueued only; off: none)"
awk '{ v[$2, $1] = $3; p[$2] = 1; if ($2 != "psql" && $2 != "unlogged") t[$1] += $3 }
	END {
		printf "%-34s %10s %10s %10s %10s\n", "process", "on", "queued", "off", "on - off"
		for (k in p)
			if (k != "all")
				printf "%-34s %10d %10d %10d %10d\n", k, v[k, "on"], v[k, "queued"], v[k, "off"], v[k, "on"] - v[k, "off"]
		printf "%-34s %10d %10d %10d %10d\n", "all but psql and unlogged", t["on"], t["queued"], t["off"], t["on"] - t["off"]
	}' "$work/figures"
