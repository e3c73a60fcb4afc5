/*-------------------------------------------------------------------------
 *
 * telemetry_xact.c
 *	  Transaction hand-over: at the end of a (sub)transaction, the pending
 *	  telemetry (telemetry_pending.h) is settled according to the outcome
 *	  and, at top level, handed to shared memory (telemetry.c).
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
 * PRE_PREPARE); an abort, even one after that, builds again in place.
 * The tallies are handed over as they are, in creation order.  JSON log lines
 * are written through one buffer allocated beforehand with room for the
 * longest line.
 *
 * Locking: none here; shared memory is only touched through telemetry.c,
 * which takes its own locks, from the commit, prepare and abort callbacks.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "tcop/utility.h"
#include "utils/elog.h"

#include "fp_attribution/server_log.h"
#include "fp_attribution/telemetry.h"
#include "fp_attribution/telemetry_pending.h"
#include "fp_attribution/telemetry_record.h"
#include "fp_attribution/trace_context.h"

typedef enum XactOutcome
{
	OUTCOME_COMMIT,
	OUTCOME_ABORT,
	OUTCOME_PREPARE
} XactOutcome;

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

static char prepare_gid[GIDSIZE];	/* of the PREPARE TRANSACTION running */

/* Short for the pending state, in this file */
static FpPending *const pending = &fp_attribution_pending;

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

	foreach(lc, pending->commands)
	{
		PendingCommand *cmd = lfirst(lc);

		if (!cmd->head.aborted)
			continue;
		if (cmd->end_ns == 0)
			cmd->end_ns = now;
		if (cmd == pending->current)
			pending->current = NULL;
		if (!cmd->recorded)
		{
			pending->commands = foreach_delete_current(pending->commands, lc);
			fp_attribution_pending_retire_command(cmd);
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
	while (pending->open_writes != NIL)
	{
		OpenWrite  *w = llast(pending->open_writes);

		if (!all && !w->head.aborted)
			break;
		if (w->span != NULL && w->span->rec.end_time_unix_nano == 0)
			w->span->rec.end_time_unix_nano = now;
		pending->open_writes = list_delete_last(pending->open_writes);
		pfree(w);
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
	walk_subxact(pending->commands, mySubid, parentSubid, abort);
	walk_subxact(pending->spans, mySubid, parentSubid, abort);
	walk_subxact(pending->logs, mySubid, parentSubid, abort);
	walk_subxact(pending->open_writes, mySubid, parentSubid, abort);
	fp_attribution_pending_tallies_subxact(mySubid, parentSubid, abort);
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

	/* "attribution.<command>": short, ASCII, and no snprintf at commit */
	memcpy(span->name, "attribution.", sizeof("attribution.") - 1);
	fp_attribution_copy_name(span->name + sizeof("attribution.") - 1, command,
							 sizeof(span->name) - sizeof("attribution.") + 1);
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
		fp_attribution_log_init(log, FP_SEVERITY_INFO, "fp.command.started", cmd->start_ns,
				 &cmd->trace_id, &cmd->span_id, cmd->flags);
		fp_attribution_copy_name(log->body, "command started", sizeof(log->body));
		fp_attribution_attr_utf8(fp_attribution_log_attr(log, "fp.command.name"), command);
		fp_attribution_attr_utf8(fp_attribution_log_attr(log, "fp.trace.source"),
								 fp_attribution_context_source_name(cmd->source));
		out[n++] = log;
		return n;
	}
	log = cmd->logs[1];
	if (!cmd->head.aborted)
	{
		fp_attribution_log_init(log, FP_SEVERITY_INFO, "fp.command.succeeded", cmd->end_ns,
				 &cmd->trace_id, &cmd->span_id, cmd->flags);
		fp_attribution_copy_name(log->body, "command succeeded", sizeof(log->body));
		fp_attribution_attr_utf8(fp_attribution_log_attr(log, "fp.command.name"), command);
		fp_attribution_attr_utf8(fp_attribution_log_attr(log, "fp.command.outcome"), outcome);
		fp_attribution_attr_double(fp_attribution_log_attr(log, "fp.command.duration"),
								   (cmd->end_ns - cmd->start_ns) / 1e9);
		out[n++] = log;
		return n;
	}
	fp_attribution_log_init(log, FP_SEVERITY_ERROR, "fp.command.failed", cmd->end_ns,
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

	if (fp_attribution_command_breaks_rule(cmd))
	{
		log = cmd->logs[2];
		fp_attribution_log_init(log, FP_SEVERITY_WARN, "fp.business_rule.violated",
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
		fp_attribution_log_init(log, FP_SEVERITY_ERROR, "exception", cmd->end_ns,
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
	if (cmd->forwarded)
		return "forwarded";
	return cmd->wrote_row ? "created" : "replayed";
}

/*
 * Fill handover with the transaction's records according to its outcome
 * (see the file banner).  Every record and the room for the pointers to
 * them were allocated when they were reserved, so this allocates nothing
 * and can run in the abort callback; at commit or prepare it runs before
 * (PRE_COMMIT, PRE_PREPARE).
 */
static void
build(XactOutcome outcome)
{
	int64		now = fp_attribution_telemetry_clock();
	ListCell   *lc;

	if (outcome == OUTCOME_ABORT)
	{
		List	   *all[] = {pending->commands, pending->spans, pending->logs, pending->open_writes};

		for (int i = 0; i < lengthof(all); i++)
			foreach(lc, all[i])
				((PendingHead *) lfirst(lc))->aborted = true;
		end_aborted_commands(now);
	}
	close_aborted_writes(true, now);
	fp_attribution_pending_end_current(now);

	pending->handover.n_spans = pending->handover.n_logs = 0;
	pending->handover.commands_used = 0;

	/* every command left here has room for its records */
	foreach(lc, pending->commands)
	{
		PendingCommand *cmd = lfirst(lc);
		FpLatencyTally *latency;

		if (cmd->kind == FP_COMMAND_UNKNOWN)
			continue;
		if (!cmd->forwarded)
		{
			latency = fp_attribution_pending_latency(&pending->handover.commands[0][0],
													 &pending->handover.commands_used,
													 2 * cmd->kind + cmd->head.aborted);
			fp_attribution_telemetry_tally_command(latency,
												   cmd->end_ns - cmd->start_ns);
			if (cmd->span != NULL)
				fp_attribution_telemetry_tally_exemplar(latency, cmd->end_ns,
														(cmd->end_ns - cmd->start_ns) / 1e9,
														&cmd->trace_id, &cmd->span_id);
			pending->handover.n_logs += command_logs(cmd, NULL, pending->handover.logs + pending->handover.n_logs, false);
		}
		if (cmd->span != NULL)
		{
			finish_command_span(cmd, command_outcome(cmd, outcome));
			pending->handover.spans[pending->handover.n_spans++] = cmd->span;
		}
	}
	foreach(lc, pending->spans)
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
		pending->handover.spans[pending->handover.n_spans++] = &p->rec;
	}
	foreach(lc, pending->logs)
	{
		PendingLog *p = lfirst(lc);

		if (!(p->business && p->head.aborted))
			pending->handover.logs[pending->handover.n_logs++] = &p->rec;
	}
	foreach(lc, pending->commands)
	{
		PendingCommand *cmd = lfirst(lc);

		if (cmd->kind != FP_COMMAND_UNKNOWN && !cmd->forwarded)
			pending->handover.n_logs += command_logs(cmd, command_outcome(cmd, outcome),
											pending->handover.logs + pending->handover.n_logs, true);
	}
	pending->handover.ready = true;
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
	for (int i = 0; i < pending->n_tallies; i++)
	{
		Tally	   *t = pending->tallies[i];
		const char *key = t->k.overflow ? NULL : t->k.key;

		if (t->k.kind == TALLY_COMMANDS)
			fp_attribution_telemetry_count_commands(t->k.command, &t->latency,
													outcome == OUTCOME_ABORT);
		else if (outcome == OUTCOME_ABORT)
			continue;			/* the business work never happened */
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
	for (int k = 0; k < FP_COMMAND_KINDS; k++)
	{
		if (pending->rolled_back_used & (((uint32) 1) << k))
			fp_attribution_telemetry_count_commands(k, &pending->rolled_back[k], true);
		for (int failed = 0; failed < 2; failed++)
			if (pending->handover.commands_used & (((uint32) 1) << (2 * k + failed)))
				fp_attribution_telemetry_count_commands(k, &pending->handover.commands[k][failed],
														failed);
	}
	fp_attribution_telemetry_push_spans(pending->handover.spans, pending->handover.n_spans);
	fp_attribution_telemetry_push_logs(pending->handover.logs, pending->handover.n_logs);
	fp_attribution_telemetry_count_drops(FP_SIGNAL_SPANS, pending->dropped_spans);
	fp_attribution_telemetry_count_drops(FP_SIGNAL_LOGS, pending->dropped_logs);
	if (fp_attribution_log_json && pending->json_line.data != NULL)
	{
		/* already log records: not again through the server log hook */
		fp_attribution_server_log_paused++;
		for (int i = 0; i < pending->handover.n_logs; i++)
		{
			resetStringInfo(&pending->json_line);
			fp_attribution_log_json_line(&pending->json_line, pending->handover.logs[i]);
			ereport(LOG,
					(errmsg_internal("%s", pending->json_line.data),
					 errhidestmt(true), errhidecontext(true)));
		}
		fp_attribution_server_log_paused--;
	}
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
	{
		pending->anchor_wall = 0;		/* read after the build, or not needed */
		pending->forward.armed = false; /* planned, never started */
	}
	if (pending->cxt == NULL && pending->n_tallies == 0)
		return;
	if (pending->commands == NIL && pending->spans == NIL && pending->logs == NIL &&
		pending->n_tallies == 0 &&
		pending->dropped_spans == 0 && pending->dropped_logs == 0)
	{
		if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
			event == XACT_EVENT_PREPARE)
		{
			fp_attribution_pending_forget();
			prepare_gid[0] = '\0';
		}
		return;
	}
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			old = MemoryContextSwitchTo(pending->cxt);
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
	if (pending->handover.ready)
		hand_over(outcome);
	fp_attribution_pending_forget();
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
 * Install the executor and utility hooks, the transaction callbacks and
 * the hook through which trace context announces each command; called
 * from _PG_init while shared_preload_libraries is processed.
 */
void
fp_attribution_telemetry_install_hooks(void)
{
	fp_attribution_telemetry_install_executor_hooks();
	fp_attribution_command_begun_hook = fp_attribution_telemetry_begin_command;
	fp_attribution_call_forwarded_hook = fp_attribution_telemetry_plan_forward;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = telemetry_ProcessUtility;
	RegisterXactCallback(telemetry_xact_callback, NULL);
	RegisterSubXactCallback(telemetry_subxact_callback, NULL);
}
