/*-------------------------------------------------------------------------
 *
 * log_verify.c
 *	  Verification of the receipt logs: the log part of verify_all() and
 *	  verify_log(checkpoint).
 *
 * verify_all() proves the logs complete and intact, in order:
 *	log_receipt		every log entry's receipt still exists (a deleted
 *					receipt, with or without its row, leaves its entry)
 *	log_leaf		every entry's leaf hash (in attribution.log_tiles) is
 *					SHA-256(0x00 || receipt_hash) of its receipt
 *	log_gap			the rows of leaf hashes follow each other from index
 *					0, their n indexes 0..n-1 each hold one entry, and
 *					every stored level of subtree hashes is complete
 *	log_node		every stored subtree hash is the root of the
 *					2^FP_LOG_TILE_HEIGHT stored hashes under it
 *	checkpoint		every stored checkpoint note parses, is signed by its
 *					key under its origin, names its row's size and root,
 *					and that root is the log's root at that size (so all
 *					checkpoints are consistent with each other)
 *	log_missing		every receipt is in its log or queued for it
 *					(attribution.log_queue): a queue row deleted would
 *					leave its receipt out of the log for good
 * Receipts queued and not yet integrated are pending, not failures
 * (attribution.log_status shows them).
 *
 * verify_log(checkpoint) checks a checkpoint an auditor kept against
 * today's log; unlike verify_all() it catches a history rewritten and
 * re-signed after the auditor saved the checkpoint.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "fp_attribution/log.h"
#include "fp_attribution/note.h"
#include "fp_attribution/signing.h"

/*
 * The SQL checks: each returns the first failure as (advertiser_id,
 * location, detail), ordered so the result is deterministic; log_node,
 * which folds hashes, runs in C (check_nodes).
 */
