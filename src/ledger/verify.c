/*-------------------------------------------------------------------------
 *
 * verify.c
 *	  attribution.verify_receipt, verify_chain and verify_all: recompute
 *	  every hash, link and signature and report the first failure.
 *
 * Each receipt is checked in this order, and the first failing check is
 * its result:
 *
 *	payload_hash  SHA-256 of the JCS form of payload = payload_hash
 *	receipt_hash  SHA-256 of the canonical envelope = receipt_hash
 *	sequence      the chain is contiguous from 1 (nothing removed/reordered)
 *	prev_hash     prev_hash = receipt_hash of the previous receipt (32 zero
 *				  bytes for sequence 1)
 *	unknown_key   a signed receipt's key_id is in attribution.signing_keys
 *				  for the receipt's advertiser, and is derived from that
 *				  row's public key
 *	signature     the Ed25519 signature of receipt_hash verifies (and a
 *				  signature comes with a key_id and vice versa)
 *
 * and each chain's head: stream_head  attribution.receipt_streams names
 * the chain's last sequence and hash (catches a removed tail, or a chain
 * whose receipts are all gone); a click's or conversion's chain of one
 * receipt has no head (its row check covers it).  verify_all also checks the rows of the
 * built-in aggregate types against their receipts:
 *
 *	row			  the row of attribution.clicks or attribution.conversions
 *				  still gives the fold of its chain (the first receipt's
 *				  payload as each later one changed it, src/commands/lifecycle.c) (a
 *				  change made with triggers bypassed), the row of a receipt
 *				  still exists, and every row has a receipt
 *
 * verify_all reads each of receipts, chain heads, clicks and conversions
 * once, sequentially, into narrow items keyed by (advertiser_id,
 * aggregate_type, aggregate_id): those of click and conversion chains are
 * matched by chain in a hash table (verify_match.c), and a chain of one
 * receipt and its row that passes (most chains) is counted there; every
 * other item is sorted, and the sorted chains walked.  So a row is
 * checked against the chain of its own advertiser only and no query runs
 * per chain that passes (verify_tables describes the steps).  The same
 * scan of the receipts proves the log_missing check of the receipt logs
 * (log_coverage.c).  It raises a progress NOTICE every
 * VERIFY_PROGRESS_CHAINS receipts read and chains checked.
 *
 * On a Citus cluster the coordinator's tables are empty shells: verify_all
 * has each node run attribution.verify_shard_group(), the same pass over
 * the shard tables of one shard group, for each group it holds, the nodes
 * in parallel, and adds their results up (verify_shard_groups;
 * doc/citus.md).
 *
 * Failures are result rows, not errors, so one call reports on a whole
 * database.  Every receipt checked adds one to the shared counter
 * verifications_success or verifications_failed, and a bad chain head one
 * to verifications_failed (counted only when preloaded; see shmem.c).
 *
 * Rows are read through SPI cursors in batches, with a per-receipt and a
 * per-chain memory context, so verification needs memory for one batch,
 * one chain and verify_all's match and sort, which spill to disk beyond
 * half of maintenance_work_mem each (the match shares its half with the
 * chain heads' set of verify_single.c).  Statements are prepared once per
 * session and kept (kept_plan).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/itemptr.h"
#include "optimizer/paths.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/tuplesort.h"
#include "utils/uuid.h"

#include "fp_attribution/chain_fold.h"
#include "fp_attribution/extension_tables.h"
#include "fp_attribution/log.h"
#include "fp_attribution/receipts.h"
#include "fp_attribution/shmem.h"
#include "fp_attribution/spi_plans.h"
#include "fp_attribution/validate.h"
#include "fp_attribution/verify_match.h"
#include "fp_attribution/verify_parallel.h"
#include "fp_attribution/verify_single.h"

/* Rows fetched from a cursor at a time */
#define VERIFY_BATCH 1000

/*
 * verify_all raises a NOTICE after this many receipts read and this many
 * chains walked (a few seconds of work each), so a long run shows
 * progress; client_min_messages hides them
 */
#define VERIFY_PROGRESS_CHAINS 100000

/* A public key from attribution.signing_keys, registered for an advertiser */
typedef struct VerifyKey
{
	char	   *advertiser_id;
	char	   *key_id;
	bytea	   *public_key;
} VerifyKey;

/* The first failure of a chain (or of everything) */
typedef struct VerifyFailure
{
	bool		failed;
	char	   *advertiser_id;
	char	   *aggregate_type;
	char	   *aggregate_id;
	bool		has_receipt;
	pg_uuid_t	receipt_id;
	int64		sequence;
	const char *check;
	char	   *detail;
} VerifyFailure;

/*
 * verify_chain's scan of a chain's receipts: its cursor, the batch being
 * read and the current row's key.
 */
typedef struct VerifyScan
{
	Portal		portal;
	SPITupleTable *batch;
	uint64		nrows;
	uint64		next;
	HeapTuple	tuple;			/* the current row; NULL at the end */
	TupleDesc	desc;
	int			adv_attno;
	int			type_attno;
	int			id_attno;
	MemoryContext key_cxt;		/* detoasted keys of the current batch */
	const char *adv;			/* the current row's key, not terminated */
	int			advlen;
	const char *type;
	int			typelen;
	const char *id;
	int			idlen;
} VerifyScan;

/* The tables verify_all reads */
typedef struct VerifyTables
{
	Oid			receipts;
	Oid			heads;
	Oid			clicks;
	Oid			conversions;
	Oid			keys;
} VerifyTables;

/* The extension's keys table, which verify_receipt and verify_chain read */
#define EXTENSION_KEYS "attribution.signing_keys"

/* Columns of verify_all's result */
#define VERIFY_ALL_COLUMNS 12

/* State of one verification call */
typedef struct VerifyState
{
	VerifyKey  *keys;
	int			nkeys;
	MemoryContext row_cxt;		/* reset for every receipt */
	MemoryContext chain_cxt;	/* reset for every chain */
	MemoryContext call_cxt;		/* holds results */

	/* the chain being walked */
	char	   *advertiser_id;
	char	   *aggregate_type;
	char	   *aggregate_id;
	int			advlen;
	int			typelen;
	int			idlen;
	const char *row_table;		/* table of a built-in type, else NULL */
	int64		expected_sequence;
	uint8		expected_prev[FP_SHA256_LEN];
	int64		chain_receipts;
	VerifyFailure chain_failure;

	/* totals */
	int64		chains;
	int64		chains_failed;
	int64		receipts;
	int64		receipts_failed;
	int64		receipts_read;	/* by verify_all's first step */
	FpColumnMap row_map;		/* of the rows it reads, whose desc is: */
	TupleDesc	row_map_desc;
	int64		heads_failed;
	int64		rows_failed;
	VerifyFailure first_failure;
	FpLogCoverage *coverage;	/* verify_all's receipts for log_missing, or
								 * NULL */
	FpVerifySingles *singles;	/* one-receipt chains proven in bulk, or
								 * NULL */
	bool		quiet;			/* a parallel worker: no progress notices */
	FpParallelScan *parallel;	/* the leader's parallel read of receipts */
	int64		reads_noticed;	/* receipts read, in VERIFY_PROGRESS_CHAINS,
								 * that a notice has told */
} VerifyState;

/* One kept plan per statement text: the tables of shard groups vary */
typedef struct KeptPlan
{
	char	   *sql;
	SPIPlanPtr	plan;
	struct KeptPlan *next;
} KeptPlan;

static KeptPlan *kept_plans = NULL;

/*
 * The plan of sql: prepared on first use, then kept for the session
 * (fp_attribution_keep_plan).  verify_shard_group runs the same
 * statements on each shard's tables, and a node holds few shards, so the
 * list stays short.  Caller is connected to SPI.
 */
static SPIPlanPtr
kept_plan(const char *sql, int nargs, Oid *argtypes)
{
	KeptPlan   *k;

	for (k = kept_plans; k != NULL; k = k->next)
		if (strcmp(k->sql, sql) == 0)
			return k->plan;
	k = MemoryContextAlloc(TopMemoryContext, sizeof(KeptPlan));
	k->plan = fp_attribution_keep_plan(sql, nargs, argtypes);
	k->sql = MemoryContextStrdup(TopMemoryContext, sql);
	k->next = kept_plans;
	kept_plans = k;
	return k->plan;
}

/*
 * The quoted, qualified name of a relation, which must exist.
 */
static const char *
relation_name(Oid relid)
{
	char	   *name = get_rel_name(relid);

	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  name);
}

/*
 * The extension's own tables, in the schema its script creates.
 */
static void
extension_tables(VerifyTables *t)
{
	static const char *const names[] = {"receipts", "receipt_streams", "clicks",
	"conversions", "signing_keys"};
	Oid		   *oids[] = {&t->receipts, &t->heads, &t->clicks, &t->conversions,
	&t->keys};

	for (int i = 0; i < lengthof(names); i++)
		*oids[i] = fp_attribution_table_oid(names[i]);
}

/*
 * Start a verification: load the public keys from keys_table (a quoted
 * name) (of one advertiser when advertiser_id is not NULL, else all),
 * create the contexts.  Caller is
 * connected to SPI; results go to call_cxt, which must outlive SPI_finish.
 *
 * Keys are registered per advertiser, so a receipt is checked only with a
 * key registered for its own advertiser; reading one advertiser's keys is
 * a single-shard query on Citus, which verify_chain() needs when it runs
 * on a worker.
 */
static void
verify_begin(VerifyState *st, MemoryContext call_cxt, const char *keys_table,
			 text *advertiser_id)
{
	int			rc;

	memset(st, 0, sizeof(*st));
	st->call_cxt = call_cxt;
	st->row_cxt = AllocSetContextCreate(call_cxt,
										"fp_attribution verify receipt",
										ALLOCSET_DEFAULT_SIZES);
	st->chain_cxt = AllocSetContextCreate(call_cxt,
										  "fp_attribution verify chain",
										  ALLOCSET_DEFAULT_SIZES);
	if (advertiser_id != NULL)
		rc = SPI_execute_with_args(psprintf("SELECT key_id, public_key, advertiser_id"
											" FROM %s"
											" WHERE advertiser_id OPERATOR(pg_catalog.=) $1",
											keys_table),
								   1, (Oid[]) {TEXTOID},
								   (Datum[]) {PointerGetDatum(advertiser_id)},
								   NULL, true, 0);
	else
		rc = SPI_execute(psprintf("SELECT key_id, public_key, advertiser_id FROM %s",
								  keys_table), true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read signing keys: %s",
			 SPI_result_code_string(rc));
	st->nkeys = SPI_processed;
	st->keys = palloc0(sizeof(VerifyKey) * Max(st->nkeys, 1));
	for (int i = 0; i < st->nkeys; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		bool		isnull;
		Datum		d;

		st->keys[i].key_id = SPI_getvalue(tup, SPI_tuptable->tupdesc, 1);
		st->keys[i].advertiser_id = SPI_getvalue(tup, SPI_tuptable->tupdesc, 3);
		d = SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull);
		if (!isnull)
			st->keys[i].public_key = DatumGetByteaPCopy(d);
		/* a key row whose id is not derived from its key is ignored */
		if (st->keys[i].public_key == NULL ||
			VARSIZE_ANY_EXHDR(st->keys[i].public_key) != FP_ED25519_PUBLIC_KEY_LEN)
			st->keys[i].key_id = NULL;
		else
		{
			char		derived[FP_KEY_ID_LEN + 1];

			fp_attribution_key_id((const uint8 *) VARDATA_ANY(st->keys[i].public_key),
								  derived);
			if (st->keys[i].key_id == NULL || strcmp(derived, st->keys[i].key_id) != 0)
				st->keys[i].key_id = NULL;
		}
	}
	SPI_freetuptable(SPI_tuptable);
}

