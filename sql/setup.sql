--
-- setup: install the extension and the helpers every test file uses
--
CREATE EXTENSION fp_attribution;
SELECT extname, extversion FROM pg_extension WHERE extname = 'fp_attribution';

-- Run a statement and report its SQLSTATE and message instead of failing,
-- so error cases stay deterministic and visible side by side.
CREATE FUNCTION regress_error(cmd text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE cmd;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
