#!/bin/bash
# Benchmark: attribution.track_click throughput with receipts (unsigned and
# signed) against baselines measured in the same run on the same server:
#
#   plain_rows     one plain INSERT statement (CTEs) writing the same three
#                  rows a tracked click writes: the click, its receipt and
#                  its chain head, into trigger-less copies of the tables
#   plain_click    a plain INSERT of the click row alone
#   unsigned       track_click, receipts on (the default)
#   signed         track_click with fp_attribution.sign_receipts = on
#
# Each mode runs ROUNDS times for SECONDS with pgbench (CLIENTS clients),
# modes interleaved so drift hits all of them; the median tps is reported
# with its ratio to plain_rows.  synchronous_commit is off so the CPU cost
# of the command, not the WAL flush, is what is compared.
# Needs the extension installed (make install); run as root or postgres.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-8}
CLIENTS=${CLIENTS:-2}
bin=$(pg_config --bindir)
tmp=$(mktemp -d /tmp/fp_bench.XXXXXX)

as_pg() {
	if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}
[ "$(id -u)" = 0 ] && chown postgres: "$tmp"
trap 'as_pg "$bin/pg_ctl -D $tmp/data -m immediate stop" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT

as_pg "$bin/initdb -D $tmp/data -A trust" >/dev/null
cat >>"$tmp/data/postgresql.conf" <<CONF
shared_preload_libraries = 'fp_attribution'
listen_addresses = ''
unix_socket_directories = '$tmp'
synchronous_commit = off
fp_attribution.signing_key_file = 'signing.pem'
CONF
as_pg "cd $tmp/data && openssl genpkey -algorithm ed25519 -out signing.pem 2>/dev/null && chmod 600 signing.pem"
as_pg "$bin/pg_ctl -D $tmp/data -l $tmp/log -w start" >/dev/null
psql="$bin/psql -X -q -v ON_ERROR_STOP=1 -h $tmp -d postgres"

as_pg "$psql" <<'SQL'
CREATE EXTENSION fp_attribution;
CREATE SCHEMA bench;
CREATE TABLE bench.clicks_plain (LIKE attribution.clicks INCLUDING DEFAULTS INCLUDING INDEXES);
CREATE TABLE bench.receipts_plain (LIKE attribution.receipts INCLUDING DEFAULTS INCLUDING INDEXES);
CREATE TABLE bench.streams_plain (LIKE attribution.receipt_streams INCLUDING DEFAULTS INCLUDING INDEXES);
SQL

cat >"$tmp/plain_rows.sql" <<'SQL'
\set aid random(1, 1000)
WITH c AS (
	INSERT INTO bench.clicks_plain (click_id, affiliate_id, visitor_id, ip, user_agent,
		landing_url, clicked_at, window_ends_at, trace_id, span_id, sampled)
	VALUES (gen_random_uuid(), 'aff-' || :aid, 'visitor-' || :aid, '198.51.100.23',
		'Mozilla/5.0 (X11; Linux x86_64)', 'https://shop.example/shoes', now(),
		now() + interval '30 days', '4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7', true)
	RETURNING click_id, affiliate_id, visitor_id, ip, user_agent, landing_url, clicked_at,
		window_ends_at, trace_id, span_id),
s AS (
	INSERT INTO bench.streams_plain SELECT 'click', click_id::text, 1,
		'\x9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08' FROM c)
INSERT INTO bench.receipts_plain
SELECT gen_random_uuid(), clock_timestamp(), 1, '4bf92f3577b34da6a3ce929d0e0e4736', NULL,
	click_id::text, 'click', jsonb_build_object('event', 'click_tracked', 'click_id', click_id,
		'affiliate_id', affiliate_id, 'visitor_id', visitor_id, 'ip', ip, 'user_agent', user_agent,
		'landing_url', landing_url, 'clicked_at', clicked_at, 'window_ends_at', window_ends_at,
		'offer_id', NULL, 'campaign_id', NULL, 'referrer', NULL),
	'\x9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08', NULL, trace_id, span_id,
	'\x0000000000000000000000000000000000000000000000000000000000000000',
	'\x9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08', NULL
  FROM c;
SQL
cat >"$tmp/plain_click.sql" <<'SQL'
\set aid random(1, 1000)
INSERT INTO bench.clicks_plain (click_id, affiliate_id, visitor_id, ip, user_agent,
	landing_url, clicked_at, window_ends_at, trace_id, span_id, sampled)
VALUES (gen_random_uuid(), 'aff-' || :aid, 'visitor-' || :aid, '198.51.100.23',
	'Mozilla/5.0 (X11; Linux x86_64)', 'https://shop.example/shoes', now(),
	now() + interval '30 days', '4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7', true);
SQL
cat >"$tmp/track.sql" <<'SQL'
\set aid random(1, 1000)
SELECT receipt_id FROM attribution.track_click('aff-' || :aid, visitor_id => 'visitor-' || :aid,
	ip => '198.51.100.23', user_agent => 'Mozilla/5.0 (X11; Linux x86_64)',
	landing_url => 'https://shop.example/shoes',
	traceparent => '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
SQL
chown postgres: "$tmp"/*.sql 2>/dev/null || true

run_mode() {
	local mode=$1 script=$2 opts=$3
	as_pg "PGOPTIONS='$opts' $bin/pgbench -n -h $tmp -c $CLIENTS -j $CLIENTS -T $SECONDS_PER_RUN -f $tmp/$script postgres" |
		sed -n 's/^tps = \([0-9.]*\).*/\1/p' >>"$tmp/$mode.tps"
}

for round in $(seq "$ROUNDS"); do
	run_mode plain_rows plain_rows.sql ""
	run_mode plain_click plain_click.sql ""
	run_mode unsigned track.sql ""
	run_mode signed track.sql "-c fp_attribution.sign_receipts=on"
done
[ "$(as_pg "$psql -At -c 'SELECT ok FROM attribution.verify_all()'")" = t ] || { echo "receipts do not verify" >&2; exit 1; }

median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
base=$(median "$tmp/plain_rows.tps")
printf '%-12s %10s %8s   %s\n' mode "tps(med)" "x rows" "runs"
for mode in plain_rows plain_click unsigned signed; do
	m=$(median "$tmp/$mode.tps")
	printf '%-12s %10.0f %8.2f   %s\n' "$mode" "$m" "$(awk -v a="$m" -v b="$base" 'BEGIN { print a / b }')" "$(tr '\n' ' ' <"$tmp/$mode.tps")"
done
echo "($ROUNDS rounds x ${SECONDS_PER_RUN}s, $CLIENTS clients, synchronous_commit=off, $(nproc) CPUs)"
