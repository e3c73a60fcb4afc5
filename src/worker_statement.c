/*-------------------------------------------------------------------------
 *
 * worker_statement.c
 *	  A background worker's periodic job, in a transaction of its own.
 *
 * The ledger worker's jobs (receipt-log integration, automatic approval,
 * the report fold) each run SQL of the extension in a transaction of
 * their own.  A failure is reported and rolled back, and the worker goes
 * on: the job runs again at its next interval.  In a database without the
 * extension nothing runs (naming a function in a missing schema is an
 * error even when no row needs it).
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
 * Run job(arg) as the worker's activity, inside a transaction with a
 * snapshot and SPI connected, and commit.  The job's allocations outside
 * SPI go to the transaction's memory: what it keeps goes in a context of
 * the caller's.  Returns true when the job ran and committed; false when
 * the extension is not installed or the job failed (reported, rolled
 * back).
 */
bool
fp_attribution_worker_job(const char *activity, FpWorkerJob job, void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool done = false;

	pgstat_report_activity(STATE_RUNNING, activity);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		bool		installed;

		PushActiveSnapshot(GetTransactionSnapshot());
		SPI_connect();
		installed = OidIsValid(get_extension_oid("fp_attribution", true));
		if (installed)
			job(arg);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		done = installed;
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
	return done;
}

typedef struct StatementJob
{
	const char *sql;
	int64		result;
} StatementJob;

/* The job of fp_attribution_worker_statement */
static void
statement_job(void *arg)
{
	StatementJob *st = arg;

	if (SPI_execute(st->sql, false, 0) == SPI_OK_SELECT && SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0],
									  SPI_tuptable->tupdesc, 1, &isnull);

		st->result = isnull ? 0 : DatumGetInt64(d);
	}
}

/*
 * Run sql, a SELECT of one bigint, as a job; returns the bigint, or -1
 * when the extension is not installed or the statement failed.
 */
int64
fp_attribution_worker_statement(const char *activity, const char *sql)
{
	StatementJob st = {sql, -1};

	if (!fp_attribution_worker_job(activity, statement_job, &st))
		return -1;
	return st.result;
}
