--
-- receipts_tamper: a superuser bypasses the append-only triggers
-- (session_replication_role = replica) and alters receipts; verification
-- finds each change and names the receipt and the check
--
-- one chain of three receipts per case
SELECT count(*) FROM (VALUES ('t-payload'), ('t-rehashed'), ('t-rewritten'), ('t-deleted'),
	('t-swapped'), ('t-moved'), ('t-trace'), ('t-untouched')) AS c(id),
	LATERAL (SELECT attribution.append_receipt('tamper', c.id,
		jsonb_build_object('event', 'step', 'n', n, 'cents', 100 * n))
		FROM generate_series(1, 3) AS n) AS a;
SELECT ok, chains_failed FROM attribution.verify_all();

SET session_replication_role = replica;
-- edited payload
UPDATE attribution.receipts SET payload = payload || '{"cents": 1}'
 WHERE aggregate_id = 't-payload' AND sequence = 2;
-- edited payload and payload_hash
UPDATE attribution.receipts SET payload = payload || '{"cents": 1}',
	payload_hash = sha256(convert_to(attribution.canonical_json(payload || '{"cents": 1}'), 'UTF8'))
 WHERE aggregate_id = 't-rehashed' AND sequence = 2;
-- edited payload with every hash of the receipt recomputed: the next link breaks
UPDATE attribution.receipts SET payload = payload || '{"cents": 1}',
	payload_hash = sha256(convert_to(attribution.canonical_json(payload || '{"cents": 1}'), 'UTF8'))
 WHERE aggregate_id = 't-rewritten' AND sequence = 2;
UPDATE attribution.receipts r SET receipt_hash = sha256(convert_to(attribution.receipt_envelope(r), 'UTF8'))
 WHERE aggregate_id = 't-rewritten' AND sequence = 2;
-- deleted middle receipt
DELETE FROM attribution.receipts WHERE aggregate_id = 't-deleted' AND sequence = 2;
-- swapped sequences
UPDATE attribution.receipts SET sequence = 100 WHERE aggregate_id = 't-swapped' AND sequence = 1;
UPDATE attribution.receipts SET sequence = 1 WHERE aggregate_id = 't-swapped' AND sequence = 2;
UPDATE attribution.receipts SET sequence = 2 WHERE aggregate_id = 't-swapped' AND sequence = 100;
-- receipt moved to another aggregate
UPDATE attribution.receipts SET aggregate_id = 't-moved-elsewhere'
 WHERE aggregate_id = 't-moved' AND sequence = 3;
-- changed trace_id
UPDATE attribution.receipts SET trace_id = '0af7651916cd43dd8448eb211c80319c'
 WHERE aggregate_id = 't-trace' AND sequence = 1;
RESET session_replication_role;

SELECT attribution.reset_telemetry_status();
SELECT c.id, v.ok, v.receipts_checked, v.failed_sequence, v.failed_check, v.detail
  FROM (VALUES ('t-payload'), ('t-rehashed'), ('t-rewritten'), ('t-deleted'), ('t-swapped'),
	('t-moved'), ('t-moved-elsewhere'), ('t-trace'), ('t-untouched')) AS c(id),
	LATERAL attribution.verify_chain('tamper', c.id) AS v
 ORDER BY c.id COLLATE "C";

-- verify_receipt reports the same receipts
SELECT r.aggregate_id, r.sequence, v.ok, v.failed_check
  FROM attribution.receipts r, LATERAL attribution.verify_receipt(r.receipt_id) AS v
 WHERE r.aggregate_type = 'tamper' AND NOT v.ok
 ORDER BY r.aggregate_id COLLATE "C", r.sequence;

-- verify_all: totals and the first failure in (aggregate_type, aggregate_id) order
SELECT ok, chains_failed, receipts_failed,
	   failed_aggregate_type, failed_aggregate_id, failed_sequence, failed_check
  FROM attribution.verify_all();
SELECT verifications_success > 0 AS counted_success, verifications_failed > 0 AS counted_failed
  FROM attribution.telemetry_status;

-- a chain whose receipts are all gone is still reported by its head
SET session_replication_role = replica;
DELETE FROM attribution.receipts WHERE aggregate_id = 't-untouched';
RESET session_replication_role;
SELECT ok, receipts_checked, failed_check, detail FROM attribution.verify_chain('tamper', 't-untouched');

-- leave a clean database for the next tests
SET session_replication_role = replica;
DELETE FROM attribution.receipts WHERE aggregate_type = 'tamper';
DELETE FROM attribution.receipt_streams WHERE aggregate_type = 'tamper';
RESET session_replication_role;
SELECT ok FROM attribution.verify_all();

