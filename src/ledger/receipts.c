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
 * receipt is sequence 1 with no statement but its INSERT, and that INSERT
 * is shared: the receipts of all the rows a statement inserts are
 * collected and written when it ends, with one INSERT ... SELECT FROM
 * unnest() (statement_batch.c), except the one a command waits for.
 * Every other append, and the lookup of a causing click's receipt, writes
 * the collected receipts first.  The first
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
#include "fp_attribution/random_uuid.h"
#include "fp_attribution/receipts.h"
#include "fp_attribution/row_guard.h"
#include "fp_attribution/spi_plans.h"
#include "fp_attribution/statement_batch.h"
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
	int			event_at;		/* "event" goes before columns[event_at] */
} FpAggregateSpec;

/*
 * The payload's columns in JCS order (their names' bytes), "event" at
 * event_at: a row's payload is then written already sorted, which the
 * JCS writer's sort checks in one pass (verify_all hashes every row).
 */

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
	FP_COL_REVENUE_CENTS, FP_COL_REVIEW_REASON, FP_COL_STATUS,
	FP_COL_UNATTRIBUTED_REASON, FP_COL_VISITOR_ID, FP_NUM_COLUMNS
};

static const FpAggregateSpec aggregate_specs[] = {
	{"click", "clicks", FP_TABLE_CLICKS, "click_tracked", FP_COL_CLICK_ID,
	FP_NUM_COLUMNS, click_columns, 4},
	{"conversion", "conversions", FP_TABLE_CONVERSIONS, "conversion_tracked",
	FP_COL_ORDER_ID, FP_COL_CLICK_ID, conversion_columns, 8},
};

/* Saved plans, prepared on first use in each backend */
static SPIPlanPtr insert_batch_plan = NULL;

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

/* The columns of a receipts row, in the table's order */
typedef enum ReceiptColumn
{
	RC_ADVERTISER_ID,
	RC_RECEIPT_ID,
	RC_TIMESTAMP,
	RC_SEQUENCE,
	RC_CORRELATION_ID,
	RC_CAUSATION_ID,
	RC_AGGREGATE_ID,
	RC_AGGREGATE_TYPE,
	RC_PAYLOAD,
	RC_PAYLOAD_HASH,
	RC_SIGNATURE,
	RC_TRACE_ID,
	RC_SPAN_ID,
	RC_PREV_HASH,
	RC_RECEIPT_HASH,
	RC_KEY_ID,
	RC_COUNT
} ReceiptColumn;

static const char *const receipt_column_names[RC_COUNT] = {
	"advertiser_id", "receipt_id", "timestamp", "sequence", "correlation_id",
	"causation_id", "aggregate_id", "aggregate_type", "payload", "payload_hash",
	"signature", "trace_id", "span_id", "prev_hash", "receipt_hash", "key_id"
};

/*
 * A receipts row (any tuple with its column names), deformed once, and
 * where each column is in it.  Verification reads every receipt of a
 * table this way, all with one descriptor: looking each column up by
 * name and fetching it on its own cost more than hashing the receipt.
 */
typedef struct ReceiptRow
{
	Datum	   *values;
	bool	   *nulls;
	int			attnum[RC_COUNT];
} ReceiptRow;

/* The attribute numbers found for the last descriptor, to try first */
static int	last_attnum[RC_COUNT];

static void
receipt_row(HeapTuple tuple, TupleDesc desc, ReceiptRow *row)
{
	for (int c = 0; c < RC_COUNT; c++)
	{
		int			attnum = last_attnum[c];

		if (attnum <= 0 || attnum > desc->natts ||
			TupleDescAttr(desc, attnum - 1)->attisdropped ||
			strcmp(NameStr(TupleDescAttr(desc, attnum - 1)->attname),
				   receipt_column_names[c]) != 0)
		{
			attnum = SPI_fnumber(desc, receipt_column_names[c]);
			if (attnum <= 0)
				elog(ERROR, "receipt column \"%s\" not found",
					 receipt_column_names[c]);
			last_attnum[c] = attnum;
		}
		row->attnum[c] = attnum;
	}
	row->values = palloc(desc->natts * sizeof(Datum));
	row->nulls = palloc(desc->natts * sizeof(bool));
	heap_deform_tuple(tuple, desc, row->values, row->nulls);
}

