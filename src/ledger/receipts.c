/*-------------------------------------------------------------------------
 *
 * receipts.c
 *	  Writing receipts: the payload of each aggregate type, per-aggregate
 *	  hash chains, optional signatures, and the SQL functions and trigger
 *	  that append receipts (the envelope and its hashes: receipt_envelope.c).
 *
 * Every INSERT into attribution.clicks or attribution.conversions (by a
 * command or directly) fires the AFTER INSERT trigger
 * attribution.write_receipt(aggregate_type), which appends one receipt to
 * the chain of that aggregate in the same transaction; a rolled-back
 * command leaves no receipt, and an INSERT ... ON CONFLICT DO NOTHING
 * retry inserts no row and so writes none.
 *
 * Chains: one per (advertiser_id, aggregate_type, aggregate_id), whose
 * head row in attribution.receipt_streams holds the last sequence and
 * receipt hash.  Every statement of an append is keyed by advertiser_id
 * first, so it touches only that advertiser's rows (one shard, once the
 * tables are distributed by it).  An append is:
 *
 *	1. SELECT last_sequence, last_hash, ctid ... FOR UPDATE: locks the head
 *	   (a concurrent writer of the same aggregate waits here until we end,
 *	   then reads our head) or finds none: then the chain continues after
 *	   its last receipt, if it has one (a row's chain, below), else starts
 *	   at sequence 1 with 32 zero bytes;
 *	2. for an existing chain, UPDATE of the locked head by its tuple id,
 *	   then INSERT of the receipt; for a new chain, INSERT ... ON CONFLICT
 *	   DO NOTHING of the head, which also takes the row lock and waits for
 *	   a concurrent creator, then INSERT of the receipt only if the head
 *	   was inserted.  If another writer created the head first, nothing is
 *	   written and the append starts over (under REPEATABLE READ PostgreSQL
 *	   raises a serialization failure instead).  Two statements rather than
 *	   one data-modifying CTE: Citus plans each as a single-shard INSERT,
 *	   but the CTE as an INSERT ... SELECT through an intermediate result
 *	   (doc/citus.md, "Performance").
 *
 * A row's chain (click, conversion) starts without a head: its first
 * receipt is written with the row, whose primary key already serializes
 * its creators (a second inserter of the same key waits and then inserts
 * nothing, so writes no receipt), and most chains never grow.  That
 * receipt is sequence 1 with no statement but its INSERT.  The first
 * append to such a chain (a lifecycle command or a late attribution)
 * finds no head in step 1, continues after the receipt it reads and
 * creates the head in step 2, racing like any new chain.  Verification
 * accepts a row's chain of one receipt without a head (verify.c).
 *
 * Within one transaction, the next append to a chain whose head it has
 * written takes neither statement 1 nor a lookup by key: the head it wrote
 * is remembered (see HeadEntry), already locked by this transaction, and
 * is updated by its tuple id.  Found by key, a head written n times in one
 * transaction is n row versions that every lookup walks: n appends would
 * cost O(n^2).
 *
 * The head lock is held to the end of the transaction, so writers of one
 * aggregate queue behind each other and a rolled-back writer gives its
 * sequence back; the primary keys of both tables are the backstop against
 * a fork.  Each head row is written once per receipt (an upsert followed
 * by a hash update would write it twice).  Writers of different
 * aggregates never touch a common row: there is no global sequence
 * (DESIGN section 8).
 *
 * The writes, and the lookup of a conversion's causing click receipt, run
 * as the owner of the table that fired the trigger (as PostgreSQL's own
 * RI triggers do), so a role allowed to track clicks needs no privilege
 * on receipts, and nobody needs one to forge them.
 *
 * Shared memory: none.  Backend-local state: the saved SPI plans and the
 * heads written by the current transaction.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/itemptr.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "fp_attribution/columns.h"
#include "fp_attribution/extension.h"
#include "fp_attribution/ids.h"
#include "fp_attribution/jcs.h"
#include "fp_attribution/log.h"
#include "fp_attribution/postbacks.h"
#include "fp_attribution/receipts.h"
#include "fp_attribution/row_guard.h"
#include "fp_attribution/spi_plans.h"
#include "fp_attribution/trace_context.h"
#include "fp_attribution/validate.h"

bool		fp_attribution_sign_receipts = false;
char	   *fp_attribution_correlation_id = NULL;

/* Longest caller-supplied correlation id, in bytes */
#define FP_CORRELATION_ID_MAX 128

/*
 * What goes into the payload of each aggregate type's creating event: an
 * "event" name and these columns of the inserted row, by name.  See
 * column_value() for how each type is written.
 */
typedef struct FpAggregateSpec
{
	const char *aggregate_type; /* the trigger's argument */
	const char *table;			/* its table's logical name, for messages */
	FpRowTable	table_kind;
	const char *event;
	FpColumn	id_column;		/* gives aggregate_id; advertiser_id gives
								 * the advertiser */
	FpColumn	cause_column;	/* a click_id naming the cause, or
								 * FP_NUM_COLUMNS */
	const FpColumn *columns;	/* ended by FP_NUM_COLUMNS */
} FpAggregateSpec;

static const FpColumn click_columns[] = {
	FP_COL_AFFILIATE_ID, FP_COL_CAMPAIGN_ID, FP_COL_CLICK_ID, FP_COL_CLICKED_AT,
	FP_COL_IP, FP_COL_LANDING_URL, FP_COL_OFFER_ID, FP_COL_REFERRER,
	FP_COL_USER_AGENT, FP_COL_VISITOR_ID, FP_COL_WINDOW_ENDS_AT, FP_NUM_COLUMNS
};

static const FpColumn conversion_columns[] = {
	FP_COL_AFFILIATE_ID, FP_COL_ATTRIBUTED, FP_COL_CLICK_ID,
	FP_COL_COMMISSION_CENTS, FP_COL_COMMISSION_REVERSED_CENTS,
	FP_COL_CONVERSION_ID, FP_COL_CONVERTED_AT, FP_COL_CURRENCY, FP_COL_LATENCY,
	FP_COL_OFFER_ID, FP_COL_ORDER_ID, FP_COL_REFUNDED_CENTS,
	FP_COL_REVENUE_CENTS, FP_COL_STATUS, FP_COL_UNATTRIBUTED_REASON,
	FP_COL_VISITOR_ID, FP_COL_REVIEW_REASON, FP_NUM_COLUMNS
};

