/*-------------------------------------------------------------------------
 *
 * commands.h
 *	  The write commands track_click and track_conversion: what they share
 *	  (commands.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_COMMANDS_H
#define FP_ATTRIBUTION_COMMANDS_H

#include "executor/spi.h"
#include "fmgr.h"

#include "fp_attribution/spi_plans.h"

/* The trace context parameters that end every command's INSERT */
#define FP_COMMAND_CONTEXT_PARAMS 5

/* One command: the row it inserts and how its receipt is found again */
typedef struct FpCommandSpec
{
	const char *aggregate_type;
	/*
	 * INSERT ... ON CONFLICT DO NOTHING of the row; its first parameter is
	 * advertiser_id, its last ones trace_id, span_id, parent_span_id
	 * (text), sampled and tracestate
	 */
	FpGroupPlan insert;
	/* the receipt of an existing row, by ($1 advertiser_id, $2 aggregate_id) */
	FpGroupPlan find;
} FpCommandSpec;

extern char *fp_attribution_text_arg(FunctionCallInfo fcinfo, int arg);
extern Datum fp_attribution_run_command(FunctionCallInfo fcinfo,
										FpCommandSpec *spec,
										Datum *values, char *nulls,
										const char *traceparent,
										const char *tracestate,
										const char *advertiser_id,
										const char *aggregate_id);

#endif							/* FP_ATTRIBUTION_COMMANDS_H */
