#!/bin/bash
# The reporting views at scale.  Loads TOTAL clicks (default 10,000,000;
# first argument) through a COPY (a restore: rows only, the rollup
# triggers add nothing) for 20 advertisers, 100 affiliates each with 10
# offers, over 60 days, with a conversion for one click in twenty
# (statuses and commissions mixed), builds the report rollup with
# attribution.rebuild_report() per advertiser, then adds LIVE (default
# 20,000) clicks of one advertiser through the triggers (unfolded deltas).
# For
#   - attribution.daily_report of one advertiser and one week,
#   - attribution.daily_revenue of one advertiser and one week,
#   - attribution.affiliate_balances of one advertiser,
# it prints the plan and buffers (EXPLAIN ANALYZE), with the deltas
# unfolded and after the fold, and the median of 5 execution times of
# each against, as the baseline measured on the same data, the same
# aggregate computed from the clicks and conversions themselves (what the
# views were before the rollup).  Also the time to rebuild and to fold.
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
t1=$(date +%s)
psql -c "SELECT sum(attribution.rebuild_report('adv-' || i)) FROM generate_series(0, 19) AS i" >/dev/null
echo "rollup rebuilt for 20 advertisers in $(( $(date +%s) - t1 )) s"
psql -c "VACUUM ANALYZE attribution.clicks" -c "VACUUM ANALYZE attribution.conversions" \
	-c "VACUUM ANALYZE attribution.report_totals"
echo "clicks: $(psql -c 'SELECT count(*) FROM attribution.clicks'), conversions: $(psql -c 'SELECT count(*) FROM attribution.conversions'), rollup keys: $(psql -c 'SELECT count(*) FROM attribution.report_totals'), loaded in $(( $(date +%s) - t0 )) s"

live=${LIVE:-20000}
psql -c "INSERT INTO attribution.clicks (advertiser_id, affiliate_id, offer_id, clicked_at)
	SELECT 'adv-7', 'aff-' || i % 100, 'off-' || i % 10, '2026-01-08'::timestamptz + (i % 604800) * interval '1 second'
	  FROM generate_series(1, $live) AS i" -c "ANALYZE attribution.report_deltas"
echo "live clicks through the triggers: $live, unfolded deltas: $(psql -c 'SELECT count(*) FROM attribution.report_deltas')"

week="day >= '2026-01-08' AND day < '2026-01-15'"
report="SELECT count(*), sum(clicks), sum(conversions) FROM attribution.daily_report WHERE advertiser_id = 'adv-7' AND $week"
revenue="SELECT count(*), sum(revenue_cents) FROM attribution.daily_revenue WHERE advertiser_id = 'adv-7' AND $week"
balances="SELECT count(*), sum(due_cents) FROM attribution.affiliate_balances WHERE advertiser_id = 'adv-7'"
# the baselines: the same aggregates over the rows (the views before the rollup)
cweek="clicked_at >= '2026-01-08' AND clicked_at < '2026-01-15'"
vweek="converted_at >= '2026-01-08' AND converted_at < '2026-01-15'"
report_rows="SELECT count(*), sum(clicks), sum(conversions) FROM (
	SELECT affiliate_id, offer_id, day, sum(clicks) AS clicks, sum(conversions) AS conversions FROM (
		SELECT affiliate_id, offer_id, (clicked_at AT TIME ZONE 'UTC')::date AS day, 1 AS clicks, 0 AS conversions
		  FROM attribution.clicks WHERE advertiser_id = 'adv-7' AND $cweek
		UNION ALL
		SELECT affiliate_id, offer_id, (converted_at AT TIME ZONE 'UTC')::date, 0, 1
		  FROM attribution.conversions WHERE advertiser_id = 'adv-7' AND attributed AND $vweek) e
	 GROUP BY 1, 2, 3) r"
revenue_rows="SELECT count(*), sum(revenue_cents) FROM (
	SELECT affiliate_id, offer_id, (converted_at AT TIME ZONE 'UTC')::date, currency, sum(revenue_cents) AS revenue_cents
	  FROM attribution.conversions WHERE advertiser_id = 'adv-7' AND attributed AND $vweek
	 GROUP BY 1, 2, 3, 4) r"
balances_rows="SELECT count(*), sum(due_cents) FROM (
	SELECT affiliate_id, currency,
		   coalesce(sum(commission_cents - commission_reversed_cents) FILTER (WHERE status IN ('approved', 'reversed')), 0) AS due_cents
	  FROM attribution.conversions WHERE advertiser_id = 'adv-7' AND commission_cents IS NOT NULL
	 GROUP BY 1, 2) r"

# the median of 5 execution times (ms) of query $1, interleaved with the
# baseline $2's: prints both
median_ms() {
	local i a b
	for i in 1 2 3 4 5; do
		a=$(psql -c "EXPLAIN (ANALYZE, TIMING OFF, COSTS OFF, FORMAT JSON) $1" | grep -oP '"Execution Time": \K[0-9.]+')
		b=$(psql -c "EXPLAIN (ANALYZE, TIMING OFF, COSTS OFF, FORMAT JSON) $2" | grep -oP '"Execution Time": \K[0-9.]+')
		echo "$a $b"
	done > "$tmp/times"
	echo "$(cut -d' ' -f1 "$tmp/times" | sort -n | sed -n 3p) $(cut -d' ' -f2 "$tmp/times" | sort -n | sed -n 3p)"
}
measure() {						# measure LABEL
	local q base one all
	for q in report revenue balances; do
		base=${q}_rows
		echo "== $q ($1): ${!q}"
		echo "   result: $(psql -c "${!q}"); from the rows: $(psql -c "${!base}")"
		psql -c "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, SUMMARY OFF, COSTS OFF) ${!q}" | sed 's/^/    /'
		read -r one all <<< "$(median_ms "${!q}" "${!base}")"
		echo "   median of 5: $one ms; from the rows ($base): $all ms; ratio $(echo "scale=4; $one / $all" | bc)"
	done
}
measure "$live deltas unfolded"
t1=$(date +%s%N)
echo "fold: $(psql -c "SELECT attribution.compact_reports()") deltas in $(( ($(date +%s%N) - t1) / 1000000 )) ms"
psql -c "VACUUM ANALYZE attribution.report_deltas" -c "ANALYZE attribution.report_totals"
measure "folded"
