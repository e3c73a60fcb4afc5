/*-------------------------------------------------------------------------
 *
 * log.h
 *	  The per-advertiser Merkle log of receipts: storage, integration,
 *	  checkpoints, proofs and verification.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_LOG_H
#define FP_ATTRIBUTION_LOG_H

#include "executor/spi.h"

#include "fp_attribution/merkle.h"
#include "fp_attribution/telemetry.h"

/* Reads attribution.log_nodes of one advertiser through SPI */
typedef struct FpLogReader
{
	const char *advertiser_id;
	SPIPlanPtr	plan;
} FpLogReader;

extern char *fp_attribution_log_origin_prefix;
extern int	fp_attribution_log_interval_ms;

extern void fp_attribution_log_define_gucs(void);
extern char *fp_attribution_log_origin(const char *advertiser_id);
extern char *fp_attribution_log_advertiser(const char *origin);
extern void fp_attribution_log_reader_init(FpLogReader *reader,
										   const char *advertiser_id);
extern void fp_attribution_log_read_node(void *arg, int level, int64 index,
										 uint8 *out);
extern int64 fp_attribution_log_size(const char *advertiser_id);
extern bool fp_attribution_log_verify_all(MemoryContext cxt,
										  char **advertiser_id,
										  char **location,
										  const char **check, char **detail);
extern long fp_attribution_log_worker_tick(TimestampTz now);
extern bool fp_attribution_log_lag_point(FpMetricPoint *point);
extern void fp_attribution_log_enqueue(Datum advertiser_id, Datum receipt_id,
									   Datum timestamp);

#endif							/* FP_ATTRIBUTION_LOG_H */