/*
 * Add the call's outcome to the shared counters.
 */
static void
verify_count(const VerifyState *st)
{
	if (fp_attribution_shared == NULL)
		return;
	pg_atomic_fetch_add_u64(&fp_attribution_shared->counters.verifications_success,
							st->receipts - st->receipts_failed);
	pg_atomic_fetch_add_u64(&fp_attribution_shared->counters.verifications_failed,
							st->receipts_failed + st->heads_failed +
							st->rows_failed);
}

/*
 * The raw public key of key_id registered for advertiser_id, or NULL if
 * unknown.
 */
static const bytea *
find_key(const VerifyState *st, const char *advertiser_id, const char *key_id)
{
	for (int i = 0; i < st->nkeys; i++)
		if (st->keys[i].key_id != NULL &&
			strcmp(st->keys[i].key_id, key_id) == 0 &&
			strcmp(st->keys[i].advertiser_id, advertiser_id) == 0)
			return st->keys[i].public_key;
	return NULL;
}

/*
 * The checks of one receipt that need nothing but the receipt: its
 * payload_hash and receipt_hash.  Returns NULL if both pass, else the
 * name of the first failing check with *detail set (allocated in the
 * current context).  hash gets the SHA-256 of the canonical envelope.
 */
static const char *
check_receipt_hashes(const FpStoredReceipt *r, uint8 *hash, char **detail)
{
	const char *bad_number = NULL;
	uint8		payload_hash[FP_SHA256_LEN];
	StringInfoData envelope;

	if (!fp_attribution_payload_hash(r->payload, payload_hash, &bad_number))
	{
		*detail = psprintf("The payload holds the number %s, which canonical JSON cannot represent.", bad_number);
		return "payload_hash";
	}
	if (!fp_attribution_bytea_equals(r->payload_hash, payload_hash, FP_SHA256_LEN))
	{
		*detail = pstrdup("The SHA-256 of the canonical payload differs from payload_hash.");
		return "payload_hash";
	}

	initStringInfo(&envelope);
	if (!fp_attribution_receipt_envelope(&envelope, &r->env))
	{
		*detail = pstrdup("The timestamp is out of the range receipts record.");
		return "receipt_hash";
	}
	fp_attribution_sha256(envelope.data, envelope.len, hash);
	pfree(envelope.data);
	if (!fp_attribution_bytea_equals(r->receipt_hash, hash, FP_SHA256_LEN))
	{
		*detail = pstrdup("The SHA-256 of the canonical envelope differs from receipt_hash.");
		return "receipt_hash";
	}
	return NULL;
}

/*
 * The key checks of a receipt whose hashes passed (hash: its
 * receipt_hash): unknown_key and signature, as check_receipt_hashes.
 */
static const char *
check_receipt_key(const VerifyState *st, const FpStoredReceipt *r,
				  const uint8 *hash, char **detail)
{
	const bytea *public_key;

	if (r->env.key_id == NULL)
	{
		if (r->signature != NULL)
		{
			*detail = pstrdup("The receipt has a signature but no key_id.");
			return "signature";
		}
		return NULL;
	}
	public_key = find_key(st, r->env.advertiser_id, r->env.key_id);
	if (public_key == NULL)
	{
		*detail = psprintf("Key \"%s\" is not in attribution.signing_keys for advertiser \"%s\" (or its id does not match its public key).", r->env.key_id, r->env.advertiser_id);
		return "unknown_key";
	}
	if (r->signature == NULL ||
		VARSIZE_ANY_EXHDR(r->signature) != FP_ED25519_SIGNATURE_LEN ||
		VARSIZE_ANY_EXHDR(public_key) != FP_ED25519_PUBLIC_KEY_LEN ||
		!fp_attribution_verify_signature((const uint8 *) VARDATA_ANY(public_key),
										 hash, FP_SHA256_LEN,
										 (const uint8 *) VARDATA_ANY(r->signature)))
	{
		*detail = psprintf("The signature does not verify with key \"%s\".", r->env.key_id);
		return "signature";
	}
	return NULL;
}

/*
 * Check one receipt against the expected sequence and previous hash.
 * Returns NULL if it passes, else the name of the first failing check
 * with *detail set (allocated in the current context).
 */
static const char *
check_receipt(const VerifyState *st, const FpStoredReceipt *r,
			  int64 expected_sequence, const uint8 *expected_prev,
			  char **detail)
{
	uint8		hash[FP_SHA256_LEN];
	const char *check = check_receipt_hashes(r, hash, detail);

	if (check != NULL)
		return check;
	if (r->env.sequence != expected_sequence)
	{
		*detail = psprintf("Expected sequence " INT64_FORMAT ", found " INT64_FORMAT ".",
						   expected_sequence, r->env.sequence);
		return "sequence";
	}
	if (!fp_attribution_bytea_equals(r->prev_hash, expected_prev, FP_SHA256_LEN))
	{
		*detail = expected_sequence == 1 ?
			pstrdup("The first receipt of a chain must have 32 zero bytes as prev_hash.") :
			psprintf("prev_hash differs from the receipt_hash of sequence " INT64_FORMAT ".",
					 expected_sequence - 1);
		return "prev_hash";
	}
	return check_receipt_key(st, r, hash, detail);
}

/*
 * Compare two keys in byte order, as COLLATE "C" orders them.
 */
static int
key_cmp(const char *a, int alen, const char *b, int blen)
{
	int			c = memcmp(a, b, Min(alen, blen));

	return c != 0 ? c : alen - blen;
}

/*
 * True if the chain (adv, type, id) comes before the chain of failure
 * first (which has failed) in (advertiser_id, aggregate_type,
 * aggregate_id) byte order.
 */
static bool
chain_precedes(const VerifyFailure *first, const char *adv, int advlen,
			   const char *type, int typelen, const char *id, int idlen)
{
	int			c = key_cmp(adv, advlen, first->advertiser_id,
							strlen(first->advertiser_id));

	if (c == 0)
		c = key_cmp(type, typelen, first->aggregate_type,
					strlen(first->aggregate_type));
	if (c == 0)
		c = key_cmp(id, idlen, first->aggregate_id, strlen(first->aggregate_id));
	return c < 0;
}

/*
 * Record a failure of the current chain (the first one only), in the
 * chain context, and, if the chain comes before the chain of the call's
 * first failure so far (verify_all walks chains in hash order), a copy of
 * it in the call context.
 */
static void
note_failure(VerifyState *st, const FpStoredReceipt *r, const char *check,
			 const char *detail)
{
	VerifyFailure *f = &st->chain_failure;
	VerifyFailure *first = &st->first_failure;
	MemoryContext old;

	if (f->failed)
		return;
	f->failed = true;
	f->advertiser_id = st->advertiser_id;
	f->aggregate_type = st->aggregate_type;
	f->aggregate_id = st->aggregate_id;
	f->has_receipt = r != NULL;
	if (r != NULL)
	{
		f->receipt_id = r->env.receipt_id;
		f->sequence = r->env.sequence;
	}
	f->check = check;
	f->detail = MemoryContextStrdup(st->chain_cxt, detail);
	if (first->failed)
	{
		if (!chain_precedes(first, st->advertiser_id, st->advlen,
							st->aggregate_type, st->typelen,
							st->aggregate_id, st->idlen))
			return;
		pfree(first->advertiser_id);
		pfree(first->aggregate_type);
		pfree(first->aggregate_id);
		pfree(first->detail);
	}
	old = MemoryContextSwitchTo(st->call_cxt);
	*first = *f;
	first->advertiser_id = pstrdup(f->advertiser_id);
	first->aggregate_type = pstrdup(f->aggregate_type);
	first->aggregate_id = pstrdup(f->aggregate_id);
	first->detail = pstrdup(f->detail);
	MemoryContextSwitchTo(old);
}

/*
 * Start walking the chain of (adv, type, id), freeing what the previous
 * chain allocated.  The key need not be terminated; it is copied.
 */
static void
chain_begin(VerifyState *st, const char *adv, int advlen, const char *type,
			int typelen, const char *id, int idlen)
{
	MemoryContext old;

	MemoryContextReset(st->chain_cxt);
	old = MemoryContextSwitchTo(st->chain_cxt);
	st->advertiser_id = pnstrdup(adv, advlen);
	st->aggregate_type = pnstrdup(type, typelen);
	st->aggregate_id = pnstrdup(id, idlen);
	MemoryContextSwitchTo(old);
	st->advlen = advlen;
	st->typelen = typelen;
	st->idlen = idlen;
	st->row_table = fp_attribution_aggregate_table(st->aggregate_type);
	st->expected_sequence = 1;
	memset(st->expected_prev, 0, FP_SHA256_LEN);
	st->chain_receipts = 0;
	memset(&st->chain_failure, 0, sizeof(VerifyFailure));
	st->chains++;
}

/*
 * Expect the receipt after one of this sequence and receipt_hash (NULL:
 * one not 32 bytes long): carry on from what is stored, so one bad
 * receipt is one failure.
 */
static void
chain_advance_to(VerifyState *st, int64 sequence, const uint8 *receipt_hash)
{
	st->expected_sequence = sequence + 1;
	memset(st->expected_prev, 0, FP_SHA256_LEN);
	if (receipt_hash != NULL)
		memcpy(st->expected_prev, receipt_hash, FP_SHA256_LEN);
}

/* chain_advance_to a receipt_hash that is NULL if not 32 bytes long */
static void
chain_advance(VerifyState *st, int64 sequence, const bytea *receipt_hash)
{
	chain_advance_to(st, sequence,
					 VARSIZE_ANY_EXHDR(receipt_hash) == FP_SHA256_LEN ?
					 (const uint8 *) VARDATA_ANY(receipt_hash) : NULL);
}

/*
 * Check one receipt of the chain being walked and advance.
 */
static void
chain_receipt(VerifyState *st, const FpStoredReceipt *r)
{
	char	   *detail = NULL;
	const char *check = check_receipt(st, r, st->expected_sequence,
									  st->expected_prev, &detail);

	st->receipts++;
	st->chain_receipts++;
	if (check != NULL)
	{
		st->receipts_failed++;
		note_failure(st, r, check, detail);
	}
	chain_advance(st, r->env.sequence, r->receipt_hash);
}

/*
 * Compare the head of the chain being walked, if found, with its last
 * receipt.
 */
static void
chain_head(VerifyState *st, bool found, int64 last_sequence,
		   const bytea *last_hash)
{
	MemoryContext old = MemoryContextSwitchTo(st->chain_cxt);
	char	   *detail = NULL;

	if (!found)
	{
		/* a row's chain of one receipt has none (receipts.c) */
		if (st->chain_receipts > 0 &&
			!(st->chain_receipts == 1 && st->expected_sequence == 2 &&
			  fp_attribution_aggregate_table(st->aggregate_type) != NULL))
			detail = pstrdup("The chain has no row in attribution.receipt_streams.");
	}
	else if (st->chain_receipts == 0)
		detail = psprintf("The head records sequence " INT64_FORMAT " but the chain has no receipts.",
						  last_sequence);
	else if (last_sequence != st->expected_sequence - 1)
		detail = psprintf("The head records sequence " INT64_FORMAT " but the last receipt has sequence " INT64_FORMAT ".",
						  last_sequence, st->expected_sequence - 1);
	else if (!fp_attribution_bytea_equals(last_hash, st->expected_prev, FP_SHA256_LEN))
		detail = pstrdup("The head's last_hash differs from the receipt_hash of the last receipt.");
	if (detail != NULL)
	{
		st->heads_failed++;
		note_failure(st, NULL, "stream_head", detail);
	}
	MemoryContextSwitchTo(old);
}

