/*-------------------------------------------------------------------------
 *
 * ids.c
 *	  The attribution.trace_id (16 bytes) and attribution.span_id (8 bytes)
 *	  SQL types: text and binary I/O, comparison, hashing.
 *
 * Both are fixed-length pass-by-reference types whose text form is the
 * lowercase hex used in traceparent and shown by tracing UIs.  Input also
 * accepts uppercase hex so that ids pasted from any tool compare equal;
 * output is always lowercase.  The two types differ only in length, so
 * every SQL-callable function is stamped out by one macro over a shared
 * length-parameterised implementation.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/uuid.h"

#include "fp_attribution/ids.h"

/*
 * Parse text as an id of len bytes, raising an error naming typname for
 * bad input.  Returns a palloc'd buffer.
 */
static uint8 *
id_from_text(const char *str, int len, const char *typname)
{
	uint8	   *result = palloc(len);
	char		lower[FP_TRACE_ID_LEN * 2];
	int			n = strlen(str);

	if (n != len * 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type %s: \"%s\"",
						typname, str),
				 errdetail("Expected %d hexadecimal digits.", len * 2)));
	for (int i = 0; i < n; i++)
		lower[i] = pg_ascii_tolower((unsigned char) str[i]);
	if (!fp_attribution_hex_decode(lower, n, result, len))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type %s: \"%s\"",
						typname, str),
				 errdetail("Expected %d hexadecimal digits.", len * 2)));
	if (fp_attribution_id_is_zero(result, len))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type %s: \"%s\"",
						typname, str),
				 errdetail("An all-zero id is invalid in W3C Trace Context.")));
	return result;
}

/*
 * A trace_id or span_id Datum holding a palloc'd copy of len bytes.
 */
Datum
fp_attribution_id_datum(const uint8 *bytes, int len)
{
	uint8	   *copy = palloc(len);

	memcpy(copy, bytes, len);
	return PointerGetDatum(copy);
}

static char *
id_to_text(const uint8 *bytes, int len)
{
	char	   *result = palloc(len * 2 + 1);

	fp_attribution_hex_encode(bytes, len, result);
	return result;
}

static uint8 *
id_recv(StringInfo buf, int len, const char *typname)
{
	uint8	   *result = palloc(len);

	pq_copymsgbytes(buf, (char *) result, len);
	if (fp_attribution_id_is_zero(result, len))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary value for type %s", typname),
				 errdetail("An all-zero id is invalid in W3C Trace Context.")));
	return result;
}

static bytea *
id_send(const uint8 *bytes, int len)
{
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendbytes(&buf, (const char *) bytes, len);
	return pq_endtypsend(&buf);
}

/*
 * Stamp out the fmgr entry points of one id type.  PG_FUNCTION_INFO_V1
 * needs a literal name, hence the token pasting.
 */
