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

#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "fp_attribution/ids.h"
#include "fp_attribution/jcs.h"
#include "fp_attribution/receipts.h"
#include "fp_attribution/signing.h"

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
	snprintf(buf, FP_RFC3339_LEN + 1, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
			 tm.tm_year, tm.tm_mon, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec, (int) fsec);
	return true;
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
	appendStringInfo(out, ",\"%s\":\"%s\"", name, hex);
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

	if (!fp_attribution_format_timestamp(env->timestamp, ts))
		return false;

	appendStringInfoString(out, "{\"advertiser_id\":");
	fp_attribution_jcs_append_string(out, env->advertiser_id,
									 strlen(env->advertiser_id));
	appendStringInfoString(out, ",\"aggregate_id\":");
	fp_attribution_jcs_append_string(out, env->aggregate_id,
									 strlen(env->aggregate_id));
	appendStringInfoString(out, ",\"aggregate_type\":");
	fp_attribution_jcs_append_string(out, env->aggregate_type,
									 strlen(env->aggregate_type));
	if (env->has_causation)
	{
		fp_attribution_format_uuid(&env->causation_id, uuid);
		appendStringInfo(out, ",\"causation_id\":\"%s\"", uuid);
	}
	else
		appendStringInfoString(out, ",\"causation_id\":null");
	appendStringInfoString(out, ",\"correlation_id\":");
	fp_attribution_jcs_append_string(out, env->correlation_id,
									 strlen(env->correlation_id));
	if (env->key_id != NULL)
	{
		appendStringInfoString(out, ",\"key_id\":");
		fp_attribution_jcs_append_string(out, env->key_id,
										 strlen(env->key_id));
	}
	else
		appendStringInfoString(out, ",\"key_id\":null");
	append_hex_member(out, "payload_hash", env->payload_hash, FP_SHA256_LEN);
	append_hex_member(out, "prev_hash", env->prev_hash, FP_SHA256_LEN);
	fp_attribution_format_uuid(&env->receipt_id, uuid);
	appendStringInfo(out, ",\"receipt_id\":\"%s\",\"sequence\":" INT64_FORMAT,
					 uuid, env->sequence);
	append_hex_member(out, "span_id", env->span_id.bytes, FP_SPAN_ID_LEN);
	appendStringInfo(out, ",\"timestamp\":\"%s\"", ts);
	append_hex_member(out, "trace_id", env->trace_id.bytes, FP_TRACE_ID_LEN);
	appendStringInfoString(out, ",\"version\":1}");
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
