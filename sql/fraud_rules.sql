--
-- fraud_rules: each rule holds a new attributed conversion pending with
-- its reason (in the row and its first receipt), counts a hit and logs it
-- in the command's trace context; every rule has a setting that turns it off
--
SELECT attribution.reset_telemetry();
INSERT INTO attribution.offers (advertiser_id, offer_id, payout_type, payout, hold_period)
	VALUES ('fr', 'fr-now', 'cpa', 100, '0');
INSERT INTO attribution.affiliate_visitors (advertiser_id, affiliate_id, visitor_id)
	VALUES ('fr', 'fr-aff', 'fr-own-visitor');

-- no rule set off by default but self-referral: approved at once
SHOW fp_attribution.fraud_min_click_age;
SHOW fp_attribution.fraud_max_clicks_per_ip;
SHOW fp_attribution.fraud_self_referral;
SELECT count(*) FROM attribution.track_click('fr-aff', advertiser_id => 'fr', offer_id => 'fr-now',
	click_id => 'c1000000-0000-4000-8000-000000000001', clicked_at => pg_catalog.now() - interval '1 second');
SELECT count(*) FROM attribution.track_conversion('fr-1', 1000, advertiser_id => 'fr',
	click_id => 'c1000000-0000-4000-8000-000000000001');

-- click injection: converted 1 second after the click, minimum 30 s
SET fp_attribution.fraud_min_click_age = '30s';
SELECT count(*) FROM attribution.track_conversion('fr-2', 1000, advertiser_id => 'fr',
	click_id => 'c1000000-0000-4000-8000-000000000001',
	traceparent => '00-33333333333333333333333333333333-4444444444444444-01');
-- old enough
SELECT count(*) FROM attribution.track_click('fr-aff', advertiser_id => 'fr', offer_id => 'fr-now',
	click_id => 'c1000000-0000-4000-8000-000000000002', clicked_at => pg_catalog.now() - interval '1 hour');
SELECT count(*) FROM attribution.track_conversion('fr-3', 1000, advertiser_id => 'fr',
	click_id => 'c1000000-0000-4000-8000-000000000002');
RESET fp_attribution.fraud_min_click_age;

-- self-referral: the conversion's visitor, or else the click's, is the affiliate's own
SELECT count(*) FROM attribution.track_conversion('fr-4', 1000, advertiser_id => 'fr',
	click_id => 'c1000000-0000-4000-8000-000000000002', visitor_id => 'fr-own-visitor');
SELECT count(*) FROM attribution.track_click('fr-aff', advertiser_id => 'fr', offer_id => 'fr-now',
	click_id => 'c1000000-0000-4000-8000-000000000003', visitor_id => 'fr-own-visitor',
	clicked_at => pg_catalog.now() - interval '1 hour');
SELECT count(*) FROM attribution.track_conversion('fr-5', 1000, advertiser_id => 'fr',
	click_id => 'c1000000-0000-4000-8000-000000000003');
-- another advertiser's list does not apply; the setting turns it off
SET fp_attribution.fraud_self_referral = off;
SELECT count(*) FROM attribution.track_conversion('fr-6', 1000, advertiser_id => 'fr',
	click_id => 'c1000000-0000-4000-8000-000000000002', visitor_id => 'fr-own-visitor');
RESET fp_attribution.fraud_self_referral;

-- more than 2 clicks from one IP on one offer in one day
SET fp_attribution.fraud_max_clicks_per_ip = 2;
SELECT count(*) FROM (VALUES
	(attribution.track_click('fr-aff', advertiser_id => 'fr', offer_id => 'fr-now', ip => '198.51.100.1',
		click_id => 'c1000000-0000-4000-8000-000000000011', clicked_at => '2026-01-01 10:00+00')),
	(attribution.track_click('fr-aff', advertiser_id => 'fr', offer_id => 'fr-now', ip => '198.51.100.1',
		click_id => 'c1000000-0000-4000-8000-000000000012', clicked_at => '2026-01-01 11:00+00')),
	-- the day before and another IP do not count
	(attribution.track_click('fr-aff', advertiser_id => 'fr', offer_id => 'fr-now', ip => '198.51.100.1',
		click_id => 'c1000000-0000-4000-8000-000000000013', clicked_at => '2025-12-31 23:59+00')),
	(attribution.track_click('fr-aff', advertiser_id => 'fr', offer_id => 'fr-now', ip => '198.51.100.2',
		click_id => 'c1000000-0000-4000-8000-000000000014', clicked_at => '2026-01-01 12:00+00'))) v(r);
