--
-- telemetry_logs: structured log records with trace context; no raw IP
-- unless fp_attribution.log_client_ip allows it; JSON lines to the server log
--
SELECT attribution.reset_telemetry('logs');

SELECT aggregate_id AS click_id FROM attribution.track_click('log-aff',
	click_id => '00000000-0000-0000-0000-00000000d001', ip => '192.0.2.7',
	traceparent => '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
SELECT aggregate_id AS order_id FROM attribution.track_conversion('log-order-1', 300, 'USD',
	click_id => '00000000-0000-0000-0000-00000000d002');
SELECT regress_error($$SELECT attribution.track_click(repeat('x', 200))$$);

SELECT event_name COLLATE "C", severity_text, severity_number, body,
	   attributes - 'fp.command.duration' - 'fp.conversion.id' - 'fp.receipt.id' AS attributes
  FROM attribution.logs ORDER BY time_unix_nano, event_name COLLATE "C";

-- every record of a command carries the command's trace and span id
SELECT l.event_name COLLATE "C", l.trace_id = c.trace_id AS same_trace,
	   l.span_id = c.span_id AS command_span
  FROM attribution.logs l JOIN attribution.clicks c
	ON c.click_id = '00000000-0000-0000-0000-00000000d001'
   AND l.trace_id = c.trace_id
 ORDER BY 1;

-- the exception of a failed command is also a log record on the command's
-- span, with the time and attributes of the span's exception event
SELECT l.severity_number, l.time_unix_nano = (e ->> 'time_unix_nano')::bigint AS same_time,
	   l.attributes = e -> 'attributes' AS same_attributes
  FROM attribution.logs l
  JOIN attribution.spans s USING (trace_id, span_id),
	   jsonb_array_elements(s.events) AS e
 WHERE l.event_name = 'exception' AND e ->> 'name' = 'exception';

-- no raw IP anywhere unless allowed
SELECT count(*) AS records_with_ip FROM attribution.logs
 WHERE attributes::text LIKE '%192.0.2.7%';
SELECT attribution.reset_telemetry('logs');
SET fp_attribution.log_client_ip = on;
SELECT count(*) FROM attribution.track_click('log-aff', ip => '192.0.2.8');
RESET fp_attribution.log_client_ip;
SELECT attributes ->> 'client.address' AS client_address FROM attribution.logs
 WHERE event_name = 'fp.click.tracked';

-- a rolled-back click logs the failure, not "click tracked"
SELECT attribution.reset_telemetry('logs');
BEGIN;
SELECT count(*) FROM attribution.track_click('log-rollback');
ROLLBACK;
SELECT event_name COLLATE "C", severity_text, body FROM attribution.logs ORDER BY time_unix_nano, 1;

-- the buffers
SELECT spans_capacity, logs_capacity, spans_used <= spans_capacity AS spans_ok,
	   logs_used = logs_written AS logs_kept, logs_dropped
  FROM attribution.telemetry_status;

-- who may read: superusers and pg_read_all_stats; nobody else, not even
-- through the functions behind the views
CREATE ROLE regress_fp_attribution_reader;
GRANT USAGE ON SCHEMA attribution TO regress_fp_attribution_reader;
SET ROLE regress_fp_attribution_reader;
SELECT regress_error($$SELECT count(*) FROM attribution.logs$$);
SELECT regress_error($$SELECT count(*) FROM attribution.spans$$);
SELECT regress_error($$SELECT count(*) FROM attribution.metrics$$);
SELECT regress_error($$SELECT count(*) FROM attribution.telemetry_status$$);
SELECT regress_error($$SELECT count(*) FROM attribution.logs_internal()$$);
SELECT regress_error($$SELECT count(*) FROM attribution.spans_internal()$$);
SELECT regress_error($$SELECT count(*) FROM attribution.metrics_internal()$$);
SELECT regress_error($$SELECT count(*) FROM attribution.telemetry_buffers_internal()$$);
SELECT regress_error($$SELECT count(*) FROM attribution.telemetry_status_internal()$$);
SELECT regress_error($$SELECT attribution.windows_active()$$);
RESET ROLE;
GRANT pg_read_all_stats TO regress_fp_attribution_reader;
SET ROLE regress_fp_attribution_reader;
SELECT count(*) > 0 AS reads_logs FROM attribution.logs;
SELECT count(*) >= 0 AS reads_spans FROM attribution.spans;
SELECT count(*) > 0 AS reads_metrics FROM attribution.metrics;
SELECT logs_capacity > 0 AS reads_status FROM attribution.telemetry_status;
RESET ROLE;
SELECT has_function_privilege('regress_fp_attribution_reader',
	'attribution.telemetry_row_written()', 'EXECUTE') AS may_attach_row_trigger;
DROP OWNED BY regress_fp_attribution_reader;
DROP ROLE regress_fp_attribution_reader;

-- the row trigger needs its argument, the kind of table (it never looks at
-- the table's name), and refuses a column of another type than it reads
CREATE TABLE regress_fake_clicks (trace_id int, span_id int, affiliate_id text);
CREATE TRIGGER fake AFTER INSERT ON regress_fake_clicks
	FOR EACH ROW EXECUTE FUNCTION attribution.telemetry_row_written();
SELECT regress_error($$INSERT INTO regress_fake_clicks VALUES (1, 2, 'forged')$$);
DROP TRIGGER fake ON regress_fake_clicks;
CREATE TRIGGER fake AFTER INSERT ON regress_fake_clicks
	FOR EACH ROW EXECUTE FUNCTION attribution.telemetry_row_written('clicks');
SELECT regress_error($$INSERT INTO regress_fake_clicks VALUES (1, 2, 'forged')$$);
BEGIN;
CREATE TRIGGER fake AFTER INSERT ON attribution.windows
	FOR EACH ROW EXECUTE FUNCTION attribution.telemetry_row_written();
SELECT regress_error($$INSERT INTO attribution.windows (affiliate_id, attribution_window) VALUES ('forged', '1 day')$$);
ROLLBACK;
DROP TABLE regress_fake_clicks;
SELECT count(*) AS forged FROM attribution.logs WHERE body LIKE '%forged%';