static const FpAggregateSpec aggregate_specs[] = {
	{"click", "clicks", FP_TABLE_CLICKS, "click_tracked", FP_COL_CLICK_ID,
	FP_NUM_COLUMNS, click_columns},
	{"conversion", "conversions", FP_TABLE_CONVERSIONS, "conversion_tracked",
	FP_COL_ORDER_ID, FP_COL_CLICK_ID, conversion_columns},
};

/* Saved plans, prepared on first use in each backend */
static SPIPlanPtr lock_plan = NULL;
static SPIPlanPtr advance_plan = NULL;
static SPIPlanPtr insert_plan = NULL;
static SPIPlanPtr insert_returning_plan = NULL;
static SPIPlanPtr start_plan = NULL;
static SPIPlanPtr tail_plan = NULL;
static SPIPlanPtr cause_plan = NULL;
static SPIPlanPtr key_plan = NULL;

/*
 * A chain head this transaction has written: its key, what it holds and
 * the tuple id of the version written.  An entry is trusted only as far
 * as the UPDATE by tuple id finds that version visible; after a rollback
 * to a savepoint it does not, and the append takes the path by key.  Keys
 * that do not fit are not remembered (their appends take that path).
 */
typedef struct HeadKey
{
	char		advertiser_id[192];
	char		aggregate_type[64];
	char		aggregate_id[192];
} HeadKey;

typedef struct HeadEntry
{
	HeadKey		key;			/* hash key: must be first */
	int64		last_sequence;
	uint8		last_hash[FP_SHA256_LEN];
	ItemPointerData tid;
} HeadEntry;

/* At most this many heads remembered per transaction (~300 bytes each) */
#define HEAD_CACHE_MAX 1024

/* In TopTransactionContext, so valid only in transaction head_cache_lxid */
static HTAB *head_cache = NULL;
static LocalTransactionId head_cache_lxid = InvalidLocalTransactionId;

/*
 * The receipt a command (commands.c) waits for: the one write_receipt
 * writes for the command's own row, identified by its chain, copied into
 * catch_cxt as the table's row type.  The command reads it back instead
 * of looking it up again.  catch_cxt is NULL when no command waits.
 */
static MemoryContext catch_cxt = NULL;
static const char *catch_advertiser_id;
static const char *catch_aggregate_type;
static const char *catch_aggregate_id;
static HeapTuple caught_receipt = NULL;

/*
 * Check hook of fp_attribution.correlation_id: bounded length.
 */
static bool
check_correlation_id(char **newval, void **extra, GucSource source)
{
	if (*newval != NULL && strlen(*newval) > FP_CORRELATION_ID_MAX)
	{
		GUC_check_errdetail("A correlation id is at most %d bytes.",
							FP_CORRELATION_ID_MAX);
		return false;
	}
	return true;
}

void
fp_attribution_receipts_define_gucs(void)
{
	DefineCustomBoolVariable("fp_attribution.sign_receipts",
							 gettext_noop("Sign each new receipt with Ed25519."),
							 gettext_noop("The key is read from fp_attribution.signing_key_file."),
							 &fp_attribution_sign_receipts,
							 false,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomStringVariable("fp_attribution.signing_key_file",
							   gettext_noop("Ed25519 private key (PEM) that signs receipts."),
							   gettext_noop("Must not be readable by group or others."),
							   &fp_attribution_signing_key_file,
							   "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, fp_attribution_signing_key_file_assign,
							   NULL);
	DefineCustomStringVariable("fp_attribution.correlation_id",
							   gettext_noop("Correlation id recorded in receipts, for SET LOCAL."),
							   gettext_noop("Empty means the command's trace id."),
							   &fp_attribution_correlation_id,
							   "",
							   PGC_USERSET, 0,
							   check_correlation_id, NULL, NULL);
}

/*
 * Copy a stored hash into a fixed buffer; a wrong length (only possible
 * after tampering with the table's definition) leaves zeros, which the
 * verification then reports.
 */
static void
copy_hash(const bytea *b, uint8 *out)
{
	memset(out, 0, FP_SHA256_LEN);
	if (b != NULL && VARSIZE_ANY_EXHDR(b) == FP_SHA256_LEN)
		memcpy(out, VARDATA_ANY(b), FP_SHA256_LEN);
}

/*
 * Fetch a column of a receipts row by name; *isnull tells SQL NULL.
 */
static Datum
receipt_column(HeapTuple tuple, TupleDesc desc, const char *name,
			   bool *isnull)
{
	int			attnum = SPI_fnumber(desc, name);

	if (attnum <= 0)
		elog(ERROR, "receipt column \"%s\" not found", name);
	return heap_getattr(tuple, attnum, desc, isnull);
}

/*
 * Fetch a NOT NULL column of a receipts row by name.  A stored row always
 * has one, but a row built in SQL (ROW(...)::attribution.receipts) need
 * not.
 */
static Datum
required_column(HeapTuple tuple, TupleDesc desc, const char *name)
{
	bool		isnull;
	Datum		d = receipt_column(tuple, desc, name, &isnull);

	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("receipt column \"%s\" must not be null", name)));
	return d;
}

/*
 * Read a row of attribution.receipts (any tuple with its column names)
 * into *r.  Values point into the tuple or are detoasted copies.
 */
void
fp_attribution_receipt_from_tuple(HeapTuple tuple, TupleDesc desc,
								  FpStoredReceipt *r)
{
	FpReceiptEnvelope *env = &r->env;
	bool		isnull;
	Datum		d;

	memset(r, 0, sizeof(*r));
	env->receipt_id = *DatumGetUUIDP(required_column(tuple, desc, "receipt_id"));
	env->timestamp = DatumGetTimestampTz(required_column(tuple, desc, "timestamp"));
	env->sequence = DatumGetInt64(required_column(tuple, desc, "sequence"));
	env->correlation_id = TextDatumGetCString(required_column(tuple, desc, "correlation_id"));
	d = receipt_column(tuple, desc, "causation_id", &isnull);
	env->has_causation = !isnull;
	if (!isnull)
		env->causation_id = *DatumGetUUIDP(d);
	env->advertiser_id = TextDatumGetCString(required_column(tuple, desc, "advertiser_id"));
	env->aggregate_id = TextDatumGetCString(required_column(tuple, desc, "aggregate_id"));
	env->aggregate_type = TextDatumGetCString(required_column(tuple, desc, "aggregate_type"));
	r->payload = DatumGetJsonbP(required_column(tuple, desc, "payload"));
	r->payload_hash = DatumGetByteaPP(required_column(tuple, desc, "payload_hash"));
	copy_hash(r->payload_hash, env->payload_hash);
	d = receipt_column(tuple, desc, "signature", &isnull);
	r->signature = isnull ? NULL : DatumGetByteaPP(d);
	env->trace_id = *DatumGetFpTraceId(required_column(tuple, desc, "trace_id"));
	env->span_id = *DatumGetFpSpanId(required_column(tuple, desc, "span_id"));
	r->prev_hash = DatumGetByteaPP(required_column(tuple, desc, "prev_hash"));
	copy_hash(r->prev_hash, env->prev_hash);
	r->receipt_hash = DatumGetByteaPP(required_column(tuple, desc, "receipt_hash"));
	d = receipt_column(tuple, desc, "key_id", &isnull);
	env->key_id = isnull ? NULL : TextDatumGetCString(d);
}

