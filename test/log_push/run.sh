#!/bin/bash
# Checkpoint push: a throw-away preloaded server whose ledger worker integrates
# every 200 ms pushes each checkpoint it signs to
# fp_attribution.log_push_endpoints, here test/log_push/receiver.js on
# 127.0.0.1 (ephemeral port), which verifies every note's Ed25519
# signature with node's crypto against attribution.log_verifier_key() and
# answers its first request 503 with Retry-After: 2 s (and every request to
# a second endpoint, /slow, 503 with Retry-After: a day).  Checks that the
# 503 is retried no sooner than Retry-After says (the backoff alone would
# retry within 1.5 s), that a longer Retry-After is capped at 5 minutes,
# that the latest checkpoint arrives signed, that the URL's credentials
# are sent but never logged, and that the setting is superuser-only.
# Needs the extension installed and node; run as root or postgres.
# Prints one PASS/FAIL line per check.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin=$(pg_config --bindir)
tmp=$(mktemp -d /tmp/fp_push.XXXXXX)
status=0
receiver=

as_pg() {
	if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}
[ "$(id -u)" = 0 ] && chown postgres: "$tmp"
cleanup() {
	[ -n "$receiver" ] && kill "$receiver" 2>/dev/null
	as_pg "$bin/pg_ctl -D $tmp/data -m immediate stop" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT
pass() { echo "PASS log_push: $*"; }
fail() { echo "FAIL log_push: $*"; status=1; }
check() {						# check NAME EXPECTED ACTUAL
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: expected '$2', got '$3'"; fi
}

touch "$tmp/key" "$tmp/received"
node "$here/receiver.js" "$tmp/key" "$tmp/received" > "$tmp/port" &
receiver=$!
for _ in $(seq 1 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
port=$(head -1 "$tmp/port")

as_pg "$bin/initdb -D $tmp/data -A trust" >/dev/null
cat >>"$tmp/data/postgresql.conf" <<CONF
shared_preload_libraries = 'fp_attribution'
listen_addresses = ''
unix_socket_directories = '$tmp'
fp_attribution.signing_key_file = 'signing.pem'
fp_attribution.log_interval = 200
fp_attribution.log_push_endpoints = 'http://pusher:s3cret-token@127.0.0.1:$port/checkpoints, http://127.0.0.1:$port/slow'
CONF
as_pg "cd $tmp/data && openssl genpkey -algorithm ed25519 -out signing.pem 2>/dev/null && chmod 600 signing.pem"
as_pg "$bin/pg_ctl -D $tmp/data -l $tmp/log -w start" >/dev/null
psql="$bin/psql -X -q -At -v ON_ERROR_STOP=1 -h $tmp -d postgres"
as_pg "$psql -c 'CREATE EXTENSION fp_attribution'"
as_pg "$psql -c 'SELECT attribution.log_verifier_key()'" > "$tmp/key"
as_pg "$psql -c \"SELECT count(*) FROM generate_series(1, 5) i, attribution.track_click('aff-' || i)\"" >/dev/null

# the ledger worker signs size 5; the receiver answers 503 once, then verifies
got=
for _ in $(seq 1 100); do
	got=$(node -e '
		const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").filter(Boolean).map(JSON.parse)
			.filter((l) => l.path === "/checkpoints");
		const ok = lines.filter((l) => l.status === 200 && l.size === 5);
		if (ok.length) console.log(lines[0].status + " " + ok[0].origin + " " + ok[0].size);' "$tmp/received")
	[ -n "$got" ] && break
	sleep 0.2
done
check "first push answered 503, retried, then the size-5 checkpoint verified by node crypto" \
	"503 fp-attribution.invalid/log/default 5" "$got"
check "every note after the first verifies" "0" \
	"$(node -e '
		const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse)
			.filter((l) => l.path === "/checkpoints");
		console.log(lines.slice(1).filter((l) => !l.ok).length);' "$tmp/received")"
check "the retry waited for Retry-After (2 s)" "true" \
	"$(node -e '
		const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse)
			.filter((l) => l.path === "/checkpoints");
		console.log(lines[1].t - lines[0].t >= 1900);' "$tmp/received")"
check "a Retry-After of a day is capped at 5 minutes, and nothing is sent to /slow meanwhile" "1 1" \
	"$(grep -A1 'log push to http://127.0.0.1:[0-9]*/slow failed: HTTP status 503' "$tmp/log" | grep -c 'sent again in 300.0 s' || true) $(grep -c '"/slow"' "$tmp/received" || true)"
check "POST of text/plain to the endpoint's path with its credentials" \
	"POST /checkpoints text/plain; charset=utf-8 Basic $(printf 'pusher:s3cret-token' | base64)" \
	"$(node -e '
		const l = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse)
			.find((l) => l.path === "/checkpoints");
		console.log(l.method + " " + l.path + " " + l.type + " " + l.authorization);' "$tmp/received")"
check "the 503 is logged with the URL redacted and the wait" "1" \
	"$(grep -A1 'log push to http://\*\*\*@127.0.0.1:[0-9]*/checkpoints failed: HTTP status 503' "$tmp/log" | grep -c 'sent again in 2.0 s' || true)"
check "the credentials never reach the server log" "0" "$(grep -c 's3cret' "$tmp/log" || true)"
check "the setting is superuser-only" "42501" \
	"$(as_pg "$psql" <<'SQL' 2>&1 | grep -o 42501 | head -1
CREATE ROLE push_reader;
SET ROLE push_reader;
\set VERBOSITY verbose
SHOW fp_attribution.log_push_endpoints;
SQL
)"
[ $status = 0 ] || { echo "received:"; cat "$tmp/received"; }
exit $status
