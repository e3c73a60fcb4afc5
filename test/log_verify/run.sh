#!/bin/bash
# Receipt logs checked from the outside: a throw-away preloaded server
# records clicks, a conversion and a custom chain for two advertisers; the
# logs are integrated and checkpointed twice, and an auditor keeps the
# first checkpoints.  The Go verifier (verify.go: golang.org/x/mod/sumdb
# note and tlog from Debian's golang-golang-x-mod-dev, built offline in
# GOPATH mode) must accept the export; then each tampering, done as a
# superuser with the triggers off inside a transaction that the export
# reads and that is rolled back, must be reported both by the database
# (verify_all(), or verify_log() of the saved checkpoint) and by the Go
# verifier.  Needs the extension installed; run as root or postgres.
# Prints one PASS/FAIL line per check and "N passed, N failed" last.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin=$(pg_config --bindir)
tmp=$(mktemp -d /tmp/fp_log.XXXXXX)
passed=0 failed=0

as_pg() {
	if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}
[ "$(id -u)" = 0 ] && chown postgres: "$tmp"
trap 'as_pg "$bin/pg_ctl -D $tmp/data -m immediate stop" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
pass() { echo "PASS log_verify: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL log_verify: $*"; failed=$((failed + 1)); }

# Debian's Go libraries live in /usr/share/gocode: GOPATH mode, no network
as_pg "cd $here && GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOCACHE=$tmp/gocache \
	go build -o $tmp/verify verify.go"

as_pg "$bin/initdb -D $tmp/data -A trust" >/dev/null
cat >>"$tmp/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$tmp'
shared_preload_libraries = 'fp_attribution'
fp_attribution.signing_key_file = 'signing.pem'
fp_attribution.log_interval = 100	# the ledger worker integrates the first batch
CONF
as_pg "cd $tmp/data && openssl genpkey -algorithm ed25519 -out signing.pem 2>/dev/null && chmod 600 signing.pem"
as_pg "$bin/pg_ctl -D $tmp/data -l $tmp/log -w start" >/dev/null
psql() { as_pg "$bin/psql -h $tmp -d postgres -X -q -v ON_ERROR_STOP=1 -At $*"; }

