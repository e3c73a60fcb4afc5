--
-- security: the rules of STYLE section 11, each checked over the whole
-- extension (every function, every table), not one object at a time
--
\set VERBOSITY terse

-- the extension's own objects
CREATE VIEW regress_ext_functions AS
	SELECT p.oid, p.oid::regprocedure::text AS signature, p.prolang, p.proisstrict,
		   p.prosecdef, p.proconfig, p.pronargs, p.proargtypes, p.prorettype, p.proname
	  FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
	 WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
	   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'fp_attribution');
CREATE VIEW regress_ext_tables AS
	SELECT c.oid, c.oid::regclass::text AS name, c.relkind
	  FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
	 WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e'
	   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'fp_attribution');

-- the roles the README documents, with exactly its grants
CREATE ROLE regress_fp_attribution_app;
GRANT USAGE ON SCHEMA attribution TO regress_fp_attribution_app;
GRANT EXECUTE ON FUNCTION attribution.track_click, attribution.track_conversion
	TO regress_fp_attribution_app;
CREATE ROLE regress_fp_attribution_auditor;
GRANT USAGE ON SCHEMA attribution TO regress_fp_attribution_auditor;
GRANT EXECUTE ON FUNCTION attribution.verify_receipt, attribution.verify_chain,
	attribution.verify_all TO regress_fp_attribution_auditor;
GRANT SELECT ON attribution.receipts, attribution.receipt_export
	TO regress_fp_attribution_auditor;

-- STRICT / NULL: C functions that take arguments and are not STRICT must
-- check every argument themselves; this list is reviewed when it changes
SELECT signature AS c_function_not_strict
  FROM regress_ext_functions
 WHERE prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')
   AND NOT proisstrict AND pronargs > 0 AND prorettype <> 'trigger'::regtype
 ORDER BY signature COLLATE "C";

-- Every function called with NULL in each argument position in turn (the
-- others get an ordinary value), as a superuser and as the application
-- role; errors are expected, a crash would end this test.  Functions that
-- take "internal" cannot be called from SQL, trigger functions only by
-- their triggers.
CREATE FUNCTION regress_sample(t regtype) RETURNS text LANGUAGE sql AS $$
	SELECT CASE t
		WHEN 'text'::regtype THEN '''x'''
		WHEN 'integer'::regtype THEN '3'
		WHEN 'bigint'::regtype THEN '1'
		WHEN 'smallint'::regtype THEN '1'
		WHEN 'boolean'::regtype THEN 'true'
		WHEN 'uuid'::regtype THEN '''00000000-0000-4000-8000-000000000001''::uuid'
		WHEN 'jsonb'::regtype THEN '''{"a": 1}''::jsonb'
		WHEN 'inet'::regtype THEN '''127.0.0.1''::inet'
		WHEN 'timestamptz'::regtype THEN '''2026-01-01 00:00:00+00''::timestamptz'
		WHEN 'regclass'::regtype THEN '''attribution.clicks''::regclass'
		WHEN 'cstring'::regtype THEN '''x''::cstring'
		WHEN 'attribution.trace_id'::regtype THEN '''4bf92f3577b34da6a3ce929d0e0e4736''::attribution.trace_id'
		WHEN 'attribution.span_id'::regtype THEN '''00f067aa0ba902b7''::attribution.span_id'
		WHEN 'attribution.receipts'::regtype THEN '(SELECT r FROM attribution.receipts r LIMIT 1)'
	END
$$;
CREATE FUNCTION regress_null_sweep() RETURNS TABLE (functions bigint, calls bigint, unsampled text)
LANGUAGE plpgsql AS $$
DECLARE
	f record;
	args text[];
	nfunctions bigint := 0;
	ncalls bigint := 0;
	missing text := NULL;
