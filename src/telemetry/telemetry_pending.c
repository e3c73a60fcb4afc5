/*-------------------------------------------------------------------------
 *
 * telemetry_pending.c
 *	  What a backend observes of its commands, kept in backend-local memory
 *	  until its transaction ends: the pending spans, log records and metric
 *	  tallies, the bounds on them, and the running command.  The executor
 *	  hooks (telemetry_exec.c) and the row trigger (telemetry_row.c) fill
 *	  it; telemetry_xact.c hands it over to shared memory with the outcome.
 *	  The state they share is declared in telemetry_pending.h.
 *
 * The command span starts when attribution.new_command_context() (or a
 * command's C function) resolves the command's context
 * (fp_attribution_telemetry_begin_command); its span id is the one stored
 * in the row.  The lifecycle commands name themselves
 * (fp_attribution_telemetry_name_command); the others are named after the
 * table they write (telemetry_exec.c).  A resolved context that writes
 * neither table is not a command.
 *
 * Time.  Timestamps are the transaction's first wall-clock reading plus
 * CLOCK_MONOTONIC time since (fp_attribution_telemetry_clock(), with
 * clock.h): start times stay wall-clock times, durations are monotonic
 * and never negative, whatever the system clock does meanwhile.
 *
 * Text.  Records hold UTF-8, as OTLP and JSON require: strings of the
 * database (row values, error messages, the database name) are converted
 * from the database encoding when they are copied into a record.
 *
 * Bounds.  A transaction keeps at most fp_attribution.max_spans spans and
 * max_logs log records (what the rings hold), and no more than
 * fp_attribution.max_pending_telemetry of memory for them (measured on the
 * memory context, blocks and all); the rest are counted as dropped at once
 * and not kept.  A command with no room is the one static spare_command,
 * and a row's log record with no room is filled in a static scratch
 * record, so a bulk INSERT allocates nothing per row beyond the bound.
 * Metric increments are tallied per subtransaction and key, so a
 * million-row INSERT needs little memory.
 *
 * Locking: none; everything is backend-local.  Shared memory is only
 * touched through telemetry.c, at transaction end (telemetry_xact.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "commands/dbcommands.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "fp_attribution/telemetry.h"
#include "fp_attribution/telemetry_pending.h"
#include "fp_attribution/telemetry_record.h"
#include "fp_attribution/trace_context.h"

FpPending	fp_attribution_pending;

/* Short for the state, in this file */
static FpPending *const pending = &fp_attribution_pending;

static PendingCommand spare_command;	/* a command with no room to record */

/* db.system.name and db.namespace; type 0 until built */
static FpAttribute db_attrs[2];

/*
 * The index of the transaction's tallies: simplehash, open addressing in
 * one array, which the end of the transaction drops with tally_cxt.  A key
 * is hashed and compared up to its NUL, not over its whole buffer.
 */
typedef struct TallyEntry
{
	const TallyKey *key;		/* &tally->k */
	Tally	   *tally;
	uint32		hash;
	char		status;			/* simplehash's */
} TallyEntry;

static inline uint32
tally_key_hash(const TallyKey *k)
{
	return hash_bytes((const unsigned char *) k,
					  offsetof(TallyKey, key) + strlen(k->key));
}

static inline bool
tally_key_equal(const TallyKey *a, const TallyKey *b)
{
	return memcmp(a, b, offsetof(TallyKey, key)) == 0 &&
		strcmp(a->key, b->key) == 0;
}

#define SH_PREFIX tallytab
#define SH_ELEMENT_TYPE TallyEntry
#define SH_KEY_TYPE const TallyKey *
#define SH_KEY key
#define SH_HASH_KEY(tb, k) tally_key_hash(k)
#define SH_EQUAL(tb, a, b) tally_key_equal(a, b)
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/* Keeper block of the context: a command's spans and logs with room to spare */
#define XACT_CXT_KEEP (128 * 1024)
/* Its largest block: what it may hold beyond max_pending_telemetry */
#define XACT_CXT_MAX_BLOCK (1024 * 1024)

