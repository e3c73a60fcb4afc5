/*-------------------------------------------------------------------------
 *
 * late_clicks.h
 *	  Attribution of a conversion whose click arrives after it
 *	  (src/commands/late_clicks.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_LATE_CLICKS_H
#define FP_ATTRIBUTION_LATE_CLICKS_H

extern void fp_attribution_late_clicks_define_gucs(void);
extern bool fp_attribution_late_clicks_enabled(void);

#endif							/* FP_ATTRIBUTION_LATE_CLICKS_H */
