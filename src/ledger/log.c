/*-------------------------------------------------------------------------
 *
 * log.c
 *	  The per-advertiser Merkle log of receipts: integration, signed
 *	  checkpoints and proofs (SQL entry points).
 *
 * Every receipt becomes one leaf of its advertiser's log, whose leaf data
 * is the receipt's 32-byte receipt_hash (SHA-256 of its canonical
 * envelope, which covers its ids, sequence, payload hash and the previous
 * receipt's hash).  attribution.log_entries maps receipt to log index
 * (one unique key, the only index entry integration writes per receipt);
 * attribution.log_tiles holds the leaf hashes, up to
 * FP_LOG_LEAF_TILE_WIDTH a row; attribution.log_nodes keeps the hash of
 * every complete subtree at every FP_LOG_TILE_HEIGHT-th level (log.h), and
 * a hash at a level in between is recomputed from the stored ones under it
 * (fp_attribution_log_read_node), so roots and proofs read O(log n) rows
 * (merkle.c) while integration writes a row per receipt, one per tile a
 * batch touches and one per 2^FP_LOG_TILE_HEIGHT - 1 receipts.
 *
 * Integration (attribution.integrate_log, run by the background worker
 * every fp_attribution.log_interval) takes a batch of committed receipts
 * off attribution.log_queue (where the receipt write puts each receipt
 * with its hash, FP_LOG_ENQUEUE_CTE in log.h; log_queue.c takes them off),
 * appends them to their logs (the entries, their leaf hashes in tiles
 * and the stored subtree hashes in place on one node, log_rows.c, else by
 * one INSERT each), then signs one checkpoint per advertiser whose log
 * grew.
 * Commands only insert their queue row, so they take no lock for the log
 * and share no row; the order of a log is the order of integration.
 *
 * On Citus each advertiser's log is integrated on the worker node holding
 * its shards, by attribution.integrate_advertiser_log() (the same
 * integration for one advertiser, every statement naming it), which the
 * coordinator's ledger worker calls for each advertiser (log_worker.c).
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

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "common/base64.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/uuid.h"

#include "fp_attribution/log.h"
#include "fp_attribution/note.h"
#include "fp_attribution/receipts.h"
#include "fp_attribution/signing.h"
#include "fp_attribution/spi_plans.h"

/* pg_advisory_xact_lock key of integration: "fplg" */
#define FP_LOG_LOCK_KEY INT64CONST(0x66706c67)

/*
 * The statements of the logs, planned once per session, generically, and
 * kept (spi_plans.c): integration runs them every interval and proofs once
 * per level, so parsing and planning each time cost more than executing
 * them.
 */
typedef enum LogPlan
{
	PLAN_READ_LEAVES,
	PLAN_READ_NODES,
	PLAN_SIZE,
	PLAN_LATEST_CHECKPOINT,
	PLAN_INSERT_CHECKPOINT,
	PLAN_INSERT_ENTRIES,
	PLAN_INSERT_TILES,
	PLAN_INSERT_NODES,
	PLAN_LOCK,
	PLAN_LOGS,
	NUM_LOG_PLANS
} LogPlan;

