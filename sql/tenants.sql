--
-- tenants: advertiser_id is the tenant key.  Two advertisers with the same
-- click id, the same visitor and the same order id stay apart: windows,
-- attribution, idempotency and receipt chains are per advertiser.  The
-- key's type, collation and place in every key, and its validation.
--

-- one type and one collation everywhere, and first in every key but
-- log_entries' unique key (receipt_id first, fp_attribution--2.0--2.1.sql)
SELECT c.relname, a.attnum, format_type(a.atttypid, a.atttypmod) AS type,
	   co.collname, a.attnotnull
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  LEFT JOIN pg_collation co ON co.oid = a.attcollation
 WHERE c.relnamespace = 'attribution'::regnamespace AND c.relkind = 'r'
   AND a.attname = 'advertiser_id'
 ORDER BY c.relname COLLATE "C";
SELECT i.indrelid::regclass AS tbl, i.indexrelid::regclass AS idx,
	   i.indisprimary, i.indisunique,
	   (SELECT attname FROM pg_attribute
		 WHERE attrelid = i.indrelid AND attnum = i.indkey[0]) AS first_column
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
 WHERE c.relnamespace = 'attribution'::regnamespace
   AND (i.indisprimary OR i.indisunique)
 ORDER BY i.indrelid::regclass::text COLLATE "C", i.indexrelid::regclass::text COLLATE "C";

-- the same affiliate has a short window with advertiser A only
INSERT INTO attribution.windows (advertiser_id, affiliate_id, attribution_window)
VALUES ('adv-a', 'aff-t', '1 hour');

-- the same click id and visitor under both advertisers (and a third
-- advertiser who has no clicks at all)
SELECT count(*) FROM attribution.track_click('aff-t', click_id => 'd0000000-0000-4000-8000-000000000001',
	visitor_id => 'vis-t', clicked_at => '2026-03-01 10:00:00+00', advertiser_id => 'adv-a');
SELECT count(*) FROM attribution.track_click('aff-t', click_id => 'd0000000-0000-4000-8000-000000000001',
	visitor_id => 'vis-t', clicked_at => '2026-03-01 11:00:00+00', advertiser_id => 'adv-b');
-- a retry of A's click is A's original click, B's is untouched
SELECT count(*) FROM attribution.track_click('aff-other', click_id => 'd0000000-0000-4000-8000-000000000001',
	visitor_id => 'vis-other', advertiser_id => 'adv-a');
SELECT advertiser_id, click_id, affiliate_id, visitor_id, clicked_at, window_ends_at
  FROM attribution.clicks WHERE click_id = 'd0000000-0000-4000-8000-000000000001'
 ORDER BY advertiser_id;

-- the same order id under both advertisers, by visitor, two hours after
-- A's click: A's window (1 hour) has expired, B's (default) has not, so
-- B's conversion is attributed and A's is not; neither borrows the other's
-- click
SELECT count(*) FROM attribution.track_conversion('order-t', 1000, visitor_id => 'vis-t',
	converted_at => '2026-03-01 12:00:00+00', advertiser_id => 'adv-a');
SELECT count(*) FROM attribution.track_conversion('order-t', 2000, visitor_id => 'vis-t',
	converted_at => '2026-03-01 12:00:00+00', advertiser_id => 'adv-b');
-- by click id: inside A's window A's click counts, for C it is unknown
SELECT count(*) FROM attribution.track_conversion('order-t2', 3000,
	click_id => 'd0000000-0000-4000-8000-000000000001',
	converted_at => '2026-03-01 10:30:00+00', advertiser_id => 'adv-a');
SELECT count(*) FROM attribution.track_conversion('order-t2', 3000,
	click_id => 'd0000000-0000-4000-8000-000000000001', advertiser_id => 'adv-c');
SELECT count(*) FROM attribution.track_conversion('order-t', 3000, visitor_id => 'vis-t',
	advertiser_id => 'adv-c');
-- a retry of B's order is B's original conversion
SELECT count(*) FROM attribution.track_conversion('order-t', 9999, visitor_id => 'vis-t',
	advertiser_id => 'adv-b');