psql >/dev/null <<'SQL'
CREATE EXTENSION fp_attribution;
SELECT count(*) FROM generate_series(1, 20) AS n,
	LATERAL attribution.track_click('aff-' || n % 3,
		click_id => ('10000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid);
SELECT count(*) FROM generate_series(1, 7) AS n,
	LATERAL attribution.track_click('aff-' || n, advertiser_id => 'acme');
SELECT count(*) FROM attribution.track_conversion('order-1', 100,
	click_id => '10000000-0000-4000-8000-000000000005');
SELECT count(*) FROM generate_series(1, 3) AS n,
	LATERAL attribution.append_receipt('ticket', 't-1', jsonb_build_object('step', n));
SQL
# the ledger worker integrates and checkpoints within a few intervals
for _ in $(seq 1 100); do
	lag=$(psql "-c \"SELECT count(*) FROM attribution.log_status WHERE pending > 0 OR checkpoint_size < tree_size\"")
	[ "$lag" = 0 ] && break
	sleep 0.1
done
sizes=$(psql "-c \"SELECT string_agg(advertiser_id || '=' || checkpoint_size, ' ' ORDER BY advertiser_id) FROM attribution.log_status\"")
if [ "$sizes" = "acme=7 default=24" ]; then pass "the worker integrated and checkpointed: $sizes"; else fail "worker: $sizes"; fi
# psql ends the value with a newline of its own: keep the note's only
printf '%s\n' "$(psql "-c \"SELECT attribution.checkpoint()\"")" >"$tmp/saved-default"
printf '%s\n' "$(psql "-c \"SELECT attribution.checkpoint('acme')\"")" >"$tmp/saved-acme"
psql >/dev/null <<'SQL'
SELECT count(*) FROM generate_series(21, 300) AS n,
	LATERAL attribution.track_click('aff-' || n % 3,
		click_id => ('10000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid);
SELECT count(*) FROM generate_series(1, 4) AS n,
	LATERAL attribution.track_click('aff-' || n, advertiser_id => 'acme');
SELECT attribution.integrate_log();
SQL

# The export the Go verifier reads, from inside the session (so it sees an
# uncommitted tampering)
cat >"$tmp/export.sql" <<SQL
\\o $tmp/export.json
SELECT json_build_object('logs', coalesce(json_agg(l ORDER BY l.advertiser_id), '[]')) FROM (SELECT a.advertiser_id, attribution.log_verifier_key(a.advertiser_id) AS verifier_key, (SELECT coalesce(json_agg(json_build_object('receipt_id', r.receipt_id, 'receipt_hash', encode(r.receipt_hash, 'base64')) ORDER BY r.receipt_id), '[]') FROM attribution.receipts r WHERE r.advertiser_id = a.advertiser_id) AS receipts, (SELECT coalesce(json_agg(json_build_object('log_index', e.log_index, 'receipt_id', e.receipt_id) ORDER BY e.log_index), '[]') FROM attribution.log_entries e WHERE e.advertiser_id = a.advertiser_id) AS entries, (SELECT coalesce(json_agg(c.note ORDER BY c.tree_size), '[]') FROM attribution.log_checkpoints c WHERE c.advertiser_id = a.advertiser_id) AS checkpoints, (SELECT coalesce(json_agg(attribution.receipt_proof(e.receipt_id) ORDER BY e.log_index), '[]') FROM attribution.log_entries e WHERE e.advertiser_id = a.advertiser_id AND EXISTS (SELECT FROM attribution.receipts r WHERE r.receipt_id = e.receipt_id)) AS proofs, (SELECT coalesce(json_agg(json_build_object('old_size', c.tree_size, 'new_size', m.size, 'proof', attribution.consistency_proof(a.advertiser_id, c.tree_size, m.size))), '[]') FROM attribution.log_checkpoints c, (SELECT max(tree_size) AS size FROM attribution.log_checkpoints WHERE advertiser_id = a.advertiser_id) m WHERE c.advertiser_id = a.advertiser_id AND m.size <= (SELECT count(*) FROM attribution.log_entries e WHERE e.advertiser_id = a.advertiser_id)) AS consistency FROM (SELECT advertiser_id FROM attribution.receipts UNION SELECT advertiser_id FROM attribution.log_entries) a) l;
\\o
SQL

go_verify() {
	as_pg "$tmp/verify $tmp/export.json $tmp/saved-default $tmp/saved-acme" >"$tmp/go.out" 2>&1
}

# untouched: both accept
out=$(psql <<SQL
SELECT ok FROM attribution.verify_all();
SELECT ok FROM attribution.verify_log(pg_read_file('$tmp/saved-default'));
\\i $tmp/export.sql
SQL
)
if [ "$out" = "$(printf 't\nt')" ]; then pass "untouched: database accepts"; else fail "untouched: database says $out"; fi
if go_verify; then pass "untouched: Go verifier accepts ($(tail -1 "$tmp/go.out"))"; else fail "untouched: Go verifier: $(head -3 "$tmp/go.out")"; fi

# tamper NAME SQL: the database check (verify_all() or verify_log() of the
# saved checkpoint) must be false, and the Go verifier must fail
tamper() {
	local name=$1 sql=$2 out
	out=$(psql <<SQL
SET session_replication_role = replica;
BEGIN;
$sql
SELECT (SELECT ok FROM attribution.verify_all())
	AND (SELECT ok FROM attribution.verify_log(pg_read_file('$tmp/saved-default')));
\\i $tmp/export.sql
ROLLBACK;
SQL
)
	if [ "$out" = f ]; then pass "$name: database detects"; else fail "$name: database says '$out'"; fi
	if go_verify; then fail "$name: Go verifier accepts"; else pass "$name: Go verifier detects: $(head -1 "$tmp/go.out")"; fi
}

tamper "click deleted with its receipt" "
DELETE FROM attribution.clicks WHERE click_id = '10000000-0000-4000-8000-000000000002';
DELETE FROM attribution.receipts WHERE aggregate_id = '10000000-0000-4000-8000-000000000002';
DELETE FROM attribution.receipt_streams WHERE aggregate_id = '10000000-0000-4000-8000-000000000002';"
tamper "newest receipt of a chain deleted" "
DELETE FROM attribution.receipts WHERE aggregate_id = 't-1' AND sequence = 3;
UPDATE attribution.receipt_streams s SET last_sequence = 2, last_hash = r.receipt_hash
  FROM attribution.receipts r WHERE r.aggregate_id = 't-1' AND r.sequence = 2 AND s.aggregate_id = 't-1';"
tamper "row edited with its receipt rehashed" "
UPDATE attribution.receipts SET payload = payload || '{\"step\": 9}',
	payload_hash = sha256(convert_to(attribution.canonical_json(payload || '{\"step\": 9}'), 'UTF8'))
 WHERE aggregate_id = 't-1' AND sequence = 3;
UPDATE attribution.receipts r SET receipt_hash = sha256(convert_to(attribution.receipt_envelope(r), 'UTF8'))
 WHERE aggregate_id = 't-1' AND sequence = 3;
UPDATE attribution.receipt_streams s SET last_hash = r.receipt_hash
  FROM attribution.receipts r WHERE r.aggregate_id = 't-1' AND r.sequence = 3 AND s.aggregate_id = 't-1';"
tamper "log entries swapped" "
CREATE TEMP TABLE swap AS SELECT log_index, receipt_id FROM attribution.log_entries
 WHERE advertiser_id = 'default' AND log_index IN (3, 4);
UPDATE attribution.log_entries SET receipt_id = gen_random_uuid() WHERE advertiser_id = 'default' AND log_index = 3;
UPDATE attribution.log_entries e SET receipt_id = s.receipt_id FROM swap s
 WHERE e.advertiser_id = 'default' AND e.log_index = 4 AND s.log_index = 3;
UPDATE attribution.log_entries e SET receipt_id = s.receipt_id FROM swap s
 WHERE e.advertiser_id = 'default' AND e.log_index = 3 AND s.log_index = 4;"
tamper "leaf hash rewritten" "
UPDATE attribution.log_tiles SET leaf_hashes = overlay(leaf_hashes placing sha256(leaf_hashes) from (5 - first_index)::int * 32 + 1 for 32)
 WHERE advertiser_id = 'default' AND first_index = (SELECT max(first_index) FROM attribution.log_tiles WHERE advertiser_id = 'default' AND first_index <= 5);"
tamper "stored subtree hash rewritten" "
UPDATE attribution.log_nodes SET hash = sha256(hash) WHERE advertiser_id = 'default' AND level = 8 AND node_index = 0;"
tamper "forked history re-signed" "
DELETE FROM attribution.clicks WHERE click_id = '10000000-0000-4000-8000-000000000002';
DELETE FROM attribution.receipts WHERE aggregate_id = '10000000-0000-4000-8000-000000000002';
DELETE FROM attribution.receipt_streams WHERE aggregate_id = '10000000-0000-4000-8000-000000000002';
DELETE FROM attribution.log_entries WHERE advertiser_id = 'default';
DELETE FROM attribution.log_tiles WHERE advertiser_id = 'default';
DELETE FROM attribution.log_nodes WHERE advertiser_id = 'default';
DELETE FROM attribution.log_checkpoints WHERE advertiser_id = 'default';
INSERT INTO attribution.log_queue SELECT advertiser_id, receipt_id, receipt_hash, \"timestamp\" FROM attribution.receipts WHERE advertiser_id = 'default';
SELECT attribution.integrate_log() \\g /dev/null"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
