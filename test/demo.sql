-- Sample traffic for test/demo.sh: two affiliates, a visitor who clicks
-- twice and buys, a retried order, an order with no click, and a second
-- advertiser whose visitor and order ids are the same; then what they
-- produced: rows, receipt chains, spans, metrics, log records, and the
-- exporter's account of sending them to the collector.
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

\echo '== another advertiser: the same visitor and order id are its own, attributed to its own click'
SELECT advertiser_id, aggregate_id AS click_id, payload->>'affiliate_id' AS affiliate_id
  FROM attribution.track_click('deals-3', visitor_id => 'visitor-7', advertiser_id => 'outdoor-store');
SELECT advertiser_id, aggregate_id AS order_id, payload->>'affiliate_id' AS affiliate_id,
	   payload->>'unattributed_reason' AS unattributed_reason
  FROM attribution.track_conversion('order-1001', 4500, 'EUR', visitor_id => 'visitor-7',
		advertiser_id => 'outdoor-store');

\echo '== a bad command is refused with a clear error and writes nothing'
\set ON_ERROR_STOP 0
\set SHOW_CONTEXT never
SELECT * FROM attribution.track_conversion('order-1003', -5);
\set ON_ERROR_STOP 1

\echo '== conversion lifecycle: a 10 % revshare offer with a hold period; pending, approved, partly refunded'
INSERT INTO attribution.offers (offer_id, payout_type, payout, currency, hold_period)
	VALUES ('shoes-10pct', 'revshare', 1000, 'EUR', '14 days');
SELECT aggregate_id AS click_id, payload->>'offer_id' AS offer_id
  FROM attribution.track_click('blog-42', visitor_id => 'visitor-8', offer_id => 'shoes-10pct');
SELECT aggregate_id AS order_id, payload->>'status' AS status, payload->'commission_cents' AS commission_cents
  FROM attribution.track_conversion('order-1004', 8999, 'EUR', visitor_id => 'visitor-8');
SELECT sequence, payload->>'status' AS status
  FROM attribution.approve_conversion('order-1004', reason => 'hold period passed');
SELECT sequence, payload->>'status' AS status, payload->'refunded_cents' AS refunded_cents,
	   payload->'commission_reversed_cents' AS commission_reversed_cents
  FROM attribution.refund_conversion('order-1004', 'default', 2999, 'one pair returned');
\echo '== its chain of receipts is its history; the row is the fold of the chain'
SELECT sequence, payload->>'event' AS event, payload->>'status' AS status, payload->>'reason' AS reason,
	   left(encode(prev_hash, 'hex'), 12) AS prev_hash, left(encode(receipt_hash, 'hex'), 12) AS receipt_hash
  FROM attribution.receipts WHERE aggregate_type = 'conversion' AND aggregate_id = 'order-1004'
 ORDER BY sequence;
SELECT status, revenue_cents, refunded_cents, commission_cents, commission_reversed_cents,
	   commission_cents - commission_reversed_cents AS commission_due
  FROM attribution.conversions WHERE order_id = 'order-1004';

\echo '== what is stored'
SELECT advertiser_id, affiliate_id, count(*) AS clicks FROM attribution.clicks GROUP BY 1, 2 ORDER BY 1, 2;
SELECT advertiser_id, order_id, affiliate_id, revenue_cents, currency, latency IS NOT NULL AS has_latency
  FROM attribution.conversions ORDER BY 1, 2;
\echo '== every receipt verifies'
SELECT ok, chains_checked, receipts_checked FROM attribution.verify_all();
\echo '== the receipts: one hash chain per advertiser and aggregate, each receipt hashing its predecessor'
SELECT advertiser_id, aggregate_type, aggregate_id, sequence,
	   left(encode(payload_hash, 'hex'), 12) AS payload_hash,
	   left(encode(prev_hash, 'hex'), 12) AS prev_hash,
	   left(encode(receipt_hash, 'hex'), 12) AS receipt_hash
  FROM attribution.receipts ORDER BY "timestamp", advertiser_id, aggregate_type, aggregate_id, sequence;

\echo '== spans: one per command, one per row write, under the caller''s trace when it sent one'
SELECT name, trace_id, span_id, parent_span_id, status_code AS status FROM attribution.spans;

\echo '== metrics'
SELECT name, kind, unit, attributes, coalesce(value::text, count || ' / ' || round(sum::numeric, 3)) AS "value or count / sum"
  FROM attribution.metrics ORDER BY name, attributes::text;

\echo '== log records'
SELECT severity_text AS severity, body, trace_id FROM attribution.logs;

\echo '== telemetry counters'
SELECT spans_written, spans_dropped, logs_written, logs_dropped, verifications_success,
	   invalid_traceparents FROM attribution.telemetry_status;

-- The exporter sends in the background: wait (at most 10 s) until every
-- span and log record is acknowledged and metrics were sent after the
-- traffic, so the collector's view below is complete.
DO $$
DECLARE
	since timestamptz := clock_timestamp();
BEGIN
	FOR i IN 1..100 LOOP
		EXIT WHEN (SELECT bool_and(coalesce(CASE signal
				WHEN 'traces' THEN sent >= (SELECT spans_written FROM attribution.telemetry_status)
				WHEN 'logs' THEN sent >= (SELECT logs_written FROM attribution.telemetry_status)
				ELSE last_success_time > since END, false))
			FROM attribution.exporter_status);
		PERFORM pg_sleep(0.1);
	END LOOP;
END $$;

\echo '== OTLP export to the collector'
SELECT signal, sent, failed, dropped, rejected, last_error FROM attribution.exporter_status;
