/*-------------------------------------------------------------------------
 *
 * telemetry_pending.h
 *	  A transaction's pending telemetry, as the parts of the capture share
 *	  it: telemetry_pending.c keeps the pending records and tallies and the
 *	  running command, telemetry_exec.c (the executor hooks) and
 *	  telemetry_row.c (the row trigger) add what they see, and
 *	  telemetry_xact.c hands it all over at transaction end.  Backend-local
 *	  memory only: no shared memory and no locks (see telemetry_pending.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_TELEMETRY_PENDING_H
#define FP_ATTRIBUTION_TELEMETRY_PENDING_H

#include "access/xact.h"
#include "common/int.h"
#include "executor/execdesc.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"

#include "fp_attribution/telemetry.h"
#include "fp_attribution/telemetry_record.h"
#include "fp_attribution/trace_context.h"

/*
 * The tables we distinguish.  Never by their name: the telemetry trigger's
 * argument says which kind of table it is attached to (see classify_rel),
 * so a renamed copy or the shard of a distributed table is classified, and
 * named in spans, as the logical table.
 */
typedef enum FpTable
{
	TABLE_OTHER,				/* another table of the extension */
	TABLE_CLICKS,
	TABLE_CONVERSIONS,
	TABLE_RECEIPTS
} FpTable;

/* Common head of every pending item, for the subtransaction walks */
typedef struct PendingHead
{
	SubTransactionId subid;		/* the subtransaction that owns it */
	bool		aborted;		/* that subtransaction rolled back */
} PendingHead;

/*
 * Log records of a command: started, then succeeded or failed, rule, and
 * the exception (the span's exception event as a log record, as span
 * events give way to log records in OpenTelemetry)
 */
#define COMMAND_LOGS 4

/*
 * A command.  A recorded one (there was room for its records) gets them
 * allocated when it starts: its span, with what is known then, and its
 * log records, filled at transaction end.  Strings are UTF-8.
 */
typedef struct PendingCommand
{
	PendingHead head;
	FpCommandKind kind;
	FpContextSource source;
	bool		sampled;
	bool		recorded;		/* has room for its span and logs */
	bool		wrote_row;
	bool		failed;			/* an error passed through it (sqlstate) */
	bool		forwarded;		/* sent to another node: a span only */
	int64		start_ns;
	int64		end_ns;			/* 0 while it runs */
	FpTraceId	trace_id;
	FpSpanId	span_id;
	uint8		flags;
	char		sqlstate[6];
	char		message[FP_ATTR_VALUE_LEN];
	char		affiliate_id[FP_ATTR_VALUE_LEN];
	char		entity_id[FP_ATTR_VALUE_LEN];	/* click_id or order_id */
	FpSpanRecord *span;			/* recorded and sampled, else NULL */
	int			span_start_attrs;	/* attributes set when it started */
	FpLogRecord *logs[COMMAND_LOGS];	/* recorded, else NULL */
} PendingCommand;

typedef struct PendingSpan
{
	PendingHead head;
	FpSpanRecord rec;
} PendingSpan;

typedef struct PendingLog
{
	PendingHead head;
	bool		business;		/* dropped when its work is rolled back */
	FpLogRecord rec;
} PendingLog;

typedef enum TallyKind
{
	TALLY_CLICKS,
	TALLY_CONVERSIONS,
	TALLY_RECEIPTS,
	TALLY_COMMANDS,				/* commands kept without spans or logs */
	TALLY_LIFECYCLE				/* lifecycle.c, fraud_rules.c */
} TallyKind;

/*
 * Metric increments, aggregated per subtransaction: the business metrics
 * of the rows written, and the commands whose spans and logs did not fit.
 * subid 0 holds the commands that a rollback undid.
 */
typedef struct TallyKey
{
	SubTransactionId subid;
	uint8		kind;			/* TallyKind */
	uint8		command;		/* FpCommandKind of TALLY_COMMANDS,
								 * FpLifecycleMetric of TALLY_LIFECYCLE */
	bool		overflow;		/* key not kept: the overflow series */
	char		key[FP_ATTR_VALUE_LEN]; /* affiliate id or currency */
} TallyKey;

