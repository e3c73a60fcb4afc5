#!/bin/bash
# Postbacks on the cluster: a conversion tracked on the coordinator (sent
# whole to its worker, and inside BEGIN ... COMMIT) writes its outbox row
# on the worker holding its advertiser's shards, in the command's
# transaction, and the postback worker delivers it once, to a receiver
# on 127.0.0.1 (test/t/postback_receiver.js, a free port); finished rows
# past fp_attribution.postback_retention are deleted.  Run by tests.sh,
# after distribute().
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$(dirname "$0")/check_lib.sh"

work=$(mktemp -d /tmp/fp_citus_pb.XXXXXX)
node "$here/../t/postback_receiver.js" citus-secret-0123456789 0 >"$work/out" 2>&1 &
rcv=$!
trap 'kill $rcv 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q '^ready' "$work/out" && break; sleep 0.1; done
port=$(sed -n 's/^ready //p' "$work/out")
count() {						# requests the receiver saw for ORDER
	curl -s "http://127.0.0.1:$port/control/requests" |
		node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>
			console.log(JSON.parse(s).filter(r=>r.url.includes('o=$1&')).length))"
}

q -c "INSERT INTO attribution.postback_endpoints (advertiser_id, affiliate_id, url_template)
	  VALUES ('adv-pb', 'aff-pb', 'http://127.0.0.1:$port/ok/citus?o={order_id}&s={status}')" >/dev/null
owner=$(q -c "SELECT nodeport FROM pg_catalog.pg_dist_placement p
				JOIN pg_catalog.pg_dist_node n USING (groupid)
			   WHERE p.shardid = pg_catalog.get_shard_id_for_distribution_column(
					 'attribution.postback_outbox', 'adv-pb')")
# where the outbox rows of ORDER are stored: the ports of the placements
placed() {
	q -c "SELECT string_agg(DISTINCT n.nodeport::text, ',')
			FROM run_command_on_placements('attribution.postback_outbox',
				 \$\$SELECT count(*) FROM %s WHERE order_id = '$1'\$\$) p
			JOIN pg_catalog.pg_dist_node n ON n.nodename = p.nodename AND n.nodeport = p.nodeport
		   WHERE p.result::int > 0"
}
# wait until ORDER's postbacks are all delivered (at most 30 s)
delivered() {
	local got=''
	for _ in $(seq 150); do
		got=$(q -c "SELECT string_agg(state, ',' ORDER BY created_at)
					  FROM attribution.postback_outbox
					 WHERE advertiser_id = 'adv-pb' AND order_id = '$1'" 2>&1)
		[ "$got" = "$2" ] && break
		sleep 0.2
	done
	echo "$got"
}

# 1. autocommit: the command runs whole on the owner
q -c "SELECT 1 FROM attribution.track_click('aff-pb', click_id => 'c1000000-0000-4000-8000-000000000001',
	  advertiser_id => 'adv-pb')" >/dev/null
q -c "SELECT 1 FROM attribution.track_conversion('pb-auto', 1000,
	  click_id => 'c1000000-0000-4000-8000-000000000001', advertiser_id => 'adv-pb')" >/dev/null
check "postbacks: outbox row written on the advertiser's worker (autocommit)" "$owner" "$(placed pb-auto)"
check "postbacks: delivered (autocommit)" "delivered" "$(delivered pb-auto delivered)"

# 2. inside BEGIN ... COMMIT: runs on the coordinator, statements routed;
# and a rolled-back one leaves nothing
q >/dev/null <<'SQL'
BEGIN;
SELECT 1 FROM attribution.track_click('aff-pb', click_id => 'c1000000-0000-4000-8000-000000000002',
	advertiser_id => 'adv-pb');
SELECT 1 FROM attribution.track_conversion('pb-block', 2000,
	click_id => 'c1000000-0000-4000-8000-000000000002', advertiser_id => 'adv-pb');

COMMIT;
BEGIN;
SELECT 1 FROM attribution.track_click('aff-pb', click_id => 'c1000000-0000-4000-8000-000000000003',
	advertiser_id => 'adv-pb');
SELECT 1 FROM attribution.track_conversion('pb-rolled-back', 3000,
	click_id => 'c1000000-0000-4000-8000-000000000003', advertiser_id => 'adv-pb');
ROLLBACK;
SQL
q -c "SELECT 1 FROM attribution.approve_conversion('pb-block', advertiser_id => 'adv-pb')" >/dev/null
check "postbacks: outbox rows written on the advertiser's worker (BEGIN ... COMMIT)" "$owner" "$(placed pb-block)"
check "postbacks: tracked and approved delivered (BEGIN ... COMMIT)" "delivered,delivered" \
	"$(delivered pb-block delivered,delivered)"
check "postbacks: a rolled-back command enqueues nothing" "0" \
	"$(q -c "SELECT count(*) FROM attribution.postback_outbox WHERE order_id = 'pb-rolled-back'")"

# each postback reaches the receiver once (one postback worker claims it)
sleep 2
check "postbacks: each sent once, by one node's postback worker" "1 2" \
	"$(count pb-auto) $(count pb-block)"

# retention: the coordinator's worker deletes finished rows on the shards
q -c "UPDATE attribution.postback_outbox SET done_at = now() - interval '8 days'
	  WHERE advertiser_id = 'adv-pb' AND order_id = 'pb-auto'" >/dev/null
q -c "SELECT pg_reload_conf()" >/dev/null
left=''
for _ in $(seq 100); do
	left=$(q -c "SELECT string_agg(order_id, ',' ORDER BY created_at) FROM attribution.postback_outbox
				  WHERE advertiser_id = 'adv-pb'")
	[ "$left" = "pb-block,pb-block" ] && break
	sleep 0.2
done
check "postbacks: finished rows past the retention deleted" "pb-block,pb-block" "$left"

# an endpoint with postbacks is kept: on the cluster by the foreign key
# distribute() added, in place of the trigger of one node
check "postbacks: an endpoint with postbacks is not deleted (the foreign key)" \
	"postback_outbox_advertiser_id_endpoint_id_fkey 23503" \
	"$(q -c "SELECT conname FROM pg_constraint WHERE conrelid = 'attribution.postback_outbox'::regclass AND contype = 'f'") $(q -c "DO \$\$ BEGIN DELETE FROM attribution.postback_endpoints WHERE advertiser_id = 'adv-pb'; EXCEPTION WHEN foreign_key_violation THEN RAISE NOTICE '23503'; END \$\$" 2>&1 | sed -n 's/.*NOTICE: *//p')"
exit $status
