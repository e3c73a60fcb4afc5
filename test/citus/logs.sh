#!/bin/bash
# Receipt logs on the cluster: clicks of two advertisers whose shards are
# on different workers are integrated into their logs by the ledger
# worker (the coordinator's calls of integrate_advertiser_log(), each
# delegated to the worker holding the advertiser), one checkpoint per
# log signed by that worker; from the coordinator, checkpoint(),
# receipt_proof(), consistency_proof(), verify_log() of a checkpoint
# saved earlier and verify_all() hold, the coordinator pushes the
# checkpoints, and the Go verifier of
# test/log_verify accepts the export of both logs; a leaf hash rewritten
# on its shard is reported by verify_all(), verify_log() and the Go
# verifier; after a move of a's shard group to b's worker, a's log goes on
# there and all of it still verifies.  Run by tests.sh, after distribute() (PG* at the coordinator).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$(dirname "$0")/check_lib.sh"
shard() {						# shard TABLE ADVERTISER: its shard's name, on its worker
	q -c "SELECT pg_catalog.shard_name('attribution.$1',
			pg_catalog.get_shard_id_for_distribution_column('attribution.$1', '$2'))"
}

work=$(mktemp -d /tmp/fp_citus_log.XXXXXX)
receiver=
trap '[ -n "$receiver" ] && kill $receiver 2>/dev/null; rm -rf "$work"' EXIT
# Debian's Go libraries live in /usr/share/gocode: GOPATH mode, no network
if ! (cd "$here/../log_verify" && GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= \
		GOCACHE=$work/gocache go build -o "$work/verify" verify.go) >"$work/go_build" 2>&1; then
	fail "Go verifier does not build: $(head -3 "$work/go_build")"
	exit 1
fi

# Two advertisers on different workers
a=log-a
pa=$(worker_port $a)
for i in $(seq 1 50); do
	b=log-b$i
	pb=$(worker_port $b)
	[ "$pb" != "$pa" ] && break
done
check "the two advertisers are on different workers" "t" \
	"$([ "$pa" != "$pb" ] && [ -n "$pb" ] && echo t)"

# wait_logs: until no receipt of a or b waits and each checkpoint is at
# its log's size (the worker integrates every fp_attribution.log_interval)
wait_logs() {
	local sizes
	for _ in $(seq 1 100); do
		sizes=$(q -c "SELECT string_agg(advertiser_id || '=' || tree_size || '/' || checkpoint_size
									   || '/' || pending, ' ' ORDER BY advertiser_id)
						FROM attribution.log_status WHERE advertiser_id IN ('$a', '$b')")
		[ "$sizes" = "$1" ] && break
		sleep 0.2
	done
	echo "$sizes"
}

clicks() {						# clicks ADVERTISER N: N clicks, autocommit (delegated)
	for _ in $(seq 1 "$2"); do
		q -c "SELECT attribution.track_click('aff-1', advertiser_id => '$1')" >/dev/null
	done
}
clicks $a 5
clicks $b 3
# and one inside a transaction block: run on the coordinator, routed
q >/dev/null <<SQL
BEGIN;
SELECT attribution.track_click('aff-2', advertiser_id => '$a');
COMMIT;
SQL
check "both logs integrated and checkpointed (size/checkpoint/pending)" "$a=6/6/0 $b=3/3/0" \
	"$(wait_logs "$a=6/6/0 $b=3/3/0")"

# The entries are on the shards of the advertiser's worker
check "log entries on the workers' shards" "6 3" \
	"$(psql -XAtq -p "$pa" -c "SELECT count(*) FROM $(shard log_entries $a) WHERE advertiser_id = '$a'") $(psql -XAtq -p "$pb" -c "SELECT count(*) FROM $(shard log_entries $b) WHERE advertiser_id = '$b'")"

# The auditor saves the checkpoints; more clicks; the logs grow
printf '%s\n' "$(q -c "SELECT attribution.checkpoint('$a')")" >"$work/saved-a"
printf '%s\n' "$(q -c "SELECT attribution.checkpoint('$b')")" >"$work/saved-b"
check "checkpoint() of each log from the coordinator" "$(printf '%s\n' "fp-attribution.invalid/log/$a" 6)" \
	"$(sed -n '1,2p' "$work/saved-a")"
