--
-- docs: every setting, table, view and user-facing function of the
-- extension is named in README.md
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set readme :abs_srcdir '/README.md'
\set docdir :abs_srcdir '/doc'
CREATE TEMP TABLE readme AS SELECT pg_read_file(:'readme') AS body;
-- README.md plus the reference pages in doc/, for relations and functions
CREATE TEMP TABLE docs AS
SELECT body || coalesce((SELECT string_agg(pg_read_file(:'docdir' || '/' || f), '')
	FROM pg_ls_dir(:'docdir', true, false) AS f WHERE f LIKE '%.md'), '') AS body
  FROM readme;

-- the README says which major is built and tested: the one these tests
-- run on
SELECT strpos(body, 'built and tested only with PostgreSQL ' ||
			  current_setting('server_version_num')::int / 10000 || ' on Debian 12') > 0
	   AS names_tested_major
  FROM readme;

-- settings, each in README's tables
SELECT name AS undocumented_setting FROM pg_settings, readme
 WHERE name LIKE 'fp\_attribution.%' AND strpos(body, '`' || name || '`') = 0;

-- tables and views
SELECT c.relname AS undocumented_relation FROM pg_class c, docs
 WHERE c.relnamespace = 'attribution'::regnamespace AND c.relkind IN ('r', 'v')
   AND strpos(body, 'attribution.' || c.relname) = 0;

-- functions, except type support (I/O, operators, hashing) and triggers
SELECT DISTINCT p.proname AS undocumented_function FROM pg_proc p, docs
 WHERE p.pronamespace = 'attribution'::regnamespace
   AND p.prorettype <> 'trigger'::regtype
   AND p.proname !~ '^(trace|span)_id_(in|out|recv|send|cmp|hash|hash_extended|eq|ne|lt|le|gt|ge)$'
   AND strpos(body, 'attribution.' || p.proname) = 0;