/*
 * A column of a receipts row; *isnull tells SQL NULL.
 */
static Datum
receipt_column(const ReceiptRow *row, ReceiptColumn c, bool *isnull)
{
	*isnull = row->nulls[row->attnum[c] - 1];
	return row->values[row->attnum[c] - 1];
}

/*
 * A NOT NULL column of a receipts row.  A stored row always has one, but
 * a row built in SQL (ROW(...)::attribution.receipts) need not.
 */
static Datum
required_column(const ReceiptRow *row, ReceiptColumn c)
{
	bool		isnull;
	Datum		d = receipt_column(row, c, &isnull);

	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("receipt column \"%s\" must not be null",
						receipt_column_names[c])));
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
	ReceiptRow	row;
	bool		isnull;
	Datum		d;

	receipt_row(tuple, desc, &row);
	memset(r, 0, sizeof(*r));
	env->receipt_id = *DatumGetUUIDP(required_column(&row, RC_RECEIPT_ID));
	env->timestamp = DatumGetTimestampTz(required_column(&row, RC_TIMESTAMP));
	env->sequence = DatumGetInt64(required_column(&row, RC_SEQUENCE));
	env->correlation_id = TextDatumGetCString(required_column(&row, RC_CORRELATION_ID));
	d = receipt_column(&row, RC_CAUSATION_ID, &isnull);
	env->has_causation = !isnull;
	if (!isnull)
		env->causation_id = *DatumGetUUIDP(d);
	env->advertiser_id = TextDatumGetCString(required_column(&row, RC_ADVERTISER_ID));
	env->aggregate_id = TextDatumGetCString(required_column(&row, RC_AGGREGATE_ID));
	env->aggregate_type = TextDatumGetCString(required_column(&row, RC_AGGREGATE_TYPE));
	r->payload = DatumGetJsonbP(required_column(&row, RC_PAYLOAD));
	r->payload_hash = DatumGetByteaPP(required_column(&row, RC_PAYLOAD_HASH));
	copy_hash(r->payload_hash, env->payload_hash);
	d = receipt_column(&row, RC_SIGNATURE, &isnull);
	r->signature = isnull ? NULL : DatumGetByteaPP(d);
	env->trace_id = *DatumGetFpTraceId(required_column(&row, RC_TRACE_ID));
	env->span_id = *DatumGetFpSpanId(required_column(&row, RC_SPAN_ID));
	r->prev_hash = DatumGetByteaPP(required_column(&row, RC_PREV_HASH));
	copy_hash(r->prev_hash, env->prev_hash);
	r->receipt_hash = DatumGetByteaPP(required_column(&row, RC_RECEIPT_HASH));
	d = receipt_column(&row, RC_KEY_ID, &isnull);
	env->key_id = isnull ? NULL : TextDatumGetCString(d);
	pfree(row.values);
	pfree(row.nulls);
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

static const Oid receipt_types[RECEIPT_NPARAMS] = {UUIDOID, TIMESTAMPTZOID,
	INT8OID, TEXTOID, UUIDOID, TEXTOID, TEXTOID, JSONBOID, BYTEAOID,
BYTEAOID, TEXTOID, TEXTOID, BYTEAOID, BYTEAOID, TEXTOID, TEXTOID};

/*
 * Many receipts at once (write_receipts below): the RECEIPT_COLUMNS
 * parameters as arrays, one element per receipt, unnested once for the
 * receipts and once for the log's queue
 */
