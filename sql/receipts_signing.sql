--
-- receipts_signing: Ed25519 signatures, the key file checks, key
-- rotation, and signature tampering.  test/fp_attribution.conf names
-- regress_signing.pem (relative to the data directory); this file creates
-- it with openssl, atomically replacing it to rotate.
--
SELECT name, setting, context FROM pg_settings
 WHERE name IN ('fp_attribution.sign_receipts', 'fp_attribution.signing_key_file')
 ORDER BY name COLLATE "C";

-- only superusers may change signing, or see the key file's name
CREATE ROLE regress_fp_attribution_user;
SET ROLE regress_fp_attribution_user;
SELECT regress_error($$SET fp_attribution.sign_receipts = off$$);
SELECT regress_error($$SHOW fp_attribution.signing_key_file$$);
RESET ROLE;
DROP ROLE regress_fp_attribution_user;

SET fp_attribution.sign_receipts = on;
-- a missing, unsafe or wrong key file fails the command; nothing is written
SELECT regress_error($$SELECT attribution.track_click('aff-s', click_id => 'f0000000-0000-4000-8000-000000000001')$$);
COPY (SELECT) TO PROGRAM 'openssl genpkey -algorithm ed25519 -out regress_signing.pem 2>/dev/null && chmod 644 regress_signing.pem';
SELECT regress_error($$SELECT attribution.track_click('aff-s', click_id => 'f0000000-0000-4000-8000-000000000001')$$);
COPY (SELECT) TO PROGRAM 'openssl genpkey -algorithm x25519 -out regress_signing.tmp 2>/dev/null && chmod 600 regress_signing.tmp && mv -f regress_signing.tmp regress_signing.pem';
SELECT regress_error($$SELECT attribution.track_click('aff-s', click_id => 'f0000000-0000-4000-8000-000000000001')$$);
COPY (SELECT) TO PROGRAM 'echo not a key > regress_signing.tmp && chmod 600 regress_signing.tmp && mv -f regress_signing.tmp regress_signing.pem';
SELECT regress_error($$SELECT attribution.track_click('aff-s', click_id => 'f0000000-0000-4000-8000-000000000001')$$);
SELECT count(*) FROM attribution.clicks WHERE click_id = 'f0000000-0000-4000-8000-000000000001';

-- a good key: every receipt is signed over its receipt_hash, and the
-- public half is registered, readable by anyone
COPY (SELECT) TO PROGRAM 'openssl genpkey -algorithm ed25519 -out regress_signing.tmp 2>/dev/null && chmod 600 regress_signing.tmp && mv -f regress_signing.tmp regress_signing.pem';
SELECT octet_length(signature) AS signature_len
  FROM attribution.track_click('aff-s', click_id => 'f0000000-0000-4000-8000-000000000001');
SELECT octet_length(signature) AS signature_len
  FROM attribution.track_click('aff-s', click_id => 'f0000000-0000-4000-8000-000000000002');
SELECT octet_length(signature) AS signature_len
  FROM attribution.track_conversion('order-s1', 100, click_id => 'f0000000-0000-4000-8000-000000000001');
SELECT algorithm, octet_length(public_key) AS key_len,
	   key_id = (SELECT DISTINCT key_id FROM attribution.receipts WHERE key_id IS NOT NULL) AS signed_with,
	   key_id = encode(substr(sha256(public_key), 1, 8), 'hex') AS id_derived,
	   public_key_pem LIKE '-----BEGIN PUBLIC KEY-----%' AS pem
  FROM attribution.signing_keys;
SELECT has_table_privilege('public', 'attribution.signing_keys', 'SELECT') AS public_can_read;

-- rotation: a new file renamed over the old one is picked up; old
-- receipts still verify with the old public key
COPY (SELECT) TO PROGRAM 'openssl genpkey -algorithm ed25519 -out regress_signing.tmp 2>/dev/null && chmod 600 regress_signing.tmp && mv -f regress_signing.tmp regress_signing.pem';
SELECT octet_length(signature) AS signature_len
  FROM attribution.track_click('aff-s', click_id => 'f0000000-0000-4000-8000-000000000003');
SELECT octet_length(signature) AS signature_len
  FROM attribution.track_click('aff-s', click_id => 'f0000000-0000-4000-8000-000000000004');
SELECT (SELECT count(*) FROM attribution.signing_keys) AS keys,
	   (SELECT count(DISTINCT key_id) FROM attribution.receipts) AS keys_used;
