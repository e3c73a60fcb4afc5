/* fp_attribution--2.0.sql: affiliate attribution with trace context */

\echo Use "CREATE EXTENSION fp_attribution" to load this file. \quit

-- As pg_cron does, the control file names pg_catalog and the script creates
-- its own schema, so the schema is a member of the extension and goes away
-- with DROP EXTENSION.
CREATE SCHEMA attribution;

--------------------------------------------------------------------------
-- Trace and span id types: 16 and 8 bytes, lowercase hex text form
--------------------------------------------------------------------------

-- The two types differ only in length, so one loop creates both: the shell
-- type, its I/O functions (a NULL argument or result type below stands for
-- the type itself), then the type.
DO $$
DECLARE
	t record;
	f record;
BEGIN
	FOR t IN SELECT * FROM (VALUES ('trace_id', 16), ('span_id', 8)) AS v(name, len) LOOP
		EXECUTE format('CREATE TYPE attribution.%s', t.name);
		FOR f IN SELECT * FROM (VALUES ('in', 'cstring', NULL), ('out', NULL, 'cstring'),
									   ('recv', 'internal', NULL), ('send', NULL, 'bytea'))
				AS v(fn, argtype, rettype)
		LOOP
			EXECUTE format(
				'CREATE FUNCTION attribution.%1$s_%2$s(%3$s) RETURNS %4$s '
				'AS %5$L, %6$L LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE',
				t.name, f.fn,
				coalesce(f.argtype, 'attribution.' || t.name),
				coalesce(f.rettype, 'attribution.' || t.name),
				'MODULE_PATHNAME', 'fp_attribution_' || t.name || '_' || f.fn);
		END LOOP;
		EXECUTE format(
			'CREATE TYPE attribution.%1$s (INTERNALLENGTH = %2$s, '
			'INPUT = attribution.%1$s_in, OUTPUT = attribution.%1$s_out, '
			'RECEIVE = attribution.%1$s_recv, SEND = attribution.%1$s_send, '
			'ALIGNMENT = char, STORAGE = plain)', t.name, t.len);
	END LOOP;
END
$$;

-- Comparison support, identical in shape for both types.  The operators
-- live in pg_catalog so that "WHERE trace_id = '4bf9...'" resolves (and
-- uses an index) without the attribution schema on the search_path.
DO $$
DECLARE
	t text;
	op record;
BEGIN
	FOREACH t IN ARRAY ARRAY['trace_id', 'span_id'] LOOP
		FOR op IN SELECT * FROM (VALUES
				('eq', '=', '<>', '=', 'eqsel', 'eqjoinsel'),
				('ne', '<>', '=', '<>', 'neqsel', 'neqjoinsel'),
				('lt', '<', '>=', '>', 'scalarltsel', 'scalarltjoinsel'),
				('le', '<=', '>', '>=', 'scalarlesel', 'scalarlejoinsel'),
				('gt', '>', '<=', '<', 'scalargtsel', 'scalargtjoinsel'),
				('ge', '>=', '<', '<=', 'scalargesel', 'scalargejoinsel'))
				AS v(fn, oper, negator, commutator, restrict_fn, join_fn)
		LOOP
			EXECUTE format(
				'CREATE FUNCTION attribution.%1$s_%2$s(attribution.%1$s, attribution.%1$s) '
				'RETURNS boolean AS %3$L, %4$L LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE',
				t, op.fn, 'MODULE_PATHNAME', 'fp_attribution_' || t || '_' || op.fn);
			EXECUTE format(
				'CREATE OPERATOR pg_catalog.%5$s (LEFTARG = attribution.%1$s, '
				'RIGHTARG = attribution.%1$s, FUNCTION = attribution.%1$s_%2$s, '
				'COMMUTATOR = OPERATOR(pg_catalog.%3$s), NEGATOR = OPERATOR(pg_catalog.%4$s), '
				'RESTRICT = %6$s, JOIN = %7$s%8$s)',
				t, op.fn, op.commutator, op.negator, op.oper,
				op.restrict_fn, op.join_fn,
				CASE WHEN op.fn = 'eq' THEN ', HASHES, MERGES' ELSE '' END);
		END LOOP;
		EXECUTE format(
			'CREATE FUNCTION attribution.%1$s_cmp(attribution.%1$s, attribution.%1$s) '
			'RETURNS integer AS %2$L, %3$L LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE',
			t, 'MODULE_PATHNAME', 'fp_attribution_' || t || '_cmp');
		EXECUTE format(
			'CREATE FUNCTION attribution.%1$s_hash(attribution.%1$s) '
			'RETURNS integer AS %2$L, %3$L LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE',
			t, 'MODULE_PATHNAME', 'fp_attribution_' || t || '_hash');
		EXECUTE format(
			'CREATE FUNCTION attribution.%1$s_hash_extended(attribution.%1$s, bigint) '
			'RETURNS bigint AS %2$L, %3$L LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE',
			t, 'MODULE_PATHNAME', 'fp_attribution_' || t || '_hash_extended');
		EXECUTE format(
			'CREATE OPERATOR CLASS attribution.%1$s_ops DEFAULT FOR TYPE attribution.%1$s '
			'USING btree AS OPERATOR 1 pg_catalog.<, OPERATOR 2 pg_catalog.<=, '
			'OPERATOR 3 pg_catalog.=, OPERATOR 4 pg_catalog.>=, OPERATOR 5 pg_catalog.>, '
			'FUNCTION 1 attribution.%1$s_cmp(attribution.%1$s, attribution.%1$s)', t);
		EXECUTE format(
			'CREATE OPERATOR CLASS attribution.%1$s_hash_ops DEFAULT FOR TYPE attribution.%1$s '
			'USING hash AS OPERATOR 1 pg_catalog.=, '
			'FUNCTION 1 attribution.%1$s_hash(attribution.%1$s), '
			'FUNCTION 2 attribution.%1$s_hash_extended(attribution.%1$s, bigint)', t);
	END LOOP;
END
$$;

--------------------------------------------------------------------------
-- Trace context
--------------------------------------------------------------------------

CREATE FUNCTION attribution.parse_traceparent(traceparent text,
	OUT version smallint, OUT trace_id attribution.trace_id,
	OUT parent_id attribution.span_id, OUT flags smallint, OUT sampled boolean)
	AS 'MODULE_PATHNAME', 'fp_attribution_parse_traceparent_sql'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION attribution.parse_traceparent(text) IS
	'Strict W3C traceparent parse; NULL when the header is invalid';

CREATE FUNCTION attribution.new_command_context(traceparent text, tracestate text,
	OUT trace_id attribution.trace_id, OUT span_id attribution.span_id,
	OUT parent_span_id attribution.span_id, OUT sampled boolean,
	OUT tracestate text, OUT source text)
	AS 'MODULE_PATHNAME', 'fp_attribution_new_command_context'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION attribution.new_command_context(text, text) IS
	'Resolve the trace context of a new command and give it a fresh span id';

CREATE FUNCTION attribution.current_traceparent() RETURNS text
	AS 'MODULE_PATHNAME', 'fp_attribution_current_traceparent'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION attribution.current_traceparent() IS
	'traceparent to propagate downstream: the last command''s span in this transaction, else the incoming context';

--------------------------------------------------------------------------
-- Validation helpers shared by the commands and the triggers
--------------------------------------------------------------------------

