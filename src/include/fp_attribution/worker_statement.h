/*-------------------------------------------------------------------------
 *
 * worker_statement.h
 *	  A periodic job's statement in a transaction of its own
 *	  (worker_statement.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_WORKER_STATEMENT_H
#define FP_ATTRIBUTION_WORKER_STATEMENT_H

extern int64 fp_attribution_worker_statement(const char *activity, const char *sql);

#endif							/* FP_ATTRIBUTION_WORKER_STATEMENT_H */
