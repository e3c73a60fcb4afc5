/*-------------------------------------------------------------------------
 *
 * multiset_hash.c
 *	  A keyed incremental hash of a multiset: verify_all proves two
 *	  multisets it reads in separate scans equal without keeping either.
 *
 * The sum is MSet-Add-Hash (Clarke et al., "Incremental multiset hash
 * functions", 2003): each element, given as parts that the caller makes
 * unambiguous, is hashed with SHA-256 after a random 16-byte key chosen
 * for this sum, and the hashes are added (or subtracted) modulo 2^256.
 * The key never leaves the backend, so nobody who writes the tables can
 * choose elements whose hashes cancel: two different multisets leave a
 * zero difference with probability about 2^-256.  The count of elements
 * is kept as well, so a difference in size alone needs no collision.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fp_attribution/multiset_hash.h"
#include "fp_attribution/signing.h"

/*
 * Start an empty sum, with a new random key.
 */
void
fp_attribution_multiset_begin(FpMultisetHash *m)
{
	memset(m, 0, sizeof(*m));
	if (!pg_strong_random(m->key, sizeof(m->key)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random key")));
}

/*
 * Start an empty sum under the key of another (a parallel worker's part
 * of the leader's sum, which fp_attribution_multiset_merge adds back).
 */
void
fp_attribution_multiset_fork(FpMultisetHash *m, const FpMultisetHash *from)
{
	memset(m, 0, sizeof(*m));
	memcpy(m->key, from->key, sizeof(m->key));
}

/* Add (sign 1) or subtract (sign -1) the 256-bit limbs to sum, modulo 2^256 */
static void
sum_limbs(uint64 *sum, const uint64 *limbs, int sign)
{
	uint64		carry = 0;

	for (int i = 0; i < FP_MULTISET_HASH_LIMBS; i++)
	{
		uint64		before = sum[i];

		if (sign > 0)
		{
			sum[i] += limbs[i] + carry;
			carry = sum[i] < before || (carry && sum[i] == before);
		}
		else
		{
			sum[i] -= limbs[i] + carry;
			carry = sum[i] > before || (carry && sum[i] == before);
		}
	}
}

/* Add the sum part (under the same key) to m */
void
fp_attribution_multiset_merge(FpMultisetHash *m, const FpMultisetHash *part)
{
	Assert(memcmp(m->key, part->key, sizeof(m->key)) == 0);
	sum_limbs(m->sum, part->sum, 1);
	m->count += part->count;
}

/*
 * Add (sign 1) or subtract (sign -1) the element whose bytes are the
 * nparts parts (at most 7).
 */
void
fp_attribution_multiset_add(FpMultisetHash *m, int nparts,
							const void *const *parts, const size_t *lens,
							int sign)
{
	const void *keyed[8];
	size_t		keyed_lens[8];
	uint8		hash[FP_SHA256_LEN];
	uint64		limbs[FP_MULTISET_HASH_LIMBS];

	Assert(nparts < lengthof(keyed));
	keyed[0] = m->key;
	keyed_lens[0] = sizeof(m->key);
	memcpy(keyed + 1, parts, nparts * sizeof(*parts));
	memcpy(keyed_lens + 1, lens, nparts * sizeof(*lens));
	fp_attribution_sha256_parts(nparts + 1, keyed, keyed_lens, hash);
	StaticAssertStmt(sizeof(limbs) == sizeof(hash), "a hash is 256 bits");
	memcpy(limbs, hash, sizeof(limbs));
	sum_limbs(m->sum, limbs, sign);
	m->count += sign;
}

/*
 * True when as many elements were subtracted as added and the sum is
 * zero: the two multisets are equal.
 */
bool
fp_attribution_multiset_is_empty(const FpMultisetHash *m)
{
	if (m->count != 0)
		return false;
	for (int i = 0; i < FP_MULTISET_HASH_LIMBS; i++)
		if (m->sum[i] != 0)
			return false;
	return true;
}
