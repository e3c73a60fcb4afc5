/*-------------------------------------------------------------------------
 *
 * worker_statement.c
 *	  One SQL statement of a background worker's periodic job, in a
 *	  transaction of its own.
 *
 * The ledger worker's automatic approval and report fold each call one
 * function of the extension that returns a count.  A failure is reported
 * and rolled back, and the worker goes on: the job runs again at its next
 * interval.  In a database without the extension nothing runs (naming a
 * function in a missing schema is an error even when no row needs it).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "fp_attribution/worker_statement.h"

/*
 * Run sql, a SELECT of one bigint, as the worker's activity; returns the
 * bigint, or -1 when the extension is not installed or the statement
 * failed.
 */
int64
fp_attribution_worker_statement(const char *activity, const char *sql)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile int64 result = -1;

	pgstat_report_activity(STATE_RUNNING, activity);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		SPI_connect();
		if (OidIsValid(get_extension_oid("fp_attribution", true)) &&
			SPI_execute(sql, false, 0) == SPI_OK_SELECT && SPI_processed == 1)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull);

			result = isnull ? 0 : DatumGetInt64(d);
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
		result = -1;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
	return result;
}
