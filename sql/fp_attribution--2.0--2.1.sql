-- fp_attribution 2.0 -> 2.1

\echo Use "ALTER EXTENSION fp_attribution UPDATE TO '2.1'" to load this file. \quit

-- Not on a cluster distributed at 2.0: Citus propagates the DDL below on
-- distributed tables with this whole script as its text, which a node
-- refuses ("cannot insert multiple commands into a prepared statement"),
-- and log_tiles would have to be distributed and filled shard by shard.
-- Refused here with a clear message instead (doc/citus.md, "Upgrades").
DO $$
BEGIN
	IF EXISTS (SELECT FROM pg_catalog.pg_extension
				WHERE extname OPERATOR(pg_catalog.=) 'citus') THEN
		IF EXISTS (SELECT FROM pg_catalog.pg_dist_partition
					WHERE logicalrelid OPERATOR(pg_catalog.=) 'attribution.log_entries'::pg_catalog.regclass) THEN
			RAISE EXCEPTION 'fp_attribution cannot be updated to 2.1 on a Citus cluster distributed at 2.0'
				USING ERRCODE = 'feature_not_supported',
					  DETAIL = 'The update moves the receipt logs'' leaf hashes into a new table, attribution.log_tiles, which would have to be distributed and filled shard by shard.',
					  HINT = 'Keep the 2.0 library on the cluster''s nodes, or distribute a new 2.1 install and load it.';
		END IF;
	END IF;
END
$$;

