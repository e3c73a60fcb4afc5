/*-------------------------------------------------------------------------
 *
 * merkle.c
 *	  RFC 6962 / RFC 9162 Merkle tree hashing over stored subtree hashes.
 *
 * leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right);
 * the tree of n leaves splits at the largest power of two below n.  The
 * log stores the hash of every complete, aligned subtree (level l, index
 * i covers leaves [i << l, (i + 1) << l)); any other subtree hash the
 * proofs need is composed from at most one stored hash per level, so a
 * root or a proof costs O(log n) reads (O(log^2 n) for a proof in the
 * worst case) and an append writes one hash per level it completes.
 *
 * Pure functions: no SPI, no fmgr.  Storage is reached through the
 * caller's read and write callbacks.
 *
 * Hashing goes through fp_attribution_sha256_parts (signing.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "port/pg_bitutils.h"

#include "fp_attribution/merkle.h"
#include "fp_attribution/signing.h"

/*
 * SHA-256(prefix || a || b), b optional (NULL)
 */
static void
merkle_hash(uint8 prefix, const uint8 *a, size_t alen, const uint8 *b,
			uint8 *out)
{
	const void *parts[] = {&prefix, a, b};
	size_t		lens[] = {1, alen, FP_MERKLE_HASH_LEN};

	fp_attribution_sha256_parts(b != NULL ? 3 : 2, parts, lens, out);
}

/*
 * The leaf hash of data: SHA-256(0x00 || data).
 */
void
fp_merkle_leaf_hash(const uint8 *data, size_t len, uint8 *out)
{
	merkle_hash(0x00, data, len, NULL, out);
}

/*
 * The interior node hash: SHA-256(0x01 || left || right).  out may be
 * left or right.
 */
void
fp_merkle_node_hash(const uint8 *left, const uint8 *right, uint8 *out)
{
	merkle_hash(0x01, left, FP_MERKLE_HASH_LEN, right, out);
}

/*
 * The root of the complete subtree over count (a power of two) adjacent
 * hashes of one level, into hashes[0]; the other hashes are overwritten.
 */
void
fp_merkle_fold(FpMerkleHash *hashes, int count)
{
	Assert(count > 0 && (count & (count - 1)) == 0);
	for (; count > 1; count >>= 1)
		for (int i = 0; i < count / 2; i++)
			fp_merkle_node_hash(hashes[2 * i], hashes[2 * i + 1], hashes[i]);
}

/*
 * Read the right edge of a stored tree of size leaves: one complete
 * subtree per set bit of size.
 */
void
fp_merkle_edge_load(FpMerkleEdge *edge, int64 size, FpMerkleReadNode read,
					void *arg)
{
	Assert(size >= 0);
	edge->size = size;
	for (int l = 0; l < FP_MERKLE_MAX_LEVELS; l++)
		if ((size >> l) & 1)
			read(arg, l, (size >> l) - 1, edge->edge[l]);
}

/*
 * Append a leaf: write it (level 0) and every subtree it completes, and
 * move the right edge on.
 */
void
fp_merkle_edge_append(FpMerkleEdge *edge, const uint8 *leaf_hash,
					  FpMerkleWriteNode write, void *arg)
{
	FpMerkleHash cur;
	int64		index = edge->size;
	int			l = 0;

	memcpy(cur, leaf_hash, FP_MERKLE_HASH_LEN);
	write(arg, 0, index, cur);
	while ((edge->size >> l) & 1)
	{
		fp_merkle_node_hash(edge->edge[l], cur, cur);
		l++;
		index >>= 1;
		write(arg, l, index, cur);
	}
	memcpy(edge->edge[l], cur, FP_MERKLE_HASH_LEN);
	edge->size++;
}

/*
 * The root of the tree the edge ends: the edge's subtrees folded from the
 * smallest (rightmost) up.  The empty tree's root is SHA-256 of nothing.
 */
void
fp_merkle_edge_root(const FpMerkleEdge *edge, uint8 *out)
{
	bool		have = false;

	for (int l = 0; l < FP_MERKLE_MAX_LEVELS; l++)
	{
		if (((edge->size >> l) & 1) == 0)
			continue;
		if (have)
			fp_merkle_node_hash(edge->edge[l], out, out);
		else
			memcpy(out, edge->edge[l], FP_MERKLE_HASH_LEN);
		have = true;
	}
	if (!have)
		fp_attribution_sha256("", 0, out);
}