SELECT advertiser_id, order_id, revenue_cents, attributed, unattributed_reason,
	   click_id, affiliate_id, latency, window_ends_at
  FROM attribution.conversions WHERE order_id IN ('order-t', 'order-t2')
 ORDER BY advertiser_id, order_id;

-- one chain per (advertiser, type, id); a conversion's cause is the click
-- receipt of its own advertiser
SELECT r.advertiser_id, r.aggregate_type, r.aggregate_id, r.sequence,
	   r.causation_id = (SELECT c.receipt_id FROM attribution.receipts c
						  WHERE c.advertiser_id = r.advertiser_id
							AND c.aggregate_type = 'click'
							AND c.aggregate_id = 'd0000000-0000-4000-8000-000000000001') AS caused_by_own_click
  FROM attribution.receipts r
 WHERE r.aggregate_id IN ('d0000000-0000-4000-8000-000000000001', 'order-t', 'order-t2')
 ORDER BY 1, 2, 3, 4;
SELECT advertiser_id, aggregate_type, aggregate_id, max(sequence) AS last_sequence
  FROM attribution.receipts
 WHERE aggregate_id IN ('d0000000-0000-4000-8000-000000000001', 'order-t')
   AND aggregate_type IN ('click', 'conversion')
 GROUP BY 1, 2, 3
 ORDER BY 1, 2, 3;
-- a custom command's chain is per advertiser too
SELECT sequence, advertiser_id FROM attribution.append_receipt('refund', 'order-t', '{"cents": 1}',
	advertiser_id => 'adv-a');
SELECT sequence, advertiser_id FROM attribution.append_receipt('refund', 'order-t', '{"cents": 2}',
	advertiser_id => 'adv-b');
SELECT sequence, advertiser_id FROM attribution.append_receipt('refund', 'order-t', '{"cents": 3}',
	advertiser_id => 'adv-a');
SELECT ok, receipts_checked FROM attribution.verify_chain('refund', 'order-t', 'adv-a');
SELECT ok, receipts_checked FROM attribution.verify_chain('refund', 'order-t', 'adv-b');
SELECT regress_error($$SELECT * FROM attribution.verify_chain('refund', 'order-t')$$);
SELECT ok, receipts_checked FROM attribution.verify_chain('click',
	'd0000000-0000-4000-8000-000000000001', 'adv-b');
-- the advertiser is in the hashed envelope and the export
SELECT attribution.receipt_envelope(r) LIKE '{"advertiser_id":"adv-b",%' AS in_envelope,
	   (SELECT line::jsonb->>'advertiser_id' FROM attribution.receipt_export e
		 WHERE e.advertiser_id = r.advertiser_id AND e.aggregate_type = r.aggregate_type
		   AND e.aggregate_id = r.aggregate_id AND e.sequence = r.sequence) AS exported
  FROM attribution.receipts r
 WHERE advertiser_id = 'adv-b' AND aggregate_type = 'refund';

-- validated like the other ids, by every command and a direct INSERT
SELECT regress_error(format($$SELECT attribution.track_click('aff', advertiser_id => %L)$$, v)),
	   regress_error(format($$SELECT attribution.track_conversion('o', 1, advertiser_id => %L)$$, v)),
	   regress_error(format($$SELECT attribution.append_receipt('t', 'i', '{}', advertiser_id => %L)$$, v)),
	   regress_error(format($$INSERT INTO attribution.clicks (affiliate_id, advertiser_id) VALUES ('aff', %L)$$, v))
  FROM unnest(ARRAY['', ' ', repeat('x', 129), NULL]) AS v;
SELECT regress_error($$INSERT INTO attribution.windows (advertiser_id, affiliate_id, attribution_window)
	VALUES ('', 'aff', '1 day')$$);
-- 128 characters are fine
SELECT advertiser_id = repeat('é', 128) AS ok
  FROM attribution.track_click('aff', advertiser_id => repeat('é', 128));

SELECT ok, chains_failed, failed_advertiser_id FROM attribution.verify_all();
