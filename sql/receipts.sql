--
-- receipts: one receipt per command in the same transaction, chains,
-- causation and correlation, canonical JSON, append-only, verification
--
CREATE TABLE regress_receipt_ids (name text PRIMARY KEY, receipt_id uuid);

-- a click returns its receipt: sequence 1 of the click's chain
INSERT INTO regress_receipt_ids
SELECT 'click1', receipt_id FROM attribution.track_click('aff-r',
	click_id => 'e0000000-0000-4000-8000-000000000001', visitor_id => 'vis-r',
	ip => '203.0.113.7', clicked_at => '2026-03-01 10:00:00+00',
	traceparent => '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
SELECT aggregate_type, aggregate_id, sequence, correlation_id, causation_id,
	   r.trace_id, r.span_id = c.span_id AS command_span,
	   prev_hash = '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea AS first_link,
	   signature, key_id, octet_length(receipt_hash) AS hash_len
  FROM attribution.receipts r JOIN attribution.clicks c ON c.click_id::text = r.aggregate_id
 WHERE r.aggregate_id = 'e0000000-0000-4000-8000-000000000001';

-- the payload is the event built from the row; payload_hash covers its
-- canonical form, receipt_hash the canonical envelope
SELECT attribution.canonical_json(payload) FROM attribution.receipts
 WHERE aggregate_id = 'e0000000-0000-4000-8000-000000000001';
SELECT sha256(convert_to(attribution.canonical_json(payload), 'UTF8')) = payload_hash AS payload_hash_ok,
	   sha256(convert_to(attribution.receipt_envelope(r), 'UTF8')) = receipt_hash AS receipt_hash_ok,
	   regexp_replace(attribution.receipt_envelope(r),
					  '"(payload_hash|receipt_id|span_id|timestamp)":"[^"]*"', '"\1":"…"', 'g') AS envelope
  FROM attribution.receipts r WHERE aggregate_id = 'e0000000-0000-4000-8000-000000000001';

-- a retry returns the original receipt and writes nothing
SELECT r.receipt_id = i.receipt_id AS same_receipt
  FROM attribution.track_click('aff-other', click_id => 'e0000000-0000-4000-8000-000000000001') r,
	   regress_receipt_ids i WHERE i.name = 'click1';
SELECT count(*) FROM attribution.receipts WHERE aggregate_id = 'e0000000-0000-4000-8000-000000000001';

-- a conversion's receipt names the click's receipt as its cause;
-- correlation follows a caller-supplied id when set
BEGIN;
SET LOCAL fp_attribution.correlation_id = 'checkout-42';
SELECT r.aggregate_type, r.aggregate_id, r.sequence, r.correlation_id,
	   r.causation_id = i.receipt_id AS caused_by_click
  FROM attribution.track_conversion('order-r1', 2599, 'EUR', visitor_id => 'vis-r',
	converted_at => '2026-03-02 10:00:00+00') r, regress_receipt_ids i
 WHERE i.name = 'click1';
COMMIT;
SELECT attribution.canonical_json(payload - 'conversion_id') FROM attribution.receipts WHERE aggregate_id = 'order-r1';
-- the same order again: the original receipt
SELECT sequence, correlation_id FROM attribution.track_conversion('order-r1', 1, 'USD');
-- an unattributed conversion has no cause
SELECT causation_id IS NULL AS no_cause FROM attribution.track_conversion('order-r2', 100);

-- a direct INSERT gets its receipt from the same trigger
INSERT INTO attribution.clicks (click_id, affiliate_id)
VALUES ('e0000000-0000-4000-8000-000000000002', 'aff-direct');
SELECT aggregate_type, sequence FROM attribution.receipts
 WHERE aggregate_id = 'e0000000-0000-4000-8000-000000000002';

-- a rolled-back command leaves no receipt and no chain head
BEGIN;
SELECT sequence FROM attribution.track_click('aff-rb', click_id => 'e0000000-0000-4000-8000-000000000003');
ROLLBACK;
SELECT count(*) AS receipts, (SELECT count(*) FROM attribution.receipt_streams
	WHERE aggregate_id = 'e0000000-0000-4000-8000-000000000003') AS heads
  FROM attribution.receipts WHERE aggregate_id = 'e0000000-0000-4000-8000-000000000003';

-- a row's first receipt starts its chain without a head; the first append
-- (a lifecycle command) continues after it, linked, and creates the head
SELECT sequence FROM attribution.track_conversion('order-r3', 700);
SELECT count(*) AS heads FROM attribution.receipt_streams WHERE aggregate_id = 'order-r3';
SELECT ok, receipts_checked FROM attribution.verify_chain('conversion', 'order-r3');
SELECT sequence FROM attribution.reject_conversion('order-r3', reason => 'test');
SELECT s.last_sequence, s.last_hash = r.receipt_hash AS head_is_last,
	   r.prev_hash = (SELECT receipt_hash FROM attribution.receipts
					  WHERE aggregate_id = 'order-r3' AND sequence = 1) AS linked
  FROM attribution.receipt_streams s
  JOIN attribution.receipts r USING (advertiser_id, aggregate_type, aggregate_id)
 WHERE s.aggregate_id = 'order-r3' AND r.sequence = 2;
SELECT ok, receipts_checked FROM attribution.verify_chain('conversion', 'order-r3');
-- a head is still required once the chain has grown
SET session_replication_role = replica;
CREATE TEMP TABLE regress_saved_head AS
	SELECT * FROM attribution.receipt_streams WHERE aggregate_id = 'order-r3';
DELETE FROM attribution.receipt_streams WHERE aggregate_id = 'order-r3';
RESET session_replication_role;
SELECT ok, failed_check FROM attribution.verify_chain('conversion', 'order-r3');
SET session_replication_role = replica;
INSERT INTO attribution.receipt_streams SELECT * FROM regress_saved_head;
RESET session_replication_role;
SELECT ok FROM attribution.verify_chain('conversion', 'order-r3');

-- commands beyond the built-in ones append to their own aggregate's
-- chain: contiguous sequence, each prev_hash the previous receipt_hash
SELECT sequence, causation_id IS NOT NULL AS has_cause
  FROM attribution.append_receipt('refund', 'order-r1', '{"event": "refund_requested", "cents": 500}',
	(SELECT receipt_id FROM regress_receipt_ids WHERE name = 'click1'));
BEGIN;
SELECT sequence FROM attribution.append_receipt('refund', 'order-r1', '{"event": "rolled_back"}');
ROLLBACK;
SELECT sequence FROM attribution.append_receipt('refund', 'order-r1', '{"event": "refunded", "cents": 500}');
SELECT sequence FROM attribution.append_receipt('refund', 'order-r1', '{"event": "settled"}');
SELECT r.sequence, r.prev_hash = p.receipt_hash AS linked
  FROM attribution.receipts r
  JOIN attribution.receipts p ON p.aggregate_type = r.aggregate_type
   AND p.aggregate_id = r.aggregate_id AND p.sequence = r.sequence - 1
 WHERE r.aggregate_type = 'refund' AND r.aggregate_id = 'order-r1' ORDER BY r.sequence;
SELECT last_sequence, last_hash = (SELECT receipt_hash FROM attribution.receipts
	WHERE aggregate_type = 'refund' AND aggregate_id = 'order-r1' AND sequence = 3) AS head_is_last
  FROM attribution.receipt_streams WHERE aggregate_type = 'refund' AND aggregate_id = 'order-r1';

-- many appends to one chain in one transaction continue from the head the
-- transaction wrote last; a rolled-back savepoint gives its sequences back
BEGIN;
SELECT count(attribution.append_receipt('batch', 'b-1', jsonb_build_object('n', i)))
  FROM generate_series(1, 50) AS i;
SAVEPOINT s;
SELECT sequence FROM attribution.append_receipt('batch', 'b-1', '{"n": "undone"}');
ROLLBACK TO SAVEPOINT s;
SELECT sequence FROM attribution.append_receipt('batch', 'b-1', '{"n": "after savepoint"}');
SAVEPOINT t;
SELECT sequence FROM attribution.append_receipt('batch', 'b-1', '{"n": "kept"}');
RELEASE SAVEPOINT t;
SELECT sequence FROM attribution.append_receipt('batch', 'b-1', '{"n": "last"}');
COMMIT;
SELECT sequence FROM attribution.append_receipt('batch', 'b-1', '{"n": "next transaction"}');
SELECT ok, receipts_checked, failed_check FROM attribution.verify_chain('batch', 'b-1');

-- the built-in aggregate types are reserved to the extension's own
-- triggers, for every role: a receipt pre-seeded for a future order (or
-- click) would otherwise be sequence 1 of its chain
SELECT regress_error($$SELECT attribution.append_receipt('conversion', 'order-future', '{"event": "conversion_tracked", "revenue_cents": 1}')$$);
SELECT regress_error($$SELECT attribution.append_receipt('click', 'e0000000-0000-4000-8000-0000000000f0', '{}')$$);
SELECT count(*) FROM attribution.receipts WHERE aggregate_id IN ('order-future', 'e0000000-0000-4000-8000-0000000000f0');
-- so the order's command writes sequence 1 and returns the receipt of the
-- row it wrote: its span, its payload
CREATE TEMP TABLE regress_future AS SELECT * FROM attribution.track_conversion('order-future', 4200);
SELECT r.sequence, r.span_id = c.span_id AND r.trace_id = c.trace_id AS rows_span,
	   r.payload ->> 'order_id' AS order_id, r.payload -> 'revenue_cents' AS revenue_cents,
	   r.receipt_id = (SELECT receipt_id FROM attribution.receipts
					   WHERE aggregate_type = 'conversion' AND aggregate_id = 'order-future') AS only_receipt
  FROM regress_future r, attribution.conversions c
 WHERE c.order_id = 'order-future';

-- canonical JSON (RFC 8785): key order by UTF-16 code units, ECMAScript
-- numbers, minimal escapes
SELECT attribution.canonical_json('{"b": 1, "a": {"z": [], "y": {}}, "€": 2, "😀": 3, "דּ": 4, "": 0}');
SELECT attribution.canonical_json('[1.0, 1e21, 1e20, 1e-7, 0.000001, -0, 0.1, 123.456e2, -5e-324, 1.7976931348623157e308]');
SELECT attribution.canonical_json(E'["\\u0001\\u001f\\b\\f\\n\\r\\t\\"\\\\/\u007f\u2028é"]');
SELECT attribution.canonical_json('"top-level string"'), attribution.canonical_json('null'),
	   attribution.canonical_json('true'), attribution.canonical_json('9007199254740992');
-- a number is the double nearest to it, written as ECMAScript does: the
-- shortest digits that read back, a bound of the interval included
-- (40407023462466896 is 40407023462466900)
SELECT attribution.canonical_json('[9007199254740993, 0.10000000000000000001, 1e-400, -1e-400, 40407023462466896, 40407023462466900, 295147905179352825856, 1.0E+21, 1e-6, 1e-7, -0.0]');
-- only a number beyond the double range has no form
SELECT regress_error($$SELECT attribution.canonical_json('1e400')$$);
-- a receipt payload holds numbers as canonical JSON writes them, so its
-- hash pins the stored value: RFC 8785 text is accepted, other digits are
-- refused, with nothing written
SELECT encode(payload_hash, 'hex') = encode(sha256('{"n":[40407023462466900,1e+21,5e-324]}'), 'hex') AS hashed_as_written
  FROM attribution.append_receipt('custom', 'numbers', '{"n": [40407023462466900, 1e+21, 5e-324]}');
SELECT regress_error($$SELECT attribution.append_receipt('custom', 'numbers', '{"n": 40407023462466896}')$$);
SELECT regress_error($$SELECT attribution.append_receipt('custom', 'numbers', '{"n": 0.10000000000000000001}')$$);
SELECT count(*) FROM attribution.receipts WHERE aggregate_id = 'numbers';
-- so is revenue beyond 2^53 cents
SELECT regress_error($$SELECT attribution.track_conversion('order-huge', 9007199254740993)$$);
SELECT count(*) FROM attribution.conversions WHERE order_id = 'order-huge';

-- receipts are append-only, for everyone
SELECT regress_error($$UPDATE attribution.receipts SET correlation_id = 'x'$$);
SELECT regress_error($$DELETE FROM attribution.receipts$$);
SELECT regress_error($$TRUNCATE attribution.receipts$$);
SELECT regress_error($$DELETE FROM attribution.signing_keys$$);
SELECT grantee, privilege_type FROM information_schema.role_table_grants
 WHERE table_schema = 'attribution' AND grantee = 'PUBLIC' ORDER BY 1, 2;

-- a role allowed to track clicks gets receipts without any privilege on them
CREATE ROLE regress_fp_attribution_app;
GRANT USAGE ON SCHEMA attribution TO regress_fp_attribution_app;
GRANT INSERT ON attribution.clicks TO regress_fp_attribution_app;
GRANT SELECT ON attribution.windows TO regress_fp_attribution_app;
SET ROLE regress_fp_attribution_app;
INSERT INTO attribution.clicks (click_id, affiliate_id)
VALUES ('e0000000-0000-4000-8000-000000000004', 'aff-app');
SELECT regress_error($$SELECT * FROM attribution.receipts$$);
SELECT regress_error($$UPDATE attribution.receipts SET key_id = NULL$$);
SELECT regress_error($$SELECT attribution.append_receipt('click', 'x', '{}')$$);
-- nor to insert a conversion whose click has a receipt: the cause is
-- looked up as the table owner too (attribution reads clicks)
RESET ROLE;
GRANT INSERT ON attribution.conversions TO regress_fp_attribution_app;
GRANT SELECT ON attribution.clicks TO regress_fp_attribution_app;
SET ROLE regress_fp_attribution_app;
INSERT INTO attribution.conversions (order_id, revenue_cents, click_id)
VALUES ('order-app', 100, 'e0000000-0000-4000-8000-000000000004');
RESET ROLE;
SELECT aggregate_type, sequence FROM attribution.receipts
 WHERE aggregate_id = 'e0000000-0000-4000-8000-000000000004';
SELECT c.causation_id = k.receipt_id AS caused_by_click
  FROM attribution.receipts c, attribution.receipts k
 WHERE c.aggregate_id = 'order-app' AND k.aggregate_id = 'e0000000-0000-4000-8000-000000000004';
-- the trigger functions are not the application's to use
CREATE TABLE regress_app_clicks (click_id int, trace_id int, span_id int);
ALTER TABLE regress_app_clicks OWNER TO regress_fp_attribution_app;
SET ROLE regress_fp_attribution_app;
SELECT regress_error($$CREATE TRIGGER t AFTER INSERT ON regress_app_clicks
	FOR EACH ROW EXECUTE FUNCTION attribution.write_receipt('click')$$);
SELECT regress_error($$CREATE TRIGGER t BEFORE DELETE ON regress_app_clicks
	FOR EACH STATEMENT EXECUTE FUNCTION attribution.append_only()$$);
RESET ROLE;
DROP TABLE regress_app_clicks;
DROP OWNED BY regress_fp_attribution_app;
DROP ROLE regress_fp_attribution_app;

-- write_receipt reads the row by the column names of its argument's
-- kind, whatever the table is called: a table without them is refused,
-- naming the missing column
CREATE TABLE regress_other_clicks (click_id int, trace_id int, span_id int);
CREATE TRIGGER other_write_receipt AFTER INSERT ON regress_other_clicks
	FOR EACH ROW EXECUTE FUNCTION attribution.write_receipt('click');
SELECT regress_error($$INSERT INTO regress_other_clicks VALUES (1, 2, 3)$$);
-- ...and one whose columns have other types than it reads
ALTER TABLE regress_other_clicks ADD COLUMN advertiser_id text;
SELECT regress_error($$INSERT INTO regress_other_clicks VALUES (1, 2, 3, 'a')$$);
DROP TABLE regress_other_clicks;

-- a receipt row built in SQL must have its NOT NULL columns
SELECT regress_error($$SELECT attribution.receipt_envelope(
	ROW(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)::attribution.receipts)$$);
SELECT regress_error(format($$SELECT attribution.receipt_envelope(
	jsonb_populate_record(r, '{"%s": null}')) FROM attribution.receipts r
	WHERE aggregate_id = 'order-r1' AND sequence = 1$$, c))
  FROM unnest(ARRAY['trace_id', 'span_id', 'correlation_id', 'advertiser_id', 'aggregate_id', 'payload']) AS c;

-- an untouched database verifies clean, and verification is counted
SELECT attribution.reset_telemetry_status();
SELECT ok, receipts_checked = (SELECT count(*) FROM attribution.receipts) AS all_receipts,
	   chains_checked = (SELECT count(*) FROM (SELECT DISTINCT advertiser_id, aggregate_type, aggregate_id
											   FROM attribution.receipts) c) AS all_chains,
	   chains_failed, receipts_failed, failed_advertiser_id, failed_aggregate_type, failed_aggregate_id,
	   failed_receipt_id, failed_sequence, failed_check, detail
  FROM attribution.verify_all();
SELECT ok, failed_check FROM attribution.verify_chain('refund', 'order-r1');
SELECT * FROM attribution.verify_receipt((SELECT receipt_id FROM regress_receipt_ids WHERE name = 'click1'));
SELECT regress_error($$SELECT * FROM attribution.verify_receipt('00000000-0000-4000-8000-000000000000')$$);
SELECT regress_error($$SELECT * FROM attribution.verify_chain('click', 'nope')$$);
-- verify_all, verify_chain (3 receipts) and verify_receipt (1) each counted every receipt
SELECT verifications_success - (SELECT count(*) FROM attribution.receipts) AS beyond_verify_all,
	   verifications_failed FROM attribution.telemetry_status;

-- the export view gives what the offline recipe reads
SELECT line::jsonb - 'receipt_id' - 'timestamp' - 'payload_hash' - 'receipt_hash' - 'prev_hash'
	   - 'trace_id' - 'span_id' - 'correlation_id' - 'payload' - 'causation_id' AS line,
	   line::jsonb->'causation_id' <> 'null' AS has_cause
  FROM attribution.receipt_export WHERE aggregate_id = 'order-r1' ORDER BY aggregate_type, sequence;
SELECT bool_and((line::jsonb->>'timestamp') ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$') AS rfc3339
  FROM attribution.receipt_export;