#define RECEIPT_ARRAYS \
	"pg_catalog.unnest($1::pg_catalog.uuid[]), pg_catalog.unnest($2::pg_catalog.timestamptz[])," \
	" pg_catalog.unnest($3::pg_catalog.int8[]), pg_catalog.unnest($4::pg_catalog.text[])," \
	" pg_catalog.unnest($5::pg_catalog.uuid[]), pg_catalog.unnest($6::pg_catalog.text[])," \
	" pg_catalog.unnest($7::pg_catalog.text[]), pg_catalog.unnest($8::pg_catalog.jsonb[])," \
	" pg_catalog.unnest($9::pg_catalog.bytea[]), pg_catalog.unnest($10::pg_catalog.bytea[])," \
	" pg_catalog.unnest($11::pg_catalog.text[]), pg_catalog.unnest($12::pg_catalog.text[])," \
	" pg_catalog.unnest($13::pg_catalog.bytea[]), pg_catalog.unnest($14::pg_catalog.bytea[])," \
	" pg_catalog.unnest($15::pg_catalog.text[]), pg_catalog.unnest($16::pg_catalog.text[])"
#define RECEIPT_UNNESTED \
	"r.receipt_id, r.ts, r.sequence, r.correlation_id, r.causation_id," \
	" r.aggregate_id, r.aggregate_type, r.payload, r.payload_hash, r.signature," \
	" r.trace_id::attribution.trace_id, r.span_id::attribution.span_id," \
	" r.prev_hash, r.receipt_hash, r.key_id, r.advertiser_id"

static void write_receipts(FpStatementBatch *batch);

/* The first receipts of rows inserted by the current statement */
static FpStatementBatch receipt_batch = {
	.what = "receipts",
	.ncolumns = RECEIPT_NPARAMS,
	.types = receipt_types,
	.flush = write_receipts,
};

/*
 * The statements, each prepared on first use per shard group of its
 * advertiser_id (spi_plans.c).  Plans survive DROP/CREATE EXTENSION in a
 * session because the plan cache re-resolves every name; that is also why
 * the trace and span ids are passed as text and cast in the statement,
 * rather than as parameters of our types' (changing) OIDs.
 */
static FpGroupPlan lock_plan = {
	.sql = "SELECT last_sequence, last_hash, ctid FROM attribution.receipt_streams"
		" WHERE advertiser_id OPERATOR(pg_catalog.=) $1"
		" AND aggregate_type OPERATOR(pg_catalog.=) $2"
		" AND aggregate_id OPERATOR(pg_catalog.=) $3 FOR UPDATE",
	.nargs = 3,
	.argtypes = (Oid[]) {TEXTOID, TEXTOID, TEXTOID}
};
static FpGroupPlan cause_plan = {
	.sql = "SELECT r.receipt_id FROM attribution.receipts r"
		" WHERE r.advertiser_id OPERATOR(pg_catalog.=) $1"
		" AND r.aggregate_type OPERATOR(pg_catalog.=) 'click'"
		" AND r.aggregate_id OPERATOR(pg_catalog.=) $2"
		" AND r.sequence OPERATOR(pg_catalog.=) 1",
	.nargs = 2,
	.argtypes = (Oid[]) {TEXTOID, TEXTOID}
};
static FpGroupPlan key_plan = {
	.sql = "INSERT INTO attribution.signing_keys"
		" (advertiser_id, key_id, algorithm, public_key, public_key_pem)"
		" VALUES ($1, $2, 'ed25519', $3, $4)"
		" ON CONFLICT (advertiser_id, key_id) DO NOTHING",
	.nargs = 4,
	.argtypes = (Oid[]) {TEXTOID, TEXTOID, BYTEAOID, TEXTOID}
};
static FpGroupPlan advance_plan = {
	.sql = "UPDATE attribution.receipt_streams"
		" SET last_sequence = $5, last_hash = $6"
		" WHERE ctid OPERATOR(pg_catalog.=) $1"
		" AND advertiser_id OPERATOR(pg_catalog.=) $2"
		" AND aggregate_type OPERATOR(pg_catalog.=) $3"
		" AND aggregate_id OPERATOR(pg_catalog.=) $4"
		" RETURNING ctid",
	.nargs = 6,
	.argtypes = (Oid[]) {TIDOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, BYTEAOID}
};

