/*-------------------------------------------------------------------------
 *
 * log_proof.c
 *	  SQL entry points that read the receipt logs: the latest checkpoint,
 *	  the note verifier key, inclusion (c2sp.org/tlog-proof@v1) and
 *	  consistency proofs.
 *
 * Readers take no lock: they see the committed log (log.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/base64.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/uuid.h"

#include "fp_attribution/log.h"
#include "fp_attribution/note.h"
#include "fp_attribution/signing.h"

/* Append a hash in base64 and a newline */
static void
append_hash_line(StringInfo buf, const uint8 *data, int len)
{
	int			enclen = pg_b64_enc_len(len);

	enlargeStringInfo(buf, enclen + 2);
	buf->len += pg_b64_encode((const char *) data, len, buf->data + buf->len, enclen);
	appendStringInfoChar(buf, '\n');
}

/*
 * The latest checkpoint note of an advertiser with at least min_size
 * entries, and its size; NULL when there is none.
 */
static char *
latest_checkpoint(const char *advertiser_id, int64 min_size, int64 *size)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		values[2];
	bool		isnull;

	values[0] = CStringGetTextDatum(advertiser_id);
	values[1] = Int64GetDatum(min_size);
	if (SPI_execute_with_args("SELECT note, tree_size FROM attribution.log_checkpoints"
							  " WHERE advertiser_id OPERATOR(pg_catalog.=) $1"
							  " AND tree_size OPERATOR(pg_catalog.>=) $2"
							  " ORDER BY tree_size DESC LIMIT 1",
							  2, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read attribution.log_checkpoints");
	if (SPI_processed == 0)
		return NULL;
	*size = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										SPI_tuptable->tupdesc, 2, &isnull));
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

/*
 * attribution.checkpoint(advertiser_id text) returns text
 *
 * The latest signed checkpoint note of the advertiser's log; NULL when
 * none was signed yet.
 */
PG_FUNCTION_INFO_V1(fp_attribution_checkpoint);
Datum
fp_attribution_checkpoint(PG_FUNCTION_ARGS)
{
	char	   *adv = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *note;
	text	   *result = NULL;
	int64		size;

	SPI_connect();
	note = latest_checkpoint(adv, 0, &size);
	if (note != NULL)
		result = (text *) SPI_palloc(VARHDRSZ + strlen(note));
	if (result != NULL)
	{
		SET_VARSIZE(result, VARHDRSZ + strlen(note));
		memcpy(VARDATA(result), note, strlen(note));
	}
	SPI_finish();
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(result);
}

/*
 * attribution.log_verifier_key(advertiser_id text) returns text
 *
 * The note verifier key of the advertiser's log under the current signing
 * key: "<origin>+<key hash>+<base64(0x01 || public key)>".
 */
PG_FUNCTION_INFO_V1(fp_attribution_log_verifier_key);
Datum
fp_attribution_log_verifier_key(PG_FUNCTION_ARGS)
{
	char	   *adv = text_to_cstring(PG_GETARG_TEXT_PP(0));
	const FpSigningKey *key = fp_attribution_signing_key();

	PG_RETURN_TEXT_P(cstring_to_text(fp_note_verifier_key(fp_attribution_log_origin(adv),
														  key->public_key)));
}

/*
 * attribution.receipt_proof(receipt_id uuid) returns text
 *
 * The offline proof that the receipt is in its advertiser's log, in the
 * c2sp.org/tlog-proof@v1 layout: the header line, "extra" with the leaf
 * data (base64 receipt_hash), "index N", the inclusion hashes (leaf end
 * first), an empty line and the latest checkpoint note.
 */
