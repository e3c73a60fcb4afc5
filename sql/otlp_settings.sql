--
-- otlp_settings: the exporter's settings (defaults with no OTEL_*
-- variables set, check hooks, secrecy of headers) and exporter_status
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
ALTER SYSTEM SET fp_attribution.otlp_headers = 'authorization=Bearer%20x, x-team = a%2Cb';
ALTER SYSTEM RESET fp_attribution.otlp_headers;
SELECT pg_reload_conf();

-- headers carry secrets: hidden from ordinary roles
CREATE ROLE regress_fp_attribution_otlp;
SET ROLE regress_fp_attribution_otlp;
SELECT regress_error($$SHOW fp_attribution.otlp_headers$$);
SELECT count(*) AS visible FROM pg_settings WHERE name = 'fp_attribution.otlp_headers';
RESET ROLE;
DROP ROLE regress_fp_attribution_otlp;

-- one exporter_status row per signal
SELECT signal, sent >= 0 AND failed >= 0 AND retried >= 0 AND dropped >= 0
       AND rejected >= 0 AS ok
  FROM attribution.exporter_status ORDER BY signal COLLATE "C";

-- the worker runs, under its own backend type
SELECT count(*) AS exporters FROM pg_stat_activity
 WHERE backend_type = 'fp_attribution exporter';
