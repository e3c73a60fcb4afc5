--
-- receipt_log: the per-advertiser Merkle logs, signed checkpoints, proofs,
-- and each kind of tampering the log exists to catch.  Runs in a database
-- of its own: the earlier tests leave tampered receipts behind.
--
SELECT current_database() AS regress_db \gset
CREATE DATABASE regress_fp_log;
\c regress_fp_log
CREATE EXTENSION fp_attribution;
CREATE FUNCTION regress_error(cmd text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE cmd;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
COPY (SELECT) TO PROGRAM 'openssl genpkey -algorithm ed25519 -out regress_signing.tmp 2>/dev/null && chmod 600 regress_signing.tmp && mv -f regress_signing.tmp regress_signing.pem';
SELECT name, setting, context FROM pg_settings
 WHERE name IN ('fp_attribution.log_origin', 'fp_attribution.log_interval')
 ORDER BY name COLLATE "C";

-- nothing logged yet: no checkpoint, nothing pending
SELECT attribution.checkpoint() IS NULL AS no_checkpoint;
SELECT * FROM attribution.log_status;

-- two advertisers; a click with a conversion makes a two-receipt chain
SELECT count(*) FROM generate_series(1, 5) AS n,
	LATERAL attribution.track_click('aff-' || n,
		click_id => ('10000000-0000-4000-8000-00000000000' || n)::uuid);
SELECT count(*) FROM generate_series(1, 3) AS n,
	LATERAL attribution.track_click('aff-' || n, advertiser_id => 'acme',
		click_id => ('20000000-0000-4000-8000-00000000000' || n)::uuid);
SELECT receipt_id IS NOT NULL AS converted
  FROM attribution.track_conversion('order-1', 100, click_id => '10000000-0000-4000-8000-000000000005');
SELECT count(*) FROM generate_series(1, 2) AS n,
	LATERAL attribution.append_receipt('ticket', 't-1', jsonb_build_object('step', n));
SELECT advertiser_id, tree_size, checkpoint_size, pending, oldest_pending_age IS NOT NULL AS lag_shown
  FROM attribution.log_status ORDER BY 1;
-- batches are taken off the queue in the order it was written
SELECT attribution.integrate_log(1) AS integrated;
SELECT attribution.integrate_log(3) AS integrated;
SELECT attribution.integrate_log() AS integrated;
SELECT attribution.integrate_log() AS integrated_again;
SELECT advertiser_id, tree_size, checkpoint_size, pending FROM attribution.log_status ORDER BY 1;
SELECT advertiser_id, tree_size FROM attribution.log_checkpoints ORDER BY 1, 2;

-- the checkpoint: origin, size, base64 root, empty line, one signature
-- line by the origin, whose key hash is the verifier key's
SELECT split_part(n, E'\n', 1) AS origin, split_part(n, E'\n', 2) AS size,
	   octet_length(decode(split_part(n, E'\n', 3), 'base64')) AS root_len,
	   split_part(n, E'\n', 4) = '' AS empty_line,
	   split_part(n, E'\n', 5) LIKE '— fp-attribution.invalid/log/default %' AS signed_by_origin,
	   split_part(n, E'\n', 6) = '' AS ends
  FROM attribution.checkpoint() AS n;
SELECT k ~ '^fp-attribution\.invalid/log/acme\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}$' AS key_format,
	   encode(substr(decode(split_part(split_part(n, E'\n', 5), ' ', 3), 'base64'), 1, 4), 'hex')
		 = split_part(k, '+', 2) AS key_hash_matches,
	   octet_length(decode(substr(k, length(split_part(k, '+', 1)) + 11), 'base64')) AS key_len
  FROM attribution.log_verifier_key('acme') AS k, attribution.checkpoint('acme') AS n;
-- the root of a one-entry tree is the leaf hash
SELECT decode(split_part(c.note, E'\n', 3), 'base64')
		 = sha256('\x00'::bytea || r.receipt_hash) AS root_is_leaf
  FROM attribution.log_checkpoints c
  JOIN attribution.log_entries e ON e.advertiser_id = c.advertiser_id AND e.log_index = 0
  JOIN attribution.receipts r ON r.receipt_id = e.receipt_id
 WHERE c.advertiser_id = 'default' AND c.tree_size = 1;

-- proofs: the c2sp.org/tlog-proof@v1 layout; the test/log_verify Go
-- verifier checks every hash
SELECT split_part(p, E'\n', 1) AS header, split_part(p, E'\n', 2) LIKE 'extra %' AS extra,
	   split_part(p, E'\n', 3) AS index_line,
	   array_length(string_to_array(split_part(p, E'\n\n', 1), E'\n'), 1) - 3 AS hashes
  FROM attribution.log_entries e, attribution.receipt_proof(e.receipt_id) AS p
 WHERE e.advertiser_id = 'default' ORDER BY e.log_index;
SELECT regress_error($$SELECT attribution.receipt_proof('00000000-0000-4000-8000-000000000000')$$);
SELECT o, n, cardinality(attribution.consistency_proof('default', o, n)) AS hashes
  FROM (VALUES (0, 6), (1, 6), (3, 6), (4, 6), (6, 6)) AS s(o, n);
SELECT regress_error($$SELECT attribution.consistency_proof('default', 3, 9)$$);
SELECT regress_error($$SELECT attribution.consistency_proof('default', 4, 3)$$);

-- verification: everything holds
SELECT ok, failed_check FROM attribution.verify_all();
SELECT ok, advertiser_id, checkpoint_size, log_size, detail
  FROM attribution.verify_log(attribution.checkpoint());
-- a checkpoint saved now still verifies after the log grows
CREATE TABLE saved AS SELECT attribution.checkpoint() AS note;
SELECT count(*) FROM attribution.track_click('aff-9', click_id => '10000000-0000-4000-8000-000000000009');
SELECT attribution.integrate_log() AS integrated;
SELECT ok, checkpoint_size, log_size, detail FROM saved, attribution.verify_log(note);
SELECT ok, failed_check FROM attribution.verify_all();
-- malformed or foreign checkpoints
SELECT ok, detail FROM attribution.verify_log('no note');
SELECT ok, detail FROM attribution.verify_log(replace((SELECT note FROM saved), E'\n8\n', E'\n7\n'));
SELECT ok, detail FROM attribution.verify_log(replace((SELECT note FROM saved), 'fp-attribution.invalid', 'elsewhere'));

-- an advertiser id that is not a valid key name is percent-encoded in
-- its origin
SELECT count(*) FROM attribution.track_click('aff-1', advertiser_id => 'acme corp+1%');
SELECT attribution.integrate_log() AS integrated;
SELECT split_part(attribution.checkpoint('acme corp+1%'), E'\n', 1) AS origin;
SELECT ok, advertiser_id, checkpoint_size, detail
  FROM attribution.verify_log(attribution.checkpoint('acme corp+1%'));
SELECT ok, detail FROM attribution.verify_log(replace(attribution.checkpoint('acme corp+1%'), '%20', '%2'));

-- tampering, as a superuser with the triggers off; each case rolled back
SET session_replication_role = replica;
-- 1. a whole click deleted with its receipt and chain head
BEGIN;
DELETE FROM attribution.clicks WHERE click_id = '10000000-0000-4000-8000-000000000002';
DELETE FROM attribution.receipts WHERE aggregate_id = '10000000-0000-4000-8000-000000000002';
DELETE FROM attribution.receipt_streams WHERE aggregate_id = '10000000-0000-4000-8000-000000000002';
SELECT ok, failed_advertiser_id, failed_aggregate_type, failed_aggregate_id, failed_check
  FROM attribution.verify_all();
ROLLBACK;
-- 2. the newest receipt of a chain deleted, its head moved back
BEGIN;
DELETE FROM attribution.receipts WHERE aggregate_id = 't-1' AND sequence = 2;
UPDATE attribution.receipt_streams s SET last_sequence = 1, last_hash = r.receipt_hash
  FROM attribution.receipts r
 WHERE r.aggregate_id = 't-1' AND s.aggregate_id = 't-1';
SELECT ok, failed_aggregate_type, failed_check FROM attribution.verify_all();
ROLLBACK;
-- 3. a row edited
BEGIN;
UPDATE attribution.clicks SET affiliate_id = 'aff-x' WHERE click_id = '10000000-0000-4000-8000-000000000003';
SELECT ok, failed_aggregate_type, failed_check FROM attribution.verify_all();
ROLLBACK;
-- 4. a log entry rewritten: two entries swapped, then a leaf hash edited
BEGIN;
CREATE TEMP TABLE swap AS SELECT log_index, receipt_id FROM attribution.log_entries
 WHERE advertiser_id = 'default' AND log_index IN (0, 1);
UPDATE attribution.log_entries SET receipt_id = gen_random_uuid()
 WHERE advertiser_id = 'default' AND log_index = 0;
UPDATE attribution.log_entries e SET receipt_id = s.receipt_id FROM swap s
 WHERE e.advertiser_id = 'default' AND e.log_index = 1 AND s.log_index = 0;
UPDATE attribution.log_entries e SET receipt_id = s.receipt_id FROM swap s
 WHERE e.advertiser_id = 'default' AND e.log_index = 0 AND s.log_index = 1;
SELECT ok, failed_aggregate_type, failed_aggregate_id, failed_check FROM attribution.verify_all();
ROLLBACK;
BEGIN;
UPDATE attribution.log_tiles
   SET leaf_hashes = overlay(leaf_hashes placing
		sha256(substr(leaf_hashes, (1 - first_index)::int * 32 + 1, 32))
		from (1 - first_index)::int * 32 + 1 for 32)
 WHERE advertiser_id = 'default' AND first_index = (SELECT max(first_index)
	FROM attribution.log_tiles WHERE advertiser_id = 'default' AND first_index <= 1);
SELECT ok, failed_aggregate_type, failed_aggregate_id, failed_check FROM attribution.verify_all();
ROLLBACK;
-- ... and a stored subtree hash edited: a log of 16 entries stores one,
-- at level 4, and recomputes those below from its leaf hashes
BEGIN;
SET LOCAL session_replication_role = origin;
SELECT count(*) FROM generate_series(1, 16) AS n,
	LATERAL attribution.track_click('aff-' || n, advertiser_id => 'tiles');
SELECT attribution.integrate_log() AS integrated;
SELECT level, node_index FROM attribution.log_nodes WHERE advertiser_id = 'tiles';
SELECT ok FROM attribution.verify_all();
SET LOCAL session_replication_role = replica;
UPDATE attribution.log_nodes SET hash = sha256(hash) WHERE advertiser_id = 'tiles';
SELECT ok, failed_advertiser_id, failed_aggregate_type, failed_aggregate_id, failed_check
  FROM attribution.verify_all();
ROLLBACK;
-- ... and a row of leaf hashes removed: the rows of a log follow each
-- other, one per tile of 128 a batch touches
BEGIN;
SET LOCAL session_replication_role = origin;
SELECT count(*) FROM generate_series(1, 140) AS n,
	LATERAL attribution.track_click('aff-' || n, advertiser_id => 'wide');
SELECT integrated FROM attribution.integrate_advertiser_log('wide', 10);
SELECT integrated FROM attribution.integrate_advertiser_log('wide');
SELECT first_index, octet_length(leaf_hashes) / 32 AS leaves
  FROM attribution.log_tiles WHERE advertiser_id = 'wide' ORDER BY 1;
SELECT count(*) AS proofs FROM attribution.log_entries e, attribution.receipt_proof(e.receipt_id) AS p
 WHERE e.advertiser_id = 'wide' AND p LIKE 'c2sp.org/tlog-proof@v1%';
SELECT ok FROM attribution.verify_all();
SET LOCAL session_replication_role = replica;
DELETE FROM attribution.log_tiles WHERE advertiser_id = 'wide' AND first_index = 10;
SELECT ok, failed_advertiser_id, failed_aggregate_type, failed_aggregate_id, failed_check
  FROM attribution.verify_all();
ROLLBACK;
-- 5. a forked history re-signed: a click and its receipt deleted, the log
-- rebuilt and its checkpoints replaced.  The database alone cannot tell;
-- the checkpoint an auditor saved can.
BEGIN;
DELETE FROM attribution.clicks WHERE click_id = '10000000-0000-4000-8000-000000000002';
DELETE FROM attribution.receipts WHERE aggregate_id = '10000000-0000-4000-8000-000000000002';
DELETE FROM attribution.receipt_streams WHERE aggregate_id = '10000000-0000-4000-8000-000000000002';
DELETE FROM attribution.log_entries WHERE advertiser_id = 'default';
DELETE FROM attribution.log_tiles WHERE advertiser_id = 'default';
DELETE FROM attribution.log_nodes WHERE advertiser_id = 'default';
DELETE FROM attribution.log_checkpoints WHERE advertiser_id = 'default';
INSERT INTO attribution.log_queue SELECT advertiser_id, receipt_id, receipt_hash, "timestamp"
  FROM attribution.receipts WHERE advertiser_id = 'default';
SELECT attribution.integrate_log() AS rebuilt;
SELECT ok, failed_check FROM attribution.verify_all();
SELECT ok, checkpoint_size, log_size, detail FROM saved, attribution.verify_log(note);
ROLLBACK;
-- 6. a receipt's queue row deleted before integration: it would never
-- reach the log (the queue has no triggers; the click needs its own)
BEGIN;
SET LOCAL session_replication_role = origin;
SELECT count(*) FROM attribution.track_click('aff-7', click_id => '10000000-0000-4000-8000-000000000007');
SELECT advertiser_id, pending FROM attribution.log_status WHERE pending > 0;
DELETE FROM attribution.log_queue;
SELECT ok, failed_advertiser_id, failed_aggregate_type, failed_check FROM attribution.verify_all();
ROLLBACK;
RESET session_replication_role;
SELECT ok, failed_check FROM attribution.verify_all();

-- one advertiser's share (what the coordinator's ledger worker calls for
-- each advertiser on Citus): up to max_entries of its receipts only, and
-- the note of the checkpoint it signed; the other advertiser's stay queued
SELECT count(*) FROM generate_series(1, 3) AS n,
	LATERAL attribution.track_click('aff-' || n, advertiser_id => 'acme');
SELECT count(*) FROM attribution.track_click('aff-1');
SELECT advertiser_id, tree_size, checkpoint_size, pending FROM attribution.log_status
 WHERE advertiser_id IN ('acme', 'default') ORDER BY 1;
SELECT integrated, split_part(checkpoint, E'\n', 1) AS origin, split_part(checkpoint, E'\n', 2) AS size
  FROM attribution.integrate_advertiser_log('acme', 2);
SELECT integrated, split_part(checkpoint, E'\n', 2) AS size
  FROM attribution.integrate_advertiser_log('acme');
SELECT integrated, checkpoint IS NULL AS no_checkpoint
  FROM attribution.integrate_advertiser_log('acme');
SELECT advertiser_id, tree_size, checkpoint_size, pending FROM attribution.log_status
 WHERE advertiser_id IN ('acme', 'default') ORDER BY 1;
SELECT regress_error($$SELECT attribution.integrate_advertiser_log('acme', 0)$$);
SELECT attribution.integrate_log() AS integrated;
SELECT ok, failed_check FROM attribution.verify_all();

COPY (SELECT) TO PROGRAM 'cat > /dev/null && rm -f regress_signing.pem';
\c :regress_db
DROP DATABASE regress_fp_log;
