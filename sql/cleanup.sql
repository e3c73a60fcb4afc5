--
-- cleanup: the extension drops cleanly with everything it created
--
DROP FUNCTION regress_error(text);
DROP EXTENSION fp_attribution;
SELECT count(*) FROM pg_namespace WHERE nspname = 'attribution';