#define FP_ID_TYPE_FUNCTIONS(sqlname, len, typname) \
PG_FUNCTION_INFO_V1(fp_attribution_##sqlname##_in); \
Datum \
fp_attribution_##sqlname##_in(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_POINTER(id_from_text(PG_GETARG_CSTRING(0), len, typname)); \
} \
PG_FUNCTION_INFO_V1(fp_attribution_##sqlname##_out); \
Datum \
fp_attribution_##sqlname##_out(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_CSTRING(id_to_text((uint8 *) PG_GETARG_POINTER(0), len)); \
} \
PG_FUNCTION_INFO_V1(fp_attribution_##sqlname##_recv); \
Datum \
fp_attribution_##sqlname##_recv(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_POINTER(id_recv((StringInfo) PG_GETARG_POINTER(0), len, \
							  typname)); \
} \
PG_FUNCTION_INFO_V1(fp_attribution_##sqlname##_send); \
Datum \
fp_attribution_##sqlname##_send(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_BYTEA_P(id_send((uint8 *) PG_GETARG_POINTER(0), len)); \
} \
PG_FUNCTION_INFO_V1(fp_attribution_##sqlname##_cmp); \
Datum \
fp_attribution_##sqlname##_cmp(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_INT32(memcmp(PG_GETARG_POINTER(0), PG_GETARG_POINTER(1), len)); \
} \
PG_FUNCTION_INFO_V1(fp_attribution_##sqlname##_eq); \
Datum \
fp_attribution_##sqlname##_eq(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_BOOL(memcmp(PG_GETARG_POINTER(0), PG_GETARG_POINTER(1), len) == 0); \
} \
PG_FUNCTION_INFO_V1(fp_attribution_##sqlname##_ne); \
Datum \
fp_attribution_##sqlname##_ne(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_BOOL(memcmp(PG_GETARG_POINTER(0), PG_GETARG_POINTER(1), len) != 0); \
} \
PG_FUNCTION_INFO_V1(fp_attribution_##sqlname##_lt); \
Datum \
fp_attribution_##sqlname##_lt(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_BOOL(memcmp(PG_GETARG_POINTER(0), PG_GETARG_POINTER(1), len) < 0); \
} \
PG_FUNCTION_INFO_V1(fp_attribution_##sqlname##_le); \
Datum \
fp_attribution_##sqlname##_le(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_BOOL(memcmp(PG_GETARG_POINTER(0), PG_GETARG_POINTER(1), len) <= 0); \
} \
PG_FUNCTION_INFO_V1(fp_attribution_##sqlname##_gt); \
Datum \
fp_attribution_##sqlname##_gt(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_BOOL(memcmp(PG_GETARG_POINTER(0), PG_GETARG_POINTER(1), len) > 0); \
} \
PG_FUNCTION_INFO_V1(fp_attribution_##sqlname##_ge); \
Datum \
fp_attribution_##sqlname##_ge(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_BOOL(memcmp(PG_GETARG_POINTER(0), PG_GETARG_POINTER(1), len) >= 0); \
} \
PG_FUNCTION_INFO_V1(fp_attribution_##sqlname##_hash); \
Datum \
fp_attribution_##sqlname##_hash(PG_FUNCTION_ARGS) \
{ \
	return hash_any((unsigned char *) PG_GETARG_POINTER(0), len); \
} \
PG_FUNCTION_INFO_V1(fp_attribution_##sqlname##_hash_extended); \
Datum \
fp_attribution_##sqlname##_hash_extended(PG_FUNCTION_ARGS) \
{ \
	return hash_any_extended((unsigned char *) PG_GETARG_POINTER(0), len, \
							 PG_GETARG_INT64(1)); \
}

FP_ID_TYPE_FUNCTIONS(trace_id, FP_TRACE_ID_LEN, "attribution.trace_id")
FP_ID_TYPE_FUNCTIONS(span_id, FP_SPAN_ID_LEN, "attribution.span_id")

/*
 * Format a uuid in its canonical lower-case text form into buf (37 bytes).
 * Hex digits are written directly, two per byte from a table, with the
 * dashes at fixed places: this runs for every row the telemetry trigger
 * sees, where snprintf cost more than the rest of the row and a loop over
 * the dash-separated groups cost twice this.
 */
void
fp_attribution_format_uuid(const pg_uuid_t *uuid, char *buf)
{
	static const char pairs[] =
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
		"202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
		"404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
		"606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
		"808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
		"a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
		"c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
		"e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
	const uint8 *in = uuid->data;

	/* byte i of the uuid at text offset at; unrolled, as the loop cost more */
#define UUID_BYTE(i, at) memcpy(buf + (at), &pairs[2 * in[i]], 2)
	UUID_BYTE(0, 0);
	UUID_BYTE(1, 2);
	UUID_BYTE(2, 4);
	UUID_BYTE(3, 6);
	buf[8] = '-';
	UUID_BYTE(4, 9);
	UUID_BYTE(5, 11);
	buf[13] = '-';
	UUID_BYTE(6, 14);
	UUID_BYTE(7, 16);
	buf[18] = '-';
	UUID_BYTE(8, 19);
	UUID_BYTE(9, 21);
	buf[23] = '-';
	UUID_BYTE(10, 24);
	UUID_BYTE(11, 26);
	UUID_BYTE(12, 28);
	UUID_BYTE(13, 30);
	UUID_BYTE(14, 32);
	UUID_BYTE(15, 34);
#undef UUID_BYTE
	buf[36] = '\0';
}
