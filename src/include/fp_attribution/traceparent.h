/*-------------------------------------------------------------------------
 *
 * traceparent.h
 *	  Parsing and formatting of W3C Trace Context headers, and extraction of
 *	  a traceparent from a SQLCommenter comment.  No fmgr code here: the SQL
 *	  functions, the triggers and the exporter share these routines.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_TRACEPARENT_H
#define FP_ATTRIBUTION_TRACEPARENT_H

#include "fp_attribution/ids.h"

/* "00-" + 32 hex + "-" + 16 hex + "-" + 2 hex */
#define FP_TRACEPARENT_LEN 55

/* W3C recommends propagating at least 512 characters of tracestate */
#define FP_TRACESTATE_MAX_LEN 512

/* W3C trace-flags (Trace Context level 2) */
#define FP_TRACE_FLAG_SAMPLED 0x01
#define FP_TRACE_FLAG_RANDOM 0x02	/* the trace id's low 7 bytes are random */

typedef struct FpTraceParent
{
	uint8		version;
	FpTraceId	trace_id;
	FpSpanId	parent_id;
	uint8		flags;
} FpTraceParent;

extern bool fp_attribution_parse_traceparent(const char *text, int len,
											 FpTraceParent *out);
extern void fp_attribution_format_traceparent(const FpTraceId *trace_id,
											  const FpSpanId *span_id,
											  uint8 flags, char *out);
extern bool fp_attribution_tracestate_is_valid(const char *text, int len);
extern bool fp_attribution_sqlcomment_value(const char *query,
											const char *key,
											char *out, int outsize);

#endif							/* FP_ATTRIBUTION_TRACEPARENT_H */
