--
-- Every command and its idempotent retry on the cluster, attribution by
-- click and by visitor, and two advertisers side by side: the same click
-- id, order id and visitor in adv-a and adv-b stay apart.  Each call here
-- is autocommit, so Citus sends it whole to the advertiser's worker.
--
\set click_a '''11111111-1111-4111-8111-111111111111'''
\set click_b '''22222222-2222-4222-8222-222222222222'''

-- clicks: one per advertiser with the same visitor, and one with the
-- same click id in both advertisers
SELECT aggregate_type, aggregate_id, sequence, advertiser_id
  FROM attribution.track_click('aff-1', click_id => :click_a, visitor_id => 'visitor-1',
							   advertiser_id => 'adv-a');
SELECT receipt_id AS click_a_receipt FROM attribution.receipts
 WHERE advertiser_id = 'adv-a' AND aggregate_id = :click_a \gset
SELECT aggregate_type, aggregate_id, sequence, advertiser_id
  FROM attribution.track_click('aff-2', click_id => :click_b, visitor_id => 'visitor-1',
							   advertiser_id => 'adv-b');
SELECT aggregate_type, aggregate_id, sequence, advertiser_id
  FROM attribution.track_click('aff-2', click_id => :click_a, advertiser_id => 'adv-b');

-- a retry returns the original receipt and writes nothing
SELECT receipt_id = :'click_a_receipt' AS same_receipt
  FROM attribution.track_click('aff-1', click_id => :click_a, visitor_id => 'visitor-1',
							   advertiser_id => 'adv-a');

-- a conversion naming its click, and one found by visitor, with the same
-- order id in both advertisers
SELECT aggregate_type, aggregate_id, sequence, advertiser_id, causation_id IS NOT NULL AS caused
  FROM attribution.track_conversion('order-1', 1500, click_id => :click_a,
									advertiser_id => 'adv-a');
SELECT receipt_id AS order_a_receipt FROM attribution.receipts
 WHERE advertiser_id = 'adv-a' AND aggregate_type = 'conversion' AND aggregate_id = 'order-1' \gset
SELECT aggregate_type, aggregate_id, sequence, advertiser_id, causation_id IS NOT NULL AS caused
  FROM attribution.track_conversion('order-1', 900, visitor_id => 'visitor-1',
									advertiser_id => 'adv-b');
-- the retry (even with another amount) is the original conversion
SELECT receipt_id = :'order_a_receipt' AS same_receipt
  FROM attribution.track_conversion('order-1', 1, click_id => :click_a,
									advertiser_id => 'adv-a');
-- a visitor with a click only in adv-a is unknown to adv-c
SELECT aggregate_id, advertiser_id
  FROM attribution.track_conversion('order-2', 100, visitor_id => 'visitor-1',
									advertiser_id => 'adv-c');
-- adv-b's click id in adv-a does not exist there
SELECT aggregate_id, advertiser_id
  FROM attribution.track_conversion('order-3', 100, click_id => :click_b,
									advertiser_id => 'adv-a');

SELECT advertiser_id, order_id, revenue_cents, click_id = :click_a AS click_a,
	   click_id = :click_b AS click_b, affiliate_id, attributed, unattributed_reason
  FROM attribution.conversions ORDER BY advertiser_id COLLATE "C", order_id COLLATE "C";

-- a direct INSERT takes the same path on the shard
INSERT INTO attribution.clicks (advertiser_id, click_id, affiliate_id, visitor_id)
VALUES ('adv-c', :click_b, 'aff-3', 'visitor-3');
SELECT attributed, affiliate_id FROM attribution.track_conversion('order-4', 100,
	visitor_id => 'visitor-3', advertiser_id => 'adv-c') r
  JOIN attribution.conversions c USING (advertiser_id)
 WHERE c.order_id = 'order-4';

-- a per-advertiser window and a custom receipt chain
INSERT INTO attribution.windows (advertiser_id, affiliate_id, attribution_window)
VALUES ('adv-a', 'aff-9', interval '1 hour');
SELECT window_ends_at - clicked_at AS window
  FROM attribution.track_click('aff-9', click_id => :click_b, advertiser_id => 'adv-a') r
  JOIN attribution.clicks c ON c.advertiser_id = r.advertiser_id AND c.click_id::text = r.aggregate_id;
SELECT aggregate_type, aggregate_id, sequence, advertiser_id
  FROM attribution.append_receipt('refund', 'order-1', '{"amount": 500}', advertiser_id => 'adv-a');
SELECT aggregate_type, aggregate_id, sequence, advertiser_id
  FROM attribution.append_receipt('refund', 'order-1', '{"amount": 200}', advertiser_id => 'adv-a');

-- every row and receipt of an advertiser is stored on one node: what the
-- shards hold, read on each placement
SELECT advertiser_id, count(DISTINCT p.nodeport) AS nodes, count(DISTINCT t.rel) AS tables
  FROM (VALUES ('attribution.clicks'::regclass), ('attribution.conversions'),
			   ('attribution.receipts'), ('attribution.receipt_streams')) t(rel),
	   LATERAL run_command_on_placements(t.rel,
			$$SELECT coalesce(string_agg(DISTINCT advertiser_id, ','), '') FROM %s$$) p,
	   LATERAL unnest(string_to_array(nullif(p.result, ''), ',')) advertiser_id
 GROUP BY 1 ORDER BY 1;

SELECT advertiser_id, aggregate_type, aggregate_id, sequence
  FROM attribution.receipts
 ORDER BY advertiser_id COLLATE "C", aggregate_type COLLATE "C", aggregate_id COLLATE "C", sequence;

SELECT ok, receipts_checked, failed_check
  FROM attribution.verify_chain('refund', 'order-1', advertiser_id => 'adv-a');
SELECT ok, chains_checked, receipts_checked, chains_failed, receipts_failed
  FROM attribution.verify_all();

-- the metrics view works on the coordinator; the gauge counts the open,
-- unconverted windows of every shard (adv-b's click_a, adv-a's click_b)
SELECT value FROM attribution.metrics WHERE name = 'affiliate.windows.active';

-- bad input is refused on the worker with the same SQLSTATE
\set VERBOSITY sqlstate
SELECT attribution.track_conversion('order-5', -1, advertiser_id => 'adv-a');
SELECT attribution.track_click('aff-1', advertiser_id => repeat('x', 129));
\set VERBOSITY terse