bool
fp_attribution_telemetry_active(void)
{
	return fp_attribution_telemetry_enabled &&
		fp_attribution_telemetry_available() && !IsParallelWorker();
}

/* The transaction's clock, in nanoseconds since the Unix epoch */
int64
fp_attribution_telemetry_clock(void)
{
	int64		mono = fp_attribution_monotonic_ns();

	if (pending->anchor_wall == 0)
	{
		pending->anchor_wall = fp_attribution_now_unix_nano();
		pending->anchor_mono = mono;
	}
	return pending->anchor_wall + (mono - pending->anchor_mono);
}

/*
 * size bytes in xact_cxt.  The records are a few kB each, allocated in
 * order and mostly freed together: a generation context wastes nothing on
 * them, where an AllocSet would round them up to a power of two.  It
 * keeps its first block across resets: sized for a typical transaction's
 * records, it spares a malloc/free per commit.
 */
static MemoryContext
pending_cxt(void)
{
	if (pending->cxt == NULL)
		pending->cxt = GenerationContextCreate(TopMemoryContext,
										   "fp_attribution telemetry",
										   XACT_CXT_KEEP, XACT_CXT_KEEP,
										   XACT_CXT_MAX_BLOCK);
	return pending->cxt;
}

static void *
pending_bytes_alloc(Size size)
{
	return MemoryContextAlloc(pending_cxt(), size);
}

/* A pending item, owned by the current subtransaction */
void *
fp_attribution_pending_alloc(Size size)
{
	PendingHead *h = pending_bytes_alloc(size);

	h->subid = GetCurrentSubTransactionId();
	h->aborted = false;
	return h;
}

List *
fp_attribution_pending_append(List *list, void *item)
{
	MemoryContext old = MemoryContextSwitchTo(pending_cxt());

	list = lappend(list, item);
	MemoryContextSwitchTo(old);
	return list;
}

/* Grow a pointer array of handover to hold at least want entries */
static void
handover_room(void ***array, int *room, int want)
{
	int			new_room = Max(*room * 2, 64);

	if (want <= *room)
		return;
	while (new_room < want)
		new_room *= 2;
	if (*array == NULL)
		*array = pending_bytes_alloc(new_room * sizeof(void *));
	else
		*array = repalloc(*array, new_room * sizeof(void *));
	*room = new_room;
}

/*
 * Whether bytes more fit in fp_attribution.max_pending_telemetry: the
 * memory xact_cxt holds, blocks and all, so that the bound is on what the
 * backend really uses (it can exceed it by one block, XACT_CXT_MAX_BLOCK).
 */
static bool
fits(Size bytes)
{
	Size		held = pending->cxt ? MemoryContextMemAllocated(pending->cxt, false) : 0;

	return held + bytes <= (Size) fp_attribution_max_pending_telemetry * 1024;
}

/*
 * n more spans (reserved == &pending->reserved_spans) or log records
 * (&pending->reserved_logs) to hand over
 */
static void
take(int *reserved, int n)
{
	*reserved += n;
	if (reserved == &pending->reserved_spans)
		handover_room((void ***) &pending->handover.spans,
					  &pending->handover.spans_room, *reserved);
	else
		handover_room((void ***) &pending->handover.logs,
					  &pending->handover.logs_room, *reserved);
	if (fp_attribution_log_json && pending->json_line.data == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		initStringInfo(&pending->json_line);
		enlargeStringInfo(&pending->json_line, FP_LOG_JSON_LINE_MAX);
		MemoryContextSwitchTo(old);
	}
}

/*
 * Make room for n more spans (or log records) in what the transaction
 * hands over, within the cap of the shared ring (fp_attribution.max_spans,
 * max_logs; beyond it they would only overwrite each other) and within
 * fp_attribution.max_pending_telemetry for bytes more of memory.  No
 * room: false, and they count as dropped.
 */
static bool
reserve(int *reserved, int cap, int n, Size bytes, uint64 *dropped)
{
	if (*reserved + n > cap || !fits(bytes + n * sizeof(void *)))
	{
		*dropped += n;
		return false;
	}
	take(reserved, n);
	return true;
}

