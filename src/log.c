/*-------------------------------------------------------------------------
 *
 * log.c
 *	  The per-advertiser Merkle log of receipts: integration, signed
 *	  checkpoints and proofs (SQL entry points).
 *
 * Every receipt becomes one leaf of its advertiser's log, whose leaf data
 * is the receipt's 32-byte receipt_hash (SHA-256 of its canonical
 * envelope, which covers its ids, sequence, payload hash and the previous
 * receipt's hash).  attribution.log_entries maps log index to receipt;
 * attribution.log_nodes keeps the hash of every complete subtree (level 0
 * holds the leaf hashes), so roots and proofs read O(log n) rows
 * (merkle.c).
 *
 * Integration (attribution.integrate_log, run by the background worker
 * every fp_attribution.log_interval) appends committed receipts that are
 * not yet in the log, in batches, then signs one checkpoint per advertiser
 * whose log grew.  Commands never touch the log, so they take no lock for
 * it; the order of a log is the order of integration.
 *
 * Lock protocol: integrators serialize on one transaction-level advisory
 * lock (FP_LOG_LOCK_KEY), taken before they read the log's size; readers
 * (proofs, checkpoint, verification) take none and see a committed log.
 * Before signing, the new tree is checked against the latest checkpoint,
 * so the log never signs two inconsistent checkpoints.
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
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/uuid.h"

#include "fp_attribution/log.h"
#include "fp_attribution/note.h"
#include "fp_attribution/signing.h"

/* pg_advisory_xact_lock key of integration: "fplg" */
#define FP_LOG_LOCK_KEY INT64CONST(0x66706c67)

char	   *fp_attribution_log_origin_prefix = NULL;
int			fp_attribution_log_interval_ms = 1000;

/*
 * Settings of the log.
 */
void
fp_attribution_log_define_gucs(void)
{
	DefineCustomStringVariable("fp_attribution.log_origin",
							   gettext_noop("Prefix of each advertiser's log origin (checkpoint key name)."),
							   gettext_noop("The origin is the prefix, a slash and the advertiser id."),
							   &fp_attribution_log_origin_prefix,
							   "fp-attribution.invalid/log",
							   PGC_SIGHUP, 0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("fp_attribution.log_interval",
							gettext_noop("How often the worker integrates receipts into the logs and signs checkpoints."),
							gettext_noop("0 turns integration by the worker off."),
							&fp_attribution_log_interval_ms,
							1000, 0, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
}

/*
 * The origin (and note key name) of an advertiser's log.
 */
char *
fp_attribution_log_origin(const char *advertiser_id)
{
	char	   *origin = psprintf("%s/%s", fp_attribution_log_origin_prefix,
								  advertiser_id);

	if (!fp_note_valid_name(origin))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("log origin \"%s\" is not a valid note key name", origin),
				 errdetail("A key name has no spaces, control characters or \"+\".")));
	return origin;
}

/*
 * Prepare reads of an advertiser's stored subtree hashes (inside SPI).
 */
void
fp_attribution_log_reader_init(FpLogReader *reader, const char *advertiser_id)
{
	Oid			types[3] = {TEXTOID, INT2OID, INT8OID};

	reader->advertiser_id = advertiser_id;
	reader->plan = SPI_prepare("SELECT hash FROM attribution.log_nodes"
							   " WHERE advertiser_id = $1 AND level = $2 AND node_index = $3",
							   3, types);
	if (reader->plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
}

/*
 * FpMerkleReadNode over attribution.log_nodes; a missing or malformed
 * node is corruption.
 */
void
fp_attribution_log_read_node(void *arg, int level, int64 index, uint8 *out)
{
	FpLogReader *reader = arg;
	Datum		values[3];
	bool		isnull;
	bytea	   *hash;

	values[0] = CStringGetTextDatum(reader->advertiser_id);
	values[1] = Int16GetDatum(level);
	values[2] = Int64GetDatum(index);
	if (SPI_execute_plan(reader->plan, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read attribution.log_nodes");
	if (SPI_processed == 1)
	{
		hash = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 1, &isnull));
		if (VARSIZE_ANY_EXHDR(hash) == FP_MERKLE_HASH_LEN)
		{
			memcpy(out, VARDATA_ANY(hash), FP_MERKLE_HASH_LEN);
			return;
		}
	}
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("log of advertiser \"%s\" has no valid node at level %d, index " INT64_FORMAT,
					reader->advertiser_id, level, index)));
}

/*
 * The size of an advertiser's log: one past its highest index.
 */
