#!/bin/bash
# The reporting views at scale.  Loads TOTAL clicks (default 10,000,000;
# first argument) through a COPY (a restore: rows only) for 20 advertisers,
# 100 affiliates each with 10 offers, over 60 days, with a conversion for
# one click in twenty (statuses and commissions mixed), then prints for
#   - attribution.daily_report of one advertiser and one week,
#   - attribution.daily_revenue of one advertiser and one week,
#   - attribution.affiliate_balances of one advertiser,
# and, as the baseline measured on the same data, the same views unfiltered
# (every advertiser, every day):
#   - the plan and buffers (EXPLAIN ANALYZE),
#   - the median of 5 execution times, and its ratio to the baseline's.
# Run as root after `make install`.
set -euo pipefail

total=${1:-10000000}
. "$(dirname "$0")/scratch_server.sh"
scratch_server_start reports 'max_wal_size = 4GB
shared_buffers = 256MB
work_mem = 64MB'

t0=$(date +%s)
clicks="SELECT 'adv-' || i % 20, pg_catalog.gen_random_uuid(), 'aff-' || (i / 20) % 100,
	'off-' || (i / 7) % 10, 'v-' || i, '2026-01-01'::timestamptz + ((i / 20) % 60) * interval '1 day' + (i % 86400) * interval '1 second',
	'2026-01-01'::timestamptz + ((i / 20) % 60) * interval '1 day' + interval '30 days',
	'4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7', now()
	FROM generate_series(1, $total) AS i"
cols="advertiser_id, click_id, affiliate_id, offer_id, visitor_id, clicked_at, window_ends_at, trace_id, span_id, recorded_at"
as_pg "$bin/psql -X -q -h $tmp -d postgres -c \"COPY ($clicks) TO STDOUT\" |
	$bin/psql -X -q -h $tmp -d postgres -c \"COPY attribution.clicks ($cols) FROM STDIN\""
conversions="SELECT advertiser_id, 'o-' || click_id, click_id, affiliate_id, offer_id,
	window_ends_at, clicked_at + interval '1 hour', 10000, true,
	(ARRAY['pending', 'approved', 'approved', 'rejected', 'reversed'])[1 + (abs(hashtext(visitor_id)) / 20) % 5],
	1000, 0, '4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7'
	FROM attribution.clicks WHERE hashtext(visitor_id) % 20 = 0"
cols="advertiser_id, order_id, click_id, affiliate_id, offer_id, window_ends_at, converted_at,
	revenue_cents, attributed, status, commission_cents, commission_reversed_cents, trace_id, span_id"
as_pg "$bin/psql -X -q -h $tmp -d postgres -c \"COPY ($conversions) TO STDOUT\" |
	$bin/psql -X -q -h $tmp -d postgres -c \"COPY attribution.conversions ($(echo $cols)) FROM STDIN\""
psql -c "VACUUM ANALYZE attribution.clicks" -c "VACUUM ANALYZE attribution.conversions"
echo "clicks: $(psql -c 'SELECT count(*) FROM attribution.clicks'), conversions: $(psql -c 'SELECT count(*) FROM attribution.conversions'), loaded in $(( $(date +%s) - t0 )) s"

week="day >= '2026-01-08' AND day < '2026-01-15'"
report="SELECT count(*), sum(clicks), sum(conversions) FROM attribution.daily_report WHERE advertiser_id = 'adv-7' AND $week"
revenue="SELECT count(*), sum(revenue_cents) FROM attribution.daily_revenue WHERE advertiser_id = 'adv-7' AND $week"
balances="SELECT count(*), sum(due_cents) FROM attribution.affiliate_balances WHERE advertiser_id = 'adv-7'"
report_all="SELECT count(*), sum(clicks), sum(conversions) FROM attribution.daily_report"
revenue_all="SELECT count(*), sum(revenue_cents) FROM attribution.daily_revenue"
balances_all="SELECT count(*), sum(due_cents) FROM attribution.affiliate_balances"

# the median of 5 execution times (ms) of query $1
median_ms() {
	for i in 1 2 3 4 5; do
		psql -c "EXPLAIN (ANALYZE, TIMING OFF, COSTS OFF, FORMAT JSON) $1" |
			grep -oP '"Execution Time": \K[0-9.]+'
	done | sort -n | sed -n 3p
}
for q in report revenue balances; do
	base=${q}_all
	echo "== $q: ${!q}"
	echo "   result: $(psql -c "${!q}")"
	psql -c "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, SUMMARY OFF, COSTS OFF) ${!q}" | sed 's/^/    /'
	one=$(median_ms "${!q}")
	all=$(median_ms "${!base}")
	echo "   median of 5: $one ms; unfiltered baseline ($base): $all ms; ratio $(echo "scale=3; $one / $all" | bc)"
done
