#!/bin/bash
# Upgrades: every released version (a "## X.Y" heading in CHANGELOG.md)
# must reach the default version by ALTER EXTENSION UPDATE, keep its data
# and end with exactly the objects of a fresh install.  A released
# version's scripts are frozen: their SHA-256 are listed in
# test/upgrade/released.sha256 when the version is tagged, and a changed
# script fails here (a schema change ships as a new upgrade script).
#
# For each released version older than the default: a database created at
# that version records clicks and a conversion, is updated, and must
# verify (verify_all), take new commands on the same chains, and have the
# same extension objects (functions' definitions, columns, constraints,
# indexes, triggers, views, grants, comments, dump configuration) as a database
# where CREATE EXTENSION installs the default version.
# Needs the extension installed; run as root.  One PASS/FAIL line per check.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
. "$src/test/bench/scratch_server.sh"
status=0
pass() { echo "PASS upgrade: $*"; }
fail() { echo "FAIL upgrade: $*"; status=1; }

default=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$src/fp_attribution.control")
released=$(sed -n 's/^## \([0-9][0-9.]*\)\b.*/\1/p' "$src/CHANGELOG.md")

if [ -z "$released" ]; then
	pass "no released version yet"
	exit 0
fi
if (cd "$src" && sha256sum --quiet -c test/upgrade/released.sha256); then
	pass "released scripts unchanged ($(wc -l <"$here/released.sha256") files)"
else
	fail "a released script was edited: add an upgrade script instead"
fi
for v in $released; do
	grep -q "sql/fp_attribution--\(.*--\)\?$v.sql" "$here/released.sha256" ||
		fail "version $v is in CHANGELOG.md but none of its scripts is in released.sha256"
done

scratch_server_start upgrade "shared_preload_libraries = 'fp_attribution'"

# Everything an update must reproduce, one line per extension object
objects() {
	psql -d "$1" <<'SQL'
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'fp_attribution'),
member AS (
	SELECT d.classid, d.objid FROM pg_depend d, ext
	WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e')
SELECT 'member ' || pg_describe_object(m.classid, m.objid, 0) || ' ' || coalesce(md5(obj_description(m.objid, m.classid::regclass::name)), '')
FROM member m
UNION ALL
SELECT 'definition ' || p.oid::regprocedure || ' ' || md5(pg_get_functiondef(p.oid)) || ' ' || coalesce(p.proacl::text, '')
FROM member m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid WHERE p.prokind <> 'a'
UNION ALL
SELECT 'relation ' || c.oid::regclass || ' ' || c.relkind::text || ' ' || coalesce(c.relacl::text, '') || ' ' ||
	coalesce(md5(pg_get_viewdef(c.oid)), '')
FROM member m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
UNION ALL
SELECT 'column ' || a.attrelid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) ||
	' ' || a.attnotnull || ' ' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '') || ' ' || coalesce(a.attacl::text, '')
FROM member m JOIN pg_attribute a ON m.classid = 'pg_class'::regclass AND a.attrelid = m.objid
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint ' || co.conrelid::regclass || ' ' || co.conname || ' ' || pg_get_constraintdef(co.oid)
FROM member m JOIN pg_constraint co ON m.classid = 'pg_class'::regclass AND co.conrelid = m.objid
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid)
FROM member m JOIN pg_index i ON m.classid = 'pg_class'::regclass AND i.indrelid = m.objid
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid)
FROM member m JOIN pg_trigger t ON m.classid = 'pg_class'::regclass AND t.tgrelid = m.objid AND NOT t.tgisinternal
UNION ALL
SELECT 'dumped ' || c::regclass || ' ' || coalesce(e.extcondition[i], '')
FROM pg_extension e, unnest(e.extconfig) WITH ORDINALITY AS u(c, i) WHERE e.extname = 'fp_attribution'
ORDER BY 1;
SQL
}

psql -c "CREATE DATABASE fresh" -c "CREATE DATABASE updated"
psql -d fresh -c "CREATE EXTENSION fp_attribution"
objects fresh >"$tmp/fresh.txt"

for v in $released; do
	[ "$v" = "$default" ] && { pass "$v is the default version"; continue; }
	psql -c "DROP DATABASE updated" -c "CREATE DATABASE updated"
	psql -d updated -c "CREATE EXTENSION fp_attribution VERSION '$v'" \
		-c "SELECT attribution.track_click('aff-1', visitor_id => 'v-1', advertiser_id => 'adv-1')" \
		-c "SELECT attribution.track_conversion('order-1', 1000, visitor_id => 'v-1', advertiser_id => 'adv-1')" >/dev/null
	# Its receipts in its log as that version's integration left them (the
	# library installed is the default version's, whose integration needs
	# the default version's tables): moved off the queue into log entries
	# in order
	if [ "$v" = 2.0 ]; then psql -d updated >/dev/null <<'SQL'
WITH q AS (DELETE FROM attribution.log_queue RETURNING *)
INSERT INTO attribution.log_entries (advertiser_id, log_index, receipt_id, leaf_hash)
SELECT advertiser_id, row_number() OVER (PARTITION BY advertiser_id ORDER BY "timestamp", receipt_id) - 1,
	   receipt_id, sha256('\x00'::bytea || receipt_hash)
  FROM q;
SQL
	fi
	if psql -d updated -c "ALTER EXTENSION fp_attribution UPDATE"; then
		pass "$v -> $default: ALTER EXTENSION UPDATE"
	else
		fail "$v -> $default: ALTER EXTENSION UPDATE"
		continue
	fi
	got=$(psql -d updated -c "SELECT attribution.track_click('aff-1', visitor_id => 'v-2', advertiser_id => 'adv-1')" \
		-c "SELECT ok || ' ' || receipts_checked FROM attribution.verify_all()" | tail -n 1)
	[ "$got" = "true 3" ] && pass "$v -> $default: data verifies and takes new commands" ||
		fail "$v -> $default: verify_all after the update: $got"
	objects updated >"$tmp/updated.txt"
	if diff "$tmp/fresh.txt" "$tmp/updated.txt"; then
		pass "$v -> $default: same objects as a fresh install"
	else
		fail "$v -> $default: objects differ from a fresh install (diff above)"
	fi
done
exit $status