/*
 * Create the tally of key k, empty, which is not there yet.  Tallies are
 * allocated in tally_cxt and listed in creation order.
 */
static Tally *
tally_create(const TallyKey *k)
{
	TallyEntry *e;
	Tally	   *t;
	bool		found;

	if (pending->tally_index == NULL)
	{
		if (pending->tally_cxt == NULL)
			pending->tally_cxt = AllocSetContextCreate(TopMemoryContext,
													   "fp_attribution telemetry tallies",
													   ALLOCSET_DEFAULT_SIZES);
		pending->tally_index = tallytab_create(pending->tally_cxt, 16, NULL);
	}
	if (pending->n_tallies == pending->tallies_room)
	{
		int			room = Max(pending->tallies_room * 2, 16);

		pending->tallies = pending->tallies == NULL ?
			MemoryContextAlloc(pending->tally_cxt, room * sizeof(Tally *)) :
			repalloc(pending->tallies, room * sizeof(Tally *));
		pending->tallies_room = room;
	}
	t = MemoryContextAllocZero(pending->tally_cxt, sizeof(Tally));
	t->k = *k;
	e = tallytab_insert(pending->tally_index, &t->k, &found);
	Assert(!found);
	e->tally = t;
	pending->tallies[pending->n_tallies++] = t;
	return t;
}

/* The tally of key k, or NULL */
static Tally *
tally_find(const TallyKey *k)
{
	TallyEntry *e;

	if (pending->tally_index == NULL)
		return NULL;
	e = tallytab_lookup(pending->tally_index, k);
	return e != NULL ? e->tally : NULL;
}

/*
 * The tally of subtransaction subid for kind, command and key (NULL: no
 * key).  Beyond TALLY_MAX_KEYS tallies, a new key goes to the overflow
 * series.
 */
Tally *
fp_attribution_pending_tally(SubTransactionId subid, TallyKind kind,
							 int command, const char *key)
{
	TallyKey	k;
	Tally	   *t;

	/* the bytes after the key's NUL are neither hashed nor compared */
	k.subid = subid;
	k.kind = kind;
	k.command = command;
	k.overflow = false;
	if (key != NULL)
		fp_attribution_copy_text(k.key, key, sizeof(k.key));
	else
		k.key[0] = '\0';
	if ((t = tally_find(&k)) != NULL)
		return t;
	if (key != NULL && pending->n_tallies >= TALLY_MAX_KEYS)
	{
		k.key[0] = '\0';
		k.overflow = true;
		if ((t = tally_find(&k)) != NULL)
			return t;
	}
	return tally_create(&k);
}

/* Add the increments of src to dst */
static void
tally_add(Tally *dst, const Tally *src)
{
	dst->n += src->n;
	dst->revenue_cents = fp_attribution_add_revenue(dst->revenue_cents, src->revenue_cents);
	fp_attribution_telemetry_merge_tally(&dst->latency, &src->latency);
}

/*
 * Give the tallies of subtransaction subid (and its children) to parent
 * (commit), or, at abort, forget their business increments and add their
 * commands to rolled_back.  Creation order is kept: a tally that joins
 * one of parent's was created after it.  The abort allocates nothing.
 */
void
fp_attribution_pending_tallies_subxact(SubTransactionId subid,
									   SubTransactionId parent, bool abort)
{
	int			kept = 0;
	bool		found;

	for (int i = 0; i < pending->n_tallies; i++)
	{
		Tally	   *t = pending->tallies[i];
		Tally	   *into;

		if (t->k.subid < subid)
		{
			pending->tallies[kept++] = t;
			continue;
		}
		tallytab_delete(pending->tally_index, &t->k);
		if (abort)
		{
			if (t->k.kind == TALLY_COMMANDS)
				fp_attribution_telemetry_merge_tally(fp_attribution_pending_latency(pending->rolled_back,
																					&pending->rolled_back_used,
																					t->k.command),
													 &t->latency);
			continue;
		}
		t->k.subid = parent;
		if ((into = tally_find(&t->k)) != NULL)
		{
			tally_add(into, t);
			continue;
		}
		tallytab_insert(pending->tally_index, &t->k, &found)->tally = t;
		pending->tallies[kept++] = t;
	}
	pending->n_tallies = kept;
}