--------------------------------------------------------------------------
-- Receipt logs: leaf hashes in tiles (c2sp.org/tlog-tiles' idea).  A
-- log_entries row and its two index entries per receipt cost more than
-- the 3 % of a command the log may take; the leaf hashes now go in
-- attribution.log_tiles, up to 128 a row, and log_entries keeps only the
-- unique receipt -> log index mapping (receipt_proof() and "logged once"
-- need it), so integration maintains one index entry per receipt.
--------------------------------------------------------------------------

-- The leaf hashes of each log, SHA-256(0x00 || receipt_hash) of the
-- receipt at each index, concatenated: a row holds those of indexes
-- first_index .. first_index + octet_length(leaf_hashes) / 32 - 1 and
-- never crosses a multiple of 128 (FP_LOG_LEAF_TILE_WIDTH in log.h), so
-- that a full tile is one row of 4 KiB, kept in the row (STORAGE PLAIN:
-- hashes do not compress, and TOAST would cost a second table's rows and
-- index entries; a row fits a page).
-- Integration appends the rows of each batch: the last tile of a log, and
-- any tile a batch boundary fell in, is made of several rows, which stay
-- as they are (append only).
CREATE TABLE attribution.log_tiles (
	advertiser_id text COLLATE "C" NOT NULL,
	first_index bigint NOT NULL CHECK (first_index >= 0),
	leaf_hashes bytea NOT NULL CHECK (octet_length(leaf_hashes) % 32 = 0
		AND octet_length(leaf_hashes) > 0
		AND (first_index % 128) * 32 + octet_length(leaf_hashes) <= 4096),
	PRIMARY KEY (advertiser_id, first_index)
);
COMMENT ON TABLE attribution.log_tiles IS
	'Leaf hashes of each log, SHA-256(0x00 || receipt_hash), concatenated: first_index and the following ones, within one aligned tile of 128';
REVOKE ALL ON attribution.log_tiles FROM PUBLIC;
CREATE TRIGGER log_tiles_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
	ON attribution.log_tiles
	FOR EACH STATEMENT EXECUTE FUNCTION attribution.append_only('log_tiles');
ALTER TABLE attribution.log_tiles ALTER COLUMN leaf_hashes SET STORAGE PLAIN;
SELECT pg_catalog.pg_extension_config_dump('attribution.log_tiles', '');

-- The existing entries' leaf hashes move into tiles, one row per tile
INSERT INTO attribution.log_tiles (advertiser_id, first_index, leaf_hashes)
SELECT advertiser_id, min(log_index),
	   pg_catalog.string_agg(leaf_hash, ''::bytea ORDER BY log_index)
  FROM attribution.log_entries
 GROUP BY advertiser_id, log_index OPERATOR(pg_catalog./) 128;

-- log_entries keeps one index, its unique key, which now leads with
-- receipt_id: the one exception to "advertiser_id leads every key" (like
-- receipts_receipt_id_idx).  Colocation needs advertiser_id in the key,
-- not first; with it first every comparison of the key's B-tree compared
-- the advertiser (equal, a text) before the receipt id, and the offset of
-- the uuid after a text is recomputed for each: 3,300 of the 26,100
-- instructions integration spent per receipt (callgrind of
-- integrate_log() alone, 550 receipts against 50)
ALTER TABLE attribution.log_entries DROP CONSTRAINT log_entries_pkey;
ALTER TABLE attribution.log_entries DROP COLUMN leaf_hash;
ALTER TABLE attribution.log_entries
	DROP CONSTRAINT log_entries_advertiser_id_receipt_id_key,
	ADD CONSTRAINT log_entries_receipt_id_advertiser_id_key UNIQUE (receipt_id, advertiser_id);
COMMENT ON TABLE attribution.log_entries IS
	'Log index of each integrated receipt (its leaf hash is in attribution.log_tiles)';

CREATE OR REPLACE VIEW attribution.log_status AS
	WITH pending AS (
		SELECT q.advertiser_id, count(*) AS pending,
			   pg_catalog.now() OPERATOR(pg_catalog.-) min(q."timestamp") AS oldest_pending_age
		  FROM attribution.log_queue q
		 GROUP BY 1),
	logs AS (
		SELECT t.advertiser_id,
			   max(t.first_index OPERATOR(pg_catalog.+)
				   (pg_catalog.octet_length(t.leaf_hashes) OPERATOR(pg_catalog./) 32)) AS tree_size
		  FROM attribution.log_tiles t GROUP BY 1),
	checkpoints AS (
		SELECT c.advertiser_id, max(c.tree_size) AS checkpoint_size
		  FROM attribution.log_checkpoints c GROUP BY 1)
	SELECT advertiser_id, coalesce(l.tree_size, 0) AS tree_size,
		   coalesce(c.checkpoint_size, 0) AS checkpoint_size,
		   coalesce(p.pending, 0) AS pending, p.oldest_pending_age
	  FROM logs l FULL JOIN pending p USING (advertiser_id)
		   FULL JOIN checkpoints c USING (advertiser_id);

COMMENT ON TABLE attribution.log_nodes IS
	'Hash of every complete subtree of each log at levels 4, 8, 12 ...: level l, index i covers entries [i * 2^l, (i + 1) * 2^l); the leaf hashes are in log_tiles';

--------------------------------------------------------------------------
-- Postbacks: the outbox keeps no foreign key to its endpoint.  Its check
-- was a third of the enqueue's instructions, and its FOR KEY SHARE lock
-- on the endpoint's row made a MultiXact whenever two conversions of one
-- affiliate overlapped.  An endpoint with postbacks is still kept
-- (23503, as ON DELETE RESTRICT did): its DELETE, TRUNCATE or key UPDATE
-- takes SHARE on the outbox, which waits out the transactions that
-- are enqueueing and holds back new ones until it ends (the enqueue
-- locks the outbox before it trusts the endpoints it knows), then looks
-- for the endpoint's rows (src/postbacks/postbacks.c, "Deleting an
-- endpoint").
--------------------------------------------------------------------------

ALTER TABLE attribution.postback_outbox
	DROP CONSTRAINT postback_outbox_advertiser_id_endpoint_id_fkey;
CREATE FUNCTION attribution.postback_endpoint_in_use() RETURNS trigger
	AS 'MODULE_PATHNAME', 'fp_attribution_postback_endpoint_in_use'
	LANGUAGE C;
REVOKE ALL ON FUNCTION attribution.postback_endpoint_in_use() FROM PUBLIC;
COMMENT ON FUNCTION attribution.postback_endpoint_in_use() IS
	'Trigger: an endpoint with postbacks in the outbox is neither deleted nor re-keyed (23503)';
-- the statement's trigger locks the outbox before the rows' are locked;
-- TRUNCATE's checks the outbox after the statement, which may have
-- truncated it too
CREATE TRIGGER postback_endpoint_in_use
	BEFORE DELETE OR UPDATE OF advertiser_id, endpoint_id
	ON attribution.postback_endpoints
	FOR EACH STATEMENT EXECUTE FUNCTION attribution.postback_endpoint_in_use();
CREATE TRIGGER postback_endpoint_in_use_rows
	BEFORE DELETE OR UPDATE OF advertiser_id, endpoint_id
	ON attribution.postback_endpoints
	FOR EACH ROW EXECUTE FUNCTION attribution.postback_endpoint_in_use();
CREATE TRIGGER postback_endpoint_in_use_truncate
	AFTER TRUNCATE ON attribution.postback_endpoints
	FOR EACH STATEMENT EXECUTE FUNCTION attribution.postback_endpoint_in_use();
-- the enqueue's endpoint cache holds ids: UPDATE ... SET endpoint_id =
-- DEFAULT changes one, and must empty the backends' caches too
DROP TRIGGER postback_endpoints_changed ON attribution.postback_endpoints;
CREATE TRIGGER postback_endpoints_changed
	AFTER INSERT OR DELETE OR TRUNCATE
		OR UPDATE OF advertiser_id, endpoint_id, affiliate_id, active, events
	ON attribution.postback_endpoints
	FOR EACH STATEMENT EXECUTE FUNCTION attribution.postback_endpoints_changed();

-- On a Citus cluster a shard's trigger must not read another table: the
-- foreign key comes back in place of the triggers (the enqueue there is an
-- INSERT statement anyway, doc/citus.md).  The triggers go first, so that
-- the shards are made without them; a second call finds both done.
ALTER FUNCTION attribution.distribute() RENAME TO distribute_tables;
COMMENT ON FUNCTION attribution.distribute_tables() IS
	'distribute()''s first step: the tables and the commands distributed by advertiser_id, colocated';
CREATE FUNCTION attribution.distribute() RETURNS void
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	-- only where distribute_tables() goes on to distribute (a coordinator)
	IF EXISTS (SELECT FROM pg_catalog.pg_trigger
				WHERE tgrelid OPERATOR(pg_catalog.=) 'attribution.postback_endpoints'::pg_catalog.regclass
				  AND tgfoid OPERATOR(pg_catalog.=) 'attribution.postback_endpoint_in_use()'::pg_catalog.regprocedure)
	   AND EXISTS (SELECT FROM pg_catalog.pg_extension
					WHERE extname OPERATOR(pg_catalog.=) 'citus') THEN
		IF pg_catalog.citus_is_coordinator() THEN
			DROP TRIGGER IF EXISTS postback_endpoint_in_use ON attribution.postback_endpoints;
			DROP TRIGGER IF EXISTS postback_endpoint_in_use_rows ON attribution.postback_endpoints;
			DROP TRIGGER IF EXISTS postback_endpoint_in_use_truncate ON attribution.postback_endpoints;
		END IF;
	END IF;
	PERFORM attribution.distribute_tables();
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_constraint
					WHERE conrelid OPERATOR(pg_catalog.=) 'attribution.postback_outbox'::pg_catalog.regclass
					  AND contype OPERATOR(pg_catalog.=) 'f') THEN
		ALTER TABLE attribution.postback_outbox
			ADD CONSTRAINT postback_outbox_advertiser_id_endpoint_id_fkey
			FOREIGN KEY (advertiser_id, endpoint_id)
			REFERENCES attribution.postback_endpoints ON DELETE RESTRICT;
	END IF;
END
$$;
REVOKE ALL ON FUNCTION attribution.distribute() FROM PUBLIC;
COMMENT ON FUNCTION attribution.distribute() IS
	'On a Citus coordinator: distribute the tables and the commands by advertiser_id, colocated';
