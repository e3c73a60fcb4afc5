--
-- server_log: PostgreSQL's own messages at or above
-- fp_attribution.server_log_min_level become log records (emit_log_hook),
-- with the trace and span id of the command that raised them
--
-- fp_attribution.server_log_min_level is a reload setting: a new session
-- (\c) starts after the postmaster has reloaded.
-- This session's server-log records
CREATE VIEW regress_server_log AS
	SELECT * FROM attribution.logs
	 WHERE attributes ->> 'db.system.name' = 'postgresql'
	   AND (attributes ->> 'process.pid')::int = pg_backend_pid();

-- A command that warns, or violates a constraint, in a trigger
CREATE TABLE regress_server_log_keys (k int PRIMARY KEY);
INSERT INTO regress_server_log_keys VALUES (1);
CREATE FUNCTION regress_server_log_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.affiliate_id = 'sl-warn' THEN
		RAISE WARNING 'suspicious click from %', NEW.affiliate_id;
	ELSIF NEW.affiliate_id = 'sl-dup' THEN
		INSERT INTO public.regress_server_log_keys VALUES (1);
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER regress_server_log BEFORE INSERT ON attribution.clicks
	FOR EACH ROW EXECUTE FUNCTION regress_server_log_trigger();

-- off by default: nothing is recorded
SHOW fp_attribution.server_log_min_level;
SELECT attribution.reset_telemetry('logs');
DO $$ BEGIN RAISE WARNING 'not recorded'; END $$;
SELECT count(*) FROM regress_server_log;

-- at warning: a warning and a constraint violation inside commands, with
-- the level, SQLSTATE, database, user and the command's ids
ALTER SYSTEM SET fp_attribution.server_log_min_level = warning;
SELECT pg_reload_conf();
\c
SHOW fp_attribution.server_log_min_level;
\set VERBOSITY terse
SELECT count(*) FROM attribution.track_click('sl-warn',
	click_id => '00000000-0000-0000-0000-00000000e001',
	traceparent => '00-5af7651916cd43dd8448eb211c80319c-b7ad6b7169203332-01');
SELECT count(*) FROM attribution.track_click('sl-dup',
	traceparent => '00-6af7651916cd43dd8448eb211c80319c-b7ad6b7169203333-01');
DO $$ BEGIN RAISE NOTICE 'below the minimum level'; END $$;
SELECT severity_text, severity_number, body,
	   attributes ->> 'db.response.status_code' AS sqlstate,
	   attributes ->> 'db.namespace' = current_database() AS db,
	   attributes ->> 'user.name' = current_user AS usr,
	   trace_id
  FROM regress_server_log ORDER BY time_unix_nano;

-- the attributes of a record
SELECT DISTINCT ARRAY(SELECT jsonb_object_keys(attributes) ORDER BY 1) AS keys
  FROM regress_server_log;

-- the warning carries the span id stored in the click's row
SELECT l.span_id = c.span_id AS command_span
  FROM regress_server_log l
  JOIN attribution.clicks c ON c.trace_id = l.trace_id
 WHERE c.click_id = '00000000-0000-0000-0000-00000000e001';

-- the violation carries the failed command's span id, as its own
-- "command failed" record does
SELECT l.span_id = f.span_id AS command_span
  FROM regress_server_log l
  JOIN attribution.logs f ON f.trace_id = l.trace_id
 WHERE l.severity_text = 'ERROR' AND f.event_name = 'fp.command.failed';

-- outside a command: no trace context; telemetry off: nothing recorded
SELECT attribution.reset_telemetry('logs');
DO $$ BEGIN RAISE WARNING 'outside a command'; END $$;
SET fp_attribution.telemetry = off;
DO $$ BEGIN RAISE WARNING 'telemetry off'; END $$;
RESET fp_attribution.telemetry;
SELECT severity_text, body, trace_id IS NULL AS no_trace, span_id IS NULL AS no_span
  FROM regress_server_log;

-- at error: warnings are left out; at notice: notices are in, infos not
ALTER SYSTEM SET fp_attribution.server_log_min_level = error;
SELECT pg_reload_conf();
\c
\set VERBOSITY terse
SELECT attribution.reset_telemetry('logs');
DO $$ BEGIN RAISE WARNING 'below error'; END $$;
SELECT 1 / 0;
SELECT severity_text, body, attributes ->> 'db.response.status_code' AS sqlstate
  FROM regress_server_log;