/* the receipt, and its row in the log's queue (log.h); the second for a waiting command */
static FpGroupPlan insert_plan = {
	.sql = FP_LOG_ENQUEUE_CTE("$16", "$1", "$14", "$2")
		"INSERT INTO attribution.receipts (" RECEIPT_COLUMNS ")"
		" VALUES (" RECEIPT_VALUES ")",
	.nargs = RECEIPT_NPARAMS,
	.argtypes = (Oid *) receipt_types
};
static FpGroupPlan insert_returning_plan = {
	.sql = FP_LOG_ENQUEUE_CTE("$16", "$1", "$14", "$2")
		"INSERT INTO attribution.receipts (" RECEIPT_COLUMNS ")"
		" VALUES (" RECEIPT_VALUES ") RETURNING *",
	.nargs = RECEIPT_NPARAMS,
	.argtypes = (Oid *) receipt_types
};
static FpGroupPlan start_plan = {
	.sql = "INSERT INTO attribution.receipt_streams"
		" (advertiser_id, aggregate_type, aggregate_id, last_sequence, last_hash)"
		" VALUES ($1, $2, $3, $4, $5)"
		" ON CONFLICT (advertiser_id, aggregate_type, aggregate_id) DO NOTHING"
		" RETURNING ctid",
	.nargs = 5,
	.argtypes = (Oid[]) {TEXTOID, TEXTOID, TEXTOID, INT8OID, BYTEAOID}
};

/* the one receipt of a row's chain that has no head yet */
static FpGroupPlan tail_plan = {
	.sql = "SELECT sequence, receipt_hash FROM attribution.receipts"
		" WHERE advertiser_id OPERATOR(pg_catalog.=) $1"
		" AND aggregate_type OPERATOR(pg_catalog.=) $2"
		" AND aggregate_id OPERATOR(pg_catalog.=) $3"
		" ORDER BY sequence DESC LIMIT 1",
	.nargs = 3,
	.argtypes = (Oid[]) {TEXTOID, TEXTOID, TEXTOID}
};

/* many first receipts at once (write_receipts); never on Citus, see statement_batch.c */
static void
prepare_batch_plan(void)
{
	if (insert_batch_plan != NULL)
		return;
	insert_batch_plan = fp_attribution_keep_plan("WITH r AS MATERIALIZED (SELECT * FROM ROWS FROM (" RECEIPT_ARRAYS ")"
												 " AS r(receipt_id, ts, sequence, correlation_id, causation_id,"
												 " aggregate_id, aggregate_type, payload, payload_hash, signature,"
												 " trace_id, span_id, prev_hash, receipt_hash, key_id, advertiser_id)), "
												 FP_LOG_ENQUEUE_SELECT_CTE("r.advertiser_id", "r.receipt_id",
																		   "r.receipt_hash", "r.ts", "r")
												 "INSERT INTO attribution.receipts (" RECEIPT_COLUMNS ")"
												 " SELECT " RECEIPT_UNNESTED " FROM r",
												 RECEIPT_NPARAMS,
												 (Oid[]) {UUIDARRAYOID, TIMESTAMPTZARRAYOID,
												 INT8ARRAYOID, TEXTARRAYOID, UUIDARRAYOID,
												 TEXTARRAYOID, TEXTARRAYOID, JSONBARRAYOID,
												 BYTEAARRAYOID, BYTEAARRAYOID, TEXTARRAYOID,
												 TEXTARRAYOID, BYTEAARRAYOID, BYTEAARRAYOID,
												 TEXTARRAYOID, TEXTARRAYOID});
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
	rc = SPI_execute_plan(fp_attribution_group_plan(&key_plan, advertiser_id),
						  values, NULL, false, 0);
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
	rc = SPI_execute_plan(fp_attribution_group_plan(&cause_plan, args[0]),
						  args, NULL, true, 1);
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
		rc = SPI_execute_plan(fp_attribution_group_plan(&insert_plan, values[15]),
							  values, nulls, false, 0);
		if (rc != SPI_OK_INSERT)
			elog(ERROR, "could not write receipt: %s",
				 SPI_result_code_string(rc));
		return;
	}
	rc = SPI_execute_plan(fp_attribution_group_plan(&insert_returning_plan, values[15]),
						  values, nulls, false, 1);
	if (rc != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "could not write receipt: %s",
			 SPI_result_code_string(rc));
	old = MemoryContextSwitchTo(catch_cxt);
	caught_receipt = heap_copytuple(SPI_tuptable->vals[0]);
	MemoryContextSwitchTo(old);
	SPI_freetuptable(SPI_tuptable);
}