static const struct
{
	const char *sql;
	int			nargs;
	Oid			types[5];
}			log_plan_defs[NUM_LOG_PLANS] =
{
	/*
	 * The rows holding leaves [a, $3), newest first: they start in [$2,
	 * $3), $2 the start of a's tile (no row crosses one), and are the
	 * first $4 = $3 - a at most (read_leaves).  Bounded both ways, so that
	 * the generic plan is a backward range scan of the primary key.
	 */
	[PLAN_READ_LEAVES] = {
		"SELECT first_index, leaf_hashes FROM attribution.log_tiles"
		" WHERE advertiser_id OPERATOR(pg_catalog.=) $1"
		" AND first_index OPERATOR(pg_catalog.>=) $2 AND first_index OPERATOR(pg_catalog.<) $3"
		" ORDER BY first_index DESC LIMIT $4",
		4, {TEXTOID, INT8OID, INT8OID, INT8OID}
	},
	[PLAN_READ_NODES] = {
		"SELECT hash FROM attribution.log_nodes"
		" WHERE advertiser_id OPERATOR(pg_catalog.=) $1"
		" AND level OPERATOR(pg_catalog.=) $2"
		" AND node_index OPERATOR(pg_catalog.>=) $3"
		" AND node_index OPERATOR(pg_catalog.<) $4 ORDER BY node_index",
		4, {TEXTOID, INT2OID, INT8OID, INT8OID}
	},
	[PLAN_SIZE] = {
		"SELECT first_index OPERATOR(pg_catalog.+) (pg_catalog.octet_length(leaf_hashes)"
		" OPERATOR(pg_catalog./) " CppAsString2(FP_MERKLE_HASH_LEN) ") FROM attribution.log_tiles"
		" WHERE advertiser_id OPERATOR(pg_catalog.=) $1 ORDER BY first_index DESC LIMIT 1",
		1, {TEXTOID}
	},
	[PLAN_LATEST_CHECKPOINT] = {
		"SELECT tree_size, root_hash FROM attribution.log_checkpoints"
		" WHERE advertiser_id OPERATOR(pg_catalog.=) $1 ORDER BY tree_size DESC LIMIT 1",
		1, {TEXTOID}
	},
	[PLAN_INSERT_CHECKPOINT] = {
		"INSERT INTO attribution.log_checkpoints"
		" (advertiser_id, tree_size, root_hash, public_key, note)"
		" VALUES ($1, $2, $3, $4, $5)",
		5, {TEXTOID, INT8OID, BYTEAOID, BYTEAOID, TEXTOID}
	},
	[PLAN_INSERT_ENTRIES] = {
		"INSERT INTO attribution.log_entries (advertiser_id, log_index, receipt_id)"
		" SELECT $1, $2 OPERATOR(pg_catalog.+) o OPERATOR(pg_catalog.-) 1, r"
		" FROM pg_catalog.unnest($3) WITH ORDINALITY AS u(r, o)",
		3, {TEXTOID, INT8OID, UUIDARRAYOID}
	},
	[PLAN_INSERT_TILES] = {
		"INSERT INTO attribution.log_tiles (advertiser_id, first_index, leaf_hashes)"
		" SELECT $1, i, h FROM ROWS FROM (pg_catalog.unnest($2),"
		" pg_catalog.unnest($3)) AS u(i, h)",
		3, {TEXTOID, INT8ARRAYOID, BYTEAARRAYOID}
	},
	[PLAN_INSERT_NODES] = {
		"INSERT INTO attribution.log_nodes (advertiser_id, level, node_index, hash)"
		" SELECT $1, l, i, h FROM ROWS FROM (pg_catalog.unnest($2),"
		" pg_catalog.unnest($3), pg_catalog.unnest($4)) AS u(l, i, h)",
		4, {TEXTOID, INT2ARRAYOID, INT8ARRAYOID, BYTEAARRAYOID}
	},
	[PLAN_LOCK] = {
		"SELECT pg_catalog.pg_advisory_xact_lock($1)",
		1, {INT8OID}
	},

	/*
	 * The advertisers that have a log: a loose scan of log_tiles' primary
	 * key, one probe per advertiser rather than a read of every tile
	 */
	[PLAN_LOGS] = {
		"WITH RECURSIVE a(id) AS ("
		" SELECT min(advertiser_id) FROM attribution.log_tiles"
		" UNION ALL SELECT (SELECT min(t.advertiser_id) FROM attribution.log_tiles t"
		"  WHERE t.advertiser_id OPERATOR(pg_catalog.>) a.id) FROM a WHERE a.id IS NOT NULL)"
		" SELECT id FROM a WHERE id IS NOT NULL",
		0, {InvalidOid}
	},
};

static SPIPlanPtr log_plans[NUM_LOG_PLANS];

/* Whether log_plans hold generic plans (-1: none prepared yet) */
static int	log_plans_generic = -1;

/* The transaction in which log_plans_generic was last checked */
static LocalTransactionId log_plans_lxid = InvalidLocalTransactionId;

/*
 * Whether the log tables are Citus distributed tables.  Without Citus a
 * catalog lookup says no; with it, pg_dist_partition is read (inside SPI).
 */
