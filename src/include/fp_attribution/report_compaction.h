/*-------------------------------------------------------------------------
 *
 * report_compaction.h
 *	  Folding of the report rollup's deltas by the background worker
 *	  (src/reports/report_compaction.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_REPORT_COMPACTION_H
#define FP_ATTRIBUTION_REPORT_COMPACTION_H

#include "datatype/timestamp.h"

extern void fp_attribution_report_compaction_define_gucs(void);
extern long fp_attribution_report_compaction_tick(TimestampTz now);

#endif							/* FP_ATTRIBUTION_REPORT_COMPACTION_H */
