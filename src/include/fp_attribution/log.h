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
#include "storage/itemptr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "fp_attribution/merkle.h"
#include "fp_attribution/multiset_hash.h"
#include "fp_attribution/telemetry.h"

/*
 * verify_all's keyed multiset hash of the (advertiser_id, receipt_id) of
 * every receipt less those of every log entry and queue row
 * (log_coverage.c): empty when every receipt is in its log or queued.
 */
typedef FpMultisetHash FpLogCoverage;

/*
 * The receipt write's only contact with the logs: the statement that
 * inserts a receipt (receipts.c) starts with this CTE, which queues the
 * receipt for integration (the receipt's advertiser_id, receipt_id,
 * receipt_hash and timestamp are the parameters named; the receipt's
 * INSERT stays the statement's own, so its span is still "INSERT
 * attribution.receipts").  The queue row commits or rolls back with the
 * receipt; an insert into attribution.log_queue (a heap without indexes)
 * takes no lock beyond its row and shares no row or index page with other
 * commands.  Integration (log.c) deletes the rows it appends, so finding
 * pending receipts costs O(batch), and reads the leaf data from the queue
 * row rather than looking each receipt up.  Part of the receipt's
 * statement rather than a second one: a separate SPI INSERT cost 8 % of a
 * track_click.  Both inserts name the advertiser by the same parameter, so
 * on Citus both route to its shards.
 */
#define FP_LOG_ENQUEUE_CTE(advertiser_id, receipt_id, receipt_hash, timestamp) \
	"WITH log_queued AS (INSERT INTO attribution.log_queue" \
	" (advertiser_id, receipt_id, receipt_hash, \"timestamp\")" \
	" VALUES (" advertiser_id ", " receipt_id ", " receipt_hash ", " timestamp ")) "

/* The same for many receipts: the named columns of each row of from */
#define FP_LOG_ENQUEUE_SELECT_CTE(advertiser_id, receipt_id, receipt_hash, timestamp, from) \
	"log_queued AS (INSERT INTO attribution.log_queue" \
	" (advertiser_id, receipt_id, receipt_hash, \"timestamp\")" \
	" SELECT " advertiser_id ", " receipt_id ", " receipt_hash ", " timestamp \
	" FROM " from ") "

/*
 * Levels of stored subtree hashes: the leaf hashes (level 0) are in
 * attribution.log_tiles, and attribution.log_nodes holds the hashes of
 * levels FP_LOG_TILE_HEIGHT, 2 * FP_LOG_TILE_HEIGHT ... (its CHECK
 * constraint repeats the figure).  Any other hash is recomputed from the
 * at most 2^(FP_LOG_TILE_HEIGHT - 1) stored hashes under it at the
 * nearest stored level below, read by one range scan: the idea of the
 * tiles of c2sp.org/tlog-tiles, kept one hash per row above level 0.
 */
#define FP_LOG_TILE_HEIGHT 4

/*
 * Leaf hashes a row of attribution.log_tiles holds at most: a row never
 * crosses a multiple of it, so that a full tile is one row of 4 KiB, kept
 * in the row by STORAGE PLAIN (the table's CHECK constraint repeats the
 * figure, as 128 hashes of 32 bytes).  Integration writes a row per tile
 * a batch touches, so the leaf hashes cost a row and an index entry per
 * 128 receipts or per batch, not per receipt.
 */
#define FP_LOG_LEAF_TILE_WIDTH 128

/* Reads the stored hashes of one advertiser's log through SPI */
typedef struct FpLogReader
{
	const char *advertiser_id;
	Datum		advertiser_datum;	/* the id as text */
} FpLogReader;

extern char *fp_attribution_log_origin_prefix;
extern int	fp_attribution_log_interval_ms;
extern int	fp_attribution_log_batch_delay_ms;

/* A receipt taken off attribution.log_queue for integration (log_queue.c) */
typedef struct FpLogPending
{
	char	   *advertiser_id;
	pg_uuid_t	receipt_id;
	bytea	   *receipt_hash;	/* the leaf data */
	TimestampTz timestamp;
	ItemPointerData tid;		/* its queue row's, on one node */
} FpLogPending;

extern void fp_attribution_log_define_gucs(void);
extern char *fp_attribution_log_origin(const char *advertiser_id);
extern char *fp_attribution_log_advertiser(const char *origin);
extern void fp_attribution_log_reader_init(FpLogReader *reader,
										   const char *advertiser_id);
extern void fp_attribution_log_read_node(void *arg, int level, int64 index,
										 uint8 *out);
extern void fp_attribution_log_read_stored(FpLogReader *reader, int level,
										   int64 first, int count,
										   FpMerkleHash *out);
extern int64 fp_attribution_log_size(const char *advertiser_id);
extern char *fp_attribution_log_sign(const char *advertiser_id);
extern FpLogPending *fp_attribution_log_take_batch(int32 max_entries, int *n);
extern bool fp_attribution_log_insert_rows(const char *table,
										   const Oid *types, int natts,
										   Datum *const *columns, int nrows);
extern FpLogPending *fp_attribution_log_take_advertiser_batch(text *advertiser_id,
															  int32 max_entries,
															  int *n);
extern bool fp_attribution_log_verify_all(MemoryContext cxt,
										  FpLogCoverage *coverage,
										  char **advertiser_id,
										  char **location,
										  const char **check, char **detail);
extern long fp_attribution_log_worker_tick(TimestampTz now);
extern void fp_attribution_log_coverage_begin(FpLogCoverage *c);
extern void fp_attribution_log_coverage_add(FpLogCoverage *c, const char *adv,
											const pg_uuid_t *receipt_id);
extern bool fp_attribution_log_coverage_complete(FpLogCoverage *c);

/* Checkpoint push (log_push.c), run by the ledger worker */
extern char *fp_attribution_log_push_endpoints;
extern void fp_attribution_log_push_define_gucs(void);
extern void fp_attribution_log_push_begin(void);
extern void fp_attribution_log_push_note(const char *advertiser_id,
										 const char *note);
extern void fp_attribution_log_push_end(bool committed);
extern long fp_attribution_log_push_run(TimestampTz now);

#endif							/* FP_ATTRIBUTION_LOG_H */
