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

extern void fp_attribution_row_guard_define_gucs(void);
extern bool fp_attribution_restoring(Oid relowner);
extern void fp_attribution_lock_click_key(Datum advertiser_id, Datum click_id,
										  bool exclusive);

#endif							/* FP_ATTRIBUTION_ROW_GUARD_H */
