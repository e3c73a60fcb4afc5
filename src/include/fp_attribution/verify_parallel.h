/*-------------------------------------------------------------------------
 *
 * verify_parallel.h
 *	  verify_all's parallel read of one table: workers share the scan with
 *	  the leader and send it messages (verify_parallel.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_VERIFY_PARALLEL_H
#define FP_ATTRIBUTION_VERIFY_PARALLEL_H

#include "access/htup.h"
#include "storage/dsm.h"
#include "storage/shm_toc.h"
#include "utils/relcache.h"

typedef struct FpParallelScan FpParallelScan;
typedef struct FpParallelWorker FpParallelWorker;

/* The leader's handler of one message a worker sent */
typedef void (*FpParallelMessage) (void *arg, const char *data, Size len);

/* leader */
extern FpParallelScan *fp_attribution_parallel_scan_begin(Relation rel,
														  const char *worker_function,
														  int nworkers,
														  const void *arg,
														  Size arglen,
														  Size result_len);
extern HeapTuple fp_attribution_parallel_scan_next(FpParallelScan *ps,
												   FpParallelMessage handler,
												   void *handler_arg);
extern uint64 fp_attribution_parallel_scan_rows(FpParallelScan *ps);
extern int	fp_attribution_parallel_scan_end(FpParallelScan *ps,
											 FpParallelMessage handler,
											 void *handler_arg,
											 char **results);

/* worker */
extern FpParallelWorker *fp_attribution_parallel_worker_begin(dsm_segment *seg,
															  shm_toc *toc,
															  const char **arg);
extern Relation fp_attribution_parallel_worker_relation(FpParallelWorker *w);
extern HeapTuple fp_attribution_parallel_worker_next(FpParallelWorker *w);
extern void fp_attribution_parallel_worker_send(FpParallelWorker *w,
												const void *data, Size len);
extern void fp_attribution_parallel_worker_end(FpParallelWorker *w,
											   const void *result);

#endif							/* FP_ATTRIBUTION_VERIFY_PARALLEL_H */
