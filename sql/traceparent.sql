--
-- traceparent: strict W3C parsing, context sources and their precedence,
-- counting of invalid headers, current_traceparent()
--
SELECT attribution.reset_telemetry_status();

-- valid version 00, sampled and not sampled
SELECT * FROM attribution.parse_traceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
SELECT * FROM attribution.parse_traceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00');
-- unknown flags are parsed; only bit 0 means sampled
SELECT * FROM attribution.parse_traceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02');

-- invalid: each case differs from a valid header in one way
SELECT tp, attribution.parse_traceparent(tp) IS NULL AS invalid
  FROM (VALUES
	('00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01'),	-- uppercase
	('ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'),	-- version ff
	('00-00000000000000000000000000000000-00f067aa0ba902b7-01'),	-- zero trace id
	('00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01'),	-- zero parent id
	('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-'),	-- v00 too long
	('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1'),	-- short flags
	('00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'),	-- separator
	('0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'),	-- short version
	('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01'),	-- not hex
	('cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.x'),	-- future, bad separator
	(' 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'),	-- padding
	('')) AS t(tp);

-- a future version is parsed by its version-00 prefix
SELECT * FROM attribution.parse_traceparent('cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds');
SELECT * FROM attribution.parse_traceparent('cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');

-- source 1: the explicit argument; the command gets a new span, child of it
SELECT trace_id, parent_span_id, sampled, tracestate, source,
	   span_id <> '00f067aa0ba902b7' AS new_span
  FROM attribution.new_command_context('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'congo=t61rcWkgMzE');

-- unsampled parent: the command is unsampled too (parent-based)
SELECT sampled FROM attribution.new_command_context('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00', NULL);

-- source 2: SET LOCAL fp_attribution.traceparent
BEGIN;
SET LOCAL fp_attribution.traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
SET LOCAL fp_attribution.tracestate = 'rojo=00f067aa0ba902b7';
SELECT trace_id, parent_span_id, tracestate, source FROM attribution.new_command_context(NULL, NULL);
-- the argument still wins over the setting
SELECT trace_id, source FROM attribution.new_command_context('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', NULL);
COMMIT;
SHOW fp_attribution.traceparent;

-- source 3: a SQLCommenter comment on the top-level statement
SELECT trace_id, parent_span_id, tracestate, source FROM attribution.new_command_context(NULL, NULL) /*action='buy',traceparent='00-11111111111111111111111111111111-2222222222222222-01',tracestate='congo%3Dt61rcWkgMzE'*/;
-- the setting wins over the comment
BEGIN;
SET LOCAL fp_attribution.traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
SELECT trace_id, source FROM attribution.new_command_context(NULL, NULL) /*traceparent='00-11111111111111111111111111111111-2222222222222222-01'*/;
COMMIT;
-- a comment that is not at the end of the statement is not context
SELECT source FROM attribution.new_command_context(NULL, NULL /*traceparent='00-11111111111111111111111111111111-2222222222222222-01'*/);

-- source 4: application_name holding a traceparent, as OpenTelemetry's pg
-- instrumentation sends it (SET application_name = '<traceparent>')
SELECT attribution.reset_telemetry_status();
SET application_name = '00-33333333333333333333333333333333-4444444444444444-01';
SELECT trace_id, parent_span_id, sampled, tracestate, source FROM attribution.new_command_context(NULL, NULL);
-- the comment, the setting and the argument each win over application_name
SELECT trace_id, source FROM attribution.new_command_context(NULL, NULL) /*traceparent='00-11111111111111111111111111111111-2222222222222222-01'*/;
BEGIN;
SET LOCAL fp_attribution.traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
SELECT trace_id, source FROM attribution.new_command_context(NULL, NULL);
COMMIT;
SELECT trace_id, source FROM attribution.new_command_context('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', NULL);
-- an invalid comment falls through to application_name (and is counted)
SELECT trace_id, source FROM attribution.new_command_context(NULL, NULL) /*traceparent='00-zz'*/;
-- the incoming context for current_traceparent() too
SELECT attribution.current_traceparent();
-- unsampled, as sent
SET application_name = '00-33333333333333333333333333333333-4444444444444444-00';
SELECT sampled, source FROM attribution.new_command_context(NULL, NULL);
-- a name that is not a strictly valid traceparent is no context and is not
-- counted as an invalid traceparent: application_name is normally a name
SET application_name = 'checkout-service';
SELECT source FROM attribution.new_command_context(NULL, NULL);
SET application_name = '00-33333333333333333333333333333333-4444444444444444-01 ';
SELECT source FROM attribution.new_command_context(NULL, NULL);
SET application_name = '00-33333333333333333333333333333333-0000000000000000-01';
SELECT source FROM attribution.new_command_context(NULL, NULL);
SELECT invalid_traceparents FROM attribution.telemetry_status;
RESET application_name;

-- source 5: a new root, with no parent, sampled at the default ratio 1.0
SELECT parent_span_id IS NULL AS root, sampled, tracestate IS NULL AS no_state, source
  FROM attribution.new_command_context(NULL, NULL);
-- two roots never share ids
WITH roots AS (SELECT attribution.new_command_context(NULL, NULL) AS c
				 FROM generate_series(1, 100))
SELECT count(DISTINCT (c).trace_id) AS traces, count(DISTINCT (c).span_id) AS spans FROM roots;

-- W3C Trace Context level 2 flags: a root we create has the
-- random-trace-id flag (0x02), sampled or not ...
BEGIN;
SELECT source FROM attribution.new_command_context(NULL, NULL);
SELECT right(attribution.current_traceparent(), 2) AS sampled_root_flags;
SET LOCAL fp_attribution.sampling_ratio = 0;
SELECT source FROM attribution.new_command_context(NULL, NULL);
SELECT right(attribution.current_traceparent(), 2) AS unsampled_root_flags;
COMMIT;
-- ... and a parent's flags, known or not, are propagated unchanged; only
-- bit 0 decides sampling
BEGIN;
SELECT f AS parent_flags, c.sampled,
	   right(attribution.current_traceparent(), 2) AS command_flags
  FROM (VALUES ('00'), ('01'), ('02'), ('03'), ('09'), ('ff')) AS t(f),
	   LATERAL attribution.new_command_context('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-' || f, NULL) AS c;
COMMIT;

-- consistent probability sampling (OpenTelemetry tracestate ot=th/rv): a
-- root is sampled when its trace id's low 56 bits reach the threshold of
-- the ratio, and a sampled root below ratio 1 carries that threshold
BEGIN;
SET LOCAL fp_attribution.sampling_ratio = 0.5;
WITH roots AS (SELECT attribution.new_command_context(NULL, NULL) AS c
				 FROM generate_series(1, 200))
SELECT count(*) FILTER (WHERE (c).sampled <> (substr((c).trace_id::text, 19, 1) >= '8')) AS wrong_decisions,
	   count(*) FILTER (WHERE (c).sampled AND (c).tracestate IS DISTINCT FROM 'ot=th:8') AS sampled_without_th,
	   count(*) FILTER (WHERE NOT (c).sampled AND (c).tracestate IS NOT NULL) AS unsampled_with_state,
	   count(*) FILTER (WHERE (c).sampled) BETWEEN 1 AND 199 AS both_ways
  FROM roots;
SET LOCAL fp_attribution.sampling_ratio = 0.25;
WITH roots AS (SELECT attribution.new_command_context(NULL, NULL) AS c
				 FROM generate_series(1, 200))
SELECT DISTINCT (c).tracestate FROM roots WHERE (c).sampled;
COMMIT;
-- a parent with ot=th: kept as it came when consistent (R >= th), from
-- the trace id or from rv; erased, the ot member moved first and every
-- other member kept in order, when inconsistent or unsampled
SELECT t.what, c.sampled, c.tracestate
  FROM (VALUES
	('consistent', '00-4bf92f3577b34da6a390000000000000-00f067aa0ba902b7-01', 'congo=t61rcWkgMzE, ot=th:8;xx:1 ,rojo=00f067aa0ba902b7'),
	('inconsistent', '00-4bf92f3577b34da6a310000000000000-00f067aa0ba902b7-01', 'congo=t61rcWkgMzE, ot=th:8;xx:1 ,rojo=00f067aa0ba902b7'),
	('unsampled', '00-4bf92f3577b34da6a390000000000000-00f067aa0ba902b7-00', 'congo=t61rcWkgMzE,ot=th:8'),
	('rv decides', '00-4bf92f3577b34da6a310000000000000-00f067aa0ba902b7-01', 'ot=rv:90000000000000;th:8'),
	('th only', '00-4bf92f3577b34da6a310000000000000-00f067aa0ba902b7-01', 'ot=th:8'),
	('malformed th', '00-4bf92f3577b34da6a310000000000000-00f067aa0ba902b7-01', 'ot=th:8x')) AS t(what, tp, ts),
	   LATERAL attribution.new_command_context(t.tp, t.ts) AS c;
-- a sampling ratio stricter than the parent's th applies to the same
-- randomness and becomes the th; a parent without th is simply followed
BEGIN;
SET LOCAL fp_attribution.sampling_ratio = 0.25;
SELECT t.what, c.sampled, c.tracestate, right(attribution.current_traceparent(), 2) AS flags
  FROM (VALUES
	('R 0x9 below ours', '00-4bf92f3577b34da6a390000000000000-00f067aa0ba902b7-01', 'congo=t61rcWkgMzE,ot=th:8;xx:1'),
	('R 0xd above ours', '00-4bf92f3577b34da6a3d0000000000000-00f067aa0ba902b7-01', 'congo=t61rcWkgMzE,ot=th:8;xx:1'),
	('parent stricter', '00-4bf92f3577b34da6a3f0000000000000-00f067aa0ba902b7-01', 'ot=th:e'),
	('no th', '00-4bf92f3577b34da6a390000000000000-00f067aa0ba902b7-01', 'congo=t61rcWkgMzE')) AS t(what, tp, ts),
	   LATERAL attribution.new_command_context(t.tp, t.ts) AS c;
COMMIT;

-- invalid traceparents are not errors: a new root is started and counted
SELECT attribution.reset_telemetry_status();
SELECT source FROM attribution.new_command_context('00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01', 'a=b');
-- an invalid argument falls through to the next source
BEGIN;
SET LOCAL fp_attribution.traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
SELECT trace_id, source FROM attribution.new_command_context('garbage', NULL);
SET LOCAL fp_attribution.traceparent = 'also garbage';
SELECT source FROM attribution.new_command_context(NULL, NULL);
COMMIT;
SELECT source FROM attribution.new_command_context(NULL, NULL) /*traceparent='00-zz'*/;
-- an oversized or non-printable tracestate is dropped and counted
SELECT tracestate IS NULL AS dropped
  FROM attribution.new_command_context('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', repeat('k=v,', 200));
SELECT tracestate IS NULL AS dropped
  FROM attribution.new_command_context('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', E'k=\tv');
SELECT invalid_traceparents, invalid_tracestates FROM attribution.telemetry_status;

-- current_traceparent(): the last command's span in this transaction ...
BEGIN;
SELECT attribution.current_traceparent() IS NULL AS nothing_yet;
CREATE TEMP TABLE ctx AS
	SELECT * FROM attribution.new_command_context('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', NULL);
SELECT attribution.current_traceparent() = '00-' || trace_id || '-' || span_id || '-01' AS is_last_command
  FROM ctx;
COMMIT;
-- ... but not in a later transaction, where the incoming context is used
SELECT attribution.current_traceparent();
SELECT attribution.current_traceparent() /*traceparent='00-11111111111111111111111111111111-2222222222222222-01'*/;
BEGIN;
SET LOCAL fp_attribution.traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00';
SELECT attribution.current_traceparent();
COMMIT;
-- with its flags as they came
BEGIN;
SET LOCAL fp_attribution.traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-02';
SELECT attribution.current_traceparent();
COMMIT;
