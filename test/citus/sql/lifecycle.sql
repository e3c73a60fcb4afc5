--
-- The lifecycle commands on the cluster.  Autocommit, Citus sends the call
-- whole to the advertiser's worker; inside BEGIN ... COMMIT it runs on the
-- coordinator and Citus routes each of its statements to that worker, on
-- another backend: the worker lets the command's UPDATE of the conversion
-- through because the receipt the command wrote just before, in the same
-- transaction, says what the row becomes.  Any other UPDATE is refused,
-- also inside a transaction that has just run a command on the row.
--
SELECT aggregate_id, sequence FROM attribution.track_conversion('lc-1', 1000, advertiser_id => 'adv-l');
SELECT aggregate_id, sequence FROM attribution.track_conversion('lc-2', 1000, advertiser_id => 'adv-l');
SELECT aggregate_id, sequence FROM attribution.track_conversion('lc-3', 1000, advertiser_id => 'adv-l');

-- autocommit
SELECT sequence, payload->>'status' AS status
  FROM attribution.approve_conversion('lc-1', advertiser_id => 'adv-l');

-- inside BEGIN ... COMMIT, with a retry by command_id
BEGIN;
SELECT sequence, payload->>'status' AS status
  FROM attribution.approve_conversion('lc-2', advertiser_id => 'adv-l');
SELECT sequence, payload->>'status' AS status, payload->>'refunded_cents' AS refunded
  FROM attribution.refund_conversion('lc-2', 'adv-l', 400,
									 command_id => '33333333-3333-4333-8333-333333333333');
SELECT sequence, payload->>'status' AS status, payload->>'refunded_cents' AS refunded
  FROM attribution.refund_conversion('lc-2', 'adv-l', 400,
									 command_id => '33333333-3333-4333-8333-333333333333');
SELECT sequence, payload->>'status' AS status
  FROM attribution.reject_conversion('lc-3', advertiser_id => 'adv-l', reason => 'fraud');
COMMIT;

-- rolled back: nothing changes
BEGIN;
SELECT sequence, payload->>'status' AS status
  FROM attribution.reverse_conversion('lc-1', advertiser_id => 'adv-l');
ROLLBACK;

-- no UPDATE but the commands', even right after a command on the row
UPDATE attribution.conversions SET status = 'pending'
 WHERE advertiser_id = 'adv-l' AND order_id = 'lc-1';
BEGIN;
SELECT sequence, payload->>'status' AS status
  FROM attribution.reverse_conversion('lc-1', advertiser_id => 'adv-l');
UPDATE attribution.conversions SET status = 'approved'
 WHERE advertiser_id = 'adv-l' AND order_id = 'lc-1';
ROLLBACK;
BEGIN;
SELECT sequence, payload->>'status' AS status
  FROM attribution.reverse_conversion('lc-1', advertiser_id => 'adv-l');
UPDATE attribution.conversions SET tracestate = 'forged=1'
 WHERE advertiser_id = 'adv-l' AND order_id = 'lc-1';
ROLLBACK;

-- from PL/pgSQL on the coordinator: approve_due_conversions() approves a
-- conversion whose offer's hold period has passed
INSERT INTO attribution.offers (advertiser_id, offer_id, payout_type, payout, hold_period)
VALUES ('adv-l', 'o-hold', 'cpa', 250, interval '1 microsecond');
SELECT sequence FROM attribution.track_click('aff-1', click_id => '44444444-4444-4444-8444-444444444444',
											 offer_id => 'o-hold', advertiser_id => 'adv-l');
SELECT payload->>'status' AS status
  FROM attribution.track_conversion('lc-4', 1000, click_id => '44444444-4444-4444-8444-444444444444',
									advertiser_id => 'adv-l');
SELECT attribution.approve_due_conversions();

SELECT order_id, status, refunded_cents, commission_cents, commission_reversed_cents
  FROM attribution.conversions WHERE advertiser_id = 'adv-l' ORDER BY order_id COLLATE "C";
SELECT ok, chains_failed FROM attribution.verify_all();
