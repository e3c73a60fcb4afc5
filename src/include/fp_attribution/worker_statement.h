/*-------------------------------------------------------------------------
 *
 * worker_statement.h
 *	  A periodic job of a background worker in a transaction of its own
 *	  (worker_statement.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_WORKER_STATEMENT_H
#define FP_ATTRIBUTION_WORKER_STATEMENT_H

/* A job's body, run inside its transaction with SPI connected */
typedef void (*FpWorkerJob) (void *arg);

extern bool fp_attribution_worker_job(const char *activity, FpWorkerJob job, void *arg);
extern int64 fp_attribution_worker_statement(const char *activity, const char *sql);

#endif							/* FP_ATTRIBUTION_WORKER_STATEMENT_H */