/*
 * Count the chain being walked as failed if it is.
 */
static void
chain_finish(VerifyState *st)
{
	if (st->chain_failure.failed)
		st->chains_failed++;
}

/*
 * How the row's payload differs from the receipt's: the first member of
 * the row's payload that the receipt lacks or holds another value for.
 */
static char *
row_difference(const char *table, Jsonb *from_row, Jsonb *recorded)
{
	JsonbIterator *it = JsonbIteratorInit(&from_row->root);
	JsonbIteratorToken tok;
	JsonbValue	key;
	JsonbValue	value;

	while ((tok = JsonbIteratorNext(&it, &key, true)) != WJB_DONE)
	{
		JsonbValue *other;
		Jsonb	   *mine;
		Jsonb	   *theirs;
		char	   *name;

		if (tok != WJB_KEY)
			continue;
		tok = JsonbIteratorNext(&it, &value, true);
		Assert(tok == WJB_VALUE);
		name = pnstrdup(key.val.string.val, key.val.string.len);
		other = getKeyJsonValueFromContainer(&recorded->root, key.val.string.val,
											 key.val.string.len, NULL);
		if (other == NULL)
			return psprintf("The receipt's payload has no member \"%s\".", name);
		mine = JsonbValueToJsonb(&value);
		theirs = JsonbValueToJsonb(other);
		if (compareJsonbContainers(&mine->root, &theirs->root) != 0)
			return psprintf("Column %s of the row in attribution.%s is %s; its receipt says %s.",
							name, table,
							JsonbToCString(NULL, &mine->root, VARSIZE(mine)),
							JsonbToCString(NULL, &theirs->root, VARSIZE(theirs)));
	}
	return psprintf("The receipt's payload has members the row of attribution.%s does not give.",
					table);
}

/*
 * Check the row of the chain being walked (a built-in type) against r,
 * the chain's first receipt with the fold of the chain as payload; row is
 * NULL if the table has none.
 */
static void
check_row(VerifyState *st, const FpStoredReceipt *r, HeapTuple row,
		  TupleDesc desc)
{
	Jsonb	   *from_row;

	if (row == NULL)
	{
		st->rows_failed++;
		note_failure(st, r, "row",
					 psprintf("attribution.%s has no row for this receipt.",
							  st->row_table));
		return;
	}
	from_row = fp_attribution_row_payload(st->aggregate_type, row, desc);
	if (compareJsonbContainers(&from_row->root, &r->payload->root) == 0)
		return;
	st->rows_failed++;
	note_failure(st, r, "row", row_difference(st->row_table, from_row, r->payload));
}

/*
 * Read the next row of a scan, fetching a batch when the current one is
 * done, and point the key at its columns.
 */
static void
scan_next(VerifyScan *s)
{
	MemoryContext old;
	bool		isnull;
	text	   *t;

	if (s->next >= s->nrows)
	{
		if (s->batch != NULL)
			SPI_freetuptable(s->batch);
		MemoryContextReset(s->key_cxt);
		SPI_cursor_fetch(s->portal, true, VERIFY_BATCH);
		s->batch = SPI_tuptable;
		s->nrows = SPI_processed;
		s->next = 0;
		s->desc = s->batch->tupdesc;
		if (s->nrows == 0)
		{
			s->tuple = NULL;
			return;
		}
		if (s->id_attno == 0)
		{
			s->adv_attno = SPI_fnumber(s->desc, "advertiser_id");
			s->id_attno = SPI_fnumber(s->desc, "aggregate_id");
			s->type_attno = SPI_fnumber(s->desc, "aggregate_type");
		}
	}
	s->tuple = s->batch->vals[s->next++];

	old = MemoryContextSwitchTo(s->key_cxt);
	t = DatumGetTextPP(heap_getattr(s->tuple, s->adv_attno, s->desc, &isnull));
	Assert(!isnull);
	s->adv = VARDATA_ANY(t);
	s->advlen = VARSIZE_ANY_EXHDR(t);
	t = DatumGetTextPP(heap_getattr(s->tuple, s->id_attno, s->desc, &isnull));
	Assert(!isnull);
	s->id = VARDATA_ANY(t);
	s->idlen = VARSIZE_ANY_EXHDR(t);
	t = DatumGetTextPP(heap_getattr(s->tuple, s->type_attno, s->desc, &isnull));
	Assert(!isnull);
	s->type = VARDATA_ANY(t);
	s->typelen = VARSIZE_ANY_EXHDR(t);
	MemoryContextSwitchTo(old);
}

/*
 * Open a scan (a read-only cursor over plan with args) and read its
 * first row.
 */
static void
scan_open(VerifyScan *s, SPIPlanPtr plan, Datum *args, MemoryContext parent)
{
	memset(s, 0, sizeof(*s));
	s->portal = SPI_cursor_open(NULL, plan, args, NULL, true);
	s->key_cxt = AllocSetContextCreate(parent, "fp_attribution verify keys",
									   ALLOCSET_SMALL_SIZES);
	scan_next(s);
}

/*
 * True if the scan's current row belongs to the chain being walked.
 */
static bool
scan_in_chain(const VerifyScan *s, const VerifyState *st)
{
	return s->tuple != NULL &&
		key_cmp(s->adv, s->advlen, st->advertiser_id, st->advlen) == 0 &&
		key_cmp(s->type, s->typelen, st->aggregate_type, st->typelen) == 0 &&
		key_cmp(s->id, s->idlen, st->aggregate_id, st->idlen) == 0;
}

/*
 * Note that the chain being walked has a row but no receipts.
 */
static void
row_without_receipt(VerifyState *st)
{
	st->rows_failed++;
	note_failure(st, NULL, "row",
				 psprintf("The row in attribution.%s has no receipt.",
						  st->row_table));
}

/*
 * Check receipt r of the chain being walked (chain_receipt) and fold it
 * into *first, the chain's first receipt whose payload is the fold so far
 * (*saw_first once there is one; only for a chain of a built-in type).
 */
static void
check_and_fold(VerifyState *st, const FpStoredReceipt *r, bool *saw_first,
			   FpStoredReceipt *first)
{
	chain_receipt(st, r);
	if (st->row_table != NULL && r->env.sequence == 1)
	{
		*saw_first = true;
		*first = *r;
		first->payload = fp_attribution_fold_event(st->chain_cxt, NULL, r->payload);
	}
	else if (*saw_first)
		first->payload = fp_attribution_fold_event(st->chain_cxt, first->payload,
												   r->payload);
}

/*
 * Check the receipts of the chain being walked that the scan returns
 * next, and the chain's first receipt against its row if the chain is of
 * a built-in type (row is then the table's row, or NULL).
 */
static void
walk_chain(VerifyState *st, VerifyScan *receipts, HeapTuple row,
		   TupleDesc row_desc)
{
	bool		saw_first = false;
	FpStoredReceipt first;		/* its payload: the fold of the chain */

	while (scan_in_chain(receipts, st))
	{
		MemoryContext old = MemoryContextSwitchTo(st->row_cxt);
		FpStoredReceipt r;

		fp_attribution_receipt_from_tuple(receipts->tuple, receipts->desc, &r);
		check_and_fold(st, &r, &saw_first, &first);
		MemoryContextSwitchTo(old);
		MemoryContextReset(st->row_cxt);
		scan_next(receipts);
	}
	if (saw_first)
		check_row(st, &first, row, row_desc);
	if (row != NULL && !saw_first && st->chain_receipts == 0)
		row_without_receipt(st);
}

/*
 * Datums of a failure's receipt id and sequence, or NULLs.
 */
static void
failure_receipt_datums(const VerifyFailure *f, Datum *values, bool *nulls)
{
	if (f->failed && f->has_receipt)
	{
		pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));

		*id = f->receipt_id;
		values[0] = UUIDPGetDatum(id);
		values[1] = Int64GetDatum(f->sequence);
	}
	else
		nulls[0] = nulls[1] = true;
}

/*
 * Datums of a failure's check and detail, or NULLs.
 */
static void
failure_check_datums(const VerifyFailure *f, Datum *values, bool *nulls)
{
	if (f->failed)
	{
		values[0] = CStringGetTextDatum(f->check);
		values[1] = CStringGetTextDatum(f->detail);
	}
	else
		nulls[0] = nulls[1] = true;
}

/*
 * attribution.verify_receipt(receipt_id uuid)
 *	  returns (ok, advertiser_id, aggregate_type, aggregate_id, sequence,
 *			   failed_check, detail)
 *
 * Checks one receipt, and its link to the previous receipt of its chain.
 */
PG_FUNCTION_INFO_V1(fp_attribution_verify_receipt);
Datum
fp_attribution_verify_receipt(PG_FUNCTION_ARGS)
{
	Datum		arg = PG_GETARG_DATUM(0);
	VerifyState st;
	MemoryContext caller_cxt;
	FpStoredReceipt r;
	TupleDesc	tupdesc;
	Datum		values[7];
	bool		nulls[7] = {false};
	uint8		expected_prev[FP_SHA256_LEN];
	const char *check = NULL;
	char	   *detail = NULL;
	int			rc;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	caller_cxt = CurrentMemoryContext;
	SPI_connect();
	verify_begin(&st, caller_cxt, EXTENSION_KEYS, NULL);
	rc = SPI_execute_with_args("SELECT r.* FROM attribution.receipts r"
							   " WHERE r.receipt_id OPERATOR(pg_catalog.=) $1",
							   1, (Oid[]) {UUIDOID}, &arg, NULL, true, 2);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read receipt: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("receipt %s does not exist",
						DatumGetCString(DirectFunctionCall1(uuid_out, arg)))));
	fp_attribution_receipt_from_tuple(SPI_tuptable->vals[0],
									  SPI_tuptable->tupdesc, &r);

	/* the previous receipt of the chain, if there should be one */
	memset(expected_prev, 0, FP_SHA256_LEN);
	if (r.env.sequence > 1)
	{
		Datum		args[4];
		bool		isnull;

		args[0] = CStringGetTextDatum(r.env.advertiser_id);
		args[1] = CStringGetTextDatum(r.env.aggregate_type);
		args[2] = CStringGetTextDatum(r.env.aggregate_id);
		args[3] = Int64GetDatum(r.env.sequence - 1);
		rc = SPI_execute_with_args("SELECT receipt_hash FROM attribution.receipts"
								   " WHERE advertiser_id OPERATOR(pg_catalog.=) $1"
								   " AND aggregate_type OPERATOR(pg_catalog.=) $2"
								   " AND aggregate_id OPERATOR(pg_catalog.=) $3"
								   " AND sequence OPERATOR(pg_catalog.=) $4",
								   4, (Oid[]) {TEXTOID, TEXTOID, TEXTOID, INT8OID},
								   args, NULL, true, 1);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "could not read receipt: %s", SPI_result_code_string(rc));
		if (SPI_processed == 0)
		{
			check = "sequence";
			detail = psprintf("Receipt " INT64_FORMAT " of this chain is missing.",
							  r.env.sequence - 1);
		}
		else
		{
			bytea	   *prev = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0],
															 SPI_tuptable->tupdesc,
															 1, &isnull));

			if (VARSIZE_ANY_EXHDR(prev) == FP_SHA256_LEN)
				memcpy(expected_prev, VARDATA_ANY(prev), FP_SHA256_LEN);
		}
	}
	if (check == NULL)
		check = check_receipt(&st, &r, Max(r.env.sequence, 1), expected_prev, &detail);

	st.receipts = 1;
	st.receipts_failed = check != NULL ? 1 : 0;
	verify_count(&st);

	MemoryContextSwitchTo(caller_cxt);
	values[0] = BoolGetDatum(check == NULL);
	values[1] = CStringGetTextDatum(r.env.advertiser_id);
	values[2] = CStringGetTextDatum(r.env.aggregate_type);
	values[3] = CStringGetTextDatum(r.env.aggregate_id);
	values[4] = Int64GetDatum(r.env.sequence);
	if (check != NULL)
	{
		values[5] = CStringGetTextDatum(check);
		values[6] = CStringGetTextDatum(detail);
	}
	else
		nulls[5] = nulls[6] = true;
	SPI_finish();
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * attribution.verify_chain(aggregate_type text, aggregate_id text,
 *							advertiser_id text)
 *	  returns (ok, receipts_checked, failed_receipt_id, failed_sequence,
 *			   failed_check, detail)
 */