BEGIN
	FOR f IN SELECT * FROM regress_ext_functions
			  WHERE prorettype <> 'trigger'::regtype
				AND NOT 'internal'::regtype = ANY (proargtypes::oid[])
				AND pronargs > 0
			  ORDER BY signature COLLATE "C"
	LOOP
		nfunctions := nfunctions + 1;
		FOR i IN 0 .. f.pronargs - 1 LOOP
			args := ARRAY(SELECT CASE WHEN j = i
								 THEN 'NULL::' || format_type(f.proargtypes[j], NULL)
								 ELSE regress_sample(f.proargtypes[j]) END
							FROM generate_series(0, f.pronargs - 1) AS j ORDER BY j);
			IF array_position(args, NULL) IS NOT NULL THEN
				missing := f.signature;
				CONTINUE;
			END IF;
			BEGIN
				EXECUTE format('SELECT %s(%s)', f.oid::regproc, array_to_string(args, ', '));
			EXCEPTION WHEN OTHERS THEN
				NULL;
			END;
			ncalls := ncalls + 1;
		END LOOP;
	END LOOP;
	RETURN QUERY SELECT nfunctions, ncalls, missing;
END
$$;
GRANT EXECUTE ON FUNCTION regress_null_sweep(), regress_sample(regtype)
	TO regress_fp_attribution_app;
GRANT SELECT ON regress_ext_functions TO regress_fp_attribution_app;

BEGIN;
SELECT * FROM regress_null_sweep();
ROLLBACK;
BEGIN;
SET ROLE regress_fp_attribution_app;
SELECT * FROM regress_null_sweep();
ROLLBACK;
SELECT 'the server is still up' AS survived;

-- search_path: every function written in SQL or PL/pgSQL, and every
-- SECURITY DEFINER function, runs with a fixed search_path
SELECT signature AS function_without_fixed_search_path
  FROM regress_ext_functions
 WHERE (prosecdef OR prolang IN (SELECT oid FROM pg_language
								  WHERE lanname IN ('sql', 'plpgsql')))
   AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (proconfig), false)
 ORDER BY signature COLLATE "C";

-- grants: what PUBLIC may execute, and every privilege on the tables; a
-- new function or grant shows up here for review
SELECT signature AS executable_by_public
  FROM regress_ext_functions
 WHERE has_function_privilege('public', oid, 'EXECUTE')
   AND prorettype <> 'trigger'::regtype
   AND proname !~ '^(trace_id|span_id)_'
 ORDER BY signature COLLATE "C";
SELECT t.name, a.grantee::regrole::text AS grantee, a.privilege_type
  FROM regress_ext_tables t, aclexplode((SELECT relacl FROM pg_class WHERE oid = t.oid)) a
 WHERE a.grantee <> (SELECT relowner FROM pg_class WHERE oid = t.oid)
 ORDER BY t.name COLLATE "C", 2, 3;

-- pg_dump: every table of the extension has its rows dumped
SELECT name AS table_not_dumped
  FROM regress_ext_tables
 WHERE relkind = 'r'
   AND oid <> ALL ((SELECT extconfig FROM pg_extension WHERE extname = 'fp_attribution')::oid[])
 ORDER BY name COLLATE "C";