/*
 * OTel semantic-convention attributes common to our database spans.  They
 * are the same in every span of the backend, so they are built once and
 * copied whole: every span of a command starts with them.
 */
void
fp_attribution_pending_db_attrs(FpSpanRecord *span)
{
	if (db_attrs[0].type == 0)
	{
		char	   *name = get_database_name(MyDatabaseId);

		strlcpy(db_attrs[0].key, "db.system.name", FP_ATTR_KEY_LEN);
		fp_attribution_attr_utf8(&db_attrs[0], "postgresql");
		strlcpy(db_attrs[1].key, "db.namespace", FP_ATTR_KEY_LEN);
		fp_attribution_attr_str(&db_attrs[1], name ? name : "");
	}
	if (span->n_attrs + lengthof(db_attrs) <= FP_SPAN_MAX_ATTRS)
	{
		memcpy(&span->attrs[span->n_attrs], db_attrs, sizeof(db_attrs));
		span->n_attrs += lengthof(db_attrs);
	}
	else
	{
		for (int i = 0; i < lengthof(db_attrs); i++)
			*fp_attribution_span_attr(span, db_attrs[i].key) = db_attrs[i];
	}
}

/*
 * How many log records a finished command has: started, succeeded or
 * failed, and for an error the exception and perhaps the broken rule
 */
static int
command_log_count(const PendingCommand *cmd)
{
	return 2 + (cmd->failed ? 1 : 0) + (fp_attribution_command_breaks_rule(cmd) ? 1 : 0);
}

/*
 * A finished command that had no room for its span and log records: count
 * them as dropped, tally its metrics and forget it.  The caller has taken
 * it off the commands list.  A rolled-back one goes to rolled_back: in an
 * abort callback this allocates nothing.
 */
void
fp_attribution_pending_retire_command(PendingCommand *cmd)
{
	if (cmd->forwarded)
		pending->dropped_spans += cmd->sampled ? 1 : 0;
	else if (cmd->kind != FP_COMMAND_UNKNOWN)
	{
		FpLatencyTally *t = cmd->head.aborted ?
			fp_attribution_pending_latency(pending->rolled_back,
										   &pending->rolled_back_used, cmd->kind) :
			&fp_attribution_pending_tally(cmd->head.subid, TALLY_COMMANDS, cmd->kind, NULL)->latency;

		fp_attribution_telemetry_tally_command(t, cmd->end_ns - cmd->start_ns);
		pending->dropped_spans += cmd->sampled ? 1 : 0;
		pending->dropped_logs += command_log_count(cmd);
	}
	if (cmd != &spare_command)
		pfree(cmd);
}

/* End the running command at time now */
void
fp_attribution_pending_end_current(int64 now)
{
	if (pending->current != NULL)
	{
		pending->current->end_ns = now;
		if (!pending->current->recorded)
		{
			Assert(llast(pending->commands) == pending->current);
			pending->commands = list_delete_last(pending->commands);
			fp_attribution_pending_retire_command(pending->current);
		}
		pending->current = NULL;
	}
}

/*
 * A new pending log record (NULL: into scratch, when there is no room for
 * it); body is in the database encoding.
 */
PendingLog *
fp_attribution_pending_new_log(PendingLog *scratch, bool business,
							   FpSeverity severity, const char *event_name,
							   const char *body, int64 time,
							   const FpTraceId *trace_id,
							   const FpSpanId *span_id, uint8 flags)
{
	PendingLog *p = scratch ? scratch : fp_attribution_pending_alloc(sizeof(PendingLog));

	p->business = business;
	fp_attribution_log_init(&p->rec, severity, event_name, time, trace_id, span_id, flags);
	fp_attribution_copy_text(p->rec.body, body, sizeof(p->rec.body));
	return p;
}