static const struct
{
	const char *check;
	const char *sql;
}			log_checks[] =
{
	{
		"log_receipt",
		"SELECT e.advertiser_id, 'index ' OPERATOR(pg_catalog.||) e.log_index,"
		" pg_catalog.format('Log index %s names receipt %s, which is not in attribution.receipts.', e.log_index, e.receipt_id)"
		" FROM attribution.log_entries e WHERE NOT EXISTS (SELECT FROM attribution.receipts r"
		"  WHERE r.advertiser_id OPERATOR(pg_catalog.=) e.advertiser_id AND r.receipt_id OPERATOR(pg_catalog.=) e.receipt_id)"
		" ORDER BY 1, e.log_index LIMIT 1"
	},
	/*
	 * The row of leaf hashes of an entry is the last one starting at or
	 * below its index (one probe of log_tiles' primary key); an index past
	 * that row's end reads an empty hash, a failure here too.  An entry
	 * with no row at all is log_gap's.
	 */
	{
		"log_leaf",
		"SELECT e.advertiser_id, 'index ' OPERATOR(pg_catalog.||) e.log_index,"
		" pg_catalog.format('The leaf hash at log index %s is not SHA-256(0x00 || receipt_hash) of receipt %s.', e.log_index, e.receipt_id)"
		" FROM attribution.log_entries e JOIN attribution.receipts r"
		"  ON r.advertiser_id OPERATOR(pg_catalog.=) e.advertiser_id AND r.receipt_id OPERATOR(pg_catalog.=) e.receipt_id,"
		" LATERAL (SELECT t.first_index, t.leaf_hashes FROM attribution.log_tiles t"
		"  WHERE t.advertiser_id OPERATOR(pg_catalog.=) e.advertiser_id"
		"  AND t.first_index OPERATOR(pg_catalog.<=) e.log_index"
		"  ORDER BY t.first_index DESC LIMIT 1) t"
		" WHERE pg_catalog.substr(t.leaf_hashes,"
		"  ((e.log_index OPERATOR(pg_catalog.-) t.first_index) OPERATOR(pg_catalog.*) " CppAsString2(FP_MERKLE_HASH_LEN) ")::pg_catalog.int4 OPERATOR(pg_catalog.+) 1,"
		"  " CppAsString2(FP_MERKLE_HASH_LEN) ")"
		"  OPERATOR(pg_catalog.<>) pg_catalog.sha256('\\x00'::bytea OPERATOR(pg_catalog.||) r.receipt_hash)"
		" ORDER BY 1, e.log_index LIMIT 1"
	},
	{
		"log_gap",
		"WITH tiles AS (SELECT advertiser_id, first_index,"
		"   first_index OPERATOR(pg_catalog.+) (pg_catalog.octet_length(leaf_hashes) OPERATOR(pg_catalog./) " CppAsString2(FP_MERKLE_HASH_LEN) ") AS next,"
		"   pg_catalog.lag(first_index OPERATOR(pg_catalog.+) (pg_catalog.octet_length(leaf_hashes) OPERATOR(pg_catalog./) " CppAsString2(FP_MERKLE_HASH_LEN) "), 1, 0::pg_catalog.int8)"
		"    OVER (PARTITION BY advertiser_id ORDER BY first_index) AS expected"
		"   FROM attribution.log_tiles),"
		" sizes AS (SELECT advertiser_id, max(next) AS size FROM tiles GROUP BY 1),"
		" entries AS (SELECT advertiser_id, count(*) AS n, count(DISTINCT log_index) AS indexes,"
		"   max(log_index) OPERATOR(pg_catalog.+) 1 AS top"
		"   FROM attribution.log_entries GROUP BY 1),"
		" levels AS (SELECT advertiser_id, level, count(*) AS n, max(node_index) OPERATOR(pg_catalog.+) 1 AS top"
		"   FROM attribution.log_nodes GROUP BY 1, 2)"
		" SELECT t.advertiser_id, 'leaves ' OPERATOR(pg_catalog.||) t.first_index,"
		"  pg_catalog.format('The leaf hashes stored from index %s should start at index %s.', t.first_index, t.expected)"
		"  FROM tiles t WHERE t.first_index OPERATOR(pg_catalog.<>) t.expected"
		" UNION ALL"
		" SELECT advertiser_id, 'entries',"
		"  pg_catalog.format('The log has %s leaf hashes but %s entries at %s distinct indexes, the highest %s.',"
		"   coalesce(s.size, 0), coalesce(e.n, 0), coalesce(e.indexes, 0), coalesce(e.top, 0) OPERATOR(pg_catalog.-) 1)"
		"  FROM sizes s FULL JOIN entries e USING (advertiser_id)"
		"  WHERE coalesce(s.size, 0) OPERATOR(pg_catalog.<>) coalesce(e.n, 0)"
		"   OR e.n OPERATOR(pg_catalog.<>) e.indexes OR e.n OPERATOR(pg_catalog.<>) e.top"
		" UNION ALL"
		" SELECT l.advertiser_id, 'level ' OPERATOR(pg_catalog.||) l.level,"
		"  pg_catalog.format('Level %s of the stored hashes has %s nodes; a log of %s entries has %s.',"
		"   l.level, l.n, coalesce(s.size, 0), coalesce(s.size, 0) OPERATOR(pg_catalog.>>) l.level)"
		"  FROM levels l LEFT JOIN sizes s ON s.advertiser_id OPERATOR(pg_catalog.=) l.advertiser_id"
		"  WHERE l.n OPERATOR(pg_catalog.<>) l.top"
		"   OR l.n OPERATOR(pg_catalog.<>) (coalesce(s.size, 0) OPERATOR(pg_catalog.>>) l.level)"
		" UNION ALL"
		" SELECT s.advertiser_id, 'levels',"
		"  pg_catalog.format('A log of %s entries is missing stored hashes of level %s.', s.size, g.level)"
		"  FROM sizes s, pg_catalog.generate_series(" CppAsString2(FP_LOG_TILE_HEIGHT) ", 62, "
		CppAsString2(FP_LOG_TILE_HEIGHT) ") g(level)"
		"  WHERE (s.size OPERATOR(pg_catalog.>>) g.level) OPERATOR(pg_catalog.>) 0 AND NOT EXISTS (SELECT FROM levels l"
		"   WHERE l.advertiser_id OPERATOR(pg_catalog.=) s.advertiser_id AND l.level OPERATOR(pg_catalog.=) g.level)"
		" ORDER BY 1, 2 LIMIT 1"
	},
	{
		"log_node", NULL
	},
	{
		"log_missing",
		"SELECT r.advertiser_id, 'receipt ' OPERATOR(pg_catalog.||) r.receipt_id,"
		" pg_catalog.format('Receipt %s is neither in its advertiser''s log nor queued for it.', r.receipt_id)"
		" FROM attribution.receipts r"
		" WHERE NOT EXISTS (SELECT FROM attribution.log_entries e"
		"  WHERE e.advertiser_id OPERATOR(pg_catalog.=) r.advertiser_id"
		"  AND e.receipt_id OPERATOR(pg_catalog.=) r.receipt_id)"
		" AND NOT EXISTS (SELECT FROM attribution.log_queue q"
		"  WHERE q.advertiser_id OPERATOR(pg_catalog.=) r.advertiser_id"
		"  AND q.receipt_id OPERATOR(pg_catalog.=) r.receipt_id)"
		" ORDER BY 1, r.receipt_id LIMIT 1"
	},
};

