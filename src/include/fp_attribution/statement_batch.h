/*-------------------------------------------------------------------------
 *
 * statement_batch.h
 *	  Rows a row trigger collects and its statement writes at once
 *	  (statement_batch.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_STATEMENT_BATCH_H
#define FP_ATTRIBUTION_STATEMENT_BATCH_H

#include "access/xact.h"
#include "utils/array.h"

typedef struct FpStatementBatch FpStatementBatch;

/*
 * Write the batch's rows (fp_attribution_batch_size() of them, at least
 * one) and fp_attribution_batch_reset() it.  Called connected to SPI, as
 * the role the rows were added for.
 */
typedef void (*FpBatchFlush) (FpStatementBatch *batch);

/*
 * One kind of collected row: a static of the module that writes them.
 * Only what and the columns are set by that module; the rest is the
 * current transaction's state.
 */
struct FpStatementBatch
{
	const char *what;			/* what the rows are, for messages */
	int			ncolumns;
	const Oid  *types;			/* each column's type */
	FpBatchFlush flush;

	/* in the current transaction only (lxid); see statement_batch.c */
	LocalTransactionId lxid;
	int			nrows;
	Oid			owner;			/* the rows are written as this role */
	ArrayBuildState **columns;
	SubTransactionId *subids;	/* each row's subtransaction */
	int			maxrows;
	FpStatementBatch *next;		/* in the list of batches with rows */
};

extern void fp_attribution_batch_add(FpStatementBatch *batch, Oid owner,
									 const Datum *values, const char *nulls);
extern int	fp_attribution_batch_size(FpStatementBatch *batch);
extern Datum fp_attribution_batch_value(FpStatementBatch *batch, int column,
										int row, bool *isnull);
extern Datum fp_attribution_batch_array(FpStatementBatch *batch, int column);
extern void fp_attribution_batch_reset(FpStatementBatch *batch);
extern void fp_attribution_batch_flush(FpStatementBatch *batch);
extern bool fp_attribution_batching(void);
extern void fp_attribution_statement_batch_init(void);

#endif							/* FP_ATTRIBUTION_STATEMENT_BATCH_H */
