/*-------------------------------------------------------------------------
 *
 * trace_context.c
 *	  Where a command's trace context comes from, its new span id, and the
 *	  sampling decision; SQL functions to read and parse context.
 *
 * Sources, first valid one wins: the function argument, then
 * fp_attribution.traceparent (meant for SET LOCAL), then a SQLCommenter
 * comment on the top-level statement, then application_name when the whole
 * of it is a valid traceparent (what OpenTelemetry's pg and .NET
 * instrumentations send before each query), else a new root trace.  An
 * invalid traceparent is not an error (W3C: ignore it and start over); it
 * is counted and the next source is tried.  application_name is the
 * exception: it is normally a name, so anything there that does not parse
 * is simply no context and is not counted.  A tracestate travels only with
 * the traceparent it came with (application_name carries none).
 *
 * Trace flags follow W3C Trace Context level 2: a root we create has the
 * random-trace-id flag (our trace ids are wholly random), and a parent's
 * flags are kept as they came, known or not, so that a flag defined after
 * this code was written still reaches the next participant.
 *
 * Sampling is OpenTelemetry's consistent probability sampling: a trace's
 * randomness R is the rv of its tracestate's ot member, else the trace
 * id's low 56 bits; a root is sampled when R reaches the threshold of
 * fp_attribution.sampling_ratio, and a sampled root below ratio 1 writes
 * that threshold as ot=th.  A parent is followed by its sampled flag; when
 * it carries ot=th (it takes part in consistent sampling), its threshold
 * is honoured too: an unsampled parent's or an inconsistent (R < th) th is
 * erased, and a sampling_ratio stricter than the parent's applies to the
 * same R and, if the command is still sampled, becomes the new th.
 *
 * Ids come from a per-backend xoroshiro128** generator (pg_prng) seeded
 * from pg_strong_random on first use in each backend, so forked backends
 * never share a sequence and a command costs no system call.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <float.h>
#include <stdlib.h>

#include "access/htup_details.h"
#include "common/pg_prng.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "fp_attribution/compat.h"
#include "fp_attribution/shmem.h"
#include "fp_attribution/trace_context.h"
#include "fp_attribution/tracestate_ot.h"

FpCommandBegunHook fp_attribution_command_begun_hook = NULL;
FpCallForwardedHook fp_attribution_call_forwarded_hook = NULL;

char	   *fp_attribution_traceparent_setting = NULL;
char	   *fp_attribution_tracestate_setting = NULL;
double		fp_attribution_sampling_ratio = 1.0;

static pg_prng_state id_prng;
static bool id_prng_seeded = false;

/* The last command of this backend, for current_traceparent() */
static FpCommandContext last_command;
static LocalTransactionId last_command_lxid = InvalidLocalTransactionId;

/*
 * Sampling ratio default: OTEL_SAMPLING_RATIO (our seed's variable), else
 * OTEL_TRACES_SAMPLER_ARG (the OpenTelemetry SDK one), else 1.0.  A value
 * that is not a number in [0, 1] is ignored with a warning rather than
 * keeping the server from starting.
 */
static double
sampling_ratio_from_environment(void)
{
	const char *names[] = {"OTEL_SAMPLING_RATIO", "OTEL_TRACES_SAMPLER_ARG"};

	for (int i = 0; i < lengthof(names); i++)
	{
		const char *value = getenv(names[i]);
		char	   *end;
		double		ratio;

		if (value == NULL || value[0] == '\0')
			continue;
		ratio = strtod(value, &end);
		if (*end == '\0' && ratio >= 0.0 && ratio <= 1.0)
			return ratio;
		ereport(WARNING,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ignoring environment variable %s=\"%s\"",
						names[i], value),
				 errdetail("The sampling ratio must be a number between 0 and 1.")));
	}
	return 1.0;
}

