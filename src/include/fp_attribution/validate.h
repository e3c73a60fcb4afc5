/*-------------------------------------------------------------------------
 *
 * validate.h
 *	  Input checks shared by the commands and the row triggers (validate.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_VALIDATE_H
#define FP_ATTRIBUTION_VALIDATE_H

#include "access/tupdesc.h"

/* Longest id: advertiser, affiliate, order, visitor, offer, campaign */
#define FP_ID_MAX_CHARS 128

extern text *fp_attribution_check_text(const char *field, text *value,
									   int max_chars, bool required);
extern void fp_attribution_check_column_type(TupleDesc desc, int attno,
											 const char *name, Oid typid,
											 int typlen);

#endif							/* FP_ATTRIBUTION_VALIDATE_H */