-- the application role records clicks and conversions with the documented
-- grants, and reads neither the rows nor the receipts (visitors' IPs)
SET ROLE regress_fp_attribution_app;
SELECT aggregate_type, sequence FROM attribution.track_click('sec-aff',
	click_id => 'a5ec0000-0000-4000-8000-00000000000a', ip => '192.0.2.1');
SELECT aggregate_type, sequence FROM attribution.track_conversion('sec-order-1', 100,
	click_id => 'a5ec0000-0000-4000-8000-00000000000a');
SELECT regress_error($$SELECT count(*) FROM attribution.clicks$$);
SELECT regress_error($$SELECT count(*) FROM attribution.receipts$$);
SELECT regress_error($$SELECT attribution.verify_all()$$);
SELECT regress_error($$SELECT attribution.append_receipt('conversion', 'sec-order-2', '{}')$$);
RESET ROLE;

-- the auditor verifies and exports, and records nothing
SET ROLE regress_fp_attribution_auditor;
SELECT ok, failed_check FROM attribution.verify_chain('click', 'a5ec0000-0000-4000-8000-00000000000a');
SELECT chains_checked > 0 AS verified_all FROM attribution.verify_all();
SELECT count(*) > 0 AS exported FROM attribution.receipt_export;
SELECT regress_error($$SELECT attribution.track_click('auditor')$$);
RESET ROLE;

-- rows change only through commands, whoever asks
SELECT regress_error($$UPDATE attribution.conversions SET revenue_cents = 1$$);
SELECT regress_error($$DELETE FROM attribution.clicks$$);
SELECT regress_error($$TRUNCATE attribution.conversions$$);
SELECT revenue_cents FROM attribution.conversions WHERE order_id = 'sec-order-1';

-- a role allowed to approve changes a conversion through that command only
GRANT EXECUTE ON FUNCTION attribution.approve_conversion TO regress_fp_attribution_app;
SET ROLE regress_fp_attribution_app;
SELECT sequence, payload->>'status' AS status FROM attribution.approve_conversion('sec-order-1');
SELECT regress_error($$UPDATE attribution.conversions SET status = 'pending'$$);
SELECT regress_error($$SELECT attribution.refund_conversion('sec-order-1', 'default', 1)$$);
RESET ROLE;
SELECT status FROM attribution.conversions WHERE order_id = 'sec-order-1';

-- A hostile search_path: a role that may create objects in a schema the
-- caller searches first plants functions and operators with the exact
-- argument types the extension uses; none of them ever runs, whichever
-- path (command, direct INSERT, receipt trigger, verification, views) a
-- new session takes first.
CREATE SCHEMA regress_hostile;
GRANT USAGE, CREATE ON SCHEMA regress_hostile TO regress_fp_attribution_app;
CREATE TABLE regress_hostile.hijacked (what text);
GRANT INSERT ON regress_hostile.hijacked TO PUBLIC;
GRANT USAGE ON SCHEMA regress_hostile TO PUBLIC;
SET ROLE regress_fp_attribution_app;
CREATE FUNCTION regress_hostile.format(text, bigint) RETURNS text LANGUAGE sql AS
	$$ INSERT INTO regress_hostile.hijacked VALUES ('format'); SELECT $1 $$;
CREATE FUNCTION regress_hostile.upper(text) RETURNS text LANGUAGE sql AS
	$$ INSERT INTO regress_hostile.hijacked VALUES ('upper'); SELECT $1 $$;
CREATE FUNCTION regress_hostile.now() RETURNS timestamptz LANGUAGE sql AS
	$$ INSERT INTO regress_hostile.hijacked VALUES ('now'); SELECT pg_catalog.now() $$;
CREATE FUNCTION regress_hostile.gen_random_uuid() RETURNS uuid LANGUAGE sql AS
	$$ INSERT INTO regress_hostile.hijacked VALUES ('gen_random_uuid');
	   SELECT pg_catalog.gen_random_uuid() $$;
CREATE FUNCTION regress_hostile.count(anyelement) RETURNS bigint LANGUAGE sql AS
	$$ INSERT INTO regress_hostile.hijacked VALUES ('count'); SELECT 1::bigint $$;
RESET ROLE;
-- one operator function per (operator, left type, right type), each of
-- which logs and then does the real work
DO $$
DECLARE
	o record;
	fn text;
BEGIN
	FOR o IN SELECT * FROM (VALUES
			('=', 'text', 'text', 'boolean'), ('=', 'uuid', 'uuid', 'boolean'),
			('=', 'bigint', 'bigint', 'boolean'), ('<', 'bigint', 'integer', 'boolean'),
			('<', 'timestamptz', 'timestamptz', 'boolean'),
			('<=', 'timestamptz', 'timestamptz', 'boolean'),
			('>', 'timestamptz', 'timestamptz', 'boolean'),
			('>=', 'timestamptz', 'timestamptz', 'boolean'),
			('+', 'timestamptz', 'interval', 'timestamptz'),
			('-', 'timestamptz', 'timestamptz', 'interval'),
			('=', 'attribution.trace_id', 'attribution.trace_id', 'boolean'))
			AS v(op, l, r, res)
	LOOP
		fn := 'regress_hostile.op_' || md5(o.op || o.l || o.r);
		EXECUTE format('CREATE FUNCTION %s(%s, %s) RETURNS %s LANGUAGE sql AS '
					   '$f$ INSERT INTO regress_hostile.hijacked VALUES (%L); '
					   'SELECT $1 OPERATOR(pg_catalog.%s) $2 $f$',
					   fn, o.l, o.r, o.res, o.op || ' ' || o.l, o.op);
		EXECUTE format('CREATE OPERATOR regress_hostile.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = %s)',
					   o.op, o.l, o.r, fn);
	END LOOP;
END
$$;
INSERT INTO attribution.windows (affiliate_id, attribution_window) VALUES ('sec-windowed', '1 day');

-- a fresh session for each first path, so no plan was prepared before
\c -
SET search_path = regress_hostile, pg_catalog, public;
INSERT INTO attribution.clicks (click_id, affiliate_id, visitor_id)
	VALUES ('a5ec0000-0000-4000-8000-00000000000b', 'sec-windowed', 'sec-visitor');
INSERT INTO attribution.conversions (order_id, revenue_cents, visitor_id)
	VALUES ('sec-order-3', 300, 'sec-visitor');
SELECT regress_error($$SELECT attribution.track_conversion('sec-order-4', -1)$$);
\c -
SET search_path = regress_hostile, pg_catalog, public;
SELECT aggregate_type FROM attribution.track_click('sec-windowed',
	click_id => 'a5ec0000-0000-4000-8000-00000000000c', visitor_id => 'sec-visitor');
SELECT aggregate_type FROM attribution.track_conversion('sec-order-5', 500,
	click_id => 'a5ec0000-0000-4000-8000-00000000000c');
SELECT aggregate_type FROM attribution.track_conversion('sec-order-6', 600,
	visitor_id => 'sec-visitor');
SELECT aggregate_type, sequence FROM attribution.append_receipt('sec-custom', 'a', '{"n": 1}');
SELECT aggregate_type, sequence FROM attribution.refund_conversion('sec-order-6', 'default', 100,
	command_id => 'a5ec0000-0000-4000-8000-0000000000cc');
SELECT aggregate_type, sequence FROM attribution.refund_conversion('sec-order-6', 'default', 100,
	command_id => 'a5ec0000-0000-4000-8000-0000000000cc');
\c -
SET search_path = regress_hostile, pg_catalog, public;
SELECT chains_checked > 0 AS verified_all FROM attribution.verify_all();
SELECT ok FROM attribution.verify_chain('conversion', 'sec-order-5');
SELECT ok FROM attribution.verify_receipt((SELECT receipt_id FROM attribution.receipts
	WHERE aggregate_type OPERATOR(pg_catalog.=) 'conversion'
	  AND aggregate_id OPERATOR(pg_catalog.=) 'sec-order-5'));
SELECT name IS NOT NULL AS ok FROM attribution.metrics LIMIT 1;
SET ROLE regress_fp_attribution_app;
SELECT aggregate_type FROM attribution.track_conversion('sec-order-7', 700,
	visitor_id => 'sec-visitor');
RESET ROLE;
RESET search_path;
SELECT count(*) AS hijacked_calls, string_agg(DISTINCT what, ', ') AS what
  FROM regress_hostile.hijacked;

-- the hostile schema did not change what was recorded
SELECT order_id, attributed, revenue_cents FROM attribution.conversions
 WHERE order_id LIKE 'sec-%' ORDER BY 1;

DROP SCHEMA regress_hostile CASCADE;
DROP OWNED BY regress_fp_attribution_app, regress_fp_attribution_auditor;
DROP ROLE regress_fp_attribution_app, regress_fp_attribution_auditor;
DROP FUNCTION regress_null_sweep(), regress_sample(regtype);
DROP VIEW regress_ext_functions, regress_ext_tables;
