--
-- telemetry_spans: the spans of a command (command, DB operation, event),
-- their parent/child ids against the rows, failures, rollbacks, sampling
--
SELECT attribution.reset_telemetry();

-- Span tree of a click with the caller's traceparent
SELECT aggregate_id AS click_id FROM attribution.track_click('aff-span',
	click_id => '00000000-0000-0000-0000-00000000c001',
	traceparent => '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
CREATE TEMP VIEW tree AS
SELECT s.name, s.kind, s.status_code,
	   s.trace_id = r.trace_id AS same_trace,
	   CASE WHEN s.span_id = r.span_id THEN 'the row''s span'
			WHEN s.parent_span_id = r.span_id THEN 'child of the row''s span'
			WHEN s.parent_span_id IS NULL THEN 'root'
			ELSE 'other' END AS relation,
	   CASE WHEN s.parent_span_id IS NULL THEN 'none'
			WHEN s.parent_span_id = '00f067aa0ba902b7' THEN 'the caller''s span'
			ELSE 'a span of the command' END AS parent,
	   s.end_time >= s.start_time AND s.start_time_unix_nano > 1700000000000000000 AS times_ok
  FROM attribution.spans s,
	   (SELECT trace_id, span_id FROM attribution.clicks
		 UNION ALL SELECT trace_id, span_id FROM attribution.conversions) r
 WHERE s.trace_id = r.trace_id
   AND (s.span_id = r.span_id OR s.parent_span_id = r.span_id);
SELECT * FROM tree ORDER BY name COLLATE "C";

-- Attributes: OTel semantic conventions and fp.* business attributes
SELECT name COLLATE "C",
	   attributes ->> 'db.system.name' AS system,
	   attributes ? 'db.namespace' AS has_namespace,
	   attributes ->> 'db.operation.name' AS operation,
	   attributes ->> 'db.collection.name' AS collection,
	   attributes ->> 'db.response.returned_rows' AS returned_rows,
	   attributes ->> 'fp.command.name' AS command,
	   attributes ->> 'fp.command.outcome' AS outcome,
	   attributes ->> 'fp.trace.source' AS source,
	   attributes ->> 'fp.affiliate.id' AS affiliate,
	   attributes ->> 'fp.click.id' AS click,
	   attributes ->> 'fp.command.id' AS command_id,
	   attributes ->> 'fp.aggregate.type' AS aggregate
  FROM attribution.spans ORDER BY 1;

-- A retry is a command too ("replayed") but writes no row: no event span
SELECT attribution.reset_telemetry('spans');
SELECT aggregate_id AS click_id FROM attribution.track_click('aff-span',
	click_id => '00000000-0000-0000-0000-00000000c001');
SELECT name COLLATE "C", parent_span_id IS NULL AS root, status_code,
	   attributes ->> 'fp.command.outcome' AS outcome,
	   attributes ->> 'db.response.returned_rows' AS returned_rows
  FROM attribution.spans ORDER BY 1;

-- A conversion: command, INSERT, event span; status unset on success
SELECT attribution.reset_telemetry('spans');
SELECT aggregate_id AS order_id FROM attribution.track_conversion('order-span-1', 1250, 'EUR',
	click_id => '00000000-0000-0000-0000-00000000c001');
SELECT name, kind, status_code, same_trace, relation, parent FROM tree ORDER BY name COLLATE "C";
SELECT attributes ->> 'fp.order.id' AS order_id, attributes ->> 'fp.click.id' AS click,
	   attributes ->> 'fp.affiliate.id' AS affiliate, attributes ->> 'fp.currency' AS currency
  FROM attribution.spans WHERE name = 'attribution.conversion_tracked';

-- Failure: status ERROR with an exception event (SQLSTATE, message)
SELECT attribution.reset_telemetry('spans');
SELECT regress_error($$SELECT attribution.track_conversion('order-span-bad', -5)$$);
SELECT name COLLATE "C", status_code, status_message,
	   attributes ->> 'fp.command.outcome' AS outcome,
	   attributes ->> 'error.type' AS error_type,
	   events -> 0 ->> 'name' AS event,
	   events -> 0 -> 'attributes' AS event_attributes
  FROM attribution.spans ORDER BY 1;
SELECT count(*) AS rows_written FROM attribution.conversions WHERE order_id = 'order-span-bad';

-- Rollback: the command is still a span, with status ERROR and outcome
-- rolled_back; its event span is kept as ERROR too
SELECT attribution.reset_telemetry('spans');
BEGIN;
SELECT aggregate_id AS click_id FROM attribution.track_click('aff-rollback',
	click_id => '00000000-0000-0000-0000-00000000c0ff');
ROLLBACK;
SELECT name COLLATE "C", status_code, status_message,
	   attributes ->> 'fp.command.outcome' AS outcome,
	   attributes ->> 'error.type' AS error_type
  FROM attribution.spans ORDER BY 1;

-- A subtransaction rolls one command back, the other commits
SELECT attribution.reset_telemetry('spans');
DO $$
BEGIN
	BEGIN
		PERFORM attribution.track_conversion('order-span-sub', 10, 'XXX');
	EXCEPTION WHEN invalid_parameter_value THEN
		NULL;
	END;
	PERFORM attribution.track_click('aff-sub', click_id => '00000000-0000-0000-0000-00000000c002');
END
$$;
SELECT name COLLATE "C", status_code, attributes ->> 'fp.command.outcome' AS outcome,
	   events -> 0 -> 'attributes' ->> 'exception.type' AS sqlstate
  FROM attribution.spans ORDER BY 1;

-- A direct INSERT is a track_click command whose span is the row's span
SELECT attribution.reset_telemetry('spans');
INSERT INTO attribution.clicks (click_id, affiliate_id)
	VALUES ('00000000-0000-0000-0000-00000000c003', 'aff-direct');
SELECT name, kind, status_code, same_trace, relation, parent FROM tree ORDER BY name COLLATE "C";

-- Unsampled: no spans, but the row still has its trace ids
SELECT attribution.reset_telemetry('spans');
SET fp_attribution.sampling_ratio = 0;
SELECT count(*) FROM attribution.track_click('aff-unsampled', click_id => '00000000-0000-0000-0000-00000000c005');
SELECT sampled, trace_id IS NOT NULL AS has_trace_id, span_id IS NOT NULL AS has_span_id
  FROM attribution.clicks WHERE click_id = '00000000-0000-0000-0000-00000000c005';
-- a parent that is not sampled is followed too
SELECT count(*) FROM attribution.track_click('aff-unsampled',
	click_id => '00000000-0000-0000-0000-00000000c006',
	traceparent => '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00');
SELECT sampled FROM attribution.clicks WHERE click_id = '00000000-0000-0000-0000-00000000c006';
RESET fp_attribution.sampling_ratio;
SELECT count(*) AS spans FROM attribution.spans;

-- Telemetry off: nothing recorded
SET fp_attribution.telemetry = off;
SELECT aggregate_id AS click_id FROM attribution.track_click('aff-off',
	click_id => '00000000-0000-0000-0000-00000000c004');
RESET fp_attribution.telemetry;
SELECT count(*) AS spans FROM attribution.spans;

-- Bad signal name for the reset
SELECT regress_error($$SELECT attribution.reset_telemetry('traces')$$);
DROP VIEW tree;