PG_FUNCTION_INFO_V1(fp_attribution_verify_chain);
Datum
fp_attribution_verify_chain(PG_FUNCTION_ARGS)
{
	char	   *type = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *id = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *adv = text_to_cstring(fp_attribution_check_text("advertiser_id",
																PG_GETARG_TEXT_PP(2),
																FP_ID_MAX_CHARS, true));
	VerifyState st;
	MemoryContext caller_cxt;
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {false};
	Datum		args[3];
	VerifyScan	receipts;
	bool		isnull;
	int			rc;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	caller_cxt = CurrentMemoryContext;
	SPI_connect();
	verify_begin(&st, caller_cxt, EXTENSION_KEYS, PG_GETARG_TEXT_PP(2));
	args[0] = PG_GETARG_DATUM(2);
	args[1] = PG_GETARG_DATUM(0);
	args[2] = PG_GETARG_DATUM(1);
	chain_begin(&st, adv, strlen(adv), type, strlen(type), id, strlen(id));
	/* the row check is verify_all's: no table lookup per chain here */
	st.row_table = NULL;
	scan_open(&receipts,
			  kept_plan("SELECT r.* FROM attribution.receipts r"
						" WHERE r.advertiser_id OPERATOR(pg_catalog.=) $1"
						" AND r.aggregate_type OPERATOR(pg_catalog.=) $2"
						" AND r.aggregate_id OPERATOR(pg_catalog.=) $3"
						" ORDER BY r.sequence",
						3, (Oid[]) {TEXTOID, TEXTOID, TEXTOID}),
			  args, caller_cxt);
	walk_chain(&st, &receipts, NULL, NULL);
	SPI_cursor_close(receipts.portal);

	rc = SPI_execute_plan(kept_plan("SELECT last_sequence, last_hash FROM attribution.receipt_streams"
									" WHERE advertiser_id OPERATOR(pg_catalog.=) $1"
									" AND aggregate_type OPERATOR(pg_catalog.=) $2"
									" AND aggregate_id OPERATOR(pg_catalog.=) $3",
									3, (Oid[]) {TEXTOID, TEXTOID, TEXTOID}),
						  args, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read stream head: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0 && st.chain_receipts == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("aggregate %s \"%s\" of advertiser \"%s\" has no receipts",
						type, id, adv)));
	if (SPI_processed == 0)
		chain_head(&st, false, 0, NULL);
	else
		chain_head(&st, true,
				   DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 1, &isnull)),
				   DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 2, &isnull)));
	chain_finish(&st);
	verify_count(&st);
	SPI_finish();

	values[0] = BoolGetDatum(!st.chain_failure.failed);
	values[1] = Int64GetDatum(st.receipts);
	failure_receipt_datums(&st.chain_failure, values + 2, nulls + 2);
	failure_check_datums(&st.chain_failure, values + 4, nulls + 4);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * verify_all's pass over tables t has three steps, so that every table
 * is read once, sequentially, in its physical order (ordered index scans
 * read the heap at random, and at a million receipts that was most of
 * the time):
 *
 * 1. read the chain heads, receipts, clicks and conversions, check what
 *	  each receipt proves on its own (its hashes, key and signature), and
 *	  make a narrow item of every row: the chain's key, the sequence, the
 *	  stored hashes, the outcome and the row's ctid.  The first receipt
 *	  and the row of a click or conversion chain without a head go into
 *	  a multiset hash instead, which proves them all at once
 *	  (verify_single.c); the other items of click and conversion chains
 *	  go to the match, all others to the sort;
 * 2. the match hands over each of its chains with all its items: a chain
 *	  of one receipt and its row that passes is counted
 *	  (one_receipt_chain_passes), the items of any other are sorted;
 * 3. walk the sorted items chain by chain (receipts in sequence order,
 *	  then the chain's row and head) and check the links, the head and the
 *	  row.
 *
 * Most chains are a click's of one receipt: sorting their two items was
 * 18 % of verify_all at a million receipts, against a hash lookup per
 * item now.  A chain decided in step 2 is one that step 3 would pass
 * without reading anything again, so only the order in which chains are
 * counted (what a progress notice says when) differs, never a total or a
 * failure.
 *
 * The sort is by a 64-bit hash of the chain's key first (then the key
 * itself, which only ties compare), because comparing three strings that
 * share long prefixes was the sort's cost; so chains are walked in hash
 * order, and note_failure keeps the failure of the smallest key.
 *
 * Step 3 decides with the items alone whether a chain passes.  For a
 * chain that does not, it reads the receipts and the row again by ctid
 * and runs the same checks as verify_chain (chain_receipt, check_row), so
 * the failures and their details are those of one walk in key order.  A
 * row passes when its chain has a single receipt, which passed its own
 * checks, whose payload_hash is the SHA-256 of the JCS form of the row's
 * payload, written from the row's columns without building a jsonb
 * (fp_attribution_row_payload_hash: the JCS writer the receipt's hash was
 * checked with, over the members receipts are written from); otherwise (a
 * chain of several receipts to fold, or hashes that differ) it is
 * compared in full with the receipts read again.  The canonical form pins
 * the value (exact JCS refuses a number that is not already canonical),
 * so equal hashes are equal payloads.
 */

/*
 * A sorted item is one bytea, which the sort orders as bytes (bytea's
 * sort support: its first 8 bytes as an abbreviated key, then memcmp), so
 * comparing two items is one memcmp at most; as a heap tuple of eleven
 * columns, an item was deformed column by column in every comparison
 * that its chain's hash tied.  Its bytes, laid out so that their order is
 * the walk's:
 *
 *	chain		the 64-bit hash of the chain's key, big-endian with its sign
 *				bit flipped (ordered as an int8)
 *	key			advertiser_id, aggregate_type and aggregate_id, each ended by
 *				a zero byte (text holds none, so the bytes order keys as
 *				COLLATE "C" does, a prefix first)
 *	kind		1 byte: ItemKind
 *	sequence	8 bytes, as chain: a receipt's sequence, a head's last
 *	tid			a receipt's or row's ctid (zeros for a head)
 *	flags		1 byte of ITEM_ flags
 *	hashes		32 bytes each, those the flags name, in the flags' order
 *
 * The match (verify_match.c) takes the chain hash and key, the first
 * ItemSort.chainlen bytes, as the chain's identity, and the hash's high
 * bits as its partition.
 */

/* What an item is, in the order a chain's walk takes them */
typedef enum ItemKind
{
	ITEM_RECEIPT,
	ITEM_ROW,
	ITEM_HEAD
} ItemKind;

#define ITEM_OK			0x01	/* the receipt's own checks passed */
#define ITEM_PREV_ZERO	0x02	/* its prev_hash is 32 zero bytes (not
								 * stored) */
#define ITEM_PREV		0x04	/* its prev_hash follows (neither flag: it
								 * is not 32 bytes long) */
#define ITEM_HASH		0x08	/* its receipt_hash, or a head's last_hash,
								 * follows (absent: not 32 bytes long) */
#define ITEM_DIGEST		0x10	/* the payload_hash of a built-in type's
								 * receipt, or of a row's payload, follows */

/* A sorted item, read back (pointers into its bytes) */
typedef struct SortedItem
{
	const char *chain;			/* chain hash and key: the chain's identity */
	int			chainlen;
	const char *adv;
	int			advlen;
	const char *type;
	int			typelen;
	const char *id;
	int			idlen;
	ItemKind	kind;
	int64		sequence;
	ItemPointerData tid;
	uint8		flags;
	const uint8 *prev;			/* NULL unless flagged */
	const uint8 *hash;
	const uint8 *digest;
} SortedItem;

/*
 * The sort of one pass, the match of its click and conversion chains, an
 * item being built and the current sorted item
 */
typedef struct ItemSort
{
	Tuplesortstate *sort;
	FpVerifyMatch *match;		/* NULL: everything is sorted */
	FpParallelWorker *worker;	/* in a parallel worker: items go to the
								 * leader's match or sort */
	StringInfoData message;		/* the worker's message being sent */
	StringInfoData buf;			/* the item being built, as a bytea */
	int			chainlen;		/* bytes of its data naming its chain */
	uint64		chain_hash;		/* their first 8 */
	bool		to_match;		/* it goes to match, not sort */
	int			flags_at;		/* offset of its flags byte */
	MemoryContext cxt;			/* holds the current sorted item */
	Datum		datum;			/* the current sorted item, or 0 */
	SortedItem	item;			/* read from it */
	bool		more;			/* false when past the end */
} ItemSort;

/* Statements a pass over tables t runs, kept for the session */
typedef struct VerifyPlans
{
	SPIPlanPtr	receipt;		/* a receipt by ctid */
	SPIPlanPtr	click;			/* a click row by ctid */
	SPIPlanPtr	conversion;		/* a conversion row by ctid */
} VerifyPlans;

/* The 32 zero bytes of a first receipt's prev_hash */
static const uint8 zero_hash[FP_SHA256_LEN];

/*
 * Begin the sort of a pass, without a match: every item is sorted.  It
 * spills to disk beyond work_mem_kb, as an index build does.
 */
static void
items_begin(ItemSort *s, int work_mem_kb)
{
	memset(s, 0, sizeof(*s));
	s->cxt = CurrentMemoryContext;
	s->sort = tuplesort_begin_datum(BYTEAOID, ByteaLessOperator, InvalidOid,
									false, work_mem_kb, NULL,
									TUPLESORT_NONE);
	initStringInfo(&s->buf);
}

/* Append v in 8 bytes that order as the int8 v does */
static void
append_ordered(StringInfo buf, int64 v)
{
	uint64		u = (uint64) v ^ (UINT64CONST(1) << 63);
	uint8		bytes[8];

	for (int i = 0; i < 8; i++)
		bytes[i] = (uint8) (u >> (56 - 8 * i));
	appendBinaryStringInfo(buf, (const char *) bytes, 8);
}

/* The int8 of append_ordered's 8 bytes at p */
static int64
read_ordered(const char *p)
{
	uint64		u = 0;

	for (int i = 0; i < 8; i++)
		u = (u << 8) | (uint8) p[i];
	return (int64) (u ^ (UINT64CONST(1) << 63));
}

/*
 * Start an item of kind for the chain of this key (not terminated, but
 * type is), with sequence and tid (NULL: none); no flags, no hashes yet.
 * The items of chains of a built-in type go to the match, if there is one.
 */
