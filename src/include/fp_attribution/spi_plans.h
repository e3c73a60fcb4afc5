/*-------------------------------------------------------------------------
 *
 * spi_plans.h
 *	  Session-long SPI plans (spi_plans.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_SPI_PLANS_H
#define FP_ATTRIBUTION_SPI_PLANS_H

#include "executor/spi.h"
#include "utils/relcache.h"

/*
 * A statement on the command path whose rows all belong to one advertiser,
 * prepared per shard group on a Citus node (shard_group_plans.c).  Its SQL names
 * the tables as attribution.<table>.
 */
typedef struct FpGroupPlan
{
	const char *sql;
	int			nargs;
	Oid		   *argtypes;
	SPIPlanPtr	plan;			/* against the tables, when prepared */
} FpGroupPlan;

extern SPIPlanPtr fp_attribution_group_plan(FpGroupPlan *plan,
											 Datum advertiser_id);
extern SPIPlanPtr fp_attribution_keep_plan(const char *sql, int nargs,
										   Oid *argtypes);
extern SPIPlanPtr fp_attribution_keep_generic_plan(const char *sql, int nargs,
												   Oid *argtypes);
extern void fp_attribution_spi_connect_as_owner(Relation rel, Oid *save_user,
												int *save_sec);
extern void fp_attribution_spi_finish_as_caller(Oid save_user, int save_sec);

#endif							/* FP_ATTRIBUTION_SPI_PLANS_H */
