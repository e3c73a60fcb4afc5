/*-------------------------------------------------------------------------
 *
 * receipt_envelope.c
 *	  The receipt's canonical envelope and its hashes: what writing
 *	  (receipts.c) and verifying (verify.c, log_verify.c) share.
 *
 * Pure functions of their arguments: no SPI, no fmgr, no catalog access,
 * so the hash a receipt is written with and the hash it is checked
 * against come from the same code (doc/receipts.md).
 *
 * Shared memory: none.  Backend-local state: none.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "fp_attribution/ids.h"
#include "fp_attribution/jcs.h"
#include "fp_attribution/receipts.h"
#include "fp_attribution/signing.h"

/*
 * Write value (0 <= value < 10^width) as width decimal digits, with
 * leading zeros.  Receipts format a timestamp for every receipt written
 * and verified, where snprintf cost more than the rest of the envelope.
 */
static void
put_digits(char *buf, int value, int width)
{
	for (int i = width - 1; i >= 0; i--)
	{
		buf[i] = '0' + value % 10;
		value /= 10;
	}
}

/*
 * Format ts as RFC 3339 in UTC with exactly six fractional digits into
 * buf (FP_RFC3339_LEN + 1 bytes).  Returns false for infinite timestamps
 * and years outside 1..9999.
 */
bool
fp_attribution_format_timestamp(TimestampTz ts, char *buf)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (TIMESTAMP_NOT_FINITE(ts) ||
		timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0 ||
		tm.tm_year < 1 || tm.tm_year > 9999)
		return false;
	/* "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", without snprintf's cost */
	put_digits(buf, tm.tm_year, 4);
	buf[4] = '-';
	put_digits(buf + 5, tm.tm_mon, 2);
	buf[7] = '-';
	put_digits(buf + 8, tm.tm_mday, 2);
	buf[10] = 'T';
	put_digits(buf + 11, tm.tm_hour, 2);
	buf[13] = ':';
	put_digits(buf + 14, tm.tm_min, 2);
	buf[16] = ':';
	put_digits(buf + 17, tm.tm_sec, 2);
	buf[19] = '.';
	put_digits(buf + 20, (int) fsec, 6);
	buf[26] = 'Z';
	buf[FP_RFC3339_LEN] = '\0';
	return true;
}

/* Append a string literal to out, its length known when compiled */
#define append_literal(out, s) appendBinaryStringInfo(out, s, sizeof(s) - 1)

/*
 * Append ,"name":"value" to out; value needs no escaping.  (The envelope
 * is built for every receipt written and verified: appendStringInfo's
 * formatting cost more than the hashing.)
 */
static void
append_member(StringInfo out, const char *name, const char *value)
{
	append_literal(out, ",\"");
	appendStringInfoString(out, name);
	append_literal(out, "\":\"");
	appendStringInfoString(out, value);
	appendStringInfoCharMacro(out, '"');
}

/*
 * Append ,"name":"<hex of bytes>" to out.
 */
static void
append_hex_member(StringInfo out, const char *name, const uint8 *bytes,
				  int len)
{
	char		hex[2 * FP_SHA256_LEN + 1];

	Assert(len <= FP_SHA256_LEN);
	fp_attribution_hex_encode(bytes, len, hex);
	append_member(out, name, hex);
}

/*
 * Append the canonical envelope of a receipt: the RFC 8785 form of a JSON
 * object with exactly these members, already in JCS order, hashes and ids
 * as lower-case hex, uuids in their 8-4-4-4-12 form, the timestamp as in
 * fp_attribution_format_timestamp, the sequence as a JSON integer, and
 * "version": 1.  README (doc/receipts.md) documents the same format; keep
 * both in step.  Returns false if the timestamp cannot be formatted.
 */
bool
fp_attribution_receipt_envelope(StringInfo out, const FpReceiptEnvelope *env)
{
	char		uuid[37];
	char		ts[FP_RFC3339_LEN + 1];
	char		sequence[MAXINT8LEN + 1];

	if (!fp_attribution_format_timestamp(env->timestamp, ts))
		return false;

	append_literal(out, "{\"advertiser_id\":");
	fp_attribution_jcs_append_string(out, env->advertiser_id,
									 strlen(env->advertiser_id));
	append_literal(out, ",\"aggregate_id\":");
	fp_attribution_jcs_append_string(out, env->aggregate_id,
									 strlen(env->aggregate_id));
	append_literal(out, ",\"aggregate_type\":");
	fp_attribution_jcs_append_string(out, env->aggregate_type,
									 strlen(env->aggregate_type));
	if (env->has_causation)
	{
		fp_attribution_format_uuid(&env->causation_id, uuid);
		append_member(out, "causation_id", uuid);
	}
	else
		append_literal(out, ",\"causation_id\":null");
	append_literal(out, ",\"correlation_id\":");
	fp_attribution_jcs_append_string(out, env->correlation_id,
									 strlen(env->correlation_id));
	if (env->key_id != NULL)
	{
		append_literal(out, ",\"key_id\":");
		fp_attribution_jcs_append_string(out, env->key_id,
										 strlen(env->key_id));
	}
	else
		append_literal(out, ",\"key_id\":null");
	append_hex_member(out, "payload_hash", env->payload_hash, FP_SHA256_LEN);
	append_hex_member(out, "prev_hash", env->prev_hash, FP_SHA256_LEN);
	fp_attribution_format_uuid(&env->receipt_id, uuid);
	append_member(out, "receipt_id", uuid);
	append_literal(out, ",\"sequence\":");
	pg_lltoa(env->sequence, sequence);
	appendStringInfoString(out, sequence);
	append_hex_member(out, "span_id", env->span_id.bytes, FP_SPAN_ID_LEN);
	append_member(out, "timestamp", ts);
	append_hex_member(out, "trace_id", env->trace_id.bytes, FP_TRACE_ID_LEN);
	append_literal(out, ",\"version\":1}");
	return true;
}

/*
 * SHA-256 of the JCS form of payload into out.  Returns false, with
 * *bad_number set, if the payload holds a number JCS cannot represent or
 * one whose stored value differs from its canonical text's (the hash must
 * pin the stored value).
 */
bool
fp_attribution_payload_hash(Jsonb *payload, uint8 *out,
							const char **bad_number)
{
	StringInfoData buf;

	initStringInfo(&buf);
	if (!fp_attribution_jcs_append_jsonb(&buf, &payload->root, true, bad_number))
		return false;
	fp_attribution_sha256(buf.data, buf.len, out);
	pfree(buf.data);
	return true;
}

/*
 * True if the bytea holds exactly these len bytes.
 */
bool
fp_attribution_bytea_equals(const bytea *b, const uint8 *bytes, int len)
{
	return b != NULL && VARSIZE_ANY_EXHDR(b) == len &&
		memcmp(VARDATA_ANY(b), bytes, len) == 0;
}
