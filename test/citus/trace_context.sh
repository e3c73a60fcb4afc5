#!/bin/bash
# Trace context, correlation id and signing decision on the cluster: each
# source of the context (command argument, SET LOCAL, SQLCommenter
# comment, application_name) must reach the click row and its receipt on
# the worker, whether the command is sent whole to the worker (autocommit)
# or runs on the coordinator (inside BEGIN ... COMMIT); the correlation id
# and the signing decision by SET LOCAL or as a database default (the ways
# that reach a worker, doc/citus.md); a signed receipt must be signed with
# a key registered for its advertiser and verify.  Run by tests.sh.
set -uo pipefail
. "$(dirname "$0")/check_lib.sh"
n=0
# expect NAME TRACE_ID PARENT_SPAN_ID CORRELATION: the last click of adv-trace
# (click id 00000000-0000-4000-8000-00000000000$n) and its receipt
expect() {
	local got
	got=$(q -c "SELECT c.trace_id::text || ' ' || coalesce(c.parent_span_id::text, '-') || ' '
					   || (r.trace_id = c.trace_id AND r.span_id = c.span_id) || ' ' || r.correlation_id
				  FROM attribution.clicks c JOIN attribution.receipts r
					ON r.advertiser_id = c.advertiser_id AND r.aggregate_type = 'click'
				   AND r.aggregate_id = c.click_id::text
				 WHERE c.advertiser_id = 'adv-trace' AND c.click_id = '$(click_id)'" 2>&1)
	if [ "$got" = "$2 $3 true $4" ]; then
		pass "trace context: $1"
	else
		fail "trace context: $1: expected row and receipt '$2 $3 true $4', got '$got'"
	fi
}
click_id() { printf '00000000-0000-4000-8000-%012d' "$n"; }
tp() { echo "00-$1-$2-01"; }
T=4bf92f3577b34da6a3ce929d0e0e47
S=00f067aa0ba902

# 1. the traceparent argument
n=1
q -c "SELECT 1 FROM attribution.track_click('aff', click_id => '$(click_id)',
	  traceparent => '$(tp ${T}01 ${S}01)', advertiser_id => 'adv-trace')" >/dev/null
expect "argument, delegated" ${T}01 ${S}01 "$(q -c "SELECT correlation_id FROM attribution.receipts
	WHERE advertiser_id = 'adv-trace' AND aggregate_id = '$(click_id)'")"

# 2. SET LOCAL in a transaction, with a correlation id
n=2
q >/dev/null <<SQL
BEGIN;
SET LOCAL fp_attribution.traceparent = '$(tp ${T}02 ${S}02)';
SET LOCAL fp_attribution.correlation_id = 'corr-set-local';
SELECT 1 FROM attribution.track_click('aff', click_id => '$(click_id)', advertiser_id => 'adv-trace');
COMMIT;
SQL
expect "SET LOCAL in BEGIN ... COMMIT" ${T}02 ${S}02 corr-set-local

# 3. a SQLCommenter comment on the (delegated) top-level query
n=3
q -c "SELECT 1 FROM attribution.track_click('aff', click_id => '$(click_id)',
	  advertiser_id => 'adv-trace') /*traceparent='$(tp ${T}03 ${S}03)'*/" >/dev/null
expect "SQLCommenter comment, delegated" ${T}03 ${S}03 "$(q -c "SELECT correlation_id FROM attribution.receipts
	WHERE advertiser_id = 'adv-trace' AND aggregate_id = '$(click_id)'")"

# 4. application_name set to a traceparent (delegated)
n=4
PGAPPNAME=$(tp ${T}04 ${S}04) q -c "SELECT 1 FROM attribution.track_click('aff',
	click_id => '$(click_id)', advertiser_id => 'adv-trace')" >/dev/null
expect "application_name, delegated" ${T}04 ${S}04 "$(q -c "SELECT correlation_id FROM attribution.receipts
	WHERE advertiser_id = 'adv-trace' AND aggregate_id = '$(click_id)'")"

