--
-- clicks: track_click, direct INSERT through the trigger, idempotency,
-- attribution windows, trace context on the row
--

-- a click with every field, continuing the caller's trace
SELECT count(*) FROM attribution.track_click(
	affiliate_id => 'aff-1',
	click_id => 'a0000000-0000-4000-8000-000000000001',
	ip => '203.0.113.7',
	user_agent => 'Mozilla/5.0',
	referrer => 'https://blog.example/post',
	landing_url => 'https://shop.example/?aff=aff-1',
	visitor_id => 'visitor-1',
	offer_id => 'offer-9',
	campaign_id => 'spring',
	clicked_at => '2026-01-10 12:00:00+00',
	traceparent => '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
	tracestate => 'congo=t61rcWkgMzE');
SELECT click_id, affiliate_id, offer_id, campaign_id, visitor_id, ip, user_agent,
	   referrer, landing_url, clicked_at, window_ends_at - clicked_at AS window,
	   trace_id, parent_span_id, span_id <> parent_span_id AS own_span, sampled,
	   tracestate
  FROM attribution.clicks WHERE click_id = 'a0000000-0000-4000-8000-000000000001';

-- the same click_id again returns the original and writes nothing
SELECT aggregate_id AS cid
  FROM attribution.track_click('aff-OTHER', click_id => 'a0000000-0000-4000-8000-000000000001',
							   visitor_id => 'visitor-OTHER') \gset
SELECT affiliate_id, visitor_id, trace_id FROM attribution.clicks WHERE click_id = :'cid';
SELECT count(*) FROM attribution.clicks WHERE click_id = 'a0000000-0000-4000-8000-000000000001';

-- click_id and clicked_at are generated when absent; a new root trace
BEGIN;
SELECT aggregate_id AS cid FROM attribution.track_click('aff-2') \gset
SELECT click_id IS NOT NULL AS has_id, clicked_at = now() AS now,
	   parent_span_id IS NULL AS root, sampled
  FROM attribution.clicks WHERE click_id = :'cid';
COMMIT;

-- per-affiliate window override, read when the click is recorded
INSERT INTO attribution.windows (affiliate_id, attribution_window) VALUES ('aff-7d', '7 days');
SELECT aggregate_id AS cid
  FROM attribution.track_click('aff-7d', clicked_at => '2026-01-01 00:00:00+00') \gset
SELECT window_ends_at - clicked_at AS window FROM attribution.clicks WHERE click_id = :'cid';
-- the default comes from fp_attribution.attribution_window
SET fp_attribution.attribution_window = '1h';
SELECT aggregate_id AS cid
  FROM attribution.track_click('aff-3', clicked_at => '2026-01-01 00:00:00+00') \gset
SELECT window_ends_at - clicked_at AS window FROM attribution.clicks WHERE click_id = :'cid';
RESET fp_attribution.attribution_window;

-- direct INSERT goes through the same trigger: defaults, window, context
INSERT INTO attribution.clicks (click_id, affiliate_id, visitor_id, clicked_at)
VALUES ('a0000000-0000-4000-8000-000000000002', 'aff-1', 'visitor-2', '2026-01-10 12:00:00+00');
SELECT affiliate_id, window_ends_at - clicked_at AS window, trace_id IS NOT NULL AS traced,
	   span_id IS NOT NULL AS has_span
  FROM attribution.clicks WHERE click_id = 'a0000000-0000-4000-8000-000000000002';
-- ... taking its context from SET LOCAL
BEGIN;
SET LOCAL fp_attribution.traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
INSERT INTO attribution.clicks (click_id, affiliate_id)
VALUES ('a0000000-0000-4000-8000-000000000003', 'aff-1');
COMMIT;
SELECT trace_id, parent_span_id FROM attribution.clicks
 WHERE click_id = 'a0000000-0000-4000-8000-000000000003';
-- ... or from a SQLCommenter comment
INSERT INTO attribution.clicks (click_id, affiliate_id)
VALUES ('a0000000-0000-4000-8000-000000000004', 'aff-1') /*traceparent='00-11111111111111111111111111111111-2222222222222222-01'*/;
SELECT trace_id, parent_span_id FROM attribution.clicks
 WHERE click_id = 'a0000000-0000-4000-8000-000000000004';
-- ... or keeping ids the writer supplied
INSERT INTO attribution.clicks (click_id, affiliate_id, trace_id, span_id)
VALUES ('a0000000-0000-4000-8000-000000000005', 'aff-1',
		'33333333333333333333333333333333', '4444444444444444');
SELECT trace_id, span_id FROM attribution.clicks
 WHERE click_id = 'a0000000-0000-4000-8000-000000000005';

-- rows are found by the hex a tracing UI shows, through the index
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT click_id FROM attribution.clicks
 WHERE trace_id = '4bf92f3577b34da6a3ce929d0e0e4736';
RESET enable_seqscan;
SELECT click_id FROM attribution.clicks WHERE trace_id = '4bf92f3577b34da6a3ce929d0e0e4736';