static void
item_start(ItemSort *s, ItemKind kind, const char *adv, int advlen,
		   const char *type, int typelen, const char *id, int idlen,
		   int64 sequence, ItemPointer tid)
{
	static const ItemPointerData no_tid;
	uint64		h;

	h = hash_bytes_extended((const unsigned char *) adv, advlen, 0);
	h = hash_bytes_extended((const unsigned char *) type, typelen, h);
	h = hash_bytes_extended((const unsigned char *) id, idlen, h);
	resetStringInfo(&s->buf);
	appendStringInfoSpaces(&s->buf, VARHDRSZ);
	append_ordered(&s->buf, (int64) h);
	appendBinaryStringInfo(&s->buf, adv, advlen);
	appendStringInfoCharMacro(&s->buf, '\0');
	appendBinaryStringInfo(&s->buf, type, typelen);
	appendStringInfoCharMacro(&s->buf, '\0');
	appendBinaryStringInfo(&s->buf, id, idlen);
	appendStringInfoCharMacro(&s->buf, '\0');
	s->chainlen = s->buf.len - VARHDRSZ;
	s->chain_hash = h;
	s->to_match = (s->match != NULL || s->worker != NULL) &&
		fp_attribution_aggregate_table(type) != NULL;
	appendStringInfoCharMacro(&s->buf, (char) kind);
	append_ordered(&s->buf, sequence);
	appendBinaryStringInfo(&s->buf, (const char *) (tid != NULL ? tid : &no_tid),
						   sizeof(ItemPointerData));
	s->flags_at = s->buf.len;
	appendStringInfoCharMacro(&s->buf, '\0');
}

/* Set flag of the item being built */
static void
item_flag(ItemSort *s, uint8 flag)
{
	s->buf.data[s->flags_at] |= flag;
}

/*
 * Append the hash that flag names to the item being built, if it is 32
 * bytes long (else the flag stays unset).  Hashes go in the flags' order.
 */
static void
item_hash(ItemSort *s, uint8 flag, const bytea *hash)
{
	if (VARSIZE_ANY_EXHDR(hash) != FP_SHA256_LEN)
		return;
	item_flag(s, flag);
	appendBinaryStringInfo(&s->buf, VARDATA_ANY(hash), FP_SHA256_LEN);
}

/*
 * Take the item being built, of a row's chain, into st's proof of
 * one-receipt chains with digest (sign 1 for the first receipt, -1 for
 * the row) instead of keeping it; false if it is to be kept.
 */
static bool
item_take_single(const VerifyState *st, const ItemSort *s, const uint8 *digest,
				 int sign)
{
	return st->singles != NULL && s->to_match &&
		fp_attribution_verify_singles_take(st->singles, s->chain_hash,
										   s->buf.data + VARHDRSZ, s->chainlen,
										   digest, sign);
}

/* Add an item to the sort or the match (which copy it) */
static void
item_deliver(ItemSort *s, const bytea *item, int chainlen, bool to_match)
{
	if (to_match)
		fp_attribution_verify_match_put(s->match, item, chainlen);
	else
		tuplesort_putdatum(s->sort, PointerGetDatum(item), false);
}

/*
 * A parallel worker's item for the leader: this header, then the item at
 * the next MAXALIGNed offset
 */
typedef struct ItemMessage
{
	int32		chainlen;
	bool		to_match;
} ItemMessage;

/* Add the item being built to the sort or the match, or send it there */
static void
item_put(ItemSort *s)
{
	SET_VARSIZE(s->buf.data, s->buf.len);
	if (s->worker != NULL)
	{
		ItemMessage header = {s->chainlen, s->to_match};

		resetStringInfo(&s->message);
		appendBinaryStringInfo(&s->message, (const char *) &header, sizeof(header));
		appendStringInfoSpaces(&s->message, MAXALIGN(sizeof(header)) - sizeof(header));
		appendBinaryStringInfo(&s->message, s->buf.data, s->buf.len);
		fp_attribution_parallel_worker_send(s->worker, s->message.data,
											s->message.len);
	}
	else
		item_deliver(s, (bytea *) s->buf.data, s->chainlen, s->to_match);
}

/* The leader's handler of a worker's item */
static void
item_receive(void *arg, const char *data, Size len)
{
	ItemMessage header;

	memcpy(&header, data, sizeof(header));
	item_deliver((ItemSort *) arg, (const bytea *) (data + MAXALIGN(sizeof(header))),
				 header.chainlen, header.to_match);
}

/* A key column of an item at *p, moving *p past its zero byte */
static const char *
item_key(const char **p, int *len)
{
	const char *key = *p;

	*len = strlen(key);
	*p += *len + 1;
	return key;
}

/* The 32 bytes of the hash flag names at *p if the item has it, or NULL */
static const uint8 *
item_read_hash(const SortedItem *it, uint8 flag, const char **p)
{
	const uint8 *hash = (const uint8 *) *p;

	if (!(it->flags & flag))
		return NULL;
	*p += FP_SHA256_LEN;
	return hash;
}

/*
 * Read item (pointing into it).
 */
static void
item_parse(const bytea *item, SortedItem *it)
{
	const char *p = VARDATA_ANY(item);

	it->chain = p;
	p += 8;
	it->adv = item_key(&p, &it->advlen);
	it->type = item_key(&p, &it->typelen);
	it->id = item_key(&p, &it->idlen);
	it->chainlen = p - it->chain;
	it->kind = (ItemKind) *p++;
	it->sequence = read_ordered(p);
	p += 8;
	memcpy(&it->tid, p, sizeof(ItemPointerData));
	p += sizeof(ItemPointerData);
	it->flags = (uint8) *p++;
	it->prev = item_read_hash(it, ITEM_PREV, &p);
	it->hash = item_read_hash(it, ITEM_HASH, &p);
	it->digest = item_read_hash(it, ITEM_DIGEST, &p);
	Assert(p == VARDATA_ANY(item) + VARSIZE_ANY_EXHDR(item));
}

/*
 * Move to the next sorted item, freeing the current one (so walking a
 * long chain holds one item at a time).
 */
static void
items_next(ItemSort *s)
{
	bool		isnull;
	MemoryContext old;

	if (s->datum != 0)
		pfree(DatumGetPointer(s->datum));
	s->datum = 0;
	old = MemoryContextSwitchTo(s->cxt);
	s->more = tuplesort_getdatum(s->sort, true, &s->datum, &isnull, NULL);
	MemoryContextSwitchTo(old);
	if (s->more)
		item_parse((const bytea *) DatumGetPointer(s->datum), &s->item);
}

/* What reads one row of a table into items */
typedef void (*VerifyAdd) (VerifyState *st, ItemSort *items, HeapTuple tuple,
						   TupleDesc desc);

/* Feed one row to add, in st's per-row context */
static void
add_one(VerifyState *st, ItemSort *items, VerifyAdd add, HeapTuple tuple,
		TupleDesc desc)
{
	MemoryContext old = MemoryContextSwitchTo(st->row_cxt);

	CHECK_FOR_INTERRUPTS();
	add(st, items, tuple, desc);
	MemoryContextSwitchTo(old);
	MemoryContextReset(st->row_cxt);
}

/*
 * Open table relid to read all of it, as a query would check that the
 * caller may.
 */
static Relation
open_for_scan(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	AclResult	acl = pg_class_aclcheck(relid, GetUserId(), ACL_SELECT);

	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, get_relkind_objtype(rel->rd_rel->relkind),
					   RelationGetRelationName(rel));
	if (rel->rd_tableam != GetHeapamTableAmRoutine())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"%s\" is not a heap table",
						RelationGetRelationName(rel)),
				 errdetail("verify_all reads the receipts and the rows they record from heap tables only.")));
	return rel;
}

/*
 * Feed every row of rel (open_for_scan's) to add, in its physical order,
 * in st's per-receipt context.  The rows are read in place from the
 * table's buffers with the query's snapshot: an SPI cursor copied each of
 * them (twice) and cost more than the pass's sort.
 */
static void
scan_relation(Relation rel, VerifyAdd add, VerifyState *st, ItemSort *items)
{
	TableScanDesc scan;
	HeapTuple	tuple;

	st->row_map_desc = NULL;
	scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
		add_one(st, items, add, tuple, RelationGetDescr(rel));
	table_endscan(scan);
}

/* scan_relation of table relid */
static void
scan_table(Oid relid, VerifyAdd add, VerifyState *st, ItemSort *items)
{
	Relation	rel = open_for_scan(relid);

	scan_relation(rel, add, st, items);
	table_close(rel, AccessShareLock);
}

/*
 * Map the columns of rows of desc (once per table: its rows share it).
 */
static void
map_columns(VerifyState *st, TupleDesc desc)
{
	if (desc != st->row_map_desc)
	{
		fp_attribution_build_column_map(desc, &st->row_map);
		st->row_map_desc = desc;
	}
}

/* A NOT NULL column of the row (st's map is of its desc) */
static Datum
mapped_column(const VerifyState *st, HeapTuple tuple, TupleDesc desc,
			  FpColumn col)
{
	bool		isnull;
	Datum		d = heap_getattr(tuple,
								 fp_attribution_required_column(&st->row_map, col),
								 desc, &isnull);

	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("column \"%s\" must not be null",
						fp_attribution_column_names[col])));
	return d;
}

/* A NOT NULL column of a chain head, by name (heads are few) */
static Datum
head_column(HeapTuple tuple, TupleDesc desc, const char *name)
{
	bool		isnull;
	int			attnum = SPI_fnumber(desc, name);
	Datum		d;

	if (attnum <= 0)
		elog(ERROR, "column \"%s\" of a chain head not found", name);
	d = heap_getattr(tuple, attnum, desc, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("column \"%s\" must not be null", name)));
	return d;
}

/*
 * Raise the progress NOTICE if another VERIFY_PROGRESS_CHAINS receipts
 * have been read, by this process or, in a parallel read, by all.
 */
static void
read_progress(VerifyState *st)
{
	int64		read;

	if (st->quiet)
		return;
	read = st->parallel != NULL ?
		(int64) fp_attribution_parallel_scan_rows(st->parallel) : st->receipts_read;
	if (read / VERIFY_PROGRESS_CHAINS <= st->reads_noticed)
		return;
	st->reads_noticed = read / VERIFY_PROGRESS_CHAINS;
	ereport(NOTICE,
			(errmsg("verify_all: " INT64_FORMAT " receipts read",
					st->reads_noticed * VERIFY_PROGRESS_CHAINS)));
}

/*
 * Item of a receipt, with the outcome of the checks it passes or fails
 * on its own.
 */
static void
add_receipt(VerifyState *st, ItemSort *items, HeapTuple tuple, TupleDesc desc)
{
	FpStoredReceipt r;
	uint8		hash[FP_SHA256_LEN];
	char	   *detail;
	bool		ok;

	fp_attribution_receipt_from_tuple(tuple, desc, &r);
	ok = check_receipt_hashes(&r, hash, &detail) == NULL &&
		check_receipt_key(st, &r, hash, &detail) == NULL;
	item_start(items, ITEM_RECEIPT,
			   r.env.advertiser_id, strlen(r.env.advertiser_id),
			   r.env.aggregate_type, strlen(r.env.aggregate_type),
			   r.env.aggregate_id, strlen(r.env.aggregate_id),
			   r.env.sequence, &tuple->t_self);
	if (ok)
		item_flag(items, ITEM_OK);
	/* a first receipt's, which is most receipts', takes no room */
	if (fp_attribution_bytea_equals(r.prev_hash, zero_hash, FP_SHA256_LEN))
		item_flag(items, ITEM_PREV_ZERO);
	else
		item_hash(items, ITEM_PREV, r.prev_hash);
	item_hash(items, ITEM_HASH, r.receipt_hash);
	/* checked: the SHA-256 of the JCS form of its payload */
	if (ok && fp_attribution_aggregate_table(r.env.aggregate_type) != NULL)
		item_hash(items, ITEM_DIGEST, r.payload_hash);
	if (!(ok && r.env.sequence == 1 &&
		  (items->buf.data[items->flags_at] & ITEM_PREV_ZERO) &&
		  VARSIZE_ANY_EXHDR(r.payload_hash) == FP_SHA256_LEN &&
		  item_take_single(st, items, (const uint8 *) VARDATA_ANY(r.payload_hash), 1)))
		item_put(items);
	if (st->coverage != NULL)
		fp_attribution_log_coverage_add(st->coverage, r.env.advertiser_id,
										&r.env.receipt_id);
	st->receipts_read++;
	read_progress(st);
}

