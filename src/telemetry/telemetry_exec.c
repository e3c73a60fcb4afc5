/*-------------------------------------------------------------------------
 *
 * telemetry_exec.c
 *	  The executor hooks of telemetry: which statements write the tables
 *	  of the attribution schema, their DB-operation spans, when a command
 *	  ends, and the errors that pass through.  What they see is kept in
 *	  the transaction's pending state (telemetry_pending.h).
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
 *	- A command call that Citus sends whole to a worker (delegation.c)
 *	  gets a CLIENT span on this node, the parent of the worker's command
 *	  span: planned with the call, started by the next ExecutorStart (the
 *	  statement's own, unless EXPLAIN without ANALYZE), ended as a command
 *	  is.  Its name and attributes are the command's; it is not counted
 *	  or logged as a command here (the worker does that).
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
 * Locking: none; everything is backend-local.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/dependency.h"
#include "catalog/pg_class.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "parser/parsetree.h"
#include "utils/elog.h"
#include "utils/rel.h"

#include "fp_attribution/compat.h"
#include "fp_attribution/telemetry.h"
#include "fp_attribution/relcache_forget.h"
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

static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;

/* Short for the pending state, in this file */
static FpPending *const pending = &fp_attribution_pending;

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
	static const char schema[] = " attribution.";
	int			oplen = strlen(opname);
	char		name[FP_SPAN_NAME_LEN];
	int			room = sizeof(name) - oplen - (sizeof(schema) - 1) - 1;
	int			rellen = Min(w->relname_len, room);

	if (p == NULL)
		return NULL;
	span = &p->rec;

	/*
	 * "<operation> attribution.<table>", the semantic conventions' name;
	 * built with known lengths, as strlcat scans what it appends to and
	 * strlcpy copies byte by byte
	 */
	memcpy(name, opname, oplen);
	memcpy(name + oplen, schema, sizeof(schema) - 1);
	memcpy(name + oplen + sizeof(schema) - 1, w->relname, rellen);
	name[oplen + sizeof(schema) - 1 + rellen] = '\0';
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
							 span->name + oplen + 1);
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
	int			relname_len;	/* strlen(relname) */
} RelClass;

#define REL_CLASS_CACHE 16

static RelClass rel_classes[REL_CLASS_CACHE];
static int	n_rel_classes = 0;

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
	fp_attribution_on_relcache_inval(forget_rel_classes);
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
	rc->relname_len = strlen(rc->relname);
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

	w = fp_attribution_pending_alloc(sizeof(OpenWrite));
	w->query = query;
	w->table = rc->table;
	/* known length: strlcpy copies byte by byte */
	memcpy(w->relname, rc->relname, rc->relname_len + 1);
	w->relname_len = rc->relname_len;
	w->start_ns = fp_attribution_telemetry_clock();
	w->span = NULL;
	if (pending->current != NULL && pending->current->sampled)
		w->span = new_db_span(w, pending->current);
	pending->open_writes = fp_attribution_pending_append(pending->open_writes, w);
}

/* The statement ended normally: close its span */
static void
end_write(QueryDesc *query)
{
	OpenWrite  *w = NULL;
	uint64		rows;

	for (int i = list_length(pending->open_writes) - 1; i >= 0; i--)
	{
		OpenWrite  *candidate = list_nth(pending->open_writes, i);

		if (candidate->query == query)
		{
			w = candidate;
			pending->open_writes = list_delete_nth_cell(pending->open_writes, i);
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
 * When the innermost write statement still open started (a row's event
 * span starts with it), or now if none is.
 */
int64
fp_attribution_pending_write_start(int64 now)
{
	return pending->open_writes != NIL ? ((OpenWrite *) llast(pending->open_writes))->start_ns :
		now;
}

/*
 * A command begins (fp_attribution_telemetry_begin_command): a direct
 * INSERT resolves its context in the BEFORE trigger, after its statement
 * started, so the innermost open write statement, if any, is this
 * command's: it names the command and gets its span.
 */
void
fp_attribution_pending_command_in_write(PendingCommand *cmd)
{
	OpenWrite  *w;

	if (pending->open_writes == NIL)
		return;
	w = llast(pending->open_writes);
	cmd->kind = fp_attribution_command_of_table(w->table);
	if (w->span == NULL && cmd->sampled)
		w->span = new_db_span(w, cmd);
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

	if (pending->current == NULL)
		return;
	old = MemoryContextSwitchTo(pending->cxt);
	edata = CopyErrorData();
	strlcpy(pending->current->sqlstate, unpack_sql_state(edata->sqlerrcode),
			sizeof(pending->current->sqlstate));
	fp_attribution_copy_text(pending->current->message,
							 edata->message ? edata->message : "",
							 sizeof(pending->current->message));
	pending->current->failed = true;
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
		if (pending->current != NULL)
			pending->current->kind = fp_attribution_command_of_table(target->table);
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

	/* the statement of a command call planned to be forwarded starts */
	if (pending->forward.armed)
	{
		if ((eflags & EXEC_FLAG_EXPLAIN_ONLY) == 0)
			fp_attribution_pending_start_forward();
		pending->forward.armed = false;
	}
	if (ours && pending->current != NULL && pending->current->kind == FP_COMMAND_UNKNOWN)
		pending->current->kind = fp_attribution_command_of_table(target.table);
	if (ours && pending->current == NULL &&
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
	pending->exec_nesting++;
	PG_TRY();
	{
		if (prev_ExecutorRun)
			prev_ExecutorRun(FP_EXECUTOR_RUN_ARGS);
		else
			standard_ExecutorRun(FP_EXECUTOR_RUN_ARGS);
	}
	PG_CATCH();
	{
		pending->exec_nesting--;
		capture_error();
		PG_RE_THROW();
	}
	PG_END_TRY();
	pending->exec_nesting--;

	/*
	 * A top-level SELECT (how the command functions are called) has done
	 * its work when its run returns, whatever the protocol: under the
	 * extended one its portal, and ExecutorEnd, wait for the next
	 * statement or the COMMIT.  Writes (and a SELECT with a writing WITH)
	 * end in ExecutorEnd, which follows at once, after their AFTER
	 * triggers.
	 */
	if (pending->exec_nesting == 0 && pending->current != NULL &&
		queryDesc->operation == CMD_SELECT &&
		!queryDesc->plannedstmt->hasModifyingCTE)
		fp_attribution_pending_end_current(fp_attribution_telemetry_clock());
}

static void
telemetry_ExecutorFinish(QueryDesc *queryDesc)
{
	pending->exec_nesting++;
	PG_TRY();
	{
		if (prev_ExecutorFinish)
			prev_ExecutorFinish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
	}
	PG_CATCH();
	{
		pending->exec_nesting--;
		capture_error();
		PG_RE_THROW();
	}
	PG_END_TRY();
	pending->exec_nesting--;
}

static void
telemetry_ExecutorEnd(QueryDesc *queryDesc)
{
	if (pending->open_writes != NIL)
		end_write(queryDesc);
	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
	/* the end of a top-level statement ends the command it ran */
	if (pending->exec_nesting == 0 && pending->current != NULL)
		fp_attribution_pending_end_current(fp_attribution_telemetry_clock());
}

/*
 * Install the executor hooks; called from
 * fp_attribution_telemetry_install_hooks() (telemetry_xact.c).
 */
void
fp_attribution_telemetry_install_executor_hooks(void)
{
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = telemetry_ExecutorStart;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = telemetry_ExecutorRun;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = telemetry_ExecutorFinish;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = telemetry_ExecutorEnd;
}