-- rows changed with triggers bypassed: verify_all compares every click and
-- conversion with its chain's first receipt, and names the row
SELECT FROM attribution.track_click('aff-tamper', click_id => 'e1000000-0000-4000-8000-000000000001');
SELECT FROM attribution.track_conversion('order-tamper', 4200, click_id => 'e1000000-0000-4000-8000-000000000001');
SELECT ok FROM attribution.verify_all();
-- an edited amount
SET session_replication_role = replica;
UPDATE attribution.conversions SET revenue_cents = 1 WHERE order_id = 'order-tamper';
RESET session_replication_role;
SELECT ok, chains_failed, receipts_failed, failed_aggregate_type, failed_aggregate_id,
	   failed_sequence, failed_check, detail
  FROM attribution.verify_all();
SET session_replication_role = replica;
UPDATE attribution.conversions SET revenue_cents = 4200 WHERE order_id = 'order-tamper';
RESET session_replication_role;
SELECT ok FROM attribution.verify_all();
-- a deleted row whose receipt remains
CREATE TEMP TABLE regress_saved_click AS
	SELECT * FROM attribution.clicks WHERE click_id = 'e1000000-0000-4000-8000-000000000001';
SET session_replication_role = replica;
DELETE FROM attribution.clicks WHERE click_id = 'e1000000-0000-4000-8000-000000000001';
RESET session_replication_role;
SELECT ok, chains_failed, failed_aggregate_type, failed_aggregate_id, failed_sequence,
	   failed_check, detail
  FROM attribution.verify_all();
-- a row without a receipt (the same row put back under another id)
SET session_replication_role = replica;
INSERT INTO attribution.clicks SELECT * FROM regress_saved_click;
UPDATE attribution.clicks SET click_id = 'e1000000-0000-4000-8000-000000000000'
 WHERE click_id = 'e1000000-0000-4000-8000-000000000001';
RESET session_replication_role;
SELECT ok, chains_checked - (SELECT count(*) FROM (SELECT DISTINCT advertiser_id, aggregate_type, aggregate_id
												  FROM attribution.receipts) c) AS rows_without_chain,
	   chains_failed, failed_aggregate_type, failed_aggregate_id, failed_sequence, failed_check, detail
  FROM attribution.verify_all();
-- put back as it was: clean again
SET session_replication_role = replica;
UPDATE attribution.clicks SET click_id = 'e1000000-0000-4000-8000-000000000001'
 WHERE click_id = 'e1000000-0000-4000-8000-000000000000';
RESET session_replication_role;
SELECT ok, chains_failed FROM attribution.verify_all();
-- verify_all proves chains of one receipt in bulk (src/ledger/verify_single.c)
-- only while a unique index keeps a chain's first receipt unique: with the
-- primary keys dropped, a click copied with its receipt is a fork, found
-- by checking each chain
BEGIN;
ALTER TABLE attribution.receipts DROP CONSTRAINT receipts_pkey;
ALTER TABLE attribution.clicks DROP CONSTRAINT clicks_pkey;
SET LOCAL session_replication_role = replica;
INSERT INTO attribution.receipts SELECT * FROM attribution.receipts
 WHERE aggregate_type = 'click' AND aggregate_id = 'e1000000-0000-4000-8000-000000000001';
INSERT INTO attribution.clicks SELECT * FROM attribution.clicks
 WHERE click_id = 'e1000000-0000-4000-8000-000000000001';
SELECT ok, chains_failed, failed_aggregate_type, failed_aggregate_id, failed_sequence,
	   failed_check, detail
  FROM attribution.verify_all();
ROLLBACK;
SELECT ok, chains_failed FROM attribution.verify_all();
-- verify_all shares its reads with parallel workers (src/ledger/verify_parallel.c)
-- once a table reaches min_parallel_table_scan_size: the same totals and
-- the same failure, whichever process read which rows
SET min_parallel_table_scan_size = 0;
SELECT ok, chains_checked = (SELECT count(*) FROM (SELECT DISTINCT advertiser_id, aggregate_type, aggregate_id
												  FROM attribution.receipts) c) AS every_chain,
	   receipts_checked = (SELECT count(*) FROM attribution.receipts) AS every_receipt
  FROM attribution.verify_all();
SET session_replication_role = replica;
UPDATE attribution.conversions SET revenue_cents = 1 WHERE order_id = 'order-tamper';
RESET session_replication_role;
SELECT ok, chains_failed, receipts_failed, failed_aggregate_type, failed_aggregate_id,
	   failed_sequence, failed_check, detail
  FROM attribution.verify_all();
SET session_replication_role = replica;
UPDATE attribution.conversions SET revenue_cents = 4200 WHERE order_id = 'order-tamper';
RESET session_replication_role;
SELECT ok, chains_failed FROM attribution.verify_all();
RESET min_parallel_table_scan_size;
