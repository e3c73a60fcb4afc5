#!/bin/bash
# Backups round-trip: a throw-away preloaded server records clicks,
# conversions (attributed and not), signed and unsigned receipts, a custom
# chain and a per-affiliate window; then pg_dump -Fc + pg_restore and plain
# pg_dump | psql, with default options, into fresh databases, with the
# library preloaded and without.  Every table must come back row for row
# (no second receipt written by the triggers during the restore),
# verify_all() must report the same counts, new commands must continue the
# restored chains, and a restore that lost the receipts must fail
# verification.  The receipt logs come back too: entries, stored hashes,
# checkpoints and the queue of receipts not yet integrated; checkpoints
# saved before the dump still verify against the restored logs, and new
# receipts extend the same logs consistently.  The report rollup comes
# back as dumped (folded totals and unfolded deltas, not counted a second
# time by the triggers during the restore) and still equals the rows after
# new commands.
# Needs the extension installed; run as root or postgres.
# Prints one PASS/FAIL line per check.
set -euo pipefail

bin=$(pg_config --bindir)
tmp=$(mktemp -d /tmp/fp_dump.XXXXXX)
status=0

as_pg() {
	if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}
[ "$(id -u)" = 0 ] && chown postgres: "$tmp"
trap 'as_pg "$bin/pg_ctl -D $tmp/data -m immediate stop" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
pass() { echo "PASS dump_restore: $*"; }
fail() { echo "FAIL dump_restore: $*"; status=1; }
check() {						# check NAME EXPECTED ACTUAL
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: expected '$2', got '$3'"; fi
}

as_pg "$bin/initdb -D $tmp/data -A trust" >/dev/null
cat >>"$tmp/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$tmp'
fp_attribution.signing_key_file = 'signing.pem'
CONF
as_pg "cd $tmp/data && openssl genpkey -algorithm ed25519 -out signing.pem && chmod 600 signing.pem"
start() {						# start [preload]
	local preload=""
	[ "${1:-}" = preload ] && preload="-c shared_preload_libraries=fp_attribution"
	as_pg "$bin/pg_ctl -D $tmp/data -l $tmp/log -o '$preload' -w start" >/dev/null
}
stop() { as_pg "$bin/pg_ctl -D $tmp/data -w stop" >/dev/null; }
psql() {						# psql DB [args...]: runs as postgres
	local db=$1
	shift
	as_pg "$bin/psql -X -q -v ON_ERROR_STOP=1 -h $tmp -d $db $(printf '%q ' "$@")"
}

# Everything a restore must reproduce, one line per table, plus what
# verify_all() reports
fingerprint() {
	psql "$1" -At <<'SQL'
SELECT 'windows ' || md5(coalesce(string_agg(w::text, '|' ORDER BY advertiser_id, affiliate_id), '')) FROM attribution.windows w;
SELECT 'clicks ' || count(*) || ' ' || md5(coalesce(string_agg(c::text, '|' ORDER BY advertiser_id, click_id), '')) FROM attribution.clicks c;
SELECT 'conversions ' || count(*) || ' ' || md5(coalesce(string_agg(c::text, '|' ORDER BY advertiser_id, order_id), '')) FROM attribution.conversions c;
SELECT 'receipts ' || count(*) || ' ' || md5(coalesce(string_agg(r::text, '|' ORDER BY advertiser_id, aggregate_type, aggregate_id, sequence), '')) FROM attribution.receipts r;
SELECT 'streams ' || md5(coalesce(string_agg(s::text, '|' ORDER BY advertiser_id, aggregate_type, aggregate_id), '')) FROM attribution.receipt_streams s;
SELECT 'keys ' || md5(coalesce(string_agg(k::text, '|' ORDER BY key_id), '')) FROM attribution.signing_keys k;
SELECT 'log_entries ' || count(*) || ' ' || md5(coalesce(string_agg(e::text, '|' ORDER BY advertiser_id, log_index), '')) FROM attribution.log_entries e;
SELECT 'log_nodes ' || count(*) || ' ' || md5(coalesce(string_agg(n::text, '|' ORDER BY advertiser_id, level, node_index), '')) FROM attribution.log_nodes n;
SELECT 'log_checkpoints ' || count(*) || ' ' || md5(coalesce(string_agg(c::text, '|' ORDER BY advertiser_id, tree_size), '')) FROM attribution.log_checkpoints c;
SELECT 'log_queue ' || count(*) || ' ' || md5(coalesce(string_agg(q::text, '|' ORDER BY advertiser_id, receipt_id), '')) FROM attribution.log_queue q;
SELECT 'report_totals ' || count(*) || ' ' || md5(coalesce(string_agg(t::text, '|' ORDER BY advertiser_id, day, affiliate_id, offer_id, currency), '')) FROM attribution.report_totals t;
SELECT 'report_deltas ' || count(*) || ' ' || md5(coalesce(string_agg(d::text, '|' ORDER BY d::text), '')) FROM attribution.report_deltas d;
SELECT 'daily_report ' || count(*) || ' ' || md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) FROM attribution.daily_report r;
SELECT 'daily_revenue ' || count(*) || ' ' || md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) FROM attribution.daily_revenue r;
SELECT 'verify_all ' || ok || ' ' || chains_checked || ' ' || receipts_checked FROM attribution.verify_all();
SQL
}
# The report of every advertiser against the rows themselves: clicks and
# attributed conversions counted, one line
report_vs_rows() {
	psql "$1" -At <<'SQL'
SELECT (SELECT sum(clicks) || ' ' || sum(conversions) || ' ' || sum(approved) FROM attribution.daily_report)
	   || ' = ' || (SELECT count(*) FROM attribution.clicks) || ' '
	   || (SELECT count(*) || ' ' || count(*) FILTER (WHERE status = 'approved') FROM attribution.conversions WHERE attributed);
SQL
}
# verify_log() of each checkpoint an auditor saved (file $2), one line each
verify_saved() {
	local note
	while IFS= read -r -d '' note; do
		[ "$note" = $'\n' ] && continue	# psql's newline after the last
		psql "$1" -At -v note="$note" <<<"SELECT ok || ' ' || advertiser_id || ' ' || checkpoint_size || ' ' || log_size FROM attribution.verify_log(:'note')"
	done < "$2"
}