PG_FUNCTION_INFO_V1(fp_attribution_receipt_proof);
Datum
fp_attribution_receipt_proof(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id = PG_GETARG_UUID_P(0);
	Oid			types[1] = {UUIDOID};
	Datum		values[1];
	bool		isnull;
	char	   *adv;
	int64		index;
	int64		size;
	bytea	   *receipt_hash;
	char	   *note;
	FpLogReader reader;
	FpMerkleHash proof[FP_MERKLE_MAX_LEVELS];
	int			nproof;
	StringInfoData buf;
	text	   *result;

	SPI_connect();
	values[0] = UUIDPGetDatum(id);
	/* the receipt's advertiser first: log_entries is keyed by it */
	if (SPI_execute_with_args("SELECT e.advertiser_id, e.log_index, r.receipt_hash"
							  " FROM attribution.receipts r JOIN attribution.log_entries e"
							  "  ON e.advertiser_id OPERATOR(pg_catalog.=) r.advertiser_id"
							  "  AND e.receipt_id OPERATOR(pg_catalog.=) r.receipt_id"
							  " WHERE r.receipt_id OPERATOR(pg_catalog.=) $1",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read attribution.log_entries");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("receipt %s is not in a log",
						DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(id)))),
				 errhint("Receipts are integrated by the background worker, or by attribution.integrate_log().")));
	adv = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	index = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	receipt_hash = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	note = latest_checkpoint(adv, index + 1, &size);
	if (note == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no checkpoint of advertiser \"%s\" covers log index " INT64_FORMAT, adv, index)));
	fp_attribution_log_reader_init(&reader, adv);
	nproof = fp_merkle_inclusion_proof(index, size, fp_attribution_log_read_node,
									   &reader, proof);

	initStringInfo(&buf);
	appendStringInfoString(&buf, "c2sp.org/tlog-proof@v1\nextra ");
	append_hash_line(&buf, (const uint8 *) VARDATA_ANY(receipt_hash),
					 VARSIZE_ANY_EXHDR(receipt_hash));
	appendStringInfo(&buf, "index " INT64_FORMAT "\n", index);
	for (int i = 0; i < nproof; i++)
		append_hash_line(&buf, proof[i], FP_MERKLE_HASH_LEN);
	appendStringInfo(&buf, "\n%s", note);
	result = (text *) SPI_palloc(VARHDRSZ + buf.len);
	SET_VARSIZE(result, VARHDRSZ + buf.len);
	memcpy(VARDATA(result), buf.data, buf.len);
	SPI_finish();
	PG_RETURN_TEXT_P(result);
}

/*
 * attribution.consistency_proof(advertiser_id text, old_size bigint,
 *								 new_size bigint) returns text[]
 *
 * The RFC 6962 consistency proof between two sizes of the log, as base64
 * hashes.
 */
PG_FUNCTION_INFO_V1(fp_attribution_consistency_proof);
Datum
fp_attribution_consistency_proof(PG_FUNCTION_ARGS)
{
	char	   *adv = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int64		old_size = PG_GETARG_INT64(1);
	int64		new_size = PG_GETARG_INT64(2);
	int64		size;
	FpLogReader reader;
	FpMerkleHash proof[2 * FP_MERKLE_MAX_LEVELS];
	int			nproof;
	Datum	   *elems;
	ArrayType  *result;

	SPI_connect();
	size = fp_attribution_log_size(adv);
	if (old_size < 0 || old_size > new_size || new_size > size)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sizes " INT64_FORMAT " and " INT64_FORMAT " are not 0 <= old_size <= new_size <= " INT64_FORMAT,
						old_size, new_size, size),
				 errdetail("The log of advertiser \"%s\" has " INT64_FORMAT " entries.", adv, size)));
	fp_attribution_log_reader_init(&reader, adv);
	nproof = fp_merkle_consistency_proof(old_size, new_size,
										 fp_attribution_log_read_node, &reader, proof);
	SPI_finish();

	elems = palloc(Max(nproof, 1) * sizeof(Datum));
	for (int i = 0; i < nproof; i++)
	{
		char		enc[64];
		int			len = pg_b64_encode((const char *) proof[i], FP_MERKLE_HASH_LEN,
										enc, sizeof(enc));

		elems[i] = PointerGetDatum(cstring_to_text_with_len(enc, len));
	}
	result = construct_array(elems, nproof, TEXTOID, -1, false, TYPALIGN_INT);
	PG_RETURN_ARRAYTYPE_P(result);
}