/* The largest power of two strictly below n (n >= 2) */
static int64
split_point(int64 n)
{
	return (int64) 1 << pg_leftmost_one_pos64((uint64) (n - 1));
}

/*
 * MTH(D[lo:hi]) for a subtree of an RFC 6962 split: lo is a multiple of
 * the largest power of two not above hi - lo.
 */
static void
subtree_hash(int64 lo, int64 hi, FpMerkleReadNode read, void *arg,
			 uint8 *out)
{
	int64		n = hi - lo;

	if ((n & (n - 1)) == 0)
	{
		int			level = pg_rightmost_one_pos64((uint64) n);

		read(arg, level, lo >> level, out);
	}
	else
	{
		int64		k = split_point(n);
		FpMerkleHash left;
		FpMerkleHash right;

		subtree_hash(lo, lo + k, read, arg, left);
		subtree_hash(lo + k, hi, read, arg, right);
		fp_merkle_node_hash(left, right, out);
	}
}

/*
 * The root of the stored tree's first size leaves.
 */
void
fp_merkle_root(int64 size, FpMerkleReadNode read, void *arg, uint8 *out)
{
	if (size == 0)
		fp_attribution_sha256("", 0, out);
	else
		subtree_hash(0, size, read, arg, out);
}

/*
 * PATH(m, D[lo:hi]) of RFC 6962 section 2.1.1 appended to out from
 * position count; returns the new count.
 */
static int
inclusion_path(int64 m, int64 lo, int64 hi, FpMerkleReadNode read,
			   void *arg, FpMerkleHash *out, int count)
{
	int64		k;

	if (hi - lo <= 1)
		return count;
	k = split_point(hi - lo);
	if (m < lo + k)
	{
		count = inclusion_path(m, lo, lo + k, read, arg, out, count);
		subtree_hash(lo + k, hi, read, arg, out[count]);
	}
	else
	{
		count = inclusion_path(m, lo + k, hi, read, arg, out, count);
		subtree_hash(lo, lo + k, read, arg, out[count]);
	}
	return count + 1;
}

/*
 * The inclusion proof of leaf index in the tree of size leaves, leaf end
 * first, into out (FP_MERKLE_MAX_LEVELS hashes); returns its length.
 */
int
fp_merkle_inclusion_proof(int64 index, int64 size, FpMerkleReadNode read,
						  void *arg, FpMerkleHash *out)
{
	Assert(index >= 0 && index < size);
	return inclusion_path(index, 0, size, read, arg, out, 0);
}

/*
 * SUBPROOF(m, D[lo:hi], whole) of RFC 6962 section 2.1.2, m relative to lo.
 */
static int
consistency_subproof(int64 m, int64 lo, int64 hi, bool whole,
					 FpMerkleReadNode read, void *arg, FpMerkleHash *out,
					 int count)
{
	int64		k;

	if (m == hi - lo)
	{
		if (whole)
			return count;
		subtree_hash(lo, hi, read, arg, out[count]);
		return count + 1;
	}
	k = split_point(hi - lo);
	if (m <= k)
	{
		count = consistency_subproof(m, lo, lo + k, whole, read, arg, out, count);
		subtree_hash(lo + k, hi, read, arg, out[count]);
	}
	else
	{
		count = consistency_subproof(m - k, lo + k, hi, false, read, arg, out, count);
		subtree_hash(lo, lo + k, read, arg, out[count]);
	}
	return count + 1;
}

/*
 * The consistency proof from the tree of old_size leaves to that of
 * new_size into out (2 * FP_MERKLE_MAX_LEVELS hashes); returns its length.
 * Empty when old_size is 0 or equals new_size.
 */
int
fp_merkle_consistency_proof(int64 old_size, int64 new_size,
							FpMerkleReadNode read, void *arg,
							FpMerkleHash *out)
{
	Assert(old_size >= 0 && old_size <= new_size);
	if (old_size == 0 || old_size == new_size)
		return 0;
	return consistency_subproof(old_size, 0, new_size, true, read, arg, out, 0);
}
