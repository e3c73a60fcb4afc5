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
 * commands, it resolves the call's context here, exactly as the command
 * would (trace_context.c: the traceparent argument, the setting, the
 * comment, application_name, else a new root under the sampling ratio),
 * for a span of this node that forwards the call: telemetry records it
 * (fp_attribution_call_forwarded_hook) from this planning to the end of
 * the statement, as a CLIENT span (it is the outgoing request whose
 * SERVER side is the worker's command span, as OpenTelemetry's semantic
 * conventions pair them) named after the command.  The call is rewritten
 * to carry that span as constant traceparent and tracestate arguments:
 * the worker's command span, its row and its receipt are children of the
 * coordinator's span, in the caller's trace.  With telemetry off here the
 * call carries the incoming context unchanged, or is left alone without
 * one.  An unsampled call still gets a span id of its own (a span that
 * records nothing, as in OpenTelemetry SDKs), so the worker follows the
 * decision.
 *
 * The commands are the extension's functions with input arguments named
 * advertiser_id and traceparent (the ones attribution.distribute()
 * distributes), found through the extension's dependencies, never by
 * name, once per backend and again after any pg_proc change (which
 * CREATE or DROP EXTENSION also causes).
 *
 * Only when the citus extension is installed in the database: on one node
 * nothing is rewritten and no such span exists.  Not on a connection that
 * another Citus node opened: a call a coordinator sends here already
 * carries its span, and this node runs it.  Only outside a
 * transaction block (Citus runs a command called inside one on the
 * coordinator, where the command resolves its own context and its span
 * is this node's command span), only for a statement with one command
 * call and nothing else in FROM (the forms Citus sends whole; two calls,
 * or a call per row of something else, run here, each a command of this
 * node), not when the traceparent argument is an
 * expression unknown until execution, and not in a generic plan
 * (parameters without values), which may serve other calls that must not
 * inherit this call's context; Citus delegates a call with parameters
 * only from a custom plan, planned for each execution with the
 * parameters' values.  A statement PREPAREd without any parameter is
 * planned once and keeps the context of its first execution: later
 * executions have no span here, and the worker's spans name the first
 * execution's span as parent (doc/citus.md).
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
#include "catalog/pg_collation.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "funcapi.h"
#include "nodes/nodeFuncs.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/planner.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "fp_attribution/delegation.h"
#include "fp_attribution/row_guard.h"
#include "fp_attribution/trace_context.h"
#include "fp_attribution/traceparent.h"

/*
 * A command: its function, its name (the command's name in telemetry) and
 * the positions of the arguments that the span forwarding it records
 */
typedef struct DelegatedCommand
{
	Oid			funcid;
	NameData	name;
	int			traceparent_arg;	/* among the input arguments, from 0 */
	int			tracestate_arg; /* -1 if it has none */
	int			affiliate_arg;	/* affiliate_id, or -1 */
	int			entity_arg;		/* click_id or order_id, or -1 */
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
	DelegatedCommand cmd = {((Form_pg_proc) GETSTRUCT(proc))->oid,
	((Form_pg_proc) GETSTRUCT(proc))->proname, -1, -1, -1, -1};
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
		else if (strcmp(names[i], "affiliate_id") == 0)
			cmd.affiliate_arg = input;
		else if (strcmp(names[i], "click_id") == 0 && cmd.entity_arg < 0)
			cmd.entity_arg = input;
		else if (strcmp(names[i], "order_id") == 0)
			cmd.entity_arg = input;	/* a conversion's id, even with a click */
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

/*
 * The value of an argument known when the call is planned, as text: a
 * constant, or a parameter of a custom plan (bound_params with values).
 * false when it is not known; *value is NULL for an SQL NULL.
 */
static bool
argument_value(Node *arg, ParamListInfo bound_params, char **value)
{
	Oid			type;
	Datum		datum;
	bool		isnull;
	Oid			output;
	bool		varlena;

	if (IsA(arg, Const))
	{
		type = ((Const *) arg)->consttype;
		datum = ((Const *) arg)->constvalue;
		isnull = ((Const *) arg)->constisnull;
	}
	else if (IsA(arg, Param) && ((Param *) arg)->paramkind == PARAM_EXTERN &&
			 bound_params != NULL && bound_params->paramFetch == NULL &&
			 ((Param *) arg)->paramid > 0 &&
			 ((Param *) arg)->paramid <= bound_params->numParams)
	{
		ParamExternData *p = &bound_params->params[((Param *) arg)->paramid - 1];

		type = p->ptype;
		datum = p->value;
		isnull = p->isnull;
	}
	else
		return false;
	*value = NULL;
	if (isnull)
		return true;
	getTypeOutputInfo(type, &output, &varlena);
	*value = OidOutputFunctionCall(output, datum);
	return true;
}

/* A text constant, or a NULL one */
static Node *
text_constant(const char *value)
{
	return (Node *) makeConst(TEXTOID, -1, DEFAULT_COLLATION_OID, -1,
							  value ? CStringGetTextDatum(value) : (Datum) 0,
							  value == NULL, false);
}

/* The value of the call's argument at input position i, or NULL */
static char *
known_argument(List *args, int i, ParamListInfo bound_params)
{
	char	   *value = NULL;

	if (i >= 0)
		(void) argument_value(list_nth(args, i), bound_params, &value);
	return value;
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
 * The command of expr when it is a call of one, or NULL.  Not in a plan
 * with unbound parameters (no bound_params): that is a generic plan,
 * which may serve later calls with other contexts.
 */
static DelegatedCommand *
command_call(Node *expr, ParamListInfo bound_params)
{
	FuncExpr   *call;

	if (expr == NULL || !IsA(expr, FuncExpr))
		return NULL;
	call = (FuncExpr *) expr;
	if (bound_params == NULL && contains_param((Node *) call->args, NULL))
		return NULL;
	return find_command(call->funcid);
}

/*
 * Give the call of command cmd the context it is sent with: the span
 * that forwards it, child of the call's traceparent argument or of the
 * statement's incoming context, or a new root (its context resolved as
 * the command would resolve its own); telemetry records that span
 * (fp_attribution_call_forwarded_hook).  When telemetry records none, the
 * call carries the incoming context unchanged, as the command on this
 * node would have, or is left alone without one.  Left alone too when the
 * traceparent argument is not known when planning.
 */
static void
pass_context(FuncExpr *call, DelegatedCommand *cmd, ParamListInfo bound_params)
{
	HeapTuple	proc;
	List	   *args;
	char	   *traceparent_arg;
	char	   *tracestate_arg;
	FpCommandContext ctx;
	char		traceparent[FP_TRACEPARENT_LEN + 1];
	bool		forwarded;

	/* named arguments in place and defaults filled in, as the planner will */
	proc = SearchSysCache1(PROCOID, ObjectIdGetDatum(call->funcid));
	if (!HeapTupleIsValid(proc))
		elog(ERROR, "cache lookup failed for function %u", call->funcid);
	args = expand_function_arguments(call->args, false, call->funcresulttype,
									 proc);
	ReleaseSysCache(proc);

	if (!argument_value(list_nth(args, cmd->traceparent_arg), bound_params,
						&traceparent_arg))
		return;
	tracestate_arg = known_argument(args, cmd->tracestate_arg, bound_params);
	fp_attribution_resolve_context(traceparent_arg, tracestate_arg, &ctx);
	forwarded = fp_attribution_call_forwarded_hook != NULL &&
		fp_attribution_call_forwarded_hook(&ctx, NameStr(cmd->name),
										   known_argument(args, cmd->affiliate_arg, bound_params),
										   known_argument(args, cmd->entity_arg, bound_params));
	if (!forwarded &&
		(ctx.source == FP_CONTEXT_ARGUMENT || ctx.source == FP_CONTEXT_NEW_ROOT))
		return;
	fp_attribution_format_traceparent(&ctx.trace_id,
									  forwarded ? &ctx.span_id : &ctx.parent_span_id,
									  ctx.flags, traceparent);
	lfirst(list_nth_cell(args, cmd->traceparent_arg)) = text_constant(traceparent);
	if (cmd->tracestate_arg >= 0)
		lfirst(list_nth_cell(args, cmd->tracestate_arg)) = text_constant(ctx.tracestate);
	call->args = args;
}

/*
 * The planner hook: look for command calls in the two forms Citus sends
 * whole to a worker, SELECT command(...) and SELECT ... FROM command(...),
 * with nothing else in FROM.  A statement with more than one call, or
 * with a table or another function in FROM, is not sent whole: each
 * command runs here and resolves its own context.
 */
static PlannedStmt *
delegation_planner(Query *parse, const char *query_string, int cursor_options,
				   ParamListInfo bound_params)
{
	if (parse->commandType == CMD_SELECT && !IsTransactionBlock() &&
		!fp_attribution_citus_internal_connection())
	{
		ListCell   *lc;
		FuncExpr   *call = NULL;
		DelegatedCommand *cmd = NULL;
		int			calls = 0;
		bool		other_from = false; /* FROM has more than commands */

		if (!commands_valid)
			load_commands();
		if (commands != NIL)
		{
			foreach(lc, parse->targetList)
			{
				Node	   *expr = (Node *) ((TargetEntry *) lfirst(lc))->expr;
				DelegatedCommand *c = command_call(expr, bound_params);

				if (c != NULL)
				{
					cmd = c;
					call = (FuncExpr *) expr;
					calls++;
				}
			}
			foreach(lc, parse->rtable)
			{
				RangeTblEntry *rte = lfirst(lc);
				ListCell   *f;

				if (rte->rtekind != RTE_FUNCTION)
				{
					other_from = true;
					continue;
				}
				foreach(f, rte->functions)
				{
					Node	   *expr = ((RangeTblFunction *) lfirst(f))->funcexpr;
					DelegatedCommand *c = command_call(expr, bound_params);

					if (c == NULL)
						other_from = true;
					else
					{
						cmd = c;
						call = (FuncExpr *) expr;
						calls++;
					}
				}
			}
			if (calls == 1 && !other_from)
				pass_context(call, cmd, bound_params);
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
