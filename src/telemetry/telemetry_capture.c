/*-------------------------------------------------------------------------
 *
 * telemetry_capture.c
 *	  What a backend observes of its commands, kept in backend-local memory
 *	  until its transaction ends, then handed to shared memory with the
 *	  outcome.  The row trigger is in telemetry_row.c; the state it shares
 *	  with this file is declared in telemetry_pending.h.
 *
 * Where each signal comes from, without touching the SQL commands:
 *
 *	- The command span starts when attribution.new_command_context()
 *	  resolves the command's context (the commands call it first; the
 *	  insert triggers call it for a direct INSERT).  Its span id is the one
 *	  stored in the row.  It ends when the top-level statement has done its
 *	  work: the return of ExecutorRun of a top-level SELECT (how the command
 *	  functions are called; under the extended query protocol the portal,
 *	  and so ExecutorEnd, lives on until the next statement or COMMIT), or
 *	  ExecutorEnd of a top-level write; or when the next command starts, or
 *	  at transaction end, whichever comes first.  Its name comes from the
 *	  table it writes, known before that INSERT starts (so a command
 *	  refused at executor start, by a privilege or a read-only transaction,
 *	  is a failed command): attribution.track_click or
 *	  attribution.track_conversion; the lifecycle commands name
 *	  themselves when their context is resolved
 *	  (fp_attribution_telemetry_name_command).  A direct INSERT refused before its
 *	  first row is one failed command, resolved when the error passes.  A
 *	  resolved context that writes neither table is not a command.
 *	- A DB-operation span covers each INSERT, UPDATE or DELETE statement on
 *	  a table of the attribution schema run during a command
 *	  (ExecutorStart to ExecutorEnd).
 *	- An event span, the business log record and the business metric
 *	  increments come from the AFTER INSERT row trigger on clicks,
 *	  conversions and receipts (attribution.telemetry_row_written), which
 *	  sees the row as written: its trace_id and span_id are the event
 *	  span's trace and parent.
 *	- Errors are captured when they pass through our ExecutorRun and
 *	  ExecutorFinish hooks (SQLSTATE and message), and attached to the
 *	  commands that the (sub)transaction abort then rolls back.
 *
 * Outcome.  At commit: every span, every log record and the business
 * metrics are handed over.  At abort (or for the part of the work that a
 * rolled-back subtransaction undid): spans are kept with status ERROR and
 * an exception event when an error caused it (fp.command.outcome says
 * "failed" or "rolled_back"); "command failed" is logged, and an error's
 * exception also as a log record of its own; commands.total
 * and commands.errors count the command; the business log records and
 * business metrics are dropped, because that work never happened.  At
 * PREPARE TRANSACTION spans, logs and commands.* are handed over (outcome
 * "prepared") and the business metrics are parked in shared memory under
 * the GID (telemetry.c), counted by COMMIT PREPARED in whatever session,
 * dropped by ROLLBACK PREPARED.  The GID comes from our ProcessUtility
 * hook, which also sees COMMIT/ROLLBACK PREPARED finish.
 *
 * Unsampled commands record no spans; their logs and metrics are recorded
 * and their rows still carry the trace ids.
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
 * No allocation at transaction end.  An error in the commit, prepare or
 * abort callback would be a PANIC, so they allocate nothing and look
 * nothing up: a recorded command gets its span (with what is known when
 * it starts: ids, start time, tracestate, db.* attributes) and its four
 * log records allocated when it starts, and each reservation grows the
 * arrays of pointers that hand the records over; at transaction end
 * build() only fills those records in place (snprintf into fixed buffers,
 * strings already UTF-8) and the callbacks copy them into shared memory.
 * Commands that had no room are added to fixed counters (rolled_back) when
 * a rollback retires them.  At commit build() runs at PRE_COMMIT (or
 * PRE_PREPARE), where it may also allocate the ordered array of tallies;
 * an abort, even one after that, builds again in place.  JSON log lines
 * are written through one buffer allocated beforehand with room for the
 * longest line.
 *
 * Locking: none here; everything is backend-local.  Shared memory is only
 * touched through telemetry.c at transaction end.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "parser/parsetree.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/inval.h"
#include "tcop/utility.h"

#include "fp_attribution/columns.h"
#include "fp_attribution/compat.h"
#include "fp_attribution/receipts.h"
#include "fp_attribution/row_guard.h"
#include "fp_attribution/server_log.h"
#include "fp_attribution/telemetry.h"
#include "fp_attribution/telemetry_pending.h"
#include "fp_attribution/telemetry_record.h"
#include "fp_attribution/trace_context.h"

/* The trigger arguments naming the kinds, which are their logical names */
static const char *const table_names[] = {
	[TABLE_OTHER] = NULL,
	[TABLE_CLICKS] = "clicks",
	[TABLE_CONVERSIONS] = "conversions",
	[TABLE_RECEIPTS] = "receipts",
};

/* A write statement on an attribution table that has not ended yet */
typedef struct OpenWrite
{
	PendingHead head;
	QueryDesc  *query;
	FpTable		table;
	char		relname[NAMEDATALEN];
	int64		start_ns;
	PendingSpan *span;			/* NULL when no sampled command owns it */
} OpenWrite;

typedef enum XactOutcome
{
	OUTCOME_COMMIT,
	OUTCOME_ABORT,
	OUTCOME_PREPARE
} XactOutcome;

static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/* Everything below lives in xact_cxt and is forgotten at transaction end */
static MemoryContext xact_cxt = NULL;
static List *commands = NIL;
static List *spans = NIL;
static List *logs = NIL;
static HTAB *tallies = NULL;
static uint64 tally_seq = 0;
static int	pending_spans = 0;	/* spans the transaction will hand over */
static int	pending_logs = 0;	/* and log records */
static uint64 dropped_spans = 0;	/* beyond those caps */
static uint64 dropped_logs = 0;
static List *open_writes = NIL; /* innermost last */
static PendingCommand *current = NULL;	/* the running command, if any */
static int	exec_nesting = 0;
static FpLatencyTally rolled_back[FP_COMMAND_KINDS];	/* retired, undone */
static PendingCommand spare_command;	/* a command with no room to record */
static char prepare_gid[GIDSIZE];	/* of the PREPARE TRANSACTION running */

/*
 * The transaction's clock: the wall-clock time of its first reading plus
 * the monotonic time elapsed since, so that every duration is monotonic
 * (a wall-clock step cannot make one negative or huge) while start times
 * stay wall-clock times.  anchor_wall is 0 until the first reading.
 */
static int64 anchor_wall = 0;
static int64 anchor_mono;

/* db.namespace, in UTF-8 */
static char database_name[NAMEDATALEN * 4];

