#!/bin/bash
# Benchmark of postbacks, on a private server (test/e2e/cluster.sh) with
# test/bench/postback_sink.c (built here with cc) as the affiliates'
# endpoint on 127.0.0.1:PORT (default 0: a free port).  The sink answers
# with the least work an answer needs: a real endpoint's CPU is not on
# this machine, and the benchmark measures the postbacks' own cost.
# Assumes "make install" was done.  Run as root (drops to postgres) or
# postgres:
#   ROUNDS=3 SECONDS_PER_RUN=10 BACKLOG=5000 CLIENTS=2 SHARED_BUFFERS=1GB PORT=0 bash test/bench/postbacks.sh
# CLIENTS pgbench clients (default 2): on a 2-CPU machine 2 keep both CPUs
# busy, so the worker's delivery takes CPU time from the commands (the
# ratio is then bounded by the delivery's CPU against the command's); 1
# leaves a CPU to the worker, as a server that is not saturated has, and
# the ratio measures what postbacks add to a command.
# Prints:
#   - pgbench TPS of one click + one attributed conversion per
#     transaction with the affiliate's postback endpoint active (every
#     conversion enqueues a postback, which the worker delivers meanwhile)
#     and inactive (none), and active with delivery off (enqueued only: the
#     command's own cost, without the worker and the receiver competing
#     for the CPUs), alternated ROUNDS times (in turn first), medians and
#     the ratios to off (on/off target >= 0.95), and the ratios of each
#     round's runs with their medians;
#   - the server's CPU per transaction in the same runs (all of the
#     server's processes, the worker's delivery included, from /proc:
#     steadier than TPS on a shared machine), with the postback worker's
#     and the sink's share of it shown apart;
#   - delivery throughput: a backlog of BACKLOG signed POST postbacks
#     enqueued with delivery off, then delivered: requests per second, and
#     the postback worker's CPU per postback.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# the tables of a run stay in shared buffers (the default 128MB is
# outgrown within a few rounds, and the command's CPU grows with it)
export E2E_EXTRA_CONF="shared_buffers = ${SHARED_BUFFERS:-1GB}"
if [ "$(id -u)" = 0 ]; then
	exec su postgres -s /bin/bash -c "PATH='$PATH' E2E_EXTRA_CONF='$E2E_EXTRA_CONF' SHARED_BUFFERS=${SHARED_BUFFERS:-1GB} ROUNDS=${ROUNDS:-3} SECONDS_PER_RUN=${SECONDS_PER_RUN:-10} BACKLOG=${BACKLOG:-5000} CLIENTS=${CLIENTS:-2} PORT=${PORT:-0} bash '$here/../e2e/cluster.sh' bash '$here/postbacks.sh' inner"
fi
if [ "${1:-}" != inner ]; then
	exec bash "$here/../e2e/cluster.sh" bash "$here/postbacks.sh" inner
fi

rounds=${ROUNDS:-3} secs=${SECONDS_PER_RUN:-10} backlog=${BACKLOG:-5000} clients=${CLIENTS:-2}
work=$(mktemp -d /tmp/fp_postback_bench.XXXXXX)
. "$here/postback_bench_lib.sh"
start_sink "$work"
trap 'kill $rcv_pid 2>/dev/null; rm -rf "$work"' EXIT
add_endpoint
active() { q "UPDATE attribution.postback_endpoints SET active = $1" >/dev/null; }

cat > "$work/convert.sql" <<'SQL'
SELECT 1 FROM attribution.track_click('aff-pb') c,
	LATERAL attribution.track_conversion('o-' || c.aggregate_id, 1999, click_id => c.aggregate_id::uuid);
