-- Sample traffic for test/demo.sh: two affiliates, a visitor who clicks
-- twice and buys, a retried order, an order with no click.
\pset footer off
CREATE EXTENSION fp_attribution;

\echo '== clicks (the first continues a trace from the web tier)'
SELECT aggregate_id AS click_id, payload->>'affiliate_id' AS affiliate_id, trace_id, span_id,
	   left(encode(receipt_hash, 'hex'), 16) AS receipt_hash
  FROM attribution.track_click('blog-42', visitor_id => 'visitor-7', ip => '198.51.100.23',
		landing_url => 'https://shop.example/shoes',
		traceparent => '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
SELECT aggregate_id AS click_id, payload->>'affiliate_id' AS affiliate_id, trace_id, span_id,
	   left(encode(receipt_hash, 'hex'), 16) AS receipt_hash
  FROM attribution.track_click('coupons-9', visitor_id => 'visitor-7')
/*traceparent='00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'*/;

\echo '== conversions: last click wins; a retried order is the same conversion'
SELECT aggregate_id AS order_id, payload->>'affiliate_id' AS affiliate_id,
	   payload->>'unattributed_reason' AS unattributed_reason, causation_id, receipt_id
  FROM attribution.track_conversion('order-1001', 12999, 'EUR', visitor_id => 'visitor-7');
SELECT aggregate_id AS order_id, payload->>'affiliate_id' AS affiliate_id,
	   payload->>'unattributed_reason' AS unattributed_reason, causation_id, receipt_id
  FROM attribution.track_conversion('order-1001', 12999, 'EUR', visitor_id => 'visitor-7');
SELECT aggregate_id AS order_id, payload->>'affiliate_id' AS affiliate_id,
	   payload->>'unattributed_reason' AS unattributed_reason, causation_id, receipt_id
  FROM attribution.track_conversion('order-1002', 500, visitor_id => 'visitor-unknown');

\echo '== a bad command is refused with a clear error and writes nothing'
\set ON_ERROR_STOP 0
\set SHOW_CONTEXT never
SELECT * FROM attribution.track_conversion('order-1003', -5);
\set ON_ERROR_STOP 1

\echo '== what is stored'
SELECT affiliate_id, count(*) AS clicks FROM attribution.clicks GROUP BY 1 ORDER BY 1;
SELECT order_id, affiliate_id, revenue_cents, currency, latency IS NOT NULL AS has_latency
  FROM attribution.conversions ORDER BY 1;
\echo '== every receipt verifies'
SELECT ok, chains_checked, receipts_checked FROM attribution.verify_all();
\echo '== telemetry counters'
SELECT * FROM attribution.telemetry_status;
