--
-- lifecycle: offers and commissions, the status state machine, refunds,
-- idempotency by command_id, the chain as history and its fold
--
INSERT INTO attribution.offers (offer_id, payout_type, payout, currency, hold_period) VALUES
	('cpa-now', 'cpa', 500, 'USD', '0'),
	('rev-hold', 'revshare', 1250, 'USD', '14 days'),
	('cpa-eur', 'cpa', 300, 'EUR', '0');
INSERT INTO attribution.offers (offer_id, payout_type, payout, active)
	VALUES ('off', 'cpa', 100, false);
-- another advertiser's offer of the same id pays nothing here
INSERT INTO attribution.offers (advertiser_id, offer_id, payout_type, payout, hold_period)
	VALUES ('lc-other', 'plain', 'cpa', 9999, '0');
-- payouts are checked
SELECT regress_error($$INSERT INTO attribution.offers (offer_id, payout_type, payout)
	VALUES ('too-much', 'revshare', 10001)$$);
SELECT regress_error($$INSERT INTO attribution.offers (offer_id, payout_type, payout)
	VALUES ('negative', 'cpa', -1)$$);
SELECT regress_error($$INSERT INTO attribution.offers (offer_id, payout_type, payout, currency)
	VALUES ('odd', 'cpa', 1, 'XXX')$$);

SELECT count(*) FROM (VALUES
	(attribution.track_click('aff-lc', click_id => 'd1000000-0000-4000-8000-000000000001', offer_id => 'cpa-now')),
	(attribution.track_click('aff-lc', click_id => 'd1000000-0000-4000-8000-000000000002', offer_id => 'rev-hold')),
	(attribution.track_click('aff-lc', click_id => 'd1000000-0000-4000-8000-000000000003', offer_id => 'cpa-eur')),
	(attribution.track_click('aff-lc', click_id => 'd1000000-0000-4000-8000-000000000004', offer_id => 'off')),
	(attribution.track_click('aff-lc', click_id => 'd1000000-0000-4000-8000-000000000005', offer_id => 'plain')),
	(attribution.track_click('aff-lc', click_id => 'd1000000-0000-4000-8000-000000000006'))) AS v(r);
SELECT count(*) FROM (VALUES
	(attribution.track_conversion('lc-1', 2000, click_id => 'd1000000-0000-4000-8000-000000000001')),
	(attribution.track_conversion('lc-2', 999, click_id => 'd1000000-0000-4000-8000-000000000002')),
	(attribution.track_conversion('lc-3', 2000, click_id => 'd1000000-0000-4000-8000-000000000003')),
	(attribution.track_conversion('lc-4', 2000, click_id => 'd1000000-0000-4000-8000-000000000004')),
	(attribution.track_conversion('lc-5', 2000, click_id => 'd1000000-0000-4000-8000-000000000005')),
	(attribution.track_conversion('lc-6', 2000, click_id => 'd1000000-0000-4000-8000-000000000006')),
	(attribution.track_conversion('lc-7', 2000, click_id => 'd1000000-0000-4000-8000-0000000000ff')),
	-- a writer's own status and commission are replaced
	(attribution.track_conversion('lc-8', 1000, click_id => 'd1000000-0000-4000-8000-000000000002'))) AS v(r);
INSERT INTO attribution.conversions (order_id, revenue_cents, click_id, status,
	commission_cents, commission_reversed_cents, refunded_cents, offer_id)
	VALUES ('lc-9', 1000, 'd1000000-0000-4000-8000-000000000006', 'approved', 1000000, 0, 0, 'cpa-now');

-- cpa pays its payout in its own currency only; revshare 12.5 % of 999 =
-- 124.875, rounded down; no, an inactive or another advertiser's offer:
-- NULL; no hold period: approved at once
SELECT order_id, offer_id, status, commission_cents, commission_reversed_cents,
	   refunded_cents, unattributed_reason
  FROM attribution.conversions WHERE order_id LIKE 'lc-%' ORDER BY order_id;