static bool
logs_distributed(void)
{
	bool		isnull;

	if (!OidIsValid(get_extension_oid("citus", true)))
		return false;
	if (SPI_execute("SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition"
					" WHERE logicalrelid OPERATOR(pg_catalog.=) 'attribution.log_entries'::pg_catalog.regclass)",
					true, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read pg_dist_partition");
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Once per transaction, make sure log_plans are of the kind the tables
 * need: generic on one node; on Citus left to the plan cache, since Citus
 * routes a statement by its parameters' values, which a generic plan has
 * not ("could not create distributed plan"), and keeps such a statement
 * on custom plans.  A process that used the logs before distribute() (a
 * ledger worker) then replaces its generic plans.
 */
static void
check_log_plans(void)
{
	bool		generic;

	if (log_plans_lxid == MyProc->lxid)
		return;
	generic = !logs_distributed();
	if (generic != log_plans_generic)
	{
		for (int i = 0; i < NUM_LOG_PLANS; i++)
		{
			if (log_plans[i] != NULL)
				SPI_freeplan(log_plans[i]);
			log_plans[i] = NULL;
		}
		log_plans_generic = generic;
	}
	log_plans_lxid = MyProc->lxid;
}

/*
 * Run one of the logs' statements (inside SPI); returns the SPI result
 * code.
 */
static int
log_execute(LogPlan which, Datum *values, bool read_only, long count)
{
	check_log_plans();
	if (log_plans[which] == NULL)
		log_plans[which] = (log_plans_generic ? fp_attribution_keep_generic_plan : fp_attribution_keep_plan)
			(log_plan_defs[which].sql, log_plan_defs[which].nargs, (Oid *) log_plan_defs[which].types);
	return SPI_execute_plan(log_plans[which], values, NULL, read_only, count);
}

char	   *fp_attribution_log_origin_prefix = NULL;
int			fp_attribution_log_interval_ms = 1000;
int			fp_attribution_log_batch_delay_ms = 200;

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
							gettext_noop("How often the worker signs checkpoints of the grown logs, and integrates receipts when idle."),
							gettext_noop("0 turns integration by the worker off."),
							&fp_attribution_log_interval_ms,
							1000, 0, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("fp_attribution.log_batch_delay",
							gettext_noop("How soon the worker integrates again after a run that found receipts."),
							gettext_noop("The longest a receipt waits for integration under load, about; at most log_interval applies."),
							&fp_attribution_log_batch_delay_ms,
							200, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	fp_attribution_log_push_define_gucs();
}

/* The value of an upper-case hex digit, or -1 */
static int
hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Whether an advertiser id byte is percent-encoded in an origin */
static bool
origin_escapes(unsigned char c)
{
	return c <= 0x20 || c >= 0x7f || c == '+' || c == '%';
}

/*
 * The origin (and note key name) of an advertiser's log: the prefix, a
 * slash and the advertiser id, whose bytes outside printable ASCII and
 * "+" and "%" are percent-encoded (a key name has no spaces or "+").
 */
char *
fp_attribution_log_origin(const char *advertiser_id)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s/", fp_attribution_log_origin_prefix);
	for (const unsigned char *p = (const unsigned char *) advertiser_id; *p; p++)
	{
		if (origin_escapes(*p))
			appendStringInfo(&buf, "%%%02X", *p);
		else
			appendStringInfoChar(&buf, *p);
	}
	if (!fp_note_valid_name(buf.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("log origin \"%s\" is not a valid note key name", buf.data),
				 errhint("fp_attribution.log_origin must have no spaces, control characters or \"+\".")));
	return buf.data;
}

/*
 * The advertiser whose log has this origin, or NULL when the origin is not
 * one of fp_attribution.log_origin's (or not encoded as
 * fp_attribution_log_origin encodes).
 */
char *
fp_attribution_log_advertiser(const char *origin)
{
	size_t		plen = strlen(fp_attribution_log_origin_prefix);
	StringInfoData buf;
	const char *p;

	if (strncmp(origin, fp_attribution_log_origin_prefix, plen) != 0 ||
		origin[plen] != '/')
		return NULL;
	initStringInfo(&buf);
	for (p = origin + plen + 1; *p; p++)
	{
		int			hi,
					lo;

		if (*p != '%')
		{
			appendStringInfoChar(&buf, *p);
			continue;
		}
		hi = hex_digit(p[1]);
		lo = hi < 0 ? -1 : hex_digit(p[2]);
		if (lo < 0)
			return NULL;
		appendStringInfoChar(&buf, (char) (hi * 16 + lo));
		p += 2;
	}
	if (buf.len == 0 || strcmp(fp_attribution_log_origin(buf.data), origin) != 0)
		return NULL;
	return buf.data;
}

/*
 * Prepare reads of an advertiser's stored subtree hashes (inside SPI).
 */
void
fp_attribution_log_reader_init(FpLogReader *reader, const char *advertiser_id)
{
	reader->advertiser_id = advertiser_id;
	reader->advertiser_datum = CStringGetTextDatum(advertiser_id);
}

/*
 * The count leaf hashes from index first on, into out, from the rows of
 * attribution.log_tiles that hold them: the newest rows starting below
 * first + count and not before first's tile, at most count of them since
 * each holds at least one of those leaves, read by one backward range
 * scan.  Returns false when they
 * do not cover the range (rows missing, or of a malformed length).
 */
static bool
read_leaves(FpLogReader *reader, int64 first, int count, FpMerkleHash *out)
{
	Datum		values[4];
	int64		need = first + count;	/* leaves [first, need) still to read */

	values[0] = reader->advertiser_datum;
	values[1] = Int64GetDatum(first - first % FP_LOG_LEAF_TILE_WIDTH);
	values[2] = Int64GetDatum(need);
	values[3] = Int64GetDatum(count);
	if (log_execute(PLAN_READ_LEAVES, values, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the leaf hashes of a log");
	for (uint64 i = 0; i < SPI_processed && need > first; i++)
	{
		bool		isnull;
		int64		row_first = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
															SPI_tuptable->tupdesc, 1, &isnull));
		bytea	   *hashes = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i],
														   SPI_tuptable->tupdesc, 2, &isnull));
		int64		len = VARSIZE_ANY_EXHDR(hashes);
		int64		from = Max(row_first, first);

		if (len % FP_MERKLE_HASH_LEN != 0 ||
			row_first + len / FP_MERKLE_HASH_LEN < need)
			break;
		memcpy(out[from - first],
			   VARDATA_ANY(hashes) + (from - row_first) * FP_MERKLE_HASH_LEN,
			   (need - from) * FP_MERKLE_HASH_LEN);
		need = from;
	}
	SPI_freetuptable(SPI_tuptable);
	return need == first;
}

