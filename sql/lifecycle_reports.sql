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
