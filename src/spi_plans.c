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
#include "miscadmin.h"
#include "utils/rel.h"

#include "fp_attribution/spi_plans.h"

/* Keep a prepared plan for the rest of the session */
static SPIPlanPtr
keep(SPIPlanPtr plan, const char *sql)
{
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

/*
 * Prepare SQL and keep the plan for the rest of the session.  Caller is
 * connected to SPI.
 */
SPIPlanPtr
fp_attribution_keep_plan(const char *sql, int nargs, Oid *argtypes)
{
	return keep(SPI_prepare(sql, nargs, argtypes), sql);
}

/*
 * The same for a statement whose best plan does not depend on its
 * parameters' values (key lookups, range scans of a key, inserts of
 * arrays): always the generic plan.  The plan cache would otherwise plan
 * the first five executions for their values, and go on doing so
 * whenever it estimates the generic plan dearer, which for the receipt
 * logs' statements was most of their cost.
 */
SPIPlanPtr
fp_attribution_keep_generic_plan(const char *sql, int nargs, Oid *argtypes)
{
	return keep(SPI_prepare_cursor(sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN),
				sql);
}

/*
 * Connect to SPI as the owner of rel, as the C triggers do instead of
 * SECURITY DEFINER: the calling role needs no privilege on what they
 * write.  The caller's user and security context are saved in *save_user
 * and *save_sec for fp_attribution_spi_finish_as_caller().
 */
void
fp_attribution_spi_connect_as_owner(Relation rel, Oid *save_user, int *save_sec)
{
	SPI_connect();
	GetUserIdAndSecContext(save_user, save_sec);
	SetUserIdAndSecContext(rel->rd_rel->relowner,
						   *save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_NOFORCE_RLS);
}

void
fp_attribution_spi_finish_as_caller(Oid save_user, int save_sec)
{
	SetUserIdAndSecContext(save_user, save_sec);
	SPI_finish();
}