/*
 * A bytea Datum holding len bytes.
 */
Datum
fp_attribution_bytea_datum(const uint8 *bytes, int len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), bytes, len);
	return PointerGetDatum(b);
}

/* The receipts columns in order, and the parameters that fill them */
#define RECEIPT_COLUMNS \
	"receipt_id, \"timestamp\", sequence, correlation_id, causation_id," \
	" aggregate_id, aggregate_type, payload, payload_hash, signature," \
	" trace_id, span_id, prev_hash, receipt_hash, key_id, advertiser_id"
#define RECEIPT_VALUES \
	"$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::attribution.trace_id," \
	" $12::attribution.span_id, $13, $14, $15, $16"
#define RECEIPT_NPARAMS 16

/*
 * Prepare the saved plans on first use.  Plans survive DROP/CREATE
 * EXTENSION in a session because the plan cache re-resolves every name;
 * that is also why the trace and span ids are passed as text and cast in
 * the statement, rather than as parameters of our types' (changing) OIDs.
 */
static void
prepare_plans(void)
{
	Oid			receipt_types[RECEIPT_NPARAMS] = {UUIDOID, TIMESTAMPTZOID,
		INT8OID, TEXTOID, UUIDOID, TEXTOID, TEXTOID, JSONBOID, BYTEAOID,
	BYTEAOID, TEXTOID, TEXTOID, BYTEAOID, BYTEAOID, TEXTOID, TEXTOID};

	if (start_plan != NULL)
		return;

	lock_plan = fp_attribution_keep_plan("SELECT last_sequence, last_hash, ctid FROM attribution.receipt_streams"
										 " WHERE advertiser_id OPERATOR(pg_catalog.=) $1"
										 " AND aggregate_type OPERATOR(pg_catalog.=) $2"
										 " AND aggregate_id OPERATOR(pg_catalog.=) $3 FOR UPDATE",
										 3, (Oid[]) {TEXTOID, TEXTOID, TEXTOID});
	cause_plan = fp_attribution_keep_plan("SELECT r.receipt_id FROM attribution.receipts r"
										  " WHERE r.advertiser_id OPERATOR(pg_catalog.=) $1"
										  " AND r.aggregate_type OPERATOR(pg_catalog.=) 'click'"
										  " AND r.aggregate_id OPERATOR(pg_catalog.=) $2"
										  " AND r.sequence OPERATOR(pg_catalog.=) 1",
										  2, (Oid[]) {TEXTOID, TEXTOID});
	key_plan = fp_attribution_keep_plan("INSERT INTO attribution.signing_keys"
										" (advertiser_id, key_id, algorithm, public_key, public_key_pem)"
										" VALUES ($1, $2, 'ed25519', $3, $4)"
										" ON CONFLICT (advertiser_id, key_id) DO NOTHING",
										4, (Oid[]) {TEXTOID, TEXTOID, BYTEAOID, TEXTOID});
	advance_plan = fp_attribution_keep_plan("UPDATE attribution.receipt_streams"
											" SET last_sequence = $5, last_hash = $6"
											" WHERE ctid OPERATOR(pg_catalog.=) $1"
											" AND advertiser_id OPERATOR(pg_catalog.=) $2"
											" AND aggregate_type OPERATOR(pg_catalog.=) $3"
											" AND aggregate_id OPERATOR(pg_catalog.=) $4"
											" RETURNING ctid",
											6, (Oid[]) {TIDOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, BYTEAOID});
	/* the receipt, and its row in the log's queue (log.h); the second for a waiting command */
	insert_plan = fp_attribution_keep_plan(FP_LOG_ENQUEUE_CTE("$16", "$1", "$14", "$2")
										   "INSERT INTO attribution.receipts (" RECEIPT_COLUMNS ")"
										   " VALUES (" RECEIPT_VALUES ")",
										   RECEIPT_NPARAMS, receipt_types);
	insert_returning_plan = fp_attribution_keep_plan(FP_LOG_ENQUEUE_CTE("$16", "$1", "$14", "$2")
													 "INSERT INTO attribution.receipts (" RECEIPT_COLUMNS ")"
													 " VALUES (" RECEIPT_VALUES ") RETURNING *",
													 RECEIPT_NPARAMS, receipt_types);
	start_plan = fp_attribution_keep_plan("INSERT INTO attribution.receipt_streams"
										  " (advertiser_id, aggregate_type, aggregate_id, last_sequence, last_hash)"
										  " VALUES ($1, $2, $3, $4, $5)"
										  " ON CONFLICT (advertiser_id, aggregate_type, aggregate_id) DO NOTHING"
										  " RETURNING ctid",
										  5, (Oid[]) {TEXTOID, TEXTOID, TEXTOID, INT8OID, BYTEAOID});
	/* the one receipt of a row's chain that has no head yet */
	tail_plan = fp_attribution_keep_plan("SELECT sequence, receipt_hash FROM attribution.receipts"
										 " WHERE advertiser_id OPERATOR(pg_catalog.=) $1"
										 " AND aggregate_type OPERATOR(pg_catalog.=) $2"
										 " AND aggregate_id OPERATOR(pg_catalog.=) $3"
										 " ORDER BY sequence DESC LIMIT 1",
										 3, (Oid[]) {TEXTOID, TEXTOID, TEXTOID});
}

/*
 * Record the signing key's public half in attribution.signing_keys for the
 * receipt's advertiser (a write to the receipt's own shard group once the
 * tables are distributed).  Done for every signed receipt, in the
 * receipt's own (sub)transaction: a registration remembered across
 * statements could have been rolled back to a savepoint since, leaving a
 * committed receipt whose key is missing.  Once the key is committed the
 * ON CONFLICT check is one index probe.
 */
static void
register_signing_key(const FpSigningKey *key, Datum advertiser_id)
{
	Datum		values[4];
	int			rc;

	values[0] = advertiser_id;
	values[1] = CStringGetTextDatum(key->key_id);
	values[2] = fp_attribution_bytea_datum(key->public_key, FP_ED25519_PUBLIC_KEY_LEN);
	values[3] = CStringGetTextDatum(key->public_key_pem);
	rc = SPI_execute_plan(key_plan, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not register signing key: %s",
			 SPI_result_code_string(rc));
}