typedef struct Tally
{
	TallyKey	k;
	uint64		n;
	int64		revenue_cents;
	FpLatencyTally latency;		/* commands; attributed conversions */
} Tally;

/* Distinct keys kept per transaction; more go to the overflow series */
#define TALLY_MAX_KEYS 1024

/* A write statement on an attribution table that has not ended yet */
typedef struct OpenWrite
{
	PendingHead head;
	QueryDesc  *query;
	FpTable		table;
	char		relname[NAMEDATALEN];
	int			relname_len;	/* strlen(relname) */
	int64		start_ns;
	PendingSpan *span;			/* NULL when no sampled command owns it */
} OpenWrite;

/*
 * A command call that delegation.c is sending whole to another node, in
 * the statement being planned.  Its span (a PendingCommand marked
 * forwarded) starts at the next ExecutorStart, the statement's, unless
 * that is EXPLAIN without ANALYZE; forgotten at transaction end.  Only
 * sampled calls are kept: an unsampled one records nothing here.
 */
typedef struct PlannedForward
{
	bool		armed;
	FpCommandKind kind;
	FpContextSource source;
	int64		start_ns;		/* when it was planned */
	FpTraceId	trace_id;
	FpSpanId	span_id;
	FpSpanId	parent_span_id;
	uint8		flags;
	char		tracestate[FP_TRACESTATE_MAX_LEN + 1];	/* "" for none */
	char		affiliate_id[FP_ATTR_VALUE_LEN];
	char		entity_id[FP_ATTR_VALUE_LEN];
} PlannedForward;

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
	FpLatencyTally commands[FP_COMMAND_KINDS][2];	/* [kind][failed] */
	uint32		commands_used;	/* bit 2 * kind + failed: set, zeroed */
} HandOver;

StaticAssertDecl(2 * FP_COMMAND_KINDS <= 32, "commands_used has a bit per entry");

/*
 * The transaction's pending telemetry.  The lists and what they point to
 * live in cxt, the tallies in tally_cxt (so that they do not count against
 * fp_attribution.max_pending_telemetry: TALLY_MAX_KEYS bounds them); both
 * are forgotten at transaction end (fp_attribution_pending_forget).
 */
typedef struct FpPending
{
	MemoryContext cxt;
	List	   *commands;		/* PendingCommand, in start order */
	List	   *spans;			/* PendingSpan: DB-operation and event spans */
	List	   *logs;			/* PendingLog: business and rule records */
	List	   *open_writes;	/* OpenWrite, innermost last */
	PendingCommand *current;	/* the running command, if any */
	PlannedForward forward;
	Tally	  **tallies;		/* in creation order: series are created in
								 * it */
	int			n_tallies;
	int			tallies_room;
	struct tallytab_hash *tally_index;	/* Tally by TallyKey, or NULL */
	MemoryContext tally_cxt;	/* the tallies, their array and index */
	int			reserved_spans; /* spans the transaction will hand over */
	int			reserved_logs;	/* and log records */
	uint64		dropped_spans;	/* beyond those caps */
	uint64		dropped_logs;
	int			exec_nesting;	/* executor depth (telemetry_exec.c) */
	FpLatencyTally rolled_back[FP_COMMAND_KINDS];	/* retired, undone */
	uint32		rolled_back_used;	/* bit kind: that entry is zeroed, set */
	HandOver	handover;

	/*
	 * The transaction's clock: the wall-clock time of its first reading
	 * plus the monotonic time elapsed since, so that every duration is
	 * monotonic (a wall-clock step cannot make one negative or huge) while
	 * start times stay wall-clock times.  anchor_wall is 0 until the first
	 * reading.
	 */
	int64		anchor_wall;
	int64		anchor_mono;

	/* One JSON log line at a time; allocated before any is needed */
	StringInfoData json_line;
} FpPending;

extern FpPending fp_attribution_pending;

