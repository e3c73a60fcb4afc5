--
-- settings: defaults, valid and invalid values, the reserved prefix
--
SELECT name, setting, unit, context, vartype
  FROM pg_settings WHERE name LIKE 'fp\_attribution.%'
   AND name NOT LIKE 'fp\_attribution.otlp\_%' ORDER BY name COLLATE "C";

-- the window accepts units and rejects non-positive values
SET fp_attribution.attribution_window = '7d';
SHOW fp_attribution.attribution_window;
SELECT attribution.default_attribution_window();
RESET fp_attribution.attribution_window;
SELECT regress_error($$SET fp_attribution.attribution_window = 0$$);
SELECT regress_error($$SET fp_attribution.attribution_window = '-1h'$$);
SELECT regress_error($$SET fp_attribution.attribution_window = 'forever'$$);

-- the sampling ratio is in [0, 1] and only a superuser may change it
SELECT regress_error($$SET fp_attribution.sampling_ratio = 1.5$$);
CREATE ROLE regress_fp_attribution_user;
SET ROLE regress_fp_attribution_user;
SELECT regress_error($$SET fp_attribution.sampling_ratio = 0.5$$);
-- the window is policy too: a writer cannot stretch it for its own clicks
SELECT regress_error($$SET fp_attribution.attribution_window = '100y'$$);
RESET ROLE;
DROP ROLE regress_fp_attribution_user;

-- a misspelt setting under our prefix is an error, not a silent placeholder
SELECT regress_error($$SET fp_attribution.attribution_windw = '1d'$$);

-- an invalid traceparent setting is accepted (W3C: ignore and count)
SET fp_attribution.traceparent = 'not a traceparent';
SELECT source FROM attribution.new_command_context(NULL, NULL);
RESET fp_attribution.traceparent;

-- sampling: ratio 0 samples no new root, but ids are still stored
SET fp_attribution.sampling_ratio = 0;
SELECT aggregate_id AS cid FROM attribution.track_click('aff-unsampled') \gset
SELECT sampled, trace_id IS NOT NULL AS has_trace FROM attribution.clicks WHERE click_id = :'cid';
-- a sampled parent is still followed (parent-based)
SELECT aggregate_id AS cid FROM attribution.track_click('aff-unsampled',
	traceparent => '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01') \gset
SELECT sampled FROM attribution.clicks WHERE click_id = :'cid';
-- the ratio is deterministic in the trace id: about half of many roots
SET fp_attribution.sampling_ratio = 0.5;
WITH roots AS (SELECT attribution.new_command_context(NULL, NULL) AS c
				 FROM generate_series(1, 1000))
SELECT count(*) FILTER (WHERE (c).sampled) BETWEEN 400 AND 600 AS about_half FROM roots;
RESET fp_attribution.sampling_ratio;
