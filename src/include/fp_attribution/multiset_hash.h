/*-------------------------------------------------------------------------
 *
 * multiset_hash.h
 *	  A keyed incremental hash of a multiset (multiset_hash.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_MULTISET_HASH_H
#define FP_ATTRIBUTION_MULTISET_HASH_H

#define FP_MULTISET_HASH_LIMBS 4

typedef struct FpMultisetHash
{
	uint8		key[16];		/* random, this sum's */
	uint64		sum[FP_MULTISET_HASH_LIMBS];	/* modulo 2^256,
												 * little-endian */
	int64		count;			/* elements added less subtracted */
} FpMultisetHash;

extern void fp_attribution_multiset_begin(FpMultisetHash *m);
extern void fp_attribution_multiset_fork(FpMultisetHash *m,
										 const FpMultisetHash *from);
extern void fp_attribution_multiset_merge(FpMultisetHash *m,
										  const FpMultisetHash *part);
extern void fp_attribution_multiset_add(FpMultisetHash *m, int nparts,
										const void *const *parts,
										const size_t *lens, int sign);
extern bool fp_attribution_multiset_is_empty(const FpMultisetHash *m);

#endif							/* FP_ATTRIBUTION_MULTISET_HASH_H */
