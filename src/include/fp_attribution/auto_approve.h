/*-------------------------------------------------------------------------
 *
 * auto_approve.h
 *	  Automatic approval of conversions whose hold period has passed, by
 *	  the background worker (src/commands/auto_approve.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_AUTO_APPROVE_H
#define FP_ATTRIBUTION_AUTO_APPROVE_H

#include "datatype/timestamp.h"

extern void fp_attribution_auto_approve_define_gucs(void);
extern long fp_attribution_auto_approve_tick(TimestampTz now);

#endif							/* FP_ATTRIBUTION_AUTO_APPROVE_H */
