/*-------------------------------------------------------------------------
 *
 * statement_batch.c
 *	  Rows that AFTER INSERT row triggers collect and that the statement
 *	  writes at once, when it ends: the receipts of new clicks and
 *	  conversions (receipts.c) and the report rollup's click deltas
 *	  (report_rollup.c).
 *
 * Written one by one, each such row costs a saved INSERT run through the
 * executor (start-up, the statement's DB-operation span, shut-down) per
 * row inserted, several times the cost of the row itself: a bulk
 * INSERT ... SELECT of clicks paid more for those statements than for
 * everything else.  So the row trigger hands its row to a batch here, and
 * the AFTER INSERT statement trigger attribution.write_statement_batches()
 * of the same table, which fires after every row trigger of the
 * statement, writes each batch with one statement (an INSERT ... SELECT
 * FROM unnest() of one array per column; a batch of one row with the
 * module's single-row INSERT, as cheap as before).  A COPY fires both
 * kinds of trigger too.
 *
 * Rows are only ever written early, never lost or reordered: a module
 * that reads what it batches (a receipt's causation, the next receipt of
 * a chain, late_clicks.c) flushes its batch first with
 * fp_attribution_batch_flush().  A subtransaction that aborts takes its
 * rows out of the batches (they are a suffix: every row added while it
 * ran was added by it or a child of it); a transaction that aborts drops
 * them with its memory.  A transaction that would commit with rows still
 * collected (the statement trigger disabled or dropped) fails instead of
 * committing rows without their receipts.
 *
 * Shared memory: none.  Backend-local state: the batches with rows of the
 * current transaction, in TopTransactionContext.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "fp_attribution/statement_batch.h"

/* The batches that have rows in transaction batches_lxid */
static FpStatementBatch *batches = NULL;
static LocalTransactionId batches_lxid = InvalidLocalTransactionId;

/* Where the current transaction's batches keep their rows */
static MemoryContext batch_cxt = NULL;

/*
 * Whether row triggers may batch their rows.  Not with Citus loaded: it
 * plans an INSERT ... SELECT FROM unnest() as a distributed INSERT ...
 * SELECT, which a statement fired on a shard may not run (the single-row
 * INSERT ... VALUES is routed to the row's shard), so there each row is
 * written by its row trigger, as without batches.  Citus is a preloaded
 * library, so this cannot change in a session.
 */
bool
fp_attribution_batching(void)
{
	static int	allowed = -1;

	if (allowed < 0)
		allowed = GetConfigOption("citus.shard_count", true, false) == NULL;
	return allowed;
}

/*
 * Whether batch holds rows of the current transaction.
 */
static bool
has_rows(const FpStatementBatch *batch)
{
	return batch->lxid == MyProc->lxid && batch->nrows > 0;
}

/*
 * The number of rows collected in batch.
 */
int
fp_attribution_batch_size(FpStatementBatch *batch)
{
	return has_rows(batch) ? batch->nrows : 0;
}

/*
 * Add a row (values and nulls, SPI's ' ' or 'n', one per column) to
 * batch, to be written as owner.  Rows of another owner are written first.
 */
void
fp_attribution_batch_add(FpStatementBatch *batch, Oid owner,
						 const Datum *values, const char *nulls)
{
	MemoryContext old;

	if (has_rows(batch) && batch->owner != owner)
		fp_attribution_batch_flush(batch);
	if (batches_lxid != MyProc->lxid)
	{
		batches = NULL;
		batches_lxid = MyProc->lxid;
		batch_cxt = AllocSetContextCreate(TopTransactionContext,
										  "fp_attribution statement batches",
										  ALLOCSET_DEFAULT_SIZES);
	}
	old = MemoryContextSwitchTo(batch_cxt);
	if (batch->lxid != MyProc->lxid)
	{
		batch->lxid = MyProc->lxid;
		batch->columns = palloc(batch->ncolumns * sizeof(ArrayBuildState *));
		for (int i = 0; i < batch->ncolumns; i++)
			batch->columns[i] = initArrayResult(batch->types[i], batch_cxt, false);
		batch->maxrows = 64;
		batch->subids = palloc(batch->maxrows * sizeof(SubTransactionId));
		batch->nrows = 0;
	}
	if (batch->nrows == 0)
	{
		batch->next = batches;
		batches = batch;
		batch->owner = owner;
	}
	if (batch->nrows == batch->maxrows)
	{
		batch->maxrows *= 2;
		batch->subids = repalloc(batch->subids,
								 batch->maxrows * sizeof(SubTransactionId));
	}
	for (int i = 0; i < batch->ncolumns; i++)
		accumArrayResult(batch->columns[i], values[i], nulls[i] == 'n',
						 batch->types[i], batch_cxt);
	batch->subids[batch->nrows++] = GetCurrentSubTransactionId();
	MemoryContextSwitchTo(old);
}

