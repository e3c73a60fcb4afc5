/*-------------------------------------------------------------------------
 *
 * trace_context.h
 *	  Resolution of the W3C trace context of a command: where it comes from,
 *	  the new span id, the sampling decision.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_TRACE_CONTEXT_H
#define FP_ATTRIBUTION_TRACE_CONTEXT_H

#include "fp_attribution/traceparent.h"

/* Where a command's parent context came from; first match wins */
typedef enum FpContextSource
{
	FP_CONTEXT_ARGUMENT,		/* explicit function argument */
	FP_CONTEXT_SETTING,			/* SET [LOCAL] fp_attribution.traceparent */
	FP_CONTEXT_SQLCOMMENT,		/* SQLCommenter comment on the statement */
	FP_CONTEXT_APPLICATION_NAME,	/* SET application_name = '<traceparent>' */
	FP_CONTEXT_NEW_ROOT			/* none of the above: a new trace */
} FpContextSource;

typedef struct FpCommandContext
{
	FpTraceId	trace_id;
	FpSpanId	span_id;		/* the command's own span */
	FpSpanId	parent_span_id; /* all zero for a root span */
	uint8		flags;			/* W3C trace-flags; bit 0 = sampled */
	FpContextSource source;
	char	   *tracestate;		/* palloc'd, or NULL */
} FpCommandContext;

/*
 * Called once a command's context is resolved (telemetry starts the
 * command's span), or NULL.  A hook, so that trace context depends on no
 * consumer of it.
 */
typedef void (*FpCommandBegunHook) (const FpCommandContext *ctx);
extern FpCommandBegunHook fp_attribution_command_begun_hook;

/*
 * Called by the planner hook of delegation.c when it is about to send a
 * command's call to another node, with ctx the context of the span that
 * forwards it (the call carries that span as its traceparent): command is
 * the function's name, affiliate_id and entity_id (click_id or order_id)
 * what the call names, or NULL.  Returns false when no span will be
 * recorded for it (telemetry off, or not a command telemetry knows): the
 * call then carries the caller's context unchanged.  A hook, like the one
 * above.
 */
typedef bool (*FpCallForwardedHook) (const FpCommandContext *ctx,
									 const char *command,
									 const char *affiliate_id,
									 const char *entity_id);
extern FpCallForwardedHook fp_attribution_call_forwarded_hook;

extern char *fp_attribution_traceparent_setting;
extern char *fp_attribution_tracestate_setting;
extern double fp_attribution_sampling_ratio;

extern void fp_attribution_trace_context_define_gucs(void);
extern void fp_attribution_resolve_context(const char *traceparent,
										   const char *tracestate,
										   FpCommandContext *ctx);
extern void fp_attribution_begin_command(const char *traceparent,
										 const char *tracestate,
										 FpCommandContext *ctx);
extern bool fp_attribution_incoming_traceparent(char *out, char **tracestate);
extern const char *fp_attribution_context_source_name(FpContextSource source);
extern void fp_attribution_new_span_id(FpSpanId *id);

#endif							/* FP_ATTRIBUTION_TRACE_CONTEXT_H */