# The coordinator pushes the checkpoints its calls return: to
# test/log_push/receiver.js, which verifies each note against a's verifier
# key with node's crypto (and answers its first request 503, retried)
q -c "SELECT attribution.log_verifier_key('$a')" >"$work/key"
touch "$work/received"
node "$here/../log_push/receiver.js" "$work/key" "$work/received" >"$work/port" &
receiver=$!
for _ in $(seq 1 50); do [ -s "$work/port" ] && break; sleep 0.1; done
q >/dev/null <<SQL
ALTER SYSTEM SET fp_attribution.log_push_endpoints = 'http://127.0.0.1:$(head -1 "$work/port")/checkpoints';
SELECT pg_catalog.pg_reload_conf();
SQL
sleep 1
clicks $a 20
clicks $b 2
check "the logs grow" "$a=26/26/0 $b=5/5/0" "$(wait_logs "$a=26/26/0 $b=5/5/0")"
pushed=
for _ in $(seq 1 50); do
	pushed=$(node -e '
		const ok = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").filter(Boolean)
			.map(JSON.parse).filter((l) => l.status === 200 && l.size === 26);
		if (ok.length) console.log(ok[0].origin + " " + ok[0].size);' "$work/received")
	[ -n "$pushed" ] && break
	sleep 0.2
done
check "the coordinator pushed a's checkpoint, signature verified by node crypto" \
	"fp-attribution.invalid/log/$a 26" "$pushed"
q >/dev/null <<SQL
ALTER SYSTEM RESET fp_attribution.log_push_endpoints;
SELECT pg_catalog.pg_reload_conf();
SQL

check "verify_log() of the saved checkpoints: ok" "t 6 26
t 3 5" \
	"$(q -c "SELECT concat_ws(' ', ok, checkpoint_size, log_size) FROM attribution.verify_log(pg_catalog.pg_read_file('$work/saved-a'))
			 UNION ALL SELECT concat_ws(' ', ok, checkpoint_size, log_size) FROM attribution.verify_log(pg_catalog.pg_read_file('$work/saved-b'))")"
check "consistency_proof() from the coordinator" "5" \
	"$(q -c "SELECT pg_catalog.cardinality(attribution.consistency_proof('$a', 6, 26))")"
check "receipt_proof() from the coordinator" "c2sp.org/tlog-proof@v1" \
	"$(q <<SQL
SELECT receipt_id FROM attribution.receipts WHERE advertiser_id = '$b' ORDER BY receipt_id LIMIT 1 \\gset
SELECT pg_catalog.split_part(attribution.receipt_proof(:'receipt_id'), E'\\n', 1);
SQL
)"
check "verify_all() clean" "t" "$(q -c "SELECT ok FROM attribution.verify_all()")"

# The export the Go verifier reads (test/log_verify/run.sh has its
# fields), per advertiser: the rows by statements each on the advertiser's
# shards, then the proofs by calls from the coordinator (a function that
# queries distributed tables cannot run inside a query on a shard)
export_logs() {
	local adv sep=''
	printf '{"logs": ['
	for adv in $a $b; do
		printf '%s' "$sep"
		sep=,
		q <<SQL || return 1
SELECT coalesce(json_agg(json_build_object('receipt_id', r.receipt_id,
		'receipt_hash', encode(r.receipt_hash, 'base64')) ORDER BY r.receipt_id), '[]') AS receipts
  FROM attribution.receipts r WHERE r.advertiser_id = '$adv' \gset
SELECT coalesce(json_agg(json_build_object('log_index', e.log_index, 'receipt_id', e.receipt_id)
		ORDER BY e.log_index), '[]') AS entries,
	   coalesce(array_agg(e.receipt_id ORDER BY e.log_index), '{}') AS ids
  FROM attribution.log_entries e WHERE e.advertiser_id = '$adv' \gset
SELECT coalesce(json_agg(c.note ORDER BY c.tree_size), '[]') AS checkpoints,
	   coalesce(array_agg(c.tree_size), '{}') AS sizes, coalesce(max(c.tree_size), 0) AS top
  FROM attribution.log_checkpoints c WHERE c.advertiser_id = '$adv' \gset
SELECT json_build_object('advertiser_id', '$adv',
	'verifier_key', attribution.log_verifier_key('$adv'),
	'receipts', :'receipts'::json, 'entries', :'entries'::json,
	'checkpoints', :'checkpoints'::json,
	'proofs', (SELECT coalesce(json_agg(attribution.receipt_proof(u.id) ORDER BY u.o), '[]')
				 FROM unnest(:'ids'::uuid[]) WITH ORDINALITY u(id, o)),
	'consistency', (SELECT coalesce(json_agg(json_build_object('old_size', s, 'new_size', :top,
						'proof', attribution.consistency_proof('$adv', s, :top))), '[]')
					  FROM unnest(:'sizes'::bigint[]) s));
SQL
	done
	printf ']}\n'
}
go_verify() {
	export_logs >"$work/export.json" &&
		"$work/verify" "$work/export.json" "$work/saved-a" "$work/saved-b" >"$work/go.out" 2>&1
}
if go_verify; then
	pass "Go verifier accepts both logs ($(tail -1 "$work/go.out"))"
else
	fail "Go verifier: $(head -3 "$work/go.out")"
fi

# A leaf hash rewritten on its shard, as a superuser with the triggers off
tile_of_3="advertiser_id = '$a' AND first_index = (SELECT max(first_index) FROM $(shard log_tiles $a)
	WHERE advertiser_id = '$a' AND first_index <= 3)"
