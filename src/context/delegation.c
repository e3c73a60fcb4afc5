/*-------------------------------------------------------------------------
 *
 * delegation.c
 *	  Trace context for commands that Citus sends whole to a worker.
 *
 * On a Citus coordinator, an autocommit call of a distributed command
 * (SELECT attribution.track_click(..., advertiser_id => 'a')) is not run
 * there: Citus' planner deparses the call, every argument spelt out, and
 * sends it to the worker holding the advertiser's shards on a connection
 * of its own.  Two of the sources of a command's trace context stay
 * behind: the SQLCommenter comment on the caller's statement and the
 * caller's application_name.
 *
 * fp_attribution is loaded after Citus, so this planner hook runs before
 * Citus' planner.  When the statement calls one of the extension's
 * commands without a traceparent, it resolves the incoming context here,
 * exactly as the command would (trace_context.c: setting, comment,
 * application_name), and writes it into the call as constant traceparent
 * and tracestate arguments.  The worker then runs the command with an
 * explicit parent: the row and its receipt carry the caller's trace id and
 * span as parent, as on one node.  Without an incoming context the call is
 * left alone (the command starts a new root wherever it runs).
 *
 * The commands are the extension's functions with input arguments named
 * advertiser_id and traceparent (the ones attribution.distribute()
 * distributes), found through the extension's dependencies, never by
 * name, once per backend and again after any pg_proc change (which
 * CREATE or DROP EXTENSION also causes).
 *
 * Only when the citus extension is installed in the database: on one node
 * nothing is rewritten, so the context's source recorded by the command
 * stays the one it came from.  Only outside a transaction block (Citus
 * runs a command called inside one on the coordinator, where the command
 * resolves its own context), and not in a generic plan (parameters without
 * values), which may serve other calls that must not inherit this call's
 * context; Citus delegates a call with parameters only from a custom plan,
 * planned for each execution with the parameters' values.  A statement
 * PREPAREd without any parameter is planned once and keeps the context of
 * its first execution (doc/citus.md).
 *
 * Shared memory: none.  Backend-local state: the cached list of commands.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_proc.h"
#include "commands/extension.h"
#include "funcapi.h"
#include "nodes/nodeFuncs.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/planner.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "fp_attribution/delegation.h"
#include "fp_attribution/trace_context.h"
#include "fp_attribution/traceparent.h"

/* A command: its function and the positions of its context arguments */
typedef struct DelegatedCommand
{
	Oid			funcid;
	int			traceparent_arg;	/* among the input arguments, from 0 */
	int			tracestate_arg; /* -1 if it has none */
} DelegatedCommand;

static planner_hook_type prev_planner = NULL;

/* The commands, when citus and fp_attribution are both installed */
static List *commands = NIL;
static bool commands_valid = false;
static MemoryContext commands_cxt = NULL;

/* pg_proc changed: find the commands again before the next statement */
static void
forget_commands(Datum arg, int cacheid, uint32 hashvalue)
{
	commands_valid = false;
}

/*
 * The command entry of the function in proc, or NULL when it is not a
 * command (no input arguments named advertiser_id and traceparent).
 */
static DelegatedCommand *
command_of_function(HeapTuple proc)
{
	Oid		   *types;
	char	  **names;
	char	   *modes;
	int			nargs = get_func_arg_info(proc, &types, &names, &modes);
	int			input = 0;
	bool		has_advertiser = false;
	DelegatedCommand cmd = {((Form_pg_proc) GETSTRUCT(proc))->oid, -1, -1};
	DelegatedCommand *result;

	if (names == NULL)
		return NULL;
	for (int i = 0; i < nargs; i++)
	{
		if (modes != NULL && modes[i] != PROARGMODE_IN &&
			modes[i] != PROARGMODE_INOUT && modes[i] != PROARGMODE_VARIADIC)
			continue;
		if (strcmp(names[i], "advertiser_id") == 0)
			has_advertiser = true;
		else if (strcmp(names[i], "traceparent") == 0)
			cmd.traceparent_arg = input;
		else if (strcmp(names[i], "tracestate") == 0)
			cmd.tracestate_arg = input;
		input++;
	}
	if (!has_advertiser || cmd.traceparent_arg < 0)
		return NULL;
	result = MemoryContextAlloc(commands_cxt, sizeof(DelegatedCommand));
	*result = cmd;
	return result;
}

/*
 * Find the commands: the functions that belong to fp_attribution, when
 * citus is installed too.  valid is set first, so an invalidation that
 * arrives while the catalogs are read makes the next statement look again.
 */