/*
 * Flush of receipt_batch: write its receipts with one statement, or with
 * the single-row INSERT when there is one.
 */
static void
write_receipts(FpStatementBatch *batch)
{
	int			n = fp_attribution_batch_size(batch);
	Datum		values[RECEIPT_NPARAMS];
	char		nulls[RECEIPT_NPARAMS];
	bool		isnull;
	int			rc;

	prepare_batch_plan();
	if (n == 1)
	{
		for (int i = 0; i < RECEIPT_NPARAMS; i++)
		{
			values[i] = fp_attribution_batch_value(batch, i, 0, &isnull);
			nulls[i] = isnull ? 'n' : ' ';
		}
		fp_attribution_batch_reset(batch);
		write_receipt_row(values, nulls, false);
		return;
	}
	for (int i = 0; i < RECEIPT_NPARAMS; i++)
		values[i] = fp_attribution_batch_array(batch, i);
	fp_attribution_batch_reset(batch);
	rc = SPI_execute_plan(insert_batch_plan, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT || SPI_processed != n)
		elog(ERROR, "could not write receipts: %s", SPI_result_code_string(rc));
}

/*
 * Write the receipts of the rows inserted so far that wait for the end of
 * their statement: before reading receipts they may be among.
 */
void
fp_attribution_write_pending_receipts(void)
{
	fp_attribution_batch_flush(&receipt_batch);
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

	rc = SPI_execute_plan(fp_attribution_group_plan(&tail_plan, key_args[0]),
						  key_args, NULL, false, 1);
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

	if (fp_attribution_sign_receipts)
		key = fp_attribution_signing_key();
	/* what follows may read receipts: write the collected ones first */
	if (cause_click_id != NULL || !row_created)
		fp_attribution_batch_flush(&receipt_batch);

	fp_attribution_random_uuid(&env->receipt_id);
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
			/*
			 * a row's first receipt: no head (see the file header); written
			 * when the statement ends, with the other rows' receipts, unless
			 * a command waits for it
			 */
			env->sequence = 1;
			memset(env->prev_hash, 0, FP_SHA256_LEN);
			seal_receipt(env, key, values, receipt_hash, signature);
			if (catch || !fp_attribution_batching())
				write_receipt_row(values, nulls, catch);
			else
				fp_attribution_batch_add(&receipt_batch, owner, values, nulls);
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
			rc = SPI_execute_plan(fp_attribution_group_plan(&lock_plan, key_args[0]),
								  key_args, NULL, false, 1);
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

			rc = SPI_execute_plan(fp_attribution_group_plan(&advance_plan, head_args[1]),
								  head_args, NULL, false, 1);
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

			rc = SPI_execute_plan(fp_attribution_group_plan(&start_plan, start_args[0]),
								  start_args, NULL, false, 1);
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

/* datum_text's output function of the last other type it wrote */
static Oid	output_typid = InvalidOid;
static FmgrInfo output_flinfo;

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
	/* one other type in practice (inet): its function looked up once */
	if (typid != output_typid)
	{
		getTypeOutputInfo(typid, &output, &varlena);
		fmgr_info_cxt(output, &output_flinfo, TopMemoryContext);
		output_typid = typid;
	}
	return OutputFunctionCall(&output_flinfo, d);
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
		case TEXTOID:
			{
				/* in place: the writers take the string with its length */
				text	   *t = DatumGetTextPP(d);

				v->type = jbvString;
				v->val.string.val = VARDATA_ANY(t);
				v->val.string.len = VARSIZE_ANY_EXHDR(t);
				return;
			}
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

/* Most members a creating event's payload has: "event" and the columns */
#define ROW_PAYLOAD_MAX_MEMBERS (FP_NUM_COLUMNS + 1)

/*
 * The members of the payload of the creating event of a row of spec's
 * type: the event name and the spec's columns of the row (map: the
 * table's, or NULL to find them by name in desc), in spec order, into
 * keys and values (ROW_PAYLOAD_MAX_MEMBERS each).  Returns their number.
 */
static int
row_payload_members(const FpAggregateSpec *spec, HeapTuple tuple,
					TupleDesc desc, const FpColumnMap *map, const char **keys,
					JsonbValue *values)
{
	Datum	   *datums = palloc(desc->natts * sizeof(Datum));
	bool	   *nulls = palloc(desc->natts * sizeof(bool));
	int			n = 0;

	/* deformed once: fetching each column on its own walked the row again */
	heap_deform_tuple(tuple, desc, datums, nulls);
	for (int i = 0; spec->columns[i] != FP_NUM_COLUMNS; i++)
	{
		FpColumn	c = spec->columns[i];
		int			attnum = row_attnum(desc, map, c);
		bool		isnull = nulls[attnum - 1];

		if (i == spec->event_at)
		{
			keys[n] = "event";
			values[n].type = jbvString;
			values[n].val.string.val = (char *) spec->event;
			values[n].val.string.len = strlen(spec->event);
			n++;
		}

		/* the fraud rules' reason is there only when set (fraud_rules.c) */
		if (isnull && c == FP_COL_REVIEW_REASON)
			continue;
		keys[n] = fp_attribution_column_names[c];
		column_value(datums[attnum - 1], isnull,
					 TupleDescAttr(desc, attnum - 1)->atttypid, &values[n]);
		n++;
	}
	pfree(datums);
	pfree(nulls);
	return n;
}

/*
 * The payload of the creating event of a row of spec's type, as jsonb
 * (row_payload_members).
 */
static Jsonb *
row_payload(const FpAggregateSpec *spec, HeapTuple tuple, TupleDesc desc,
			const FpColumnMap *map)
{
	JsonbParseState *state = NULL;
	const char *keys[ROW_PAYLOAD_MAX_MEMBERS];
	JsonbValue	values[ROW_PAYLOAD_MAX_MEMBERS];
	int			n = row_payload_members(spec, tuple, desc, map, keys, values);
	JsonbValue	key;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	key.type = jbvString;
	for (int i = 0; i < n; i++)
	{
		key.val.string.val = (char *) keys[i];
		key.val.string.len = strlen(keys[i]);
		pushJsonbValue(&state, WJB_KEY, &key);
		pushJsonbValue(&state, WJB_VALUE, &values[i]);
	}
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
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
 * The payload_hash a receipt of the creating event of this row (of a
 * built-in type's table, map being fp_attribution_build_column_map() of
 * desc) has, into out: the SHA-256 of the payload's JCS form, written
 * from the row's members without building the jsonb, as
 * fp_attribution_payload_hash writes the jsonb.  Returns false, with
 * *bad_number set, if a number has no canonical form.  verify_all
 * compares a row with its receipt through it.
 */
bool
fp_attribution_row_payload_hash(const char *aggregate_type, HeapTuple tuple,
								TupleDesc desc, const FpColumnMap *map,
								uint8 *out, const char **bad_number)
{
	const FpAggregateSpec *spec = find_spec(aggregate_type);
	const char *keys[ROW_PAYLOAD_MAX_MEMBERS];
	JsonbValue	values[ROW_PAYLOAD_MAX_MEMBERS];
	int			n;
	StringInfoData buf;

	if (spec == NULL)
		elog(ERROR, "\"%s\" is not a built-in aggregate type", aggregate_type);
	n = row_payload_members(spec, tuple, desc, map, keys, values);
	initStringInfo(&buf);
	if (!fp_attribution_jcs_append_object(&buf, keys, values, n, true, bad_number))
		return false;
	fp_attribution_sha256(buf.data, buf.len, out);
	pfree(buf.data);
	return true;
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