/*
 * Check one stored checkpoint (parsed into *cp from its note); returns
 * NULL or the failure's detail.
 */
static char *
check_checkpoint(const char *adv, int64 size, bytea *root, bytea *public_key,
				 const char *note, int64 log_size)
{
	FpCheckpoint cp;
	const char *err = fp_note_parse_checkpoint(note, &cp);
	char	   *owner;
	FpLogReader reader;
	FpMerkleHash at_size;

	if (err != NULL)
		return psprintf("The note does not parse: %s.", err);
	owner = fp_attribution_log_advertiser(cp.origin);
	if (owner == NULL || strcmp(owner, adv) != 0)
		return psprintf("The note's origin \"%s\" is not the origin of advertiser \"%s\"'s log.", cp.origin, adv);
	if (VARSIZE_ANY_EXHDR(public_key) != FP_ED25519_PUBLIC_KEY_LEN ||
		!fp_note_verify(&cp, cp.origin, (const uint8 *) VARDATA_ANY(public_key)))
		return pstrdup("The note's signature does not verify under its public key.");
	if (cp.size != size || VARSIZE_ANY_EXHDR(root) != FP_MERKLE_HASH_LEN ||
		memcmp(cp.root, VARDATA_ANY(root), FP_MERKLE_HASH_LEN) != 0)
		return pstrdup("The note's size or root differs from its row.");
	if (size > log_size)
		return psprintf("The checkpoint has " INT64_FORMAT " entries; the log has only " INT64_FORMAT ".",
						size, log_size);
	fp_attribution_log_reader_init(&reader, adv);
	fp_merkle_root(size, fp_attribution_log_read_node, &reader, at_size);
	if (memcmp(at_size, cp.root, FP_MERKLE_HASH_LEN) != 0)
		return psprintf("The log's root at size " INT64_FORMAT " is not the checkpoint's.", size);
	return NULL;
}

/*
 * The log_node check: every stored hash above level 0 is the root of the
 * stored hashes under it, FP_LOG_TILE_HEIGHT levels down (whose levels
 * log_gap found complete).  Returns true when all are; else false with
 * the first failure's advertiser, location and detail, allocated in the
 * SPI procedure's context.
 */
