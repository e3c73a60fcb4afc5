--
-- postbacks: endpoint templates, redaction, the outbox written with each
-- conversion receipt (tracked, lifecycle events, late attribution; never
-- for a rolled-back command or an unattributed conversion), privileges.
-- The worker connects to another database, so rows here stay pending;
-- delivery is tested against real receivers by test/t/020_postbacks.pl.
--

-- templates: http(s) only, no blank, macros known and never in the host
SELECT attribution.postback_template_check('https://a.example/p?c={click_id}&o={order_id}#{event}');
SELECT regress_error($$SELECT attribution.postback_template_check('ftp://a.example/')$$);
SELECT regress_error($$SELECT attribution.postback_template_check('javascript:alert(1)')$$);
SELECT regress_error($$SELECT attribution.postback_template_check('https://u:secret@{affiliate_id}.example/?token=t')$$);
SELECT regress_error($$SELECT attribution.postback_template_check('https://a.example/?x={nope}&token=t')$$);
SELECT regress_error($$SELECT attribution.postback_template_check('https://a.example/{order_id')$$);
SELECT regress_error($$SELECT attribution.postback_template_check('https://a.example/a b')$$);
SELECT regress_error($$SELECT attribution.postback_template_check('https://a.example/}')$$);
SELECT regress_error($$SELECT attribution.postback_template_check('http:///path')$$);
SELECT regress_error($$INSERT INTO attribution.postback_endpoints (affiliate_id, url_template, method)
	VALUES ('aff-pb', 'https://a.example/', 'PUT')$$);
SELECT regress_error($$INSERT INTO attribution.postback_endpoints (affiliate_id, url_template, events)
	VALUES ('aff-pb', 'https://a.example/', '{clicked}')$$);
SELECT regress_error($$INSERT INTO attribution.postback_secrets (endpoint_id, secret)
	VALUES (424242, 'short')$$);

SELECT attribution.redact_url('failed: http://user:pw@h.example:8080/p?k=v#f: refused, https://h2/x');

-- endpoints: aff-pb hears every event, aff-pb2 approvals only (POST),
-- aff-off is inactive
INSERT INTO attribution.postback_endpoints (affiliate_id, url_template) VALUES
	('aff-pb', 'https://user:pw@pb.example/t?o={order_id}&s={status}&token=abc');
INSERT INTO attribution.postback_endpoints (affiliate_id, url_template, method, events) VALUES
	('aff-pb2', 'https://pb2.example/hook', 'POST', '{approved}');
INSERT INTO attribution.postback_endpoints (affiliate_id, url_template, active) VALUES
	('aff-off', 'https://off.example/', false);
INSERT INTO attribution.postback_secrets (endpoint_id, secret)
	SELECT endpoint_id, 'sixteen-byte-secret!' FROM attribution.postback_endpoints
	 WHERE affiliate_id = 'aff-pb2';

SELECT count(*) FROM (VALUES
	(attribution.track_click('aff-pb', click_id => 'f7a00000-0000-4000-8000-000000000001')),
	(attribution.track_click('aff-pb2', click_id => 'f7a00000-0000-4000-8000-000000000002')),
	(attribution.track_click('aff-off', click_id => 'f7a00000-0000-4000-8000-000000000003'))) AS v(r);
SELECT count(*) FROM (VALUES
	(attribution.track_conversion('pb-1', 1000, click_id => 'f7a00000-0000-4000-8000-000000000001')),
	(attribution.track_conversion('pb-2', 2000, click_id => 'f7a00000-0000-4000-8000-000000000002')),
	(attribution.track_conversion('pb-3', 3000, click_id => 'f7a00000-0000-4000-8000-000000000003')),
	(attribution.track_conversion('pb-4', 4000))) AS v(r);

-- a rolled-back command enqueues nothing
BEGIN;
SELECT count(*) FROM attribution.approve_conversion('pb-1');
ROLLBACK;

SELECT count(*) FROM attribution.approve_conversion('pb-1');
SELECT count(*) FROM attribution.refund_conversion('pb-1', 'default', 100);
SELECT count(*) FROM attribution.approve_conversion('pb-2');
SELECT count(*) FROM attribution.reject_conversion('pb-3');

-- a conversion recorded before its click is tracked when the click arrives
SELECT count(*) FROM attribution.track_conversion('pb-late', 500,
	click_id => 'f7a00000-0000-4000-8000-000000000009');
SELECT count(*) FROM attribution.track_click('aff-pb', click_id => 'f7a00000-0000-4000-8000-000000000009',
	clicked_at => now() - interval '1 minute');

-- one row per (receipt, endpoint), a snapshot of the conversion, in the
-- receipt's trace
SELECT o.order_id, o.affiliate_id, o.event, o.status, o.revenue_cents, o.refunded_cents,
	   o.currency, o.state, o.attempts, o.click_id, o.offer_id, o.commission_cents, o.sampled,
	   o.next_attempt_at = o.created_at AS due_at_once,
	   num_nulls(o.last_attempt_at, o.last_http_status, o.last_error, o.done_at) AS unset,
	   o.receipt_id = r.receipt_id AS is_receipt, o.trace_id = r.trace_id AS in_trace,
	   o.span_id = r.span_id AS under_span
  FROM attribution.postback_outbox o
  JOIN attribution.receipts r ON r.receipt_id = o.receipt_id
 ORDER BY o.order_id, r.sequence;
