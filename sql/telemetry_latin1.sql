--
-- telemetry_latin1: telemetry records hold UTF-8 whatever the encoding of
-- the database they come from (OTLP and JSON require it); the views show
-- them in the reader's database encoding, '?' for what it lacks
--
SELECT attribution.reset_telemetry();
\set regress_db :DBNAME
CREATE DATABASE regress_telemetry_latin1 ENCODING 'LATIN1' LC_COLLATE 'C'
	LC_CTYPE 'C' TEMPLATE template0;
CREATE DATABASE regress_telemetry_utf8 ENCODING 'UTF8' LC_COLLATE 'C'
	LC_CTYPE 'C' TEMPLATE template0;

\c regress_telemetry_utf8
SET client_encoding = 'UTF8';
CREATE EXTENSION fp_attribution;
SELECT aggregate_id IS NOT NULL AS tracked FROM attribution.track_click('日本-utf8');

\c regress_telemetry_latin1
SET client_encoding = 'UTF8';
SELECT pg_encoding_to_char(encoding) AS encoding FROM pg_database WHERE datname = current_database();
CREATE EXTENSION fp_attribution;
SELECT aggregate_id IS NOT NULL AS tracked FROM attribution.track_click('café-latin1');
-- an error message with a LATIN1 character
DO $$
BEGIN
	PERFORM attribution.track_conversion('order-é', 100, 'É');
EXCEPTION WHEN OTHERS THEN
	RAISE NOTICE 'refused: %', SQLSTATE;
END
$$;
-- read here: converted to LATIN1; '日本' has no LATIN1 form
SELECT name, attributes->>'fp.affiliate.id' AS affiliate, status_message
  FROM attribution.spans WHERE kind = 'server' ORDER BY start_time_unix_nano;
SELECT event_name, body FROM attribution.logs
 WHERE event_name IN ('fp.click.tracked', 'fp.command.failed') ORDER BY time_unix_nano;

\c regress_telemetry_utf8
SET client_encoding = 'UTF8';
-- read in a UTF-8 database: the records' own bytes, valid UTF-8
SELECT attributes->>'fp.affiliate.id' AS affiliate,
	   convert_to(attributes->>'fp.affiliate.id', 'UTF8') AS utf8_bytes,
	   attributes->>'db.namespace' AS database, status_message
  FROM attribution.spans WHERE kind = 'server' ORDER BY start_time_unix_nano;
SELECT body FROM attribution.logs WHERE event_name = 'fp.command.failed';
SELECT name, attributes FROM attribution.metrics
 WHERE name = 'affiliate.clicks.by_id' ORDER BY attributes::text;

\c :regress_db
DROP DATABASE regress_telemetry_latin1;
DROP DATABASE regress_telemetry_utf8;
SELECT attribution.reset_telemetry();
