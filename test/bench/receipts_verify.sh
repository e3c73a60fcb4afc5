#!/bin/bash
# Benchmark of receipt verification and of long chains, on a throw-away
# server:
#
#   verify_all    receipts/s of attribution.verify_all() over N click
#                 receipts (default 1,000,000; first argument), one chain
#                 each, written by the clicks' own trigger, plus one chain
#                 of CHAIN receipts (default 100,000), with its parallel
#                 workers (max_parallel_maintenance_workers, default 2):
#                 its CPU is the backend's alone, the workers' not counted
#   verify_all/1  the same without workers (max_parallel_maintenance_workers
#                 = 0): the CPU of the whole verification
#   verify_chain  receipts/s of attribution.verify_chain() over that chain
#   appends       APPENDS (default 32,000) append_receipt calls in one
#                 transaction to one aggregate, and to as many distinct
#                 aggregates; their ratio is 1.0 when an append costs the
#                 same whatever the length of the transaction's chain
#
# and, as the floor verify_all is measured against, from the same rounds
# (interleaved with it):
#
#   scan          SELECT count(*) over the receipts (reading every row)
#   scan+sha256   SELECT count(sha256(payload::text)) over them (reading
#                 every row and hashing its payload once; verify_all also
#                 canonicalises it, hashes the envelope, sorts and joins)
#
# Each timing is the median of ROUNDS (default 3) runs, from the same run
# of the same server; the load average is printed with them.
# SHARED_BUFFERS (default 128MB, PostgreSQL's default) sets the server's.
# Also prints verify_all's NOTICEs (progress) count.
# Needs the extension installed (make install); run as root or postgres.
set -euo pipefail

n=${1:-1000000}
chain=${CHAIN:-100000}
appends=${APPENDS:-32000}
rounds=${ROUNDS:-3}
shared_buffers=${SHARED_BUFFERS:-128MB}
bin=$(pg_config --bindir)
tmp=$(mktemp -d /tmp/fp_verify.XXXXXX)

as_pg() {
	if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}
[ "$(id -u)" = 0 ] && chown postgres: "$tmp"
trap 'as_pg "$bin/pg_ctl -D $tmp/data -m immediate stop" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
psql() { as_pg "$bin/psql -X -q -At -v ON_ERROR_STOP=1 -h $tmp -d postgres $(printf '%q ' "$@")"; }
# seconds a statement takes, measured by the server: elapsed, and the CPU
# time of its backend (user + system, from /proc), which other jobs on a
# loaded machine change far less
hz=$(getconf CLK_TCK)
cpu="(SELECT sum(split_part(substr(s, strpos(s, ') ') + 2), ' ', f)::bigint)
	FROM pg_read_file('/proc/self/stat') s, unnest(ARRAY[12, 13]) f)"
timed() {
	psql -c "DO \$\$ DECLARE t0 timestamptz := clock_timestamp(); c0 bigint := $cpu; BEGIN $1;
		RAISE NOTICE 'took % %', extract(epoch FROM clock_timestamp() - t0), ($cpu - c0) / $hz.0; END \$\$" 2>&1 |
		sed -n 's/.*took \([0-9.]*\) \([0-9.]*\).*/\1 \2/p'
}
# median of column $1 (default 1)
median() { awk -v c="${1:-1}" '{ print $c }' | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

as_pg "$bin/initdb -D $tmp/data -A trust" >/dev/null
cat >>"$tmp/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$tmp'
synchronous_commit = off
max_wal_size = 4GB
shared_buffers = $shared_buffers
CONF
as_pg "$bin/pg_ctl -D $tmp/data -l $tmp/log -w start" >/dev/null
psql -c "CREATE EXTENSION fp_attribution"

t0=$(date +%s)
for i in $(seq 0 9); do
	psql -c "INSERT INTO attribution.clicks (affiliate_id, visitor_id, ip, user_agent, landing_url)
		SELECT 'aff-' || i % 1000, 'visitor-' || i, '198.51.100.23', 'Mozilla/5.0 (X11; Linux x86_64)',
			'https://shop.example/shoes' FROM generate_series($i * $n / 10 + 1, ($i + 1) * $n / 10) AS i"
done
# the long chain, a thousand appends per transaction
for i in $(seq 1 $((chain / 1000))); do
	psql -c "SELECT count(attribution.append_receipt('bench', 'long', jsonb_build_object('n', i)))
		FROM generate_series(1, 1000) AS i" >/dev/null
done
psql -c "VACUUM ANALYZE"
total=$(psql -c "SELECT count(*) FROM attribution.receipts")
echo "loaded $total receipts in $(( $(date +%s) - t0 )) s"

for r in $(seq "$rounds"); do
	timed "PERFORM count(*) FROM attribution.receipts" >>"$tmp/scan"
	timed "PERFORM count(sha256(convert_to(payload::text, 'UTF8'))) FROM attribution.receipts" >>"$tmp/hash"
	timed "PERFORM * FROM attribution.verify_all()" >>"$tmp/all"
	timed "PERFORM pg_catalog.set_config('max_parallel_maintenance_workers', '0', true); PERFORM * FROM attribution.verify_all()" >>"$tmp/all1"
	timed "PERFORM * FROM attribution.verify_chain('bench', 'long')" >>"$tmp/chain"
done
ok=$(psql -c "SELECT ok || ' ' || chains_checked || ' ' || receipts_checked FROM attribution.verify_all()" 2>"$tmp/notices")
# name, receipts, file of "elapsed cpu" runs
rate() {
	local t c
	t=$(median 1 <"$3")
	c=$(median 2 <"$3")
	printf '%-13s %9s receipts %8.2f s %10.0f receipts/s; CPU %7.2f s %10.0f receipts/CPU-s  (runs, s/CPU s: %s)\n' \
		"$1" "$2" "$t" "$(awk -v n="$2" -v t="$t" 'BEGIN { print n / t }')" \
		"$c" "$(awk -v n="$2" -v t="$c" 'BEGIN { print (t > 0 ? n / t : 0) }')" \
		"$(awk '{ printf "%s%.2f/%.2f", (NR > 1 ? ", " : ""), $1, $2 }' "$3")"
}
rate scan "$total" "$tmp/scan"
rate scan+sha256 "$total" "$tmp/hash"
rate verify_all "$total" "$tmp/all"
rate verify_all/1 "$total" "$tmp/all1"
rate verify_chain "$chain" "$tmp/chain"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); shared_buffers=$shared_buffers"
echo "verify_all: ok, chains, receipts = $ok; $(grep -c NOTICE "$tmp/notices" || true) progress notices"

for r in $(seq "$rounds"); do
	timed "PERFORM attribution.append_receipt('one', 'agg-$r', jsonb_build_object('n', i)) FROM generate_series(1, $appends) AS i" >>"$tmp/one"
	timed "PERFORM attribution.append_receipt('many', 'agg-$r-' || i, jsonb_build_object('n', i)) FROM generate_series(1, $appends) AS i" >>"$tmp/many"
done
one=$(median <"$tmp/one")
many=$(median <"$tmp/many")
printf '%-13s %9s appends  %8.2f s   (one aggregate, one transaction)\n' appends "$appends" "$one"
printf '%-13s %9s appends  %8.2f s   (distinct aggregates)   ratio %.2f\n' appends "$appends" "$many" "$(awk -v a="$one" -v b="$many" 'BEGIN { print a / b }')"
echo "(medians of $rounds rounds, synchronous_commit=off, $(nproc) CPUs; command: bash test/bench/receipts_verify.sh $n)"
