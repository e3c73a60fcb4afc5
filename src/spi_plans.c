/*-------------------------------------------------------------------------
 *
 * spi_plans.c
 *	  Session-long SPI plans for the commands' and triggers' lookups.
 *
 * Every module that runs SQL on the command path (row triggers, receipts,
 * the lifecycle commands, late clicks) prepares its statements once per
 * backend and keeps them.  Their SQL qualifies every name and operator,
 * so the caller's search_path cannot change what a kept plan means.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"

#include "fp_attribution/spi_plans.h"

/*
 * Prepare SQL and keep the plan for the rest of the session.  Caller is
 * connected to SPI.
 */
SPIPlanPtr
fp_attribution_keep_plan(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}
