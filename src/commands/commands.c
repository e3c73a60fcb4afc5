/*-------------------------------------------------------------------------
 *
 * commands.c
 *	  What the write commands track_click and track_conversion share:
 *	  resolving the command's trace context, inserting the row as the
 *	  extension's owner and returning the row's receipt.
 *
 * A command is one INSERT ... ON CONFLICT DO NOTHING of its row, with the
 * trace context resolved here (trace_context.c) spelled out in the row.
 * The row's work is done where a direct INSERT has it done too, so both
 * ways judge a row alike: the BEFORE INSERT trigger validates, defaults,
 * fixes the window and attributes (row_triggers.c), the AFTER INSERT
 * trigger appends the receipt (receipts.c).  The command asks receipts.c
 * to keep a copy of the receipt it writes for the row and returns that;
 * only an idempotent retry, which inserts nothing, looks the original
 * receipt up, and an existing row without its receipt is reported as
 * corruption.
 *
 * The functions are C, not PL/pgSQL, and not SECURITY DEFINER: they switch
 * to their owner (the extension's owner, who owns the tables) around the
 * INSERT themselves, as SECURITY DEFINER would, without the interpreter and
 * without the configuration nest level a SET search_path clause costs on
 * every call.  Every name in their statements is schema-qualified, so the
 * caller's search_path cannot change what they mean.
 *
 * Shared memory: none.  Backend-local state: each command's saved plans.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/syscache.h"

#include "fp_attribution/commands.h"
#include "fp_attribution/ids.h"
#include "fp_attribution/receipts.h"
#include "fp_attribution/spi_plans.h"
#include "fp_attribution/trace_context.h"

/*
 * Argument arg of a command as a C string; NULL for SQL NULL.
 */
char *
fp_attribution_text_arg(FunctionCallInfo fcinfo, int arg)
{
	if (PG_ARGISNULL(arg))
		return NULL;
	return text_to_cstring(PG_GETARG_TEXT_PP(arg));
}

/*
 * The owner of the function being called.
 */
static Oid
function_owner(Oid funcid)
{
	HeapTuple	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	Oid			owner;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for function %u", funcid);
	owner = ((Form_pg_proc) GETSTRUCT(tuple))->proowner;
	ReleaseSysCache(tuple);
	return owner;
}

/*
 * Put the context columns of a new command into the last
 * FP_COMMAND_CONTEXT_PARAMS parameters of the INSERT: trace_id, span_id,
 * parent_span_id (as text), sampled, tracestate.
 */
static void
set_context_params(const FpCommandContext *ctx, Datum *values, char *nulls)
{
	char		trace_hex[2 * FP_TRACE_ID_LEN + 1];
	char		span_hex[2 * FP_SPAN_ID_LEN + 1];
	char		parent_hex[2 * FP_SPAN_ID_LEN + 1];

	fp_attribution_hex_encode(ctx->trace_id.bytes, FP_TRACE_ID_LEN, trace_hex);
	fp_attribution_hex_encode(ctx->span_id.bytes, FP_SPAN_ID_LEN, span_hex);
	values[0] = CStringGetTextDatum(trace_hex);
	values[1] = CStringGetTextDatum(span_hex);
	nulls[0] = nulls[1] = ' ';
	if (ctx->source == FP_CONTEXT_NEW_ROOT)
		nulls[2] = 'n';
	else
	{
		fp_attribution_hex_encode(ctx->parent_span_id.bytes, FP_SPAN_ID_LEN,
								  parent_hex);
		values[2] = CStringGetTextDatum(parent_hex);
		nulls[2] = ' ';
	}
	values[3] = BoolGetDatum((ctx->flags & FP_TRACE_FLAG_SAMPLED) != 0);
	nulls[3] = ' ';
	if (ctx->tracestate == NULL)
		nulls[4] = 'n';
	else
	{
		values[4] = CStringGetTextDatum(ctx->tracestate);
		nulls[4] = ' ';
	}
}

/*
 * Run a command: resolve its trace context from traceparent and tracestate
 * (NULL: the incoming context), insert its row (values and nulls: the
 * INSERT's parameters but the context ones) and return the row's receipt
 * as the function's result.  advertiser_id and aggregate_id name the
 * row's receipt chain (NULL when missing: the INSERT refuses the row).
 */
Datum
fp_attribution_run_command(FunctionCallInfo fcinfo, FpCommandSpec *spec,
						   Datum *values, char *nulls,
						   const char *traceparent, const char *tracestate,
						   const char *advertiser_id, const char *aggregate_id)
{
	MemoryContext cxt = CurrentMemoryContext;
	int			ncontext = spec->insert.nargs - FP_COMMAND_CONTEXT_PARAMS;
	FpCommandContext ctx;
	TupleDesc	result_desc;
	volatile HeapTuple receipt = NULL;
	volatile uint64 inserted = 0;
	Datum		result;
	Oid			save_user;
	int			save_sec;
	int			rc;

	if (get_call_result_type(fcinfo, NULL, &result_desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	fp_attribution_begin_command(traceparent, tracestate, &ctx);
	set_context_params(&ctx, values + ncontext, nulls + ncontext);

	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(function_owner(fcinfo->flinfo->fn_oid),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE);
	SPI_connect();

	/* never leave receipts.c waiting, whatever the INSERT raises */
	if (advertiser_id != NULL && aggregate_id != NULL)
		fp_attribution_catch_receipt(advertiser_id, spec->aggregate_type,
									 aggregate_id, cxt);
	PG_TRY();
	{
		rc = SPI_execute_plan(fp_attribution_group_plan(&spec->insert,
														nulls[0] == 'n' ? (Datum) 0 : values[0]),
							  values, nulls, false, 0);
		if (rc != SPI_OK_INSERT)
			elog(ERROR, "could not insert %s: %s", spec->aggregate_type,
				 SPI_result_code_string(rc));
		inserted = SPI_processed;
	}
	PG_FINALLY();
	{
		receipt = fp_attribution_caught_receipt();
	}
	PG_END_TRY();

	if (inserted == 1 && receipt != NULL)
		result = heap_copy_tuple_as_datum(receipt, result_desc);
	else
	{
		/* a retry: the receipt written with the row, naming its span */
		Datum		key[2];

		if (advertiser_id == NULL || aggregate_id == NULL)
			elog(ERROR, "%s inserted without its key", spec->aggregate_type);
		key[0] = CStringGetTextDatum(advertiser_id);
		key[1] = CStringGetTextDatum(aggregate_id);
		rc = SPI_execute_plan(fp_attribution_group_plan(&spec->find, key[0]),
							  key, NULL, false, 1);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "could not look up receipt: %s",
				 SPI_result_code_string(rc));
		if (SPI_processed != 1)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("%s \"%s\" of advertiser \"%s\" has no matching receipt",
							spec->aggregate_type, aggregate_id, advertiser_id),
					 errhint("Run attribution.verify_all() to find what was changed.")));
		result = PointerGetDatum(SPI_returntuple(SPI_tuptable->vals[0],
												 result_desc));
	}
	SPI_finish();
	SetUserIdAndSecContext(save_user, save_sec);
	return result;
}