/*
 * The count stored hashes of level (0 or a multiple of FP_LOG_TILE_HEIGHT)
 * from index first on, into out: leaf hashes from attribution.log_tiles
 * (read_leaves), others from attribution.log_nodes, by one range scan.
 * Fewer hashes than asked for, or a malformed one, is corruption.
 */
void
fp_attribution_log_read_stored(FpLogReader *reader, int level, int64 first,
							   int count, FpMerkleHash *out)
{
	Datum		values[4];

	Assert(level % FP_LOG_TILE_HEIGHT == 0);
	if (level == 0)
	{
		if (read_leaves(reader, first, count, out))
			return;
	}
	else
	{
		values[0] = reader->advertiser_datum;
		values[1] = Int16GetDatum(level);
		values[2] = Int64GetDatum(first);
		values[3] = Int64GetDatum(first + count);
		if (log_execute(PLAN_READ_NODES, values, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the stored hashes of a log");
		for (uint64 i = 0; i < SPI_processed && i < count; i++)
		{
			bool		isnull;
			bytea	   *hash = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i],
															 SPI_tuptable->tupdesc, 1, &isnull));

			if (VARSIZE_ANY_EXHDR(hash) != FP_MERKLE_HASH_LEN)
				break;
			memcpy(out[i], VARDATA_ANY(hash), FP_MERKLE_HASH_LEN);
			if (i == count - 1)
			{
				SPI_freetuptable(SPI_tuptable);
				return;
			}
		}
	}
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("log of advertiser \"%s\" has no valid hashes at level %d, indexes " INT64_FORMAT " to " INT64_FORMAT,
					reader->advertiser_id, level, first, first + count - 1)));
}

/*
 * FpMerkleReadNode over the stored hashes: the hash at (level, index)
 * folded from the 2^d hashes under it at the stored level d below.
 */
void
fp_attribution_log_read_node(void *arg, int level, int64 index, uint8 *out)
{
	int			d = level % FP_LOG_TILE_HEIGHT;
	FpMerkleHash hashes[1 << (FP_LOG_TILE_HEIGHT - 1)];

	fp_attribution_log_read_stored(arg, level - d, index << d, 1 << d, hashes);
	fp_merkle_fold(hashes, 1 << d);
	memcpy(out, hashes[0], FP_MERKLE_HASH_LEN);
}

/*
 * The size of an advertiser's log: one past the highest index of its leaf
 * hashes (0 without any).
 */
