#!/bin/bash
# Property test of RFC 8785 canonical JSON (issue 8): a throw-away UTF-8
# server runs attribution.canonical_json over 150,000 generated JSON texts
# (110,000 bare numbers: integers across the whole double range, all-digit
# integers beyond 2^53, fractions, exponents in both cases, subnormals,
# negative zero, digits beyond double precision; 30,000 strings from every
# Unicode plane with escapes and control characters; 10,000 nested
# documents) and prop.mjs compares every result with npm canonicalize
# (pinned by package-lock.json).  Zero mismatches pass.  Then the
# canonical texts of the first 25,000 bare numbers go through
# append_receipt (the exact mode receipts use) and must all be accepted and
# hashed as that text.  JCS_SEED picks another sequence.  Needs the
# extension installed, node + npm; run as root or as postgres.  Takes
# about 35 s.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin=$(pg_config --bindir)
tmp=$(mktemp -d /tmp/fp_jcs.XXXXXX)
seed=${JCS_SEED:-20261201}
status=0

as_pg() {
	if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}
[ "$(id -u)" = 0 ] && chown postgres: "$tmp"
trap 'as_pg "$bin/pg_ctl -D $tmp/data -m immediate stop" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT

(cd "$here" && npm ci --silent --no-audit --no-fund >/dev/null)
node "$here/prop.mjs" gen "$tmp" "$seed"
[ "$(id -u)" = 0 ] && chown postgres: "$tmp"/*

as_pg "$bin/initdb -D $tmp/data -A trust -E UTF8 --locale=C" >/dev/null
cat >>"$tmp/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$tmp'
CONF
as_pg "$bin/pg_ctl -D $tmp/data -l $tmp/log -w start" >/dev/null

# One row per case; a refused document becomes "ERROR <sqlstate> <message>"
# so it shows as a mismatch instead of stopping the run.  The CSV quote and
# delimiter are control characters, which JSON text and JCS output always
# escape.
as_pg "$bin/psql -X -q -v ON_ERROR_STOP=1 -h $tmp -d postgres" <<SQL
CREATE EXTENSION fp_attribution;
CREATE FUNCTION try_canonical(doc text) RETURNS text LANGUAGE plpgsql AS \$\$
BEGIN
	RETURN attribution.canonical_json(doc::jsonb);
EXCEPTION WHEN others THEN
	RETURN 'ERROR ' || SQLSTATE || ' ' || SQLERRM;
END \$\$;
CREATE TABLE cases (id int, doc text);
\copy cases FROM '$tmp/cases.txt' WITH (FORMAT csv, DELIMITER E'\x02', QUOTE E'\x01')
CREATE TABLE actual AS SELECT id, try_canonical(doc) AS canon FROM cases;
\copy actual TO '$tmp/actual.txt' WITH (FORMAT csv, DELIMITER E'\x02', QUOTE E'\x01')
SQL

# Receipts take a payload number only as RFC 8785 writes it (exact mode):
# every canonical number must be accepted by append_receipt and its
# payload_hash must be the SHA-256 of that text
hashed=$(as_pg "$bin/psql -X -q -At -v ON_ERROR_STOP=1 -h $tmp -d postgres" <<'SQL'
SELECT count(*) FILTER (WHERE r.payload_hash = sha256(convert_to('{"n":' || a.canon || '}', 'UTF8')))
	|| ' of ' || count(*)
  FROM (SELECT a.* FROM actual a JOIN cases c USING (id)
		 WHERE jsonb_typeof(c.doc::jsonb) = 'number' AND a.canon NOT LIKE 'ERROR%'
		 ORDER BY id LIMIT 25000) AS a,
	   LATERAL attribution.append_receipt('custom', 'n' || a.id, jsonb_build_object('n', a.canon::jsonb)) AS r;
SQL
) || hashed="an error for some of the"
read -r good _ total <<<"$hashed"
if [ "$good" = "$total" ] && [ "$total" -eq 25000 ]; then
	echo "PASS jcs_property: append_receipt accepts and hashes all $total numbers in RFC 8785 form"
else
	echo "FAIL jcs_property: append_receipt hashed $hashed numbers in RFC 8785 form as their text"
	status=1
fi

if node "$here/prop.mjs" check "$tmp"; then
	echo "PASS jcs_property: canonical_json equals canonicalize (seed $seed)"
else
	echo "FAIL jcs_property: canonical_json differs from canonicalize (seed $seed)"
	status=1
fi
exit $status
