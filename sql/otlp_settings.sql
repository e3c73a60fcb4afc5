--
-- otlp_settings: the exporter's settings (defaults with no OTEL_*
-- variables set, check hooks, secrecy of endpoints and headers) and who
-- may read exporter_status
--
SELECT name, setting, unit, context, vartype
  FROM pg_settings WHERE name LIKE 'fp\_attribution.otlp\_%' ORDER BY name COLLATE "C";

-- reload-only: a session cannot change them
SELECT regress_error($$SET fp_attribution.otlp_endpoint = 'http://127.0.0.1:4318'$$);

-- check hooks run for ALTER SYSTEM, so a bad value never reaches the file
ALTER SYSTEM SET fp_attribution.otlp_endpoint = 'ftp://collector';
ALTER SYSTEM SET fp_attribution.otlp_traces_endpoint = 'collector:4318';
ALTER SYSTEM SET fp_attribution.otlp_headers = 'authorization';
ALTER SYSTEM SET fp_attribution.otlp_headers = '=token';
ALTER SYSTEM SET fp_attribution.otlp_headers = 'a=%zz';
ALTER SYSTEM SET fp_attribution.otlp_resource_attributes = 'team';
ALTER SYSTEM SET fp_attribution.otlp_protocol = 'http/xml';
ALTER SYSTEM SET fp_attribution.otlp_compression = 'zstd';
ALTER SYSTEM SET fp_attribution.otlp_timeout = 0;
ALTER SYSTEM SET fp_attribution.otlp_endpoint = 'http://collector:4318/a b';
ALTER SYSTEM SET fp_attribution.otlp_logs_endpoint = E'http://collector:4318/\r\nX: 1';
-- control characters in header names or values, raw or percent-encoded,
-- would end the header line and add others: refused
ALTER SYSTEM SET fp_attribution.otlp_headers = E'authorization=Bearer x\r\nX-Injected: 1';
ALTER SYSTEM SET fp_attribution.otlp_headers = 'authorization=Bearer%20x%0d%0aX-Injected:%201';
ALTER SYSTEM SET fp_attribution.otlp_headers = 'authorization=Bearer%20x%0A';
ALTER SYSTEM SET fp_attribution.otlp_headers = 'authorization=x%00y';
ALTER SYSTEM SET fp_attribution.otlp_headers = 'x-a%0D=1';
ALTER SYSTEM SET fp_attribution.otlp_headers = 'x-a=1%1F';
ALTER SYSTEM SET fp_attribution.otlp_headers = 'x-a=1%7f';
ALTER SYSTEM SET fp_attribution.otlp_headers = 'x-a=1%09';
-- a resource attribute may hold a tab, but not a NUL that would cut it
ALTER SYSTEM SET fp_attribution.otlp_resource_attributes = 'team=a%00b';
ALTER SYSTEM SET fp_attribution.otlp_resource_attributes = 'team=a%09b';
ALTER SYSTEM RESET fp_attribution.otlp_resource_attributes;
ALTER SYSTEM SET fp_attribution.otlp_headers = 'authorization=Bearer%20x, x-team = a%2Cb';
ALTER SYSTEM RESET fp_attribution.otlp_headers;
-- per-signal settings: the same checks; empty (0 for the timeout) means
-- the general setting, and the empty value is left out of the hint
ALTER SYSTEM SET fp_attribution.otlp_traces_headers = 'x-a=1%0d%0aX-Injected:%201';
ALTER SYSTEM SET fp_attribution.otlp_metrics_endpoint = 'collector:4318';
ALTER SYSTEM SET fp_attribution.otlp_metrics_protocol = 'http/xml';
ALTER SYSTEM SET fp_attribution.otlp_logs_compression = 'zstd';
ALTER SYSTEM SET fp_attribution.otlp_logs_timeout = -1;
ALTER SYSTEM SET fp_attribution.otlp_traces_protocol = 'grpc';
ALTER SYSTEM SET fp_attribution.otlp_traces_protocol = '';
ALTER SYSTEM SET fp_attribution.otlp_logs_timeout = 0;
ALTER SYSTEM SET fp_attribution.otlp_logs_headers = 'x-team=logs';
ALTER SYSTEM RESET fp_attribution.otlp_traces_protocol;
ALTER SYSTEM RESET fp_attribution.otlp_logs_timeout;
ALTER SYSTEM RESET fp_attribution.otlp_logs_headers;
SELECT name, enumvals FROM pg_settings
 WHERE name ~ '^fp_attribution\.otlp_(traces_)?(protocol|compression)$' ORDER BY name COLLATE "C";
SELECT pg_reload_conf();

-- endpoints and headers carry secrets (http://user:token@host/?key=...),
-- and the certificate and key paths say where others are: hidden from
-- ordinary roles, shown to pg_read_all_settings (so to pg_monitor,
-- PostgreSQL's rule for superuser-only settings)
CREATE ROLE regress_fp_attribution_otlp;
CREATE ROLE regress_fp_attribution_monitor IN ROLE pg_monitor;
GRANT USAGE ON SCHEMA attribution
	TO regress_fp_attribution_otlp, regress_fp_attribution_monitor;
SET ROLE regress_fp_attribution_otlp;
SELECT regress_error($$SHOW fp_attribution.otlp_headers$$);
SELECT regress_error($$SHOW fp_attribution.otlp_endpoint$$);
SELECT regress_error($$SHOW fp_attribution.otlp_traces_endpoint$$);
SELECT regress_error($$SELECT current_setting('fp_attribution.otlp_metrics_endpoint')$$);
SELECT regress_error($$SHOW fp_attribution.otlp_logs_headers$$);
SELECT regress_error($$SHOW fp_attribution.otlp_client_key$$);
SELECT regress_error($$SHOW fp_attribution.otlp_traces_certificate$$);
SELECT name AS visible_to_plain_role FROM pg_settings
 WHERE name ~ '^fp_attribution\.otlp_(.*endpoint|.*headers|.*certificate|.*client_key)$' ORDER BY name COLLATE "C";
-- nor may it read the exporter's status
SELECT regress_error($$SELECT count(*) FROM attribution.exporter_status$$);
SELECT regress_error($$SELECT count(*) FROM attribution.exporter_status_internal()$$);
RESET ROLE;
SET ROLE regress_fp_attribution_monitor;
SHOW fp_attribution.otlp_endpoint;
SELECT name AS visible_to_monitor FROM pg_settings
 WHERE name ~ '^fp_attribution\.otlp_(.*endpoint|.*headers|.*certificate|.*client_key)$' ORDER BY name COLLATE "C";
SELECT count(*) AS exporter_status_rows FROM attribution.exporter_status;
RESET ROLE;
REVOKE USAGE ON SCHEMA attribution
	FROM regress_fp_attribution_otlp, regress_fp_attribution_monitor;
DROP ROLE regress_fp_attribution_otlp, regress_fp_attribution_monitor;

-- one exporter_status row per signal
SELECT signal, sent >= 0 AND failed >= 0 AND retried >= 0 AND dropped >= 0
       AND rejected >= 0 AS ok
  FROM attribution.exporter_status ORDER BY signal COLLATE "C";

-- the worker runs, under its own backend type
SELECT count(*) AS exporters FROM pg_stat_activity
 WHERE backend_type = 'fp_attribution exporter';
