/*-------------------------------------------------------------------------
 *
 * verify_single.h
 *	  verify_all's proof of the one-receipt chains of rows without keeping
 *	  their items (verify_single.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_VERIFY_SINGLE_H
#define FP_ATTRIBUTION_VERIFY_SINGLE_H

#include "fp_attribution/multiset_hash.h"

typedef struct FpVerifySingles FpVerifySingles;

extern FpVerifySingles *fp_attribution_verify_singles_begin(Oid receipts,
															int work_mem_kb);
extern void fp_attribution_verify_singles_head(FpVerifySingles *s,
											   uint64 chain_hash);
extern bool fp_attribution_verify_singles_take(FpVerifySingles *s,
											   uint64 chain_hash,
											   const char *chain, int chainlen,
											   const uint8 *digest, int sign);
extern Size fp_attribution_verify_singles_shared_size(const FpVerifySingles *s);
extern void fp_attribution_verify_singles_share(const FpVerifySingles *s,
												char *out);
extern FpVerifySingles *fp_attribution_verify_singles_attach(const char *shared);
extern void fp_attribution_verify_singles_part(const FpVerifySingles *s,
											   FpMultisetHash *sum,
											   int64 *receipts);
extern void fp_attribution_verify_singles_merge(FpVerifySingles *s,
												const FpMultisetHash *sum,
												int64 receipts);
extern bool fp_attribution_verify_singles_end(FpVerifySingles *s,
											  int64 *chains);

#endif							/* FP_ATTRIBUTION_VERIFY_SINGLE_H */