/*
 * The receipt of the click a conversion names, if that click has one.
 */
static bool
find_click_receipt(const char *advertiser_id, const char *click_id,
				   pg_uuid_t *out)
{
	Datum		args[2];
	bool		isnull;
	int			rc;

	args[0] = CStringGetTextDatum(advertiser_id);
	args[1] = CStringGetTextDatum(click_id);
	rc = SPI_execute_plan(cause_plan, args, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not look up click receipt: %s",
			 SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return false;
	*out = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0],
										SPI_tuptable->tupdesc, 1, &isnull));
	return true;
}

/*
 * The key of the chain's entry in the head cache; false if it does not fit.
 */
static bool
head_key(const FpReceiptEnvelope *env, HeadKey *key)
{
	if (strlen(env->advertiser_id) >= sizeof(key->advertiser_id) ||
		strlen(env->aggregate_type) >= sizeof(key->aggregate_type) ||
		strlen(env->aggregate_id) >= sizeof(key->aggregate_id))
		return false;
	memset(key, 0, sizeof(*key));
	strcpy(key->advertiser_id, env->advertiser_id);
	strcpy(key->aggregate_type, env->aggregate_type);
	strcpy(key->aggregate_id, env->aggregate_id);
	return true;
}

/*
 * The head this transaction last wrote for the chain, or NULL.
 */
static HeadEntry *
head_cache_find(const FpReceiptEnvelope *env)
{
	HeadKey		key;

	if (head_cache == NULL || head_cache_lxid != MyProc->lxid ||
		!head_key(env, &key))
		return NULL;
	return hash_search(head_cache, &key, HASH_FIND, NULL);
}

/*
 * Remember the head just written (version tid) for the next append.
 */
