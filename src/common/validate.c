/*-------------------------------------------------------------------------
 *
 * validate.c
 *	  Input checks shared by the commands and the INSERT triggers, so a
 *	  value is judged the same way whichever path it takes, with one wording
 *	  and one SQLSTATE per kind of mistake.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/tupdesc.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "fp_attribution/validate.h"

/*
 * Returns value (NULL for SQL NULL) if acceptable for field: NULL is an
 * error only when required (22004); an empty or blank required value is
 * 22023; more than max_chars characters is 22001, as for an over-long
 * varchar.
 */
text *
fp_attribution_check_text(const char *field, text *value, int max_chars,
						  bool required)
{
	int			nchars;

	if (value == NULL)
	{
		if (required)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null", field)));
		return NULL;
	}
	nchars = pg_mbstrlen_with_len(VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value));
	if (required)
	{
		bool		blank = true;
		const char *p = VARDATA_ANY(value);

		for (int i = 0; i < VARSIZE_ANY_EXHDR(value) && blank; i++)
			blank = (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r');
		if (blank)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must not be empty", field)));
	}
	if (nchars > max_chars)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("%s is too long", field),
				 errdetail("The value has %d characters; the limit is %d.",
						   nchars, max_chars)));
	return value;
}

/*
 * attribution.check_text(field text, value text, max_chars int,
 *						  required boolean) returns text
 *
 * fp_attribution_check_text() for custom commands.  Not STRICT, because a
 * NULL value is meaningful, so the other arguments are checked here.
 */
PG_FUNCTION_INFO_V1(fp_attribution_check_text_sql);
Datum
fp_attribution_check_text_sql(PG_FUNCTION_ARGS)
{
	text	   *value;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("field, max_chars and required must not be null")));
	value = fp_attribution_check_text(text_to_cstring(PG_GETARG_TEXT_PP(0)),
									  PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1),
									  PG_GETARG_INT32(2), PG_GETARG_BOOL(3));
	if (value == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(value);
}

/*
 * Check that column attno (1-based) of desc, called name, has the type a
 * trigger reads it as: typid, or, for the extension's own fixed-length id
 * types (whose OIDs differ per installation), InvalidOid and the length
 * typlen, passed by reference.  The triggers find their columns by name on
 * whatever table they are attached to (a copy or shard of the extension's
 * table has another name), so a column of another type is refused here
 * rather than misread.
 */
void
fp_attribution_check_column_type(TupleDesc desc, int attno, const char *name,
								 Oid typid, int typlen)
{
	Form_pg_attribute att = TupleDescAttr(desc, attno - 1);

	if (OidIsValid(typid) ? att->atttypid == typid :
		(att->attlen == typlen && !att->attbyval))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
			 errmsg("column \"%s\" of the trigger's table has type %s",
					name, format_type_be(att->atttypid)),
			 OidIsValid(typid) ?
			 errdetail("The trigger reads it as %s.", format_type_be(typid)) :
			 errdetail("The trigger reads it as an id of %d bytes.", typlen)));
}