void
fp_attribution_trace_context_define_gucs(void)
{
	DefineCustomStringVariable("fp_attribution.traceparent",
							   gettext_noop("W3C traceparent of the calling request, for SET LOCAL."),
							   gettext_noop("An invalid value is ignored and counted, as W3C Trace Context requires."),
							   &fp_attribution_traceparent_setting,
							   "",
							   PGC_USERSET, 0,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("fp_attribution.tracestate",
							   gettext_noop("W3C tracestate that accompanies fp_attribution.traceparent."),
							   NULL,
							   &fp_attribution_tracestate_setting,
							   "",
							   PGC_USERSET, 0,
							   NULL, NULL, NULL);
	DefineCustomRealVariable("fp_attribution.sampling_ratio",
							 gettext_noop("Fraction of new root traces that are sampled."),
							 gettext_noop("Commands with a parent follow the parent's sampled flag, and a stricter ratio than the parent's ot=th threshold."),
							 &fp_attribution_sampling_ratio,
							 sampling_ratio_from_environment(), 0.0, 1.0,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
}

/* Seed the id generator on first use */
static inline void
seed_id_prng(void)
{
	if (unlikely(!id_prng_seeded))
	{
		if (!pg_prng_strong_seed(&id_prng))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate random seed")));
		id_prng_seeded = true;
	}
}

/*
 * A new random id of len bytes, never all zero.
 */
static void
random_id(uint8 *out, int len)
{
	seed_id_prng();
	do
	{
		for (int i = 0; i < len; i += 8)
		{
			uint64		r = pg_prng_uint64(&id_prng);

			memcpy(out + i, &r, Min(8, len - i));
		}
	} while (fp_attribution_id_is_zero(out, len));
}

/*
 * The randomness R of a trace: the tracestate's explicit rv, else the low
 * 56 bits of the trace id (random in ids we make, and by W3C level 2's
 * random-trace-id flag in others).
 */
static uint64
trace_randomness(const FpTraceId *trace_id, const FpOtSampling *ot)
{
	uint64		randomness = 0;

	if (ot != NULL && ot->has_rv)
		return ot->rv;
	for (int i = 9; i < FP_TRACE_ID_LEN; i++)
		randomness = (randomness << 8) | trace_id->bytes[i];
	return randomness;
}

/*
 * Honour the ot=th of a parent's tracestate (see the file header).  May
 * clear the sampled bit of *flags; returns the tracestate to keep.
 */
static char *
follow_parent_threshold(const FpTraceId *trace_id, uint8 *flags, char *state)
{
	FpOtSampling ot;
	uint64		randomness;
	uint64		ours;

	fp_attribution_ot_parse(state, &ot);
	if (!ot.has_th)
		return state;
	randomness = trace_randomness(trace_id, &ot);
	if ((*flags & FP_TRACE_FLAG_SAMPLED) == 0 || randomness < ot.th)
		return fp_attribution_ot_set_threshold(state, false, 0);
	ours = fp_attribution_ratio_threshold(fp_attribution_sampling_ratio);
	if (ours <= ot.th)
		return state;
	if (randomness >= ours)
		return fp_attribution_ot_set_threshold(state, true, ours);
	*flags &= ~FP_TRACE_FLAG_SAMPLED;
	return fp_attribution_ot_set_threshold(state, false, 0);
}

/*
 * Parse a traceparent from one source.  NULL or empty means "absent";
 * anything else that fails to parse is counted as invalid.
 */
static bool
try_source(const char *text, FpTraceParent *parent)
{
	if (text == NULL || text[0] == '\0')
		return false;
	if (fp_attribution_parse_traceparent(text, strlen(text), parent))
		return true;
	FP_COUNT(invalid_traceparents);
	return false;
}

/*
 * Find the incoming context of the current statement, without an explicit
 * argument: the setting, then the SQLCommenter comment, then
 * application_name.  On success fills *parent, sets *tracestate (palloc'd
 * or NULL) and returns the source.
 */
static FpContextSource
incoming_context(FpTraceParent *parent, char **tracestate)
{
	char		buf[FP_TRACESTATE_MAX_LEN + 1];

	*tracestate = NULL;
	if (try_source(fp_attribution_traceparent_setting, parent))
	{
		if (fp_attribution_tracestate_setting[0] != '\0')
			*tracestate = pstrdup(fp_attribution_tracestate_setting);
		return FP_CONTEXT_SETTING;
	}
	if (fp_attribution_sqlcomment_value(debug_query_string, "traceparent",
										buf, sizeof(buf)) &&
		try_source(buf, parent))
	{
		if (fp_attribution_sqlcomment_value(debug_query_string, "tracestate",
											buf, sizeof(buf)))
			*tracestate = pstrdup(buf);
		return FP_CONTEXT_SQLCOMMENT;
	}
	/* not try_source(): a name that is not a traceparent is not an error */
	if (application_name != NULL &&
		fp_attribution_parse_traceparent(application_name,
										 strlen(application_name), parent))
		return FP_CONTEXT_APPLICATION_NAME;
	return FP_CONTEXT_NEW_ROOT;
}

/*
 * The incoming context of the current statement without an explicit
 * argument (setting, SQLCommenter comment, application_name), formatted
 * as a traceparent into out (FP_TRACEPARENT_LEN + 1 bytes) with the
 * tracestate that came with it in *tracestate (palloc'd or NULL); false
 * when there is none.  An invalid source is counted, as when a command
 * resolves it.
 */
bool
fp_attribution_incoming_traceparent(char *out, char **tracestate)
{
	FpTraceParent parent;

	if (incoming_context(&parent, tracestate) == FP_CONTEXT_NEW_ROOT)
		return false;
	fp_attribution_format_traceparent(&parent.trace_id, &parent.parent_id,
									  parent.flags, out);
	return true;
}

/*
 * Resolve the context of a new span and give it a fresh span id.
 * traceparent and tracestate are the explicit arguments (may be NULL).
 */
void
fp_attribution_resolve_context(const char *traceparent, const char *tracestate,
							   FpCommandContext *ctx)
{
	FpTraceParent parent;
	char	   *state = NULL;

	if (try_source(traceparent, &parent))
	{
		ctx->source = FP_CONTEXT_ARGUMENT;
		if (tracestate != NULL && tracestate[0] != '\0')
			state = pstrdup(tracestate);
	}
	else
		ctx->source = incoming_context(&parent, &state);

	if (state != NULL && !fp_attribution_tracestate_is_valid(state, strlen(state)))
	{
		FP_COUNT(invalid_tracestates);
		state = NULL;
	}

	if (ctx->source == FP_CONTEXT_NEW_ROOT)
	{
		uint64		threshold;

		threshold = fp_attribution_ratio_threshold(fp_attribution_sampling_ratio);
		random_id(ctx->trace_id.bytes, FP_TRACE_ID_LEN);
		memset(ctx->parent_span_id.bytes, 0, FP_SPAN_ID_LEN);
		ctx->flags = FP_TRACE_FLAG_RANDOM;
		if (trace_randomness(&ctx->trace_id, NULL) >= threshold)
		{
			ctx->flags |= FP_TRACE_FLAG_SAMPLED;
			/* the probability, for whoever counts sampled traces */
			if (threshold > 0)
				state = fp_attribution_ot_set_threshold(NULL, true, threshold);
		}
	}
	else
	{
		ctx->trace_id = parent.trace_id;
		ctx->parent_span_id = parent.parent_id;
		ctx->flags = parent.flags;
		state = follow_parent_threshold(&ctx->trace_id, &ctx->flags, state);
	}
	ctx->tracestate = state;
	random_id(ctx->span_id.bytes, FP_SPAN_ID_LEN);
}

/*
 * Resolve the context of a new command (fp_attribution_resolve_context),
 * remember it for current_traceparent() and tell
 * fp_attribution_command_begun_hook.
 */
void
fp_attribution_begin_command(const char *traceparent, const char *tracestate,
							 FpCommandContext *ctx)
{
	fp_attribution_resolve_context(traceparent, tracestate, ctx);
	last_command = *ctx;
	last_command.tracestate = NULL;
	last_command_lxid = FP_MY_LOCAL_XID();
	if (fp_attribution_command_begun_hook)
		fp_attribution_command_begun_hook(ctx);
}

/*
 * A fresh span id, for the spans the telemetry core opens inside a command:
 * random_id() for 8 bytes, one draw (non-zero) copied whole, without its
 * loops; telemetry makes several per row written.
 */
void
fp_attribution_new_span_id(FpSpanId *id)
{
	uint64		r;

	StaticAssertStmt(FP_SPAN_ID_LEN == sizeof(r), "a span id is one draw");
	seed_id_prng();
	do
		r = pg_prng_uint64(&id_prng);
	while (r == 0);
	memcpy(id->bytes, &r, sizeof(r));
}

const char *
fp_attribution_context_source_name(FpContextSource source)
{
	switch (source)
	{
		case FP_CONTEXT_ARGUMENT:
			return "argument";
		case FP_CONTEXT_SETTING:
			return "setting";
		case FP_CONTEXT_SQLCOMMENT:
			return "sqlcommenter";
		case FP_CONTEXT_APPLICATION_NAME:
			return "application_name";
		case FP_CONTEXT_NEW_ROOT:
			break;
	}
	return "new_root";
}

/*
 * attribution.new_command_context(traceparent text, tracestate text)
 *
 * Internal to the install script's commands and triggers: resolves the
 * context of one command.  Returns (trace_id, span_id, parent_span_id,
 * sampled, tracestate, source); parent_span_id is NULL for a root.
 */
PG_FUNCTION_INFO_V1(fp_attribution_new_command_context);
Datum
fp_attribution_new_command_context(PG_FUNCTION_ARGS)
{
	FpCommandContext ctx;
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {false};
	char	   *traceparent = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *tracestate = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	fp_attribution_begin_command(traceparent, tracestate, &ctx);

	values[0] = fp_attribution_id_datum(ctx.trace_id.bytes, FP_TRACE_ID_LEN);
	values[1] = fp_attribution_id_datum(ctx.span_id.bytes, FP_SPAN_ID_LEN);
	if (ctx.source == FP_CONTEXT_NEW_ROOT)
		nulls[2] = true;
	else
		values[2] = fp_attribution_id_datum(ctx.parent_span_id.bytes, FP_SPAN_ID_LEN);
	values[3] = BoolGetDatum((ctx.flags & FP_TRACE_FLAG_SAMPLED) != 0);
	if (ctx.tracestate == NULL)
		nulls[4] = true;
	else
		values[4] = CStringGetTextDatum(ctx.tracestate);
	values[5] = CStringGetTextDatum(fp_attribution_context_source_name(ctx.source));

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * attribution.current_traceparent()
 *
 * The traceparent to send downstream: the span of the last command this
 * session ran in the current transaction; else the incoming context of the
 * statement (setting, SQLCommenter or application_name); else NULL.
 */
PG_FUNCTION_INFO_V1(fp_attribution_current_traceparent);
Datum
fp_attribution_current_traceparent(PG_FUNCTION_ARGS)
{
	char		out[FP_TRACEPARENT_LEN + 1];

	if (last_command_lxid != InvalidLocalTransactionId &&
		last_command_lxid == FP_MY_LOCAL_XID())
		fp_attribution_format_traceparent(&last_command.trace_id,
										  &last_command.span_id,
										  last_command.flags, out);
	else
	{
		char	   *state;

		if (!fp_attribution_incoming_traceparent(out, &state))
			PG_RETURN_NULL();
	}
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

/*
 * attribution.parse_traceparent(text)
 *
 * Strict W3C parse; returns (version, trace_id, parent_id, flags, sampled),
 * or NULL for an invalid header.  Does not count: it is a pure function.
 */
PG_FUNCTION_INFO_V1(fp_attribution_parse_traceparent_sql);
Datum
fp_attribution_parse_traceparent_sql(PG_FUNCTION_ARGS)
{
	text	   *input = PG_GETARG_TEXT_PP(0);
	FpTraceParent parent;
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (!fp_attribution_parse_traceparent(VARDATA_ANY(input),
										  VARSIZE_ANY_EXHDR(input), &parent))
		PG_RETURN_NULL();

	values[0] = Int16GetDatum(parent.version);
	values[1] = fp_attribution_id_datum(parent.trace_id.bytes, FP_TRACE_ID_LEN);
	values[2] = fp_attribution_id_datum(parent.parent_id.bytes, FP_SPAN_ID_LEN);
	values[3] = Int16GetDatum(parent.flags);
	values[4] = BoolGetDatum((parent.flags & FP_TRACE_FLAG_SAMPLED) != 0);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
