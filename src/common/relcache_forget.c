/*-------------------------------------------------------------------------
 *
 * relcache_forget.c
 *	  Relcache invalidations for all of the extension's backend caches,
 *	  through one of core's callback slots.
 *
 * A backend has ten relcache callback slots (MAX_RELCACHE_CALLBACKS in
 * inval.c) and running out is an ERROR in whatever statement first needs
 * one.  Core and Citus take most of them, so the column maps, the
 * telemetry table classes, the shard groups and the postback endpoint
 * cache register here instead, and this module takes a single slot on
 * first use.  Each cache still registers lazily, when it is first built.
 *
 * Backend-local state only: nothing to lock.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fp_attribution/relcache_forget.h"

/* One entry per cache that registers; raise it when one is added */
#define MAX_FORGETS 8

static RelcacheCallbackFunction forgets[MAX_FORGETS];
static int	n_forgets = 0;

static void
forget_all(Datum arg, Oid relid)
{
	for (int i = 0; i < n_forgets; i++)
		forgets[i] (arg, relid);
}

/*
 * Call forget(0, relid) on every relcache invalidation of this backend
 * from now on (relid is InvalidOid when the whole relcache is reset).
 * Registering the same function again is a no-op.
 */
void
fp_attribution_on_relcache_inval(RelcacheCallbackFunction forget)
{
	for (int i = 0; i < n_forgets; i++)
		if (forgets[i] == forget)
			return;
	if (n_forgets == MAX_FORGETS)
		elog(ERROR, "too many fp_attribution relcache callbacks");
	if (n_forgets == 0)
		CacheRegisterRelcacheCallback(forget_all, (Datum) 0);
	forgets[n_forgets++] = forget;
}
