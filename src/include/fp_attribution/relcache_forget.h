/*-------------------------------------------------------------------------
 *
 * relcache_forget.h
 *	  One relcache invalidation slot shared by the extension's caches
 *	  (relcache_forget.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_RELCACHE_FORGET_H
#define FP_ATTRIBUTION_RELCACHE_FORGET_H

#include "utils/inval.h"

extern void fp_attribution_on_relcache_inval(RelcacheCallbackFunction forget);

#endif							/* FP_ATTRIBUTION_RELCACHE_FORGET_H */
