--
-- lifecycle_reports: automatic approval after the hold period (the SQL
-- the worker runs), the daily reports and the affiliate balances
--
INSERT INTO attribution.offers (advertiser_id, offer_id, payout_type, payout, currency, hold_period)
	VALUES ('rp', 'rp-hold', 'cpa', 700, 'USD', '7 days'),
		   ('rp', 'rp-rev', 'revshare', 2000, 'USD', '1 day');
SELECT count(*) FROM (VALUES
	(attribution.track_click('rp-a', advertiser_id => 'rp', offer_id => 'rp-hold',
		click_id => 'b1000000-0000-4000-8000-000000000001', clicked_at => '2026-03-01 09:00+00')),
	(attribution.track_click('rp-a', advertiser_id => 'rp', offer_id => 'rp-hold',
		click_id => 'b1000000-0000-4000-8000-000000000002', clicked_at => '2026-03-01 10:00+00')),
	(attribution.track_click('rp-a', advertiser_id => 'rp', offer_id => 'rp-rev',
		click_id => 'b1000000-0000-4000-8000-000000000003', clicked_at => '2026-03-02 10:00+00')),
	(attribution.track_click('rp-b', advertiser_id => 'rp',
		click_id => 'b1000000-0000-4000-8000-000000000004', clicked_at => '2026-03-02 11:00+00')),
	(attribution.track_click('rp-b', advertiser_id => 'rp', offer_id => 'rp-hold',
		click_id => 'b1000000-0000-4000-8000-000000000005', clicked_at => pg_catalog.now() - interval '1 hour'))) v(r);
SELECT count(*) FROM (VALUES
	-- past the hold period
	(attribution.track_conversion('rp-1', 1000, advertiser_id => 'rp',
		click_id => 'b1000000-0000-4000-8000-000000000001', converted_at => '2026-03-01 12:00+00')),
	(attribution.track_conversion('rp-2', 2000, advertiser_id => 'rp',
		click_id => 'b1000000-0000-4000-8000-000000000002', converted_at => '2026-03-01 13:00+00')),
	(attribution.track_conversion('rp-3', 5000, advertiser_id => 'rp',
		click_id => 'b1000000-0000-4000-8000-000000000003', converted_at => '2026-03-02 12:00+00')),
	-- no offer: no hold period, never approved automatically
	(attribution.track_conversion('rp-4', 800, advertiser_id => 'rp',
		click_id => 'b1000000-0000-4000-8000-000000000004', converted_at => '2026-03-02 12:00+00')),
	-- within the hold period
	(attribution.track_conversion('rp-5', 900, advertiser_id => 'rp',
		click_id => 'b1000000-0000-4000-8000-000000000005'))) v(r);
-- rp-2 is rejected first
SELECT payload->>'status' FROM attribution.reject_conversion('rp-2', 'rp', 'returned');

-- the worker's call: one at most, then the rest
SELECT attribution.approve_due_conversions(1);
SELECT attribution.approve_due_conversions();
SELECT attribution.approve_due_conversions();
SELECT order_id, status FROM attribution.conversions WHERE advertiser_id = 'rp' ORDER BY 1;
-- each approval is an ordinary command: a receipt with its reason, its own trace
SELECT r.aggregate_id, r.sequence, r.payload->>'event' AS event, r.payload->>'reason' AS reason,
	   r.trace_id <> c.trace_id AS own_trace
  FROM attribution.receipts r
  JOIN attribution.conversions c ON c.advertiser_id = r.advertiser_id AND c.order_id = r.aggregate_id
 WHERE r.advertiser_id = 'rp' AND r.aggregate_type = 'conversion'
   AND r.payload->>'event' = 'conversion_approved' ORDER BY 1;
-- only the extension's owner may run it
SELECT has_function_privilege('public', 'attribution.approve_due_conversions(integer)', 'execute');
-- the due conversions are found by index, per offer
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT c.order_id FROM attribution.conversions c
 WHERE c.advertiser_id = 'rp' AND c.offer_id = 'rp-hold' AND c.status = 'pending'
   AND c.review_reason IS NULL AND c.converted_at <= pg_catalog.now() - interval '7 days'
 ORDER BY c.converted_at LIMIT 10;
RESET enable_seqscan;

-- a refund and a reversal
SELECT payload->>'status' FROM attribution.refund_conversion('rp-3', 'rp', 1000);
SELECT payload->>'status' FROM attribution.reverse_conversion('rp-1', 'rp');

-- reports
SELECT * FROM attribution.daily_report WHERE advertiser_id = 'rp' AND day < '2026-04-01'
 ORDER BY affiliate_id, offer_id, day;