/*
 * Room for one more log record (see reserve()); without room it counts as
 * dropped.
 */
bool
fp_attribution_pending_log_room(void)
{
	return reserve(&pending->reserved_logs, fp_attribution_max_logs, 1,
				   sizeof(PendingLog), &pending->dropped_logs);
}

/* Keep a log record, made with room for it, for the hand-over */
void
fp_attribution_pending_keep_log(PendingLog *log)
{
	pending->logs = fp_attribution_pending_append(pending->logs, log);
}

/*
 * A new span kept for the hand-over, its record to be filled by the
 * caller; NULL when there is no room (counted as dropped).
 */
PendingSpan *
fp_attribution_pending_span(void)
{
	PendingSpan *p;

	if (!reserve(&pending->reserved_spans, fp_attribution_max_spans, 1,
				 sizeof(PendingSpan), &pending->dropped_spans))
		return NULL;
	p = fp_attribution_pending_alloc(sizeof(PendingSpan));
	pending->spans = fp_attribution_pending_append(pending->spans, p);
	return p;
}

/* The command whose span id is span_id, searching newest first */
PendingCommand *
fp_attribution_pending_command_of_span(const FpSpanId *span_id)
{
	for (int i = list_length(pending->commands) - 1; i >= 0; i--)
	{
		PendingCommand *cmd = list_nth(pending->commands, i);

		if (memcmp(&cmd->span_id, span_id, sizeof(FpSpanId)) == 0)
			return cmd;
	}
	return NULL;
}

/*
 * Start a command with context ctx at time now: a command of this node
 * (its span a SERVER span, with the command's log records), or the span
 * of a call forwarded to another node (forwarded: a CLIENT span only; the
 * node that runs the command logs and counts it).  A recorded command
 * gets its records now (see PendingCommand), so that the abort callback
 * has only to fill them in.
 */
static PendingCommand *
start_command(const FpCommandContext *ctx, bool forwarded, int64 now)
{
	PendingCommand *cmd;
	bool		sampled = (ctx->flags & FP_TRACE_FLAG_SAMPLED) != 0;
	int			n_logs = forwarded ? 0 : COMMAND_LOGS;
	Size		bytes = sizeof(PendingCommand) + sizeof(ListCell) +
		n_logs * (sizeof(FpLogRecord) + sizeof(void *)) +
		(sampled ? sizeof(FpSpanRecord) + sizeof(void *) : 0);
	bool		recorded;

	fp_attribution_pending_end_current(now);

	/* no room: retire_command counts its records as dropped */
	recorded = (!sampled || pending->reserved_spans < fp_attribution_max_spans) &&
		pending->reserved_logs + n_logs <= fp_attribution_max_logs && fits(bytes);
	if (recorded)
	{
		take(&pending->reserved_logs, n_logs);
		if (sampled)
			take(&pending->reserved_spans, 1);
	}
	if (recorded)
		cmd = fp_attribution_pending_alloc(sizeof(PendingCommand));
	else
	{
		/* at most one unrecorded command runs: it is the current one */
		cmd = &spare_command;
		cmd->head.subid = GetCurrentSubTransactionId();
		cmd->head.aborted = false;
	}
	cmd->kind = FP_COMMAND_UNKNOWN;
	cmd->source = ctx->source;
	cmd->sampled = sampled;
	cmd->recorded = recorded;
	cmd->wrote_row = false;
	cmd->failed = false;
	cmd->forwarded = forwarded;
	cmd->start_ns = now;
	cmd->end_ns = 0;
	cmd->trace_id = ctx->trace_id;
	cmd->span_id = ctx->span_id;
	cmd->flags = ctx->flags;
	cmd->sqlstate[0] = '\0';
	cmd->message[0] = '\0';
	cmd->affiliate_id[0] = '\0';
	cmd->entity_id[0] = '\0';
	cmd->span = NULL;
	memset(cmd->logs, 0, sizeof(cmd->logs));
	if (cmd->recorded)
	{
		for (int i = 0; i < n_logs; i++)
			cmd->logs[i] = pending_bytes_alloc(sizeof(FpLogRecord));
		if (sampled)
		{
			FpSpanRecord *span = pending_bytes_alloc(sizeof(FpSpanRecord));

			/* named when it ends, after what it wrote */
			fp_attribution_span_init(span, "", forwarded ? FP_SPAN_KIND_CLIENT :
									 FP_SPAN_KIND_SERVER);
			span->trace_id = ctx->trace_id;
			span->span_id = ctx->span_id;
			span->parent_span_id = ctx->parent_span_id;
			span->parent_is_remote = ctx->source != FP_CONTEXT_NEW_ROOT;
			span->flags = ctx->flags;
			span->start_time_unix_nano = now;
			if (ctx->tracestate != NULL)
				fp_attribution_copy_utf8(span->trace_state, ctx->tracestate,
										 sizeof(span->trace_state));
			fp_attribution_pending_db_attrs(span);
			fp_attribution_attr_utf8(fp_attribution_span_attr(span, "fp.trace.source"),
									 fp_attribution_context_source_name(ctx->source));
			cmd->span = span;
			cmd->span_start_attrs = span->n_attrs;
		}
	}
	pending->commands = fp_attribution_pending_append(pending->commands, cmd);
	pending->current = cmd;
	return cmd;
}

