/*-------------------------------------------------------------------------
 *
 * merkle.h
 *	  RFC 6962 / RFC 9162 Merkle tree hashing: leaf and node hashes, the
 *	  right edge of a growing tree, roots, inclusion and consistency proofs.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_MERKLE_H
#define FP_ATTRIBUTION_MERKLE_H

#define FP_MERKLE_HASH_LEN 32
/* tree levels, hence hashes in an inclusion proof; a consistency proof has at most twice */
#define FP_MERKLE_MAX_LEVELS 63

typedef uint8 FpMerkleHash[FP_MERKLE_HASH_LEN];

/*
 * Reads the stored hash of the complete subtree at (level, index): the
 * subtree of leaves [index << level, (index + 1) << level).
 */
typedef void (*FpMerkleReadNode) (void *arg, int level, int64 index,
								  uint8 *out);

/* Called for each complete subtree hash an append creates */
typedef void (*FpMerkleWriteNode) (void *arg, int level, int64 index,
								   const uint8 *hash);

/*
 * The right edge of a tree of size leaves: edge[l] is the hash of the
 * complete subtree of level l ending the tree, present when bit l of size
 * is set.
 */
typedef struct FpMerkleEdge
{
	int64		size;
	FpMerkleHash edge[FP_MERKLE_MAX_LEVELS];
} FpMerkleEdge;

extern void fp_merkle_leaf_hash(const uint8 *data, size_t len, uint8 *out);
extern void fp_merkle_node_hash(const uint8 *left, const uint8 *right,
								uint8 *out);
extern void fp_merkle_fold(FpMerkleHash *hashes, int count);
extern void fp_merkle_edge_load(FpMerkleEdge *edge, int64 size,
								FpMerkleReadNode read, void *arg);
extern void fp_merkle_edge_append(FpMerkleEdge *edge, const uint8 *leaf_hash,
								  FpMerkleWriteNode write, void *arg);
extern void fp_merkle_edge_root(const FpMerkleEdge *edge, uint8 *out);
extern void fp_merkle_root(int64 size, FpMerkleReadNode read, void *arg,
						   uint8 *out);
extern int	fp_merkle_inclusion_proof(int64 index, int64 size,
									  FpMerkleReadNode read, void *arg,
									  FpMerkleHash *out);
extern int	fp_merkle_consistency_proof(int64 old_size, int64 new_size,
										FpMerkleReadNode read, void *arg,
										FpMerkleHash *out);

#endif							/* FP_ATTRIBUTION_MERKLE_H */
