/*-------------------------------------------------------------------------
 *
 * log_worker.c
 *	  The background worker's share of the receipt logs: every
 *	  fp_attribution.log_interval it integrates pending receipts and signs
 *	  checkpoints, in its own transaction.
 *
 * Called from the worker's loop (worker.c); an error is logged and
 * retried at the next interval, so it never stops the exporter.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "fp_attribution/log.h"

/* Receipts integrated per transaction; a full batch runs again at once */
#define LOG_WORKER_BATCH 10000

static TimestampTz next_run = 0;

/*
 * Run integration when it is due; returns the milliseconds until the next
 * run.
 */
long
fp_attribution_log_worker_tick(TimestampTz now)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool full = false;

	if (fp_attribution_log_interval_ms == 0)
		return 60 * 1000;
	if (now < next_run)
		return (long) ((next_run - now) / 1000) + 1;
	next_run = TimestampTzPlusMilliseconds(now, fp_attribution_log_interval_ms);

	pgstat_report_activity(STATE_RUNNING, "integrating receipt logs");
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		SPI_connect();
		if (SPI_execute("SELECT attribution.integrate_log(" CppAsString2(LOG_WORKER_BATCH) ")"
						" FROM pg_catalog.pg_extension WHERE extname = 'fp_attribution'",
						false, 0) == SPI_OK_SELECT && SPI_processed == 1)
		{
			bool		isnull;

			full = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 1, &isnull)) == LOG_WORKER_BATCH;
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
	if (full)
		next_run = now;
	return full ? 0 : fp_attribution_log_interval_ms;
}