static bool
check_nodes(char **advertiser_id, char **location, char **detail)
{
	Portal		portal = SPI_cursor_open_with_args(NULL,
												   "SELECT advertiser_id, level, node_index, hash"
												   " FROM attribution.log_nodes ORDER BY 1, 2, 3",
												   0, NULL, NULL, NULL, true, 0);

	for (;;)
	{
		SPITupleTable *batch;
		uint64		nrows;

		SPI_cursor_fetch(portal, true, 100);
		if (SPI_processed == 0)
			break;
		batch = SPI_tuptable;
		nrows = SPI_processed;
		for (uint64 r = 0; r < nrows; r++)
		{
			HeapTuple	tup = batch->vals[r];
			bool		isnull;
			FpLogReader reader;
			FpMerkleHash under[1 << FP_LOG_TILE_HEIGHT];
			char	   *adv = SPI_getvalue(tup, batch->tupdesc, 1);
			int			level = DatumGetInt16(SPI_getbinval(tup, batch->tupdesc, 2, &isnull));
			int64		index = DatumGetInt64(SPI_getbinval(tup, batch->tupdesc, 3, &isnull));
			bytea	   *hash = DatumGetByteaPP(SPI_getbinval(tup, batch->tupdesc, 4, &isnull));

			fp_attribution_log_reader_init(&reader, adv);
			fp_attribution_log_read_stored(&reader, level - FP_LOG_TILE_HEIGHT,
										   index << FP_LOG_TILE_HEIGHT,
										   1 << FP_LOG_TILE_HEIGHT, under);
			fp_merkle_fold(under, 1 << FP_LOG_TILE_HEIGHT);
			if (memcmp(VARDATA_ANY(hash), under[0], FP_MERKLE_HASH_LEN) == 0)
				continue;
			SPI_cursor_close(portal);
			*advertiser_id = adv;
			*location = psprintf("level %d node " INT64_FORMAT, level, index);
			*detail = psprintf("The stored hash at level %d, index " INT64_FORMAT " is not the root of the %d stored hashes under it at level %d.",
							   level, index, 1 << FP_LOG_TILE_HEIGHT, level - FP_LOG_TILE_HEIGHT);
			return false;
		}
		SPI_freetuptable(batch);
	}
	SPI_cursor_close(portal);
	return true;
}

/*
 * The log checks of verify_all (inside its SPI connection, after the
 * chains passed).  Returns true when all pass; else sets the advertiser,
 * check and detail (allocated in the caller's context) of the first
 * failure, with the failing location in *location.  coverage, if not
 * NULL, holds every receipt verify_all read: when it shows every one
 * logged or queued, log_missing needs no query (log_coverage.c).
 */
bool
fp_attribution_log_verify_all(MemoryContext cxt, FpLogCoverage *coverage,
							  char **advertiser_id, char **location,
							  const char **check, char **detail)
{
	Portal		portal;
	MemoryContext old;

	for (int i = 0; i < lengthof(log_checks); i++)
	{
		if (log_checks[i].sql == NULL)
		{
			char	   *adv;
			char	   *loc;
			char	   *det;

			if (check_nodes(&adv, &loc, &det))
				continue;
			old = MemoryContextSwitchTo(cxt);
			*advertiser_id = pstrdup(adv);
			*location = pstrdup(loc);
			*detail = pstrdup(det);
			MemoryContextSwitchTo(old);
			*check = log_checks[i].check;
			return false;
		}
		if (strcmp(log_checks[i].check, "log_missing") == 0 &&
			coverage != NULL && fp_attribution_log_coverage_complete(coverage))
			continue;
		if (SPI_execute(log_checks[i].sql, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not run log check %s", log_checks[i].check);
		if (SPI_processed == 0)
			continue;
		old = MemoryContextSwitchTo(cxt);
		*advertiser_id = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		*location = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		*detail = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
		MemoryContextSwitchTo(old);
		*check = log_checks[i].check;
		return false;
	}

	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT c.advertiser_id, c.tree_size, c.root_hash, c.public_key, c.note,"
									   " (SELECT coalesce(max(t.first_index OPERATOR(pg_catalog.+) (pg_catalog.octet_length(t.leaf_hashes)"
									   "   OPERATOR(pg_catalog./) " CppAsString2(FP_MERKLE_HASH_LEN) ")), 0) FROM attribution.log_tiles t"
									   "   WHERE t.advertiser_id OPERATOR(pg_catalog.=) c.advertiser_id)"
									   " FROM attribution.log_checkpoints c ORDER BY 1, 2",
									   0, NULL, NULL, NULL, true, 0);
	for (;;)
	{
		SPITupleTable *batch;
		uint64		nrows;

		SPI_cursor_fetch(portal, true, 100);
		if (SPI_processed == 0)
			break;
		batch = SPI_tuptable;
		nrows = SPI_processed;
		for (uint64 r = 0; r < nrows; r++)
		{
			HeapTuple	tup = batch->vals[r];
			TupleDesc	desc = batch->tupdesc;
			bool		isnull;
			char	   *adv = SPI_getvalue(tup, desc, 1);
			int64		size = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
			char	   *err;

			err = check_checkpoint(adv, size,
								   DatumGetByteaPP(SPI_getbinval(tup, desc, 3, &isnull)),
								   DatumGetByteaPP(SPI_getbinval(tup, desc, 4, &isnull)),
								   SPI_getvalue(tup, desc, 5),
								   DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull)));
			if (err != NULL)
			{
				SPI_cursor_close(portal);
				old = MemoryContextSwitchTo(cxt);
				*advertiser_id = pstrdup(adv);
				*location = psprintf("checkpoint " INT64_FORMAT, size);
				*detail = pstrdup(err);
				MemoryContextSwitchTo(old);
				*check = "checkpoint";
				return false;
			}
		}
		SPI_freetuptable(batch);
	}
	SPI_cursor_close(portal);
	return true;
}

