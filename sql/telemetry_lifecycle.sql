--
-- telemetry_lifecycle: the lifecycle commands are commands of their own
-- kind (span name, logs, commands.*), and their business metrics count
-- committed changes only
--
SELECT attribution.reset_telemetry();
INSERT INTO attribution.offers (advertiser_id, offer_id, payout_type, payout, currency, hold_period)
	VALUES ('tl', 'tl-hold', 'revshare', 1000, 'EUR', '7 days'),
		   ('tl', 'tl-now', 'cpa', 250, 'USD', '0');
SELECT count(*) FROM (VALUES
	(attribution.track_click('tl-aff', advertiser_id => 'tl', offer_id => 'tl-hold',
		click_id => 'e1000000-0000-4000-8000-000000000001')),
	(attribution.track_click('tl-aff', advertiser_id => 'tl', offer_id => 'tl-now',
		click_id => 'e1000000-0000-4000-8000-000000000002'))) v(r);
SELECT count(*) FROM (VALUES
	(attribution.track_conversion('tl-1', 5000, 'EUR', advertiser_id => 'tl',
		click_id => 'e1000000-0000-4000-8000-000000000001')),
	(attribution.track_conversion('tl-2', 3000, 'EUR', advertiser_id => 'tl',
		click_id => 'e1000000-0000-4000-8000-000000000001')),
	(attribution.track_conversion('tl-3', 4000, 'USD', advertiser_id => 'tl',
		click_id => 'e1000000-0000-4000-8000-000000000002'))) v(r);
SELECT order_id, status, commission_cents FROM attribution.conversions
 WHERE advertiser_id = 'tl' ORDER BY 1;

-- one of each, a retry (replayed), a refused one and a rolled-back one
SELECT attribution.reset_telemetry('spans');
SELECT attribution.reset_telemetry('logs');
SELECT payload->>'status' FROM attribution.approve_conversion('tl-1', 'tl',
	command_id => 'f1000000-0000-4000-8000-000000000001',
	traceparent => '00-11111111111111111111111111111111-2222222222222222-01');
SELECT payload->>'status' FROM attribution.approve_conversion('tl-1', 'tl',
	command_id => 'f1000000-0000-4000-8000-000000000001');
SELECT regress_error($$SELECT attribution.approve_conversion('tl-1', 'tl')$$);
SELECT payload->>'status' FROM attribution.reject_conversion('tl-2', 'tl', 'duplicate');
SELECT payload->>'status' FROM attribution.refund_conversion('tl-3', 'tl', 1000);
BEGIN;
SELECT payload->>'status' FROM attribution.refund_conversion('tl-3', 'tl', 500);
ROLLBACK;
SELECT payload->>'status' FROM attribution.refund_conversion('tl-3', 'tl', 3000);
SELECT payload->>'status' FROM attribution.reverse_conversion('tl-1', 'tl');

-- the command spans, in order
SELECT name, status_code, attributes ->> 'fp.command.name' AS command,
	   attributes ->> 'fp.command.outcome' AS outcome,
	   attributes ->> 'fp.order.id' AS order_id,
	   attributes ->> 'fp.aggregate.type' AS aggregate
  FROM attribution.spans WHERE kind = 'server' ORDER BY start_time_unix_nano;
-- the caller's trace context is the span's
SELECT trace_id, parent_span_id FROM attribution.spans
 WHERE name = 'attribution.approve_conversion' ORDER BY start_time_unix_nano LIMIT 1;
-- the receipt's event span is a child of the command's
SELECT count(*) AS receipt_spans FROM attribution.spans s
  JOIN attribution.spans c ON c.span_id = s.parent_span_id AND c.kind = 'server'
 WHERE s.name = 'attribution.receipt_written'
   AND c.name LIKE 'attribution.%_conversion';

-- the command logs name the command
SELECT event_name COLLATE "C", attributes ->> 'fp.command.name' AS command,
	   attributes ->> 'fp.command.outcome' AS outcome, count(*)
  FROM attribution.logs WHERE event_name LIKE 'fp.command.%'
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;

-- commands.*: the replay is a command, the refused and the rolled-back
-- ones are errors
SELECT name, attributes->>'fp.command.name' AS command, value FROM attribution.metrics
 WHERE name IN ('commands.total', 'commands.errors')
   AND attributes->>'fp.command.name' LIKE '%\_conversion'
 ORDER BY name, command;
SELECT attributes->>'fp.command.name' AS command, count FROM attribution.metrics
 WHERE name = 'commands.latency' AND attributes->>'fp.command.name' <> 'track_conversion'
   AND attributes->>'fp.command.name' LIKE '%\_conversion'
 ORDER BY 1;

-- the business metrics: approved 1, rejected 1, reversed 2 (tl-1, and
-- tl-3 fully refunded); refunds 4000 USD (the rolled-back 500 is not);
-- commission of the new conversions: 10 % of 5000 and of 3000 EUR, 250 USD
SELECT name COLLATE "C", attributes::text COLLATE "C" AS attributes, value
  FROM attribution.metrics
 WHERE name IN ('affiliate.conversions.approved', 'affiliate.conversions.rejected',
				'affiliate.conversions.reversed', 'affiliate.refunds.cents',
				'affiliate.commission.cents')
 ORDER BY 1, 2;

-- a late attribution earns its commission then
SELECT attribution.reset_telemetry('metrics');
SELECT aggregate_id FROM attribution.track_conversion('tl-late', 2000, 'EUR', advertiser_id => 'tl',
	click_id => 'e1000000-0000-4000-8000-000000000009');
SELECT value FROM attribution.metrics WHERE name = 'affiliate.commission.cents';
SELECT count(*) FROM attribution.track_click('tl-aff', advertiser_id => 'tl', offer_id => 'tl-hold',
	click_id => 'e1000000-0000-4000-8000-000000000009',
	clicked_at => pg_catalog.now() - interval '1 minute');
SELECT attributes::text, value FROM attribution.metrics WHERE name = 'affiliate.commission.cents';