/*
 * Column column of row row of batch.
 */
Datum
fp_attribution_batch_value(FpStatementBatch *batch, int column, int row,
						   bool *isnull)
{
	Assert(has_rows(batch) && row < batch->nrows);
	*isnull = batch->columns[column]->dnulls[row];
	return batch->columns[column]->dvalues[row];
}

/*
 * Column column of batch's rows as an array, in the current memory
 * context.
 */
Datum
fp_attribution_batch_array(FpStatementBatch *batch, int column)
{
	int			dims[1] = {batch->nrows};
	int			lbs[1] = {1};

	Assert(has_rows(batch));
	return makeMdArrayResult(batch->columns[column], 1, dims, lbs,
							 CurrentMemoryContext, false);
}

/*
 * Keep the first nrows rows of batch.
 */
static void
truncate_batch(FpStatementBatch *batch, int nrows)
{
	FpStatementBatch **link;

	batch->nrows = nrows;
	for (int i = 0; i < batch->ncolumns; i++)
		batch->columns[i]->nelems = nrows;
	if (nrows > 0)
		return;
	for (link = &batches; *link != NULL; link = &(*link)->next)
		if (*link == batch)
		{
			*link = batch->next;
			break;
		}
}

/*
 * Forget batch's rows (they have been written).
 */
void
fp_attribution_batch_reset(FpStatementBatch *batch)
{
	if (has_rows(batch))
		truncate_batch(batch, 0);
}

/*
 * Write batch's rows now, if it has any, as the role they were added for.
 */
void
fp_attribution_batch_flush(FpStatementBatch *batch)
{
	Oid			save_user;
	int			save_sec;

	if (!has_rows(batch))
		return;
	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(batch->owner, save_sec |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_NOFORCE_RLS);
	SPI_connect();
	batch->flush(batch);
	SPI_finish();
	SetUserIdAndSecContext(save_user, save_sec);
	if (has_rows(batch))
		elog(ERROR, "%s were not written", batch->what);
}

/*
 * attribution.write_statement_batches() AFTER INSERT statement trigger:
 * write what the statement's row triggers collected.
 */
PG_FUNCTION_INFO_V1(fp_attribution_write_statement_batches);
Datum
fp_attribution_write_statement_batches(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("write_statement_batches must be an AFTER FOR EACH STATEMENT trigger")));
	if (batches_lxid != MyProc->lxid)
		return PointerGetDatum(NULL);
	/* a flush takes its batch off the list */
	while (batches != NULL)
		fp_attribution_batch_flush(batches);
	return PointerGetDatum(NULL);
}

/*
 * A subtransaction that aborts takes the rows it added back; a
 * transaction must not commit with rows unwritten.
 */
static void
batch_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	FpStatementBatch *batch;
	FpStatementBatch *next;

	if (event != SUBXACT_EVENT_ABORT_SUB || batches_lxid != MyProc->lxid)
		return;
	for (batch = batches; batch != NULL; batch = next)
	{
		int			keep = batch->nrows;

		next = batch->next;
		while (keep > 0 && batch->subids[keep - 1] >= mySubid)
			keep--;
		truncate_batch(batch, keep);
	}
}

static void
batch_xact_callback(XactEvent event, void *arg)
{
	if ((event == XACT_EVENT_PRE_COMMIT ||
		 event == XACT_EVENT_PARALLEL_PRE_COMMIT ||
		 event == XACT_EVENT_PRE_PREPARE) &&
		batches_lxid == MyProc->lxid && batches != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s collected by a row trigger were not written", batches->what),
				 errhint("A table with the extension's AFTER INSERT row triggers needs its statement trigger attribution.write_statement_batches() enabled too.")));
}

/*
 * Register the transaction callbacks; from _PG_init.
 */
void
fp_attribution_statement_batch_init(void)
{
	RegisterXactCallback(batch_xact_callback, NULL);
	RegisterSubXactCallback(batch_subxact_callback, NULL);
}
