--
-- not_preloaded: without shared_preload_libraries the extension installs and
-- its commands work; what needs shared memory raises a clear error
--
SHOW shared_preload_libraries;
CREATE EXTENSION fp_attribution;
SELECT payload->>'affiliate_id' AS affiliate_id, trace_id IS NOT NULL AS traced
  FROM attribution.track_click('aff-1', traceparent => 'not valid either');
SELECT payload->'attributed' AS attributed FROM attribution.track_conversion('order-1', 100);
-- receipts and their verification need no shared memory (only the counters do)
SELECT ok, receipts_checked FROM attribution.verify_all();
\set VERBOSITY default
SELECT * FROM attribution.telemetry_status;
SELECT attribution.reset_telemetry_status();
\set VERBOSITY terse
-- settings are still defined and the prefix reserved
SHOW fp_attribution.attribution_window;
SET fp_attribution.no_such_setting = 1;
DROP EXTENSION fp_attribution;