static void
head_cache_store(const FpReceiptEnvelope *env, const uint8 *receipt_hash,
				 ItemPointer tid)
{
	HeadKey		key;
	HeadEntry  *entry;
	bool		found;

	if (!head_key(env, &key))
		return;
	if (head_cache == NULL || head_cache_lxid != MyProc->lxid)
	{
		HASHCTL		ctl;

		/* the previous transaction's table went with its context */
		ctl.keysize = sizeof(HeadKey);
		ctl.entrysize = sizeof(HeadEntry);
		ctl.hcxt = TopTransactionContext;
		head_cache = hash_create("fp_attribution receipt heads", 64, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		head_cache_lxid = MyProc->lxid;
	}
	if (hash_get_num_entries(head_cache) >= HEAD_CACHE_MAX &&
		hash_search(head_cache, &key, HASH_FIND, NULL) == NULL)
		return;
	entry = hash_search(head_cache, &key, HASH_ENTER, &found);
	entry->last_sequence = env->sequence;
	memcpy(entry->last_hash, receipt_hash, FP_SHA256_LEN);
	entry->tid = *tid;
}

/*
 * Forget the chain's head (its version is no longer the visible one).
 */
static void
head_cache_forget(const FpReceiptEnvelope *env)
{
	HeadKey		key;

	if (head_key(env, &key))
		hash_search(head_cache, &key, HASH_REMOVE, NULL);
}

/*
 * Wait for the receipt of the chain (aggregate_type, aggregate_id) of
 * advertiser_id: the next receipt write_receipt writes for it is copied
 * into cxt and handed out by fp_attribution_caught_receipt().  The strings
 * must live until then.  For the commands, which return the receipt of the
 * row they insert.
 */
void
fp_attribution_catch_receipt(const char *advertiser_id,
							 const char *aggregate_type,
							 const char *aggregate_id, MemoryContext cxt)
{
	catch_advertiser_id = advertiser_id;
	catch_aggregate_type = aggregate_type;
	catch_aggregate_id = aggregate_id;
	caught_receipt = NULL;
	catch_cxt = cxt;
}

/*
 * The receipt caught since fp_attribution_catch_receipt(), or NULL; stops
 * waiting.  Its columns are those of attribution.receipts, in order.
 */
HeapTuple
fp_attribution_caught_receipt(void)
{
	HeapTuple	result = caught_receipt;

	catch_cxt = NULL;
	caught_receipt = NULL;
	return result;
}

/*
 * Whether a command waits for the receipt env is about to get.
 */
static bool
receipt_awaited(const FpReceiptEnvelope *env)
{
	return catch_cxt != NULL && caught_receipt == NULL &&
		strcmp(env->aggregate_id, catch_aggregate_id) == 0 &&
		strcmp(env->aggregate_type, catch_aggregate_type) == 0 &&
		strcmp(env->advertiser_id, catch_advertiser_id) == 0;
}

/*
 * INSERT the receipt row (values and nulls in RECEIPT_COLUMNS order); with
 * catch, keep a copy of the row as written for the waiting command.
 */
static void
write_receipt_row(Datum *values, const char *nulls, bool catch)
{
	MemoryContext old;
	int			rc;

	if (!catch)
	{
		rc = SPI_execute_plan(insert_plan, values, nulls, false, 0);
		if (rc != SPI_OK_INSERT)
			elog(ERROR, "could not write receipt: %s",
				 SPI_result_code_string(rc));
		return;
	}
	rc = SPI_execute_plan(insert_returning_plan, values, nulls, false, 1);
	if (rc != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "could not write receipt: %s",
			 SPI_result_code_string(rc));
	old = MemoryContextSwitchTo(catch_cxt);
	caught_receipt = heap_copytuple(SPI_tuptable->vals[0]);
	MemoryContextSwitchTo(old);
	SPI_freetuptable(SPI_tuptable);
}

/*
 * Where a chain without a head continues: after its one receipt, if it is
 * a row's chain (see the file header), else at sequence 1.
 */
static void
headless_tail(Datum *key_args, FpReceiptEnvelope *env)
{
	bool		isnull;
	int			rc;

	rc = SPI_execute_plan(tail_plan, key_args, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read receipt chain: %s",
			 SPI_result_code_string(rc));
	if (SPI_processed == 1)
	{
		HeapTuple	tail = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		env->sequence = DatumGetInt64(SPI_getbinval(tail, desc, 1, &isnull)) + 1;
		copy_hash(DatumGetByteaPP(SPI_getbinval(tail, desc, 2, &isnull)),
				  env->prev_hash);
	}
	else
	{
		env->sequence = 1;
		memset(env->prev_hash, 0, FP_SHA256_LEN);
	}
	SPI_freetuptable(SPI_tuptable);
}

/*
 * Hash (and sign, with key) the receipt env, whose sequence and prev_hash
 * are set, and put sequence, hashes and signature into the INSERT's
 * values.
 */
static void
seal_receipt(FpReceiptEnvelope *env, const FpSigningKey *key, Datum *values,
			 uint8 *receipt_hash, uint8 *signature)
{
	StringInfoData envelope;

	initStringInfo(&envelope);
	if (!fp_attribution_receipt_envelope(&envelope, env))
		elog(ERROR, "receipt timestamp out of range");
	fp_attribution_sha256(envelope.data, envelope.len, receipt_hash);
	pfree(envelope.data);
	if (key != NULL)
	{
		fp_attribution_sign(receipt_hash, FP_SHA256_LEN, signature);
		values[9] = fp_attribution_bytea_datum(signature, FP_ED25519_SIGNATURE_LEN);
	}
	values[2] = Int64GetDatum(env->sequence);
	values[12] = fp_attribution_bytea_datum(env->prev_hash, FP_SHA256_LEN);
	values[13] = fp_attribution_bytea_datum(receipt_hash, FP_SHA256_LEN);
}

/*
 * Append one receipt to the chain of (aggregate_type, aggregate_id), see
 * the protocol in the file header.  Caller is connected to SPI and has
 * set up env's aggregate, payload_hash, causation, trace and span; this
 * fills in the rest.  If cause_click_id is not NULL, the causation is the
 * receipt of that click, if it has one.  row_created: env is the first
 * receipt of the row just inserted, whose chain is new and gets no head.
 * With catch, the receipt is kept for the command waiting for it.  The
 * statements run as owner.
 */
static void
append_receipt(FpReceiptEnvelope *env, Jsonb *payload, Oid owner,
			   const char *cause_click_id, bool row_created, bool catch)
{
	Oid			save_userid;
	int			save_sec_context;
	Datum		values[RECEIPT_NPARAMS];
	char		nulls[RECEIPT_NPARAMS];
	bool		isnull;
	uint8		receipt_hash[FP_SHA256_LEN];
	uint8		signature[FP_ED25519_SIGNATURE_LEN];
	const FpSigningKey *key = NULL;
	char		trace_hex[2 * FP_TRACE_ID_LEN + 1];
	char		span_hex[2 * FP_SPAN_ID_LEN + 1];
	bool		written = false;
	int			rc;

	prepare_plans();
	if (fp_attribution_sign_receipts)
		key = fp_attribution_signing_key();

	if (!pg_strong_random(env->receipt_id.data, UUID_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random receipt id")));
	env->receipt_id.data[6] = (env->receipt_id.data[6] & 0x0f) | 0x40;
	env->receipt_id.data[8] = (env->receipt_id.data[8] & 0x3f) | 0x80;
	env->timestamp = GetCurrentTimestamp();
	fp_attribution_hex_encode(env->trace_id.bytes, FP_TRACE_ID_LEN, trace_hex);
	fp_attribution_hex_encode(env->span_id.bytes, FP_SPAN_ID_LEN, span_hex);
	if (fp_attribution_correlation_id[0] != '\0')
		env->correlation_id = fp_attribution_correlation_id;
	else
		env->correlation_id = trace_hex;
	env->key_id = key != NULL ? key->key_id : NULL;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_NOFORCE_RLS);
	if (cause_click_id != NULL)
		env->has_causation = find_click_receipt(env->advertiser_id,
												cause_click_id,
												&env->causation_id);

	/* everything but sequence, hashes and signature, in column order */
	memset(nulls, ' ', sizeof(nulls));
	values[0] = UUIDPGetDatum(&env->receipt_id);
	values[1] = TimestampTzGetDatum(env->timestamp);
	values[3] = CStringGetTextDatum(env->correlation_id);
	if (env->has_causation)
		values[4] = UUIDPGetDatum(&env->causation_id);
	else
		nulls[4] = 'n';
	values[5] = CStringGetTextDatum(env->aggregate_id);
	values[6] = CStringGetTextDatum(env->aggregate_type);
	values[7] = JsonbPGetDatum(payload);
	values[8] = fp_attribution_bytea_datum(env->payload_hash, FP_SHA256_LEN);
	if (key != NULL)
		values[14] = CStringGetTextDatum(key->key_id);
	else
		nulls[9] = nulls[14] = 'n';
	values[10] = CStringGetTextDatum(trace_hex);
	values[11] = CStringGetTextDatum(span_hex);
	values[15] = CStringGetTextDatum(env->advertiser_id);

	/*
	 * A lost race to create the head starts over, once; so does an append
	 * whose remembered head is no longer visible
	 */
	for (int races = 0; !written;)
	{
		Datum		key_args[3] = {values[15], values[6], values[5]};
		HeadEntry  *cached = head_cache_find(env);
		ItemPointerData head_tid;
		bool		chain_exists;

		if (races == 2)
			elog(ERROR, "could not append receipt to %s \"%s\" of advertiser \"%s\"",
				 env->aggregate_type, env->aggregate_id, env->advertiser_id);

		if (row_created)
		{
			/* a row's first receipt: no head (see the file header) */
			env->sequence = 1;
			memset(env->prev_hash, 0, FP_SHA256_LEN);
			seal_receipt(env, key, values, receipt_hash, signature);
			write_receipt_row(values, nulls, catch);
			break;
		}
		if (cached != NULL)
		{
			chain_exists = true;
			env->sequence = cached->last_sequence + 1;
			memcpy(env->prev_hash, cached->last_hash, FP_SHA256_LEN);
			head_tid = cached->tid;
		}
		else
		{
			rc = SPI_execute_plan(lock_plan, key_args, NULL, false, 1);
			if (rc != SPI_OK_SELECT)
				elog(ERROR, "could not lock receipt chain: %s",
					 SPI_result_code_string(rc));
			chain_exists = SPI_processed == 1;
			if (chain_exists)
			{
				HeapTuple	head = SPI_tuptable->vals[0];
				TupleDesc	desc = SPI_tuptable->tupdesc;

				env->sequence = DatumGetInt64(SPI_getbinval(head, desc, 1, &isnull)) + 1;
				copy_hash(DatumGetByteaPP(SPI_getbinval(head, desc, 2, &isnull)),
						  env->prev_hash);
				head_tid = *(ItemPointer) DatumGetPointer(SPI_getbinval(head, desc, 3, &isnull));
				SPI_freetuptable(SPI_tuptable);
			}
			else
			{
				SPI_freetuptable(SPI_tuptable);
				headless_tail(key_args, env);
			}
		}

		seal_receipt(env, key, values, receipt_hash, signature);

		if (chain_exists)
		{
			Datum		head_args[6] = {PointerGetDatum(&head_tid),
				values[15], values[6], values[5], values[2], values[13]};

			rc = SPI_execute_plan(advance_plan, head_args, NULL, false, 1);
			if (rc != SPI_OK_UPDATE_RETURNING)
				elog(ERROR, "could not advance receipt chain: %s",
					 SPI_result_code_string(rc));
			if (SPI_processed == 0)
			{
				/* locked above, so only a remembered head can be gone */
				if (cached == NULL)
					elog(ERROR, "locked receipt chain head vanished");
				head_cache_forget(env);
				continue;
			}
			head_tid = *(ItemPointer) DatumGetPointer(SPI_getbinval(SPI_tuptable->vals[0],
														  SPI_tuptable->tupdesc,
														  1, &isnull));
			SPI_freetuptable(SPI_tuptable);
			write_receipt_row(values, nulls, catch);
			head_cache_store(env, receipt_hash, &head_tid);
			written = true;
		}
		else
		{
			Datum		start_args[5] = {values[15], values[6], values[5],
				values[2], values[13]};

			rc = SPI_execute_plan(start_plan, start_args, NULL, false, 1);
			if (rc != SPI_OK_INSERT_RETURNING)
				elog(ERROR, "could not start receipt chain: %s",
					 SPI_result_code_string(rc));
			if (SPI_processed == 0)
			{
				races++;
				continue;
			}
			head_tid = *(ItemPointer) DatumGetPointer(SPI_getbinval(SPI_tuptable->vals[0],
														  SPI_tuptable->tupdesc,
														  1, &isnull));
			SPI_freetuptable(SPI_tuptable);
			write_receipt_row(values, nulls, catch);
			head_cache_store(env, receipt_hash, &head_tid);
			written = true;
		}
	}
	if (key != NULL)
		register_signing_key(key, values[15]);
	fp_attribution_postbacks_enqueue(env, payload);

	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/*
 * The text output of a Datum of type typid.  text and uuid, most of the
 * columns a receipt records, are written here without looking up their
 * output functions (the same text: a uuid's canonical form).
 */
static char *
datum_text(Datum d, Oid typid)
{
	Oid			output;
	bool		varlena;

	if (typid == TEXTOID)
		return TextDatumGetCString(d);
	if (typid == UUIDOID)
	{
		char	   *buf = palloc(37);

		fp_attribution_format_uuid(DatumGetUUIDP(d), buf);
		return buf;
	}
	getTypeOutputInfo(typid, &output, &varlena);
	return OidOutputFunctionCall(output, d);
}

/*
 * The payload value of one column, by type: NULL as null, booleans as
 * true/false, integers as numbers, timestamptz as RFC 3339 UTC strings,
 * intervals as a number of microseconds (a month counts 30 days), and
 * everything else as its text output (text, uuid, inet).
 */
static void
column_value(Datum d, bool isnull, Oid typid, JsonbValue *v)
{
	char		ts[FP_RFC3339_LEN + 1];

	if (isnull)
	{
		v->type = jbvNull;
		return;
	}
	switch (typid)
	{
		case BOOLOID:
			v->type = jbvBool;
			v->val.boolean = DatumGetBool(d);
			return;
		case INT2OID:
		case INT4OID:
		case INT8OID:
			v->type = jbvNumeric;
			v->val.numeric = int64_to_numeric(typid == INT8OID ? DatumGetInt64(d) :
											  typid == INT4OID ? DatumGetInt32(d) :
											  DatumGetInt16(d));
			return;
		case INTERVALOID:
			{
				Interval   *iv = DatumGetIntervalP(d);

				v->type = jbvNumeric;
				v->val.numeric = int64_to_numeric(iv->time +
												  ((int64) iv->month * DAYS_PER_MONTH + iv->day) * USECS_PER_DAY);
				return;
			}
		case TIMESTAMPTZOID:
			if (!fp_attribution_format_timestamp(DatumGetTimestampTz(d), ts))
				ereport(ERROR,
						(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
						 errmsg("timestamp out of range for a receipt"),
						 errdetail("Receipts record finite timestamps from year 1 to 9999.")));
			v->type = jbvString;
			v->val.string.val = pstrdup(ts);
			v->val.string.len = FP_RFC3339_LEN;
			return;
		default:
			v->type = jbvString;
			v->val.string.val = datum_text(d, typid);
			v->val.string.len = strlen(v->val.string.val);
			return;
	}
}

/*
 * The attribute number of column c of a row: from the table's map when
 * there is one, else by name in desc (a query result's row).
 */
static int
row_attnum(TupleDesc desc, const FpColumnMap *map, FpColumn c)
{
	int			attnum;

	if (map != NULL)
		return fp_attribution_required_column(map, c);
	attnum = SPI_fnumber(desc, fp_attribution_column_names[c]);
	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("the trigger's table has no column \"%s\"",
						fp_attribution_column_names[c])));
	return attnum;
}

/*
 * Column c of a row, of any type.
 */
static Datum
row_column(HeapTuple tuple, TupleDesc desc, const FpColumnMap *map,
		   FpColumn c, bool *isnull, Oid *typid)
{
	int			attnum = row_attnum(desc, map, c);

	*typid = TupleDescAttr(desc, attnum - 1)->atttypid;
	return heap_getattr(tuple, attnum, desc, isnull);
}

/*
 * A trace or span id column of the trigger's row, which the BEFORE INSERT
 * trigger has set (its type is checked by the map).
 */
static const void *
row_id_column(HeapTuple tuple, TupleDesc desc, const FpColumnMap *map,
			  FpColumn c)
{
	bool		isnull;
	Datum		d = heap_getattr(tuple, fp_attribution_required_column(map, c),
								 desc, &isnull);

	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", fp_attribution_column_names[c])));
	return DatumGetPointer(d);
}

/*
 * The spec of a built-in aggregate type, or NULL for a custom type.
 */
static const FpAggregateSpec *
find_spec(const char *aggregate_type)
{
	for (int i = 0; i < lengthof(aggregate_specs); i++)
		if (strcmp(aggregate_specs[i].aggregate_type, aggregate_type) == 0)
			return &aggregate_specs[i];
	return NULL;
}

/*
 * The table (in schema attribution) whose rows the built-in aggregate type
 * records, or NULL for a custom type.
 */
const char *
fp_attribution_aggregate_table(const char *aggregate_type)
{
	const FpAggregateSpec *spec = find_spec(aggregate_type);

	return spec != NULL ? spec->table : NULL;
}

/*
 * The payload of the creating event of a row of spec's type: the event
 * name and the spec's columns of the row (map: the table's, or NULL to
 * find them by name in desc).
 */
static Jsonb *
row_payload(const FpAggregateSpec *spec, HeapTuple tuple, TupleDesc desc,
			const FpColumnMap *map)
{
	JsonbParseState *state = NULL;
	JsonbValue	key;
	JsonbValue	val;
	JsonbValue *result;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	key.type = jbvString;
	key.val.string.val = "event";
	key.val.string.len = strlen("event");
	val.type = jbvString;
	val.val.string.val = (char *) spec->event;
	val.val.string.len = strlen(spec->event);
	pushJsonbValue(&state, WJB_KEY, &key);
	pushJsonbValue(&state, WJB_VALUE, &val);
	for (int i = 0; spec->columns[i] != FP_NUM_COLUMNS; i++)
	{
		FpColumn	c = spec->columns[i];
		bool		isnull;
		Oid			typid;
		Datum		d = row_column(tuple, desc, map, c, &isnull, &typid);

		/* the fraud rules' reason is there only when set (fraud_rules.c) */
		if (isnull && c == FP_COL_REVIEW_REASON)
			continue;
		key.val.string.val = (char *) fp_attribution_column_names[c];
		key.val.string.len = strlen(fp_attribution_column_names[c]);
		column_value(d, isnull, typid, &val);
		pushJsonbValue(&state, WJB_KEY, &key);
		pushJsonbValue(&state, WJB_VALUE, &val);
	}
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(result);
}

/*
 * The payload of the creating event of a row of a built-in aggregate
 * type's table: {"event": spec->event, column: value, ...}.  The row may
 * carry other columns too (verification reads it with its key first).
 */
Jsonb *
fp_attribution_row_payload(const char *aggregate_type, HeapTuple tuple,
						   TupleDesc desc)
{
	const FpAggregateSpec *spec = find_spec(aggregate_type);

	if (spec == NULL)
		elog(ERROR, "\"%s\" is not a built-in aggregate type", aggregate_type);
	return row_payload(spec, tuple, desc, NULL);
}

/*
 * Hash the payload into env, raising the documented error for a number
 * JCS cannot represent.
 */
static void
hash_payload(Jsonb *payload, FpReceiptEnvelope *env)
{
	const char *bad_number = NULL;

	if (!fp_attribution_payload_hash(payload, env->payload_hash, &bad_number))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("number %.40s%s cannot be represented in canonical JSON",
						bad_number, strlen(bad_number) > 40 ? "..." : ""),
				 errdetail("A receipt payload holds each number as RFC 8785 writes it (the IEEE 754 double as ECMAScript prints it), so that its hash pins the stored value."),
				 errhint("Keep money in integer minor units below 2^53, or pass the number as a string.")));
}

