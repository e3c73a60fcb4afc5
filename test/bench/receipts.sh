#!/bin/bash
# Benchmark: attribution.track_click throughput with receipts (unsigned and
# signed) against the cheapest way to write the same rows, measured in the
# same run on the same server, every mode as prepared statements
# (pgbench -M prepared: parsed and planned once per connection, as a
# driver's prepared statement is):
#
#   rows_cte       one INSERT statement (CTEs) writing the same three rows a
#                  tracked click writes: the click, its receipt and its chain
#                  head, into trigger-less copies of the tables
#   rows_inserts   the same three rows as three INSERTs in one transaction
#   plain_click    an INSERT of the click row alone
#   unsigned       track_click, receipts on (the default)
#   signed         track_click with fp_attribution.sign_receipts = on
#
# The baseline is the faster of rows_cte and rows_inserts.  Each mode runs
# ROUNDS times (default 5) for SECONDS_PER_RUN (default 8) with pgbench
# (CLIENTS clients), modes interleaved so drift hits all of them; the
# median tps is reported with the cost relative to the baseline (baseline
# tps / mode tps: 1.73 means a tracked click costs 1.73 times the plain
# rows).  synchronous_commit is off so the CPU cost of the command, not the
# WAL flush, is compared.  The pgbench command of each mode is printed.
# Needs the extension installed (make install); run as root or postgres.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
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

cat >"$tmp/rows_cte.sql" <<'SQL'
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
	INSERT INTO bench.streams_plain SELECT 'default', 'click', click_id::text, 1,
		'\x9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08' FROM c)
INSERT INTO bench.receipts_plain
SELECT 'default', gen_random_uuid(), clock_timestamp(), 1, '4bf92f3577b34da6a3ce929d0e0e4736', NULL,
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
cat >"$tmp/rows_inserts.sql" <<'SQL'
\set aid random(1, 1000)
BEGIN;
INSERT INTO bench.clicks_plain (click_id, affiliate_id, visitor_id, ip, user_agent,
	landing_url, clicked_at, window_ends_at, trace_id, span_id, sampled)
VALUES (gen_random_uuid(), 'aff-' || :aid, 'visitor-' || :aid, '198.51.100.23',
	'Mozilla/5.0 (X11; Linux x86_64)', 'https://shop.example/shoes', now(),
	now() + interval '30 days', '4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7', true);
INSERT INTO bench.streams_plain VALUES ('default', 'click', gen_random_uuid()::text, 1,
	'\x9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08');
INSERT INTO bench.receipts_plain
VALUES ('default', gen_random_uuid(), clock_timestamp(), 1, '4bf92f3577b34da6a3ce929d0e0e4736', NULL,
	gen_random_uuid()::text, 'click', jsonb_build_object('event', 'click_tracked',
		'click_id', gen_random_uuid(), 'affiliate_id', 'aff-' || :aid, 'visitor_id', 'visitor-' || :aid,
		'ip', '198.51.100.23', 'user_agent', 'Mozilla/5.0 (X11; Linux x86_64)',
		'landing_url', 'https://shop.example/shoes', 'clicked_at', now(),
		'window_ends_at', now() + interval '30 days', 'offer_id', NULL, 'campaign_id', NULL, 'referrer', NULL),
	'\x9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08', NULL,
	'4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7',
	'\x0000000000000000000000000000000000000000000000000000000000000000',
	'\x9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08', NULL);
COMMIT;
SQL
cat >"$tmp/track.sql" <<'SQL'
\set aid random(1, 1000)
SELECT receipt_id FROM attribution.track_click('aff-' || :aid, visitor_id => 'visitor-' || :aid,
	ip => '198.51.100.23', user_agent => 'Mozilla/5.0 (X11; Linux x86_64)',
	landing_url => 'https://shop.example/shoes',
	traceparent => '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
SQL
chown postgres: "$tmp"/*.sql 2>/dev/null || true

modes="rows_cte rows_inserts plain_click unsigned signed"
declare -A script=([rows_cte]=rows_cte.sql [rows_inserts]=rows_inserts.sql
	[plain_click]=plain_click.sql [unsigned]=track.sql [signed]=track.sql)
declare -A opts=([signed]="-c fp_attribution.sign_receipts=on")
command_of() {
	local o=${opts[$1]:-}
	echo "${o:+PGOPTIONS='$o' }pgbench -n -M prepared -c $CLIENTS -j $CLIENTS -T $SECONDS_PER_RUN -f ${script[$1]}"
}
run_mode() {
	local o=${opts[$1]:-}
	as_pg "PGOPTIONS='$o' $bin/pgbench -n -M prepared -h $tmp -c $CLIENTS -j $CLIENTS -T $SECONDS_PER_RUN -f $tmp/${script[$1]} postgres" |
		sed -n 's/^tps = \([0-9.]*\).*/\1/p' >>"$tmp/$1.tps"
}

for round in $(seq "$ROUNDS"); do
	for mode in $modes; do
		run_mode "$mode"
	done
done
[ "$(as_pg "$psql -At -c 'SELECT ok FROM attribution.verify_all()'")" = t ] || { echo "receipts do not verify" >&2; exit 1; }

median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
cte=$(median "$tmp/rows_cte.tps")
ins=$(median "$tmp/rows_inserts.tps")
base=$(awk -v a="$cte" -v b="$ins" 'BEGIN { print (a > b) ? a : b }')
basename=$(awk -v a="$cte" -v b="$ins" 'BEGIN { print (a > b) ? "rows_cte" : "rows_inserts" }')
printf '%-13s %10s %9s   %-40s %s\n' mode "tps(med)" "cost(x)" "runs (tps)" command
for mode in $modes; do
	m=$(median "$tmp/$mode.tps")
	printf '%-13s %10.0f %9.2f   %-40s %s\n' "$mode" "$m" "$(awk -v a="$m" -v b="$base" 'BEGIN { print b / a }')" \
		"$(tr '\n' ' ' <"$tmp/$mode.tps")" "$(command_of "$mode")"
done
echo "cost(x) = $basename tps / mode tps (baseline: the cheaper way to write the same rows)"
echo "($ROUNDS interleaved rounds x ${SECONDS_PER_RUN}s, $CLIENTS clients, -M prepared, synchronous_commit=off, $(nproc) CPUs; command: bash test/bench/receipts.sh)"