static void
load_commands(void)
{
	Oid			ours;
	Relation	depend;
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tuple;

	if (commands_cxt == NULL)
	{
		commands_cxt = AllocSetContextCreate(TopMemoryContext,
											 "fp_attribution delegated commands",
											 ALLOCSET_SMALL_SIZES);
		CacheRegisterSyscacheCallback(PROCOID, forget_commands, (Datum) 0);
	}
	MemoryContextReset(commands_cxt);
	commands = NIL;
	commands_valid = true;

	ours = get_extension_oid("fp_attribution", true);
	if (!OidIsValid(ours) || !OidIsValid(get_extension_oid("citus", true)))
		return;

	depend = table_open(DependRelationId, AccessShareLock);
	ScanKeyInit(&keys[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(ExtensionRelationId));
	ScanKeyInit(&keys[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(ours));
	scan = systable_beginscan(depend, DependReferenceIndexId, true, NULL,
							  2, keys);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		Form_pg_depend dep = (Form_pg_depend) GETSTRUCT(tuple);
		HeapTuple	proc;
		DelegatedCommand *cmd;

		if (dep->classid != ProcedureRelationId ||
			dep->deptype != DEPENDENCY_EXTENSION)
			continue;
		proc = SearchSysCache1(PROCOID, ObjectIdGetDatum(dep->objid));
		if (!HeapTupleIsValid(proc))
			continue;
		cmd = command_of_function(proc);
		ReleaseSysCache(proc);
		if (cmd != NULL)
		{
			MemoryContext old = MemoryContextSwitchTo(commands_cxt);

			commands = lappend(commands, cmd);
			MemoryContextSwitchTo(old);
		}
	}
	systable_endscan(scan);
	table_close(depend, AccessShareLock);
}

/* The command entry of a function, or NULL when it is not a command */
static DelegatedCommand *
find_command(Oid funcid)
{
	ListCell   *lc;

	foreach(lc, commands)
	{
		DelegatedCommand *cmd = lfirst(lc);

		if (cmd->funcid == funcid)
			return cmd;
	}
	return NULL;
}

/* true for NULL as a constant: an absent (defaulted) or NULL argument */
static bool
is_null_constant(Node *arg)
{
	return IsA(arg, Const) && ((Const *) arg)->constisnull;
}

/* A text constant of the type and collation of the NULL it replaces */
static Node *
text_constant(Node *null_arg, const char *value)
{
	Const	   *c = (Const *) null_arg;

	return (Node *) makeConst(c->consttype, c->consttypmod, c->constcollid,
							  c->constlen, CStringGetTextDatum(value),
							  false, false);
}

/* Whether an expression holds a Param (expression_tree_walker callback) */
static bool
contains_param(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Param))
		return true;
	return expression_tree_walker(node, contains_param, context);
}

/*
 * If expr is a call of a command without a traceparent, give it the
 * statement's incoming context as explicit arguments.  Not in a plan with
 * unbound parameters (no bound_params): that is a generic plan, which may
 * serve later calls with other contexts.
 */
static void
pass_context(Node *expr, ParamListInfo bound_params)
{
	FuncExpr   *call;
	DelegatedCommand *cmd;
	HeapTuple	proc;
	List	   *args;
	char		traceparent[FP_TRACEPARENT_LEN + 1];
	char	   *tracestate;

	if (expr == NULL || !IsA(expr, FuncExpr))
		return;
	call = (FuncExpr *) expr;
	cmd = find_command(call->funcid);
	if (cmd == NULL ||
		(bound_params == NULL && contains_param((Node *) call->args, NULL)))
		return;

	/* named arguments in place and defaults filled in, as the planner will */
	proc = SearchSysCache1(PROCOID, ObjectIdGetDatum(call->funcid));
	if (!HeapTupleIsValid(proc))
		elog(ERROR, "cache lookup failed for function %u", call->funcid);
	args = expand_function_arguments(call->args, false, call->funcresulttype,
									 proc);
	ReleaseSysCache(proc);

	if (!is_null_constant(list_nth(args, cmd->traceparent_arg)) ||
		!fp_attribution_incoming_traceparent(traceparent, &tracestate))
		return;
	lfirst(list_nth_cell(args, cmd->traceparent_arg)) =
		text_constant(list_nth(args, cmd->traceparent_arg), traceparent);
	if (tracestate != NULL && cmd->tracestate_arg >= 0 &&
		is_null_constant(list_nth(args, cmd->tracestate_arg)))
		lfirst(list_nth_cell(args, cmd->tracestate_arg)) =
			text_constant(list_nth(args, cmd->tracestate_arg), tracestate);
	call->args = args;
}

/*
 * The planner hook: look for command calls in the two forms Citus sends
 * whole to a worker, SELECT command(...) and SELECT ... FROM command(...).
 */
static PlannedStmt *
delegation_planner(Query *parse, const char *query_string, int cursor_options,
				   ParamListInfo bound_params)
{
	if (parse->commandType == CMD_SELECT && !IsTransactionBlock())
	{
		ListCell   *lc;

		if (!commands_valid)
			load_commands();
		if (commands != NIL)
		{
			foreach(lc, parse->targetList)
				pass_context((Node *) ((TargetEntry *) lfirst(lc))->expr,
							 bound_params);
			foreach(lc, parse->rtable)
			{
				RangeTblEntry *rte = lfirst(lc);
				ListCell   *f;

				if (rte->rtekind != RTE_FUNCTION)
					continue;
				foreach(f, rte->functions)
					pass_context(((RangeTblFunction *) lfirst(f))->funcexpr,
								 bound_params);
			}
		}
	}
	if (prev_planner != NULL)
		return prev_planner(parse, query_string, cursor_options, bound_params);
	return standard_planner(parse, query_string, cursor_options, bound_params);
}

/* Install the planner hook (from _PG_init, after Citus has installed its own) */
void
fp_attribution_delegation_install_hook(void)
{
	prev_planner = planner_hook;
	planner_hook = delegation_planner;
}