SQL
# CPU ticks (utime + stime) of the server's processes: the postmaster
# with its reaped children (the pgbench backends, once they exited) and
# its live ones
server_ticks() {
	local pm t=0
	pm=$(head -1 "$PGDATA/postmaster.pid")
	t=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pm/stat")
	for f in /proc/[0-9]*/stat; do
		t=$((t + $(awk -v pm="$pm" '$4 == pm { s = $14 + $15 } END { print s + 0 }' "$f" 2>/dev/null || echo 0)))
	done
	echo "$t"
}
# ... of one process
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# CPU ticks the hypervisor gave to other guests (steal, all CPUs): on a
# shared virtual machine it comes and goes by the minute, and a run's TPS
# falls with it (0 to 30 % of a run's CPU time seen here)
steal_ticks() { awk '/^cpu / { print $9 }' /proc/stat; }
worker_pid() { q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'fp_attribution postbacks'"; }
hz=$(getconf CLK_TCK)
# One pgbench run: prints its TPS, the server's CPU per transaction in
# microseconds (of which the postback worker's, and the sink's apart) and
# the share of the machine's CPU time stolen meanwhile (%)
tps() {
	local s0 w0 r0 t0 s1 w1 r1 t1 out n wpid
	wpid=$(worker_pid)
	s0=$(server_ticks) w0=$(ticks "$wpid") r0=$(ticks "$rcv_pid") t0=$(steal_ticks)
	out=$(pgbench -n -c "$clients" -j "$clients" -T "$secs" -f "$work/convert.sql" 2>/dev/null)
	sleep 0.5	# the backends exit and are reaped
	s1=$(server_ticks) w1=$(ticks "$wpid") r1=$(ticks "$rcv_pid") t1=$(steal_ticks)
	n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
	awk -v tps="$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out")" -v n="$n" -v hz="$hz" \
		-v s=$((s1 - s0)) -v w=$((w1 - w0)) -v r=$((r1 - r0)) -v t=$((t1 - t0)) \
		-v cpus="$(nproc)" -v secs="$secs" \
		'BEGIN { printf "%s %.0f %.0f %.0f %.0f\n", tps, s * 1e6 / hz / n, w * 1e6 / hz / n, r * 1e6 / hz / n, 100 * t / hz / cpus / (secs + 0.5) }'
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

on=(); off=(); queued=(); on_cpu=(); off_cpu=(); queued_cpu=(); on_worker=(); on_sink=()
on_steal=(); off_steal=(); queued_steal=()
run() {
	local r
	read -r -a r <<<"$(tps)"
	eval "$1+=(${r[0]}); $1_cpu+=(${r[1]}); $1_steal+=(${r[4]})"
	[ "$1" != on ] || { on_worker+=("${r[2]}"); on_sink+=("${r[3]}"); }
}
# one run of a mode
run_mode() {
	case $1 in
	on) active true; run on ;;
	off) active false; run off ;;
	queued)
		# enqueued but not delivered (the worker off): the command's own
		# cost; the rows are then marked delivered so that the next "on"
		# run does not deliver them
		active true
		setting fp_attribution.postback_enabled off
		run queued
		q "UPDATE attribution.postback_outbox SET state = 'delivered', done_at = now()
			WHERE state = 'pending'" >/dev/null
		# ... and their entries in postback_outbox_due_idx removed: the
		# worker's claim would otherwise read them all, dead, in the next
		# run's first cycles (a production outbox loses its dead entries as
		# it goes, to autovacuum and to the claim's own index scans)
		q "VACUUM attribution.postback_outbox" >/dev/null
		setting fp_attribution.postback_enabled on ;;
	esac
}
# The command's cost grows with the tables (a fifth over a few minutes,
# with the data past shared_buffers), so each round starts the order
# one mode later: over three rounds each mode runs first, second and
# third once, and no mode pays the growth more than another
modes=(on off queued)
for r in $(seq 0 $((rounds - 1))); do
	for i in 0 1 2; do
		run_mode "${modes[$(((r + i) % 3))]}"
	done
done
echo "command: ROUNDS=$rounds SECONDS_PER_RUN=$secs BACKLOG=$backlog CLIENTS=$clients SHARED_BUFFERS=${SHARED_BUFFERS:-1GB} PORT=${PORT:-0} bash test/bench/postbacks.sh"
echo "click + conversion TPS, postbacks on:  ${on[*]}"
echo "click + conversion TPS, postbacks off: ${off[*]}"
echo "click + conversion TPS, enqueued only: ${queued[*]}"
echo "CPU time stolen by the hypervisor, %, in the same runs: on ${on_steal[*]} / off ${off_steal[*]} / enqueued only ${queued_steal[*]}"
awk -v a="$(median "${on[@]}")" -v b="$(median "${off[@]}")" -v c="$(median "${queued[@]}")" \
	'BEGIN { printf "medians on %.1f / off %.1f / enqueued only %.1f; ratio on/off: %.3f (target >= 0.95), enqueued only/off: %.3f\n", a, b, c, a / b, c / b }'
