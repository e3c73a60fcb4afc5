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
# The coordinator's span forwarding the delegated call of the click
# (src/context/delegation.c): one client span per click id
coord_span() {					# coord_span FIELDS: the SELECT list, for click $n
	q -c "SELECT $1 FROM attribution.spans
		   WHERE kind = 'client' AND attributes->>'fp.click.id' = '$(click_id)'"
}
worker_q() { q -p "$(worker_port adv-trace)" "$@"; }
# forwarded NAME TRACE_ID CALLER_SPAN SOURCE: the coordinator's span of
# click $n is in the caller's trace, child of CALLER_SPAN ('-': a root),
# named and attributed as a command span, with the context's source; the
# row's parent and the worker's command span's parent are that span
forwarded() {
	local got span row worker
	got=$(coord_span "trace_id || ' ' || coalesce(parent_span_id::text, '-') || ' ' || name || ' '
					  || (attributes->>'fp.command.name') || ' ' || (attributes->>'fp.trace.source') || ' '
					  || (attributes->>'fp.command.outcome') || ' ' || status_code" 2>&1)
	check "coordinator span: $1" "$2 $3 attribution.track_click track_click $4 forwarded unset" "$got"
	span=$(coord_span span_id)
	row=$(q -c "SELECT trace_id || ' ' || parent_span_id || ' ' || span_id FROM attribution.clicks
				 WHERE advertiser_id = 'adv-trace' AND click_id = '$(click_id)'")
	check "coordinator span is the row's parent: $1" "$2 $span" "${row% *}"
	worker=$(worker_q -c "SELECT parent_span_id || ' ' || kind || ' ' || (attributes->>'fp.trace.source')
						   FROM attribution.spans WHERE span_id = '${row##* }'")
	check "coordinator span is the worker span's parent: $1" "$span server argument" "$worker"
}
T=4bf92f3577b34da6a3ce929d0e0e47
S=00f067aa0ba902

# 1. the traceparent argument
n=1
q -c "SELECT 1 FROM attribution.track_click('aff', click_id => '$(click_id)',
	  traceparent => '$(tp ${T}01 ${S}01)', advertiser_id => 'adv-trace')" >/dev/null
forwarded "argument, delegated" ${T}01 ${S}01 argument
expect "argument, delegated" ${T}01 "$(coord_span span_id)" "$(q -c "SELECT correlation_id FROM attribution.receipts
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
check "no coordinator span for a command run on the coordinator" "" "$(coord_span span_id)"

# 3. a SQLCommenter comment on the (delegated) top-level query
n=3
q -c "SELECT 1 FROM attribution.track_click('aff', click_id => '$(click_id)',
	  advertiser_id => 'adv-trace') /*traceparent='$(tp ${T}03 ${S}03)'*/" >/dev/null
forwarded "SQLCommenter comment, delegated" ${T}03 ${S}03 sqlcommenter
expect "SQLCommenter comment, delegated" ${T}03 "$(coord_span span_id)" "$(q -c "SELECT correlation_id FROM attribution.receipts
	WHERE advertiser_id = 'adv-trace' AND aggregate_id = '$(click_id)'")"

# 4. application_name set to a traceparent (delegated)
n=4
PGAPPNAME=$(tp ${T}04 ${S}04) q -c "SELECT 1 FROM attribution.track_click('aff',
	click_id => '$(click_id)', advertiser_id => 'adv-trace')" >/dev/null
forwarded "application_name, delegated" ${T}04 ${S}04 application_name
expect "application_name, delegated" ${T}04 "$(coord_span span_id)" "$(q -c "SELECT correlation_id FROM attribution.receipts
	WHERE advertiser_id = 'adv-trace' AND aggregate_id = '$(click_id)'")"