/*
 * Called by attribution.new_command_context() once the context of a new
 * command is resolved: start its span.
 */
void
fp_attribution_telemetry_begin_command(const FpCommandContext *ctx)
{
	if (!fp_attribution_telemetry_active())
		return;
	fp_attribution_pending_command_in_write(start_command(ctx, false,
														  fp_attribution_telemetry_clock()));
}

/*
 * fp_attribution_call_forwarded_hook: delegation.c sends the call of
 * command to another node with ctx, the context of the span that forwards
 * it.  Kept until its statement starts (PlannedForward).  false when no
 * span is recorded for it: telemetry is off, or command is not one of
 * the commands telemetry names.
 */
bool
fp_attribution_telemetry_plan_forward(const FpCommandContext *ctx,
									  const char *command,
									  const char *affiliate_id,
									  const char *entity_id)
{
	PlannedForward *f = &pending->forward;
	FpCommandKind kind = FP_COMMAND_UNKNOWN;

	if (!fp_attribution_telemetry_active())
		return false;
	for (int k = FP_COMMAND_UNKNOWN + 1; k < FP_COMMAND_KINDS; k++)
		if (strcmp(command, fp_attribution_command_name(k)) == 0)
			kind = k;
	if (kind == FP_COMMAND_UNKNOWN)
		return false;
	f->armed = (ctx->flags & FP_TRACE_FLAG_SAMPLED) != 0;
	if (!f->armed)
		return true;			/* a span that records nothing */
	f->kind = kind;
	f->source = ctx->source;
	f->start_ns = fp_attribution_telemetry_clock();
	f->trace_id = ctx->trace_id;
	f->span_id = ctx->span_id;
	f->parent_span_id = ctx->parent_span_id;
	f->flags = ctx->flags;
	strlcpy(f->tracestate, ctx->tracestate ? ctx->tracestate : "",
			sizeof(f->tracestate));
	fp_attribution_copy_text(f->affiliate_id, affiliate_id ? affiliate_id : "",
							 sizeof(f->affiliate_id));
	fp_attribution_copy_text(f->entity_id, entity_id ? entity_id : "",
							 sizeof(f->entity_id));
	return true;
}

/*
 * The statement that forwards the planned call starts (telemetry_exec.c):
 * start its span, as the running command, from when the call was planned.
 */
void
fp_attribution_pending_start_forward(void)
{
	PlannedForward *f = &pending->forward;
	FpCommandContext ctx;
	PendingCommand *cmd;

	f->armed = false;
	ctx.trace_id = f->trace_id;
	ctx.span_id = f->span_id;
	ctx.parent_span_id = f->parent_span_id;
	ctx.flags = f->flags;
	ctx.source = f->source;
	ctx.tracestate = f->tracestate[0] != '\0' ? f->tracestate : NULL;
	cmd = start_command(&ctx, true, f->start_ns);
	cmd->kind = f->kind;
	memcpy(cmd->affiliate_id, f->affiliate_id, sizeof(cmd->affiliate_id));
	memcpy(cmd->entity_id, f->entity_id, sizeof(cmd->entity_id));
}