int64
fp_attribution_log_size(const char *advertiser_id)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;
	Datum		d;

	values[0] = CStringGetTextDatum(advertiser_id);
	if (SPI_execute_with_args("SELECT max(log_index) + 1 FROM attribution.log_entries"
							  " WHERE advertiser_id = $1",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read attribution.log_entries");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetInt64(d);
}

/* What an append writes: the advertiser and the prepared insert */
typedef struct LogWriter
{
	Datum		advertiser_id;
	SPIPlanPtr	plan;
} LogWriter;

/* FpMerkleWriteNode into attribution.log_nodes */
static void
write_node(void *arg, int level, int64 index, const uint8 *hash)
{
	LogWriter  *w = arg;
	Datum		values[4];
	bytea	   *b = palloc(VARHDRSZ + FP_MERKLE_HASH_LEN);

	SET_VARSIZE(b, VARHDRSZ + FP_MERKLE_HASH_LEN);
	memcpy(VARDATA(b), hash, FP_MERKLE_HASH_LEN);
	values[0] = w->advertiser_id;
	values[1] = Int16GetDatum(level);
	values[2] = Int64GetDatum(index);
	values[3] = PointerGetDatum(b);
	if (SPI_execute_plan(w->plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert into attribution.log_nodes");
}

/* A bytea of a 32-byte hash */
static bytea *
hash_bytea(const uint8 *hash)
{
	bytea	   *b = palloc(VARHDRSZ + FP_MERKLE_HASH_LEN);

	SET_VARSIZE(b, VARHDRSZ + FP_MERKLE_HASH_LEN);
	memcpy(VARDATA(b), hash, FP_MERKLE_HASH_LEN);
	return b;
}

/*
 * Sign and store a checkpoint of the advertiser's log at edge->size,
 * after checking that the tree extends the latest stored checkpoint.
 */
static void
sign_checkpoint(const char *advertiser_id, const FpMerkleEdge *edge)
{
	const FpSigningKey *key = fp_attribution_signing_key();
	char	   *origin = fp_attribution_log_origin(advertiser_id);
	FpMerkleHash root;
	char	   *note;
	Oid			types[5] = {TEXTOID, INT8OID, BYTEAOID, BYTEAOID, TEXTOID};
	Datum		values[5];
	bytea	   *public_key;
	bool		isnull;

	values[0] = CStringGetTextDatum(advertiser_id);
	if (SPI_execute_with_args("SELECT tree_size, root_hash FROM attribution.log_checkpoints"
							  " WHERE advertiser_id = $1 ORDER BY tree_size DESC LIMIT 1",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read attribution.log_checkpoints");
	if (SPI_processed == 1)
	{
		int64		old_size = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 1, &isnull));
		bytea	   *old_root = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0],
															 SPI_tuptable->tupdesc, 2, &isnull));
		FpLogReader reader;
		FpMerkleHash at_old;

		if (old_size >= edge->size)
			return;
		fp_attribution_log_reader_init(&reader, advertiser_id);
		fp_merkle_root(old_size, fp_attribution_log_read_node, &reader, at_old);
		if (VARSIZE_ANY_EXHDR(old_root) != FP_MERKLE_HASH_LEN ||
			memcmp(VARDATA_ANY(old_root), at_old, FP_MERKLE_HASH_LEN) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("log of advertiser \"%s\" does not extend its checkpoint at size " INT64_FORMAT,
							advertiser_id, old_size),
					 errhint("Run attribution.verify_all(); no new checkpoint is signed.")));
	}

	fp_merkle_edge_root(edge, root);
	note = fp_note_sign(fp_note_checkpoint_body(origin, edge->size, root),
						origin, key->public_key);
	public_key = palloc(VARHDRSZ + FP_ED25519_PUBLIC_KEY_LEN);
	SET_VARSIZE(public_key, VARHDRSZ + FP_ED25519_PUBLIC_KEY_LEN);
	memcpy(VARDATA(public_key), key->public_key, FP_ED25519_PUBLIC_KEY_LEN);
	values[1] = Int64GetDatum(edge->size);
	values[2] = PointerGetDatum(hash_bytea(root));
	values[3] = PointerGetDatum(public_key);
	values[4] = CStringGetTextDatum(note);
	if (SPI_execute_with_args("INSERT INTO attribution.log_checkpoints"
							  " (advertiser_id, tree_size, root_hash, public_key, note)"
							  " VALUES ($1, $2, $3, $4, $5)",
							  5, types, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert into attribution.log_checkpoints");
}

/*
 * Append the rows of one advertiser (rows [from, to) of the pending
 * receipts, all of that advertiser) to its log; sign a checkpoint.
 */
static void
integrate_advertiser(SPITupleTable *pending, uint64 from, uint64 to)
{
	bool		isnull;
	char	   *adv = TextDatumGetCString(SPI_getbinval(pending->vals[from],
														pending->tupdesc, 1, &isnull));
	FpLogReader reader;
	FpMerkleEdge edge;
	LogWriter	writer;
	SPIPlanPtr	entry_plan;
	Oid			node_types[4] = {TEXTOID, INT2OID, INT8OID, BYTEAOID};
	Oid			entry_types[3] = {TEXTOID, INT8OID, UUIDOID};

	fp_attribution_log_reader_init(&reader, adv);
	fp_merkle_edge_load(&edge, fp_attribution_log_size(adv),
						fp_attribution_log_read_node, &reader);
	writer.advertiser_id = CStringGetTextDatum(adv);
	writer.plan = SPI_prepare("INSERT INTO attribution.log_nodes"
							  " (advertiser_id, level, node_index, hash) VALUES ($1, $2, $3, $4)",
							  4, node_types);
	entry_plan = SPI_prepare("INSERT INTO attribution.log_entries"
							 " (advertiser_id, log_index, receipt_id) VALUES ($1, $2, $3)",
							 3, entry_types);
	if (writer.plan == NULL || entry_plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));

	for (uint64 i = from; i < to; i++)
	{
		Datum		values[3];
		bytea	   *receipt_hash;
		FpMerkleHash leaf;

		receipt_hash = DatumGetByteaPP(SPI_getbinval(pending->vals[i],
													 pending->tupdesc, 3, &isnull));
		fp_merkle_leaf_hash((const uint8 *) VARDATA_ANY(receipt_hash),
							VARSIZE_ANY_EXHDR(receipt_hash), leaf);
		values[0] = writer.advertiser_id;
		values[1] = Int64GetDatum(edge.size);
		values[2] = SPI_getbinval(pending->vals[i], pending->tupdesc, 2, &isnull);
		if (SPI_execute_plan(entry_plan, values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not insert into attribution.log_entries");
		fp_merkle_edge_append(&edge, leaf, write_node, &writer);
	}
	if (fp_attribution_signing_key_file != NULL &&
		fp_attribution_signing_key_file[0] != '\0')
		sign_checkpoint(adv, &edge);
}

/*
 * attribution.integrate_log(max_entries integer) returns bigint
 *
 * Append up to max_entries committed receipts that are not in their
 * advertiser's log yet (oldest first within an advertiser); sign a
 * checkpoint for each log that grew, when a signing key is set.
 * Returns the number of receipts integrated.
 */
PG_FUNCTION_INFO_V1(fp_attribution_integrate_log);
Datum
fp_attribution_integrate_log(PG_FUNCTION_ARGS)
{
	int32		max_entries = PG_GETARG_INT32(0);
	Oid			types[1] = {INT4OID};
	Datum		values[1];
	SPITupleTable *pending;
	uint64		n;
	uint64		start = 0;

	if (max_entries <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_entries must be positive")));
	SPI_connect();
	values[0] = Int64GetDatum(FP_LOG_LOCK_KEY);
	if (SPI_execute_with_args("SELECT pg_catalog.pg_advisory_xact_lock($1::int8)",
							  1, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock the log");
	values[0] = Int32GetDatum(max_entries);
	if (SPI_execute_with_args("SELECT r.advertiser_id, r.receipt_id, r.receipt_hash"
							  " FROM attribution.receipts r"
							  " WHERE NOT EXISTS (SELECT FROM attribution.log_entries e"
							  "  WHERE e.advertiser_id = r.advertiser_id AND e.receipt_id = r.receipt_id)"
							  " ORDER BY r.advertiser_id, r.\"timestamp\", r.receipt_id LIMIT $1",
							  1, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read pending receipts");
	pending = SPI_tuptable;
	n = SPI_processed;
	for (uint64 i = 1; i <= n; i++)
	{
		bool		isnull;

		if (i < n &&
			strcmp(TextDatumGetCString(SPI_getbinval(pending->vals[i], pending->tupdesc, 1, &isnull)),
				   TextDatumGetCString(SPI_getbinval(pending->vals[start], pending->tupdesc, 1, &isnull))) == 0)
			continue;
		integrate_advertiser(pending, start, i);
		start = i;
	}
	SPI_finish();
	PG_RETURN_INT64((int64) n);
}