SELECT * FROM attribution.daily_revenue WHERE advertiser_id = 'rp' AND day < '2026-04-01'
 ORDER BY affiliate_id, offer_id, day;
-- rp-a: rp-1 700 reversed, rp-3 20 % of 5000 = 1000 less 20 % of the 1000 refunded
SELECT * FROM attribution.affiliate_balances WHERE advertiser_id = 'rp' ORDER BY affiliate_id;

-- the rollup: the views equal the same aggregates over the clicks and
-- conversions themselves (of this file's advertiser: other files change
-- rows behind the triggers' back), before and after the deltas are folded
CREATE TEMP VIEW plain_report AS
SELECT e.advertiser_id, e.affiliate_id, e.offer_id, e.day, sum(e.clicks)::bigint AS clicks,
	   sum(e.conversions)::bigint AS conversions, sum(e.pending)::bigint AS pending,
	   sum(e.approved)::bigint AS approved, sum(e.rejected)::bigint AS rejected,
	   sum(e.reversed)::bigint AS reversed
  FROM (SELECT advertiser_id, affiliate_id, offer_id, (clicked_at AT TIME ZONE 'UTC')::date AS day,
			   1 AS clicks, 0 AS conversions, 0 AS pending, 0 AS approved, 0 AS rejected, 0 AS reversed
		  FROM attribution.clicks WHERE advertiser_id = 'rp'
		UNION ALL
		SELECT advertiser_id, affiliate_id, offer_id, (converted_at AT TIME ZONE 'UTC')::date, 0, 1,
			   (status = 'pending')::int, (status = 'approved')::int,
			   (status = 'rejected')::int, (status = 'reversed')::int
		  FROM attribution.conversions WHERE attributed AND advertiser_id = 'rp') e
 GROUP BY 1, 2, 3, 4;
CREATE TEMP VIEW plain_revenue AS
SELECT advertiser_id, affiliate_id, offer_id, (converted_at AT TIME ZONE 'UTC')::date AS day, currency,
	   sum(revenue_cents) AS revenue_cents, sum(refunded_cents) AS refunded_cents,
	   sum(commission_cents) AS commission_cents,
	   sum(commission_reversed_cents) AS commission_reversed_cents
  FROM attribution.conversions WHERE attributed AND advertiser_id = 'rp'
 GROUP BY 1, 2, 3, 4, 5;
CREATE TEMP VIEW plain_balances AS
SELECT advertiser_id, affiliate_id, currency,
	   sum(commission_cents) FILTER (WHERE status IN ('approved', 'reversed')) AS approved_commission_cents,
	   sum(commission_reversed_cents) FILTER (WHERE status IN ('approved', 'reversed')) AS reversed_commission_cents,
	   coalesce(sum(commission_cents - commission_reversed_cents) FILTER (WHERE status IN ('approved', 'reversed')), 0) AS due_cents,
	   coalesce(sum(commission_cents - commission_reversed_cents) FILTER (WHERE status = 'pending'), 0) AS pending_cents
  FROM attribution.conversions WHERE commission_cents IS NOT NULL AND advertiser_id = 'rp'
 GROUP BY 1, 2, 3;
CREATE TEMP VIEW rollup_differences AS
SELECT 'report' AS view, count(*) AS rows_compared,
	   (SELECT count(*) FROM ((SELECT * FROM attribution.daily_report WHERE advertiser_id = 'rp' EXCEPT ALL TABLE plain_report)
			UNION ALL (TABLE plain_report EXCEPT ALL SELECT * FROM attribution.daily_report WHERE advertiser_id = 'rp')) d) AS differences
  FROM plain_report
UNION ALL
SELECT 'revenue', count(*),
	   (SELECT count(*) FROM ((SELECT * FROM attribution.daily_revenue WHERE advertiser_id = 'rp' EXCEPT ALL TABLE plain_revenue)
			UNION ALL (TABLE plain_revenue EXCEPT ALL SELECT * FROM attribution.daily_revenue WHERE advertiser_id = 'rp')) d)
  FROM plain_revenue
UNION ALL
SELECT 'balances', count(*),
	   (SELECT count(*) FROM ((SELECT * FROM attribution.affiliate_balances WHERE advertiser_id = 'rp' EXCEPT ALL TABLE plain_balances)
			UNION ALL (TABLE plain_balances EXCEPT ALL SELECT * FROM attribution.affiliate_balances WHERE advertiser_id = 'rp')) d)
  FROM plain_balances;
SELECT view, rows_compared > 0 AS compared, differences FROM rollup_differences;
-- every advertiser's deltas folded: one totals row per key
SELECT attribution.compact_reports() > 0 AS folded;
SELECT count(*) AS deltas_left FROM attribution.report_deltas;
SELECT count(*) = count(DISTINCT (advertiser_id, day, affiliate_id, offer_id, currency)) AS one_row_per_key
  FROM attribution.report_totals;
SELECT view, rows_compared > 0 AS compared, differences FROM rollup_differences;
SELECT attribution.compact_report('rp');

-- changes after a fold are deltas again: a click, a late click, an
-- approval of a held conversion, a refund in another currency
INSERT INTO attribution.offers (advertiser_id, offer_id, payout_type, payout, currency, hold_period)
	VALUES ('rp', 'rp-eur', 'revshare', 1000, 'EUR', '1 day');
SELECT count(*) FROM (VALUES
	(attribution.track_conversion('rp-late', 3000, advertiser_id => 'rp', currency => 'EUR',
		click_id => 'b1000000-0000-4000-8000-000000000006', converted_at => '2026-03-02 20:00+00')),
	(attribution.track_click('rp-c', advertiser_id => 'rp', offer_id => 'rp-eur',
		click_id => 'b1000000-0000-4000-8000-000000000006', clicked_at => '2026-03-02 19:00+00')),
	(attribution.approve_conversion('rp-5', 'rp')),
	(attribution.refund_conversion('rp-late', 'rp', 500))) v(r);
SELECT attributed, status, commission_cents, commission_reversed_cents FROM attribution.conversions
 WHERE advertiser_id = 'rp' AND order_id = 'rp-late';
SELECT count(*) AS deltas FROM attribution.report_deltas WHERE advertiser_id = 'rp';
SELECT * FROM attribution.daily_revenue WHERE advertiser_id = 'rp' AND affiliate_id = 'rp-c';
SELECT * FROM attribution.affiliate_balances WHERE advertiser_id = 'rp' ORDER BY affiliate_id, currency;
SELECT view, rows_compared > 0 AS compared, differences FROM rollup_differences;
SELECT attribution.compact_report('rp');
SELECT view, rows_compared > 0 AS compared, differences FROM rollup_differences;

-- a direct INSERT by a role allowed to insert clicks, and nothing else,
-- is counted too (the triggers write the rollup as its owner)
CREATE ROLE regress_fp_attribution_reporter;
GRANT USAGE ON SCHEMA attribution TO regress_fp_attribution_reporter;
GRANT INSERT ON attribution.clicks TO regress_fp_attribution_reporter;
SET ROLE regress_fp_attribution_reporter;
INSERT INTO attribution.clicks (advertiser_id, affiliate_id, clicked_at)
	VALUES ('rp', 'rp-d', '2026-03-03 10:00+00');
-- and cannot read nor fold the rollup
SELECT count(*) FROM attribution.daily_report;
SELECT attribution.compact_reports();
RESET ROLE;
SELECT affiliate_id, day, clicks FROM attribution.daily_report WHERE advertiser_id = 'rp' AND affiliate_id = 'rp-d';
REVOKE ALL ON attribution.clicks FROM regress_fp_attribution_reporter;
REVOKE ALL ON SCHEMA attribution FROM regress_fp_attribution_reporter;
DROP ROLE regress_fp_attribution_reporter;

-- the views read the rollup by index (advertiser, day range), never the
-- clicks or conversions
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT * FROM attribution.daily_report
 WHERE advertiser_id = 'rp' AND day >= '2026-03-01' AND day < '2026-03-08';
EXPLAIN (COSTS OFF) SELECT * FROM attribution.affiliate_balances WHERE advertiser_id = 'rp';
RESET enable_seqscan;

-- rebuild_report() recomputes the rollup from the rows: the same reports,
-- one row per key
SELECT attribution.rebuild_report('rp') > 0 AS rebuilt;
SELECT count(*) = count(DISTINCT (day, affiliate_id, offer_id, currency)) AS one_row_per_key
  FROM attribution.report_rollup WHERE advertiser_id = 'rp';
SELECT view, rows_compared > 0 AS compared, differences FROM rollup_differences;
-- a change the triggers did not see is found by the comparison and
-- repaired by a rebuild
BEGIN;
UPDATE attribution.report_totals SET clicks = clicks + 1
 WHERE advertiser_id = 'rp' AND affiliate_id = 'rp-d';
SELECT view, differences FROM rollup_differences WHERE view = 'report';
SELECT attribution.rebuild_report('rp') > 0 AS rebuilt;
SELECT view, differences FROM rollup_differences WHERE view = 'report';
ROLLBACK;
