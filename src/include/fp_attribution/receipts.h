/*-------------------------------------------------------------------------
 *
 * receipts.h
 *	  Receipts: the canonical envelope, payload hashing, and the columns
 *	  of attribution.receipts shared by writing and verification.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_RECEIPTS_H
#define FP_ATTRIBUTION_RECEIPTS_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "utils/jsonb.h"
#include "utils/palloc.h"
#include "utils/uuid.h"

#include "fp_attribution/columns.h"
#include "fp_attribution/ids.h"
#include "fp_attribution/signing.h"

/* "YYYY-MM-DDTHH:MM:SS.ffffffZ" */
#define FP_RFC3339_LEN 27

/* Everything the receipt hash covers, in binary form */
typedef struct FpReceiptEnvelope
{
	pg_uuid_t	receipt_id;
	const char *advertiser_id;	/* the tenant: chains are per advertiser */
	const char *aggregate_type;
	const char *aggregate_id;
	int64		sequence;
	TimestampTz timestamp;
	const char *correlation_id;
	bool		has_causation;
	pg_uuid_t	causation_id;
	FpTraceId	trace_id;
	FpSpanId	span_id;
	uint8		payload_hash[FP_SHA256_LEN];
	uint8		prev_hash[FP_SHA256_LEN];
	const char *key_id;			/* NULL when unsigned */
} FpReceiptEnvelope;

/* One stored row of attribution.receipts, as verification reads it */
typedef struct FpStoredReceipt
{
	FpReceiptEnvelope env;
	Jsonb	   *payload;
	bytea	   *payload_hash;	/* as stored, any length */
	bytea	   *prev_hash;
	bytea	   *receipt_hash;
	bytea	   *signature;		/* NULL when unsigned */
} FpStoredReceipt;

extern bool fp_attribution_sign_receipts;
extern char *fp_attribution_correlation_id;

extern void fp_attribution_receipts_define_gucs(void);
extern bool fp_attribution_format_timestamp(TimestampTz ts, char *buf);
extern Datum fp_attribution_bytea_datum(const uint8 *bytes, int len);
extern bool fp_attribution_receipt_envelope(StringInfo out,
											const FpReceiptEnvelope *env);
extern bool fp_attribution_payload_hash(Jsonb *payload, uint8 *out,
										const char **bad_number);
extern void fp_attribution_receipt_from_tuple(HeapTuple tuple, TupleDesc desc,
											  FpStoredReceipt *r);
extern const char *fp_attribution_aggregate_table(const char *aggregate_type);
extern void fp_attribution_append_row_event(FpReceiptEnvelope *env,
											Jsonb *payload, Oid owner);
extern Jsonb *fp_attribution_row_payload(const char *aggregate_type,
										 HeapTuple tuple, TupleDesc desc);
extern bool fp_attribution_row_payload_hash(const char *aggregate_type,
											HeapTuple tuple, TupleDesc desc,
											const FpColumnMap *map, uint8 *out,
											const char **bad_number);
extern bool fp_attribution_bytea_equals(const bytea *b, const uint8 *bytes,
										int len);
extern void fp_attribution_catch_receipt(const char *advertiser_id,
										 const char *aggregate_type,
										 const char *aggregate_id,
										 MemoryContext cxt);
extern HeapTuple fp_attribution_caught_receipt(void);
extern void fp_attribution_write_pending_receipts(void);
extern void fp_attribution_refuse_change(const char *table, const char *op)
			pg_attribute_noreturn();

#endif							/* FP_ATTRIBUTION_RECEIPTS_H */
