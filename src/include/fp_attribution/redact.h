/*-------------------------------------------------------------------------
 *
 * redact.h
 *	  Secrets of URLs hidden from messages (redact.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_REDACT_H
#define FP_ATTRIBUTION_REDACT_H

extern void fp_attribution_redact_urls(char *dst, const char *src,
									   size_t dstsize);

#endif							/* FP_ATTRIBUTION_REDACT_H */
