-- api: the SQL contract of fp_attribution (names, signatures, errors)
\set ECHO none
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
\set ON_ERROR_STOP 1
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS fp_attribution;
BEGIN;
SELECT plan(42);

SELECT has_schema('attribution');
SELECT has_type('attribution', 'trace_id', 'type trace_id exists');
SELECT has_type('attribution', 'span_id', 'type span_id exists');
SELECT has_table('attribution', t, 'table ' || t || ' exists')
  FROM unnest(ARRAY['clicks', 'conversions', 'windows']) AS t;
SELECT has_view('attribution', 'telemetry_status', 'view telemetry_status exists');

SELECT has_function('attribution', 'track_click',
	ARRAY['text', 'uuid', 'inet', 'text', 'text', 'text', 'text', 'text', 'text',
		  'timestamp with time zone', 'text', 'text', 'text']);
SELECT has_function('attribution', 'track_conversion',
	ARRAY['text', 'bigint', 'text', 'uuid', 'text', 'timestamp with time zone', 'text', 'text', 'text']);
SELECT has_function('attribution', 'current_traceparent', ARRAY[]::text[]);
SELECT has_function('attribution', 'parse_traceparent', ARRAY['text']);

SELECT col_type_is('attribution', t, 'trace_id', 'attribution.trace_id', t || '.trace_id type')
  FROM unnest(ARRAY['clicks', 'conversions']) AS t;
SELECT col_type_is('attribution', t, 'span_id', 'attribution.span_id', t || '.span_id type')
  FROM unnest(ARRAY['clicks', 'conversions']) AS t;
SELECT col_not_null('attribution', t, c, t || '.' || c || ' is required')
  FROM unnest(ARRAY['clicks', 'conversions']) AS t,
	   unnest(ARRAY['trace_id', 'span_id']) AS c;
SELECT col_is_pk('attribution', 'clicks', ARRAY['advertiser_id', 'click_id'],
	'clicks are keyed by (advertiser_id, click_id)');
SELECT col_is_pk('attribution', 'conversions', ARRAY['advertiser_id', 'order_id'],
	'conversions are keyed by (advertiser_id, order_id)');
SELECT col_is_pk('attribution', 'windows', ARRAY['advertiser_id', 'affiliate_id'],
	'windows are keyed by (advertiser_id, affiliate_id)');
SELECT col_is_pk('attribution', 'receipts',
	ARRAY['advertiser_id', 'aggregate_type', 'aggregate_id', 'sequence'],
	'receipts are keyed by (advertiser_id, aggregate_type, aggregate_id, sequence)');
SELECT col_is_pk('attribution', 'receipt_streams',
	ARRAY['advertiser_id', 'aggregate_type', 'aggregate_id'],
	'chain heads are keyed by (advertiser_id, aggregate_type, aggregate_id)');

SELECT throws_ok($$SELECT attribution.track_click(NULL)$$, '22004', 'affiliate_id must not be null');
SELECT throws_ok($$SELECT attribution.track_click('')$$, '22023', 'affiliate_id must not be empty');
SELECT throws_ok($$SELECT attribution.track_click(repeat('x', 200))$$, '22001', 'affiliate_id is too long');
SELECT throws_ok($$SELECT attribution.track_click('a', advertiser_id => NULL)$$, '22004', 'advertiser_id must not be null');
SELECT throws_ok($$SELECT attribution.track_conversion('o', 1, advertiser_id => '')$$, '22023', 'advertiser_id must not be empty');
SELECT throws_ok($$SELECT attribution.track_click('a', advertiser_id => repeat('x', 129))$$, '22001', 'advertiser_id is too long');
SELECT throws_ok($$SELECT attribution.track_conversion('o', -1)$$, '22003', 'revenue_cents must not be negative');
SELECT throws_ok($$SELECT attribution.track_conversion('o', 1, 'ZZZ')$$, '22023', 'unknown currency code "ZZZ"');
SELECT throws_ok($$SELECT attribution.track_conversion('o', NULL)$$, '22004', 'revenue_cents must not be null');
SELECT throws_ok($$SELECT attribution.track_click('a', click_id => 'x')$$, '22P02');
SELECT throws_ok($$SELECT 'abc'::attribution.trace_id$$, '22P02');

SELECT lives_ok($$SELECT attribution.track_click('a', traceparent => 'garbage')$$,
	'an invalid traceparent is not an error');
SELECT is((SELECT count(*) FROM attribution.track_click('a', click_id => 'f0000000-0000-4000-8000-000000000001')), 1::bigint,
	'track_click returns one row');
SELECT is((SELECT count(*) FROM attribution.track_click('b', click_id => 'f0000000-0000-4000-8000-000000000001')), 1::bigint,
	'a retry returns one row too');
SELECT is((SELECT affiliate_id FROM attribution.clicks WHERE click_id = 'f0000000-0000-4000-8000-000000000001'), 'a',
	'the retry changed nothing');
SELECT lives_ok($$SELECT attribution.track_click('c', click_id => 'f0000000-0000-4000-8000-000000000001',
											   advertiser_id => 'other')$$,
	'the same click id under another advertiser is tracked');
SELECT is((SELECT array_agg(advertiser_id || ':' || affiliate_id ORDER BY advertiser_id)
			 FROM attribution.clicks WHERE click_id = 'f0000000-0000-4000-8000-000000000001'),
	ARRAY['default:a', 'other:c'],
	'the same click id under another advertiser is another click');
SELECT matches(attribution.current_traceparent(), '^00-[0-9a-f]{32}-[0-9a-f]{16}-0[23]$',
	'current_traceparent is a version-00 traceparent with the random-trace-id flag');

SELECT * FROM finish();
ROLLBACK;
