--
-- telemetry_metrics: the twelve metrics count committed work only; the
-- per-affiliate cap (fp_attribution.max_affiliate_series = 3 in the test
-- configuration) sends further affiliates to the overflow series
--
SELECT attribution.reset_telemetry();
SELECT attribution.reset_telemetry_status();
-- (clicks and conversions are append-only: the reset bypasses the triggers)
SET session_replication_role = replica;
TRUNCATE attribution.clicks, attribution.conversions;
RESET session_replication_role;

-- committed clicks from five affiliates (two beyond the cap)
SELECT count(*) FROM (
	SELECT attribution.track_click(a) FROM (VALUES ('m-a'), ('m-a'), ('m-b'), ('m-c'),
		('m-d'), ('m-e'), ('m-d')) v(a)) t;
SELECT count(*) FROM attribution.track_click('m-a',
	click_id => '00000000-0000-0000-0000-0000000000a1',
	clicked_at => pg_catalog.now() - interval '2 hours');
-- a retry is a command, not a click
SELECT count(*) FROM attribution.track_click('m-a',
	click_id => '00000000-0000-0000-0000-0000000000a1');
-- rolled back: not a click
BEGIN;
SELECT count(*) FROM attribution.track_click('m-rollback');
ROLLBACK;
-- conversions: one attributed after 2 hours, one not, one failing
SELECT aggregate_id AS order_id FROM attribution.track_conversion('m-order-1', 1999, 'USD',
	click_id => '00000000-0000-0000-0000-0000000000a1');
SELECT aggregate_id AS order_id FROM attribution.track_conversion('m-order-2', 500, 'EUR');
SELECT aggregate_id AS order_id FROM attribution.track_conversion('m-order-1', 1999, 'USD');
SELECT regress_error($$SELECT attribution.track_conversion('m-order-3', 100, 'ZZZ')$$);

SELECT name COLLATE "C", kind, unit, attributes::text COLLATE "C" AS attributes, value
  FROM attribution.metrics WHERE kind <> 'histogram'
 ORDER BY 1, 4;

SELECT name COLLATE "C", unit, attributes::text COLLATE "C" AS attributes, count,
	   array_length(bucket_bounds, 1) AS bounds, array_length(bucket_counts, 1) AS buckets,
	   (SELECT sum(c) FROM unnest(bucket_counts) c) = count AS buckets_add_up
  FROM attribution.metrics WHERE kind = 'histogram' ORDER BY 1, 3;

-- the conversion latency (2 hours) falls in the (1 h, 3 h] bucket; sum in seconds
SELECT bucket_bounds[7] AS above, bucket_bounds[8] AS upto, bucket_counts[8] AS n,
	   round(sum) AS seconds
  FROM attribution.metrics WHERE name = 'affiliate.conversion.latency';
SELECT bucket_bounds[1] AS first_bound, bucket_bounds[array_length(bucket_bounds, 1)] AS last_bound
  FROM attribution.metrics WHERE name = 'commands.latency'
   AND attributes ->> 'fp.command.name' = 'track_click';
SELECT bucket_bounds[array_length(bucket_bounds, 1)] / 86400 AS last_bound_days
  FROM attribution.metrics WHERE name = 'affiliate.conversion.latency';

-- every metric is there, with a start time
SELECT count(DISTINCT name) AS metrics, bool_and(start_time IS NOT NULL) AS start_times
  FROM attribution.metrics;

-- the buffers' view of the cap
SELECT affiliate_series_capacity, affiliate_series_used, affiliate_series_overflow
  FROM attribution.telemetry_status;

-- reset zeroes the metrics and forgets the series
SELECT attribution.reset_telemetry('metrics');
SELECT name COLLATE "C", value FROM attribution.metrics
 WHERE name IN ('affiliate.clicks.total', 'affiliate.clicks.by_id') ORDER BY 1;
