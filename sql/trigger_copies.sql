--
-- trigger_copies: the C code never identifies a table by its name (STYLE
-- section 11; Citus fires the triggers on shard tables such as
-- clicks_102104).  For every table the extension puts triggers on, a copy
-- under another name in another schema, given the same triggers (read
-- from pg_trigger: same function, same arguments), takes an INSERT as the
-- original does and refuses what the original refuses, with the same
-- errors; spans and log records name the logical table.  It all runs in
-- one transaction that is rolled back, so the receipts written for rows
-- of the copies leave nothing behind.
--
SELECT attribution.reset_telemetry();

-- every trigger the extension creates
SELECT c.relname, t.tgname, t.tgfoid::regproc AS function,
	   replace(encode(t.tgargs, 'escape'), '\000', ',') AS args
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = 'attribution'::regnamespace AND NOT t.tgisinternal
 ORDER BY c.relname::text COLLATE "C", t.tgname::text COLLATE "C";

BEGIN;
SET LOCAL fp_attribution.traceparent = '00-0af7651916cd43dd8448eb211c80c0c0-b7ad6b7169203331-01';
CREATE SCHEMA regress_copies;
-- a copy of each of those tables named as a shard, with the same triggers
DO $$
DECLARE
	t record;
BEGIN
	FOR t IN SELECT DISTINCT c.relname FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
			  WHERE c.relnamespace = 'attribution'::regnamespace AND NOT g.tgisinternal LOOP
		EXECUTE format('CREATE TABLE regress_copies.%I (LIKE attribution.%I INCLUDING ALL)',
					   t.relname || '_102104', t.relname);
	END LOOP;
	FOR t IN SELECT c.relname, pg_get_triggerdef(g.oid) AS def
			   FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
			  WHERE c.relnamespace = 'attribution'::regnamespace AND NOT g.tgisinternal LOOP
		EXECUTE replace(t.def, format(' ON attribution.%s ', t.relname),
						format(' ON regress_copies.%s ', t.relname || '_102104'));
	END LOOP;
END
$$;
SELECT c.relname, count(*) AS triggers
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = 'regress_copies'::regnamespace AND NOT t.tgisinternal
 GROUP BY 1 ORDER BY c.relname::text COLLATE "C";

-- clicks: validated, defaulted, windowed (the advertiser's window of the
-- affiliate), stamped and given a receipt, as in attribution.clicks
INSERT INTO attribution.windows (advertiser_id, affiliate_id, attribution_window)
VALUES ('adv-copy', 'aff-copy', '2 hours');
INSERT INTO regress_copies.clicks_102104 (advertiser_id, affiliate_id, click_id, clicked_at)
VALUES ('adv-copy', 'aff-copy', 'f1000000-0000-4000-8000-000000000001', '2026-05-01 10:00:00+00');
SELECT advertiser_id, click_id, window_ends_at - clicked_at AS window, trace_id,
	   span_id IS NOT NULL AS has_span
  FROM regress_copies.clicks_102104;
SELECT regress_error($$INSERT INTO regress_copies.clicks_102104 (advertiser_id, affiliate_id) VALUES ('adv-copy', '')$$);
-- conversions: attributed against the advertiser's clicks (the logical
-- table attribution.clicks, which a command wrote), caused by its receipt
SELECT count(*) FROM attribution.track_click('aff-copy', click_id => 'f1000000-0000-4000-8000-000000000002',
	clicked_at => '2026-05-01 10:00:00+00', advertiser_id => 'adv-copy');
INSERT INTO regress_copies.conversions_102104 (advertiser_id, order_id, revenue_cents, click_id, converted_at)
VALUES ('adv-copy', 'order-copy', 100, 'f1000000-0000-4000-8000-000000000002', '2026-05-01 11:00:00+00');
SELECT advertiser_id, order_id, attributed, affiliate_id, latency
  FROM regress_copies.conversions_102104;
-- their receipts went to the advertiser's chains in attribution.receipts
SELECT aggregate_type, aggregate_id, sequence, causation_id IS NOT NULL AS has_cause
  FROM attribution.receipts WHERE advertiser_id = 'adv-copy' ORDER BY 1, 2;
-- receipts and signing keys: an INSERT works (and is seen by telemetry)
INSERT INTO regress_copies.receipts_102104 (advertiser_id, receipt_id, "timestamp", sequence,
	correlation_id, aggregate_id, aggregate_type, payload, payload_hash, trace_id, span_id,
	prev_hash, receipt_hash)
VALUES ('adv-copy', 'f2000000-0000-4000-8000-000000000001', '2026-05-01 10:00:00+00', 1, 'c',
	'agg', 'copy', '{}', '\x00', '0af7651916cd43dd8448eb211c80c0c0', 'b7ad6b7169203331', '\x00', '\x00');
INSERT INTO regress_copies.signing_keys_102104 (key_id, algorithm, public_key, public_key_pem)
VALUES ('k', 'ed25519', ('\x' || repeat('00', 32))::bytea, 'pem');
SELECT (SELECT count(*) FROM regress_copies.receipts_102104) AS receipts,
	   (SELECT count(*) FROM regress_copies.signing_keys_102104) AS signing_keys;
-- ...and what the originals refuse is refused, naming the logical table
SELECT c.relname, op,
	   regress_error(format('%s regress_copies.%I', op, c.relname)) AS error
  FROM pg_class c,
	   unnest(ARRAY['DELETE FROM', 'TRUNCATE']) AS op
 WHERE c.relnamespace = 'regress_copies'::regnamespace AND c.relkind = 'r'
 ORDER BY c.relname::text COLLATE "C", op COLLATE "C";
SELECT regress_error($$UPDATE regress_copies.clicks_102104 SET visitor_id = 'v'$$);
ROLLBACK;

-- the spans and log records of that work name the logical tables only
SELECT * FROM (
	SELECT name, attributes ->> 'db.collection.name' AS collection, count(*)
	  FROM attribution.spans
	 WHERE trace_id = '0af7651916cd43dd8448eb211c80c0c0'
	 GROUP BY 1, 2) s
 ORDER BY name COLLATE "C", collection COLLATE "C";
SELECT (SELECT count(*) FROM attribution.spans WHERE (name || attributes::text) LIKE '%102104%') AS spans,
	   (SELECT count(*) FROM attribution.logs WHERE (body || attributes::text) LIKE '%102104%') AS logs;
-- nothing is left behind
SELECT count(*) FROM attribution.receipts WHERE advertiser_id = 'adv-copy';
SELECT count(*) FROM pg_namespace WHERE nspname = 'regress_copies';