# a prepared statement run again and again (PostgreSQL may switch to a
# generic plan after five executions): each call gets the context of its
# own execution, here a new application_name each time, and a
# coordinator span of its own, child of that context
{
	echo "PREPARE click(uuid) AS SELECT 1 FROM attribution.track_click('aff', click_id => \$1, advertiser_id => 'adv-trace');"
	for i in $(seq 10 17); do
		echo "SET application_name = '$(tp ${T}$i ${S}$i)';"
		echo "EXECUTE click('00000000-0000-4000-8000-0000000000$i');"
	done
} | q >/dev/null
spans=$(q -c "SELECT string_agg((attributes->>'fp.click.id') || ' ' || span_id, ',' ORDER BY 1)
			   FROM attribution.spans
			  WHERE kind = 'client'
				AND attributes->>'fp.click.id' ~ '^00000000-0000-4000-8000-0000000000(1[0-7])$'
				AND trace_id::text = '${T}' || right(attributes->>'fp.click.id', 2)
				AND parent_span_id::text = '${S}' || right(attributes->>'fp.click.id', 2)")
rows=$(q -c "SELECT string_agg(click_id || ' ' || parent_span_id, ',' ORDER BY 1)
			  FROM attribution.clicks
			 WHERE advertiser_id = 'adv-trace'
			   AND click_id::text ~ '^00000000-0000-4000-8000-0000000000(1[0-7])$'
			   AND trace_id::text = '${T}' || right(click_id::text, 2)")
got=$(tr ',' '\n' <<<"$rows" | grep -c .)
if [ "$got" = 8 ] && [ "$spans" = "$rows" ]; then
	pass "trace context: application_name, prepared statement executed 8 times"
else
	fail "trace context: application_name, prepared statement executed 8 times: expected 8 rows with their own context, children of the coordinator's spans '$spans', got '$rows'"
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
expect "database default correlation id, delegated" ${T}05 "$(coord_span span_id)" corr-database

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

# 9. no incoming context: the coordinator's span is a new root, and the
# worker's command span its child
n=9
q -c "SELECT 1 FROM attribution.track_click('aff', click_id => '$(click_id)',
	advertiser_id => 'adv-trace')" >/dev/null
forwarded "no incoming context, delegated" "$(coord_span trace_id)" - new_root

# 20. the command fails on the worker (bad input): the coordinator's span
# ends with status error, the error's SQLSTATE and message, and is the
# parent of the worker's failed command span
n=20
err=$(q -v VERBOSITY=sqlstate -c "SELECT 1 FROM attribution.track_click(' ', click_id => '$(click_id)',
	traceparent => '$(tp ${T}20 ${S}20)', advertiser_id => 'adv-trace')" 2>&1)
check "failing delegated command: the caller gets the worker's error" "ERROR:  22023" "$err"
check "coordinator span of a failing command" \
	"${T}20 ${S}20 error affiliate_id must not be empty failed 22023 exception" \
	"$(coord_span "trace_id || ' ' || parent_span_id || ' ' || status_code || ' ' || status_message || ' '
				   || (attributes->>'fp.command.outcome') || ' ' || (attributes->>'error.type') || ' '
				   || (events->0->>'name')")"
check "coordinator span is the failed worker span's parent" "error failed" \
	"$(worker_q -c "SELECT status_code || ' ' || (attributes->>'fp.command.outcome') FROM attribution.spans
					 WHERE parent_span_id = '$(coord_span span_id)' AND kind = 'server'")"
# the session goes on cleanly: a failed call's span (a root here) ends
# with its statement, before the next one starts
psql -XAtq >/dev/null 2>&1 <<SQL
SELECT 1 FROM attribution.track_click(' ', click_id => '$(click_id)', advertiser_id => 'adv-trace');
SELECT 1 FROM attribution.track_click('aff', click_id => '00000000-0000-4000-8000-000000000023',
	advertiser_id => 'adv-trace');
SQL
check "a failed call's span ends with its statement, not in the next" "error forwarded true" \
	"$(q -c "SELECT f.status_code || ' ' || (s.attributes->>'fp.command.outcome') || ' ' || (f.end_time <= s.start_time)
			   FROM attribution.spans f, attribution.spans s
			  WHERE f.kind = 'client' AND f.parent_span_id IS NULL AND f.attributes->>'fp.click.id' = '$(click_id)'
				AND s.kind = 'client' AND s.attributes->>'fp.click.id' = '00000000-0000-4000-8000-000000000023'")"

# 21. EXPLAIN plans the call but runs nothing: no span
n=21
q -c "EXPLAIN (COSTS OFF) SELECT attribution.track_click('aff', click_id => '$(click_id)',
	advertiser_id => 'adv-trace')" >/dev/null
check "no coordinator span for EXPLAIN" "" "$(coord_span span_id)"

# 22. an unsampled caller: the coordinator records no span, yet passes a
# span of its own (W3C: a new parent id) with the decision, and the
# worker records none either
n=22
q -c "SELECT 1 FROM attribution.track_click('aff', click_id => '$(click_id)',
	traceparent => '00-${T}22-${S}22-00', advertiser_id => 'adv-trace')" >/dev/null
check "no coordinator span for an unsampled caller" "" "$(coord_span span_id)"
row=$(q -c "SELECT trace_id || ' ' || (parent_span_id <> '${S}22') || ' ' || span_id FROM attribution.clicks
			 WHERE advertiser_id = 'adv-trace' AND click_id = '$(click_id)'")
check "unsampled caller: the row is in its trace, under the coordinator's unrecorded span" "${T}22 true" "${row% *}"
check "unsampled caller: no worker span" 0 \
	"$(worker_q -c "SELECT count(*) FROM attribution.spans WHERE span_id = '${row##* }'")"

exit $status
