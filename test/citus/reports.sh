#!/bin/bash
# The report rollup on the cluster (run by tests.sh inside cluster.sh):
# the row triggers on the shards of clicks and conversions append their
# deltas to the colocated shard of attribution.report_deltas, a lifecycle
# command's change too; the coordinator folds them into report_totals
# (compact_reports(), what its ledger worker runs; a worker node's call
# folds nothing), and the views equal the rows before and after.
set -uo pipefail
. "$(dirname "$0")/check_lib.sh"

# clicks, attributed conversions and approved ones: in the report | in the rows
report_vs_rows() {
	q -c "SELECT (SELECT coalesce(sum(clicks), 0) || ' ' || coalesce(sum(conversions), 0) || ' ' || coalesce(sum(approved), 0)
					FROM attribution.daily_report)
				 || ' | ' || (SELECT count(*) FROM attribution.clicks) || ' '
				 || (SELECT count(*) || ' ' || count(*) FILTER (WHERE status = 'approved')
					   FROM attribution.conversions WHERE attributed)"
}
same() {						# "a | a" -> ok
	local r=$1
	[ "${r% | *}" = "${r#* | }" ] && echo ok || echo "$r"
}

for adv in adv-r1 adv-r2; do
	q -c "SELECT count(*) FROM attribution.track_click('aff-r', advertiser_id => '$adv',
			click_id => 'a7000000-0000-4000-8000-000000000001', clicked_at => now() - interval '1 hour')" >/dev/null
	q -c "SELECT count(*) FROM attribution.track_conversion('order-r', 2500, advertiser_id => '$adv',
			click_id => 'a7000000-0000-4000-8000-000000000001')" >/dev/null
done
q -c "SELECT count(*) FROM attribution.approve_conversion('order-r', 'adv-r1')" >/dev/null
check "report equals the rows with the deltas unfolded" ok "$(same "$(report_vs_rows)")"
check "a worker node folds nothing" "0" \
	"$(psql -XAtq -p "$CITUS_WORKER1_PORT" -c 'SELECT attribution.compact_reports()' 2>&1)"
# (the coordinator's ledger worker may have folded some already)
check "the coordinator folds every advertiser's deltas" "0" \
	"$(q -c 'SELECT attribution.compact_reports()' >/dev/null; q -c 'SELECT count(*) FROM attribution.report_deltas')"
check "the folded totals hold the lifecycle change" "1 0 1" \
	"$(q -c "SELECT sum(conversions) || ' ' || sum(pending) || ' ' || sum(approved) FROM attribution.daily_report WHERE advertiser_id = 'adv-r1'")"
check "report equals the rows after the fold" ok "$(same "$(report_vs_rows)")"
check "one totals row per key" "t" \
	"$(q -c "SELECT count(*) = count(DISTINCT (advertiser_id, day, affiliate_id, offer_id, currency)) FROM attribution.report_totals")"
check "one advertiser's fold is one task on its worker" "1" \
	"$(q -c "EXPLAIN (COSTS OFF) SELECT attribution.compact_report('adv-r2')" | sed -n 's/.*Task Count: \([0-9]*\).*/\1/p')"
exit $status
