--
-- statement_batches: the receipts and report click deltas that the row
-- triggers collect and their statement writes when it ends
-- (src/commands/statement_batch.c)
--

-- a multi-row INSERT: every click has its first receipt, queued for the
-- log, and the report counts every click
INSERT INTO attribution.clicks (advertiser_id, affiliate_id, offer_id, visitor_id, clicked_at)
SELECT 'batch-1', 'aff-' || i % 2, 'offer-b', 'bv-' || i, '2026-03-01 10:00:00+00'
  FROM generate_series(1, 6) i;
SELECT count(*) AS clicks, count(r.receipt_id) AS receipts,
	   bool_and(r.sequence = 1 AND r.payload->>'visitor_id' = c.visitor_id) AS first_receipts
  FROM attribution.clicks c
  LEFT JOIN attribution.receipts r ON r.advertiser_id = c.advertiser_id
   AND r.aggregate_type = 'click' AND r.aggregate_id = c.click_id::text
 WHERE c.advertiser_id = 'batch-1';
SELECT (SELECT count(*) FROM attribution.log_queue WHERE advertiser_id = 'batch-1') +
	   (SELECT count(*) FROM attribution.log_entries WHERE advertiser_id = 'batch-1') AS logged;
SELECT day, affiliate_id, offer_id, clicks FROM attribution.report_rollup
 WHERE advertiser_id = 'batch-1' ORDER BY affiliate_id;

-- a late click among others attributes its conversion, whose receipt is
-- caused by the click's receipt (written before it is looked up)
SELECT count(*) FROM attribution.track_conversion('batch-late', 1000,
	click_id => 'b1000000-0000-4000-8000-000000000002', advertiser_id => 'batch-1');
INSERT INTO attribution.clicks (advertiser_id, click_id, affiliate_id, clicked_at)
VALUES ('batch-1', 'b1000000-0000-4000-8000-000000000001', 'aff-late', now() - interval '1 minute'),
	   ('batch-1', 'b1000000-0000-4000-8000-000000000002', 'aff-late', now() - interval '1 minute'),
	   ('batch-1', 'b1000000-0000-4000-8000-000000000003', 'aff-late', now() - interval '1 minute');
SELECT v.attributed, v.affiliate_id, r.sequence, r.causation_id = k.receipt_id AS caused_by_click
  FROM attribution.conversions v, attribution.receipts r, attribution.receipts k
 WHERE v.advertiser_id = 'batch-1' AND v.order_id = 'batch-late'
   AND r.advertiser_id = 'batch-1' AND r.aggregate_id = 'batch-late' AND r.sequence = 2
   AND k.advertiser_id = 'batch-1' AND k.aggregate_type = 'click'
   AND k.aggregate_id = 'b1000000-0000-4000-8000-000000000002';

-- rows collected in a subtransaction that fails leave nothing behind; the
-- rows of the transaction around it are written
CREATE FUNCTION regress_refuse_click() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.affiliate_id = 'refused' THEN
		RAISE EXCEPTION 'refused click';
	END IF;
	RETURN NULL;
END
$$;
-- fires after the extension's row triggers (name order)
CREATE TRIGGER zz_refuse AFTER INSERT ON attribution.clicks
	FOR EACH ROW EXECUTE FUNCTION regress_refuse_click();
BEGIN;
INSERT INTO attribution.clicks (advertiser_id, affiliate_id, visitor_id)
VALUES ('batch-2', 'kept', 'bv-kept-1'), ('batch-2', 'kept', 'bv-kept-2');
SAVEPOINT s;
INSERT INTO attribution.clicks (advertiser_id, affiliate_id, visitor_id)
VALUES ('batch-2', 'lost', 'bv-lost-1'), ('batch-2', 'lost', 'bv-lost-2'),
	   ('batch-2', 'refused', 'bv-lost-3');
ROLLBACK TO SAVEPOINT s;
INSERT INTO attribution.clicks (advertiser_id, affiliate_id, visitor_id)
VALUES ('batch-2', 'kept', 'bv-kept-3');
COMMIT;
DROP TRIGGER zz_refuse ON attribution.clicks;
DROP FUNCTION regress_refuse_click();
SELECT (SELECT count(*) FROM attribution.clicks WHERE advertiser_id = 'batch-2') AS clicks,
	   (SELECT count(*) FROM attribution.receipts WHERE advertiser_id = 'batch-2') AS receipts,
	   (SELECT sum(clicks) FROM attribution.report_rollup WHERE advertiser_id = 'batch-2') AS reported;

-- without the statement trigger the collected rows would be lost: the
-- transaction fails instead of committing clicks without receipts
ALTER TABLE attribution.clicks DISABLE TRIGGER write_statement_batches;
INSERT INTO attribution.clicks (advertiser_id, affiliate_id) VALUES ('batch-3', 'aff-1');
ALTER TABLE attribution.clicks ENABLE TRIGGER write_statement_batches;
SELECT count(*) AS clicks FROM attribution.clicks WHERE advertiser_id = 'batch-3';

-- every chain of these advertisers verifies (the tests before left
-- tampered chains of their own behind)
SELECT count(*) AS chains, bool_and(v.ok) AS ok
  FROM (SELECT DISTINCT advertiser_id, aggregate_type, aggregate_id FROM attribution.receipts
		 WHERE advertiser_id LIKE 'batch-%') c,
	   LATERAL attribution.verify_chain(c.aggregate_type, c.aggregate_id, c.advertiser_id) v;
