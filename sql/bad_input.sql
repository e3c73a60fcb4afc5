--
-- bad_input: every kind of bad input gets its own SQLSTATE and message,
-- and nothing is written
--
CREATE TEMP TABLE counts_before AS
	SELECT (SELECT count(*) FROM attribution.clicks) AS clicks,
		   (SELECT count(*) FROM attribution.conversions) AS conversions;

-- clicks
SELECT regress_error($$SELECT attribution.track_click(NULL)$$);
SELECT regress_error($$SELECT attribution.track_click('')$$);
SELECT regress_error($$SELECT attribution.track_click('   ')$$);
SELECT regress_error($$SELECT attribution.track_click(repeat('a', 129))$$);
SELECT regress_error($$SELECT attribution.track_click('aff', visitor_id => repeat('v', 129))$$);
SELECT regress_error($$SELECT attribution.track_click('aff', offer_id => repeat('o', 129))$$);
SELECT regress_error($$SELECT attribution.track_click('aff', campaign_id => repeat('c', 129))$$);
SELECT regress_error($$SELECT attribution.track_click('aff', user_agent => repeat('u', 1025))$$);
SELECT regress_error($$SELECT attribution.track_click('aff', referrer => repeat('r', 4097))$$);
SELECT regress_error($$SELECT attribution.track_click('aff', landing_url => repeat('l', 4097))$$);
SELECT regress_error($$SELECT attribution.track_click('aff', click_id => 'not-a-uuid')$$);
SELECT regress_error($$SELECT attribution.track_click('aff', ip => '300.1.1.1')$$);
SELECT regress_error($$INSERT INTO attribution.clicks (affiliate_id) VALUES (NULL)$$);
SELECT regress_error($$INSERT INTO attribution.clicks (affiliate_id, trace_id) VALUES ('a', '4bf92f3577b34da6a3ce929d0e0e4736')$$);
-- limits count characters, not bytes
BEGIN;
SELECT count(*) FROM attribution.track_click(repeat('é', 128), click_id => 'b0000000-0000-4000-8000-000000000001');
ROLLBACK;

-- conversions
SELECT regress_error($$SELECT attribution.track_conversion(NULL, 100)$$);
SELECT regress_error($$SELECT attribution.track_conversion('', 100)$$);
SELECT regress_error($$SELECT attribution.track_conversion(repeat('o', 129), 100)$$);
SELECT regress_error($$SELECT attribution.track_conversion('o-bad', NULL)$$);
SELECT regress_error($$SELECT attribution.track_conversion('o-bad', -1)$$);
SELECT regress_error($$SELECT attribution.track_conversion('o-bad', 100, 'XYZ')$$);
SELECT regress_error($$SELECT attribution.track_conversion('o-bad', 100, 'XAU')$$);
SELECT regress_error($$SELECT attribution.track_conversion('o-bad', 100, 'US')$$);
SELECT regress_error($$SELECT attribution.track_conversion('o-bad', 100, 'USDX')$$);
SELECT regress_error($$SELECT attribution.track_conversion('o-bad', 100, NULL)$$);
SELECT regress_error($$SELECT attribution.track_conversion('o-bad', 100, click_id => 'nope')$$);
SELECT regress_error($$SELECT attribution.track_conversion('o-bad', 100, visitor_id => repeat('v', 129))$$);
SELECT regress_error($$SELECT attribution.track_conversion('o-bad', '12.5')$$);
SELECT regress_error($$SELECT attribution.track_conversion('o-bad', '9223372036854775808')$$);

-- windows
SELECT regress_error($$INSERT INTO attribution.windows (affiliate_id, attribution_window) VALUES ('aff', '0 seconds')$$);
SELECT regress_error($$INSERT INTO attribution.windows (affiliate_id, attribution_window) VALUES ('aff', '-1 day')$$);

-- nothing was written by any of the above
SELECT (SELECT count(*) FROM attribution.clicks) = clicks AS clicks_unchanged,
	   (SELECT count(*) FROM attribution.conversions) = conversions AS conversions_unchanged
  FROM counts_before;
-- a failed command inside a transaction leaves nothing behind either
BEGIN;
SELECT count(*) FROM attribution.track_click('aff-rolled-back', click_id => 'b0000000-0000-4000-8000-000000000002');
SAVEPOINT s;
SELECT count(*) FROM attribution.track_conversion('o-bad', -5, click_id => 'b0000000-0000-4000-8000-000000000002');
ROLLBACK TO SAVEPOINT s;
ROLLBACK;
SELECT count(*) FROM attribution.clicks WHERE affiliate_id = 'aff-rolled-back';