start preload
psql postgres -c "CREATE DATABASE src"
psql src >/dev/null <<'SQL'
CREATE EXTENSION fp_attribution;
INSERT INTO attribution.windows (affiliate_id, attribution_window) VALUES ('aff-short', '1 hour');
SELECT count(attribution.track_click('aff-' || i % 3, click_id => ('c0000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
	visitor_id => 'v' || i, ip => '192.0.2.1', clicked_at => '2026-11-01 12:00+00'::timestamptz + i * interval '1 minute'))
  FROM generate_series(1, 20) AS i;
SELECT FROM attribution.track_click('aff-short', click_id => 'c0000000-0000-4000-8000-0000000000ff',
	clicked_at => '2026-11-01 12:00+00');
SELECT count(attribution.track_conversion('order-' || i, 1000 * i, click_id => ('c0000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
	converted_at => '2026-11-02 12:00+00'))
  FROM generate_series(1, 10) AS i;
SELECT FROM attribution.track_conversion('order-late', 5, click_id => 'c0000000-0000-4000-8000-0000000000ff',
	converted_at => '2026-11-02 12:00+00');
SELECT FROM attribution.track_conversion('order-nobody', 7);
SET fp_attribution.sign_receipts = on;
SELECT FROM attribution.track_conversion('order-signed', 99, visitor_id => 'v15', converted_at => '2026-11-02 12:00+00');
SELECT count(attribution.append_receipt('custom', 'agg-1', jsonb_build_object('step', i))) FROM generate_series(1, 3) AS i;
-- 30 receipts in the log (queue order is write order), the rest queued
SELECT attribution.integrate_log(30);
-- a second advertiser with the same ids: its own window, rows and chains
INSERT INTO attribution.windows (advertiser_id, affiliate_id, attribution_window) VALUES ('adv-2', 'aff-short', '2 hours');
SELECT FROM attribution.track_click('aff-short', click_id => 'c0000000-0000-4000-8000-000000000001',
	clicked_at => '2026-11-01 12:00+00', advertiser_id => 'adv-2');
SELECT FROM attribution.track_conversion('order-1', 1, click_id => 'c0000000-0000-4000-8000-000000000001',
	converted_at => '2026-11-01 13:00+00', advertiser_id => 'adv-2');
SELECT FROM attribution.append_receipt('custom', 'agg-1', '{"step": 1}', advertiser_id => 'adv-2');
-- the other 7 of 'default' and the first 2 of 'adv-2' logged, with
-- checkpoints; one receipt stays queued
SELECT attribution.integrate_log(9);
-- the default advertiser's report folded into totals, adv-2's in deltas
SELECT attribution.compact_report('default');
SQL
# the checkpoints an auditor saves before the dump, NUL-separated
psql src -At -c "SELECT string_agg(attribution.checkpoint(a) || E'\\x01', '' ORDER BY a) FROM (VALUES ('adv-2'), ('default')) v(a)" \
	| tr '\001' '\000' > "$tmp/saved"
check "source logs: 39 receipts integrated, 1 queued" "39 1" \
	"$(psql src -At -c "SELECT (SELECT count(*) FROM attribution.log_entries) || ' ' || (SELECT count(*) FROM attribution.log_queue)")"
before=$(fingerprint src)
check "source verifies" "verify_all true 38 40" "$(echo "$before" | grep '^verify_all')"
check "source report equals the rows (clicks, attributed conversions, approved)" "22 12 0 = 22 12 0" "$(report_vs_rows src)"
check "source report: totals and deltas both present" "2" \
	"$(psql src -At -c "SELECT (SELECT count(*) > 0 FROM attribution.report_totals)::int + (SELECT count(*) > 0 FROM attribution.report_deltas)::int")"

# 1. custom format, pg_restore, preloaded
as_pg "$bin/pg_dump -h $tmp -Fc -f $tmp/src.dump src"
psql postgres -c "CREATE DATABASE r_custom"
as_pg "$bin/pg_restore -h $tmp -d r_custom --exit-on-error $tmp/src.dump"
check "pg_dump -Fc + pg_restore reproduces every row and receipt" "$before" "$(fingerprint r_custom)"

# 2. plain format through psql, preloaded
psql postgres -c "CREATE DATABASE r_plain"
as_pg "$bin/pg_dump -h $tmp src | $bin/psql -X -q -v ON_ERROR_STOP=1 -h $tmp -d r_plain" >/dev/null
check "pg_dump | psql reproduces every row and receipt" "$before" "$(fingerprint r_plain)"

# 3. the same dump into a server without the preload
stop
start
psql postgres -c "CREATE DATABASE r_nopreload"
as_pg "$bin/pg_restore -h $tmp -d r_nopreload --exit-on-error $tmp/src.dump"
check "restore without shared_preload_libraries reproduces everything" "$before" "$(fingerprint r_nopreload)"
stop
start preload

check "saved checkpoints verify against the restored logs (custom)" \
	"$(printf 'true adv-2 2 2\ntrue default 37 37')" "$(verify_saved r_custom "$tmp/saved")"
check "saved checkpoints verify against the restored logs (plain)" \
	"$(printf 'true adv-2 2 2\ntrue default 37 37')" "$(verify_saved r_plain "$tmp/saved")"

# 4. new commands continue the restored chains and see the restored clicks
after=$(psql r_custom -At <<'SQL'
SELECT sequence FROM attribution.append_receipt('custom', 'agg-1', '{"step": 4}');
SELECT count(*) FROM attribution.track_conversion('order-new', 1, click_id => 'c0000000-0000-4000-8000-000000000015', converted_at => '2026-11-02 12:00+00');
SELECT attributed FROM attribution.conversions WHERE order_id = 'order-new';
SELECT count(*) FROM attribution.track_click('aff-1', click_id => 'c0000000-0000-4000-8000-000000000001');
SELECT sequence FROM attribution.append_receipt('custom', 'agg-1', '{"step": 2}', advertiser_id => 'adv-2');
SELECT ok || ' ' || chains_checked || ' ' || receipts_checked FROM attribution.verify_all();
SQL
)
check "reports after the restore and new commands equal the rows" "22 13 0 = 22 13 0" "$(report_vs_rows r_custom)"
check "commands continue restored chains (sequence 4, attributed, retry, other advertiser's sequence 2, verify)" \
	"$(printf '4\n1\nt\n1\n2\ntrue 39 43')" "$after"

# ... and the restored logs: the queued and the new receipts are appended
# once each, the saved checkpoints still verify, every receipt is logged
logs=$(psql r_custom -At <<'SQL'
SELECT attribution.integrate_log();
SELECT count(*) FROM attribution.log_queue;
SELECT string_agg(advertiser_id || ' ' || tree_size || ' ' || checkpoint_size, ',' ORDER BY advertiser_id) FROM attribution.log_status;
SELECT count(*) FROM attribution.receipts r
 WHERE NOT EXISTS (SELECT FROM attribution.log_entries e WHERE e.advertiser_id = r.advertiser_id AND e.receipt_id = r.receipt_id);
SELECT ok || ' ' || coalesce(failed_check, '-') FROM attribution.verify_all();
SQL
)
check "restored logs extended (4 integrated, queue empty, sizes, all logged, verify_all)" \
	"$(printf '4\n0\nadv-2 4 4,default 39 39\n0\ntrue -')" "$logs"
check "saved checkpoints verify against the extended logs" \
	"$(printf 'true adv-2 2 4\ntrue default 37 39')" "$(verify_saved r_custom "$tmp/saved")"

# 5. a restore that lost the receipts' rows does not verify
as_pg "$bin/pg_restore -l $tmp/src.dump" | grep -v 'TABLE DATA attribution receipts ' > "$tmp/no_receipts.list"
chown postgres: "$tmp/no_receipts.list" 2>/dev/null || true
psql postgres -c "CREATE DATABASE r_partial"
as_pg "$bin/pg_restore -h $tmp -d r_partial --exit-on-error -L $tmp/no_receipts.list $tmp/src.dump"
partial=$(psql r_partial -At -c "SELECT ok FROM attribution.verify_all()")
check "verify_all() fails when the receipts were not restored" "f" "$partial"

exit $status
