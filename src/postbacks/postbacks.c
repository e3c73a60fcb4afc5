/*-------------------------------------------------------------------------
 *
 * postbacks.c
 *	  Postbacks, the command side: settings, the outbox write made with
 *	  every receipt of a conversion, waking the postback worker at commit,
 *	  and the SQL functions that check templates and redact URLs.
 *
 * Outbox: fp_attribution_postbacks_enqueue() is called by the receipt
 * writer (receipts.c, append_receipt), the one place every command that
 * changes a conversion passes through: the insert of a conversion (by
 * track_conversion or a direct INSERT), the lifecycle commands and late
 * attribution all append a receipt to the conversion's chain.  For each
 * active endpoint of the conversion's (advertiser, affiliate) that wants
 * the event, one row goes into attribution.postback_outbox, in the same
 * transaction and as the same role (the extension's owner) as the
 * receipt: a rolled-back command leaves no row, so nothing is sent, and a
 * committed one leaves its rows for the worker, however the server stops.
 * The row is a snapshot of the conversion as the receipt leaves it (see
 * the enqueue statements).
 * Receipt events map to postback events: conversion_tracked and
 * conversion_attributed (a late click attributed it: the affiliate hears
 * of it then) are "tracked"; conversion_approved, _rejected, _reversed
 * and _refunded their own.  An unattributed conversion has no affiliate
 * and so no postback.
 *
 * Endpoint cache: most conversions are of an affiliate without an active
 * endpoint, and the creating event's (the payload names the affiliate)
 * is looked up in a backend-local hash by (advertiser, affiliate, event),
 * which keeps the ids of the active endpoints that want the event: found
 * without endpoints, the enqueue costs a hash lookup; found with some, it
 * goes straight to writing one row per cached id (no read of the
 * endpoints under the command), in place (postback_rows.c: 121 k
 * instructions, where the INSERT statement cost 248 k), built from the
 * payload by outbox_row() as payload_insert builds it; a Citus node, where
 * the cache is not used, and a lifecycle event's row keep the
 * statements.  A miss runs the probe with the latest snapshot and keeps
 * its answer, unless it names more than ENDPOINTS_CACHED endpoints
 * (then the probe runs every time).  Every change of an endpoint that the
 * probe looks at (a row inserted or deleted, TRUNCATE, an UPDATE of
 * advertiser_id, affiliate_id, active or events; not the worker's failure
 * counts) sends a relcache invalidation of attribution.postback_endpoints
 * at its commit (the trigger postback_endpoints_changed), and the enqueue
 * reads the invalidations first: a committed change is seen by the next
 * command, as the probe would see it.  The latest snapshot, not the
 * command's: an invalidation read before the probe is of a change that
 * snapshot sees, one read while the probe runs (a lock taken) drops its
 * answer (cache_generation).  So a transaction with an older snapshot
 * (REPEATABLE READ) may skip an endpoint deactivated since it began, or
 * enqueue for one created since.  Not on a Citus node, where the
 * endpoints are shards whose triggers fire on their own nodes: there the
 * probe runs every time, with the command's snapshot.
 *
 * Deleting an endpoint: the outbox has no foreign key to its endpoint
 * (one cost the enqueue 38 k instructions, a third of it, and locked the
 * endpoint's row FOR KEY SHARE, so that two conversions of one affiliate
 * at once made a MultiXact).  Instead, a DELETE, TRUNCATE or key UPDATE
 * of endpoints takes SHARE on the outbox before it touches a row
 * (postback_endpoint_in_use, FOR EACH STATEMENT): it waits out every
 * transaction that enqueued, and holds back new enqueues until it ends;
 * then its row trigger refuses an endpoint with rows in the outbox
 * (23503, as the foreign key's ON DELETE RESTRICT did), read with the
 * latest snapshot.  An enqueue locks the outbox before it trusts the
 * endpoints it knows: taking the lock reads the invalidations, the
 * deletion's among them once it committed, and what was known is looked
 * up again; the probe and the statements run after the lock, with
 * snapshots that see the deletion (in READ COMMITTED; an older snapshot
 * may still write a row for a deleted endpoint, which is never claimed
 * and is given up at fp_attribution.postback_max_age).  A conversion
 * whose affiliate the cache knows to have no endpoint takes no lock; a
 * cache miss and a lifecycle event do, so a deletion holds those back
 * while it runs.  A transaction that deletes an endpoint's postbacks and
 * then the endpoint holds RowExclusiveLock when it asks for SHARE: it
 * should take SHARE ROW EXCLUSIVE first (the error's hint), or it may
 * deadlock with a transaction waiting for one of the rows it deleted.
 * The outbox's endpoint_id is not checked on a direct write (only the
 * owner writes the table).  On a Citus cluster, where a shard's trigger
 * must not read another table, distribute() puts the foreign key back
 * instead.
 *
 * Waking: the first enqueue of a transaction registers a callback that
 * sets the postback worker's latch when the transaction commits (its
 * procno is in shared memory; without the preload nobody is woken, and
 * the worker's poll finds the rows), unless fp_attribution.postback_enabled
 * is off: the worker delivers nothing then.  No lock: the procno is one
 * atomic.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/snapmgr.h"
#include "utils/uuid.h"

#include "fp_attribution/extension_tables.h"
#include "fp_attribution/otlp.h"
#include "fp_attribution/postbacks.h"
#include "fp_attribution/redact.h"
#include "fp_attribution/relcache_forget.h"
#include "fp_attribution/shmem.h"
#include "fp_attribution/spi_plans.h"
#include "fp_attribution/telemetry_record.h"

bool		fp_attribution_postback_enabled = true;
int			fp_attribution_postback_concurrency = 16;
int			fp_attribution_postback_endpoint_concurrency = 4;
int			fp_attribution_postback_timeout_ms = 10000;
int			fp_attribution_postback_max_attempts = 10;
int			fp_attribution_postback_max_age_s = 24 * 60 * 60;
int			fp_attribution_postback_retry_initial_ms = 1000;
int			fp_attribution_postback_retry_max_ms = 5 * 60 * 1000;
int			fp_attribution_postback_disable_after = 10;
int			fp_attribution_postback_retention_s = 7 * 24 * 60 * 60;
int			fp_attribution_postback_batch_delay_ms = 200;

/* Receipt event of a conversion -> postback event */
static const struct
{
	const char *receipt_event;
	const char *event;
}			event_map[] = {
	{"conversion_tracked", "tracked"},
	{"conversion_attributed", "tracked"},
	{"conversion_approved", "approved"},
	{"conversion_rejected", "rejected"},
	{"conversion_reversed", "reversed"},
	{"conversion_refunded", "refunded"},
};