/* Item of a chain head */
static void
add_head(VerifyState *st, ItemSort *items, HeapTuple tuple, TupleDesc desc)
{
	text	   *adv = DatumGetTextPP(head_column(tuple, desc, "advertiser_id"));
	text	   *type = DatumGetTextPP(head_column(tuple, desc, "aggregate_type"));
	text	   *id = DatumGetTextPP(head_column(tuple, desc, "aggregate_id"));

	item_start(items, ITEM_HEAD, VARDATA_ANY(adv), VARSIZE_ANY_EXHDR(adv),
			   text_to_cstring(type), VARSIZE_ANY_EXHDR(type),
			   VARDATA_ANY(id), VARSIZE_ANY_EXHDR(id),
			   DatumGetInt64(head_column(tuple, desc, "last_sequence")), NULL);
	item_hash(items, ITEM_HASH,
			  DatumGetByteaPP(head_column(tuple, desc, "last_hash")));
	if (st->singles != NULL)
		fp_attribution_verify_singles_head(st->singles, items->chain_hash);
	item_put(items);
}

/*
 * Item of a row of clicks or conversions (aggregate type type, id: its
 * aggregate_id), with the payload_hash its creating event's receipt has
 * if the row is unchanged (none if a number of the row has no canonical
 * form: check_row then compares it in full).
 */
static void
add_row(VerifyState *st, ItemSort *items, HeapTuple tuple, TupleDesc desc,
		const char *type, const char *id, int idlen)
{
	text	   *adv = DatumGetTextPP(mapped_column(st, tuple, desc,
												   FP_COL_ADVERTISER_ID));
	uint8		digest[FP_SHA256_LEN];
	const char *bad_number;

	item_start(items, ITEM_ROW, VARDATA_ANY(adv), VARSIZE_ANY_EXHDR(adv),
			   type, strlen(type), id, idlen, 0, &tuple->t_self);
	if (fp_attribution_row_payload_hash(type, tuple, desc, &st->row_map, digest,
										&bad_number))
	{
		if (item_take_single(st, items, digest, -1))
			return;
		item_flag(items, ITEM_DIGEST);
		appendBinaryStringInfo(&items->buf, (const char *) digest, FP_SHA256_LEN);
	}
	item_put(items);
}

/* A click's aggregate_id is its click_id's text */
static void
add_click(VerifyState *st, ItemSort *items, HeapTuple tuple, TupleDesc desc)
{
	char		id[UUID_LEN * 2 + 5];

	map_columns(st, desc);
	fp_attribution_format_uuid(DatumGetUUIDP(mapped_column(st, tuple, desc, FP_COL_CLICK_ID)),
							   id);
	add_row(st, items, tuple, desc, "click", id, strlen(id));
}

/* A conversion's is its order_id */
static void
add_conversion(VerifyState *st, ItemSort *items, HeapTuple tuple, TupleDesc desc)
{
	text	   *id;

	map_columns(st, desc);
	id = DatumGetTextPP(mapped_column(st, tuple, desc, FP_COL_ORDER_ID));
	add_row(st, items, tuple, desc, "conversion", VARDATA_ANY(id),
			VARSIZE_ANY_EXHDR(id));
}

/*
 * The tables verify_all reads in parallel (verify_parallel.c), and what
 * reads their rows
 */
typedef enum VerifyScanKind
{
	SCAN_RECEIPTS,
	SCAN_CLICKS,
	SCAN_CONVERSIONS
} VerifyScanKind;

static const VerifyAdd scan_adds[] = {add_receipt, add_click, add_conversion};

/* What a parallel worker is given */
typedef struct VerifyWorkerArg
{
	VerifyScanKind kind;
	Oid			keys;			/* the signing keys' table */
	bool		has_coverage;
	FpLogCoverage coverage;		/* its key */
	bool		has_singles;
	char		singles[FLEXIBLE_ARRAY_MEMBER]; /* verify_single.c's share */
} VerifyWorkerArg;

/* What it leaves for the leader to add to its own */
typedef struct VerifyWorkerResult
{
	FpLogCoverage coverage;
	FpMultisetHash singles;
	int64		singles_receipts;
	int64		receipts_read;
} VerifyWorkerResult;

PGDLLEXPORT void fp_attribution_verify_worker(dsm_segment *seg, shm_toc *toc);

/*
 * The parallel workers to read rel with: max_parallel_maintenance_workers
 * (verify_all is maintenance, as an index build is), none for a table
 * smaller than min_parallel_table_scan_size, as a query's plan decides.
 */
static int
scan_workers(Relation rel)
{
	if (max_parallel_maintenance_workers <= 0 || IsInParallelMode() ||
		RelationGetNumberOfBlocks(rel) < (BlockNumber) min_parallel_table_scan_size)
		return 0;
	return max_parallel_maintenance_workers;
}

/*
 * scan_table of the rows of relid (of kind), shared with parallel workers
 * when it is large enough: each checks its rows as the leader does, sends
 * the items it keeps to the leader's match or sort, and leaves its sums
 * for the leader to add.  keys is the signing keys' table.
 */
static void
scan_rows(Oid relid, VerifyScanKind kind, Oid keys, VerifyState *st,
		  ItemSort *items)
{
	Relation	rel = open_for_scan(relid);
	int			nworkers = scan_workers(rel);
	Size		singles_len;
	VerifyWorkerArg *arg;
	FpParallelScan *ps;
	HeapTuple	tuple;
	char	   *results;
	int			n;

	if (nworkers == 0)
	{
		scan_relation(rel, scan_adds[kind], st, items);
		table_close(rel, AccessShareLock);
		return;
	}
	singles_len = st->singles != NULL ? fp_attribution_verify_singles_shared_size(st->singles) : 0;
	arg = palloc0(offsetof(VerifyWorkerArg, singles) + singles_len);
	arg->kind = kind;
	arg->keys = keys;
	arg->has_coverage = st->coverage != NULL;
	if (st->coverage != NULL)
		fp_attribution_multiset_fork(&arg->coverage, st->coverage);
	arg->has_singles = st->singles != NULL;
	if (st->singles != NULL)
		fp_attribution_verify_singles_share(st->singles, arg->singles);
	ps = fp_attribution_parallel_scan_begin(rel, "fp_attribution_verify_worker",
											nworkers, arg,
											offsetof(VerifyWorkerArg, singles) + singles_len,
											sizeof(VerifyWorkerResult));
	st->row_map_desc = NULL;
	if (kind == SCAN_RECEIPTS)
		st->parallel = ps;
	while ((tuple = fp_attribution_parallel_scan_next(ps, item_receive, items)) != NULL)
		add_one(st, items, scan_adds[kind], tuple, RelationGetDescr(rel));
	st->parallel = NULL;
	n = fp_attribution_parallel_scan_end(ps, item_receive, items, &results);
	for (int i = 0; i < n; i++)
	{
		VerifyWorkerResult result;

		memcpy(&result, results + i * sizeof(VerifyWorkerResult), sizeof(result));
		if (st->coverage != NULL)
			fp_attribution_multiset_merge(st->coverage, &result.coverage);
		if (st->singles != NULL)
			fp_attribution_verify_singles_merge(st->singles, &result.singles,
												result.singles_receipts);
		st->receipts_read += result.receipts_read;
	}
	table_close(rel, AccessShareLock);
}

/*
 * A parallel worker of scan_rows: reads its share of the table's rows as
 * the leader does its own.
 */
void
fp_attribution_verify_worker(dsm_segment *seg, shm_toc *toc)
{
	const char *arg_bytes;
	FpParallelWorker *w = fp_attribution_parallel_worker_begin(seg, toc, &arg_bytes);
	const VerifyWorkerArg *arg = (const VerifyWorkerArg *) arg_bytes;
	TupleDesc	desc = RelationGetDescr(fp_attribution_parallel_worker_relation(w));
	FpLogCoverage coverage;
	VerifyWorkerResult result;
	VerifyState st;
	ItemSort	items;
	HeapTuple	tuple;

	SPI_connect();
	verify_begin(&st, CurrentMemoryContext, relation_name(arg->keys), NULL);
	st.quiet = true;
	if (arg->has_coverage)
	{
		fp_attribution_multiset_fork(&coverage, &arg->coverage);
		st.coverage = &coverage;
	}
	if (arg->has_singles)
		st.singles = fp_attribution_verify_singles_attach(arg->singles);
	memset(&items, 0, sizeof(items));
	initStringInfo(&items.buf);
	initStringInfo(&items.message);
	items.worker = w;
	while ((tuple = fp_attribution_parallel_worker_next(w)) != NULL)
		add_one(&st, &items, scan_adds[arg->kind], tuple, desc);

	memset(&result, 0, sizeof(result));
	if (st.coverage != NULL)
		result.coverage = coverage;
	if (st.singles != NULL)
		fp_attribution_verify_singles_part(st.singles, &result.singles,
										   &result.singles_receipts);
	result.receipts_read = st.receipts_read;
	SPI_finish();
	fp_attribution_parallel_worker_end(w, &result);
}

/*
 * The row read again by its ctid with plan (NULL if tid is NULL), in
 * SPI_tuptable.
 */
static HeapTuple
fetch_by_tid(SPIPlanPtr plan, Datum tid)
{
	int			rc = SPI_execute_plan(plan, &tid, NULL, true, 1);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read a row again: %s", SPI_result_code_string(rc));
	if (SPI_processed != 1)
		elog(ERROR, "a row read before is gone");
	return SPI_tuptable->vals[0];
}

/*
 * The chain's receipts and row, read again by ctid, checked as
 * walk_chain does (chain_receipt, check_row), when its items said that
 * it fails or that its row needs the fold of several receipts.  tids are
 * its receipts' ctids in sequence order.
 */
static void
recheck_chain(VerifyState *st, const VerifyPlans *plans,
			  ItemPointerData *tids, int ntids, ItemPointer row_tid)
{
	bool		saw_first = false;
	FpStoredReceipt first;		/* its payload: the fold of the chain */

	st->receipts -= ntids;
	st->chain_receipts = 0;
	st->expected_sequence = 1;
	memset(st->expected_prev, 0, FP_SHA256_LEN);
	for (int i = 0; i < ntids; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(st->row_cxt);
		HeapTuple	tuple = fetch_by_tid(plans->receipt, PointerGetDatum(&tids[i]));
		FpStoredReceipt r;

		fp_attribution_receipt_from_tuple(tuple, SPI_tuptable->tupdesc, &r);
		check_and_fold(st, &r, &saw_first, &first);
		MemoryContextSwitchTo(old);
		SPI_freetuptable(SPI_tuptable);
		MemoryContextReset(st->row_cxt);
	}
	if (saw_first)
	{
		HeapTuple	row = NULL;
		TupleDesc	desc = NULL;

		if (row_tid != NULL)
		{
			row = fetch_by_tid(strcmp(st->aggregate_type, "click") == 0 ?
							   plans->click : plans->conversion,
							   PointerGetDatum(row_tid));
			desc = SPI_tuptable->tupdesc;
		}
		check_row(st, &first, row, desc);
		if (row != NULL)
			SPI_freetuptable(SPI_tuptable);
	}
}

/*
 * Walk the chain of the current sorted item (its receipts, then its row
 * and head), leaving the sort at the next chain's first item.
 */