SELECT order_id, event, method, url, state, next_attempt_at IS NOT NULL AS has_next, endpoint_enabled
  FROM attribution.postback_deliveries ORDER BY order_id, created_at;

-- re-enabling: true for an endpoint, false for none
UPDATE attribution.postback_endpoints SET consecutive_failures = 10, disabled_at = now(),
	disabled_reason = 'test' WHERE affiliate_id = 'aff-pb';
SELECT count(*) FILTER (WHERE endpoint_enabled) FROM attribution.postback_deliveries;
SELECT attribution.enable_postback_endpoint(endpoint_id) FROM attribution.postback_endpoints
 WHERE affiliate_id = 'aff-pb';
SELECT consecutive_failures, disabled_at, disabled_reason FROM attribution.postback_endpoints
 WHERE affiliate_id = 'aff-pb';
SELECT attribution.enable_postback_endpoint(424242);

-- an application role reads none of it, secrets least of all
CREATE ROLE regress_fp_attribution_pb;
GRANT USAGE ON SCHEMA attribution TO regress_fp_attribution_pb;
SET ROLE regress_fp_attribution_pb;
SELECT regress_error('SELECT * FROM attribution.postback_secrets');
SELECT regress_error('SELECT * FROM attribution.postback_endpoints');
SELECT regress_error('SELECT * FROM attribution.postback_outbox');
SELECT regress_error('SELECT * FROM attribution.postback_deliveries');
SELECT regress_error('SELECT attribution.enable_postback_endpoint(1)');
RESET ROLE;
REVOKE USAGE ON SCHEMA attribution FROM regress_fp_attribution_pb;
DROP ROLE regress_fp_attribution_pb;

-- a CHECK constraint of the user's own holds for the rows the enqueue
-- writes in place, from the first write after it is added (the prepared
-- checks are kept until the table changes), and no longer once dropped
ALTER TABLE attribution.postback_outbox ADD CONSTRAINT small_orders CHECK (revenue_cents < 10000);
INSERT INTO attribution.offers (offer_id, payout_type, payout) VALUES ('pb-offer', 'cpa', 250);
SELECT count(*) FROM attribution.track_click('aff-pb', click_id => 'f7a00000-0000-4000-8000-00000000000a',
	offer_id => 'pb-offer');
SELECT regress_error($$SELECT attribution.track_conversion('pb-big', 20000,
	click_id => 'f7a00000-0000-4000-8000-00000000000a')$$);
ALTER TABLE attribution.postback_outbox DROP CONSTRAINT small_orders;
SELECT count(*) FROM attribution.track_conversion('pb-big', 20000,
	click_id => 'f7a00000-0000-4000-8000-00000000000a');
-- its tracked row (written in place) and approved row (by the statement)
-- carry the same conversion, commission included
SELECT count(*) FROM attribution.approve_conversion('pb-big');
SELECT order_id, event, status, click_id, offer_id, revenue_cents, commission_cents, state
  FROM attribution.postback_outbox WHERE order_id = 'pb-big' ORDER BY created_at, event;

-- the settings
SELECT name, setting, unit, context FROM pg_settings
 WHERE name LIKE 'fp_attribution.postback%' ORDER BY name;

-- an endpoint with deliveries is kept (deactivate it instead); deleted
-- once its deliveries are, an endpoint without any at once
SELECT regress_error($$DELETE FROM attribution.postback_endpoints WHERE affiliate_id = 'aff-pb'$$);
-- ... nor moved to another advertiser, nor truncated (no foreign key: the
-- trigger postback_endpoint_in_use)
SELECT regress_error($$UPDATE attribution.postback_endpoints SET advertiser_id = 'adv-moved' WHERE affiliate_id = 'aff-pb'$$);
SELECT regress_error($$TRUNCATE attribution.postback_endpoints CASCADE$$);
-- ... but truncated with the outbox in one statement
BEGIN;
TRUNCATE attribution.postback_outbox, attribution.postback_endpoints CASCADE;
SELECT (SELECT count(*) FROM attribution.postback_endpoints) AS endpoints,
	   (SELECT count(*) FROM attribution.postback_outbox) AS postbacks;
ROLLBACK;
SELECT count(*) FROM attribution.postback_endpoints;
DELETE FROM attribution.postback_endpoints WHERE affiliate_id = 'aff-off';
DELETE FROM attribution.postback_outbox;
-- an endpoint given a new id (without postbacks, it may be): the next
-- conversion enqueues for the new id, not the one this backend had cached
SELECT count(*) FROM attribution.track_conversion('pb-rekey-1', 100,
	click_id => 'f7a00000-0000-4000-8000-000000000001');
DELETE FROM attribution.postback_outbox;
UPDATE attribution.postback_endpoints SET endpoint_id = DEFAULT WHERE affiliate_id = 'aff-pb';
SELECT count(*) FROM attribution.track_conversion('pb-rekey-2', 100,
	click_id => 'f7a00000-0000-4000-8000-000000000001');
SELECT o.order_id, o.endpoint_id = e.endpoint_id AS endpoint_is_current
  FROM attribution.postback_outbox o
  LEFT JOIN attribution.postback_endpoints e USING (advertiser_id, endpoint_id);
DELETE FROM attribution.postback_outbox;
DELETE FROM attribution.postback_endpoints;
