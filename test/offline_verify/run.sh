#!/bin/bash
# End-to-end test of the offline verification recipe (doc/receipts.md): a
# throw-away preloaded server writes unsigned and signed receipts (with a
# key rotation), psql exports them, the server is stopped, and verify.mjs
# checks the export with no PostgreSQL running; openssl checks one
# signature and one receipt hash on its own.  Tampered copies of the
# export must fail with the right check.  Needs the extension installed
# (make install), node + npm and openssl; run as root or as postgres.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin=$(pg_config --bindir)
tmp=$(mktemp -d /tmp/fp_offline.XXXXXX)
status=0

as_pg() {
	if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}
[ "$(id -u)" = 0 ] && chown postgres: "$tmp"
trap 'as_pg "$bin/pg_ctl -D $tmp/data -m immediate stop" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
pass() { echo "PASS offline_verify: $*"; }
fail() { echo "FAIL offline_verify: $*"; status=1; }

# the verifier's one dependency, pinned by package-lock.json
(cd "$here" && npm ci --silent --no-audit --no-fund >/dev/null)

as_pg "$bin/initdb -D $tmp/data -A trust" >/dev/null
cat >>"$tmp/data/postgresql.conf" <<CONF
shared_preload_libraries = 'fp_attribution'
listen_addresses = ''
unix_socket_directories = '$tmp'
fp_attribution.signing_key_file = 'signing.pem'
CONF
newkey="cd $tmp/data && openssl genpkey -algorithm ed25519 -out signing.tmp && chmod 600 signing.tmp && mv -f signing.tmp signing.pem"
as_pg "$newkey"
as_pg "$bin/pg_ctl -D $tmp/data -l $tmp/log -w start" >/dev/null
psql="$bin/psql -X -q -v ON_ERROR_STOP=1 -h $tmp -d postgres"

as_pg "$psql" >/dev/null <<'SQL'
CREATE EXTENSION fp_attribution;
SELECT FROM attribution.track_click('aff-1', click_id => 'c0000000-0000-4000-8000-000000000001', visitor_id => 'v1');
SET fp_attribution.sign_receipts = on;
SELECT FROM attribution.track_click('aff-ü', click_id => 'c0000000-0000-4000-8000-000000000002', visitor_id => 'v2',
	user_agent => E'Mozilla/5.0 "quoted" \\ tab\t newline\n ☃ 😀', ip => '2001:db8::1');
SELECT FROM attribution.track_conversion('order-1', 12999, 'EUR', visitor_id => 'v2');
SELECT FROM attribution.append_receipt('refund', 'order-1', '{"event": "requested"}');
SELECT FROM attribution.append_receipt('refund', 'order-1',
	'{"event": "adjusted", "ratio": 0.1, "big": 1e21, "tiny": 1e-7, "list": [true, null, "€"], "𝄞": 1, "z": 2}');
SQL
as_pg "$newkey"
as_pg "$psql" >/dev/null <<'SQL'
SET fp_attribution.sign_receipts = on;
SELECT FROM attribution.append_receipt('refund', 'order-1', '{"event": "refunded", "cents": 500}');
SELECT FROM attribution.track_conversion('order-2', 100, click_id => 'c0000000-0000-4000-8000-000000000001');
-- another advertiser: the same click id and order id are other chains
SELECT FROM attribution.track_click('aff-1', click_id => 'c0000000-0000-4000-8000-000000000001', advertiser_id => 'adv-2');
SELECT FROM attribution.track_conversion('order-1', 500, click_id => 'c0000000-0000-4000-8000-000000000001',
	advertiser_id => 'adv-2');
SQL

# the export, as documented
export_dir="$tmp/export"
as_pg "mkdir -p $export_dir/keys"
as_pg "$psql -At -c \"SELECT line FROM attribution.receipt_export ORDER BY advertiser_id, aggregate_type, aggregate_id, sequence\" > $export_dir/receipts.jsonl"
for id in $(as_pg "$psql -At -c 'SELECT key_id FROM attribution.signing_keys'"); do
	as_pg "$psql -At -c \"SELECT public_key_pem FROM attribution.signing_keys WHERE key_id = '$id'\" > $export_dir/keys/$id.pem"