-- 2 clicks that day: within the limit
SELECT count(*) FROM attribution.track_conversion('fr-7', 1000, advertiser_id => 'fr',
	click_id => 'c1000000-0000-4000-8000-000000000012', converted_at => '2026-01-01 12:00+00');
SELECT count(*) FROM attribution.track_click('fr-aff', advertiser_id => 'fr', offer_id => 'fr-now', ip => '198.51.100.1',
	click_id => 'c1000000-0000-4000-8000-000000000015', clicked_at => '2026-01-01 23:00+00');
-- 3: held
SELECT count(*) FROM attribution.track_conversion('fr-8', 1000, advertiser_id => 'fr',
	click_id => 'c1000000-0000-4000-8000-000000000011', converted_at => '2026-01-01 12:00+00');
-- the count is an index range scan, never the whole table
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM (SELECT FROM attribution.clicks c
  WHERE c.advertiser_id = 'fr' AND c.offer_id = 'fr-now' AND c.ip = '198.51.100.1'
	AND c.clicked_at >= '2026-01-01' AND c.clicked_at < '2026-01-02' LIMIT 3) s;
RESET enable_seqscan;
RESET fp_attribution.fraud_max_clicks_per_ip;

-- the rows and their first receipts
SELECT order_id, status, review_reason FROM attribution.conversions
 WHERE advertiser_id = 'fr' ORDER BY order_id;
SELECT aggregate_id, payload->>'status' AS status, payload->'review_reason' AS review_reason
  FROM attribution.receipts WHERE advertiser_id = 'fr' AND aggregate_type = 'conversion'
 ORDER BY aggregate_id;
-- a held conversion is approved by hand, and the chain still folds to the row
SELECT payload->>'status' FROM attribution.approve_conversion('fr-2', 'fr', 'reviewed');
SELECT c.order_id, v.ok, v.receipts_checked, v.failed_check
  FROM attribution.conversions c,
	   attribution.verify_chain('conversion', c.order_id, c.advertiser_id) v
 WHERE c.advertiser_id = 'fr' AND c.order_id IN ('fr-2', 'fr-3') ORDER BY 1;
-- a rolled-back hit is not counted
BEGIN;
SET LOCAL fp_attribution.fraud_min_click_age = '1d';
SELECT count(*) FROM attribution.track_conversion('fr-9', 1000, advertiser_id => 'fr',
	click_id => 'c1000000-0000-4000-8000-000000000002');
ROLLBACK;

-- hits: counted per rule, and logged in the command's trace context
SELECT attributes->>'fp.rule' AS rule, value FROM attribution.metrics
 WHERE name = 'affiliate.fraud_rule.hits' ORDER BY 1;
SELECT l.attributes->>'fp.rule' AS rule, l.attributes->>'fp.order.id' AS order_id,
	   l.severity_text, l.span_id = c.span_id AND l.trace_id = c.trace_id AS command_context
  FROM attribution.logs l
  JOIN attribution.conversions c ON c.advertiser_id = 'fr' AND c.order_id = l.attributes->>'fp.order.id'
 WHERE l.event_name = 'fp.fraud_rule.hit' ORDER BY 2;
SELECT trace_id FROM attribution.logs
 WHERE event_name = 'fp.fraud_rule.hit' AND attributes->>'fp.order.id' = 'fr-2';

-- an unprivileged role cannot turn the rules off
CREATE ROLE regress_fp_attribution_fraud;
SET ROLE regress_fp_attribution_fraud;
SELECT regress_error($$SET fp_attribution.fraud_self_referral = off$$);
RESET ROLE;
DROP ROLE regress_fp_attribution_fraud;
