/*-------------------------------------------------------------------------
 *
 * tracestate_ot.h
 *	  The OpenTelemetry "ot" tracestate member: consistent probability
 *	  sampling's threshold (th) and randomness (rv).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_TRACESTATE_OT_H
#define FP_ATTRIBUTION_TRACESTATE_OT_H

/* 2^56: randomness and thresholds are 56-bit */
#define FP_OT_MAX_THRESHOLD (UINT64CONST(1) << 56)

typedef struct FpOtSampling
{
	bool		has_th;
	uint64		th;				/* rejection threshold, 56 bits */
	bool		has_rv;
	uint64		rv;				/* explicit randomness, 56 bits */
} FpOtSampling;

extern void fp_attribution_ot_parse(const char *tracestate, FpOtSampling *out);
extern char *fp_attribution_ot_set_threshold(const char *tracestate, bool set,
											 uint64 threshold);
extern uint64 fp_attribution_ratio_threshold(double ratio);

#endif							/* FP_ATTRIBUTION_TRACESTATE_OT_H */