/* The command that writes a table's rows */
static inline FpCommandKind
fp_attribution_command_of_table(FpTable table)
{
	if (table == TABLE_CLICKS)
		return FP_COMMAND_TRACK_CLICK;
	if (table == TABLE_CONVERSIONS)
		return FP_COMMAND_TRACK_CONVERSION;
	return FP_COMMAND_UNKNOWN;
}

/* The lifecycle commands write a receipt and update their conversion */
static inline bool
fp_attribution_is_lifecycle_command(FpCommandKind kind)
{
	return kind >= FP_COMMAND_APPROVE_CONVERSION && kind < FP_COMMAND_KINDS;
}

/* Bad input and integrity errors (SQLSTATE classes 22, 23) break rules */
static inline bool
fp_attribution_command_breaks_rule(const PendingCommand *cmd)
{
	return cmd->failed && cmd->sqlstate[0] == '2' &&
		(cmd->sqlstate[1] == '2' || cmd->sqlstate[1] == '3');
}

/* revenue_cents + add, stopping at INT64_MAX (both are at least 0) */
static inline int64
fp_attribution_add_revenue(int64 revenue_cents, int64 add)
{
	int64		sum;

	return pg_add_s64_overflow(revenue_cents, add, &sum) ? PG_INT64_MAX : sum;
}

/*
 * The entries of rolled_back and handover.commands are a few kB together
 * and a transaction touches one or two: each is zeroed when first used
 * (its bit in *used), not all at every transaction.
 */
static inline FpLatencyTally *
fp_attribution_pending_latency(FpLatencyTally *entries, uint32 *used, int i)
{
	if ((*used & (((uint32) 1) << i)) == 0)
	{
		memset(&entries[i], 0, sizeof(FpLatencyTally));
		*used |= ((uint32) 1) << i;
	}
	return &entries[i];
}

/* telemetry_pending.c: the pending state */
extern bool fp_attribution_telemetry_active(void);
extern int64 fp_attribution_telemetry_clock(void);
extern void *fp_attribution_pending_alloc(Size size);
extern List *fp_attribution_pending_append(List *list, void *item);
extern void fp_attribution_pending_tallies_subxact(SubTransactionId subid,
												  SubTransactionId parent,
												  bool abort);
extern void fp_attribution_pending_retire_command(PendingCommand *cmd);
extern void fp_attribution_pending_end_current(int64 now);
extern void fp_attribution_pending_forget(void);
extern PendingSpan *fp_attribution_pending_span(void);
extern bool fp_attribution_pending_log_room(void);
extern PendingLog *fp_attribution_pending_new_log(PendingLog *scratch,
												  bool business,
												  FpSeverity severity,
												  const char *event_name,
												  const char *body, int64 time,
												  const FpTraceId *trace_id,
												  const FpSpanId *span_id,
												  uint8 flags);
extern void fp_attribution_pending_keep_log(PendingLog *log);
extern PendingCommand *fp_attribution_pending_command_of_span(const FpSpanId *span_id);
extern bool fp_attribution_telemetry_plan_forward(const FpCommandContext *ctx,
												  const char *command,
												  const char *affiliate_id,
												  const char *entity_id);
extern void fp_attribution_pending_start_forward(void);
extern Tally *fp_attribution_pending_tally(SubTransactionId subid,
										   TallyKind kind, int command,
										   const char *key);
extern void fp_attribution_pending_db_attrs(FpSpanRecord *span);

/* telemetry_exec.c: the executor hooks and the write statements they see */
extern FpTable fp_attribution_telemetry_table_of_name(const char *name);
extern int64 fp_attribution_pending_write_start(int64 now);
extern void fp_attribution_pending_command_in_write(PendingCommand *cmd);
extern void fp_attribution_telemetry_install_executor_hooks(void);

/* telemetry_row.c: the row trigger's C function */
extern PGDLLEXPORT Datum fp_attribution_telemetry_row_written(PG_FUNCTION_ARGS);

#endif							/* FP_ATTRIBUTION_TELEMETRY_PENDING_H */
