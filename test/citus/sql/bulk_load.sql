-- Rows that Citus copies into the shards (doc/citus.md, "How a command
-- runs"): the tables' owner (here the superuser) loads clicks with
-- INSERT ... SELECT on the coordinator, which Citus pulls to the
-- coordinator and writes into the shards with COPY; on the worker they are
-- new rows, as on one node: window, trace context and receipt each
SET timezone = 'UTC';
EXPLAIN (COSTS OFF)
INSERT INTO attribution.clicks (advertiser_id, affiliate_id, click_id)
SELECT 'adv-bulk-' || (i % 7), 'aff-bulk', ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid
  FROM generate_series(1, 50) i;
INSERT INTO attribution.clicks (advertiser_id, affiliate_id, click_id)
SELECT 'adv-bulk-' || (i % 7), 'aff-bulk', ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid
  FROM generate_series(1, 50) i;
SELECT count(*) AS clicks,
       count(*) FILTER (WHERE window_ends_at = clicked_at + interval '30 days') AS default_window,
       count(DISTINCT trace_id) AS traces
  FROM attribution.clicks WHERE affiliate_id = 'aff-bulk';
SELECT count(*) AS receipts FROM attribution.receipts
 WHERE advertiser_id LIKE 'adv-bulk-%' AND aggregate_type = 'click' AND sequence = 1;
-- a COPY on the coordinator: the same
COPY attribution.clicks (advertiser_id, affiliate_id, click_id) FROM stdin;
adv-bulk-copy	aff-bulk	00000000-0000-4000-8000-000000000051
\.
SELECT c.window_ends_at = c.clicked_at + interval '30 days' AS default_window,
       (SELECT count(*) FROM attribution.receipts r
         WHERE r.advertiser_id = 'adv-bulk-copy' AND r.aggregate_id = c.click_id::text) AS receipts
  FROM attribution.clicks c WHERE c.advertiser_id = 'adv-bulk-copy';
-- a restore through the coordinator: fp_attribution.restore set with SET
-- LOCAL, which Citus forwards to the workers; the row is taken as written
-- (its own window and context, no new receipt)
BEGIN;
SET LOCAL fp_attribution.restore = on;
COPY attribution.clicks (advertiser_id, click_id, affiliate_id, clicked_at, window_ends_at, trace_id, span_id, sampled, recorded_at) FROM stdin;
adv-bulk-restore	00000000-0000-4000-8000-000000000099	aff-bulk	2026-01-01 00:00:00+00	2026-01-02 00:00:00+00	4bf92f3577b34da6a3ce929d0e0e4799	00f067aa0ba90299	t	2026-01-01 00:00:00+00
\.
SELECT window_ends_at, trace_id FROM attribution.clicks WHERE advertiser_id = 'adv-bulk-restore';
SELECT count(*) AS receipts FROM attribution.receipts WHERE advertiser_id = 'adv-bulk-restore';
ROLLBACK;
SELECT ok, chains_failed, failed_aggregate_type, failed_check, detail
  FROM attribution.verify_all();