-- Not STRICT: a NULL value is meaningful (an error only when required)
CREATE FUNCTION attribution.check_text(field text, value text, max_chars integer, required boolean)
	RETURNS text
	AS 'MODULE_PATHNAME', 'fp_attribution_check_text_sql'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION attribution.currency_is_known(code text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'fp_attribution_currency_is_known_sql'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION attribution.currency_is_known(text) IS
	'True for an upper-case ISO 4217 code accepted as conversion currency';

CREATE FUNCTION attribution.default_attribution_window() RETURNS interval
	AS 'MODULE_PATHNAME', 'fp_attribution_default_attribution_window'
	LANGUAGE C STABLE PARALLEL SAFE;

-- Wait for a transaction still inserting this click (src/common/row_guard.c)
CREATE FUNCTION attribution.await_click(clicks regclass, advertiser_id text,
	click_id uuid) RETURNS boolean
	AS 'MODULE_PATHNAME', 'fp_attribution_await_click'
	LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

-- Building blocks of the triggers and commands, which run as the
-- extension's owner; applications never call them.
REVOKE ALL ON FUNCTION attribution.check_text(text, text, integer, boolean),
	attribution.default_attribution_window(),
	attribution.new_command_context(text, text),
	attribution.await_click(regclass, text, uuid) FROM PUBLIC;

--------------------------------------------------------------------------
-- Tables
--
-- The tenant key advertiser_id leads every table and every primary and
-- unique key, with one type and one collation everywhere (text COLLATE
-- "C"), so a row, its receipt chain and its advertiser's windows can be
-- colocated when the tables are distributed by it.  Each advertiser is a
-- world of its own: click ids, order ids, visitors, windows and chains of
-- one never meet another's.
--------------------------------------------------------------------------

CREATE TABLE attribution.windows (
	advertiser_id text COLLATE "C" NOT NULL DEFAULT 'default'
		CHECK (pg_catalog.char_length(advertiser_id) BETWEEN 1 AND 128),
	affiliate_id text NOT NULL,
	attribution_window interval NOT NULL
		CHECK (attribution_window > interval '0'),
	updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (advertiser_id, affiliate_id)
);
COMMENT ON TABLE attribution.windows IS
	'Per-advertiser and affiliate attribution windows overriding fp_attribution.attribution_window';

CREATE TABLE attribution.clicks (
	advertiser_id text COLLATE "C" NOT NULL DEFAULT 'default',
	click_id uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
	affiliate_id text NOT NULL,
	offer_id text,
	campaign_id text,
	visitor_id text,
	ip inet,
	user_agent text,
	referrer text,
	landing_url text,
	clicked_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	window_ends_at timestamptz NOT NULL,
	trace_id attribution.trace_id NOT NULL,
	span_id attribution.span_id NOT NULL,
	parent_span_id attribution.span_id,
	sampled boolean NOT NULL DEFAULT true,
	tracestate text,
	recorded_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	CONSTRAINT clicks_pkey PRIMARY KEY (advertiser_id, click_id)
);
-- Serves the visitor lookup's ORDER BY clicked_at DESC, click_id DESC
-- LIMIT 1 as a backward scan that stops at the first row
CREATE INDEX clicks_visitor_idx
	ON attribution.clicks (advertiser_id, visitor_id, clicked_at, click_id)
	WHERE visitor_id IS NOT NULL;
CREATE INDEX clicks_trace_idx ON attribution.clicks (trace_id);
COMMENT ON TABLE attribution.clicks IS
	'One row per click; window_ends_at is fixed when the click is recorded';

CREATE TABLE attribution.conversions (
	advertiser_id text COLLATE "C" NOT NULL DEFAULT 'default',
	order_id text NOT NULL,
	conversion_id uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
	click_id uuid,
	affiliate_id text,
	visitor_id text,
	revenue_cents bigint NOT NULL CHECK (revenue_cents >= 0),
	currency text NOT NULL DEFAULT 'USD',
	converted_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	attributed boolean NOT NULL,
	unattributed_reason text CHECK (unattributed_reason IN
		('no_click_reference', 'no_click_for_visitor', 'unknown_click',
		 'click_after_conversion', 'window_expired')),
	latency interval,
	window_ends_at timestamptz,
	trace_id attribution.trace_id NOT NULL,
	span_id attribution.span_id NOT NULL,
	parent_span_id attribution.span_id,
	sampled boolean NOT NULL DEFAULT true,
	tracestate text,
	recorded_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	CHECK (attributed = (unattributed_reason IS NULL)),
	CHECK (NOT attributed OR (click_id IS NOT NULL AND affiliate_id IS NOT NULL
							   AND window_ends_at IS NOT NULL)),
	CONSTRAINT conversions_pkey PRIMARY KEY (advertiser_id, order_id)
);
CREATE INDEX conversions_conversion_id_idx ON attribution.conversions (conversion_id);
CREATE INDEX conversions_click_idx ON attribution.conversions (advertiser_id, click_id);
CREATE INDEX conversions_trace_idx ON attribution.conversions (trace_id);
COMMENT ON TABLE attribution.conversions IS
	'One row per order of an advertiser; a second conversion with the same order_id is the same conversion';

--------------------------------------------------------------------------
-- Triggers: every INSERT, through a command or directly, is validated,
-- attributed and stamped with trace context here.
--------------------------------------------------------------------------

-- Validation, defaults, the window, last-click attribution and the
-- writer's trace context (src/commands/row_triggers.c).  C, so no name in them
-- depends on the caller's search_path; their lookups run as the tables'
-- owner.
CREATE FUNCTION attribution.clicks_before_insert() RETURNS trigger
	AS 'MODULE_PATHNAME', 'fp_attribution_clicks_before_insert'
	LANGUAGE C;
CREATE FUNCTION attribution.conversions_before_insert() RETURNS trigger
	AS 'MODULE_PATHNAME', 'fp_attribution_conversions_before_insert'
	LANGUAGE C;
REVOKE ALL ON FUNCTION attribution.clicks_before_insert(),
	attribution.conversions_before_insert() FROM PUBLIC;
CREATE TRIGGER clicks_before_insert BEFORE INSERT ON attribution.clicks
	FOR EACH ROW EXECUTE FUNCTION attribution.clicks_before_insert();
CREATE TRIGGER conversions_before_insert BEFORE INSERT ON attribution.conversions
	FOR EACH ROW EXECUTE FUNCTION attribution.conversions_before_insert();

--------------------------------------------------------------------------
-- Receipts: one per state change, in the same transaction, chained per
-- aggregate and optionally signed (src/ledger/receipts.c describes the protocol)
--------------------------------------------------------------------------

CREATE TABLE attribution.receipts (
	advertiser_id text COLLATE "C" NOT NULL DEFAULT 'default',
	receipt_id uuid NOT NULL,
	"timestamp" timestamptz NOT NULL,
	sequence bigint NOT NULL CHECK (sequence >= 1),
	correlation_id text NOT NULL,
	causation_id uuid,
	aggregate_id text COLLATE "C" NOT NULL,
	aggregate_type text COLLATE "C" NOT NULL,
	payload jsonb NOT NULL,
	payload_hash bytea NOT NULL,
	signature bytea,
	trace_id attribution.trace_id NOT NULL,
	span_id attribution.span_id NOT NULL,
	prev_hash bytea NOT NULL,
	receipt_hash bytea NOT NULL,
	key_id text,
	PRIMARY KEY (advertiser_id, aggregate_type, aggregate_id, sequence)
);
-- verify_receipt(receipt_id) finds a receipt by its random, globally
-- unique id alone, without knowing the advertiser: an index led by
-- advertiser_id could not serve it.  (Distributed, that audit lookup asks
-- every shard; no command uses it.)  advertiser_id second: the log's
-- integration looks receipts up by both, and with only receipt_id indexed
-- the planner may AND it with a scan of all the advertiser's primary-key
-- entries per receipt (stale statistics after a burst made a batch of
-- 10,000 take 17 s instead of 0.3 s).
CREATE INDEX receipts_receipt_id_idx ON attribution.receipts (receipt_id, advertiser_id);
COMMENT ON TABLE attribution.receipts IS
	'Append-only, hash-chained receipts; one chain per (advertiser_id, aggregate_type, aggregate_id)';

CREATE TABLE attribution.receipt_streams (
	advertiser_id text COLLATE "C" NOT NULL DEFAULT 'default',
	aggregate_type text COLLATE "C" NOT NULL,
	aggregate_id text COLLATE "C" NOT NULL,
	last_sequence bigint NOT NULL,
	last_hash bytea NOT NULL,
	PRIMARY KEY (advertiser_id, aggregate_type, aggregate_id)
);
COMMENT ON TABLE attribution.receipt_streams IS
	'Head of each receipt chain; its row lock serializes appends to one aggregate';

-- Keyed by advertiser like everything else: a key is registered with the
-- first receipt it signs for an advertiser, in that receipt's transaction,
-- so on Citus the registration is a write to the receipt's own shard group
-- (a table shared by all advertisers would be written from a trigger on a
-- shard, which Citus refuses) and verification finds it there.
CREATE TABLE attribution.signing_keys (
	advertiser_id text COLLATE "C" NOT NULL DEFAULT 'default',
	key_id text NOT NULL,
	algorithm text NOT NULL CHECK (algorithm = 'ed25519'),
	public_key bytea NOT NULL CHECK (octet_length(public_key) = 32),
	public_key_pem text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (advertiser_id, key_id)
);
COMMENT ON TABLE attribution.signing_keys IS
	'Public halves of the keys that signed each advertiser''s receipts; key_id = hex of the first 8 bytes of SHA-256(public_key)';

REVOKE ALL ON attribution.receipts, attribution.receipt_streams,
	attribution.signing_keys FROM PUBLIC;
GRANT SELECT ON attribution.signing_keys TO PUBLIC;

CREATE FUNCTION attribution.append_only() RETURNS trigger
	AS 'MODULE_PATHNAME', 'fp_attribution_append_only'
	LANGUAGE C;
CREATE TRIGGER receipts_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
	ON attribution.receipts
	FOR EACH STATEMENT EXECUTE FUNCTION attribution.append_only('receipts');
CREATE TRIGGER signing_keys_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
	ON attribution.signing_keys
	FOR EACH STATEMENT EXECUTE FUNCTION attribution.append_only('signing_keys');
-- Clicks and conversions change only through commands, each of which
-- writes a receipt; verify_all() checks every row against its receipts,
-- which catches a change made with the triggers disabled.
CREATE TRIGGER clicks_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
	ON attribution.clicks
	FOR EACH STATEMENT EXECUTE FUNCTION attribution.append_only('clicks');
-- (a conversion's UPDATE: conversions_follow_receipts below)
CREATE TRIGGER conversions_append_only BEFORE DELETE OR TRUNCATE
	ON attribution.conversions
	FOR EACH STATEMENT EXECUTE FUNCTION attribution.append_only('conversions');

-- Users' data: without this pg_dump would skip the rows of these tables.
-- A restore replays them as they were (src/common/row_guard.c).
SELECT pg_catalog.pg_extension_config_dump('attribution.windows', '');
SELECT pg_catalog.pg_extension_config_dump('attribution.clicks', '');
SELECT pg_catalog.pg_extension_config_dump('attribution.conversions', '');
SELECT pg_catalog.pg_extension_config_dump('attribution.receipts', '');
SELECT pg_catalog.pg_extension_config_dump('attribution.receipt_streams', '');
SELECT pg_catalog.pg_extension_config_dump('attribution.signing_keys', '');

-- Every inserted click or conversion, however it is inserted, gets its
-- receipt here.
CREATE FUNCTION attribution.write_receipt() RETURNS trigger
	AS 'MODULE_PATHNAME', 'fp_attribution_write_receipt'
	LANGUAGE C;
CREATE TRIGGER clicks_write_receipt AFTER INSERT ON attribution.clicks
	FOR EACH ROW EXECUTE FUNCTION attribution.write_receipt('click');
CREATE TRIGGER conversions_write_receipt AFTER INSERT ON attribution.conversions
	FOR EACH ROW EXECUTE FUNCTION attribution.write_receipt('conversion');
-- The row triggers collect some of the rows they write (the receipts of
-- the new rows, the report rollup's click deltas) and this statement
-- trigger writes them when the statement ends, with one INSERT per kind
-- instead of one per row (src/commands/statement_batch.c).
CREATE FUNCTION attribution.write_statement_batches() RETURNS trigger
	AS 'MODULE_PATHNAME', 'fp_attribution_write_statement_batches'
	LANGUAGE C;
CREATE TRIGGER write_statement_batches AFTER INSERT ON attribution.clicks
	FOR EACH STATEMENT EXECUTE FUNCTION attribution.write_statement_batches();
CREATE TRIGGER write_statement_batches AFTER INSERT ON attribution.conversions
	FOR EACH STATEMENT EXECUTE FUNCTION attribution.write_statement_batches();
-- Only these triggers may use the trigger functions (CREATE TRIGGER needs
-- EXECUTE; firing does not).
REVOKE ALL ON FUNCTION attribution.write_receipt(), attribution.append_only(),
	attribution.write_statement_batches() FROM PUBLIC;

CREATE FUNCTION attribution.append_receipt(aggregate_type text, aggregate_id text,
	payload jsonb, causation_id uuid DEFAULT NULL, advertiser_id text DEFAULT 'default')
	RETURNS attribution.receipts
	AS 'MODULE_PATHNAME', 'fp_attribution_append_receipt'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION attribution.append_receipt(text, text, jsonb, uuid, text) FROM PUBLIC;
COMMENT ON FUNCTION attribution.append_receipt(text, text, jsonb, uuid, text) IS
	'Append a receipt for a custom command to an aggregate''s chain';

CREATE FUNCTION attribution.canonical_json(jsonb) RETURNS text
	AS 'MODULE_PATHNAME', 'fp_attribution_canonical_json'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION attribution.canonical_json(jsonb) IS
	'RFC 8785 (JCS) canonical form; payload_hash is its SHA-256';

CREATE FUNCTION attribution.receipt_envelope(attribution.receipts) RETURNS text
	AS 'MODULE_PATHNAME', 'fp_attribution_receipt_envelope_sql'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION attribution.receipt_envelope(attribution.receipts) IS
	'Canonical envelope of a receipt; receipt_hash is its SHA-256';

CREATE FUNCTION attribution.verify_receipt(receipt_id uuid,
	OUT ok boolean, OUT advertiser_id text, OUT aggregate_type text, OUT aggregate_id text,
	OUT sequence bigint, OUT failed_check text, OUT detail text)
	AS 'MODULE_PATHNAME', 'fp_attribution_verify_receipt'
	LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION attribution.verify_chain(aggregate_type text, aggregate_id text,
	advertiser_id text DEFAULT 'default', OUT ok boolean, OUT receipts_checked bigint, OUT failed_receipt_id uuid,
	OUT failed_sequence bigint, OUT failed_check text, OUT detail text)
	AS 'MODULE_PATHNAME', 'fp_attribution_verify_chain'
	LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION attribution.verify_all(
	OUT ok boolean, OUT chains_checked bigint, OUT receipts_checked bigint,
	OUT chains_failed bigint, OUT receipts_failed bigint,
	OUT failed_advertiser_id text, OUT failed_aggregate_type text, OUT failed_aggregate_id text,
	OUT failed_receipt_id uuid, OUT failed_sequence bigint,
	OUT failed_check text, OUT detail text)
	AS 'MODULE_PATHNAME', 'fp_attribution_verify_all'
	LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
-- Verification reads every table as the owner; auditors are granted it
REVOKE ALL ON FUNCTION attribution.verify_receipt(uuid),
	attribution.verify_chain(text, text, text), attribution.verify_all() FROM PUBLIC;
COMMENT ON FUNCTION attribution.verify_receipt(uuid) IS
	'Recompute one receipt''s hashes, link and signature';
COMMENT ON FUNCTION attribution.verify_chain(text, text, text) IS
	'Verify one aggregate''s chain of an advertiser; reports the first failure';
COMMENT ON FUNCTION attribution.verify_all() IS
	'Verify every chain; reports totals and the first failure';
-- On a Citus cluster verify_all() on the coordinator runs this on each
-- node, for each shard group it holds (src/ledger/verify.c): the owner's
-- own connection calls it, so nobody else needs it.
CREATE FUNCTION attribution.verify_shard_group(receipts regclass,
	receipt_streams regclass, clicks regclass, conversions regclass,
	signing_keys regclass,
	OUT ok boolean, OUT chains_checked bigint, OUT receipts_checked bigint,
	OUT chains_failed bigint, OUT receipts_failed bigint,
	OUT failed_advertiser_id text, OUT failed_aggregate_type text, OUT failed_aggregate_id text,
	OUT failed_receipt_id uuid, OUT failed_sequence bigint,
	OUT failed_check text, OUT detail text)
	AS 'MODULE_PATHNAME', 'fp_attribution_verify_shard_group'
	LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED
	SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION attribution.verify_shard_group(regclass, regclass,
	regclass, regclass, regclass) FROM PUBLIC;
COMMENT ON FUNCTION attribution.verify_shard_group(regclass, regclass, regclass, regclass, regclass) IS
	'verify_all() of one Citus shard group, on its node (called by verify_all() on the coordinator)';

-- One JSON object per receipt, in the form the offline recipe reads
-- (hashes and signature in hex, timestamp exactly as in the envelope).
CREATE VIEW attribution.receipt_export AS
	SELECT r.advertiser_id, r.aggregate_type, r.aggregate_id, r.sequence,
		   pg_catalog.jsonb_build_object(
			'advertiser_id', r.advertiser_id,
			'receipt_id', r.receipt_id,
			'timestamp', pg_catalog.to_char(r."timestamp" AT TIME ZONE 'UTC',
											'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
			'sequence', r.sequence,
			'correlation_id', r.correlation_id,
			'causation_id', r.causation_id,
			'aggregate_id', r.aggregate_id,
			'aggregate_type', r.aggregate_type,
			'payload', r.payload,
			'payload_hash', pg_catalog.encode(r.payload_hash, 'hex'),
			'signature', pg_catalog.encode(r.signature, 'hex'),
			'trace_id', r.trace_id::text,
			'span_id', r.span_id::text,
			'prev_hash', pg_catalog.encode(r.prev_hash, 'hex'),
			'receipt_hash', pg_catalog.encode(r.receipt_hash, 'hex'),
			'key_id', r.key_id)::text AS line
	  FROM attribution.receipts r;
REVOKE ALL ON attribution.receipt_export FROM PUBLIC;

--------------------------------------------------------------------------
-- Commands (src/commands*.c): each is one INSERT of its row, run as the
-- function's owner (the extension's owner, who owns the tables; the C code
-- switches user itself, as SECURITY DEFINER would, and qualifies every
-- name), and returns the row's receipt.
--------------------------------------------------------------------------

-- track_click's catalog row is over the 2 kB at which PostgreSQL compresses
-- it: its twelve argument defaults (1.7 kB as a node tree) are compressed,
-- and every simple-protocol call decompresses them twice (when the call is
-- resolved and when it is planned).  With lz4, where the server was built
-- with it, that is 3 k instructions per call instead of 17 k with pglz.
-- Set locally, it lasts to the end of this script (CREATE EXTENSION runs
-- the script in a GUC nest level of its own).
DO $$
BEGIN
	PERFORM pg_catalog.set_config('default_toast_compression', 'lz4', true);
EXCEPTION WHEN invalid_parameter_value THEN
	NULL;						-- built without lz4: pglz, as before
END
$$;

CREATE FUNCTION attribution.track_click(
	affiliate_id text,
	click_id uuid DEFAULT NULL,
	ip inet DEFAULT NULL,
	user_agent text DEFAULT NULL,
	referrer text DEFAULT NULL,
	landing_url text DEFAULT NULL,
	visitor_id text DEFAULT NULL,
	offer_id text DEFAULT NULL,
	campaign_id text DEFAULT NULL,
	clicked_at timestamptz DEFAULT NULL,
	traceparent text DEFAULT NULL,
	tracestate text DEFAULT NULL,
	advertiser_id text DEFAULT 'default')
	RETURNS attribution.receipts
	AS 'MODULE_PATHNAME', 'fp_attribution_track_click'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION attribution.track_click IS
	'Record a click and return its receipt; idempotent by (advertiser_id, click_id)';

CREATE FUNCTION attribution.track_conversion(
	order_id text,
	revenue_cents bigint,
	currency text DEFAULT 'USD',
	click_id uuid DEFAULT NULL,
	visitor_id text DEFAULT NULL,
	converted_at timestamptz DEFAULT NULL,
	traceparent text DEFAULT NULL,
	tracestate text DEFAULT NULL,
	advertiser_id text DEFAULT 'default')
	RETURNS attribution.receipts
	AS 'MODULE_PATHNAME', 'fp_attribution_track_conversion'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION attribution.track_conversion IS
	'Record a conversion, attribute it (last click of the advertiser wins) and return its receipt; idempotent by (advertiser_id, order_id)';

-- The commands run as the extension's owner, so an application role needs
-- USAGE on the schema and EXECUTE on them, nothing on the tables
-- (README, "Roles and grants").
REVOKE ALL ON FUNCTION attribution.track_click(text, uuid, inet, text, text,
	text, text, text, text, timestamptz, text, text, text),
	attribution.track_conversion(text, bigint, text, uuid, text, timestamptz,
	text, text, text) FROM PUBLIC;

--------------------------------------------------------------------------
-- Telemetry status
--------------------------------------------------------------------------

CREATE FUNCTION attribution.telemetry_status_internal(
	OUT invalid_traceparents bigint, OUT invalid_tracestates bigint,
	OUT stats_reset timestamptz, OUT verifications_success bigint,
	OUT verifications_failed bigint)
	AS 'MODULE_PATHNAME', 'fp_attribution_telemetry_status'
	LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

CREATE VIEW attribution.telemetry_status AS
	SELECT * FROM attribution.telemetry_status_internal();

CREATE FUNCTION attribution.reset_telemetry_status() RETURNS void
	AS 'MODULE_PATHNAME', 'fp_attribution_reset_telemetry_status'
	LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
REVOKE ALL ON FUNCTION attribution.reset_telemetry_status() FROM PUBLIC;

--------------------------------------------------------------------------
-- Telemetry: spans, metrics and log records kept in shared memory
--------------------------------------------------------------------------

-- The row trigger that turns each written click, conversion or receipt
-- into an event span, a log record and metric increments (pending until
-- commit).  Its argument is the table's logical name: the C code never
-- identifies a table by its name, so a shard or copy of the table (which
-- carries the trigger) is classified and named as the table itself.
CREATE FUNCTION attribution.telemetry_row_written() RETURNS trigger
	AS 'MODULE_PATHNAME', 'fp_attribution_telemetry_row_written'
	LANGUAGE C;
REVOKE ALL ON FUNCTION attribution.telemetry_row_written() FROM PUBLIC;
CREATE TRIGGER telemetry_row_written AFTER INSERT ON attribution.clicks
	FOR EACH ROW EXECUTE FUNCTION attribution.telemetry_row_written('clicks');
CREATE TRIGGER telemetry_row_written AFTER INSERT ON attribution.conversions
	FOR EACH ROW EXECUTE FUNCTION attribution.telemetry_row_written('conversions');
CREATE TRIGGER telemetry_row_written AFTER INSERT ON attribution.receipts
	FOR EACH ROW EXECUTE FUNCTION attribution.telemetry_row_written('receipts');

-- affiliate.windows.active is computed when read, at a cost that grows with
-- the open windows only, never with all clicks or conversions: the open
-- clicks, less the distinct clicks of attributed conversions whose window
-- (a copy of the click's, kept on the conversion for this) is still open.
-- Both are index-only range scans; the second index's order serves the
-- DISTINCT (a click is (advertiser_id, click_id)).  The gauge counts
-- across advertisers, so these indexes lead with window_ends_at, not with
-- advertiser_id: led by the tenant key, the range scan would become a
-- scan of every entry.  (Distributed, each shard counts its own; no
-- command looks anything up through them.)
CREATE INDEX clicks_window_ends_idx ON attribution.clicks (window_ends_at);
CREATE INDEX conversions_window_ends_idx
	ON attribution.conversions (window_ends_at, advertiser_id, click_id)
	WHERE attributed;

CREATE FUNCTION attribution.windows_active() RETURNS bigint
	LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp AS $$
	SELECT (SELECT pg_catalog.count(*) FROM attribution.clicks
			 WHERE window_ends_at OPERATOR(pg_catalog.>) pg_catalog.now())
		   OPERATOR(pg_catalog.-)
		   (SELECT pg_catalog.count(*) FROM (
				SELECT DISTINCT window_ends_at, advertiser_id, click_id
				  FROM attribution.conversions
				 WHERE attributed
				   AND window_ends_at OPERATOR(pg_catalog.>) pg_catalog.now()) converted)
$$;
COMMENT ON FUNCTION attribution.windows_active() IS
	'Clicks whose attribution window is open and that have not converted (affiliate.windows.active)';

CREATE FUNCTION attribution.spans_internal(
	OUT trace_id attribution.trace_id, OUT span_id attribution.span_id,
	OUT parent_span_id attribution.span_id, OUT name text, OUT kind text,
	OUT start_time timestamptz, OUT end_time timestamptz,
	OUT duration_ms double precision, OUT status_code text,
	OUT status_message text, OUT trace_state text, OUT attributes jsonb,
	OUT events jsonb, OUT start_time_unix_nano bigint)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'fp_attribution_spans'
	LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

CREATE VIEW attribution.spans AS
	SELECT * FROM attribution.spans_internal();
COMMENT ON VIEW attribution.spans IS
	'Recent spans in shared memory, oldest first; parent_span_id is NULL for a root span';

CREATE FUNCTION attribution.logs_internal(
	OUT "time" timestamptz, OUT severity_number integer, OUT severity_text text,
	OUT event_name text, OUT body text, OUT trace_id attribution.trace_id,
	OUT span_id attribution.span_id, OUT attributes jsonb,
	OUT time_unix_nano bigint)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'fp_attribution_logs'
	LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

CREATE VIEW attribution.logs AS
	SELECT * FROM attribution.logs_internal();
COMMENT ON VIEW attribution.logs IS
	'Recent structured log records in shared memory, oldest first';

CREATE FUNCTION attribution.metrics_internal(
	OUT name text, OUT kind text, OUT unit text, OUT attributes jsonb,
	OUT value bigint, OUT count bigint, OUT sum double precision,
	OUT bucket_bounds double precision[], OUT bucket_counts bigint[],
	OUT start_time timestamptz, OUT description text)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'fp_attribution_metrics'
	LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

CREATE VIEW attribution.metrics AS
	SELECT * FROM attribution.metrics_internal()
	UNION ALL
	SELECT 'affiliate.windows.active', 'gauge', '{click}', '{}'::jsonb,
		   attribution.windows_active(), NULL, NULL, NULL, NULL, pg_catalog.now(),
		   'Clicks whose attribution window is open and that have not converted.';
COMMENT ON VIEW attribution.metrics IS
	'One row per metric series: sums and the gauge in value, histograms in count, sum and buckets';

CREATE FUNCTION attribution.telemetry_buffers_internal(
	OUT spans_capacity bigint, OUT spans_used bigint, OUT spans_written bigint,
	OUT spans_dropped bigint, OUT spans_export_dropped bigint,
	OUT logs_capacity bigint, OUT logs_used bigint, OUT logs_written bigint,
	OUT logs_dropped bigint, OUT logs_export_dropped bigint,
	OUT affiliate_series_capacity bigint, OUT affiliate_series_used bigint,
	OUT affiliate_series_overflow bigint, OUT metrics_export_dropped bigint)
	AS 'MODULE_PATHNAME', 'fp_attribution_telemetry_buffers'
	LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

-- Same columns as above, then the buffers'
CREATE OR REPLACE VIEW attribution.telemetry_status AS
	SELECT s.*, b.* FROM attribution.telemetry_status_internal() s,
		attribution.telemetry_buffers_internal() b;

-- Telemetry shows every session's work (log records name orders, errors
-- and, with log_client_ip, addresses): like pg_stat_statements, readable
-- by superusers and members of pg_read_all_stats (who also need USAGE on
-- the schema).  A view checks EXECUTE on the functions it calls against
-- the reader, so the functions get the same grants as the views;
-- windows_active() reads clicks and conversions with its owner's rights.
REVOKE ALL ON FUNCTION attribution.spans_internal(),
	attribution.logs_internal(), attribution.metrics_internal(),
	attribution.telemetry_status_internal(),
	attribution.telemetry_buffers_internal(),
	attribution.windows_active() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION attribution.spans_internal(),
	attribution.logs_internal(), attribution.metrics_internal(),
	attribution.telemetry_status_internal(),
	attribution.telemetry_buffers_internal(),
	attribution.windows_active() TO pg_read_all_stats;
GRANT SELECT ON attribution.spans, attribution.logs, attribution.metrics,
	attribution.telemetry_status TO pg_read_all_stats;

CREATE FUNCTION attribution.reset_telemetry(signal text DEFAULT NULL) RETURNS void
	AS 'MODULE_PATHNAME', 'fp_attribution_reset_telemetry'
	LANGUAGE C VOLATILE PARALLEL SAFE;
REVOKE ALL ON FUNCTION attribution.reset_telemetry(text) FROM PUBLIC;
COMMENT ON FUNCTION attribution.reset_telemetry(text) IS
	'Empty the spans or logs buffer, or zero the metrics (new start time); NULL: all three';

--------------------------------------------------------------------------
-- OTLP exporter status: one row per signal (traces, metrics, logs)
--------------------------------------------------------------------------

CREATE FUNCTION attribution.exporter_status_internal(
	OUT signal text, OUT sent bigint, OUT failed bigint, OUT retried bigint,
	OUT dropped bigint, OUT rejected bigint, OUT last_error text,
	OUT last_error_time timestamptz, OUT last_success_time timestamptz,
	OUT requests bigint, OUT avg_request_ms double precision)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'fp_attribution_exporter_status'
	LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

CREATE VIEW attribution.exporter_status AS
	SELECT * FROM attribution.exporter_status_internal();

-- Like the telemetry views: for superusers and pg_read_all_stats (so
-- pg_monitor); last_error names the collector, with its credentials and
-- query string redacted.
REVOKE ALL ON FUNCTION attribution.exporter_status_internal() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION attribution.exporter_status_internal()
	TO pg_read_all_stats;
GRANT SELECT ON attribution.exporter_status TO pg_read_all_stats;

--------------------------------------------------------------------------
-- Conversion lifecycle: offers and commissions, the status of a
-- conversion and the commands that change it (src/commands/lifecycle.c).  A
-- conversion's row changes only through these commands, each of which
-- appends one receipt to its chain; the row is always the fold of that
-- chain (doc/receipts.md, "Conversion history").
--------------------------------------------------------------------------

CREATE TABLE attribution.offers (
	advertiser_id text COLLATE "C" NOT NULL DEFAULT 'default'
		CHECK (pg_catalog.char_length(advertiser_id) BETWEEN 1 AND 128),
	offer_id text NOT NULL
		CHECK (pg_catalog.char_length(offer_id) BETWEEN 1 AND 128),
	payout_type text NOT NULL CHECK (payout_type IN ('cpa', 'revshare')),
	-- cpa: minor units of currency per conversion; revshare: basis points
	-- of the conversion's revenue (at most 100 %)
	payout bigint NOT NULL
		CHECK (payout >= 0 AND (payout_type = 'cpa' OR payout <= 10000)),
	currency text NOT NULL DEFAULT 'USD'
		CHECK (attribution.currency_is_known(currency)),
	active boolean NOT NULL DEFAULT true,
	hold_period interval NOT NULL DEFAULT interval '30 days'
		CHECK (hold_period >= interval '0'),
	updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (advertiser_id, offer_id)
);
COMMENT ON TABLE attribution.offers IS
	'Per-advertiser offers a click may name: payout (cpa or revshare) and hold period';
SELECT pg_catalog.pg_extension_config_dump('attribution.offers', '');

-- Set by the insert trigger (offer_id, commission_cents, status) and by
-- the lifecycle commands only.  Amounts in minor units of currency.
ALTER TABLE attribution.conversions
	ADD COLUMN offer_id text,
	ADD COLUMN status text NOT NULL DEFAULT 'pending'
		CHECK (status IN ('pending', 'approved', 'rejected', 'reversed')),
	ADD COLUMN commission_cents bigint CHECK (commission_cents >= 0),
	ADD COLUMN refunded_cents bigint NOT NULL DEFAULT 0
		CHECK (refunded_cents >= 0 AND refunded_cents <= revenue_cents),
	ADD COLUMN commission_reversed_cents bigint
		CHECK (commission_reversed_cents >= 0
			   AND commission_reversed_cents <= commission_cents),
	ADD CHECK ((commission_cents IS NULL) = (commission_reversed_cents IS NULL));

-- Late clicks (src/commands/late_clicks.c): a new click attributes the conversions
-- recorded "unknown_click" that named it within
-- fp_attribution.late_click_grace.  Named to fire after
-- clicks_write_receipt (AFTER triggers fire in name order), so the
-- attribution's receipt can name the click's as its cause.
CREATE FUNCTION attribution.clicks_attribute_late() RETURNS trigger
	AS 'MODULE_PATHNAME', 'fp_attribution_clicks_attribute_late'
	LANGUAGE C;
REVOKE ALL ON FUNCTION attribution.clicks_attribute_late() FROM PUBLIC;
CREATE TRIGGER write_late_attributions AFTER INSERT ON attribution.clicks
	FOR EACH ROW EXECUTE FUNCTION attribution.clicks_attribute_late();

-- The four commands share one implementation and one shape: the order,
-- its advertiser, the reason, an optional idempotency key and the trace
-- context; refund_conversion also takes the amount.
CREATE FUNCTION attribution.approve_conversion(order_id text,
	advertiser_id text DEFAULT 'default', reason text DEFAULT NULL,
	command_id uuid DEFAULT NULL, traceparent text DEFAULT NULL,
	tracestate text DEFAULT NULL)
	RETURNS attribution.receipts
	AS 'MODULE_PATHNAME', 'fp_attribution_approve_conversion'
	LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION attribution.reject_conversion(order_id text,
	advertiser_id text DEFAULT 'default', reason text DEFAULT NULL,
	command_id uuid DEFAULT NULL, traceparent text DEFAULT NULL,
	tracestate text DEFAULT NULL)
	RETURNS attribution.receipts
	AS 'MODULE_PATHNAME', 'fp_attribution_reject_conversion'
	LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION attribution.reverse_conversion(order_id text,
	advertiser_id text DEFAULT 'default', reason text DEFAULT NULL,
	command_id uuid DEFAULT NULL, traceparent text DEFAULT NULL,
	tracestate text DEFAULT NULL)
	RETURNS attribution.receipts
	AS 'MODULE_PATHNAME', 'fp_attribution_reverse_conversion'
	LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION attribution.refund_conversion(order_id text,
	advertiser_id text, amount_cents bigint, reason text DEFAULT NULL,
	command_id uuid DEFAULT NULL, traceparent text DEFAULT NULL,
	tracestate text DEFAULT NULL)
	RETURNS attribution.receipts
	AS 'MODULE_PATHNAME', 'fp_attribution_refund_conversion'
	LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION attribution.approve_conversion IS
	'pending -> approved; returns the receipt; idempotent by command_id';
COMMENT ON FUNCTION attribution.reject_conversion IS
	'pending -> rejected; returns the receipt; idempotent by command_id';
COMMENT ON FUNCTION attribution.reverse_conversion IS
	'approved -> reversed (full commission clawback); returns the receipt; idempotent by command_id';
COMMENT ON FUNCTION attribution.refund_conversion IS
	'Refund part of a pending or approved conversion (all of it: reversed); returns the receipt; idempotent by command_id';
-- Only the commands above and late attribution change a conversion: the
-- row trigger refuses any other UPDATE (src/commands/lifecycle.c).
CREATE FUNCTION attribution.conversion_follows_receipt() RETURNS trigger
	AS 'MODULE_PATHNAME', 'fp_attribution_conversion_follows_receipt'
	LANGUAGE C;
CREATE TRIGGER conversions_follow_receipts BEFORE UPDATE ON attribution.conversions
	FOR EACH ROW EXECUTE FUNCTION attribution.conversion_follows_receipt();
REVOKE ALL ON FUNCTION attribution.conversion_follows_receipt() FROM PUBLIC;
REVOKE ALL ON FUNCTION
	attribution.approve_conversion(text, text, text, uuid, text, text),
	attribution.reject_conversion(text, text, text, uuid, text, text),
	attribution.reverse_conversion(text, text, text, uuid, text, text),
	attribution.refund_conversion(text, text, bigint, text, uuid, text, text)
	FROM PUBLIC;

-- Fraud and quality rules (src/commands/fraud_rules.c): the insert trigger holds a
-- new attributed conversion that breaks one pending, with the rule as its
-- review_reason (a member of its first receipt when set).
ALTER TABLE attribution.conversions
	ADD COLUMN review_reason text CHECK (review_reason IN
		('click_too_fast', 'self_referral', 'too_many_clicks_per_ip'));
-- The self-referral rule's list: visitor ids known to be the affiliate's own
CREATE TABLE attribution.affiliate_visitors (
	advertiser_id text COLLATE "C" NOT NULL DEFAULT 'default'
		CHECK (pg_catalog.char_length(advertiser_id) BETWEEN 1 AND 128),
	affiliate_id text NOT NULL,
	visitor_id text NOT NULL,
	PRIMARY KEY (advertiser_id, affiliate_id, visitor_id)
);
COMMENT ON TABLE attribution.affiliate_visitors IS
	'Visitor ids of the affiliates themselves: a conversion by one is a self-referral';
SELECT pg_catalog.pg_extension_config_dump('attribution.affiliate_visitors', '');
-- Serves the per-IP rule's count of one IP's clicks on one offer in one
-- day as an index range that stops after the limit
CREATE INDEX clicks_ip_offer_idx
	ON attribution.clicks (advertiser_id, offer_id, ip, clicked_at)
	WHERE ip IS NOT NULL AND offer_id IS NOT NULL;

-- Automatic approval (src/commands/auto_approve.c): the worker calls this every
-- fp_attribution.auto_approve_interval.  Each approval is an ordinary
-- command with its receipt and trace; a conversion that another session
-- changed meanwhile is skipped.  The index serves the per-offer range of
-- pending conversions older than the offer's hold period.
CREATE INDEX conversions_due_idx
	ON attribution.conversions (advertiser_id, offer_id, converted_at)
	WHERE status = 'pending' AND review_reason IS NULL AND offer_id IS NOT NULL;
CREATE FUNCTION attribution.approve_due_conversions(max_conversions integer DEFAULT 1000)
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	due record;
	approved bigint := 0;
BEGIN
	FOR due IN
		SELECT c.advertiser_id, c.order_id
		  FROM attribution.offers o
		 CROSS JOIN LATERAL (
			SELECT c.advertiser_id, c.order_id, c.converted_at
			  FROM attribution.conversions c
			 WHERE c.advertiser_id OPERATOR(pg_catalog.=) o.advertiser_id
			   AND c.offer_id OPERATOR(pg_catalog.=) o.offer_id
			   AND c.status OPERATOR(pg_catalog.=) 'pending'
			   AND c.review_reason IS NULL
			   AND c.converted_at OPERATOR(pg_catalog.<=)
				   (pg_catalog.now() OPERATOR(pg_catalog.-) o.hold_period)
			 ORDER BY c.converted_at
			 LIMIT max_conversions) c
		 ORDER BY c.converted_at, c.advertiser_id, c.order_id
		 LIMIT max_conversions
	LOOP
		BEGIN
			PERFORM attribution.approve_conversion(due.order_id, due.advertiser_id,
												   'hold period passed');
			approved := approved OPERATOR(pg_catalog.+) 1;
		EXCEPTION WHEN object_not_in_prerequisite_state THEN
			NULL;	-- rejected, reversed or approved meanwhile
		END;
	END LOOP;
	RETURN approved;
END
$$;
COMMENT ON FUNCTION attribution.approve_due_conversions(integer) IS
	'Approve up to max_conversions pending conversions whose offer''s hold period has passed (not those held by a fraud rule); returns how many';
REVOKE ALL ON FUNCTION attribution.approve_due_conversions(integer) FROM PUBLIC;

-- Reporting (README, "Reports").  Days are UTC days; money is per
-- currency, never summed across currencies.
--
-- The views read per-day rollups, never the clicks and conversions: each
-- click written and each attributed conversion inserted or changed adds
-- its contribution (for a change, new minus old) in the same transaction
-- as a row appended to attribution.report_deltas, and compact_report()
-- folds an advertiser's deltas into attribution.report_totals, one row
-- per key (the ledger worker runs compact_reports() every
-- fp_attribution.log_interval).  Appended, not upserted: a counter row
-- per (advertiser, affiliate, offer, day) updated by each command would
-- stay locked until the command commits, so concurrent clicks on one
-- affiliate's offer on one day would queue behind each other; an
-- appended row locks nothing, and the fold's upserts run off the command
-- path.  A fold moves deltas into totals in one transaction and the views
-- add both in one snapshot, so they are exact at any time; unfolded
-- deltas only make them slower.  rebuild_report() recomputes an
-- advertiser's rollup from its rows (after a load that bypassed the
-- triggers).
CREATE TABLE attribution.report_totals (
	advertiser_id text COLLATE "C" NOT NULL,
	day date NOT NULL,
	affiliate_id text NOT NULL,
	offer_id text,
	-- NULL: the key's clicks; conversions and money are per currency
	currency text,
	clicks bigint NOT NULL DEFAULT 0,
	-- attributed conversions, by status
	conversions bigint NOT NULL DEFAULT 0,
	pending bigint NOT NULL DEFAULT 0,
	approved bigint NOT NULL DEFAULT 0,
	rejected bigint NOT NULL DEFAULT 0,
	reversed bigint NOT NULL DEFAULT 0,
	revenue_cents bigint NOT NULL DEFAULT 0,
	refunded_cents bigint NOT NULL DEFAULT 0,
	-- of them, those with a commission, and its amounts
	commissioned bigint NOT NULL DEFAULT 0,
	commission_cents bigint NOT NULL DEFAULT 0,
	commission_reversed_cents bigint NOT NULL DEFAULT 0,
	-- of those, the approved or reversed ones (what the balance owes),
	-- and the commission still due on the pending ones
	earned bigint NOT NULL DEFAULT 0,
	earned_commission_cents bigint NOT NULL DEFAULT 0,
	earned_reversed_cents bigint NOT NULL DEFAULT 0,
	pending_commission_cents bigint NOT NULL DEFAULT 0,
	-- led by the advertiser and the day: the views' filters are a range
	CONSTRAINT report_totals_key UNIQUE NULLS NOT DISTINCT
		(advertiser_id, day, affiliate_id, offer_id, currency)
) WITH (fillfactor = 90);	-- room on the page for a fold's new versions (HOT)
COMMENT ON TABLE attribution.report_totals IS
	'Report rollup: per advertiser, UTC day, affiliate, offer and currency, the folded sums of attribution.report_deltas';
-- Insert-only on the command path, emptied by every fold: no index (a
-- fold reads all of an advertiser's rows), vacuumed eagerly
CREATE TABLE attribution.report_deltas (
	LIKE attribution.report_totals INCLUDING DEFAULTS
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
COMMENT ON TABLE attribution.report_deltas IS
	'Report rollup: contributions of the clicks and conversion changes not yet folded into attribution.report_totals';
REVOKE ALL ON attribution.report_totals, attribution.report_deltas FROM PUBLIC;
-- Dumped (in the snapshot of the clicks and conversions) and restored as
-- dumped: the triggers add nothing during a restore
SELECT pg_catalog.pg_extension_config_dump('attribution.report_totals', '');
SELECT pg_catalog.pg_extension_config_dump('attribution.report_deltas', '');

-- What one attributed conversion row contributes to the rollup, times
-- sign (-1 takes an old row back): the one definition the trigger and
-- rebuild_report() share, in C (src/reports/report_rollup.c), which the
-- trigger calls without SQL: as a SQL expression its 20 columns were
-- compiled anew by every conversion's INSERT.
CREATE FUNCTION attribution.report_contribution(sign integer, advertiser text,
	converted_at timestamptz, affiliate_id text, offer_id text, currency text,
	status text, revenue bigint, refunded bigint, commission bigint,
	commission_reversed bigint)
	RETURNS attribution.report_deltas
	AS 'MODULE_PATHNAME', 'fp_attribution_report_contribution'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- The row triggers (src/reports/report_rollup.c): C, run as the owner
-- of the table, so a role allowed to INSERT clicks needs no privilege on
-- the rollup.  A conversion counts while attributed: an insert adds it,
-- an update (a lifecycle command, a late attribution) takes the old row
-- back and adds the new one.  Plain INSERT ... VALUES, each a
-- single-shard insert on Citus.  A restore brings the rollup back as
-- dumped: the triggers then add nothing.
CREATE FUNCTION attribution.report_click() RETURNS trigger
	AS 'MODULE_PATHNAME', 'fp_attribution_report_click'
	LANGUAGE C;
CREATE FUNCTION attribution.report_conversion() RETURNS trigger
	AS 'MODULE_PATHNAME', 'fp_attribution_report_conversion'
	LANGUAGE C;
REVOKE ALL ON FUNCTION attribution.report_click(),
	attribution.report_conversion(),
	attribution.report_contribution(integer, text, timestamptz, text, text, text,
		text, bigint, bigint, bigint, bigint)
	FROM PUBLIC;
CREATE TRIGGER report_rollup AFTER INSERT ON attribution.clicks
	FOR EACH ROW EXECUTE FUNCTION attribution.report_click();
CREATE TRIGGER report_rollup AFTER INSERT OR UPDATE ON attribution.conversions
	FOR EACH ROW EXECUTE FUNCTION attribution.report_conversion();

-- Fold an advertiser's deltas into its totals.  The DELETE takes the
-- deltas committed before the statement (a concurrent fold's wait for our
-- row locks, then skips what we deleted), the upsert adds them, both in
-- one transaction.
CREATE FUNCTION attribution.compact_report(advertiser_id text DEFAULT 'default')
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
	folded bigint;
BEGIN
	WITH deltas AS (
		DELETE FROM attribution.report_deltas d
		 WHERE d.advertiser_id = compact_report.advertiser_id
		RETURNING d.*),
	added AS (
		INSERT INTO attribution.report_totals AS t
		SELECT f.advertiser_id, f.day, f.affiliate_id, f.offer_id, f.currency,
			   sum(f.clicks), sum(f.conversions), sum(f.pending), sum(f.approved),
			   sum(f.rejected), sum(f.reversed), sum(f.revenue_cents),
			   sum(f.refunded_cents), sum(f.commissioned), sum(f.commission_cents),
			   sum(f.commission_reversed_cents), sum(f.earned),
			   sum(f.earned_commission_cents), sum(f.earned_reversed_cents),
			   sum(f.pending_commission_cents)
		  FROM deltas f
		 GROUP BY 1, 2, 3, 4, 5
		ON CONFLICT (advertiser_id, day, affiliate_id, offer_id, currency) DO UPDATE SET
			clicks = t.clicks + excluded.clicks,
			conversions = t.conversions + excluded.conversions,
			pending = t.pending + excluded.pending,
			approved = t.approved + excluded.approved,
			rejected = t.rejected + excluded.rejected,
			reversed = t.reversed + excluded.reversed,
			revenue_cents = t.revenue_cents + excluded.revenue_cents,
			refunded_cents = t.refunded_cents + excluded.refunded_cents,
			commissioned = t.commissioned + excluded.commissioned,
			commission_cents = t.commission_cents + excluded.commission_cents,
			commission_reversed_cents = t.commission_reversed_cents + excluded.commission_reversed_cents,
			earned = t.earned + excluded.earned,
			earned_commission_cents = t.earned_commission_cents + excluded.earned_commission_cents,
			earned_reversed_cents = t.earned_reversed_cents + excluded.earned_reversed_cents,
			pending_commission_cents = t.pending_commission_cents + excluded.pending_commission_cents)
	SELECT count(*) INTO folded FROM deltas;
	RETURN folded;
END
$$;
COMMENT ON FUNCTION attribution.compact_report(text) IS
	'Fold an advertiser''s report deltas into its report totals; returns how many deltas';
-- Recompute an advertiser's rollup from its clicks and conversions, as
-- one folded row per key.  SHARE locks: no click or conversion changes
-- while it runs (they would be counted twice or never).
CREATE FUNCTION attribution.rebuild_report(advertiser_id text DEFAULT 'default')
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	keys bigint;
BEGIN
	LOCK TABLE attribution.clicks, attribution.conversions IN SHARE MODE;
	DELETE FROM attribution.report_deltas d WHERE d.advertiser_id = rebuild_report.advertiser_id;
	DELETE FROM attribution.report_totals t WHERE t.advertiser_id = rebuild_report.advertiser_id;
	INSERT INTO attribution.report_totals
	SELECT e.advertiser_id, e.day, e.affiliate_id, e.offer_id, e.currency,
		   sum(e.clicks), sum(e.conversions), sum(e.pending), sum(e.approved),
		   sum(e.rejected), sum(e.reversed), sum(e.revenue_cents),
		   sum(e.refunded_cents), sum(e.commissioned), sum(e.commission_cents),
		   sum(e.commission_reversed_cents), sum(e.earned),
		   sum(e.earned_commission_cents), sum(e.earned_reversed_cents),
		   sum(e.pending_commission_cents)
	  FROM (SELECT c.advertiser_id, (c.clicked_at AT TIME ZONE 'UTC')::date AS day,
				   c.affiliate_id, c.offer_id, NULL::text AS currency, 1 AS clicks,
				   0 AS conversions, 0 AS pending, 0 AS approved, 0 AS rejected,
				   0 AS reversed, 0 AS revenue_cents, 0 AS refunded_cents,
				   0 AS commissioned, 0 AS commission_cents, 0 AS commission_reversed_cents,
				   0 AS earned, 0 AS earned_commission_cents, 0 AS earned_reversed_cents,
				   0 AS pending_commission_cents
			  FROM attribution.clicks c
			 WHERE c.advertiser_id = rebuild_report.advertiser_id
			UNION ALL
			SELECT k.*
			  FROM attribution.conversions c
			 CROSS JOIN LATERAL attribution.report_contribution(1, c.advertiser_id,
					c.converted_at, c.affiliate_id, c.offer_id, c.currency, c.status,
					c.revenue_cents, c.refunded_cents, c.commission_cents,
					c.commission_reversed_cents) k
			 WHERE c.advertiser_id = rebuild_report.advertiser_id AND c.attributed) e
	 GROUP BY 1, 2, 3, 4, 5;
	GET DIAGNOSTICS keys = ROW_COUNT;
	RETURN keys;
END
$$;
COMMENT ON FUNCTION attribution.rebuild_report(text) IS
	'Recompute an advertiser''s report rollup from its clicks and conversions; returns the number of keys';

-- Every advertiser's, one fold each; what the ledger worker runs
CREATE FUNCTION attribution.compact_reports() RETURNS bigint
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	a text;
	folded bigint := 0;
	coordinator boolean;
BEGIN
	-- On Citus every node sees all the deltas: the coordinator folds
	IF EXISTS (SELECT FROM pg_catalog.pg_extension
				WHERE extname OPERATOR(pg_catalog.=) 'citus') THEN
		EXECUTE 'SELECT pg_catalog.citus_is_coordinator()' INTO coordinator;
		IF NOT coordinator THEN
			RETURN 0;
		END IF;
	END IF;
	FOR a IN SELECT DISTINCT d.advertiser_id FROM attribution.report_deltas d LOOP
		folded := folded OPERATOR(pg_catalog.+) attribution.compact_report(a);
	END LOOP;
	RETURN folded;
END
$$;
COMMENT ON FUNCTION attribution.compact_reports() IS
	'Fold every advertiser''s report deltas into the report totals; returns how many deltas';
REVOKE ALL ON FUNCTION attribution.compact_report(text),
	attribution.compact_reports(), attribution.rebuild_report(text) FROM PUBLIC;

-- Totals and unfolded deltas: the views group this.  A UNION ALL under
-- their GROUP BY, so that a filter on advertiser_id or day reaches both
-- tables' scans.
CREATE VIEW attribution.report_rollup AS
SELECT * FROM attribution.report_totals
UNION ALL
SELECT * FROM attribution.report_deltas;
REVOKE ALL ON attribution.report_rollup FROM PUBLIC;
COMMENT ON VIEW attribution.report_rollup IS
	'Report rollup rows, folded or not; several rows may share a key';

CREATE VIEW attribution.daily_report AS
SELECT r.advertiser_id, r.affiliate_id, r.offer_id, r.day,
	   pg_catalog.sum(r.clicks)::bigint AS clicks,
	   pg_catalog.sum(r.conversions)::bigint AS conversions,
	   pg_catalog.sum(r.pending)::bigint AS pending,
	   pg_catalog.sum(r.approved)::bigint AS approved,
	   pg_catalog.sum(r.rejected)::bigint AS rejected,
	   pg_catalog.sum(r.reversed)::bigint AS reversed
  FROM attribution.report_rollup r
 GROUP BY 1, 2, 3, 4;
COMMENT ON VIEW attribution.daily_report IS
	'Per advertiser, affiliate, offer and UTC day: clicks (by click time) and attributed conversions by status (by conversion time)';
CREATE VIEW attribution.daily_revenue AS
SELECT r.advertiser_id, r.affiliate_id, r.offer_id, r.day, r.currency,
	   pg_catalog.sum(r.revenue_cents) AS revenue_cents,
	   pg_catalog.sum(r.refunded_cents) AS refunded_cents,
	   CASE WHEN pg_catalog.sum(r.commissioned) OPERATOR(pg_catalog.>) 0
		   THEN pg_catalog.sum(r.commission_cents) END AS commission_cents,
	   CASE WHEN pg_catalog.sum(r.commissioned) OPERATOR(pg_catalog.>) 0
		   THEN pg_catalog.sum(r.commission_reversed_cents) END AS commission_reversed_cents
  FROM attribution.report_rollup r
 WHERE r.currency IS NOT NULL
 GROUP BY 1, 2, 3, 4, 5;
COMMENT ON VIEW attribution.daily_revenue IS
	'Per advertiser, affiliate, offer, UTC day and currency: revenue, refunds, commission and commission reversed of attributed conversions';
CREATE VIEW attribution.affiliate_balances AS
SELECT r.advertiser_id, r.affiliate_id, r.currency,
	   CASE WHEN pg_catalog.sum(r.earned) OPERATOR(pg_catalog.>) 0
		   THEN pg_catalog.sum(r.earned_commission_cents) END AS approved_commission_cents,
	   CASE WHEN pg_catalog.sum(r.earned) OPERATOR(pg_catalog.>) 0
		   THEN pg_catalog.sum(r.earned_reversed_cents) END AS reversed_commission_cents,
	   pg_catalog.sum(r.earned_commission_cents OPERATOR(pg_catalog.-) r.earned_reversed_cents)
		   AS due_cents,
	   pg_catalog.sum(r.pending_commission_cents) AS pending_cents
  FROM attribution.report_rollup r
 WHERE r.currency IS NOT NULL
 GROUP BY 1, 2, 3
HAVING pg_catalog.sum(r.commissioned) OPERATOR(pg_catalog.>) 0;
COMMENT ON VIEW attribution.affiliate_balances IS
	'Per advertiser, affiliate and currency: commission approved, reversed (reversals and refunds), due (approved minus reversed) and still pending';
REVOKE ALL ON attribution.daily_report, attribution.daily_revenue,
	attribution.affiliate_balances FROM PUBLIC;

--------------------------------------------------------------------------
-- Receipt logs: one append-only RFC 6962 Merkle log per advertiser over its
-- receipts, integrated by the background worker, with signed C2SP
-- checkpoints (src/ledger/log.c describes the protocol; doc/receipts.md the
-- formats and the threat model)
--------------------------------------------------------------------------

-- Two indexes only, since integration maintains them for every receipt:
-- receipt_proof(receipt_id) finds the receipt's advertiser through
-- receipts_receipt_id_idx, then the entry by its unique key
CREATE TABLE attribution.log_entries (
	advertiser_id text COLLATE "C" NOT NULL,
	log_index bigint NOT NULL CHECK (log_index >= 0),
	receipt_id uuid NOT NULL,
	leaf_hash bytea NOT NULL CHECK (octet_length(leaf_hash) = 32),
	integrated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (advertiser_id, log_index),
	UNIQUE (advertiser_id, receipt_id)
);
COMMENT ON TABLE attribution.log_entries IS
	'Log index and leaf hash, SHA-256(0x00 || receipt_hash), of each integrated receipt';

-- Receipts written but not yet integrated: the receipt write adds a row
-- (insert only: no lock, no hot row), integration deletes the rows it
-- appends, so finding pending receipts costs O(batch) however large the
-- logs grow.  Vacuumed eagerly because it is all churn.
CREATE TABLE attribution.log_queue (
	advertiser_id text COLLATE "C" NOT NULL,
	receipt_id uuid NOT NULL,
	receipt_hash bytea NOT NULL,
	"timestamp" timestamptz NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
COMMENT ON TABLE attribution.log_queue IS
	'Receipts waiting to be integrated into their advertiser''s log (receipt_hash and timestamp: the receipt''s)';

-- Only every fourth level is stored (FP_LOG_TILE_HEIGHT in log.h): a hash
-- at a level in between is recomputed from at most 8 stored ones below it,
-- so integration writes one row per 15 receipts instead of two per receipt
CREATE TABLE attribution.log_nodes (
	advertiser_id text COLLATE "C" NOT NULL,
	level smallint NOT NULL CHECK (level > 0 AND level < 63 AND level % 4 = 0),
	node_index bigint NOT NULL CHECK (node_index >= 0),
	hash bytea NOT NULL CHECK (octet_length(hash) = 32),
	PRIMARY KEY (advertiser_id, level, node_index)
);
COMMENT ON TABLE attribution.log_nodes IS
	'Hash of every complete subtree of each log at levels 4, 8, 12 ...: level l, index i covers entries [i * 2^l, (i + 1) * 2^l); the leaf hashes are in log_entries';

CREATE TABLE attribution.log_checkpoints (
	advertiser_id text COLLATE "C" NOT NULL,
	tree_size bigint NOT NULL CHECK (tree_size >= 0),
	root_hash bytea NOT NULL CHECK (octet_length(root_hash) = 32),
	public_key bytea NOT NULL CHECK (octet_length(public_key) = 32),
	note text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (advertiser_id, tree_size)
);
COMMENT ON TABLE attribution.log_checkpoints IS
	'Every signed checkpoint of each log (c2sp.org/tlog-checkpoint in a c2sp.org/signed-note)';

REVOKE ALL ON attribution.log_entries, attribution.log_queue,
	attribution.log_nodes, attribution.log_checkpoints FROM PUBLIC;
GRANT SELECT ON attribution.log_checkpoints TO PUBLIC;

CREATE TRIGGER log_entries_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
	ON attribution.log_entries
	FOR EACH STATEMENT EXECUTE FUNCTION attribution.append_only('log_entries');
CREATE TRIGGER log_nodes_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
	ON attribution.log_nodes
	FOR EACH STATEMENT EXECUTE FUNCTION attribution.append_only('log_nodes');
CREATE TRIGGER log_checkpoints_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
	ON attribution.log_checkpoints
	FOR EACH STATEMENT EXECUTE FUNCTION attribution.append_only('log_checkpoints');

SELECT pg_catalog.pg_extension_config_dump('attribution.log_entries', '');
SELECT pg_catalog.pg_extension_config_dump('attribution.log_queue', '');
SELECT pg_catalog.pg_extension_config_dump('attribution.log_nodes', '');
SELECT pg_catalog.pg_extension_config_dump('attribution.log_checkpoints', '');

-- sign: also sign a checkpoint of every log that grew since its latest
-- one (the worker integrates every log_batch_delay with sign false and
-- signs every log_interval)
CREATE FUNCTION attribution.integrate_log(max_entries integer DEFAULT 10000,
	sign boolean DEFAULT true)
	RETURNS bigint
	AS 'MODULE_PATHNAME', 'fp_attribution_integrate_log'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION attribution.integrate_log(integer, boolean) FROM PUBLIC;
COMMENT ON FUNCTION attribution.integrate_log(integer, boolean) IS
	'Append pending receipts to their advertisers'' logs and, with sign, sign a checkpoint of every grown log; what the worker runs';

-- One advertiser's share of integrate_log(): on Citus, distribute() makes
-- it a function distributed by advertiser_id, and the coordinator's ledger
-- worker calls it for each advertiser with queued receipts, each call
-- delegated to the worker holding that advertiser's shards
CREATE FUNCTION attribution.integrate_advertiser_log(advertiser_id text,
	max_entries integer DEFAULT 10000, sign boolean DEFAULT true,
	OUT integrated bigint, OUT checkpoint text)
	AS 'MODULE_PATHNAME', 'fp_attribution_integrate_advertiser_log'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION attribution.integrate_advertiser_log(text, integer, boolean) FROM PUBLIC;
COMMENT ON FUNCTION attribution.integrate_advertiser_log(text, integer, boolean) IS
	'Append one advertiser''s pending receipts to its log and, with sign, sign a checkpoint if it grew; the note signed, if any';

CREATE FUNCTION attribution.checkpoint(advertiser_id text DEFAULT 'default')
	RETURNS text
	AS 'MODULE_PATHNAME', 'fp_attribution_checkpoint'
	LANGUAGE C STABLE STRICT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION attribution.checkpoint(text) IS
	'Latest signed checkpoint note of an advertiser''s log; NULL before the first';

CREATE FUNCTION attribution.log_verifier_key(advertiser_id text DEFAULT 'default')
	RETURNS text
	AS 'MODULE_PATHNAME', 'fp_attribution_log_verifier_key'
	LANGUAGE C STABLE STRICT PARALLEL RESTRICTED
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION attribution.log_verifier_key(text) IS
	'Note verifier key of an advertiser''s log under the current signing key';

CREATE FUNCTION attribution.receipt_proof(receipt_id uuid) RETURNS text
	AS 'MODULE_PATHNAME', 'fp_attribution_receipt_proof'
	LANGUAGE C STABLE STRICT PARALLEL SAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION attribution.receipt_proof(uuid) IS
	'Offline inclusion proof of a receipt (c2sp.org/tlog-proof@v1) against the latest checkpoint';

CREATE FUNCTION attribution.consistency_proof(advertiser_id text, old_size bigint,
	new_size bigint) RETURNS text[]
	AS 'MODULE_PATHNAME', 'fp_attribution_consistency_proof'
	LANGUAGE C STABLE STRICT PARALLEL SAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION attribution.consistency_proof(text, bigint, bigint) IS
	'RFC 6962 consistency proof between two sizes of an advertiser''s log, base64 hashes';

CREATE FUNCTION attribution.verify_log(checkpoint text,
	OUT ok boolean, OUT advertiser_id text, OUT checkpoint_size bigint,
	OUT log_size bigint, OUT detail text)
	AS 'MODULE_PATHNAME', 'fp_attribution_verify_log'
	LANGUAGE C STABLE STRICT PARALLEL RESTRICTED SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION attribution.receipt_proof(uuid),
	attribution.consistency_proof(text, bigint, bigint),
	attribution.verify_log(text) FROM PUBLIC;
COMMENT ON FUNCTION attribution.verify_log(text) IS
	'Whether today''s log extends a checkpoint saved earlier, and what differs if not';

-- Integration lag: receipts not yet in their log, per advertiser (read
-- from the queue, so O(pending))
CREATE VIEW attribution.log_status AS
	WITH pending AS (
		SELECT q.advertiser_id, count(*) AS pending,
			   pg_catalog.now() OPERATOR(pg_catalog.-) min(q."timestamp") AS oldest_pending_age
		  FROM attribution.log_queue q
		 GROUP BY 1),
	logs AS (
		SELECT e.advertiser_id, max(e.log_index) OPERATOR(pg_catalog.+) 1 AS tree_size
		  FROM attribution.log_entries e GROUP BY 1),
	checkpoints AS (
		SELECT c.advertiser_id, max(c.tree_size) AS checkpoint_size
		  FROM attribution.log_checkpoints c GROUP BY 1)
	SELECT advertiser_id, coalesce(l.tree_size, 0) AS tree_size,
		   coalesce(c.checkpoint_size, 0) AS checkpoint_size,
		   coalesce(p.pending, 0) AS pending, p.oldest_pending_age
	  FROM logs l FULL JOIN pending p USING (advertiser_id)
		   FULL JOIN checkpoints c USING (advertiser_id);
REVOKE ALL ON attribution.log_status FROM PUBLIC;
COMMENT ON VIEW attribution.log_status IS
	'Per advertiser: log size, latest checkpoint size, receipts pending integration and the age of the oldest';

--------------------------------------------------------------------------
-- Postbacks (src/postback*.c): per advertiser and affiliate HTTP endpoints
-- told about their conversions through a transactional outbox.  Every
-- receipt of a conversion (src/ledger/receipts.c) enqueues one delivery per
-- matching endpoint in the command's transaction; the postback worker
-- delivers them.  Managed with plain SQL by the extension's owner, like
-- attribution.offers.  No role but the owner has any privilege on these
-- tables: the secrets, in a table of their own, never reach another role.
--------------------------------------------------------------------------

-- Validates a URL template (http/https, no blank or control character,
-- only known macros); raises 22023 naming the URL redacted
CREATE FUNCTION attribution.postback_template_check(url_template text)
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'fp_attribution_postback_template_check'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION attribution.postback_template_check(text) IS
	'True for a valid postback URL template; raises 22023 otherwise';
-- A URL with its userinfo and query string replaced by ***
CREATE FUNCTION attribution.redact_url(url text) RETURNS text
	AS 'MODULE_PATHNAME', 'fp_attribution_redact_url'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION attribution.redact_url(text) IS
	'Every URL in the text with its userinfo and query string (and fragment) replaced by ***';

CREATE TABLE attribution.postback_endpoints (
	advertiser_id text COLLATE "C" NOT NULL DEFAULT 'default'
		CHECK (pg_catalog.char_length(advertiser_id) BETWEEN 1 AND 128),
	endpoint_id bigint GENERATED ALWAYS AS IDENTITY,
	affiliate_id text NOT NULL
		CHECK (pg_catalog.char_length(affiliate_id) BETWEEN 1 AND 128),
	url_template text NOT NULL
		CHECK (attribution.postback_template_check(url_template)),
	method text NOT NULL DEFAULT 'GET' CHECK (method IN ('GET', 'POST')),
	events text[] NOT NULL
		DEFAULT '{tracked,approved,rejected,reversed,refunded}'
		CHECK (pg_catalog.cardinality(events) > 0 AND events OPERATOR(pg_catalog.<@)
			   '{tracked,approved,rejected,reversed,refunded}'::text[]),
	active boolean NOT NULL DEFAULT true,
	-- set by the postback worker: failed attempts in a row, and when
	-- reaching fp_attribution.postback_disable_after disabled it
	consecutive_failures integer NOT NULL DEFAULT 0,
	disabled_at timestamptz,
	disabled_reason text,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (advertiser_id, endpoint_id)
);
CREATE INDEX postback_endpoints_affiliate_idx
	ON attribution.postback_endpoints (advertiser_id, affiliate_id);
COMMENT ON TABLE attribution.postback_endpoints IS
	'Per advertiser and affiliate postback URL templates, the events that fire them, and their state';
-- Each backend keeps which (advertiser, affiliate, event) has an active
-- endpoint (src/postbacks/postbacks.c); a change of what that depends on
-- empties every backend's copy at commit.  Not the postback worker's
-- failure counts.
CREATE FUNCTION attribution.postback_endpoints_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'fp_attribution_postback_endpoints_changed'
	LANGUAGE C;
CREATE TRIGGER postback_endpoints_changed
	AFTER INSERT OR DELETE OR TRUNCATE
		OR UPDATE OF advertiser_id, affiliate_id, active, events
	ON attribution.postback_endpoints
	FOR EACH STATEMENT EXECUTE FUNCTION attribution.postback_endpoints_changed();
REVOKE ALL ON FUNCTION attribution.postback_endpoints_changed() FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('attribution.postback_endpoints', '');

CREATE TABLE attribution.postback_secrets (
	advertiser_id text COLLATE "C" NOT NULL DEFAULT 'default',
	endpoint_id bigint NOT NULL,
	secret text NOT NULL CHECK (pg_catalog.octet_length(secret) BETWEEN 16 AND 1024),
	PRIMARY KEY (advertiser_id, endpoint_id),
	FOREIGN KEY (advertiser_id, endpoint_id)
		REFERENCES attribution.postback_endpoints ON DELETE CASCADE
);
COMMENT ON TABLE attribution.postback_secrets IS
	'HMAC-SHA256 keys of postback endpoints; readable by the extension''s owner only';
SELECT pg_catalog.pg_extension_config_dump('attribution.postback_secrets', '');

-- The outbox: one row per (receipt, endpoint), with the conversion as the
-- receipt left it.  delivery_id is the Idempotency-Key of every attempt.
CREATE TABLE attribution.postback_outbox (
	advertiser_id text COLLATE "C" NOT NULL,
	delivery_id uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
	endpoint_id bigint NOT NULL,
	event text NOT NULL,
	order_id text NOT NULL,
	click_id uuid,
	affiliate_id text NOT NULL,
	offer_id text,
	status text NOT NULL,
	revenue_cents bigint NOT NULL,
	refunded_cents bigint NOT NULL,
	commission_cents bigint,
	currency text NOT NULL,
	receipt_id uuid NOT NULL,
	trace_id attribution.trace_id NOT NULL,
	span_id attribution.span_id NOT NULL,
	sampled boolean NOT NULL,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	state text NOT NULL DEFAULT 'pending'
		CHECK (state IN ('pending', 'delivered', 'failed')),
	attempts integer NOT NULL DEFAULT 0,
	next_attempt_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	last_attempt_at timestamptz,
	last_http_status integer,
	last_error text,
	done_at timestamptz,
	PRIMARY KEY (advertiser_id, delivery_id),
	-- RESTRICT: an endpoint's deliveries are its history; an endpoint in
	-- use is deactivated (active = false), and deleted once the postback
	-- worker has deleted its rows (fp_attribution.postback_retention) or
	-- after a deliberate DELETE of them
	FOREIGN KEY (advertiser_id, endpoint_id)
		REFERENCES attribution.postback_endpoints ON DELETE RESTRICT
);
-- Without deduplication: an entry lives from the enqueue to the attempt's
-- result, and the claim's index scans mark the dead ones so that later
-- scans skip them, which a posting list (the postbacks of a transaction
-- share next_attempt_at) allows only once all of its rows are dead; until
-- then every claim visits each of them in the heap.
CREATE INDEX postback_outbox_due_idx ON attribution.postback_outbox
	(advertiser_id, endpoint_id, next_attempt_at) WITH (deduplicate_items = off)
	WHERE state = 'pending';
-- The postback worker deletes finished rows oldest first
CREATE INDEX postback_outbox_done_idx ON attribution.postback_outbox
	(done_at) WHERE state <> 'pending';
COMMENT ON TABLE attribution.postback_outbox IS
	'Postbacks to deliver and delivered: written in the transaction of the conversion''s command';
SELECT pg_catalog.pg_extension_config_dump('attribution.postback_outbox', '');
REVOKE ALL ON attribution.postback_endpoints, attribution.postback_secrets,
	attribution.postback_outbox FROM PUBLIC;

CREATE VIEW attribution.postback_deliveries AS
SELECT o.advertiser_id, o.delivery_id, o.endpoint_id, o.affiliate_id, o.event,
	   o.order_id, e.method, attribution.redact_url(e.url_template) AS url,
	   o.state, o.attempts, o.last_http_status, o.last_error,
	   o.created_at, o.last_attempt_at,
	   CASE WHEN o.state OPERATOR(pg_catalog.=) 'pending' THEN o.next_attempt_at END
		   AS next_attempt_at,
	   o.done_at, o.receipt_id, o.trace_id,
	   e.active AND e.disabled_at IS NULL AS endpoint_enabled
  FROM attribution.postback_outbox o
  JOIN attribution.postback_endpoints e
	ON e.advertiser_id OPERATOR(pg_catalog.=) o.advertiser_id
   AND e.endpoint_id OPERATOR(pg_catalog.=) o.endpoint_id;
COMMENT ON VIEW attribution.postback_deliveries IS
	'Each postback: state (pending, delivered, failed), attempts, last HTTP status and error, next attempt';
REVOKE ALL ON attribution.postback_deliveries FROM PUBLIC;

-- Re-enable an endpoint the worker disabled after repeated failures; its
-- pending deliveries are sent again from now on
CREATE FUNCTION attribution.enable_postback_endpoint(endpoint_id bigint,
	advertiser_id text DEFAULT 'default') RETURNS boolean
	LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	BEGIN ATOMIC
		WITH enabled AS (
			UPDATE attribution.postback_endpoints e
			   SET active = true, consecutive_failures = 0,
				   disabled_at = NULL, disabled_reason = NULL
			 WHERE e.advertiser_id OPERATOR(pg_catalog.=) enable_postback_endpoint.advertiser_id
			   AND e.endpoint_id OPERATOR(pg_catalog.=) enable_postback_endpoint.endpoint_id
			RETURNING e.endpoint_id),
		rescheduled AS (
			UPDATE attribution.postback_outbox o
			   SET next_attempt_at = pg_catalog.now()
			 WHERE o.advertiser_id OPERATOR(pg_catalog.=) enable_postback_endpoint.advertiser_id
			   AND o.endpoint_id IN (SELECT enabled.endpoint_id FROM enabled)
			   AND o.state OPERATOR(pg_catalog.=) 'pending')
		SELECT pg_catalog.count(*) OPERATOR(pg_catalog.=) 1 FROM enabled;
	END;
COMMENT ON FUNCTION attribution.enable_postback_endpoint(bigint, text) IS
	'Re-enable a postback endpoint (active, failures forgotten) and send its pending postbacks now; false if there is no such endpoint';
REVOKE ALL ON FUNCTION attribution.enable_postback_endpoint(bigint, text) FROM PUBLIC;

--------------------------------------------------------------------------
-- Scale-out on Citus: attribution.distribute() (README, "Running on
-- Citus").  Kept last and self-contained: it only reads the catalog for
-- the extension's tables and for the functions taking an advertiser_id.
--------------------------------------------------------------------------

-- Distributes every table of the extension by advertiser_id in one
-- colocation group and every command (a function taking an advertiser_id) by that
-- argument, so a command is one transaction on the worker holding the
-- advertiser's shards.  Citus refuses triggers on distributed tables unless
-- citus.enable_unsafe_triggers is on: "unsafe" because a trigger could
-- reach other shards, which ours never do (every lookup of the triggers
-- names the row's advertiser, so it runs on a colocated shard of the same
-- node).  The setting is needed while the triggers are created on the
-- shards, so it is set here for this transaction only.
CREATE FUNCTION attribution.distribute() RETURNS void
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	rel regclass;
	fn regprocedure;
	has_rows boolean;
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension
					WHERE extname OPERATOR(pg_catalog.=) 'citus') THEN
		RAISE EXCEPTION 'extension "citus" is not installed'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = 'attribution.distribute() distributes the tables of fp_attribution across a Citus cluster.',
				  HINT = 'Put citus first in shared_preload_libraries, run CREATE EXTENSION citus on the coordinator and add the workers, then call attribution.distribute() there.';
	END IF;
	IF NOT pg_catalog.citus_is_coordinator() THEN
		RAISE EXCEPTION 'attribution.distribute() must be called on the Citus coordinator'
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;

	-- Citus would copy existing rows into the shards, firing the shards'
	-- triggers on them: distribute a fresh install, then load the data.
	FOR rel IN SELECT d.objid::pg_catalog.regclass
				 FROM pg_catalog.pg_depend d
				 JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.objid
				WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
				  AND d.refobjid OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_extension
												  WHERE extname OPERATOR(pg_catalog.=) 'fp_attribution')
				  AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
				  AND d.deptype OPERATOR(pg_catalog.=) 'e' AND c.relkind OPERATOR(pg_catalog.=) 'r'
				  AND NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p
								   WHERE p.logicalrelid OPERATOR(pg_catalog.=) c.oid)
				ORDER BY c.relname OPERATOR(pg_catalog.<>) 'clicks', c.relname
	LOOP
		EXECUTE pg_catalog.format('SELECT EXISTS (SELECT FROM %s)', rel) INTO has_rows;
		IF has_rows THEN
			RAISE EXCEPTION 'table % is not empty', rel
				USING ERRCODE = 'object_not_in_prerequisite_state',
					  DETAIL = 'Citus would copy the rows into the shards, whose triggers would treat them as new.',
					  HINT = 'Call attribution.distribute() right after CREATE EXTENSION fp_attribution, then load the data.';
		END IF;
		IF EXISTS (SELECT FROM pg_catalog.pg_attribute a
					WHERE a.attrelid OPERATOR(pg_catalog.=) rel
					  AND a.attname OPERATOR(pg_catalog.=) 'advertiser_id' AND NOT a.attisdropped) THEN
			-- clicks comes first and starts the colocation group
			PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);
			PERFORM pg_catalog.create_distributed_table(rel, 'advertiser_id',
				colocate_with => CASE WHEN rel OPERATOR(pg_catalog.=) 'attribution.clicks'::pg_catalog.regclass
									  THEN 'none' ELSE 'attribution.clicks' END);
		ELSE
			RAISE EXCEPTION 'table % has no advertiser_id column', rel
				USING ERRCODE = 'feature_not_supported',
					  DETAIL = 'Every table of fp_attribution is distributed by its tenant key.';
		END IF;
	END LOOP;

	FOR fn IN SELECT p.oid::pg_catalog.regprocedure
				FROM pg_catalog.pg_proc p
				JOIN pg_catalog.pg_depend d ON d.objid OPERATOR(pg_catalog.=) p.oid
			   WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
				 AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
				 AND d.refobjid OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_extension
												 WHERE extname OPERATOR(pg_catalog.=) 'fp_attribution')
				 AND d.deptype OPERATOR(pg_catalog.=) 'e'
				 -- an input argument (verify_receipt() returns one)
				 AND EXISTS (SELECT FROM ROWS FROM (pg_catalog.unnest(p.proargnames),
													  pg_catalog.unnest(p.proargmodes)) a(name, mode)
							  WHERE a.name OPERATOR(pg_catalog.=) 'advertiser_id'
								AND (a.mode IS NULL OR a.mode OPERATOR(pg_catalog.=) ANY ('{i,b}')))
				 -- not the triggers' helpers, which name the table they serve
				 AND NOT 'pg_catalog.regclass'::pg_catalog.regtype::pg_catalog.oid
						 OPERATOR(pg_catalog.=) ANY (p.proargtypes::pg_catalog.oid[])
				 AND NOT EXISTS (SELECT FROM pg_catalog.pg_dist_object o
								  WHERE o.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
									AND o.objid OPERATOR(pg_catalog.=) p.oid
									AND o.distribution_argument_index IS NOT NULL)
			   ORDER BY p.oid
	LOOP
		-- Called on its own (autocommit), the command is sent whole to the
		-- worker; inside BEGIN ... COMMIT it runs on the coordinator, its
		-- statements routed to the same worker.  Not force_delegation:
		-- Citus then requires every query of the function to carry the
		-- key in a form it can check, which a join of two colocated
		-- tables (the commands' read-back of their receipt) does not.
		PERFORM pg_catalog.create_distributed_function(fn, 'advertiser_id',
			colocate_with => 'attribution.clicks');
	END LOOP;

	-- SET LOCAL fp_attribution.traceparent (and correlation_id) must reach
	-- the worker that runs the command: Citus forwards SET LOCAL to the
	-- nodes in the transaction only with this setting.
	EXECUTE pg_catalog.format('ALTER DATABASE %I SET citus.propagate_set_commands = %L',
							  pg_catalog.current_database(), 'local');
END
$$;
REVOKE ALL ON FUNCTION attribution.distribute() FROM PUBLIC;
COMMENT ON FUNCTION attribution.distribute() IS
	'On a Citus coordinator: distribute the tables and the commands by advertiser_id, colocated';