# a prepared statement run again and again (PostgreSQL may switch to a
# generic plan after five executions): each call gets the context of its
# own execution, here a new application_name each time
{
	echo "PREPARE click(uuid) AS SELECT 1 FROM attribution.track_click('aff', click_id => \$1, advertiser_id => 'adv-trace');"
	for i in $(seq 10 17); do
		echo "SET application_name = '$(tp ${T}$i ${S}$i)';"
		echo "EXECUTE click('00000000-0000-4000-8000-0000000000$i');"
	done
} | q >/dev/null
got=$(q -c "SELECT count(*) FROM attribution.clicks
			 WHERE advertiser_id = 'adv-trace'
			   AND click_id::text ~ '^00000000-0000-4000-8000-0000000000(1[0-7])$'
			   AND trace_id::text = '${T}' || right(click_id::text, 2)
			   AND parent_span_id::text = '${S}' || right(click_id::text, 2)")
if [ "$got" = 8 ]; then
	pass "trace context: application_name, prepared statement executed 8 times"
else
	fail "trace context: application_name, prepared statement executed 8 times: expected 8 rows with their own context, got $got"
fi

# 5. a correlation id set as a default for the database's sessions (Citus
# forwards ALTER ROLE ALL IN DATABASE ... SET to the workers, not a
# session's SET), on a delegated call
n=5
db=$(q -c 'SELECT current_database()')
q -c "ALTER ROLE ALL IN DATABASE \"$db\" SET fp_attribution.correlation_id = 'corr-database'"
q -c "SELECT 1 FROM attribution.track_click('aff', click_id => '$(click_id)',
	traceparent => '$(tp ${T}05 ${S}05)', advertiser_id => 'adv-trace')" >/dev/null
q -c "ALTER ROLE ALL IN DATABASE \"$db\" RESET fp_attribution.correlation_id"
expect "database default correlation id, delegated" ${T}05 ${S}05 corr-database

# 6, 7. the signing decision: SET LOCAL in a transaction, then a default
# for the database's sessions on a delegated call; the receipt is signed
# and its key registered for the advertiser
signed() {						# signed NAME
	local got
	got=$(q -c "SELECT r.key_id IS NOT NULL AND EXISTS (SELECT FROM attribution.signing_keys k
														 WHERE k.advertiser_id = r.advertiser_id
														   AND k.key_id = r.key_id)
				  FROM attribution.receipts r
				 WHERE r.advertiser_id = 'adv-trace' AND r.aggregate_id = '$(click_id)'" 2>&1)
	if [ "$got" = t ]; then pass "signing: $1"; else fail "signing: $1: expected a signed receipt with a registered key, got '$got'"; fi
}
n=6
q >/dev/null 2>"$CITUS_DIR/sign.err" <<SQL || sed 's/^/  /' "$CITUS_DIR/sign.err" | grep -m2 -E 'ERROR|CONTEXT'
BEGIN;
SET LOCAL fp_attribution.sign_receipts = on;
SELECT 1 FROM attribution.track_click('aff', click_id => '$(click_id)', advertiser_id => 'adv-trace');
COMMIT;
SQL
signed "SET LOCAL in BEGIN ... COMMIT"
n=7
q -c "ALTER ROLE ALL IN DATABASE \"$db\" SET fp_attribution.sign_receipts = on"
q >/dev/null 2>"$CITUS_DIR/sign.err" <<SQL || sed 's/^/  /' "$CITUS_DIR/sign.err" | grep -m2 -E 'ERROR|CONTEXT'
SELECT 1 FROM attribution.track_click('aff', click_id => '$(click_id)', advertiser_id => 'adv-trace');
SQL
q -c "ALTER ROLE ALL IN DATABASE \"$db\" RESET fp_attribution.sign_receipts"
signed "database default, delegated"

# 8. the signed receipts verify on the coordinator, each with the key
# registered for its advertiser
got=$(q -c "SELECT ok, failed_check FROM attribution.verify_chain('click', '$(click_id)', 'adv-trace')" 2>&1)
if [ "$got" = "t|" ]; then pass "signing: verify_chain on a worker"; else fail "signing: verify_chain on a worker: expected 't|', got '$got'"; fi

exit $status