ALTER SYSTEM SET fp_attribution.server_log_min_level = notice;
SELECT pg_reload_conf();
\c
\set VERBOSITY terse
DO $$ BEGIN RAISE NOTICE 'not in the server log'; END $$;
-- the hook sees only what log_min_messages sends to the server log
SET log_min_messages = notice;
DO $$ BEGIN RAISE NOTICE 'a notice'; END $$;
DO $$ BEGIN RAISE INFO 'an info, below notice'; END $$;
RESET log_min_messages;
SELECT severity_text, severity_number, body,
	   attributes ->> 'db.response.status_code' AS sqlstate
  FROM regress_server_log ORDER BY time_unix_nano;

-- the JSON lines of fp_attribution.log_json are log records already: not
-- recorded again, even at log
ALTER SYSTEM SET fp_attribution.server_log_min_level = log;
SELECT pg_reload_conf();
\c
SELECT attribution.reset_telemetry('logs');
SET fp_attribution.log_json = on;
SELECT count(*) FROM attribution.track_click('sl-json');
RESET fp_attribution.log_json;
SELECT count(*) AS json_lines FROM regress_server_log WHERE body LIKE '{%';

-- background processes are recorded (the checkpointer, with no database
-- or user); the postmaster, which logs a setting changed by a reload, is not
ALTER SYSTEM SET fp_attribution.otlp_timeout = 9999;
SELECT pg_reload_conf();
\c
CHECKPOINT;
SELECT DISTINCT severity_text, attributes ->> 'db.response.status_code' AS sqlstate,
	   attributes ? 'db.namespace' AS has_db, attributes ? 'user.name' AS has_user
  FROM attribution.logs
 WHERE attributes ->> 'db.system.name' = 'postgresql'
   AND body LIKE 'checkpoint complete%';
SELECT count(*) AS postmaster_lines FROM attribution.logs
 WHERE attributes ->> 'db.system.name' = 'postgresql'
   AND body LIKE 'parameter "fp\_attribution.otlp\_timeout" changed%';
ALTER SYSTEM RESET fp_attribution.otlp_timeout;

-- a full ring overwrites the oldest records and counts them as dropped;
-- the statement that logs goes on (no exporter copies them meanwhile)
ALTER SYSTEM SET fp_attribution.server_log_min_level = warning;
ALTER SYSTEM SET fp_attribution.otlp_enabled = off;
SELECT pg_reload_conf();
\c
SELECT attribution.reset_telemetry('logs');
SET client_min_messages = error;
DO $$
BEGIN
	FOR i IN 1 .. (SELECT logs_capacity + 10 FROM attribution.telemetry_status) LOOP
		RAISE WARNING 'line %', i;
	END LOOP;
END
$$;
RESET client_min_messages;
-- (another process may log a warning meanwhile: at least ten overwritten)
SELECT logs_used = logs_capacity AS full, logs_written - logs_capacity >= 10 AS overwritten,
	   logs_dropped = logs_written - logs_capacity AS dropped_counted
  FROM attribution.telemetry_status;
-- the oldest lines are gone, the newest kept
SELECT count(*) FILTER (WHERE body IN ('line 1', 'line 10')) AS oldest_left,
	   (array_agg(body ORDER BY time_unix_nano DESC))[1] =
	   'line ' || (SELECT logs_capacity + 10 FROM attribution.telemetry_status) AS newest_kept
  FROM regress_server_log;

-- clean up
ALTER SYSTEM RESET fp_attribution.server_log_min_level;
ALTER SYSTEM RESET fp_attribution.otlp_enabled;
SELECT pg_reload_conf();
SET session_replication_role = replica;
DELETE FROM attribution.clicks WHERE affiliate_id LIKE 'sl-%';
RESET session_replication_role;
DROP TRIGGER regress_server_log ON attribution.clicks;
DROP FUNCTION regress_server_log_trigger();
DROP TABLE regress_server_log_keys;
DROP VIEW regress_server_log;
SELECT attribution.reset_telemetry();
