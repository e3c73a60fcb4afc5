/*-------------------------------------------------------------------------
 *
 * verify_match.h
 *	  verify_all's grouping of items by chain in a hash table bounded by
 *	  memory (verify_match.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_VERIFY_MATCH_H
#define FP_ATTRIBUTION_VERIFY_MATCH_H

typedef struct FpVerifyMatch FpVerifyMatch;

/*
 * chain: called once for each chain with all its items (varlenas, in no
 * particular order), valid during the call only.  item: called instead,
 * for each item of the chains of a part of the hash space too large for
 * memory, which must then be grouped otherwise (verify_all sorts them).
 */
typedef void (*FpVerifyChainItems) (void *arg, const bytea *const *items,
									int nitems);
typedef void (*FpVerifyItem) (void *arg, const bytea *item);

extern FpVerifyMatch *fp_attribution_verify_match_begin(int work_mem_kb,
														FpVerifyChainItems chain,
														FpVerifyItem item,
														void *arg);
extern void fp_attribution_verify_match_put(FpVerifyMatch *m,
											const bytea *item, int chainlen);
extern void fp_attribution_verify_match_end(FpVerifyMatch *m);

#endif							/* FP_ATTRIBUTION_VERIFY_MATCH_H */
