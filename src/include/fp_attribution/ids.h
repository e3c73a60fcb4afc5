/*-------------------------------------------------------------------------
 *
 * ids.h
 *	  W3C trace and span identifiers: binary form, hex conversion, and the
 *	  attribution.trace_id / attribution.span_id SQL types built on them.
 *
 * A trace id is 16 bytes and a span id 8 bytes, exactly as they travel in
 * a traceparent header and in OTLP.  The all-zero value of either is
 * invalid (W3C Trace Context, section 3.2.2.3 and 3.2.2.4).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_IDS_H
#define FP_ATTRIBUTION_IDS_H

#include "utils/uuid.h"

#define FP_TRACE_ID_LEN 16
#define FP_SPAN_ID_LEN 8

typedef struct FpTraceId
{
	uint8		bytes[FP_TRACE_ID_LEN];
} FpTraceId;

typedef struct FpSpanId
{
	uint8		bytes[FP_SPAN_ID_LEN];
} FpSpanId;

/* Fixed-length pass-by-reference Datum access */
#define DatumGetFpTraceId(d)	((FpTraceId *) DatumGetPointer(d))
#define DatumGetFpSpanId(d)		((FpSpanId *) DatumGetPointer(d))
#define PG_GETARG_FP_TRACE_ID(n)	DatumGetFpTraceId(PG_GETARG_DATUM(n))
#define PG_GETARG_FP_SPAN_ID(n)	DatumGetFpSpanId(PG_GETARG_DATUM(n))

extern bool fp_attribution_hex_decode(const char *hex, int hexlen,
									  uint8 *out, int outlen);
extern void fp_attribution_hex_encode(const uint8 *in, int inlen, char *out);
extern bool fp_attribution_id_is_zero(const uint8 *bytes, int len);
extern Datum fp_attribution_id_datum(const uint8 *bytes, int len);
extern void fp_attribution_format_uuid(const pg_uuid_t *uuid, char *buf);

#endif							/* FP_ATTRIBUTION_IDS_H */
