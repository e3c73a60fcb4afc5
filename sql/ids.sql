--
-- ids: the attribution.trace_id and attribution.span_id types
--

-- text round trip: output is lowercase, input accepts either case
SELECT '4bf92f3577b34da6a3ce929d0e0e4736'::attribution.trace_id;
SELECT '4BF92F3577B34DA6A3CE929D0E0E4736'::attribution.trace_id;
SELECT '00f067aa0ba902b7'::attribution.span_id;
SELECT '00F067AA0BA902B7'::attribution.span_id;

-- invalid input
SELECT regress_error($$SELECT '4bf92f3577b34da6a3ce929d0e0e473'::attribution.trace_id$$);
SELECT regress_error($$SELECT '4bf92f3577b34da6a3ce929d0e0e47360'::attribution.trace_id$$);
SELECT regress_error($$SELECT '4bf92f3577b34da6a3ce929d0e0e473g'::attribution.trace_id$$);
SELECT regress_error($$SELECT '00000000000000000000000000000000'::attribution.trace_id$$);
SELECT regress_error($$SELECT '0000000000000000'::attribution.span_id$$);
SELECT regress_error($$SELECT '00f067aa0ba902b'::attribution.span_id$$);
SELECT regress_error($$SELECT ''::attribution.span_id$$);

-- binary round trip through send/recv
SELECT attribution.trace_id_send('4bf92f3577b34da6a3ce929d0e0e4736');
SELECT attribution.span_id_send('00f067aa0ba902b7');

-- comparison operators
SELECT a, b, a = b AS eq, a <> b AS ne, a < b AS lt, a <= b AS le, a > b AS gt, a >= b AS ge
  FROM (VALUES ('0000000000000001'::attribution.span_id, '0000000000000002'::attribution.span_id),
			   ('00000000000000ff', '00000000000000ff'),
			   ('ff00000000000000', '00000000000000ff')) AS t(a, b);

-- btree and hash support: ordering, DISTINCT, hash join, index scans
CREATE TEMP TABLE ids (t attribution.trace_id, s attribution.span_id);
INSERT INTO ids VALUES
	('0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331'),
	('4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7'),
	('4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7'),
	('00000000000000000000000000000001', '0000000000000001');
SELECT DISTINCT t FROM ids ORDER BY t;
SELECT s, count(*) FROM ids GROUP BY s ORDER BY s DESC;
SET enable_mergejoin = off;
SET enable_nestloop = off;
SELECT count(*) FROM ids a JOIN ids b ON a.t = b.t;
RESET enable_mergejoin;
RESET enable_nestloop;
CREATE INDEX ON ids (t);
CREATE INDEX ON ids USING hash (s);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT * FROM ids WHERE t = '4bf92f3577b34da6a3ce929d0e0e4736';
SELECT count(*) FROM ids WHERE t = '4bf92f3577b34da6a3ce929d0e0e4736';
EXPLAIN (COSTS OFF) SELECT * FROM ids WHERE s = '00f067aa0ba902b7';
SELECT count(*) FROM ids WHERE s = '00f067aa0ba902b7';
RESET enable_seqscan;

-- storage is compact: 16 and 8 bytes
SELECT pg_column_size(t) AS trace_bytes, pg_column_size(s) AS span_bytes FROM ids LIMIT 1;