/* One JSON log line at a time; allocated before any is needed */
static StringInfoData json_line;

static PendingSpan *new_db_span(OpenWrite *w, PendingCommand *cmd);

/* Keeper block of xact_cxt: a command's spans and logs with room to spare */
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

	if (anchor_wall == 0)
	{
		anchor_wall = fp_attribution_now_unix_nano();
		anchor_mono = mono;
	}
	return anchor_wall + (mono - anchor_mono);
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
	if (xact_cxt == NULL)
		xact_cxt = GenerationContextCreate(TopMemoryContext,
										   "fp_attribution telemetry",
										   XACT_CXT_KEEP, XACT_CXT_KEEP,
										   XACT_CXT_MAX_BLOCK);
	return xact_cxt;
}

static void *
pending_bytes_alloc(Size size)
{
	return MemoryContextAlloc(pending_cxt(), size);
}

/* A pending item, owned by the current subtransaction */
static void *
pending_alloc(Size size)
{
	PendingHead *h = pending_bytes_alloc(size);

	h->subid = GetCurrentSubTransactionId();
	h->aborted = false;
	return h;
}

static List *
pending_append(List *list, void *item)
{
	MemoryContext old = MemoryContextSwitchTo(pending_cxt());

	list = lappend(list, item);
	MemoryContextSwitchTo(old);
	return list;
}

/*
 * What the transaction hands over: arrays of pointers to its records,
 * with room for every record it reserved, so that filling them at abort
 * allocates nothing.
 */
typedef struct HandOver
{
	bool		ready;
	FpSpanRecord **spans;
	int			n_spans;
	int			spans_room;
	FpLogRecord **logs;
	int			n_logs;
	int			logs_room;
	Tally	  **tallies;		/* commit, prepare: in creation order */
	int			n_tallies;
	FpLatencyTally commands[FP_COMMAND_KINDS][2];	/* [kind][failed] */
} HandOver;

static HandOver handover;

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
	Size		held = xact_cxt ? MemoryContextMemAllocated(xact_cxt, false) : 0;

	return held + bytes <= (Size) fp_attribution_max_pending_telemetry * 1024;
}