/*
 * attribution.write_receipt(aggregate_type) AFTER INSERT row trigger
 *
 * Appends the receipt of the inserted row's creating event to the chain
 * of (advertiser_id, aggregate_type, aggregate_id); the argument selects
 * the aggregate spec above.  It reads the row's columns by name, never
 * the table's name, so it works the same on a copy of the table under
 * another name (a shard of a distributed table); a table lacking a column
 * is refused.  EXECUTE is revoked from PUBLIC, so only the extension's
 * owner can attach it to a table.
 */
PG_FUNCTION_INFO_V1(fp_attribution_write_receipt);
Datum
fp_attribution_write_receipt(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	const FpAggregateSpec *spec = NULL;
	FpReceiptEnvelope env;
	HeapTuple	tuple;
	TupleDesc	desc;
	const FpColumnMap *map;
	Jsonb	   *payload;
	bool		isnull;
	Oid			typid;
	Datum		d;
	char	   *cause_click_id = NULL;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ||
		trigdata->tg_trigger->tgnargs != 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("write_receipt must be an AFTER INSERT FOR EACH ROW trigger with one argument")));
	spec = find_spec(trigdata->tg_trigger->tgargs[0]);
	if (spec == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown aggregate type \"%s\"",
						trigdata->tg_trigger->tgargs[0])));

	/* A restore brings the row's receipt along (row_guard.c) */
	if (fp_attribution_restoring(trigdata->tg_relation->rd_rel->relowner))
		return PointerGetDatum(NULL);

	tuple = trigdata->tg_trigtuple;
	desc = RelationGetDescr(trigdata->tg_relation);
	map = fp_attribution_column_map(trigdata->tg_relation, spec->table_kind);
	memset(&env, 0, sizeof(env));
	env.aggregate_type = spec->aggregate_type;
	d = row_column(tuple, desc, map, FP_COL_ADVERTISER_ID, &isnull, &typid);
	env.advertiser_id = datum_text(d, typid);
	d = row_column(tuple, desc, map, spec->id_column, &isnull, &typid);
	env.aggregate_id = datum_text(d, typid);
	memcpy(&env.trace_id, row_id_column(tuple, desc, map, FP_COL_TRACE_ID),
		   FP_TRACE_ID_LEN);
	memcpy(&env.span_id, row_id_column(tuple, desc, map, FP_COL_SPAN_ID),
		   FP_SPAN_ID_LEN);
	payload = row_payload(spec, tuple, desc, map);
	hash_payload(payload, &env);

	if (spec->cause_column != FP_NUM_COLUMNS)
	{
		d = row_column(tuple, desc, map, spec->cause_column, &isnull, &typid);
		if (!isnull)
			cause_click_id = datum_text(d, typid);
	}

	SPI_connect();
	append_receipt(&env, payload, trigdata->tg_relation->rd_rel->relowner,
				   cause_click_id, true, receipt_awaited(&env));
	SPI_finish();
	return PointerGetDatum(NULL);
}