rewrite_leaf() {				# rewrite_leaf EXPR: the row of a's leaf hashes holding index 3 := EXPR
	psql -XAtq -v ON_ERROR_STOP=1 -p "$pa" >/dev/null <<SQL
SET session_replication_role = replica;
UPDATE $(shard log_tiles $a) SET leaf_hashes = $1 WHERE $tile_of_3;
SQL
}
original=$(psql -XAtq -p "$pa" -c "SELECT encode(leaf_hashes, 'hex') FROM $(shard log_tiles $a) WHERE $tile_of_3")
rewrite_leaf "overlay(leaf_hashes placing sha256(leaf_hashes) from (3 - first_index)::int * 32 + 1 for 32)"
check "leaf hash rewritten on a shard: verify_all() reports the log" "f log $a" \
	"$(q -c "SELECT concat_ws(' ', ok, failed_aggregate_type, failed_advertiser_id) FROM attribution.verify_all()")"
check "leaf hash rewritten on a shard: verify_log() of the saved checkpoint" "f" \
	"$(q -c "SELECT ok FROM attribution.verify_log(pg_catalog.pg_read_file('$work/saved-a'))")"
if go_verify; then
	fail "leaf hash rewritten on a shard: Go verifier accepts"
else
	pass "leaf hash rewritten on a shard: Go verifier detects: $(head -1 "$work/go.out")"
fi
rewrite_leaf "decode('$original', 'hex')"
check "verify_all() clean once the leaf is put back" "t" "$(q -c "SELECT ok FROM attribution.verify_all()")"

# The log moves with its advertiser's shard group (citus_move_shard_placement
# to b's worker): integration, the saved checkpoint and verify_all hold there
q >/dev/null -c "SELECT pg_catalog.citus_move_shard_placement(
		pg_catalog.get_shard_id_for_distribution_column('attribution.clicks', '$a'),
		'127.0.0.1', $pa, '127.0.0.1', $pb, shard_transfer_mode => 'block_writes')"
check "a's shard group moved to b's worker" "$pb" "$(worker_port $a)"
clicks $a 3
check "after the move: a's log integrated on its new worker" "$a=29/29/0 $b=5/5/0" \
	"$(wait_logs "$a=29/29/0 $b=5/5/0")"
check "after the move: verify_log() of the checkpoint saved before it" "t 6 29" \
	"$(q -c "SELECT concat_ws(' ', ok, checkpoint_size, log_size) FROM attribution.verify_log(pg_catalog.pg_read_file('$work/saved-a'))")"
check "after the move: verify_all() clean" "t" "$(q -c "SELECT ok FROM attribution.verify_all()")"
if go_verify; then
	pass "after the move: Go verifier accepts both logs ($(tail -1 "$work/go.out"))"
else
	fail "after the move: Go verifier: $(head -3 "$work/go.out")"
fi
exit $status