-- the receipt records them
SELECT aggregate_id, payload->>'status' AS status, payload->'commission_cents' AS commission,
	   payload->>'offer_id' AS offer_id
  FROM attribution.receipts WHERE aggregate_id IN ('lc-1', 'lc-2', 'lc-3') ORDER BY 1;

-- the state machine
SELECT sequence, payload FROM attribution.approve_conversion('lc-2', reason => 'checked');
SELECT regress_error($$SELECT attribution.approve_conversion('lc-2')$$);
SELECT regress_error($$SELECT attribution.reject_conversion('lc-2', 'default', 'too late')$$);
SELECT sequence, payload FROM attribution.reject_conversion('lc-4', 'default', 'fraud');
SELECT regress_error($$SELECT attribution.reverse_conversion('lc-4')$$);
SELECT regress_error($$SELECT attribution.refund_conversion('lc-4', 'default', 1)$$);
SELECT regress_error($$SELECT attribution.approve_conversion('lc-4')$$);
SELECT sequence, payload FROM attribution.reverse_conversion('lc-1', reason => 'chargeback');
SELECT regress_error($$SELECT attribution.reverse_conversion('lc-1')$$);
SELECT regress_error($$SELECT attribution.reverse_conversion('lc-7', reason => 'not approved yet')$$);
SELECT regress_error($$SELECT attribution.approve_conversion('no-such-order')$$);
-- an advertiser sees only its own conversions
SELECT regress_error($$SELECT attribution.approve_conversion('lc-5', 'lc-other')$$);

-- refunds: partial, never beyond what is left, a full one reverses; the
-- commission still due is floor(124 * 699 / 999) = 86
SELECT regress_error($$SELECT attribution.refund_conversion('lc-2', 'default', 0)$$);
SELECT regress_error($$SELECT attribution.refund_conversion('lc-2', 'default', -5)$$);
SELECT regress_error($$SELECT attribution.refund_conversion('lc-2', 'default', 1000)$$);
SELECT sequence, payload FROM attribution.refund_conversion('lc-2', 'default', 300, 'one item returned');
SELECT regress_error($$SELECT attribution.refund_conversion('lc-2', 'default', 700)$$);
SELECT sequence, payload FROM attribution.refund_conversion('lc-2', 'default', 699);
SELECT regress_error($$SELECT attribution.refund_conversion('lc-2', 'default', 1)$$);
-- a pending one without commission; refunded in full it is reversed
SELECT sequence, payload FROM attribution.refund_conversion('lc-6', 'default', 2000);

-- idempotency by command_id: a retry returns the original receipt and
-- writes nothing; the same id for another command is refused
SELECT sequence, payload->>'command_id' AS command_id
  FROM attribution.approve_conversion('lc-5', command_id => 'c0de0000-0000-4000-8000-000000000001');
SELECT r1.receipt_id = r2.receipt_id AS same_receipt, r2.sequence
  FROM attribution.receipts r1,
	   attribution.approve_conversion('lc-5', command_id => 'c0de0000-0000-4000-8000-000000000001') r2
 WHERE r1.aggregate_id = 'lc-5' AND r1.sequence = 2;
SELECT count(*) AS receipts FROM attribution.receipts WHERE aggregate_id = 'lc-5';
SELECT regress_error($$SELECT attribution.refund_conversion('lc-5', 'default', 5,
	command_id => 'c0de0000-0000-4000-8000-000000000001')$$);
SELECT sequence, payload->>'amount_cents' AS amount
  FROM attribution.refund_conversion('lc-5', 'default', 5,
	command_id => 'c0de0000-0000-4000-8000-000000000002');
SELECT sequence, payload->>'amount_cents' AS amount
  FROM attribution.refund_conversion('lc-5', 'default', 5,
	command_id => 'c0de0000-0000-4000-8000-000000000002');
SELECT refunded_cents FROM attribution.conversions WHERE order_id = 'lc-5';

-- the command's trace context, like the other commands'
SELECT trace_id, span_id <> '00f067aa0ba902b7' AS new_span
  FROM attribution.approve_conversion('lc-8',
	traceparent => '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');