/*
 * Append the receipt of a change to a row of a built-in aggregate type
 * (lifecycle.c, late_clicks.c) to the row's chain.  Caller is connected
 * to SPI and has set up env's advertiser, aggregate, causation, trace and
 * span; this hashes the payload and fills in the rest.  The statements
 * run as owner.
 */
void
fp_attribution_append_row_event(FpReceiptEnvelope *env, Jsonb *payload,
								Oid owner)
{
	hash_payload(payload, env);
	append_receipt(env, payload, owner, NULL, false, false);
}

/*
 * attribution.append_receipt(aggregate_type text, aggregate_id text,
 *							  payload jsonb, causation_id uuid,
 *							  advertiser_id text)
 *	  returns attribution.receipts
 *
 * The building block for commands beyond the built-in ones: appends a
 * receipt for payload to the chain of the advertiser's aggregate, in the
 * trace context of a new command span.  The built-in types are refused
 * for every role.  The append runs as the extension's owner, who created
 * (and owns) its tables, as the commands do.  Revoked from PUBLIC by the
 * install script.
 */
PG_FUNCTION_INFO_V1(fp_attribution_append_receipt);
Datum
fp_attribution_append_receipt(PG_FUNCTION_ARGS)
{
	FpReceiptEnvelope env;
	FpCommandContext ctx;
	Jsonb	   *payload;
	Datum		args[4];
	Datum		result;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("aggregate_type, aggregate_id and payload must not be null")));
	memset(&env, 0, sizeof(env));
	env.advertiser_id = text_to_cstring(fp_attribution_check_text("advertiser_id",
																  PG_ARGISNULL(4) ? NULL : PG_GETARG_TEXT_PP(4),
																  FP_ID_MAX_CHARS, true));
	env.aggregate_type = text_to_cstring(PG_GETARG_TEXT_PP(0));
	env.aggregate_id = text_to_cstring(PG_GETARG_TEXT_PP(1));
	payload = PG_GETARG_JSONB_P(2);

	/*
	 * A receipt of a built-in type is the record of a row; one appended
	 * here could pre-seed sequence 1 of a future click or order, or add to
	 * a row's history what no row says.  Only the triggers write them.
	 */
	if (find_spec(env.aggregate_type) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("aggregate type \"%s\" is reserved", env.aggregate_type),
				 errdetail("Receipts of clicks and conversions are written only by the extension's own commands, for the rows they write."),
				 errhint("Use an aggregate type of your own for a custom command.")));
	if (!PG_ARGISNULL(3))
	{
		env.has_causation = true;
		env.causation_id = *PG_GETARG_UUID_P(3);
	}
	fp_attribution_begin_command(NULL, NULL, &ctx);
	env.trace_id = ctx.trace_id;
	env.span_id = ctx.span_id;
	hash_payload(payload, &env);

	SPI_connect();
	append_receipt(&env, payload, fp_attribution_extension_owner(), NULL, false, false);
	args[0] = CStringGetTextDatum(env.advertiser_id);
	args[1] = CStringGetTextDatum(env.aggregate_type);
	args[2] = CStringGetTextDatum(env.aggregate_id);
	args[3] = Int64GetDatum(env.sequence);
	if (SPI_execute_with_args("SELECT r.* FROM attribution.receipts r"
							  " WHERE r.advertiser_id OPERATOR(pg_catalog.=) $1"
							  " AND r.aggregate_type OPERATOR(pg_catalog.=) $2"
							  " AND r.aggregate_id OPERATOR(pg_catalog.=) $3"
							  " AND r.sequence OPERATOR(pg_catalog.=) $4",
							  4, (Oid[]) {TEXTOID, TEXTOID, TEXTOID, INT8OID},
							  args, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not read back the new receipt");
	result = PointerGetDatum(SPI_returntuple(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc));
	SPI_finish();
	PG_RETURN_DATUM(result);
}

/*
 * attribution.canonical_json(jsonb) returns text
 *
 * The RFC 8785 form of a document, exactly the bytes payload_hash covers.
 */
PG_FUNCTION_INFO_V1(fp_attribution_canonical_json);
Datum
fp_attribution_canonical_json(PG_FUNCTION_ARGS)
{
	Jsonb	   *jb = PG_GETARG_JSONB_P(0);
	StringInfoData buf;
	const char *bad_number = NULL;

	initStringInfo(&buf);
	if (!fp_attribution_jcs_append_jsonb(&buf, &jb->root, false, &bad_number))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("number %.40s%s cannot be represented in canonical JSON",
						bad_number, strlen(bad_number) > 40 ? "..." : ""),
				 errdetail("RFC 8785 writes numbers as IEEE 754 doubles; this value is beyond their range.")));
	PG_RETURN_TEXT_P(cstring_to_text_with_len(buf.data, buf.len));
}

