/*-------------------------------------------------------------------------
 *
 * log_queue.c
 *	  The receipt write's only contact with the logs: it queues the new
 *	  receipt for integration.
 *
 * attribution.log_queue holds one row per receipt written and not yet
 * integrated.  The row is inserted in the receipt's own (sub)transaction,
 * so it commits or rolls back with the receipt; an insert takes no lock
 * beyond the row's and touches no shared row, so concurrent commands do
 * not wait on each other for it.  Integration (log.c) deletes the rows it
 * appends to a log, so finding pending receipts reads the queue, O(batch),
 * instead of comparing every receipt with every log entry.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"

#include "fp_attribution/log.h"
#include "fp_attribution/spi_plans.h"

static SPIPlanPtr enqueue_plan = NULL;

/*
 * Queue a receipt just written for integration into its advertiser's log
 * (inside SPI, as the receipt's writer).
 */
void
fp_attribution_log_enqueue(Datum advertiser_id, Datum receipt_id,
						   Datum timestamp)
{
	Datum		values[3] = {advertiser_id, receipt_id, timestamp};
	int			rc;

	if (enqueue_plan == NULL)
		enqueue_plan = fp_attribution_keep_plan("INSERT INTO attribution.log_queue"
												" (advertiser_id, receipt_id, \"timestamp\")"
												" VALUES ($1, $2, $3)",
												3, (Oid[]) {TEXTOID, UUIDOID, TIMESTAMPTZOID});
	rc = SPI_execute_plan(enqueue_plan, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not queue receipt for its log: %s",
			 SPI_result_code_string(rc));
}