done
[ "$(as_pg "$psql -At -c 'SELECT ok FROM attribution.verify_all()'")" = t ] && pass "database verifies clean" || fail "database verifies clean"
as_pg "$bin/pg_ctl -D $tmp/data -w stop" >/dev/null

# no PostgreSQL from here on
verify() { node "$here/verify.mjs" "$@"; }
cd "$export_dir"
if out=$(verify receipts.jsonl keys) && grep -q "^9 receipts in 7 chains, 0 failed" <<<"$out"; then
	pass "untouched export verifies ($out)"
else
	fail "untouched export verifies: $out"
fi
out=$(verify receipts.jsonl keys --require-signatures || true)
if grep -q "c0000000-0000-4000-8000-000000000001 sequence 1 .*: signature" <<<"$out"; then
	pass "--require-signatures flags the unsigned receipt"
else
	fail "--require-signatures flags the unsigned receipt"
fi

# openssl alone: one signature, one receipt hash
node -e '
	const fs = require("fs");
	const canonicalize = require(process.argv[1]);
	const r = fs.readFileSync("receipts.jsonl", "utf8").split("\n").filter(Boolean)
		.map(JSON.parse).find((x) => x.signature !== null);
	fs.writeFileSync("hash.bin", Buffer.from(r.receipt_hash, "hex"));
	fs.writeFileSync("sig.bin", Buffer.from(r.signature, "hex"));
	fs.writeFileSync("key_id", r.key_id);
	fs.writeFileSync("receipt_hash", r.receipt_hash);
	const { payload, signature, receipt_hash, ...env } = r;
	fs.writeFileSync("envelope.json", canonicalize({ ...env, version: 1 }));
' "$here/node_modules/canonicalize"
if openssl pkeyutl -verify -pubin -inkey "keys/$(cat key_id).pem" -rawin -in hash.bin -sigfile sig.bin | grep -q "Signature Verified Successfully"; then
	pass "openssl pkeyutl verifies a signature"
else
	fail "openssl pkeyutl verifies a signature"
fi
if [ "$(openssl dgst -sha256 -r envelope.json | cut -d' ' -f1)" = "$(cat receipt_hash)" ]; then
	pass "openssl dgst recomputes a receipt hash"
else
	fail "openssl dgst recomputes a receipt hash"
fi

# tampered exports must fail, naming the receipt and the check
expect_failure() {
	local name=$1 pattern=$2 out
	out=$(verify tampered.jsonl "${3:-keys}" || true)
	if grep -q "$pattern" <<<"$out"; then pass "detects $name"; else fail "detects $name: $out"; fi
}
tamper() {
	node -e '
		const fs = require("fs");
		const lines = fs.readFileSync("receipts.jsonl", "utf8").split("\n").filter(Boolean).map(JSON.parse);
		const edit = new Function("lines", process.argv[1]);
		edit(lines);
		fs.writeFileSync("tampered.jsonl", lines.map((l) => JSON.stringify(l)).join("\n") + "\n");
	' "$1"
}
pick='const i = lines.findIndex((l) => l.aggregate_type === "refund" && l.sequence === 2);'
tamper "$pick lines[i].payload.ratio = 0.2;"
expect_failure "an edited payload" "order-1 sequence 2 .*: payload_hash"
tamper "$pick lines.splice(i, 1);"
expect_failure "a removed middle receipt" "order-1 sequence 3 .*: sequence"
tamper "$pick const s = lines[i].signature; lines[i].signature = (s[0] === \"0\" ? \"1\" : \"0\") + s.slice(1);"
expect_failure "a flipped signature bit" "order-1 sequence 2 .*: signature"
tamper "$pick lines[i].trace_id = \"0af7651916cd43dd8448eb211c80319c\";"
expect_failure "a changed trace_id" "order-1 sequence 2 .*: receipt_hash"
tamper 'const i = lines.findIndex((l) => l.advertiser_id === "adv-2" && l.aggregate_type === "conversion"); lines[i].advertiser_id = "default"; lines[i].aggregate_id = "order-9";'
expect_failure "a receipt moved to another advertiser" "default conversion order-9 sequence 1 .*: receipt_hash"
cp receipts.jsonl tampered.jsonl
mkdir untrusted && cp keys/*.pem untrusted/ && rm "untrusted/$(cat key_id).pem"
expect_failure "a key the auditor does not trust" ": unknown_key" untrusted

exit $status