/*
 * attribution.receipt_envelope(attribution.receipts) returns text
 *
 * The canonical envelope of a receipt row as stored (its payload_hash
 * taken as is), exactly the bytes receipt_hash covers.
 */
PG_FUNCTION_INFO_V1(fp_attribution_receipt_envelope_sql);
Datum
fp_attribution_receipt_envelope_sql(PG_FUNCTION_ARGS)
{
	HeapTupleHeader rec = PG_GETARG_HEAPTUPLEHEADER(0);
	TupleDesc	desc;
	HeapTupleData tuple;
	FpStoredReceipt r;
	StringInfoData buf;

	desc = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(rec),
								  HeapTupleHeaderGetTypMod(rec));
	tuple.t_len = HeapTupleHeaderGetDatumLength(rec);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = rec;
	fp_attribution_receipt_from_tuple(&tuple, desc, &r);
	ReleaseTupleDesc(desc);

	initStringInfo(&buf);
	if (!fp_attribution_receipt_envelope(&buf, &r.env))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range for a receipt")));
	PG_RETURN_TEXT_P(cstring_to_text_with_len(buf.data, buf.len));
}

/*
 * Refuse op (UPDATE, DELETE or TRUNCATE) on the extension's table (its
 * logical name: a shard or copy of the table has another).  42501 is also
 * what a role without the (revoked) privilege gets, so clients see one
 * SQLSTATE for "receipts cannot be changed" whoever they are.
 */
void
fp_attribution_refuse_change(const char *table, const char *op)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("table \"%s\" is append-only", table),
			 errdetail("%s is not allowed on it.", op),
			 errhint("Receipts prove what happened; record a correcting command instead.")));
}

/*
 * attribution.append_only(table) trigger
 *
 * BEFORE UPDATE OR DELETE OR TRUNCATE (statement) on attribution.receipts,
 * signing_keys and clicks, BEFORE DELETE OR TRUNCATE on conversions (whose
 * UPDATE the lifecycle's row trigger guards, src/commands/lifecycle.c):
 * always refuses, naming the table by its argument.  A superuser can
 * still disable the trigger; verification is what catches that.
 */
PG_FUNCTION_INFO_V1(fp_attribution_append_only);
Datum
fp_attribution_append_only(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	const char *op = "UPDATE";

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("append_only must be called as a trigger")));
	if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		op = "DELETE";
	else if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		op = "TRUNCATE";
	fp_attribution_refuse_change(trigdata->tg_trigger->tgnargs == 1 ?
								 trigdata->tg_trigger->tgargs[0] :
								 RelationGetRelationName(trigdata->tg_relation),
								 op);
	PG_RETURN_NULL();			/* keep compiler quiet */
}