static void
walk_sorted_chain(VerifyState *st, const VerifyPlans *plans, ItemSort *items)
{
	const SortedItem *it = &items->item;
	int			chainlen = it->chainlen;
	char	   *chain = palloc(chainlen);
	bool		failed = false;
	uint8		first_digest[FP_SHA256_LEN];
	bool		has_first_digest = false;
	bool		saw_first = false;
	ItemPointerData row_tid;
	bool		has_row = false;
	bool		row_matches = false;
	bool		has_head = false;
	int64		last_sequence = 0;
	bytea	   *last_hash = NULL;
	ItemPointerData *tids;
	int			ntids = 0;
	int			maxtids = 8;

	memcpy(chain, it->chain, chainlen);
	chain_begin(st, it->adv, it->advlen, it->type, it->typelen, it->id,
				it->idlen);
	tids = MemoryContextAlloc(st->chain_cxt, maxtids * sizeof(ItemPointerData));
	for (; items->more && it->chainlen == chainlen &&
		 memcmp(it->chain, chain, chainlen) == 0; items_next(items))
	{
		switch (it->kind)
		{
			case ITEM_RECEIPT:
				{
					const uint8 *prev = it->flags & ITEM_PREV_ZERO ? zero_hash : it->prev;

					if (!(it->flags & ITEM_OK) ||
						it->sequence != st->expected_sequence ||
						prev == NULL ||
						memcmp(prev, st->expected_prev, FP_SHA256_LEN) != 0)
						failed = true;
				}
				if (ntids == 0 && it->sequence == 1)
				{
					saw_first = true;
					has_first_digest = it->digest != NULL;
					if (has_first_digest)
						memcpy(first_digest, it->digest, FP_SHA256_LEN);
				}
				st->receipts++;
				st->chain_receipts++;
				chain_advance_to(st, it->sequence, it->hash);
				if (ntids == maxtids)
				{
					maxtids *= 2;
					tids = repalloc(tids, maxtids * sizeof(ItemPointerData));
				}
				tids[ntids++] = it->tid;
				break;
			case ITEM_ROW:
				has_row = true;
				row_tid = it->tid;
				row_matches = has_first_digest && ntids == 1 &&
					it->digest != NULL &&
					memcmp(it->digest, first_digest, FP_SHA256_LEN) == 0;
				break;
			case ITEM_HEAD:
				has_head = true;
				last_sequence = it->sequence;
				/* one not 32 bytes long differs as the stored one did */
				last_hash = it->hash != NULL ?
					DatumGetByteaPP(fp_attribution_bytea_datum(it->hash, FP_SHA256_LEN)) :
					DatumGetByteaPP(fp_attribution_bytea_datum(zero_hash, 0));
				break;
		}
	}

	/* walk_chain's checks, in its order */
	if (failed || (st->row_table != NULL && saw_first && !row_matches))
		recheck_chain(st, plans, tids, ntids, has_row ? &row_tid : NULL);
	else if (has_row && ntids == 0)
		row_without_receipt(st);
	chain_head(st, has_head, last_sequence, last_hash);
	chain_finish(st);
}

/*
 * Raise the progress NOTICE if another VERIFY_PROGRESS_CHAINS chains are
 * done.
 */
static void
chain_progress(const VerifyState *st)
{
	if (st->chains % VERIFY_PROGRESS_CHAINS == 0)
		ereport(NOTICE,
				(errmsg("verify_all: " INT64_FORMAT " chains, " INT64_FORMAT " receipts checked, " INT64_FORMAT " chains failed",
						st->chains, st->receipts, st->chains_failed)));
}

/*
 * True if the items of a chain are those of a chain that
 * walk_sorted_chain passes without reading anything again: one receipt,
 * the first, which passed its own checks, whose prev_hash is zero, and a
 * row whose payload has the receipt's payload_hash; no head (a chain of
 * one receipt of a built-in type has none).
 */
static bool
one_receipt_chain_passes(const bytea *const *group, int n)
{
	SortedItem	a;
	SortedItem	b;
	const SortedItem *receipt = &a;
	const SortedItem *row = &b;

	if (n != 2)
		return false;
	item_parse(group[0], &a);
	item_parse(group[1], &b);
	if (a.kind != ITEM_RECEIPT)
	{
		receipt = &b;
		row = &a;
	}
	return receipt->kind == ITEM_RECEIPT && row->kind == ITEM_ROW &&
		(receipt->flags & ITEM_OK) && (receipt->flags & ITEM_PREV_ZERO) &&
		receipt->sequence == 1 && receipt->digest != NULL &&
		row->digest != NULL &&
		memcmp(receipt->digest, row->digest, FP_SHA256_LEN) == 0;
}

/* What the match's callbacks work on */
typedef struct MatchTarget
{
	VerifyState *st;
	ItemSort   *items;
} MatchTarget;

/*
 * The match's chain callback: count a chain of one receipt and its row
 * that passes; sort the items of any other, for walk_sorted_chain.
 */
static void
match_chain(void *arg, const bytea *const *group, int n)
{
	MatchTarget *target = arg;

	if (one_receipt_chain_passes(group, n))
	{
		target->st->chains++;
		target->st->receipts++;
		chain_progress(target->st);
		return;
	}
	for (int i = 0; i < n; i++)
		tuplesort_putdatum(target->items->sort, PointerGetDatum(group[i]), false);
}

/* The match's item callback: sort it */
static void
match_item(void *arg, const bytea *item)
{
	MatchTarget *target = arg;

	tuplesort_putdatum(target->items->sort, PointerGetDatum(item), false);
}

/*
 * One pass of verify_tables.  With singles, the first receipts and rows
 * of click and conversion chains without a head are proven in bulk
 * (verify_single.c) instead of kept: returns false if that proof fails,
 * and the pass's totals are then to be thrown away.
 */
static bool
verify_pass(VerifyState *st, const VerifyTables *t, bool singles)
{
	ItemSort	items;
	int64		single_chains = 0;
	bool		singles_pass = true;
	VerifyPlans plans;
	MemoryContext walk_cxt;		/* what walking one chain detoasts */
	MatchTarget target = {st, &items};

	plans.receipt = kept_plan(psprintf("SELECT r.* FROM %s r WHERE r.ctid OPERATOR(pg_catalog.=) $1",
										relation_name(t->receipts)), 1, (Oid[]) {TIDOID});
	plans.click = kept_plan(psprintf("SELECT c.click_id::pg_catalog.text AS aggregate_id, c.*"
									  " FROM %s c WHERE c.ctid OPERATOR(pg_catalog.=) $1",
									  relation_name(t->clicks)), 1, (Oid[]) {TIDOID});
	plans.conversion = kept_plan(psprintf("SELECT c.order_id COLLATE \"C\" AS aggregate_id, c.*"
										   " FROM %s c WHERE c.ctid OPERATOR(pg_catalog.=) $1",
										   relation_name(t->conversions)), 1, (Oid[]) {TIDOID});

	/* the heads' set of verify_single.c takes half of the match's half */
	items_begin(&items, maintenance_work_mem / 2);
	items.match = fp_attribution_verify_match_begin(maintenance_work_mem / (singles ? 4 : 2),
													match_chain, match_item,
													&target);
	if (singles)
		st->singles = fp_attribution_verify_singles_begin(t->receipts,
														  maintenance_work_mem / 4);
	/* the heads first: verify_single.c needs them before the rest */
	scan_table(t->heads, add_head, st, &items);
	scan_rows(t->receipts, SCAN_RECEIPTS, t->keys, st, &items);
	scan_rows(t->clicks, SCAN_CLICKS, t->keys, st, &items);
	scan_rows(t->conversions, SCAN_CONVERSIONS, t->keys, st, &items);
	fp_attribution_verify_match_end(items.match);
	items.match = NULL;
	tuplesort_performsort(items.sort);

	walk_cxt = AllocSetContextCreate(CurrentMemoryContext,
									 "fp_attribution verify walk",
									 ALLOCSET_DEFAULT_SIZES);
	for (items_next(&items); items.more;)
	{
		MemoryContext old = MemoryContextSwitchTo(walk_cxt);

		CHECK_FOR_INTERRUPTS();
		walk_sorted_chain(st, &plans, &items);
		MemoryContextSwitchTo(old);
		MemoryContextReset(walk_cxt);
		chain_progress(st);
	}
	MemoryContextDelete(walk_cxt);
	tuplesort_end(items.sort);
	pfree(items.buf.data);
	if (st->singles != NULL)
	{
		singles_pass = fp_attribution_verify_singles_end(st->singles, &single_chains);
		st->singles = NULL;
		st->chains += single_chains;
		st->receipts += single_chains;
	}
	return singles_pass;
}

/*
 * Verify every chain of tables t, plus every head whose chain has no
 * receipts left and every row that has none.  Caller has begun st and is
 * connected to SPI.
 *
 * The chains of one receipt and its row that pass (most chains) are
 * proven in bulk (verify_single.c), and the rest checked one by one: the
 * items of click and conversion chains go to a match by chain
 * (verify_match.c), which also counts those of one receipt and its row
 * that pass and sorts the others; all other items are sorted.  The sort
 * gets half of maintenance_work_mem, the match and the heads' set of
 * verify_single.c a quarter each.  If the bulk proof fails,
 * some chain of one receipt fails: the pass is done again without it, so
 * that every chain is checked one by one and the failures are named.
 */
static void
verify_tables(VerifyState *st, const VerifyTables *t)
{
	if (verify_pass(st, t, true))
		return;
	ereport(st->receipts_read >= VERIFY_PROGRESS_CHAINS ? NOTICE : DEBUG1,
			(errmsg("verify_all: a chain of one receipt does not match its row; checking every chain one by one")));
	st->chains = st->chains_failed = 0;
	st->receipts = st->receipts_failed = st->receipts_read = 0;
	st->reads_noticed = 0;
	st->heads_failed = st->rows_failed = 0;
	memset(&st->first_failure, 0, sizeof(st->first_failure));
	if (st->coverage != NULL)
		fp_attribution_log_coverage_begin(st->coverage);
	verify_pass(st, t, false);
}

/*
 * Whether the receipts are distributed by Citus: then their rows are in
 * the shards on the workers, and the coordinator's table is empty.
 */
static bool
receipts_distributed(void)
{
	bool		isnull;

	if (!OidIsValid(get_extension_oid("citus", true)))
		return false;
	if (SPI_execute("SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition"
					" WHERE logicalrelid OPERATOR(pg_catalog.=)"
					" 'attribution.receipts'::pg_catalog.regclass)", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_dist_partition");
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									  1, &isnull));
}

/*
 * Add the result of one shard group, a row of verify_all's type desc, to
 * st: the totals are sums, and the first failure is the one with the
 * smallest key, as one pass over all the groups would find first.
 */
static void
add_group_result(VerifyState *st, TupleDesc desc, HeapTupleHeader rec)
{
	HeapTupleData group;
	Datum		values[VERIFY_ALL_COLUMNS];
	bool		nulls[VERIFY_ALL_COLUMNS];
	VerifyFailure *first = &st->first_failure;

	group.t_len = HeapTupleHeaderGetDatumLength(rec);
	ItemPointerSetInvalid(&group.t_self);
	group.t_tableOid = InvalidOid;
	group.t_data = rec;
	heap_deform_tuple(&group, desc, values, nulls);
	st->chains += DatumGetInt64(values[1]);
	st->receipts += DatumGetInt64(values[2]);
	st->chains_failed += DatumGetInt64(values[3]);
	st->receipts_failed += DatumGetInt64(values[4]);
	if (DatumGetBool(values[0]))
		return;
	if (first->failed)
	{
		text	   *adv = DatumGetTextPP(values[5]);
		text	   *type = DatumGetTextPP(values[6]);
		text	   *id = DatumGetTextPP(values[7]);

		if (!chain_precedes(first, VARDATA_ANY(adv), VARSIZE_ANY_EXHDR(adv),
							VARDATA_ANY(type), VARSIZE_ANY_EXHDR(type),
							VARDATA_ANY(id), VARSIZE_ANY_EXHDR(id)))
			return;
	}
	first->failed = true;
	first->advertiser_id = TextDatumGetCString(values[5]);
	first->aggregate_type = TextDatumGetCString(values[6]);
	first->aggregate_id = TextDatumGetCString(values[7]);
	first->has_receipt = !nulls[8];
	if (first->has_receipt)
	{
		first->receipt_id = *DatumGetUUIDP(values[8]);
		first->sequence = DatumGetInt64(values[9]);
	}
	first->check = TextDatumGetCString(values[10]);
	first->detail = TextDatumGetCString(values[11]);
}