/*
 * attribution.verify_log(checkpoint text, OUT ok boolean,
 *		OUT advertiser_id text, OUT checkpoint_size bigint,
 *		OUT log_size bigint, OUT detail text)
 *
 * Whether today's log extends a checkpoint saved earlier: the note is
 * signed by a key the logs have used, under the origin of an advertiser's
 * log, and the log's root at the checkpoint's size is the checkpoint's.
 * detail says what differs.
 */
PG_FUNCTION_INFO_V1(fp_attribution_verify_log);
Datum
fp_attribution_verify_log(PG_FUNCTION_ARGS)
{
	char	   *note = text_to_cstring(PG_GETARG_TEXT_PP(0));
	TupleDesc	tupdesc;
	Datum		values[5] = {0};
	bool		nulls[5] = {false, true, true, true, true};
	FpCheckpoint cp;
	const char *err;
	char	   *detail = NULL;
	char	   *adv = NULL;
	MemoryContext caller_cxt = CurrentMemoryContext;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	err = fp_note_parse_checkpoint(note, &cp);
	if (err != NULL)
		detail = psprintf("The checkpoint does not parse: %s.", err);
	else if ((adv = fp_attribution_log_advertiser(cp.origin)) == NULL)
		detail = psprintf("The origin \"%s\" is not that of a log here (fp_attribution.log_origin is \"%s\").",
						  cp.origin, fp_attribution_log_origin_prefix);
	else
	{
		bool		signed_ok = false;
		int64		size;
		FpLogReader reader;
		FpMerkleHash root;

		values[1] = CStringGetTextDatum(adv);
		values[2] = Int64GetDatum(cp.size);
		nulls[1] = nulls[2] = false;
		SPI_connect();
		if (SPI_execute("SELECT public_key FROM attribution.log_checkpoints"
						" UNION SELECT public_key FROM attribution.signing_keys",
						true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the public keys");
		for (uint64 i = 0; i < SPI_processed && !signed_ok; i++)
		{
			bool		isnull;
			bytea	   *key = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i],
															SPI_tuptable->tupdesc, 1, &isnull));

			signed_ok = VARSIZE_ANY_EXHDR(key) == FP_ED25519_PUBLIC_KEY_LEN &&
				fp_note_verify(&cp, cp.origin, (const uint8 *) VARDATA_ANY(key));
		}
		size = fp_attribution_log_size(adv);
		values[3] = Int64GetDatum(size);
		nulls[3] = false;
		if (!signed_ok)
			err = "The checkpoint is not signed by any key of the logs.";
		else if (cp.size > size)
			err = psprintf("The checkpoint has " INT64_FORMAT " entries; the log has only " INT64_FORMAT ": entries were removed.",
						   cp.size, size);
		else
		{
			fp_attribution_log_reader_init(&reader, adv);
			fp_merkle_root(cp.size, fp_attribution_log_read_node, &reader, root);
			if (memcmp(root, cp.root, FP_MERKLE_HASH_LEN) != 0)
				err = psprintf("The log's root at size " INT64_FORMAT " differs from the checkpoint's: its first " INT64_FORMAT " entries were changed, removed or reordered since.",
							   cp.size, cp.size);
		}
		if (err != NULL)
			detail = MemoryContextStrdup(caller_cxt, err);
		SPI_finish();
	}
	values[0] = BoolGetDatum(detail == NULL);
	if (detail != NULL)
	{
		values[4] = CStringGetTextDatum(detail);
		nulls[4] = false;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
