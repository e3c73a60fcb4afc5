#!/bin/bash
# Benchmark: attribution.verify_all() on a Citus cluster
# (test/citus/cluster.sh: coordinator + 2 workers on this machine, after
# attribution.distribute()), one pass per shard group on the nodes, against
# the same verification merged on the coordinator, in the same run: the
# coordinator calling
#
#   attribution.verify_shard_group('attribution.receipts',
#       'attribution.receipt_streams', 'attribution.clicks',
#       'attribution.conversions', 'attribution.signing_keys')
#
# on the distributed tables themselves, which is what verify_all() did
# before it went per shard group (Citus pulls every row of the four
# ordered scans to the coordinator and merges them there).  CLICKS clicks
# (default 5000) of 100 advertisers, a conversion for every tenth, are
# loaded first; the two forms alternate ROUNDS times (default 5) and the
# medians of their wall-clock times are reported with the ratio.  Both
# must report the same totals.  Needs citus (../shared/citus/build.sh)
# and the extension installed; run as root or postgres.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" = 0 ]; then
	exec su postgres -s /bin/bash -c "PATH='$PATH' ROUNDS=${ROUNDS:-} CLICKS=${CLICKS:-} CITUS_PORTS='${CITUS_PORTS:-}' bash '$here/citus_verify.sh'"
fi
if [ -z "${CITUS_DIR:-}" ]; then
	CITUS_EXTRA_CONF="synchronous_commit = off" exec bash "$here/../citus/cluster.sh" bash "$here/citus_verify.sh"
fi

# Inside the cluster: PG* point at the coordinator
ROUNDS=${ROUNDS:-5}
CLICKS=${CLICKS:-5000}
q() { psql -XAtq -v ON_ERROR_STOP=1 "$@"; }
q -c "SELECT attribution.distribute()" >/dev/null
# (commands, not INSERT ... SELECT: Citus copies the rows of that into the
# shards with COPY, which the triggers take for a restore)
q -c "SELECT count(attribution.track_click('aff-1', visitor_id => 'v-' || i,
										   advertiser_id => 'adv-' || i % 100))
	    FROM pg_catalog.generate_series(1, $CLICKS) i" >/dev/null
q -c "SELECT count(attribution.track_conversion('order-' || i, 100, visitor_id => 'v-' || i,
											  advertiser_id => 'adv-' || i % 100))
	    FROM pg_catalog.generate_series(10, $CLICKS, 10) i" >/dev/null

per_group="SELECT ok, chains_checked, receipts_checked FROM attribution.verify_all()"
merged="SELECT ok, chains_checked, receipts_checked FROM attribution.verify_shard_group(
	'attribution.receipts', 'attribution.receipt_streams', 'attribution.clicks',
	'attribution.conversions', 'attribution.signing_keys')"
timed() {						# timed SQL: prints "milliseconds result"
	local start end out
	start=$(date +%s%N)
	out=$(q -c "$1")
	end=$(date +%s%N)
	echo "$(((end - start) / 1000000)) $out"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
: >"$CITUS_DIR/per_group" >"$CITUS_DIR/merged"
for _ in $(seq "$ROUNDS"); do
	timed "$per_group" >>"$CITUS_DIR/per_group"
	timed "$merged" >>"$CITUS_DIR/merged"
done
if [ "$(cut -d' ' -f2 "$CITUS_DIR/per_group" | sort -u)" != "$(cut -d' ' -f2 "$CITUS_DIR/merged" | sort -u)" ]; then
	echo "the two forms disagree:"; cat "$CITUS_DIR/per_group" "$CITUS_DIR/merged"; exit 1
fi
a=$(cut -d' ' -f1 "$CITUS_DIR/per_group" | median)
b=$(cut -d' ' -f1 "$CITUS_DIR/merged" | median)
echo "result (ok|chains|receipts): $(cut -d' ' -f2 "$CITUS_DIR/per_group" | sort -u)"
echo "verify_all() per shard group: median $a ms over $ROUNDS runs ($(cut -d' ' -f1 "$CITUS_DIR/per_group" | tr '\n' ' '))"
echo "merged on the coordinator:    median $b ms over $ROUNDS runs ($(cut -d' ' -f1 "$CITUS_DIR/merged" | tr '\n' ' '))"
awk -v a="$a" -v b="$b" 'BEGIN { printf "per shard group / merged: %.2fx the time\n", a / b }'