SELECT ok, chains_failed FROM attribution.verify_all();
-- a key registered in a rolled-back savepoint is registered again by the
-- next receipt it signs
COPY (SELECT) TO PROGRAM 'openssl genpkey -algorithm ed25519 -out regress_signing.tmp 2>/dev/null && chmod 600 regress_signing.tmp && mv -f regress_signing.tmp regress_signing.pem';
BEGIN;
SAVEPOINT s;
SELECT octet_length(signature) AS signature_len
  FROM attribution.track_click('aff-s', click_id => 'f0000000-0000-4000-8000-000000000006');
ROLLBACK TO SAVEPOINT s;
SELECT octet_length(signature) AS signature_len
  FROM attribution.track_click('aff-s', click_id => 'f0000000-0000-4000-8000-000000000007');
COMMIT;
SELECT count(*) AS clicks, count(k.key_id) AS key_registered
  FROM attribution.receipts r LEFT JOIN attribution.signing_keys k USING (key_id)
 WHERE r.aggregate_id IN ('f0000000-0000-4000-8000-000000000006', 'f0000000-0000-4000-8000-000000000007');
SELECT ok, failed_check FROM attribution.verify_chain('click', 'f0000000-0000-4000-8000-000000000007');
-- keys are registered per advertiser: the key signing for a second
-- advertiser is registered again, for it
SELECT octet_length(signature) AS signature_len
  FROM attribution.track_click('aff-s', click_id => 'f0000000-0000-4000-8000-000000000008',
							   advertiser_id => 'adv-sign-b');
SELECT advertiser_id, count(*) AS keys FROM attribution.signing_keys
 WHERE key_id = (SELECT key_id FROM attribution.receipts WHERE advertiser_id = 'adv-sign-b')
 GROUP BY 1 ORDER BY 1;
-- signing off again: receipts are unsigned
RESET fp_attribution.sign_receipts;
SELECT signature IS NULL AND key_id IS NULL AS unsigned
  FROM attribution.track_click('aff-s', click_id => 'f0000000-0000-4000-8000-000000000005');

-- tampering with signatures
SET session_replication_role = replica;
-- flipped signature bit
UPDATE attribution.receipts SET signature = set_byte(signature, 7, get_byte(signature, 7) # 1)
 WHERE aggregate_id = 'f0000000-0000-4000-8000-000000000001';
-- a signature by another key (the rotated one) under the old key id
UPDATE attribution.receipts SET signature = (SELECT signature FROM attribution.receipts
	WHERE aggregate_id = 'f0000000-0000-4000-8000-000000000003')
 WHERE aggregate_id = 'f0000000-0000-4000-8000-000000000002';
-- an unknown key id, with the receipt hash recomputed to match
UPDATE attribution.receipts SET key_id = '0123456789abcdef'
 WHERE aggregate_id = 'f0000000-0000-4000-8000-000000000004';
UPDATE attribution.receipts r SET receipt_hash = sha256(convert_to(attribution.receipt_envelope(r), 'UTF8'))
 WHERE aggregate_id = 'f0000000-0000-4000-8000-000000000004';
UPDATE attribution.receipt_streams s SET last_hash = r.receipt_hash FROM attribution.receipts r
 WHERE r.aggregate_id = s.aggregate_id AND s.aggregate_id = 'f0000000-0000-4000-8000-000000000004';
-- the second advertiser's key row removed: its receipt no longer verifies,
-- although the same key is registered for another advertiser
DELETE FROM attribution.signing_keys WHERE advertiser_id = 'adv-sign-b';
RESET session_replication_role;
SELECT ok, failed_check,
	   detail LIKE 'Key "%" is not in attribution.signing_keys for advertiser "adv-sign-b"%' AS names_advertiser
  FROM attribution.verify_chain('click', 'f0000000-0000-4000-8000-000000000008', 'adv-sign-b');
SELECT right(c.id, 1) AS click, v.ok, v.failed_check, v.detail LIKE 'The signature does not verify%' AS sig_detail
  FROM (VALUES ('f0000000-0000-4000-8000-000000000001'), ('f0000000-0000-4000-8000-000000000002'),
	('f0000000-0000-4000-8000-000000000003'), ('f0000000-0000-4000-8000-000000000004'),
	('f0000000-0000-4000-8000-000000000005')) AS c(id),
	LATERAL attribution.verify_chain('click', c.id) AS v
 ORDER BY 1;
SELECT ok, receipts_failed, failed_check FROM attribution.verify_all();
COPY (SELECT) TO PROGRAM 'cat > /dev/null && rm -f regress_signing.pem';
