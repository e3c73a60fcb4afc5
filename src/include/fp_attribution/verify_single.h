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

typedef struct FpVerifySingles FpVerifySingles;

extern FpVerifySingles *fp_attribution_verify_singles_begin(Oid receipts,
															int work_mem_kb);
extern void fp_attribution_verify_singles_head(FpVerifySingles *s,
											   uint64 chain_hash);
extern bool fp_attribution_verify_singles_take(FpVerifySingles *s,
											   uint64 chain_hash,
											   const char *chain, int chainlen,
											   const uint8 *digest, int sign);
extern bool fp_attribution_verify_singles_end(FpVerifySingles *s,
											  int64 *chains);

#endif							/* FP_ATTRIBUTION_VERIFY_SINGLE_H */
