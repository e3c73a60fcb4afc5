/*-------------------------------------------------------------------------
 *
 * row_guard.h
 *	  Restore detection and the wait for in-flight clicks (row_guard.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_ROW_GUARD_H
#define FP_ATTRIBUTION_ROW_GUARD_H

#include "utils/guc.h"

/*
 * Whether this backend serves a connection that another Citus node opened
 * (Citus names those "citus_internal gpid=..."): a COPY into a shard, or a
 * command call that a coordinator sends whole.
 */
static inline bool
fp_attribution_citus_internal_connection(void)
{
	static const char prefix[] = "citus_internal gpid=";

	return application_name != NULL &&
		strncmp(application_name, prefix, sizeof(prefix) - 1) == 0;
}

extern void fp_attribution_row_guard_define_gucs(void);
extern bool fp_attribution_restoring(Oid relowner);
extern void fp_attribution_lock_click_key(Datum advertiser_id, Datum click_id,
										  bool exclusive);

#endif							/* FP_ATTRIBUTION_ROW_GUARD_H */