int64
fp_attribution_log_size(const char *advertiser_id)
{
	Datum		values[1];
	bool		isnull;

	values[0] = CStringGetTextDatum(advertiser_id);
	if (log_execute(PLAN_SIZE, values, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read attribution.log_tiles");
	if (SPI_processed == 0)
		return 0;
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * The subtree hashes of stored levels above 0 that an append completes,
 * gathered so that a whole batch's are stored at once (append_nodes; a
 * statement per row would cost more than the command that wrote the
 * receipt); the leaf hashes go to the tiles (append_tiles)
 */
typedef struct LogWriter
{
	int			n;
	int			cap;
	Datum	   *levels;
	Datum	   *indexes;
	Datum	   *hashes;
} LogWriter;

/* FpMerkleWriteNode into the writer's arrays, for the stored levels */
static void
write_node(void *arg, int level, int64 index, const uint8 *hash)
{
	LogWriter  *w = arg;

	if (level == 0 || level % FP_LOG_TILE_HEIGHT != 0)
		return;
	if (w->n == w->cap)
	{
		w->cap *= 2;
		w->levels = repalloc(w->levels, w->cap * sizeof(Datum));
		w->indexes = repalloc(w->indexes, w->cap * sizeof(Datum));
		w->hashes = repalloc(w->hashes, w->cap * sizeof(Datum));
	}
	w->levels[w->n] = Int16GetDatum(level);
	w->indexes[w->n] = Int64GetDatum(index);
	w->hashes[w->n] = fp_attribution_bytea_datum(hash, FP_MERKLE_HASH_LEN);
	w->n++;
}

/*
 * Sign and store a checkpoint of the advertiser's log at size, whose root
 * is root, after checking that the tree extends the latest stored
 * checkpoint.  known_root is the root at known_size, which is that check
 * when the latest checkpoint is at known_size (integration passes the
 * root before its batch; else the root at the checkpoint's size is
 * recomputed from the stored hashes).  Returns the note, or NULL when the
 * latest checkpoint is already at that size.
 */
static char *
sign_checkpoint(const char *advertiser_id, int64 size, const uint8 *root,
				int64 known_size, const uint8 *known_root)
{
	const FpSigningKey *key = fp_attribution_signing_key();
	char	   *origin = fp_attribution_log_origin(advertiser_id);
	char	   *note;
	Datum		values[5];
	bool		isnull;

	values[0] = CStringGetTextDatum(advertiser_id);
	if (log_execute(PLAN_LATEST_CHECKPOINT, values, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read attribution.log_checkpoints");
	if (SPI_processed == 1)
	{
		int64		old_size = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 1, &isnull));
		bytea	   *old_root = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0],
															 SPI_tuptable->tupdesc, 2, &isnull));
		FpLogReader reader;
		FpMerkleHash at_old;

		if (old_size >= size)
			return NULL;
		if (old_size == known_size)
			memcpy(at_old, known_root, FP_MERKLE_HASH_LEN);
		else
		{
			fp_attribution_log_reader_init(&reader, advertiser_id);
			fp_merkle_root(old_size, fp_attribution_log_read_node, &reader, at_old);
		}
		if (VARSIZE_ANY_EXHDR(old_root) != FP_MERKLE_HASH_LEN ||
			memcmp(VARDATA_ANY(old_root), at_old, FP_MERKLE_HASH_LEN) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("log of advertiser \"%s\" does not extend its checkpoint at size " INT64_FORMAT,
							advertiser_id, old_size),
					 errhint("Run attribution.verify_all(); no new checkpoint is signed.")));
	}

	note = fp_note_sign(fp_note_checkpoint_body(origin, size, root),
						origin, key->public_key);
	values[1] = Int64GetDatum(size);
	values[2] = fp_attribution_bytea_datum(root, FP_MERKLE_HASH_LEN);
	values[3] = fp_attribution_bytea_datum(key->public_key, FP_ED25519_PUBLIC_KEY_LEN);
	values[4] = CStringGetTextDatum(note);
	if (log_execute(PLAN_INSERT_CHECKPOINT, values, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert into attribution.log_checkpoints");
	return note;
}

/* Whether checkpoints can be signed: a signing key is set */
static bool
signing_enabled(void)
{
	return fp_attribution_signing_key_file != NULL &&
		fp_attribution_signing_key_file[0] != '\0';
}

/*
 * Sign a checkpoint of the advertiser's log as it is now (inside SPI),
 * when a signing key is set and the log grew since its latest checkpoint;
 * returns the note, else NULL.  The log's root is recomputed from the
 * stored hashes: O(log n) reads, once per log and signature.
 */
char *
fp_attribution_log_sign(const char *advertiser_id)
{
	FpLogReader reader;
	FpMerkleHash root;
	int64		size;

	if (!signing_enabled())
		return NULL;
	size = fp_attribution_log_size(advertiser_id);
	if (size == 0)
		return NULL;
	fp_attribution_log_reader_init(&reader, advertiser_id);
	fp_merkle_root(size, fp_attribution_log_read_node, &reader, root);
	return sign_checkpoint(advertiser_id, size, root, -1, NULL);
}

/* n copies of d: a column that is the same in every row */
static Datum *
repeated(Datum d, int n)
{
	Datum	   *column = palloc(n * sizeof(Datum));

	for (int i = 0; i < n; i++)
		column[i] = d;
	return column;
}

/*
 * Append entries first .. first + n - 1 of the advertiser's log (a text
 * datum): the receipts of pending.  In place on one node
 * (fp_attribution_log_insert_rows, log_rows.c), else by SQL: on Citus
 * log_entries is in shards elsewhere.  log_entries' fourth column is
 * leaf_hash, dropped by 2.1.
 */
static void
append_entries(Datum advertiser, int64 first, const FpLogPending *pending,
			   int n)
{
	static const Oid types[] = {TEXTOID, INT8OID, UUIDOID, InvalidOid, TIMESTAMPTZOID};
	Datum	   *indexes = palloc(n * sizeof(Datum));
	Datum	   *receipt_ids = palloc(n * sizeof(Datum));
	Datum	   *columns[lengthof(types)];
	Datum		values[3];

	for (int i = 0; i < n; i++)
	{
		indexes[i] = Int64GetDatum(first + i);
		receipt_ids[i] = UUIDPGetDatum(&pending[i].receipt_id);
	}
	columns[0] = repeated(advertiser, n);
	columns[1] = indexes;
	columns[2] = receipt_ids;
	columns[3] = NULL;
	columns[4] = repeated(TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()), n);
	if (log_plans_generic &&
		fp_attribution_log_insert_rows("log_entries", types, lengthof(types), columns, n))
		return;
	values[0] = advertiser;
	values[1] = Int64GetDatum(first);
	values[2] = PointerGetDatum(construct_array(receipt_ids, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	if (log_execute(PLAN_INSERT_ENTRIES, values, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert into attribution.log_entries");
}

/*
 * Store the leaf hashes of entries first .. first + n - 1 of the
 * advertiser's log (a text datum) in attribution.log_tiles: a row per
 * tile of FP_LOG_LEAF_TILE_WIDTH the range touches.  A tile the range
 * starts or ends inside gets a row of its own part; the rows written
 * before in that tile stay.  In place on one node, else by SQL.
 */
static void
append_tiles(Datum advertiser, int64 first, const FpMerkleHash *leaves, int n)
{
	static const Oid types[] = {TEXTOID, INT8OID, BYTEAOID};
	int			cap = n / FP_LOG_LEAF_TILE_WIDTH + 2;
	Datum	   *firsts = palloc(cap * sizeof(Datum));
	Datum	   *hashes = palloc(cap * sizeof(Datum));
	Datum	   *columns[lengthof(types)];
	int			rows = 0;
	Datum		values[3];

	for (int i = 0; i < n;)
	{
		int64		index = first + i;
		int			width = Min(n - i, FP_LOG_LEAF_TILE_WIDTH - index % FP_LOG_LEAF_TILE_WIDTH);

		firsts[rows] = Int64GetDatum(index);
		hashes[rows] = fp_attribution_bytea_datum(leaves[i], width * FP_MERKLE_HASH_LEN);
		rows++;
		i += width;
	}
	columns[0] = repeated(advertiser, rows);
	columns[1] = firsts;
	columns[2] = hashes;
	if (log_plans_generic &&
		fp_attribution_log_insert_rows("log_tiles", types, lengthof(types), columns, rows))
		return;
	values[0] = advertiser;
	values[1] = PointerGetDatum(construct_array(firsts, rows, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[2] = PointerGetDatum(construct_array(hashes, rows, BYTEAOID, -1, false, TYPALIGN_INT));
	if (log_execute(PLAN_INSERT_TILES, values, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert into attribution.log_tiles");
}

/*
 * Store the subtree hashes the writer gathered for the advertiser's log
 * (a text datum) in attribution.log_nodes, if any: in place on one node,
 * else by SQL.
 */
static void
append_nodes(Datum advertiser, const LogWriter *w)
{
	static const Oid types[] = {TEXTOID, INT2OID, INT8OID, BYTEAOID};
	Datum	   *columns[lengthof(types)];
	Datum		values[4];

	if (w->n == 0)
		return;
	columns[0] = repeated(advertiser, w->n);
	columns[1] = w->levels;
	columns[2] = w->indexes;
	columns[3] = w->hashes;
	if (log_plans_generic &&
		fp_attribution_log_insert_rows("log_nodes", types, lengthof(types), columns, w->n))
		return;
	values[0] = advertiser;
	values[1] = PointerGetDatum(construct_array(w->levels, w->n, INT2OID, 2, true, TYPALIGN_SHORT));
	values[2] = PointerGetDatum(construct_array(w->indexes, w->n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[3] = PointerGetDatum(construct_array(w->hashes, w->n, BYTEAOID, -1, false, TYPALIGN_INT));
	if (log_execute(PLAN_INSERT_NODES, values, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert into attribution.log_nodes");
}

/*
 * Append n pending receipts of one advertiser to its log, in their order;
 * when sign is set and a signing key is, sign a checkpoint and return its
 * note (else NULL).
 */
static char *
integrate_advertiser(const FpLogPending *pending, int n, bool sign)
{
	const char *adv = pending[0].advertiser_id;
	FpLogReader reader;
	FpMerkleEdge edge;
	FpMerkleHash first_root;
	FpMerkleHash root;
	LogWriter	writer;
	int64		first;
	FpMerkleHash *leaves = palloc(n * sizeof(FpMerkleHash));
	Datum		advertiser;

	fp_attribution_log_reader_init(&reader, adv);
	first = fp_attribution_log_size(adv);
	fp_merkle_edge_load(&edge, first, fp_attribution_log_read_node, &reader);
	fp_merkle_edge_root(&edge, first_root);
	writer.n = 0;
	writer.cap = n / ((1 << FP_LOG_TILE_HEIGHT) - 1) + FP_MERKLE_MAX_LEVELS;
	writer.levels = palloc(writer.cap * sizeof(Datum));
	writer.indexes = palloc(writer.cap * sizeof(Datum));
	writer.hashes = palloc(writer.cap * sizeof(Datum));

	for (int i = 0; i < n; i++)
	{
		const bytea *receipt_hash = pending[i].receipt_hash;

		fp_merkle_leaf_hash((const uint8 *) VARDATA_ANY(receipt_hash),
							VARSIZE_ANY_EXHDR(receipt_hash), leaves[i]);
		fp_merkle_edge_append(&edge, leaves[i], write_node, &writer);
	}

	/* entries first .. first + n - 1, their leaf hashes, the subtree hashes */
	advertiser = CStringGetTextDatum(adv);
	append_entries(advertiser, first, pending, n);
	append_tiles(advertiser, first, leaves, n);
	append_nodes(advertiser, &writer);
	if (!sign || !signing_enabled())
		return NULL;
	fp_merkle_edge_root(&edge, root);
	return sign_checkpoint(adv, edge.size, root, first, first_root);
}

/*
 * Take integration's lock (inside SPI): integrators of a node serialize on
 * it before they read a log's size.
 */
static void
lock_logs(void)
{
	Datum		values[1];

	values[0] = Int64GetDatum(FP_LOG_LOCK_KEY);
	if (log_execute(PLAN_LOCK, values, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock the log");
}

/* max_entries of the integration functions: at least one receipt */
static void
check_max_entries(int32 max_entries)
{
	if (max_entries <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_entries must be positive")));
}

/*
 * Sign a checkpoint of every log that grew since its latest checkpoint
 * (inside SPI), skipping the done advertisers (signed already, sorted);
 * the notes go to the push.  The logs are found by a loose scan of
 * log_entries' primary key (one probe per advertiser), so the cost is
 * O(advertisers log n), not O(n).
 */
static void
sign_grown_logs(char **done, int ndone)
{
	SPITupleTable *logs;
	uint64		n;

	if (!signing_enabled())
		return;
	if (log_execute(PLAN_LOGS, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the advertisers of attribution.log_entries");
	logs = SPI_tuptable;
	n = SPI_processed;
	for (uint64 i = 0; i < n; i++)
	{
		char	   *adv = SPI_getvalue(logs->vals[i], logs->tupdesc, 1);
		char	   *note;

		if (bsearch(&adv, done, ndone, sizeof(char *), pg_qsort_strcmp) != NULL)
			continue;
		note = fp_attribution_log_sign(adv);
		if (note != NULL)
			fp_attribution_log_push_note(adv, note);
	}
}

/*
 * attribution.integrate_log(max_entries integer, sign boolean) returns
 *		bigint
 *
 * Append up to max_entries committed receipts that are not in their
 * advertiser's log yet (oldest first within an advertiser).  With sign
 * (and a signing key set), then sign a checkpoint of every log that grew
 * since its latest one: those of the batch and those an unsigned call
 * grew before (the worker integrates every fp_attribution.log_batch_delay
 * but signs every fp_attribution.log_interval).  Returns the number of
 * receipts integrated.
 */
PG_FUNCTION_INFO_V1(fp_attribution_integrate_log);
Datum
fp_attribution_integrate_log(PG_FUNCTION_ARGS)
{
	int32		max_entries = PG_GETARG_INT32(0);
	bool		sign = PG_GETARG_BOOL(1);
	FpLogPending *pending;
	int			n;
	int			start = 0;
	char	  **done;
	int			ndone = 0;

	check_max_entries(max_entries);
	SPI_connect();
	lock_logs();
	if (!log_plans_generic)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("integrate_log() cannot integrate Citus distributed logs"),
				 errhint("Call attribution.integrate_advertiser_log() for each advertiser.")));
	pending = fp_attribution_log_take_batch(max_entries, &n);
	done = palloc(Max(n, 1) * sizeof(char *));
	for (int i = 1; i <= n; i++)
	{
		const char *adv = pending[start].advertiser_id;
		char	   *note;

		if (i < n && strcmp(pending[i].advertiser_id, adv) == 0)
			continue;
		note = integrate_advertiser(pending + start, i - start, sign);
		if (note != NULL)
			fp_attribution_log_push_note(adv, note);
		/* the batch is sorted by advertiser_id, COLLATE "C": strcmp order */
		done[ndone++] = pending[start].advertiser_id;
		start = i;
	}
	if (sign)
		sign_grown_logs(done, ndone);
	SPI_finish();
	PG_RETURN_INT64((int64) n);
}

/*
 * attribution.integrate_advertiser_log(advertiser_id text, max_entries
 *		integer, sign boolean, OUT integrated bigint, OUT checkpoint text)
 *
 * integrate_log() for one advertiser: append up to max_entries of its
 * committed receipts (oldest first) to its log and, with sign and a
 * signing key set, sign a checkpoint when the log grew since its latest
 * one (by this call or an earlier unsigned one).  Returns how many were
 * integrated and the note of the checkpoint signed (NULL when none was).
 * distribute() distributes it by advertiser_id, so that on Citus a call is
 * delegated to the worker holding the advertiser's shards, where every
 * statement is on a local shard (log_worker.c calls it from the
 * coordinator).
 */
PG_FUNCTION_INFO_V1(fp_attribution_integrate_advertiser_log);
Datum
fp_attribution_integrate_advertiser_log(PG_FUNCTION_ARGS)
{
	text	   *advertiser_id = PG_GETARG_TEXT_PP(0);
	int32		max_entries = PG_GETARG_INT32(1);
	bool		sign = PG_GETARG_BOOL(2);
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	char	   *note = NULL;
	MemoryContext caller_cxt = CurrentMemoryContext;
	FpLogPending *pending;
	int			n;

	check_max_entries(max_entries);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	SPI_connect();
	lock_logs();
	pending = fp_attribution_log_take_advertiser_batch(advertiser_id, max_entries, &n);
	if (n > 0)
		note = integrate_advertiser(pending, n, sign);
	else if (sign)
		note = fp_attribution_log_sign(text_to_cstring(advertiser_id));
	values[0] = Int64GetDatum((int64) n);
	nulls[1] = note == NULL;
	if (note != NULL)
	{
		/* in the caller's memory: SPI's goes at SPI_finish */
		MemoryContext spi_cxt = MemoryContextSwitchTo(caller_cxt);

		values[1] = CStringGetTextDatum(note);
		MemoryContextSwitchTo(spi_cxt);
	}
	SPI_finish();
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