/*
 * Verify every shard group on its node and add the results up in st
 * (add_group_result).  Each node gets one command, run on one connection
 * of its own, all nodes in parallel: attribution.verify_shard_group() for
 * each shard group it holds (the shards of the five tables with the same
 * hash range, found in Citus' metadata; one placement of each), the
 * results gathered into an array of rows of verify_all's type desc
 * (blessed), which comes back as text.  A node's error is raised here.
 * Caller is connected to SPI, in a memory context that outlives it.
 */
static void
verify_shard_groups(VerifyState *st, TupleDesc desc)
{
	Oid			typinput;
	Oid			typioparam;
	FmgrInfo	array_in;
	int			rc;

	getTypeInputInfo(RECORDARRAYOID, &typinput, &typioparam);
	fmgr_info(typinput, &array_in);
	rc = SPI_execute("SELECT w.node_name, w.node_port, w.success, w.result"
					 " FROM (SELECT pg_catalog.array_agg(n.nodename) AS names,"
					 " pg_catalog.array_agg(n.nodeport) AS ports,"
					 " pg_catalog.array_agg(n.command) AS commands"
					 " FROM (SELECT n.nodename, n.nodeport,"
					 " 'SELECT pg_catalog.array_agg(res) FROM (VALUES '"
					 " OPERATOR(pg_catalog.||) pg_catalog.string_agg(pg_catalog.format("
					 "'(%L::pg_catalog.regclass, %L::pg_catalog.regclass, %L::pg_catalog.regclass,"
					 " %L::pg_catalog.regclass, %L::pg_catalog.regclass)',"
					 " pg_catalog.shard_name(r.logicalrelid, r.shardid),"
					 " pg_catalog.shard_name(h.logicalrelid, h.shardid),"
					 " pg_catalog.shard_name(c.logicalrelid, c.shardid),"
					 " pg_catalog.shard_name(v.logicalrelid, v.shardid),"
					 " pg_catalog.shard_name(k.logicalrelid, k.shardid)), ', ')"
					 " OPERATOR(pg_catalog.||) ') g(r, h, c, o, k),"
					 " LATERAL attribution.verify_shard_group(g.r, g.h, g.c, g.o, g.k) res'"
					 " AS command"
					 " FROM pg_catalog.pg_dist_shard r"
					 " CROSS JOIN LATERAL (SELECT p.groupid FROM pg_catalog.pg_dist_placement p"
					 "  WHERE p.shardid OPERATOR(pg_catalog.=) r.shardid LIMIT 1) p"
					 " JOIN pg_catalog.pg_dist_node n ON n.groupid OPERATOR(pg_catalog.=) p.groupid"
					 " JOIN pg_catalog.pg_dist_shard h ON h.shardminvalue OPERATOR(pg_catalog.=) r.shardminvalue"
					 "  AND h.logicalrelid OPERATOR(pg_catalog.=) 'attribution.receipt_streams'::pg_catalog.regclass"
					 " JOIN pg_catalog.pg_dist_shard c ON c.shardminvalue OPERATOR(pg_catalog.=) r.shardminvalue"
					 "  AND c.logicalrelid OPERATOR(pg_catalog.=) 'attribution.clicks'::pg_catalog.regclass"
					 " JOIN pg_catalog.pg_dist_shard v ON v.shardminvalue OPERATOR(pg_catalog.=) r.shardminvalue"
					 "  AND v.logicalrelid OPERATOR(pg_catalog.=) 'attribution.conversions'::pg_catalog.regclass"
					 " JOIN pg_catalog.pg_dist_shard k ON k.shardminvalue OPERATOR(pg_catalog.=) r.shardminvalue"
					 "  AND k.logicalrelid OPERATOR(pg_catalog.=) 'attribution.signing_keys'::pg_catalog.regclass"
					 " WHERE r.logicalrelid OPERATOR(pg_catalog.=) 'attribution.receipts'::pg_catalog.regclass"
					 " GROUP BY n.nodename, n.nodeport) n) g,"
					 " pg_catalog.master_run_on_worker(g.names, g.ports, g.commands, true) w",
					 true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not verify the shard groups: %s", SPI_result_code_string(rc));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	rdesc = SPI_tuptable->tupdesc;
		char	   *result = SPI_getvalue(tup, rdesc, 4);
		bool		isnull;
		ArrayType  *groups;
		Datum	   *recs;
		int			nrecs;

		if (!DatumGetBool(SPI_getbinval(tup, rdesc, 3, &isnull)))
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("could not verify the shard groups on node %s:%s",
							SPI_getvalue(tup, rdesc, 1), SPI_getvalue(tup, rdesc, 2)),
					 errdetail("The node reported: %s", result != NULL ? result : "")));
		groups = DatumGetArrayTypeP(InputFunctionCall(&array_in, result, RECORDOID,
													  desc->tdtypmod));
		deconstruct_array(groups, RECORDOID, -1, false, TYPALIGN_DOUBLE,
						  &recs, NULL, &nrecs);
		for (int j = 0; j < nrecs; j++)
			add_group_result(st, desc, DatumGetHeapTupleHeader(recs[j]));
	}
}

/*
 * The row verify_all and verify_shard_group return for st.
 */
static Datum
verify_all_result(const VerifyState *st, TupleDesc tupdesc)
{
	Datum		values[VERIFY_ALL_COLUMNS];
	bool		nulls[VERIFY_ALL_COLUMNS] = {false};

	values[0] = BoolGetDatum(!st->first_failure.failed);
	values[1] = Int64GetDatum(st->chains);
	values[2] = Int64GetDatum(st->receipts);
	values[3] = Int64GetDatum(st->chains_failed);
	values[4] = Int64GetDatum(st->receipts_failed);
	if (st->first_failure.failed)
	{
		values[5] = CStringGetTextDatum(st->first_failure.advertiser_id);
		values[6] = CStringGetTextDatum(st->first_failure.aggregate_type);
		values[7] = CStringGetTextDatum(st->first_failure.aggregate_id);
	}
	else
		nulls[5] = nulls[6] = nulls[7] = true;
	failure_receipt_datums(&st->first_failure, values + 8, nulls + 8);
	failure_check_datums(&st->first_failure, values + 10, nulls + 10);
	return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
}

/*
 * The result type of verify_all and verify_shard_group, blessed.
 */
static TupleDesc
verify_all_type(FunctionCallInfo fcinfo)
{
	TupleDesc	tupdesc;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (tupdesc->natts != VERIFY_ALL_COLUMNS)
		elog(ERROR, "return type must have %d columns", VERIFY_ALL_COLUMNS);
	return BlessTupleDesc(tupdesc);
}

/*
 * On Citus every statement of the log checks, and every subquery Citus
 * plans apart, reads the shards with a snapshot of its own: a batch the
 * ledger integrated between two reads would show entries without their
 * leaf hashes.  So the log tables are locked against the integration,
 * which writes them (the commands only queue receipts, in log_queue),
 * until the end of the transaction; Citus takes the lock on every node.
 * A read-only transaction may not take it (LOCK TABLE): there a batch
 * integrated meanwhile can fail log_gap, and a second run passes
 * (doc/citus.md).
 */
static void
lock_logs_against_integration(void)
{
	if (XactReadOnly)
		return;
	if (SPI_execute("LOCK TABLE attribution.log_entries, attribution.log_tiles,"
					" attribution.log_nodes, attribution.log_checkpoints IN SHARE MODE",
					false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not lock the receipt logs");
}

/*
 * attribution.verify_all()
 *	  returns (ok, chains_checked, receipts_checked, chains_failed,
 *			   receipts_failed, failed_advertiser_id, failed_aggregate_type,
 *			   failed_aggregate_id, failed_receipt_id, failed_sequence,
 *			   failed_check, detail)
 *
 * Every chain of the extension's tables (verify_tables), or, when Citus
 * distributes them, of every shard group, each on its node
 * (verify_shard_groups); then the receipt logs.  The failure columns
 * describe the first failure found.
 */
PG_FUNCTION_INFO_V1(fp_attribution_verify_all);
Datum
fp_attribution_verify_all(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc = verify_all_type(fcinfo);
	MemoryContext caller_cxt = CurrentMemoryContext;
	VerifyState st;
	FpLogCoverage coverage;
	bool		distributed;
	Datum		result;

	SPI_connect();
	distributed = receipts_distributed();
	if (distributed)
	{
		/* the receipts are read on the nodes: log_missing runs its query */
		memset(&st, 0, sizeof(st));
		st.call_cxt = caller_cxt;
		MemoryContextSwitchTo(caller_cxt);
		verify_shard_groups(&st, tupdesc);
	}
	else
	{
		VerifyTables t;

		extension_tables(&t);
		verify_begin(&st, caller_cxt, relation_name(t.keys), NULL);
		fp_attribution_log_coverage_begin(&coverage);
		st.coverage = &coverage;
		verify_tables(&st, &t);
		verify_count(&st);
	}
	/* the chains hold: are the logs complete and their checkpoints kept? */
	if (!st.first_failure.failed && distributed)
		lock_logs_against_integration();
	if (!st.first_failure.failed &&
		!fp_attribution_log_verify_all(caller_cxt, st.coverage,
									   &st.first_failure.advertiser_id,
									   &st.first_failure.aggregate_id,
									   &st.first_failure.check,
									   &st.first_failure.detail))
	{
		st.first_failure.failed = true;
		st.first_failure.aggregate_type = "log";
	}
	SPI_finish();
	result = verify_all_result(&st, tupdesc);
	PG_RETURN_DATUM(result);
}

/*
 * attribution.verify_shard_group(receipts regclass, receipt_streams
 *								  regclass, clicks regclass, conversions
 *								  regclass, signing_keys regclass)
 *	  returns the columns of verify_all
 *
 * verify_all of one Citus shard group, on the node that holds it: the
 * given shards of the five tables, read as plain tables (Citus plans no
 * query on a shard).  verify_all on the coordinator sends it to each node.
 * The receipt logs are verify_all's.
 */
PG_FUNCTION_INFO_V1(fp_attribution_verify_shard_group);
Datum
fp_attribution_verify_shard_group(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc = verify_all_type(fcinfo);
	MemoryContext caller_cxt = CurrentMemoryContext;
	VerifyTables t;
	VerifyState st;
	Datum		result;

	t.receipts = PG_GETARG_OID(0);
	t.heads = PG_GETARG_OID(1);
	t.clicks = PG_GETARG_OID(2);
	t.conversions = PG_GETARG_OID(3);
	t.keys = PG_GETARG_OID(4);
	SPI_connect();
	verify_begin(&st, caller_cxt, relation_name(t.keys), NULL);
	verify_tables(&st, &t);
	verify_count(&st);
	SPI_finish();
	result = verify_all_result(&st, tupdesc);
	PG_RETURN_DATUM(result);
}