-- the chain is the history; the row is its fold
SELECT sequence, payload->>'event' AS event, payload->>'status' AS status,
	   payload->'refunded_cents' AS refunded, payload->'commission_reversed_cents' AS reversed,
	   payload->>'reason' AS reason
  FROM attribution.receipts WHERE aggregate_id = 'lc-2' ORDER BY sequence;
SELECT order_id, status, commission_cents, commission_reversed_cents, refunded_cents
  FROM attribution.conversions WHERE order_id LIKE 'lc-%' ORDER BY order_id;
SELECT ok, chains_failed, failed_check FROM attribution.verify_all();

-- nobody changes a conversion but the commands
SELECT regress_error($$UPDATE attribution.conversions SET status = 'approved' WHERE order_id = 'lc-3'$$);
-- a change with the triggers bypassed is what verify_all catches
ALTER TABLE attribution.conversions DISABLE TRIGGER conversions_follow_receipts;
UPDATE attribution.conversions SET commission_reversed_cents = 0 WHERE order_id = 'lc-2';
ALTER TABLE attribution.conversions ENABLE TRIGGER conversions_follow_receipts;
SELECT ok, chains_failed, failed_aggregate_id, failed_sequence, failed_check, detail
  FROM attribution.verify_all();
ALTER TABLE attribution.conversions DISABLE TRIGGER conversions_follow_receipts;
UPDATE attribution.conversions SET commission_reversed_cents = 124 WHERE order_id = 'lc-2';
ALTER TABLE attribution.conversions ENABLE TRIGGER conversions_follow_receipts;
SELECT ok FROM attribution.verify_all();

-- late clicks: a conversion naming a click not recorded yet is attributed
-- when the click arrives within fp_attribution.late_click_grace
SHOW fp_attribution.late_click_grace;
SELECT count(*) FROM attribution.track_conversion('lc-late-1', 3000,
	click_id => 'd2000000-0000-4000-8000-000000000001', converted_at => '2026-01-02 00:00:00+00');
SELECT count(*) FROM attribution.track_conversion('lc-late-2', 3000,
	click_id => 'd2000000-0000-4000-8000-000000000002', converted_at => '2026-01-02 00:00:00+00');
SELECT count(*) FROM attribution.track_conversion('lc-late-3', 3000,
	click_id => 'd2000000-0000-4000-8000-000000000003', converted_at => '2026-01-02 00:00:00+00');
SELECT count(*) FROM attribution.track_click('aff-late', click_id => 'd2000000-0000-4000-8000-000000000001',
	offer_id => 'cpa-now', clicked_at => '2026-01-01 00:00:00+00');
-- a click after the conversion does not claim it
SELECT count(*) FROM attribution.track_click('aff-late', click_id => 'd2000000-0000-4000-8000-000000000002',
	offer_id => 'cpa-now', clicked_at => '2026-01-03 00:00:00+00');
-- turned off, nothing is attributed late
SET fp_attribution.late_click_grace = 0;
SELECT count(*) FROM attribution.track_click('aff-late', click_id => 'd2000000-0000-4000-8000-000000000003',
	offer_id => 'cpa-now', clicked_at => '2026-01-01 00:00:00+00');
RESET fp_attribution.late_click_grace;
SELECT order_id, attributed, unattributed_reason, affiliate_id, latency, offer_id, status,
	   commission_cents
  FROM attribution.conversions WHERE order_id LIKE 'lc-late-%' ORDER BY order_id;
-- the attributed event, caused by the click's receipt
SELECT r.sequence, r.payload->>'event' AS event, r.payload->>'status' AS status,
	   r.causation_id = k.receipt_id AS caused_by_click, r.trace_id = k.trace_id AS click_trace
  FROM attribution.receipts r, attribution.receipts k
 WHERE r.aggregate_id = 'lc-late-1' AND k.aggregate_type = 'click'
   AND k.aggregate_id = 'd2000000-0000-4000-8000-000000000001'
 ORDER BY r.sequence;
SELECT ok FROM attribution.verify_all();
