/*-------------------------------------------------------------------------
 *
 * jcs.h
 *	  RFC 8785 JSON Canonicalization Scheme (JCS) over jsonb.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_JCS_H
#define FP_ATTRIBUTION_JCS_H

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

extern bool fp_attribution_jcs_append_jsonb(StringInfo out, JsonbContainer *jc,
											bool exact, const char **bad_number);
extern bool fp_attribution_jcs_append_object(StringInfo out,
											 const char *const *keys,
											 const JsonbValue *values, int n,
											 bool exact, const char **bad_number);
extern void fp_attribution_jcs_append_string(StringInfo out, const char *s,
											 int len);

#endif							/* FP_ATTRIBUTION_JCS_H */