/*
 * The ids and trace flags of the command this backend runs, if any, for
 * the server log hook (server_log.c): reads backend-local state only, so
 * it is safe in an error context.
 */
bool
fp_attribution_telemetry_current_command(FpTraceId *trace_id,
										 FpSpanId *span_id, uint8 *flags)
{
	if (pending->current == NULL)
		return false;
	*trace_id = pending->current->trace_id;
	*span_id = pending->current->span_id;
	*flags = pending->current->flags;
	return true;
}

/*
 * A lifecycle command (lifecycle.c) names the command whose context it
 * just resolved, and the order it acts on, before it writes anything: so
 * it is a command even when it is refused before its first write, and its
 * UPDATE of conversions does not make it a track_conversion.
 */
void
fp_attribution_telemetry_name_command(FpCommandKind kind, const char *order_id)
{
	if (pending->current == NULL)
		return;
	pending->current->kind = kind;
	fp_attribution_copy_text(pending->current->entity_id, order_id,
							 sizeof(pending->current->entity_id));
}

/*
 * Add value to a lifecycle business metric (key: its currency or rule,
 * NULL for a plain counter), counted if the work commits.
 */
void
fp_attribution_telemetry_tally_lifecycle(FpLifecycleMetric metric,
										 const char *key, uint64 value)
{
	if (fp_attribution_telemetry_active())
		fp_attribution_pending_tally(GetCurrentSubTransactionId(), TALLY_LIFECYCLE, metric,
				  key)->n += value;
}

/*
 * A fraud rule held a new conversion pending (fraud_rules.c): count the
 * hit and log it, as business work, in the running command's context.
 */
void
fp_attribution_telemetry_rule_hit(const char *rule, const char *order_id)
{
	PendingLog *hit;

	if (!fp_attribution_telemetry_active())
		return;
	fp_attribution_telemetry_tally_lifecycle(FP_LIFECYCLE_RULE_HITS, rule, 1);
	if (pending->current == NULL || !fp_attribution_pending_log_room())
		return;
	hit = fp_attribution_pending_new_log(NULL, true, FP_SEVERITY_WARN,
										 "fp.fraud_rule.hit",
										 psprintf("fraud rule hit: conversion held pending (%s)", rule),
										 fp_attribution_telemetry_clock(),
										 &pending->current->trace_id, &pending->current->span_id,
										 pending->current->flags);
	fp_attribution_attr_str(fp_attribution_log_attr(&hit->rec, "fp.rule"), rule);
	fp_attribution_attr_str(fp_attribution_log_attr(&hit->rec, "fp.order.id"),
							order_id);
	fp_attribution_pending_keep_log(hit);
}

/* Forget everything the transaction collected */
void
fp_attribution_pending_forget(void)
{
	if (pending->cxt != NULL)
		MemoryContextReset(pending->cxt);
	pending->commands = pending->spans = pending->logs = pending->open_writes = NIL;
	if (pending->tally_cxt != NULL)
		MemoryContextReset(pending->tally_cxt);
	pending->tallies = NULL;
	pending->n_tallies = pending->tallies_room = 0;
	pending->tally_index = NULL;
	pending->reserved_spans = pending->reserved_logs = 0;
	pending->dropped_spans = pending->dropped_logs = 0;
	/* the records and arrays were in cxt; latencies are zeroed on use */
	pending->handover.ready = false;
	pending->handover.spans = NULL;
	pending->handover.logs = NULL;
	pending->handover.n_spans = pending->handover.spans_room = 0;
	pending->handover.n_logs = pending->handover.logs_room = 0;
	pending->handover.commands_used = 0;
	pending->rolled_back_used = 0;
	pending->current = NULL;
	pending->exec_nesting = 0;
}