# the ratios of each round's runs (one table size), and their medians
paired=(); paired_queued=()
for i in "${!on[@]}"; do
	paired+=("$(awk -v a="${on[$i]}" -v b="${off[$i]}" 'BEGIN { printf "%.3f", a / b }')")
	paired_queued+=("$(awk -v a="${queued[$i]}" -v b="${off[$i]}" 'BEGIN { printf "%.3f", a / b }')")
done
echo "on/off by round: ${paired[*]} (median $(median "${paired[@]}")); enqueued only/off by round: ${paired_queued[*]} (median $(median "${paired_queued[@]}"))"
echo "server CPU us/transaction, postbacks on:  ${on_cpu[*]} (of which the postback worker ${on_worker[*]}; the sink, apart: ${on_sink[*]})"
echo "server CPU us/transaction, postbacks off: ${off_cpu[*]}"
echo "server CPU us/transaction, enqueued only: ${queued_cpu[*]}"
awk -v a="$(median "${on_cpu[@]}")" -v b="$(median "${off_cpu[@]}")" -v c="$(median "${queued_cpu[@]}")" \
	-v w="$(median "${on_worker[@]}")" -v r="$(median "${on_sink[@]}")" \
	'BEGIN { printf "medians on %.0f (worker %.0f, sink %.0f apart) / off %.0f / enqueued only %.0f us; ratio off/on: %.3f, off/enqueued only: %.3f\n", a, w, r, b, c, b / a, b / c }'
echo "load average: $(cut -d" " -f1-3 /proc/loadavg)"

# delivery throughput: a backlog enqueued with delivery off, then drained
for _ in $(seq 600); do
	[ "$(q "SELECT count(*) FROM attribution.postback_outbox WHERE state = 'pending'")" = 0 ] && break
	sleep 0.2
done
active true
setting fp_attribution.postback_enabled off
# track_click names i: without it, the planner runs the call once (a
# materialized function scan) and the backlog is one postback
q "SELECT count(*) FROM generate_series(1, $backlog) i,
	LATERAL attribution.track_click('aff-pb', visitor_id => 'v-' || i) c,
	LATERAL attribution.track_conversion('b-' || c.aggregate_id, 100, click_id => c.aggregate_id::uuid)" >/dev/null
queued=$(q "SELECT count(*) FROM attribution.postback_outbox WHERE state = 'pending'")
if [ "$queued" != "$backlog" ]; then
	echo "postbacks.sh: $queued postbacks pending instead of $backlog" >&2
	exit 1
fi
wpid=$(worker_pid)
w0=$(ticks "$wpid") r0=$(ticks "$rcv_pid")
start=$(date +%s.%N)
setting fp_attribution.postback_enabled on
for _ in $(seq 3000); do
	[ "$(q "SELECT count(*) FROM attribution.postback_outbox WHERE state = 'pending'")" = 0 ] && break
	sleep 0.05
done
end=$(date +%s.%N)
w1=$(ticks "$wpid") r1=$(ticks "$rcv_pid")
failed=$(q "SELECT count(*) FROM attribution.postback_outbox WHERE state <> 'delivered'")
awk -v n="$backlog" -v s="$start" -v e="$end" -v f="$failed" -v hz="$hz" -v w=$((w1 - w0)) -v r=$((r1 - r0)) \
	'BEGIN { printf "delivery: %d postbacks in %.2f s = %.0f requests/s (%d not delivered); postback worker CPU %.0f us per postback (sink %.0f)\n", n, e - s, n / (e - s), f, w * 1e6 / hz / n, r * 1e6 / hz / n }'
echo "load average: $(cut -d" " -f1-3 /proc/loadavg)"
