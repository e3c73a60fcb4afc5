-- lifecycle: the SQL contract of the conversion lifecycle (commands, state
-- machine, refunds, idempotency, fraud rules, automatic approval, reports)
\set ECHO none
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS fp_attribution;
RESET client_min_messages;
BEGIN;
SELECT plan(37);

-- the API
SELECT has_function('attribution', f, ARRAY['text', 'text', 'text', 'uuid', 'text', 'text'],
	f || '(order_id, advertiser_id, reason, command_id, traceparent, tracestate)')
  FROM unnest(ARRAY['approve_conversion', 'reject_conversion', 'reverse_conversion']) AS f;
SELECT has_function('attribution', 'refund_conversion',
	ARRAY['text', 'text', 'bigint', 'text', 'uuid', 'text', 'text'],
	'refund_conversion(order_id, advertiser_id, amount_cents, reason, command_id, traceparent, tracestate)');
SELECT function_returns('attribution', 'approve_conversion',
	ARRAY['text', 'text', 'text', 'uuid', 'text', 'text'], 'attribution.receipts',
	'a lifecycle command returns its receipt');
SELECT has_function('attribution', 'approve_due_conversions', ARRAY['integer']);
SELECT has_table('attribution', t, 'table ' || t || ' exists')
  FROM unnest(ARRAY['offers', 'affiliate_visitors']) AS t;
SELECT has_view('attribution', v, 'view ' || v || ' exists')
  FROM unnest(ARRAY['daily_report', 'daily_revenue', 'affiliate_balances']) AS v;
SELECT has_column('attribution', 'conversions', c, 'conversions.' || c)
  FROM unnest(ARRAY['status', 'commission_cents', 'refunded_cents',
					'commission_reversed_cents', 'review_reason']) AS c;

-- a conversion under an offer with a hold period
INSERT INTO attribution.offers (advertiser_id, offer_id, payout_type, payout, hold_period)
	VALUES ('tap', 'tap-offer', 'revshare', 1000, '30 days');
SELECT lives_ok($$SELECT attribution.track_click('tap-aff', advertiser_id => 'tap', offer_id => 'tap-offer',
	click_id => 'a0000000-0000-4000-8000-000000000001')$$, 'a click naming the offer');
SELECT lives_ok($$SELECT attribution.track_conversion('tap-1', 10000, advertiser_id => 'tap',
	click_id => 'a0000000-0000-4000-8000-000000000001')$$, 'its conversion');
SELECT results_eq($$SELECT status, commission_cents FROM attribution.conversions
	WHERE advertiser_id = 'tap' AND order_id = 'tap-1'$$,
	$$VALUES ('pending'::text, 1000::bigint)$$, 'pending, with 10 % commission');

-- the state machine
SELECT throws_ok($$SELECT attribution.reverse_conversion('tap-1', 'tap')$$, '55000', NULL,
	'a pending conversion cannot be reversed');
SELECT is((SELECT payload->>'status' FROM attribution.approve_conversion('tap-1', 'tap',
	command_id => 'a1000000-0000-4000-8000-000000000001')), 'approved', 'pending -> approved');
SELECT is((SELECT sequence FROM attribution.approve_conversion('tap-1', 'tap',
	command_id => 'a1000000-0000-4000-8000-000000000001')), 2::bigint,
	'a retry with the same command_id returns the original receipt');
SELECT throws_ok($$SELECT attribution.reject_conversion('tap-1', 'tap', 'x',
	command_id => 'a1000000-0000-4000-8000-000000000001')$$, '23505', NULL,
	'the same command_id with another command is refused');
SELECT throws_ok($$SELECT attribution.refund_conversion('tap-1', 'tap', 10001)$$, '22023', NULL,
	'a refund never exceeds what is left');
SELECT is((SELECT payload->>'commission_reversed_cents' FROM
	attribution.refund_conversion('tap-1', 'tap', 2500, 'partial')), '250',
	'a partial refund reverses the commission in proportion');
SELECT results_eq($$SELECT status, refunded_cents, commission_reversed_cents FROM attribution.conversions
	WHERE advertiser_id = 'tap' AND order_id = 'tap-1'$$,
	$$VALUES ('approved'::text, 2500::bigint, 250::bigint)$$, 'still approved, partly refunded');
SELECT results_eq($$SELECT due_cents, reversed_commission_cents FROM attribution.affiliate_balances
	WHERE advertiser_id = 'tap'$$, $$VALUES (750::numeric, 250::numeric)$$,
	'the balance owes the commission left');
SELECT is((SELECT payload->>'status' FROM attribution.refund_conversion('tap-1', 'tap', 7500)),
	'reversed', 'refunding the rest reverses');
SELECT throws_ok($$SELECT attribution.approve_conversion('tap-1', 'tap')$$, '55000', NULL,
	'reversed is final');
SELECT is((SELECT ok FROM attribution.verify_chain('conversion', 'tap-1', 'tap')), true,
	'the row is the fold of its chain');

-- a fraud rule holds a conversion, which automatic approval then skips
SELECT lives_ok($$SET LOCAL fp_attribution.fraud_min_click_age = '1h'$$, 'a minimum click age');
SELECT lives_ok($$SELECT attribution.track_click('tap-aff', advertiser_id => 'tap', offer_id => 'tap-offer',
	click_id => ('a0000000-0000-4000-8000-00000000000' || i)::uuid, clicked_at => now() - interval '40 days')
	FROM generate_series(2, 3) i$$, 'two clicks 40 days ago');
SELECT lives_ok($$SELECT attribution.track_conversion('tap-2', 500, advertiser_id => 'tap',
	click_id => 'a0000000-0000-4000-8000-000000000002',
	converted_at => now() - interval '40 days' + interval '1 minute')$$,
	'a conversion a minute after its click');
SELECT lives_ok($$SELECT attribution.track_conversion('tap-3', 500, advertiser_id => 'tap',
	click_id => 'a0000000-0000-4000-8000-000000000003',
	converted_at => now() - interval '40 days' + interval '2 hours')$$,
	'a conversion two hours after its click');
SELECT results_eq($$SELECT order_id, status, review_reason FROM attribution.conversions
	WHERE advertiser_id = 'tap' AND order_id IN ('tap-2', 'tap-3') ORDER BY 1$$,
	$$VALUES ('tap-2'::text, 'pending'::text, 'click_too_fast'::text), ('tap-3', 'pending', NULL)$$,
	'the first is held for review');
SELECT is(attribution.approve_due_conversions(), 1::bigint,
	'automatic approval approves the one past its hold period, not the held one');
SELECT results_eq($$SELECT order_id, status FROM attribution.conversions
	WHERE advertiser_id = 'tap' AND order_id IN ('tap-2', 'tap-3') ORDER BY 1$$,
	$$VALUES ('tap-2'::text, 'pending'::text), ('tap-3', 'approved')$$,
	'the held one stays pending');

SELECT * FROM finish();
ROLLBACK;