/* n more spans (pending == &pending_spans) or log records to hand over */
static void
take(int *pending, int n)
{
	*pending += n;
	if (pending == &pending_spans)
		handover_room((void ***) &handover.spans, &handover.spans_room,
					  *pending);
	else
		handover_room((void ***) &handover.logs, &handover.logs_room,
					  *pending);
	if (fp_attribution_log_json && json_line.data == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		initStringInfo(&json_line);
		enlargeStringInfo(&json_line, FP_LOG_JSON_LINE_MAX);
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
reserve(int *pending, int cap, int n, Size bytes, uint64 *dropped)
{
	if (*pending + n > cap || !fits(bytes + n * sizeof(void *)))
	{
		*dropped += n;
		return false;
	}
	take(pending, n);
	return true;
}

/*
 * The tally of key k, created empty if need be.  The table lives as long
 * as the backend and is emptied at transaction end (forget_pending()):
 * creating it anew in every transaction cost more than the tallies
 * themselves.  It holds at most TALLY_MAX_KEYS entries plus the overflow
 * series of each kind, so it stays small.
 */
static Tally *
tally_enter(const TallyKey *k)
{
	Tally	   *t;
	bool		found;

	if (tallies == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(TallyKey);
		ctl.entrysize = sizeof(Tally);
		ctl.hcxt = TopMemoryContext;
		tallies = hash_create("fp_attribution telemetry tallies", 64, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	t = hash_search(tallies, k, HASH_ENTER, &found);
	if (!found)
	{
		t->seq = ++tally_seq;
		t->n = 0;
		t->revenue_cents = 0;
		memset(&t->latency, 0, sizeof(t->latency));
	}
	return t;
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

	memset(&k, 0, sizeof(k));
	k.subid = subid;
	k.kind = kind;
	k.command = command;
	if (key != NULL)
		fp_attribution_copy_text(k.key, key, sizeof(k.key));
	if (key != NULL && tallies != NULL &&
		hash_get_num_entries(tallies) >= TALLY_MAX_KEYS)
	{
		t = hash_search(tallies, &k, HASH_FIND, NULL);
		if (t != NULL)
			return t;
		memset(k.key, 0, sizeof(k.key));
		k.overflow = true;
	}
	return tally_enter(&k);
}

/* Add the increments of src to dst */
static void
tally_add(Tally *dst, const Tally *src)
{
	dst->seq = Min(dst->seq, src->seq);
	dst->n += src->n;
	dst->revenue_cents = fp_attribution_add_revenue(dst->revenue_cents, src->revenue_cents);
	fp_attribution_telemetry_merge_tally(&dst->latency, &src->latency);
}

/* OTel semantic-convention attributes common to our database spans */
void
fp_attribution_pending_db_attrs(FpSpanRecord *span)
{
	if (database_name[0] == '\0')
	{
		char	   *name = get_database_name(MyDatabaseId);

		fp_attribution_copy_text(database_name, name ? name : "",
								 sizeof(database_name));
	}
	fp_attribution_attr_utf8(fp_attribution_span_attr(span, "db.system.name"),
							 "postgresql");
	fp_attribution_attr_utf8(fp_attribution_span_attr(span, "db.namespace"),
							 database_name);
}

/* Bad input and integrity errors (SQLSTATE classes 22, 23) break rules */
static bool
breaks_rule(const PendingCommand *cmd)
{
	return cmd->failed && cmd->sqlstate[0] == '2' &&
		(cmd->sqlstate[1] == '2' || cmd->sqlstate[1] == '3');
}

/*
 * How many log records a finished command has: started, succeeded or
 * failed, and for an error the exception and perhaps the broken rule
 */
static int
command_log_count(const PendingCommand *cmd)
{
	return 2 + (cmd->failed ? 1 : 0) + (breaks_rule(cmd) ? 1 : 0);
}

/*
 * A finished command that had no room for its span and log records: count
 * them as dropped, tally its metrics and forget it.  The caller has taken
 * it off the commands list.  A rolled-back one goes to rolled_back: in an
 * abort callback this allocates nothing.
 */
static void
retire_command(PendingCommand *cmd)
{
	if (cmd->kind != FP_COMMAND_UNKNOWN)
	{
		FpLatencyTally *t = cmd->head.aborted ? &rolled_back[cmd->kind] :
			&fp_attribution_pending_tally(cmd->head.subid, TALLY_COMMANDS, cmd->kind, NULL)->latency;

		fp_attribution_telemetry_tally_command(t, cmd->end_ns - cmd->start_ns);
		dropped_spans += cmd->sampled ? 1 : 0;
		dropped_logs += command_log_count(cmd);
	}
	if (cmd != &spare_command)
		pfree(cmd);
}

/* End the running command at time now */
static void
end_current(int64 now)
{
	if (current != NULL)
	{
		current->end_ns = now;
		if (!current->recorded)
		{
			Assert(llast(commands) == current);
			commands = list_delete_last(commands);
			retire_command(current);
		}
		current = NULL;
	}
}

/* Start a log record with the context of a command (or none), no body */
static void
log_init(FpLogRecord *log, FpSeverity severity, const char *event_name,
		 int64 time, const FpTraceId *trace_id, const FpSpanId *span_id,
		 uint8 flags)
{
	log->time_unix_nano = time;
	log->observed_time_unix_nano = time;
	log->severity_number = severity;
	strlcpy(log->severity_text,
			severity == FP_SEVERITY_ERROR ? "ERROR" :
			severity == FP_SEVERITY_WARN ? "WARN" :
			severity == FP_SEVERITY_INFO ? "INFO" : "DEBUG",
			sizeof(log->severity_text));
	strlcpy(log->event_name, event_name, sizeof(log->event_name));
	log->body[0] = '\0';
	if (trace_id != NULL)
	{
		log->trace_id = *trace_id;
		log->span_id = *span_id;
	}
	else
	{
		memset(&log->trace_id, 0, sizeof(log->trace_id));
		memset(&log->span_id, 0, sizeof(log->span_id));
	}
	log->flags = flags;
	log->dropped_attributes_count = 0;
	log->n_attrs = 0;
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
	PendingLog *p = scratch ? scratch : pending_alloc(sizeof(PendingLog));

	p->business = business;
	log_init(&p->rec, severity, event_name, time, trace_id, span_id, flags);
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
	return reserve(&pending_logs, fp_attribution_max_logs, 1,
				   sizeof(PendingLog), &dropped_logs);
}

/* Keep a log record, made with room for it, for the hand-over */
void
fp_attribution_pending_keep_log(PendingLog *log)
{
	logs = pending_append(logs, log);
}

/*
 * A new span kept for the hand-over, its record to be filled by the
 * caller; NULL when there is no room (counted as dropped).
 */
PendingSpan *
fp_attribution_pending_span(void)
{
	PendingSpan *p;

	if (!reserve(&pending_spans, fp_attribution_max_spans, 1,
				 sizeof(PendingSpan), &dropped_spans))
		return NULL;
	p = pending_alloc(sizeof(PendingSpan));
	spans = pending_append(spans, p);
	return p;
}

/* The command whose span id is span_id, searching newest first */
PendingCommand *
fp_attribution_pending_command_of_span(const FpSpanId *span_id)
{
	for (int i = list_length(commands) - 1; i >= 0; i--)
	{
		PendingCommand *cmd = list_nth(commands, i);

		if (memcmp(&cmd->span_id, span_id, sizeof(FpSpanId)) == 0)
			return cmd;
	}
	return NULL;
}

/*
 * When the innermost write statement still open started (a row's event
 * span starts with it), or now if none is.
 */
int64
fp_attribution_pending_write_start(int64 now)
{
	return open_writes != NIL ? ((OpenWrite *) llast(open_writes))->start_ns :
		now;
}

/*
 * Called by attribution.new_command_context() once the context of a new
 * command is resolved: start its span.  A recorded command gets its
 * records now (see PendingCommand), so that the abort callback has only
 * to fill them in.
 */
void
fp_attribution_telemetry_begin_command(const FpCommandContext *ctx)
{
	PendingCommand *cmd;
	bool		sampled = (ctx->flags & FP_TRACE_FLAG_SAMPLED) != 0;
	Size		bytes = sizeof(PendingCommand) + sizeof(ListCell) +
		COMMAND_LOGS * (sizeof(FpLogRecord) + sizeof(void *)) +
		(sampled ? sizeof(FpSpanRecord) + sizeof(void *) : 0);
	bool		recorded;
	int64		now;

	if (!fp_attribution_telemetry_active())
		return;
	now = fp_attribution_telemetry_clock();
	end_current(now);

	/* no room: retire_command counts its records as dropped */
	recorded = (!sampled || pending_spans < fp_attribution_max_spans) &&
		pending_logs + COMMAND_LOGS <= fp_attribution_max_logs && fits(bytes);
	if (recorded)
	{
		take(&pending_logs, COMMAND_LOGS);
		if (sampled)
			take(&pending_spans, 1);
	}
	if (recorded)
		cmd = pending_alloc(sizeof(PendingCommand));
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
		for (int i = 0; i < COMMAND_LOGS; i++)
			cmd->logs[i] = pending_bytes_alloc(sizeof(FpLogRecord));
		if (sampled)
		{
			FpSpanRecord *span = pending_bytes_alloc(sizeof(FpSpanRecord));

			/* named when it ends, after what it wrote */
			fp_attribution_span_init(span, "", FP_SPAN_KIND_SERVER);
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
	commands = pending_append(commands, cmd);
	current = cmd;

	/*
	 * A direct INSERT resolves its context in the BEFORE trigger, after its
	 * statement started: that statement is this command's.
	 */
	if (open_writes != NIL)
	{
		OpenWrite  *w = llast(open_writes);

		cmd->kind = fp_attribution_command_of_table(w->table);
		if (w->span == NULL && cmd->sampled)
			w->span = new_db_span(w, cmd);
	}
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
	if (current == NULL)
		return false;
	*trace_id = current->trace_id;
	*span_id = current->span_id;
	*flags = current->flags;
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
	if (current == NULL)
		return;
	current->kind = kind;
	fp_attribution_copy_text(current->entity_id, order_id,
							 sizeof(current->entity_id));
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
	if (current == NULL || !fp_attribution_pending_log_room())
		return;
	hit = fp_attribution_pending_new_log(NULL, true, FP_SEVERITY_WARN,
										 "fp.fraud_rule.hit",
										 psprintf("fraud rule hit: conversion held pending (%s)", rule),
										 fp_attribution_telemetry_clock(),
										 &current->trace_id, &current->span_id,
										 current->flags);
	fp_attribution_attr_str(fp_attribution_log_attr(&hit->rec, "fp.rule"), rule);
	fp_attribution_attr_str(fp_attribution_log_attr(&hit->rec, "fp.order.id"),
							order_id);
	fp_attribution_pending_keep_log(hit);
}

/*----------
 * Executor hooks
 *----------
 */

/*
 * A DB-operation span for a write statement, child of command cmd (NULL:
 * no room).  Its name is converted to UTF-8 once; the attributes that
 * repeat it copy the converted text.
 */
static PendingSpan *
new_db_span(OpenWrite *w, PendingCommand *cmd)
{
	PendingSpan *p = fp_attribution_pending_span();
	FpSpanRecord *span;
	CmdType		op = w->query->operation;
	const char *opname = op == CMD_INSERT ? "INSERT" :
	op == CMD_UPDATE ? "UPDATE" : op == CMD_DELETE ? "DELETE" : "MERGE";
	char		name[FP_SPAN_NAME_LEN];

	if (p == NULL)
		return NULL;
	span = &p->rec;

	/* "<operation> attribution.<table>", the semantic conventions' name */
	strlcpy(name, opname, sizeof(name));
	strlcat(name, " attribution.", sizeof(name));
	strlcat(name, w->relname, sizeof(name));
	fp_attribution_span_init(span, "", FP_SPAN_KIND_INTERNAL);
	fp_attribution_copy_text(span->name, name, sizeof(span->name));
	span->trace_id = cmd->trace_id;
	span->parent_span_id = cmd->span_id;
	fp_attribution_new_span_id(&span->span_id);
	span->flags = cmd->flags;
	span->start_time_unix_nano = w->start_ns;
	fp_attribution_pending_db_attrs(span);
	fp_attribution_attr_utf8(fp_attribution_span_attr(span, "db.operation.name"),
							 opname);
	fp_attribution_attr_utf8(fp_attribution_span_attr(span, "db.collection.name"),
							 span->name + strlen(opname) + 1);
	fp_attribution_attr_utf8(fp_attribution_span_attr(span, "db.query.summary"),
							 span->name);
	return p;
}

/*
 * Which tables are ours, remembered per relation so that a write statement
 * costs no catalog lookup; forgotten on relcache invalidation (DROP
 * EXTENSION, ALTER TABLE ... RENAME, CREATE or DROP TRIGGER).
 */
typedef struct RelClass
{
	Oid			relid;
	bool		ours;			/* has our telemetry trigger, or is a table
								 * of the extension */
	FpTable		table;
	char		relname[NAMEDATALEN];	/* logical name */
} RelClass;

#define REL_CLASS_CACHE 16

static RelClass rel_classes[REL_CLASS_CACHE];
static int	n_rel_classes = 0;
static bool rel_callback_registered = false;

static void
forget_rel_classes(Datum arg, Oid relid)
{
	n_rel_classes = 0;
}

/*
 * The kind of table a trigger argument names, or TABLE_OTHER.
 */
FpTable
fp_attribution_telemetry_table_of_name(const char *name)
{
	for (int t = TABLE_CLICKS; t < lengthof(table_names); t++)
		if (strcmp(name, table_names[t]) == 0)
			return (FpTable) t;
	return TABLE_OTHER;
}

/*
 * The kind of table that the telemetry trigger of relation rel names, or
 * TABLE_OTHER if it has none.  The trigger is recognised by the C function
 * it calls, whatever the SQL function is called.
 */
static FpTable
table_of_triggers(Relation rel)
{
	TriggerDesc *trigdesc = rel->trigdesc;

	if (trigdesc == NULL)
		return TABLE_OTHER;
	for (int i = 0; i < trigdesc->numtriggers; i++)
	{
		Trigger    *trig = &trigdesc->triggers[i];
		FmgrInfo	finfo;

		if (trig->tgnargs != 1 || !trig->tgenabled)
			continue;
		fmgr_info(trig->tgfoid, &finfo);
		if (finfo.fn_addr == fp_attribution_telemetry_row_written)
			return fp_attribution_telemetry_table_of_name(trig->tgargs[0]);
	}
	return TABLE_OTHER;
}

/*
 * Classify a relation: clicks, conversions and receipts by the argument of
 * their telemetry trigger (under any name: a copy or a shard carries the
 * trigger with it); the extension's other tables by their membership in
 * the extension, named as they are.  Anything else is not ours.
 */
static RelClass *
classify_rel(Oid relid)
{
	RelClass   *rc;
	Relation	rel;

	for (int i = 0; i < n_rel_classes; i++)
		if (rel_classes[i].relid == relid)
			return &rel_classes[i];
	if (!rel_callback_registered)
	{
		CacheRegisterRelcacheCallback(forget_rel_classes, (Datum) 0);
		rel_callback_registered = true;
	}
	if (n_rel_classes == REL_CLASS_CACHE)
		n_rel_classes = 0;
	rc = &rel_classes[n_rel_classes++];
	rc->relid = relid;
	rc->relname[0] = '\0';
	rel = RelationIdGetRelation(relid);
	if (!RelationIsValid(rel))
		elog(ERROR, "could not open relation with OID %u", relid);
	rc->table = table_of_triggers(rel);
	if (rc->table != TABLE_OTHER)
	{
		rc->ours = true;
		strlcpy(rc->relname, table_names[rc->table], sizeof(rc->relname));
	}
	else
	{
		Oid			extid = get_extension_oid("fp_attribution", true);

		rc->ours = OidIsValid(extid) &&
			getExtensionOfObject(RelationRelationId, relid) == extid;
		if (rc->ours)
			strlcpy(rc->relname, RelationGetRelationName(rel),
					sizeof(rc->relname));
	}
	RelationClose(rel);
	return rc;
}

/*
 * The table of the attribution schema that a write statement targets,
 * copied into *out; false for any other statement.
 */
static bool
write_target(QueryDesc *query, RelClass *out)
{
	PlannedStmt *stmt = query->plannedstmt;

	if (query->operation == CMD_SELECT || query->operation == CMD_UTILITY ||
		stmt->resultRelations == NIL)
		return false;
	*out = *classify_rel(rt_fetch(linitial_int(stmt->resultRelations),
								  stmt->rtable)->relid);
	return out->ours;
}

/*
 * Note a write statement on a table of the attribution schema, and give
 * it a span when a sampled command is running.
 */
static void
start_write(QueryDesc *query, const RelClass *rc)
{
	OpenWrite  *w;

	w = pending_alloc(sizeof(OpenWrite));
	w->query = query;
	w->table = rc->table;
	strlcpy(w->relname, rc->relname, sizeof(w->relname));
	w->start_ns = fp_attribution_telemetry_clock();
	w->span = NULL;
	if (current != NULL && current->sampled)
		w->span = new_db_span(w, current);
	open_writes = pending_append(open_writes, w);
}

/* The statement ended normally: close its span */
static void
end_write(QueryDesc *query)
{
	OpenWrite  *w = NULL;
	uint64		rows;

	for (int i = list_length(open_writes) - 1; i >= 0; i--)
	{
		OpenWrite  *candidate = list_nth(open_writes, i);

		if (candidate->query == query)
		{
			w = candidate;
			open_writes = list_delete_nth_cell(open_writes, i);
			break;
		}
	}
	if (w == NULL)
		return;
	if (w->span != NULL)
	{
		rows = query->estate ? query->estate->es_processed : 0;
		w->span->rec.end_time_unix_nano = fp_attribution_telemetry_clock();
		fp_attribution_attr_int(fp_attribution_span_attr(&w->span->rec, "db.response.returned_rows"),
								(int64) rows);
	}
	pfree(w);
}

/*
 * Remember the error in flight on the running command: if the abort that
 * follows rolls the command back, this is why.  Outer executor levels see
 * the same error again and copy it again.
 */
static void
capture_error(void)
{
	MemoryContext old;
	ErrorData  *edata;

	if (current == NULL)
		return;
	old = MemoryContextSwitchTo(xact_cxt);
	edata = CopyErrorData();
	strlcpy(current->sqlstate, unpack_sql_state(edata->sqlerrcode),
			sizeof(current->sqlstate));
	fp_attribution_copy_text(current->message,
							 edata->message ? edata->message : "",
							 sizeof(current->message));
	current->failed = true;
	FreeErrorData(edata);
	MemoryContextSwitchTo(old);
}

static void
executor_start(QueryDesc *queryDesc, int eflags)
{
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/*
 * Start a direct write (no command running) to clicks or conversions.  Its
 * rows resolve their commands in the BEFORE trigger; a statement refused
 * before any row (permission denied, read-only transaction: executor
 * start) is still one command, and a failed one.
 */
static void
start_direct_write(QueryDesc *queryDesc, int eflags, const RelClass *target)
{
	PG_TRY();
	{
		executor_start(queryDesc, eflags);
	}
	PG_CATCH();
	{
		FpCommandContext ctx;
		MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);

		fp_attribution_begin_command(NULL, NULL, &ctx);
		MemoryContextSwitchTo(old);
		if (current != NULL)
			current->kind = fp_attribution_command_of_table(target->table);
		capture_error();
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * The command is named after the table it writes before that statement
 * starts, so that a command refused at executor start is one.
 */
static void
telemetry_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	RelClass	target;
	bool		ours = (eflags & EXEC_FLAG_EXPLAIN_ONLY) == 0 &&
		fp_attribution_telemetry_active() && write_target(queryDesc, &target);

	if (ours && current != NULL && current->kind == FP_COMMAND_UNKNOWN)
		current->kind = fp_attribution_command_of_table(target.table);
	if (ours && current == NULL &&
		fp_attribution_command_of_table(target.table) != FP_COMMAND_UNKNOWN)
		start_direct_write(queryDesc, eflags, &target);
	else
		executor_start(queryDesc, eflags);
	if (ours)
		start_write(queryDesc, &target);
}

static void
telemetry_ExecutorRun(FP_EXECUTOR_RUN_PARAMS)
{
	exec_nesting++;
	PG_TRY();
	{
		if (prev_ExecutorRun)
			prev_ExecutorRun(FP_EXECUTOR_RUN_ARGS);
		else
			standard_ExecutorRun(FP_EXECUTOR_RUN_ARGS);
	}
	PG_CATCH();
	{
		exec_nesting--;
		capture_error();
		PG_RE_THROW();
	}
	PG_END_TRY();
	exec_nesting--;

	/*
	 * A top-level SELECT (how the command functions are called) has done
	 * its work when its run returns, whatever the protocol: under the
	 * extended one its portal, and ExecutorEnd, wait for the next
	 * statement or the COMMIT.  Writes (and a SELECT with a writing WITH)
	 * end in ExecutorEnd, which follows at once, after their AFTER
	 * triggers.
	 */
	if (exec_nesting == 0 && current != NULL &&
		queryDesc->operation == CMD_SELECT &&
		!queryDesc->plannedstmt->hasModifyingCTE)
		end_current(fp_attribution_telemetry_clock());
}

static void
telemetry_ExecutorFinish(QueryDesc *queryDesc)
{
	exec_nesting++;
	PG_TRY();
	{
		if (prev_ExecutorFinish)
			prev_ExecutorFinish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
	}
	PG_CATCH();
	{
		exec_nesting--;
		capture_error();
		PG_RE_THROW();
	}
	PG_END_TRY();
	exec_nesting--;
}

static void
telemetry_ExecutorEnd(QueryDesc *queryDesc)
{
	if (open_writes != NIL)
		end_write(queryDesc);
	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
	/* the end of a top-level statement ends the command it ran */
	if (exec_nesting == 0 && current != NULL)
		end_current(fp_attribution_telemetry_clock());
}

/*----------
 * Transaction end
 *----------
 */

/*
 * Walk the items of list owned by subtransaction subid or its children
 * (a suffix of the list, since subtransaction ids grow) and either give
 * them to parent (commit) or mark them aborted (abort).
 */
static void
walk_subxact(List *list, SubTransactionId subid, SubTransactionId parent,
			 bool abort)
{
	for (int i = list_length(list) - 1; i >= 0; i--)
	{
		PendingHead *h = list_nth(list, i);

		if (h->subid < subid)
			break;
		if (abort)
			h->aborted = true;
		else if (h->subid == subid)
			h->subid = parent;
	}
}

/* End the commands that a rollback just undid */
static void
end_aborted_commands(int64 now)
{
	ListCell   *lc;

	foreach(lc, commands)
	{
		PendingCommand *cmd = lfirst(lc);

		if (!cmd->head.aborted)
			continue;
		if (cmd->end_ns == 0)
			cmd->end_ns = now;
		if (cmd == current)
			current = NULL;
		if (!cmd->recorded)
		{
			commands = foreach_delete_current(commands, lc);
			retire_command(cmd);
		}
	}
}

/*
 * Drop the statements that a rolled-back (sub)transaction left open (they
 * are the newest ones), ending their spans now.
 */
static void
close_aborted_writes(bool all, int64 now)
{
	while (open_writes != NIL)
	{
		OpenWrite  *w = llast(open_writes);

		if (!all && !w->head.aborted)
			break;
		if (w->span != NULL && w->span->rec.end_time_unix_nano == 0)
			w->span->rec.end_time_unix_nano = now;
		open_writes = list_delete_last(open_writes);
		pfree(w);
	}
}

/*
 * Give the tallies of subtransaction subid (and its children) to parent
 * (commit), or, at abort, forget their business increments and add their
 * commands to rolled_back.  The abort allocates nothing.
 */
static void
tally_subxact(SubTransactionId subid, SubTransactionId parent, bool abort)
{
	HASH_SEQ_STATUS scan;
	Tally	   *t;

	if (tallies == NULL)
		return;
	hash_seq_init(&scan, tallies);
	while ((t = hash_seq_search(&scan)) != NULL)
	{
		Tally		moved;

		if (t->k.subid < subid)
			continue;
		moved = *t;
		hash_search(tallies, &t->k, HASH_REMOVE, NULL);
		if (abort && moved.k.kind == TALLY_COMMANDS)
			fp_attribution_telemetry_merge_tally(&rolled_back[moved.k.command],
												 &moved.latency);
		if (abort)
			continue;
		/* entered keys have a smaller subid: this scan skips them */
		moved.k.subid = parent;
		tally_add(tally_enter(&moved.k), &moved);
	}
}

static void
telemetry_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						   SubTransactionId parentSubid, void *arg)
{
	bool		abort = event == SUBXACT_EVENT_ABORT_SUB;
	int64		now;

	if (event != SUBXACT_EVENT_COMMIT_SUB && !abort)
		return;
	walk_subxact(commands, mySubid, parentSubid, abort);
	walk_subxact(spans, mySubid, parentSubid, abort);
	walk_subxact(logs, mySubid, parentSubid, abort);
	walk_subxact(open_writes, mySubid, parentSubid, abort);
	tally_subxact(mySubid, parentSubid, abort);
	if (!abort)
		return;
	now = fp_attribution_telemetry_clock();
	end_aborted_commands(now);
	close_aborted_writes(false, now);
}

/*
 * Complete the span of a finished command, allocated when it started:
 * everything known at the end goes after its first span_start_attrs
 * attributes, so that it can be completed again (an abort after the
 * commit's build).  Allocates nothing; strings are UTF-8 by now.
 */
static void
finish_command_span(PendingCommand *cmd, const char *outcome)
{
	FpSpanRecord *span = cmd->span;
	const char *command = fp_attribution_command_name(cmd->kind);
	bool		click = cmd->kind == FP_COMMAND_TRACK_CLICK;

	snprintf(span->name, sizeof(span->name), "attribution.%s", command);
	span->end_time_unix_nano = cmd->end_ns;
	span->n_attrs = cmd->span_start_attrs;
	span->dropped_attributes_count = 0;
	span->n_events = 0;
	span->status_code = FP_STATUS_UNSET;
	span->status_message[0] = '\0';
	fp_attribution_attr_utf8(fp_attribution_span_attr(span, "db.stored_procedure.name"), span->name);
	fp_attribution_attr_utf8(fp_attribution_span_attr(span, "fp.command.name"), command);
	fp_attribution_attr_utf8(fp_attribution_span_attr(span, "fp.command.outcome"), outcome);
	if (cmd->entity_id[0] != '\0')
	{
		fp_attribution_attr_utf8(fp_attribution_span_attr(span, "fp.command.id"),
								 cmd->entity_id);
		fp_attribution_attr_utf8(fp_attribution_span_attr(span, click ? "fp.click.id" : "fp.order.id"),
								 cmd->entity_id);
		fp_attribution_attr_utf8(fp_attribution_span_attr(span, "fp.aggregate.type"),
								 click ? "click" : "conversion");
		fp_attribution_attr_utf8(fp_attribution_span_attr(span, "fp.aggregate.id"),
								 cmd->entity_id);
	}
	if (cmd->affiliate_id[0] != '\0')
		fp_attribution_attr_utf8(fp_attribution_span_attr(span, "fp.affiliate.id"),
								 cmd->affiliate_id);
	if (!cmd->head.aborted)
		return;
	span->status_code = FP_STATUS_ERROR;
	if (cmd->failed)
	{
		FpSpanEvent *ev = &span->events[span->n_events++];

		fp_attribution_copy_utf8(span->status_message, cmd->message,
								 sizeof(span->status_message));
		fp_attribution_attr_utf8(fp_attribution_span_attr(span, "db.response.status_code"),
								 cmd->sqlstate);
		fp_attribution_attr_utf8(fp_attribution_span_attr(span, "error.type"),
								 cmd->sqlstate);
		strlcpy(ev->name, "exception", sizeof(ev->name));
		ev->time_unix_nano = cmd->end_ns;
		ev->n_attrs = 2;
		strlcpy(ev->attrs[0].key, "exception.type", FP_ATTR_KEY_LEN);
		fp_attribution_attr_utf8(&ev->attrs[0], cmd->sqlstate);
		strlcpy(ev->attrs[1].key, "exception.message", FP_ATTR_KEY_LEN);
		fp_attribution_attr_utf8(&ev->attrs[1], cmd->message);
	}
	else
	{
		strlcpy(span->status_message, "transaction rolled back",
				sizeof(span->status_message));
		fp_attribution_attr_utf8(fp_attribution_span_attr(span, "error.type"),
								 "rollback");
	}
}

/*
 * Fill the log records of a finished command, allocated when it started,
 * into out: "command started" (closing false), or the closing record(s).
 * Returns how many.  Allocates nothing; strings are UTF-8 by now.
 */
static int
command_logs(PendingCommand *cmd, const char *outcome, FpLogRecord **out,
			 bool closing)
{
	const char *command = fp_attribution_command_name(cmd->kind);
	FpLogRecord *log;
	char		body[FP_LOG_BODY_LEN];
	int			n = 0;

	if (!closing)
	{
		log = cmd->logs[0];
		log_init(log, FP_SEVERITY_INFO, "fp.command.started", cmd->start_ns,
				 &cmd->trace_id, &cmd->span_id, cmd->flags);
		strlcpy(log->body, "command started", sizeof(log->body));
		fp_attribution_attr_utf8(fp_attribution_log_attr(log, "fp.command.name"), command);
		fp_attribution_attr_utf8(fp_attribution_log_attr(log, "fp.trace.source"),
								 fp_attribution_context_source_name(cmd->source));
		out[n++] = log;
		return n;
	}
	log = cmd->logs[1];
	if (!cmd->head.aborted)
	{
		log_init(log, FP_SEVERITY_INFO, "fp.command.succeeded", cmd->end_ns,
				 &cmd->trace_id, &cmd->span_id, cmd->flags);
		strlcpy(log->body, "command succeeded", sizeof(log->body));
		fp_attribution_attr_utf8(fp_attribution_log_attr(log, "fp.command.name"), command);
		fp_attribution_attr_utf8(fp_attribution_log_attr(log, "fp.command.outcome"), outcome);
		fp_attribution_attr_double(fp_attribution_log_attr(log, "fp.command.duration"),
								   (cmd->end_ns - cmd->start_ns) / 1e9);
		out[n++] = log;
		return n;
	}
	log_init(log, FP_SEVERITY_ERROR, "fp.command.failed", cmd->end_ns,
			 &cmd->trace_id, &cmd->span_id, cmd->flags);
	snprintf(body, sizeof(body), "command failed: %s",
			 cmd->failed ? cmd->message : "transaction rolled back");
	fp_attribution_copy_utf8(log->body, body, sizeof(log->body));
	fp_attribution_attr_utf8(fp_attribution_log_attr(log, "fp.command.name"), command);
	fp_attribution_attr_utf8(fp_attribution_log_attr(log, "fp.command.outcome"), outcome);
	if (cmd->failed)
	{
		fp_attribution_attr_utf8(fp_attribution_log_attr(log, "exception.type"), cmd->sqlstate);
		fp_attribution_attr_utf8(fp_attribution_log_attr(log, "exception.message"), cmd->message);
	}
	out[n++] = log;

	if (breaks_rule(cmd))
	{
		log = cmd->logs[2];
		log_init(log, FP_SEVERITY_WARN, "fp.business_rule.violated",
				 cmd->end_ns, &cmd->trace_id, &cmd->span_id, cmd->flags);
		snprintf(body, sizeof(body), "business rule violated: %s",
				 cmd->message);
		fp_attribution_copy_utf8(log->body, body, sizeof(log->body));
		fp_attribution_attr_utf8(fp_attribution_log_attr(log, "fp.command.name"), command);
		fp_attribution_attr_utf8(fp_attribution_log_attr(log, "fp.rule"), cmd->sqlstate);
		out[n++] = log;
	}
	if (cmd->failed)
	{
		/* the span's exception event, as a log record on the same span */
		log = cmd->logs[3];
		log_init(log, FP_SEVERITY_ERROR, "exception", cmd->end_ns,
				 &cmd->trace_id, &cmd->span_id, cmd->flags);
		fp_attribution_copy_utf8(log->body, cmd->message, sizeof(log->body));
		fp_attribution_attr_utf8(fp_attribution_log_attr(log, "exception.type"), cmd->sqlstate);
		fp_attribution_attr_utf8(fp_attribution_log_attr(log, "exception.message"), cmd->message);
		out[n++] = log;
	}
	return n;
}

static const char *
command_outcome(PendingCommand *cmd, XactOutcome outcome)
{
	if (cmd->head.aborted)
		return cmd->failed ? "failed" : "rolled_back";
	if (outcome == OUTCOME_PREPARE)
		return "prepared";
	return cmd->wrote_row ? "created" : "replayed";
}

static int
tally_seq_cmp(const void *a, const void *b)
{
	uint64		x = (*(Tally *const *) a)->seq;
	uint64		y = (*(Tally *const *) b)->seq;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * Fill handover with the transaction's records according to its outcome
 * (see the file banner).  Every record and the room for the pointers to
 * them were allocated when they were reserved, so this allocates nothing
 * and can run in the abort callback; at commit or prepare it runs before
 * (PRE_COMMIT, PRE_PREPARE), where the tallies are also put in order.
 */
static void
build(XactOutcome outcome)
{
	int64		now = fp_attribution_telemetry_clock();
	ListCell   *lc;

	if (outcome == OUTCOME_ABORT)
	{
		List	   *all[] = {commands, spans, logs, open_writes};

		for (int i = 0; i < lengthof(all); i++)
			foreach(lc, all[i])
				((PendingHead *) lfirst(lc))->aborted = true;
		end_aborted_commands(now);
	}
	close_aborted_writes(true, now);
	end_current(now);

	handover.n_spans = handover.n_logs = handover.n_tallies = 0;
	memset(handover.commands, 0, sizeof(handover.commands));

	/* every command left here has room for its records */
	foreach(lc, commands)
	{
		PendingCommand *cmd = lfirst(lc);

		if (cmd->kind == FP_COMMAND_UNKNOWN)
			continue;
		fp_attribution_telemetry_tally_command(&handover.commands[cmd->kind][cmd->head.aborted],
											   cmd->end_ns - cmd->start_ns);
		if (cmd->span != NULL)
			fp_attribution_telemetry_tally_exemplar(&handover.commands[cmd->kind][cmd->head.aborted],
													cmd->end_ns,
													(cmd->end_ns - cmd->start_ns) / 1e9,
													&cmd->trace_id, &cmd->span_id);
		handover.n_logs += command_logs(cmd, NULL, handover.logs + handover.n_logs, false);
		if (cmd->span != NULL)
		{
			finish_command_span(cmd, command_outcome(cmd, outcome));
			handover.spans[handover.n_spans++] = cmd->span;
		}
	}
	foreach(lc, spans)
	{
		PendingSpan *p = lfirst(lc);

		if (p->head.aborted && p->rec.status_code == FP_STATUS_UNSET)
		{
			p->rec.status_code = FP_STATUS_ERROR;
			strlcpy(p->rec.status_message, "rolled back",
					sizeof(p->rec.status_message));
		}
		if (p->rec.end_time_unix_nano == 0)
			p->rec.end_time_unix_nano = now;
		handover.spans[handover.n_spans++] = &p->rec;
	}
	foreach(lc, logs)
	{
		PendingLog *p = lfirst(lc);

		if (!(p->business && p->head.aborted))
			handover.logs[handover.n_logs++] = &p->rec;
	}
	foreach(lc, commands)
	{
		PendingCommand *cmd = lfirst(lc);

		if (cmd->kind != FP_COMMAND_UNKNOWN)
			handover.n_logs += command_logs(cmd, command_outcome(cmd, outcome),
											handover.logs + handover.n_logs, true);
	}
	if (tallies != NULL && hash_get_num_entries(tallies) > 0 &&
		outcome != OUTCOME_ABORT)
	{
		HASH_SEQ_STATUS scan;
		Tally	   *t;

		handover.tallies = palloc(hash_get_num_entries(tallies) * sizeof(Tally *));
		hash_seq_init(&scan, tallies);
		while ((t = hash_seq_search(&scan)) != NULL)
			handover.tallies[handover.n_tallies++] = t;
		qsort(handover.tallies, handover.n_tallies, sizeof(Tally *),
			  tally_seq_cmp);
	}
	handover.ready = true;
}

/*
 * Hand the built records to shared memory, count the metrics and the
 * records that did not fit, and write the JSON log lines.  Allocates
 * nothing and raises no error: it runs in the commit, prepare and abort
 * callbacks, where an error would be a PANIC.  At PREPARE the business
 * metrics are parked until COMMIT PREPARED (telemetry.c).
 */
static void
hand_over(XactOutcome outcome)
{
	if (outcome == OUTCOME_PREPARE)
		fp_attribution_telemetry_park_begin(prepare_gid);
	for (int i = 0; i < handover.n_tallies; i++)
	{
		Tally	   *t = handover.tallies[i];
		const char *key = t->k.overflow ? NULL : t->k.key;

		if (t->k.kind == TALLY_COMMANDS)
			fp_attribution_telemetry_count_commands(t->k.command, &t->latency,
													false);
		else if (t->k.kind == TALLY_CLICKS)
			fp_attribution_telemetry_count_clicks(key, t->n);
		else if (t->k.kind == TALLY_CONVERSIONS)
			fp_attribution_telemetry_count_conversions(key, t->n,
													   t->revenue_cents,
													   &t->latency);
		else if (t->k.kind == TALLY_LIFECYCLE)
			fp_attribution_telemetry_count_lifecycle(t->k.command, key, t->n);
		else
			fp_attribution_telemetry_count_receipts(t->n);
	}
	if (outcome == OUTCOME_PREPARE)
		fp_attribution_telemetry_park_end();
	if (outcome == OUTCOME_ABORT && tallies != NULL)
	{
		HASH_SEQ_STATUS scan;
		Tally	   *t;

		/* the commands that did not fit; the business work never happened */
		hash_seq_init(&scan, tallies);
		while ((t = hash_seq_search(&scan)) != NULL)
			if (t->k.kind == TALLY_COMMANDS)
				fp_attribution_telemetry_count_commands(t->k.command,
														&t->latency, true);
	}
	for (int k = 0; k < FP_COMMAND_KINDS; k++)
	{
		fp_attribution_telemetry_count_commands(k, &rolled_back[k], true);
		for (int failed = 0; failed < 2; failed++)
			fp_attribution_telemetry_count_commands(k, &handover.commands[k][failed],
													failed);
	}
	fp_attribution_telemetry_push_spans(handover.spans, handover.n_spans);
	fp_attribution_telemetry_push_logs(handover.logs, handover.n_logs);
	fp_attribution_telemetry_count_drops(FP_SIGNAL_SPANS, dropped_spans);
	fp_attribution_telemetry_count_drops(FP_SIGNAL_LOGS, dropped_logs);
	if (fp_attribution_log_json && json_line.data != NULL)
	{
		/* already log records: not again through the server log hook */
		fp_attribution_server_log_paused++;
		for (int i = 0; i < handover.n_logs; i++)
		{
			resetStringInfo(&json_line);
			fp_attribution_log_json_line(&json_line, handover.logs[i]);
			ereport(LOG,
					(errmsg_internal("%s", json_line.data),
					 errhidestmt(true), errhidecontext(true)));
		}
		fp_attribution_server_log_paused--;
	}
}

/* Forget everything the transaction collected */
static void
forget_pending(void)
{
	MemoryContextReset(xact_cxt);
	commands = spans = logs = open_writes = NIL;
	if (tallies != NULL)
	{
		HASH_SEQ_STATUS scan;
		Tally	   *t;

		/* removing the entry just returned is allowed; frees nothing */
		hash_seq_init(&scan, tallies);
		while ((t = hash_seq_search(&scan)) != NULL)
			hash_search(tallies, &t->k, HASH_REMOVE, NULL);
	}
	pending_spans = pending_logs = 0;
	dropped_spans = dropped_logs = 0;
	memset(&handover, 0, sizeof(handover));
	memset(rolled_back, 0, sizeof(rolled_back));
	current = NULL;
	exec_nesting = 0;
}

/*
 * Build the records before commit (or PREPARE TRANSACTION), hand them over
 * at commit; an abort, even one after the build, builds them anew.
 */
static void
telemetry_xact_callback(XactEvent event, void *arg)
{
	XactOutcome outcome;
	MemoryContext old;

	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE)
		anchor_wall = 0;		/* read after the build, or not needed */
	if (xact_cxt == NULL)
		return;
	if (commands == NIL && spans == NIL && logs == NIL &&
		(tallies == NULL || hash_get_num_entries(tallies) == 0) &&
		dropped_spans == 0 && dropped_logs == 0)
	{
		if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
			event == XACT_EVENT_PREPARE)
		{
			forget_pending();
			prepare_gid[0] = '\0';
		}
		return;
	}
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			old = MemoryContextSwitchTo(xact_cxt);
			build(event == XACT_EVENT_PRE_COMMIT ? OUTCOME_COMMIT : OUTCOME_PREPARE);
			MemoryContextSwitchTo(old);
			return;
		case XACT_EVENT_COMMIT:
			outcome = OUTCOME_COMMIT;
			break;
		case XACT_EVENT_PREPARE:
			outcome = OUTCOME_PREPARE;
			break;
		case XACT_EVENT_ABORT:
			outcome = OUTCOME_ABORT;
			build(outcome);
			break;
		default:
			return;
	}
	if (handover.ready)
		hand_over(outcome);
	forget_pending();
	prepare_gid[0] = '\0';
}

/*
 * Note the GID of PREPARE TRANSACTION for the PREPARE callback, and count
 * (or drop) the business metrics parked by a prepared transaction once
 * COMMIT PREPARED (or ROLLBACK PREPARED) is done.
 */
static void
telemetry_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
						 bool readOnlyTree, ProcessUtilityContext context,
						 ParamListInfo params, QueryEnvironment *queryEnv,
						 DestReceiver *dest, QueryCompletion *qc)
{
	TransactionStmt *stmt = IsA(pstmt->utilityStmt, TransactionStmt) ?
	(TransactionStmt *) pstmt->utilityStmt : NULL;

	if (stmt != NULL && stmt->kind == TRANS_STMT_PREPARE)
		strlcpy(prepare_gid, stmt->gid, sizeof(prepare_gid));
	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
							queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
	if (stmt != NULL && (stmt->kind == TRANS_STMT_COMMIT_PREPARED ||
						 stmt->kind == TRANS_STMT_ROLLBACK_PREPARED))
		fp_attribution_telemetry_finish_prepared(stmt->gid,
												 stmt->kind == TRANS_STMT_COMMIT_PREPARED);
}

/*
 * Install the executor and utility hooks and the transaction callbacks;
 * called from _PG_init while shared_preload_libraries is processed.
 */
void
fp_attribution_telemetry_install_hooks(void)
{
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = telemetry_ExecutorStart;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = telemetry_ExecutorRun;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = telemetry_ExecutorFinish;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = telemetry_ExecutorEnd;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = telemetry_ProcessUtility;
	RegisterXactCallback(telemetry_xact_callback, NULL);
	RegisterSubXactCallback(telemetry_subxact_callback, NULL);
}
