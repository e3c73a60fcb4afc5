--
-- telemetry_outcomes: business metrics and command spans for the ways a
-- command ends that are easy to get wrong: revenue past 2^63 cents,
-- prepared transactions, and commands refused before they write a row
--
SELECT attribution.reset_telemetry();
-- (clicks and conversions are append-only: the reset bypasses the triggers)
SET session_replication_role = replica;
TRUNCATE attribution.clicks, attribution.conversions;
RESET session_replication_role;

-- affiliate.revenue.cents saturates at 2^63 - 1 instead of wrapping
-- negative: within one transaction and across transactions
BEGIN;
SELECT aggregate_id FROM attribution.track_conversion('o-big-1', 5000000000000000000, 'CHF');
SELECT aggregate_id FROM attribution.track_conversion('o-big-2', 5000000000000000000, 'CHF');
COMMIT;
SELECT aggregate_id FROM attribution.track_conversion('o-big-3', 5000000000000000000, 'CHF');
SELECT attributes, value FROM attribution.metrics
 WHERE name = 'affiliate.revenue.cents' AND attributes->>'currency' = 'CHF';

-- PREPARE TRANSACTION: spans and command metrics at once, business
-- metrics only when COMMIT PREPARED runs, here from another session
SELECT attribution.reset_telemetry();
BEGIN;
SELECT aggregate_id FROM attribution.track_click('p-aff', click_id => '00000000-0000-0000-0000-0000000000b1');
SELECT aggregate_id FROM attribution.track_conversion('p-order', 1234, 'USD',
	click_id => '00000000-0000-0000-0000-0000000000b1');
PREPARE TRANSACTION 'fp-telemetry-commit';
SELECT name, attributes, coalesce(value, count) AS value FROM attribution.metrics
 WHERE name IN ('affiliate.clicks.total', 'affiliate.clicks.by_id',
				'affiliate.conversions.total', 'affiliate.revenue.cents',
				'affiliate.conversion.latency', 'receipts.total')
   AND coalesce(value, count) <> 0
 ORDER BY name, attributes::text;
SELECT name, attributes->>'fp.command.outcome' AS outcome FROM attribution.spans
 WHERE kind = 'server' ORDER BY start_time_unix_nano;
\c
COMMIT PREPARED 'fp-telemetry-commit';
SELECT name, attributes, coalesce(value, count) AS value FROM attribution.metrics
 WHERE name IN ('affiliate.clicks.total', 'affiliate.clicks.by_id',
				'affiliate.conversions.total', 'affiliate.revenue.cents',
				'affiliate.conversion.latency', 'receipts.total')
   AND coalesce(value, count) <> 0
 ORDER BY name, attributes::text;
-- ROLLBACK PREPARED counts nothing; a second COMMIT PREPARED of a GID
-- that no longer exists fails and counts nothing either
BEGIN;
SELECT aggregate_id FROM attribution.track_click('p-aff-rolled-back', click_id => '00000000-0000-0000-0000-0000000000b2');
PREPARE TRANSACTION 'fp-telemetry-rollback';
ROLLBACK PREPARED 'fp-telemetry-rollback';
COMMIT PREPARED 'fp-telemetry-commit';
SELECT name, attributes, value FROM attribution.metrics
 WHERE name IN ('affiliate.clicks.total', 'affiliate.clicks.by_id', 'receipts.total')
   AND value <> 0
 ORDER BY name, attributes::text;

-- a command refused before it writes its row (permission denied, a
-- read-only transaction) is a failed command: ERROR span, failure log,
-- commands.errors.  The commands run as the extension's owner, so a role
-- is refused a direct INSERT, or EXECUTE of a command (no command starts:
-- not counted).
SELECT attribution.reset_telemetry();
CREATE ROLE regress_telemetry_reader;
GRANT USAGE ON SCHEMA attribution TO regress_telemetry_reader;
SET ROLE regress_telemetry_reader;
SELECT regress_error($$INSERT INTO attribution.clicks (affiliate_id) VALUES ('r-denied')$$);
SELECT regress_error($$SELECT attribution.track_click('r-denied')$$);
RESET ROLE;
SET default_transaction_read_only = on;
SELECT regress_error($$SELECT attribution.track_conversion('r-read-only', 100)$$);
-- a direct INSERT refused at executor start is one failed command too
SELECT regress_error($$INSERT INTO attribution.clicks (affiliate_id) VALUES ('r-direct')$$);
RESET default_transaction_read_only;
SELECT name, status_code, status_message, attributes->>'fp.command.outcome' AS outcome,
	   attributes->>'error.type' AS error_type, jsonb_array_length(events) AS events
  FROM attribution.spans WHERE kind = 'server' ORDER BY start_time_unix_nano;
SELECT event_name, body, attributes->>'fp.command.name' AS command
  FROM attribution.logs WHERE event_name = 'fp.command.failed' ORDER BY time_unix_nano;
SELECT name, attributes->>'fp.command.name' AS command, value FROM attribution.metrics
 WHERE name IN ('commands.total', 'commands.errors') ORDER BY name, command;
SELECT count(*) AS clicks FROM attribution.clicks WHERE affiliate_id LIKE 'r-%';
REVOKE USAGE ON SCHEMA attribution FROM regress_telemetry_reader;
DROP ROLE regress_telemetry_reader;
SELECT attribution.reset_telemetry();