static bool callback_registered = false;
static bool wake_at_commit = false;

/* Most endpoints of one cache entry; an answer with more is not kept */
#define ENDPOINTS_CACHED 8

/* The endpoint cache (see the file header) */
typedef struct EndpointCacheEntry
{
	/* length-prefixed advertiser and affiliate, and the event */
	char		key[600];
	int			nendpoints;
	int64		endpoints[ENDPOINTS_CACHED];	/* active, wanting the event */
} EndpointCacheEntry;

/* Most entries; beyond, the cache starts again empty */
#define ENDPOINT_CACHE_MAX 10000

static HTAB *endpoint_cache = NULL;
/* attribution.postback_endpoints, and whether the cache is used */
static Oid	endpoints_relid = InvalidOid;
static bool cache_usable = false;
/* one more at each invalidation that emptied the cache */
static uint64 cache_generation = 0;

void
fp_attribution_postbacks_define_gucs(void)
{
	DefineCustomBoolVariable("fp_attribution.postback_enabled",
							 gettext_noop("Lets the postback worker deliver postbacks."),
							 gettext_noop("Off, the commands still enqueue them; they are sent once it is on again."),
							 &fp_attribution_postback_enabled, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("fp_attribution.postback_concurrency",
							gettext_noop("Most postback requests in flight at once."),
							NULL, &fp_attribution_postback_concurrency,
							16, 1, 256, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("fp_attribution.postback_endpoint_concurrency",
							gettext_noop("Most postback requests in flight at once to one endpoint."),
							NULL, &fp_attribution_postback_endpoint_concurrency,
							4, 1, 256, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("fp_attribution.postback_timeout",
							gettext_noop("Total time allowed for one postback request."),
							NULL, &fp_attribution_postback_timeout_ms,
							10000, 100, 300000, PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("fp_attribution.postback_max_attempts",
							gettext_noop("Attempts of a postback before it is given up."),
							NULL, &fp_attribution_postback_max_attempts,
							10, 1, 1000, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("fp_attribution.postback_max_age",
							gettext_noop("Age after which a postback not yet delivered is given up."),
							NULL, &fp_attribution_postback_max_age_s,
							24 * 60 * 60, 1, INT_MAX, PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("fp_attribution.postback_retry_initial",
							gettext_noop("Wait before the first retry of a postback; it doubles with each retry."),
							NULL, &fp_attribution_postback_retry_initial_ms,
							1000, 10, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("fp_attribution.postback_retry_max",
							gettext_noop("Longest wait between attempts of a postback, Retry-After included."),
							NULL, &fp_attribution_postback_retry_max_ms,
							5 * 60 * 1000, 10, 24 * 3600 * 1000, PGC_SIGHUP,
							GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("fp_attribution.postback_disable_after",
							gettext_noop("Failed attempts in a row after which a postback endpoint is disabled."),
							gettext_noop("0 never disables an endpoint."),
							&fp_attribution_postback_disable_after,
							10, 0, INT_MAX, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("fp_attribution.postback_retention",
							gettext_noop("How long delivered and given-up postbacks are kept before the postback worker deletes them."),
							gettext_noop("0 keeps them forever."),
							&fp_attribution_postback_retention_s,
							7 * 24 * 60 * 60, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("fp_attribution.postback_batch_delay",
							gettext_noop("Shortest time between two cycles of the postback worker without a backlog."),
							gettext_noop("A postback may leave this much later than it could; longer batches cost less CPU per postback."),
							&fp_attribution_postback_batch_delay_ms,
							200, 0, 1000, PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
}

/* Wake the postback worker when a transaction that enqueued commits */
static void
postbacks_xact_callback(XactEvent event, void *arg)
{
	uint32		procno;

	if (!wake_at_commit)
		return;
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_PARALLEL_COMMIT &&
		event != XACT_EVENT_ABORT && event != XACT_EVENT_PARALLEL_ABORT &&
		event != XACT_EVENT_PREPARE)
		return;
	wake_at_commit = false;
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_PARALLEL_COMMIT)
		return;
	if (fp_attribution_shared == NULL || !fp_attribution_postback_enabled)
		return;
	procno = pg_atomic_read_u32(&fp_attribution_shared->postback_worker_procno);
	if (procno < ProcGlobal->allProcCount)
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
}

/*
 * Columns of the outbox a plan fills, and what fills the common ones
 * (e.endpoint_id: the endpoint of each row)
 */
#define OUTBOX_COLUMNS \
	"INSERT INTO attribution.postback_outbox (advertiser_id, endpoint_id, event," \
	" order_id, click_id, affiliate_id, offer_id, status, revenue_cents," \
	" refunded_cents, commission_cents, currency, receipt_id, trace_id," \
	" span_id, sampled) SELECT $1, e.endpoint_id, $3, "
#define OUTBOX_CONTEXT \
	" $4, $5::attribution.trace_id, $6::attribution.span_id, $7"
#define OUTBOX_ENDPOINTS \
	" AND e.active AND $3 OPERATOR(pg_catalog.=) ANY (e.events)"

/* The endpoints of a conversion's row */
#define ROW_SOURCE \
	" FROM attribution.conversions c" \
	" JOIN attribution.postback_endpoints e" \
	" ON e.advertiser_id OPERATOR(pg_catalog.=) c.advertiser_id" \
	" AND e.affiliate_id OPERATOR(pg_catalog.=) c.affiliate_id" \
	" WHERE c.advertiser_id OPERATOR(pg_catalog.=) $1" \
	" AND c.order_id OPERATOR(pg_catalog.=) $2" OUTBOX_ENDPOINTS

/*
 * The enqueue statements.  A payload holding the whole row (the creating
 * event, a late attribution) is the snapshot itself: no read of the
 * conversions table, which the insert trigger of a table copy (a shard)
 * must not name; its endpoints are found apart (the cache or the probe,
 * which returns their ids) and the INSERT writes a row for each id of $9.
 * A lifecycle payload holds only what changed: the row is read by key,
 * joined to its endpoints, and each member of the payload replaces its
 * column (the command writes its receipt before it updates the row,
 * lifecycle.c; the fold of fp_attribution_fold_event).  Each INSERT is
 * preceded by a probe or a cache hit (a SELECT, which the telemetry does
 * not record as a DB-operation span), so that a conversion whose
 * affiliate has no endpoint, the common case, writes nothing and shows no
 * INSERT.  Every name is schema-qualified: a direct INSERT runs this under
 * the writer's search_path.  Each is prepared per shard group of its $1, the
 * advertiser_id (spi_plans.c).
 */
static Oid	postback_types[9] = {TEXTOID, TEXTOID, TEXTOID, UUIDOID, TEXTOID,
	TEXTOID, BOOLOID, JSONBOID, INT8ARRAYOID};

/* The ids of the active endpoints of the payload's affiliate wanting the event */
static FpGroupPlan payload_probe = {
	.sql = "SELECT e.endpoint_id FROM attribution.postback_endpoints e"
		" WHERE e.advertiser_id OPERATOR(pg_catalog.=) $1"
		" AND e.affiliate_id OPERATOR(pg_catalog.=) ($8 OPERATOR(pg_catalog.->>) 'affiliate_id')"
		OUTBOX_ENDPOINTS,
	.nargs = 8,
	.argtypes = postback_types
};
static FpGroupPlan row_probe = {
	.sql = "SELECT 1" ROW_SOURCE " LIMIT 1",
	.nargs = 8,
	.argtypes = postback_types
};
static FpGroupPlan payload_insert = {
	.sql = OUTBOX_COLUMNS
		"r.p OPERATOR(pg_catalog.->>) 'order_id',"
		" (r.p OPERATOR(pg_catalog.->>) 'click_id')::pg_catalog.uuid,"
		" r.p OPERATOR(pg_catalog.->>) 'affiliate_id',"
		" r.p OPERATOR(pg_catalog.->>) 'offer_id',"
		" r.p OPERATOR(pg_catalog.->>) 'status',"
		" (r.p OPERATOR(pg_catalog.->>) 'revenue_cents')::pg_catalog.int8,"
		" (r.p OPERATOR(pg_catalog.->>) 'refunded_cents')::pg_catalog.int8,"
		" (r.p OPERATOR(pg_catalog.->>) 'commission_cents')::pg_catalog.int8"
		" OPERATOR(pg_catalog.-)"
		" (r.p OPERATOR(pg_catalog.->>) 'commission_reversed_cents')::pg_catalog.int8,"
		" r.p OPERATOR(pg_catalog.->>) 'currency'," OUTBOX_CONTEXT
		" FROM (SELECT $8 AS p) r, pg_catalog.unnest($9) AS e(endpoint_id)",
	.nargs = 9,
	.argtypes = postback_types
};
static FpGroupPlan row_insert = {
	.sql = OUTBOX_COLUMNS
		"c.order_id, c.click_id, c.affiliate_id, c.offer_id,"
		" COALESCE($8 OPERATOR(pg_catalog.->>) 'status', c.status),"
		" c.revenue_cents,"
		" COALESCE(($8 OPERATOR(pg_catalog.->>) 'refunded_cents')::pg_catalog.int8,"
		" c.refunded_cents),"
		" c.commission_cents OPERATOR(pg_catalog.-)"
		" COALESCE(($8 OPERATOR(pg_catalog.->>) 'commission_reversed_cents')::pg_catalog.int8,"
		" c.commission_reversed_cents),"
		" c.currency," OUTBOX_CONTEXT
		ROW_SOURCE,
	.nargs = 8,
	.argtypes = postback_types
};

/* Relcache invalidation: forget the endpoint cache when it concerns the table */
static void
forget_endpoints(Datum arg, Oid relid)
{
	if (endpoint_cache == NULL || (OidIsValid(relid) && relid != endpoints_relid))
		return;
	hash_destroy(endpoint_cache);
	endpoint_cache = NULL;
	cache_generation++;
}

/*
 * The endpoint cache, created empty when there is none; NULL when it is
 * not used (a Citus node).
 */
static HTAB *
endpoint_cache_get(void)
{
	HASHCTL		ctl;

	fp_attribution_on_relcache_inval(forget_endpoints);
	if (endpoint_cache != NULL && hash_get_num_entries(endpoint_cache) < ENDPOINT_CACHE_MAX)
		return cache_usable ? endpoint_cache : NULL;
	if (endpoint_cache != NULL)
		hash_destroy(endpoint_cache);
	endpoints_relid = fp_attribution_table_oid("postback_endpoints");
	cache_usable = !OidIsValid(get_extension_oid("citus", true));
	ctl.keysize = sizeof(((EndpointCacheEntry *) NULL)->key);
	ctl.entrysize = sizeof(EndpointCacheEntry);
	endpoint_cache = hash_create("fp_attribution postback endpoints", 64, &ctl,
								 HASH_ELEM | HASH_STRINGS);
	return cache_usable ? endpoint_cache : NULL;
}

/* The member "name" of a receipt payload (an object), or NULL */
static JsonbValue *
payload_member(Jsonb *payload, const char *name)
{
	JsonbValue	key;

	key.type = jbvString;
	key.val.string.val = (char *) name;
	key.val.string.len = strlen(name);
	return findJsonbValueFromContainer(&payload->root, JB_FOBJECT, &key);
}

/* The index in event_map of a receipt payload's "event", or -1 */
static int
payload_event(Jsonb *payload)
{
	JsonbValue *v = payload_member(payload, "event");

	if (v == NULL || v->type != jbvString)
		return -1;
	for (int i = 0; i < lengthof(event_map); i++)
		if (strlen(event_map[i].receipt_event) == v->val.string.len &&
			memcmp(event_map[i].receipt_event, v->val.string.val,
				   v->val.string.len) == 0)
			return i;
	return -1;
}

/*
 * The endpoint cache's entry for the creating event of a conversion of
 * advertiser and affiliate, or NULL: not known (the probe answers, with
 * the latest snapshot, and key is where the answer goes; "" when the
 * cache is not used).
 */
static EndpointCacheEntry *
cached_endpoints(const char *advertiser, const JsonbValue *affiliate,
				 const char *event, char *key, size_t keysize)
{
	HTAB	   *cache;

	key[0] = '\0';
	/* a change committed since the last command empties the cache */
	AcceptInvalidationMessages();
	cache = endpoint_cache_get();
	if (cache == NULL ||
		snprintf(key, keysize, "%zu:%s%d:%.*s%s", strlen(advertiser), advertiser,
				 affiliate->val.string.len, affiliate->val.string.len,
				 affiliate->val.string.val, event) >= (int) keysize)
	{
		key[0] = '\0';
		return NULL;
	}
	return hash_search(cache, key, HASH_FIND, NULL);
}

/*
 * The ids of the endpoints the probe found (SPI_tuptable), as an int8[];
 * kept in the cache under key unless key is "", an invalidation came
 * while the probe ran (generation) or there are too many.
 */
static Datum
probed_endpoints(const char *key, uint64 generation)
{
	Datum	   *ids = palloc(sizeof(Datum) * Max(SPI_processed, 1));

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		ids[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
	}
	if (key[0] != '\0' && generation == cache_generation && endpoint_cache != NULL &&
		SPI_processed <= ENDPOINTS_CACHED)
	{
		EndpointCacheEntry *entry = hash_search(endpoint_cache, key, HASH_ENTER, NULL);

		entry->nendpoints = (int) SPI_processed;
		for (int i = 0; i < entry->nendpoints; i++)
			entry->endpoints[i] = DatumGetInt64(ids[i]);
	}
	return PointerGetDatum(construct_array(ids, (int) SPI_processed, INT8OID,
										   sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * The member "name" of a receipt payload as ->> gives it, in *value (NULL
 * for a JSON null or a missing member); false for an object or array,
 * which no member read here holds in a payload the commands write.
 */
static bool
payload_text(Jsonb *payload, const char *name, const char **value)
{
	JsonbValue *v = payload_member(payload, name);

	*value = NULL;
	if (v == NULL || v->type == jbvNull)
		return true;
	if (v->type == jbvString)
		*value = pnstrdup(v->val.string.val, v->val.string.len);
	else if (v->type == jbvNumeric)
		*value = DatumGetCString(DirectFunctionCall1(numeric_out,
													 NumericGetDatum(v->val.numeric)));
	else if (v->type == jbvBool)
		*value = v->val.boolean ? "true" : "false";
	else
		return false;
	return true;
}

/* ... cast to bigint, as (p ->> name)::bigint: *has false for NULL */
static bool
payload_int8(Jsonb *payload, const char *name, bool *has, int64 *value)
{
	const char *text;

	if (!payload_text(payload, name, &text))
		return false;
	*has = text != NULL;
	*value = text ? DatumGetInt64(DirectFunctionCall1(int8in, CStringGetDatum(text))) : 0;
	return true;
}

/*
 * The outbox row of a creating event's payload, as payload_insert writes
 * it; false when a member it reads is an object or array (the statement
 * writes that row then)
 */
static bool
outbox_row(const FpReceiptEnvelope *env, Jsonb *payload, const char *event,
		   bool sampled, FpOutboxRow *row)
{
	const char *click_id;
	bool		has_reversed;
	int64		reversed;

	memset(row, 0, sizeof(*row));
	row->advertiser_id = env->advertiser_id;
	row->event = event;
	row->receipt_id = env->receipt_id;
	row->trace_id = env->trace_id;
	row->span_id = env->span_id;
	row->sampled = sampled;
	if (!payload_text(payload, "order_id", &row->order_id) ||
		!payload_text(payload, "click_id", &click_id) ||
		!payload_text(payload, "affiliate_id", &row->affiliate_id) ||
		!payload_text(payload, "offer_id", &row->offer_id) ||
		!payload_text(payload, "status", &row->status) ||
		!payload_int8(payload, "revenue_cents", &row->has_revenue_cents, &row->revenue_cents) ||
		!payload_int8(payload, "refunded_cents", &row->has_refunded_cents, &row->refunded_cents) ||
		!payload_int8(payload, "commission_cents", &row->has_commission_cents,
					  &row->commission_cents) ||
		!payload_int8(payload, "commission_reversed_cents", &has_reversed, &reversed) ||
		!payload_text(payload, "currency", &row->currency))
		return false;
	if ((row->has_click_id = click_id != NULL))
		row->click_id = *DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(click_id)));
	row->has_commission_cents = row->has_commission_cents && has_reversed;
	if (row->has_commission_cents)
		row->commission_cents = DatumGetInt64(DirectFunctionCall2(int8mi,
																  Int64GetDatum(row->commission_cents),
																  Int64GetDatum(reversed)));
	return true;
}

/*
 * Enqueue the postbacks of a conversion's receipt (see the file header).
 * Caller: the receipt writer, connected to SPI, running as the extension's
 * owner, right after the receipt's insert; env is the written receipt.
 * Receipts of other aggregates return at once.
 */
void
fp_attribution_postbacks_enqueue(const FpReceiptEnvelope *env, Jsonb *payload)
{
	int			event_index;
	const char *event;
	char		trace_hex[2 * FP_TRACE_ID_LEN + 1];
	char		span_hex[2 * FP_SPAN_ID_LEN + 1];
	FpTraceId	cmd_trace;
	FpSpanId	cmd_span;
	uint8		flags = FP_TRACE_FLAG_SAMPLED;
	Datum		args[9];
	JsonbValue *affiliate = NULL;
	char		key[sizeof(((EndpointCacheEntry *) NULL)->key)];
	EndpointCacheEntry *known = NULL;
	uint64		generation;
	Oid			outbox_relid = InvalidOid;
	FpOutboxRow row;
	bool		written = false;
	int			rc;

	if (strcmp(env->aggregate_type, "conversion") != 0 ||
		(event_index = payload_event(payload)) < 0)
		return;
	event = event_map[event_index].event;
	key[0] = '\0';
	/* unattributed: no affiliate, no postback */
	if ((affiliate = payload_member(payload, "affiliate_id")) != NULL &&
		affiliate->type != jbvString)
		return;

	/*
	 * The outbox is locked before the endpoints are trusted ("Deleting an
	 * endpoint" above), unless the cache knows there are none; it is asked
	 * again if taking the lock read an invalidation.
	 */
	for (;;)
	{
		if (affiliate != NULL)
		{
			known = cached_endpoints(env->advertiser_id, affiliate, event, key, sizeof(key));
			if (known != NULL && known->nendpoints == 0)
				return;
		}
		generation = cache_generation;
		if (OidIsValid(outbox_relid))
			break;
		outbox_relid = fp_attribution_table_oid("postback_outbox");
		LockRelationOid(outbox_relid, RowExclusiveLock);
		if (generation == cache_generation)
			break;
	}
	/* the command's sampling decides whether its attempts become spans */
	if (fp_attribution_telemetry_current_command(&cmd_trace, &cmd_span, &flags) &&
		memcmp(&cmd_trace, &env->trace_id, sizeof(cmd_trace)) != 0)
		flags = FP_TRACE_FLAG_SAMPLED;
	fp_attribution_hex_encode(env->trace_id.bytes, FP_TRACE_ID_LEN, trace_hex);
	fp_attribution_hex_encode(env->span_id.bytes, FP_SPAN_ID_LEN, span_hex);
	args[0] = CStringGetTextDatum(env->advertiser_id);
	args[1] = CStringGetTextDatum(env->aggregate_id);
	args[2] = CStringGetTextDatum(event);
	args[3] = UUIDPGetDatum(&env->receipt_id);
	args[4] = CStringGetTextDatum(trace_hex);
	args[5] = CStringGetTextDatum(span_hex);
	args[6] = BoolGetDatum((flags & FP_TRACE_FLAG_SAMPLED) != 0);
	args[7] = JsonbPGetDatum(payload);
	args[8] = (Datum) 0;
	if (known != NULL)
	{
		Datum		ids[ENDPOINTS_CACHED];

		for (int i = 0; i < known->nendpoints; i++)
			ids[i] = Int64GetDatum(known->endpoints[i]);
		args[8] = PointerGetDatum(construct_array(ids, known->nendpoints, INT8OID,
												  sizeof(int64), FLOAT8PASSBYVAL,
												  TYPALIGN_DOUBLE));
	}
	else
	{
		SPIPlanPtr	probe = fp_attribution_group_plan(affiliate != NULL ? &payload_probe : &row_probe,
													  args[0]);

		rc = key[0] != '\0' ?
			SPI_execute_snapshot(probe, args, NULL, GetLatestSnapshot(), InvalidSnapshot,
								 true, false, 0) :
			SPI_execute_plan(probe, args, NULL, false, affiliate != NULL ? 0 : 1);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "could not look up postback endpoints: %s", SPI_result_code_string(rc));
		if (affiliate != NULL)
			args[8] = probed_endpoints(key, generation);
		if (SPI_processed == 0)
			return;
	}
	if (affiliate != NULL && key[0] != '\0' &&
		outbox_row(env, payload, event, DatumGetBool(args[6]), &row))
	{
		ArrayType  *ids = DatumGetArrayTypeP(args[8]);

		/* the cache is used, so this is no Citus node: the outbox is here */
		written = fp_attribution_postback_enqueue_in_place(outbox_relid, &row,
														   (int64 *) ARR_DATA_PTR(ids),
														   ArrayGetNItems(ARR_NDIM(ids),
																		  ARR_DIMS(ids)));
	}
	if (!written)
	{
		rc = SPI_execute_plan(fp_attribution_group_plan(affiliate != NULL ? &payload_insert : &row_insert,
														args[0]),
							  args, NULL, false, 0);
		if (rc != SPI_OK_INSERT)
			elog(ERROR, "could not enqueue postbacks: %s", SPI_result_code_string(rc));
		if (SPI_processed == 0)
			return;
	}
	if (!callback_registered)
	{
		RegisterXactCallback(postbacks_xact_callback, NULL);
		callback_registered = true;
	}
	wake_at_commit = true;
}

/*
 * Trigger postback_endpoints_changed (AFTER, FOR EACH STATEMENT): a
 * relcache invalidation of the table at commit, which empties every
 * backend's endpoint cache (see the file header).
 */
PG_FUNCTION_INFO_V1(fp_attribution_postback_endpoints_changed);
Datum
fp_attribution_postback_endpoints_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("postback_endpoints_changed() must be called as a trigger")));
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}

/*
 * Trigger postback_endpoint_in_use (see "Deleting an endpoint" in the
 * file header).  BEFORE DELETE or UPDATE OF advertiser_id, endpoint_id,
 * FOR EACH STATEMENT: SHARE on the outbox before any row is locked; FOR
 * EACH ROW: no row of the endpoint in the outbox (an UPDATE of the key
 * even to the same value).  AFTER TRUNCATE: SHARE on the outbox and no
 * row in it (after the statement, which may have truncated it too).  The
 * outbox is read as the owner of the extension's tables, with the latest
 * snapshot: rows committed by the transactions the lock waited for count.
 */
PG_FUNCTION_INFO_V1(fp_attribution_postback_endpoint_in_use);
Datum
fp_attribution_postback_endpoint_in_use(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	bool		row;
	Datum		key[2] = {0};
	bool		isnull;
	SPIPlanPtr	plan;
	Oid			save_user;
	int			save_sec;
	bool		used;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("postback_endpoint_in_use() must be called as a trigger")));
	rel = trigdata->tg_relation;
	row = TRIGGER_FIRED_FOR_ROW(trigdata->tg_event);
	if (row)
	{
		/* advertiser_id and endpoint_id, the table's first columns since 2.0 */
		key[0] = heap_getattr(trigdata->tg_trigtuple, 1, RelationGetDescr(rel), &isnull);
		key[1] = heap_getattr(trigdata->tg_trigtuple, 2, RelationGetDescr(rel), &isnull);
	}
	else
	{
		LockRelationOid(fp_attribution_table_oid("postback_outbox"), ShareLock);
		if (!TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
			return PointerGetDatum(NULL);
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(rel->rd_rel->relowner,
						   save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_NOFORCE_RLS);
	plan = SPI_prepare(row ?
					   "SELECT FROM attribution.postback_outbox o"
					   " WHERE o.advertiser_id OPERATOR(pg_catalog.=) $1"
					   " AND o.endpoint_id OPERATOR(pg_catalog.=) $2 LIMIT 1" :
					   "SELECT FROM attribution.postback_outbox LIMIT 1",
					   row ? 2 : 0, (Oid[]) {TEXTOID, INT8OID});
	if (plan == NULL)
		elog(ERROR, "could not prepare the look for postbacks: %s",
			 SPI_result_code_string(SPI_result));
	if (SPI_execute_snapshot(plan, key, NULL, GetLatestSnapshot(), InvalidSnapshot,
							 true, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look for postbacks");
	used = SPI_processed > 0;
	SetUserIdAndSecContext(save_user, save_sec);
	SPI_finish();
	if (used && !row)
		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("cannot truncate table \"%s\"", RelationGetRelationName(rel)),
				 errdetail("The postback outbox has postbacks of its endpoints."),
				 errhint("Truncate attribution.postback_outbox in the same statement.")));
	if (used)
		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 TRIGGER_FIRED_BY_DELETE(trigdata->tg_event) ?
				 errmsg("cannot delete postback endpoint %lld of advertiser \"%s\"",
						(long long) DatumGetInt64(key[1]), TextDatumGetCString(key[0])) :
				 errmsg("cannot change the key of postback endpoint %lld of advertiser \"%s\"",
						(long long) DatumGetInt64(key[1]), TextDatumGetCString(key[0])),
				 errdetail("The postback outbox has postbacks for it: its history, and pending ones would never be sent."),
				 errhint("Deactivate it (active = false), or delete its postbacks first, in a transaction that begins with LOCK TABLE attribution.postback_outbox IN SHARE ROW EXCLUSIVE MODE.")));
	return PointerGetDatum(row && TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ?
						   trigdata->tg_newtuple : trigdata->tg_trigtuple);
}

/*
 * attribution.postback_template_check(url_template text) returns boolean
 *
 * True for a valid template (postback_template.c); otherwise raises
 * 22023 naming the template redacted, as it may hold a token.
 */
PG_FUNCTION_INFO_V1(fp_attribution_postback_template_check);
Datum
fp_attribution_postback_template_check(PG_FUNCTION_ARGS)
{
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char		why[512];

	if (!fp_attribution_postback_template_valid(url, why, sizeof(why)))
	{
		char		shown[512];

		fp_attribution_redact_urls(shown, url, sizeof(shown));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid postback URL template \"%s\"", shown),
				 errdetail("%s", why)));
	}
	PG_RETURN_BOOL(true);
}

/*
 * attribution.redact_url(url text) returns text
 *
 * The text with every URL's userinfo and query string (and fragment)
 * replaced by "***" (redact.c), as every message shows them.
 */
PG_FUNCTION_INFO_V1(fp_attribution_redact_url);
Datum
fp_attribution_redact_url(PG_FUNCTION_ARGS)
{
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(0));
	size_t		size;
	char	   *shown;

	/*
	 * Each URL grows by at most 6 bytes ("***" after its "@" and after its
	 * "?") and holds at least 3 ("://"), so twice the length is room enough
	 */
	size = add_size(mul_size(strlen(url), 2), 16);
	shown = palloc(size);
	fp_attribution_redact_urls(shown, url, size);
	PG_RETURN_TEXT_P(cstring_to_text(shown));
}
