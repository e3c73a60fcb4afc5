--
-- conversions: last-click attribution by click_id or visitor, windows,
-- unattributed reasons, latency, idempotency by order_id
--
INSERT INTO attribution.windows (affiliate_id, attribution_window) VALUES ('aff-short', '1 day');
SELECT count(*) FROM attribution.track_click('aff-a', click_id => 'c0000000-0000-4000-8000-00000000000a',
	visitor_id => 'vis-1', clicked_at => '2026-02-01 10:00:00+00');
SELECT count(*) FROM attribution.track_click('aff-b', click_id => 'c0000000-0000-4000-8000-00000000000b',
	visitor_id => 'vis-1', clicked_at => '2026-02-03 10:00:00+00');
SELECT count(*) FROM attribution.track_click('aff-short', click_id => 'c0000000-0000-4000-8000-00000000000c',
	visitor_id => 'vis-2', clicked_at => '2026-02-01 10:00:00+00');

-- by visitor: the latest click before the conversion wins
SELECT count(*) FROM attribution.track_conversion('order-1', 2599, 'EUR', visitor_id => 'vis-1',
	converted_at => '2026-02-05 10:00:00+00');
-- by visitor, converted between the two clicks: the earlier click wins
SELECT count(*) FROM attribution.track_conversion('order-2', 100, visitor_id => 'vis-1',
	converted_at => '2026-02-02 10:00:00+00');
-- by click_id, even though a later click of the visitor exists
SELECT count(*) FROM attribution.track_conversion('order-3', 0, 'usd',
	click_id => 'c0000000-0000-4000-8000-00000000000a', converted_at => '2026-02-05 10:00:00+00');
-- the latest click has expired but an older one with a longer window has not
SELECT count(*) FROM attribution.track_click('aff-short', click_id => 'c0000000-0000-4000-8000-00000000000d',
	visitor_id => 'vis-1', clicked_at => '2026-02-04 10:00:00+00');
SELECT count(*) FROM attribution.track_conversion('order-4', 500, visitor_id => 'vis-1',
	converted_at => '2026-02-06 10:00:00+00');
-- unattributed: window expired (by click_id and by visitor)
SELECT count(*) FROM attribution.track_conversion('order-5', 500,
	click_id => 'c0000000-0000-4000-8000-00000000000c', converted_at => '2026-02-02 10:00:01+00');
SELECT count(*) FROM attribution.track_conversion('order-6', 500, visitor_id => 'vis-2',
	converted_at => '2026-02-02 10:00:00+00');
-- unattributed: unknown click, click after the conversion, no clicks, no reference
SELECT count(*) FROM attribution.track_conversion('order-7', 500,
	click_id => 'c0000000-0000-4000-8000-0000000000ff');
SELECT count(*) FROM attribution.track_conversion('order-8', 500,
	click_id => 'c0000000-0000-4000-8000-00000000000b', converted_at => '2026-02-03 09:59:59+00');
SELECT count(*) FROM attribution.track_conversion('order-9', 500, visitor_id => 'vis-nobody');
SELECT count(*) FROM attribution.track_conversion('order-10', 500);
-- exactly at the window end is outside the window
SELECT count(*) FROM attribution.track_conversion('order-11', 500,
	click_id => 'c0000000-0000-4000-8000-00000000000c', converted_at => '2026-02-02 10:00:00+00');

SELECT order_id, revenue_cents, currency, click_id, affiliate_id, attributed,
	   unattributed_reason, latency
  FROM attribution.conversions ORDER BY order_id COLLATE "C";

-- the same order again returns the original conversion and changes nothing
SELECT count(*) FROM attribution.track_conversion('order-1', 999999, 'JPY', visitor_id => 'vis-2');
SELECT revenue_cents, currency, affiliate_id FROM attribution.conversions WHERE order_id = 'order-1';
SELECT count(*), sum(revenue_cents) FROM attribution.conversions WHERE order_id = 'order-1';

-- every conversion carries its own span in its caller's trace
SELECT count(*) FROM attribution.track_conversion('order-12', 1, traceparent =>
	'00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
SELECT trace_id, parent_span_id, span_id <> parent_span_id AS own_span
  FROM attribution.conversions WHERE order_id = 'order-12';

-- a direct INSERT is attributed by the trigger; supplied attribution is ignored
INSERT INTO attribution.conversions (order_id, revenue_cents, visitor_id, converted_at,
	attributed, affiliate_id)
VALUES ('order-13', 700, 'vis-1', '2026-02-05 10:00:00+00', false, 'aff-forged');
SELECT attributed, affiliate_id, click_id, latency FROM attribution.conversions
 WHERE order_id = 'order-13';
-- a duplicate order through INSERT is a unique violation, as for any key
SELECT regress_error($$INSERT INTO attribution.conversions (order_id, revenue_cents) VALUES ('order-13', 1)$$);

-- affiliate.windows.active counts open windows without an attributed
-- conversion: of four new clicks, w1 has two attributed orders (counted
-- out once), w2 none, w3 only a conversion from before it (unattributed),
-- w4's window closed long ago
SELECT attribution.windows_active() AS active_before \gset
SELECT count(*) FROM generate_series(1, 3) n,
	attribution.track_click('aff-w', click_id => ('f1000000-0000-4000-8000-00000000000' || n)::uuid);
SELECT count(*) FROM attribution.track_click('aff-w', click_id => 'f1000000-0000-4000-8000-000000000004',
	clicked_at => pg_catalog.now() - interval '400 days');
SELECT count(*) FROM attribution.track_conversion('order-w1a', 1, click_id => 'f1000000-0000-4000-8000-000000000001');
SELECT count(*) FROM attribution.track_conversion('order-w1b', 1, click_id => 'f1000000-0000-4000-8000-000000000001');
SELECT count(*) FROM attribution.track_conversion('order-w3', 1, click_id => 'f1000000-0000-4000-8000-000000000003',
	converted_at => pg_catalog.now() - interval '1 day');
SELECT order_id, attributed, unattributed_reason FROM attribution.conversions
 WHERE order_id LIKE 'order-w%' ORDER BY order_id COLLATE "C";
SELECT attribution.windows_active() - :active_before AS active_added,
	   attribution.windows_active() = (SELECT count(*) FROM attribution.clicks c
		WHERE c.window_ends_at > pg_catalog.now()
		  AND c.click_id NOT IN (SELECT click_id FROM attribution.conversions
								  WHERE attributed)) AS as_defined;
