/*-------------------------------------------------------------------------
 *
 * verify_single.c
 *	  verify_all's proof of the one-receipt chains of rows (most chains: a
 *	  click and its receipt) without keeping their items.
 *
 * Such a chain passes when its only receipt, the first, passed its own
 * checks and its payload_hash is that of its row's payload.  Matching each
 * receipt with its row by key kept an item of each in a hash table that a
 * million chains made spill to temporary files (verify_match.c).
 *
 * Instead, a receipt that can only be such a chain's (the first of a
 * built-in type's chain, its own checks passed, its chain without a head
 * in receipt_streams: a row's chain gets one with its second receipt) adds
 * (chain key, payload_hash) to a keyed multiset hash (multiset_hash.c),
 * and each row of a chain without a head subtracts (chain key, digest of
 * its payload).  An empty difference proves the two multisets equal: each
 * such receipt has its row with that payload, and each such row its
 * receipt.  The receipts' primary key makes a chain's first receipt
 * unique, so equal multisets pair them one to one; without a unique index
 * on (a subset of) that key the proof does not hold, and it is not tried.
 *
 * Anything else leaves a difference (a changed row, a receipt whose checks
 * failed, a row or receipt missing), and verify_all checks every chain
 * one by one again, which finds and names the failure (verify.c).
 *
 * The heads are read first; their chain hashes are kept in a set (16
 * bytes each) within the budget, or the proof is not tried.  A chain whose
 * hash a head's shares only goes the long way.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_index.h"
#include "nodes/pg_list.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "fp_attribution/multiset_hash.h"
#include "fp_attribution/signing.h"
#include "fp_attribution/verify_single.h"

/* A chain hash of a head, in the set */
typedef struct HeadEntry
{
	uint64		hash;
	char		status;			/* simplehash's */
} HeadEntry;

#define SH_PREFIX head_set
#define SH_ELEMENT_TYPE HeadEntry
#define SH_KEY_TYPE uint64
#define SH_KEY hash
#define SH_HASH_KEY(tb, k) ((uint32) (k))
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

struct FpVerifySingles
{
	bool		enabled;		/* false: every chain goes the long way */
	Size		budget;			/* bytes the head set may take */
	head_set_hash *heads;
	FpMultisetHash sum;
	int64		receipts;		/* receipts taken */
};

/*
 * Whether the receipts table receipts has a valid, immediate unique index
 * on plain columns, all of them among the key of a chain's position
 * (advertiser_id, aggregate_type, aggregate_id, sequence): then no chain
 * has two first receipts.
 */
static bool
first_receipts_unique(Oid receipts)
{
	static const char *const key[] = {"advertiser_id", "aggregate_type",
	"aggregate_id", "sequence"};
	Relation	rel = table_open(receipts, AccessShareLock);
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	bool		unique = false;

	foreach(lc, indexes)
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
		Form_pg_index index;
		bool		ok;

		if (!HeapTupleIsValid(tup))
			continue;
		index = (Form_pg_index) GETSTRUCT(tup);
		ok = index->indisunique && index->indisvalid && index->indimmediate &&
			heap_attisnull(tup, Anum_pg_index_indexprs, NULL) &&
			heap_attisnull(tup, Anum_pg_index_indpred, NULL);
		for (int i = 0; ok && i < index->indnkeyatts; i++)
		{
			char	   *name = get_attname(receipts, index->indkey.values[i], true);

			ok = false;
			for (int k = 0; name != NULL && k < lengthof(key); k++)
				ok = ok || strcmp(name, key[k]) == 0;
		}
		ReleaseSysCache(tup);
		if (ok)
		{
			unique = true;
			break;
		}
	}
	list_free(indexes);
	table_close(rel, AccessShareLock);
	return unique;
}

/*
 * Start, with work_mem_kb kilobytes for the heads' set, if the receipts
 * table receipts keeps first receipts unique.
 */
FpVerifySingles *
fp_attribution_verify_singles_begin(Oid receipts, int work_mem_kb)
{
	FpVerifySingles *s = palloc0(sizeof(FpVerifySingles));

	s->enabled = first_receipts_unique(receipts);
	s->budget = (Size) work_mem_kb * 1024;
	s->heads = head_set_create(CurrentMemoryContext, 1024, NULL);
	fp_attribution_multiset_begin(&s->sum);
	return s;
}

/*
 * Note the chain hash of a head (read before any receipt or row).
 */
void
fp_attribution_verify_singles_head(FpVerifySingles *s, uint64 chain_hash)
{
	bool		found;

	if (!s->enabled)
		return;
	head_set_insert(s->heads, chain_hash, &found);
	if ((Size) s->heads->size * sizeof(HeadEntry) > s->budget)
	{
		s->enabled = false;
		head_set_destroy(s->heads);
		s->heads = NULL;
	}
}

/*
 * Take a first receipt (sign 1) that passed its own checks, with its
 * payload_hash, or a row (sign -1) with the digest of its payload, both of
 * a built-in type's chain whose identity is chain (its hash and key, as
 * verify.c lays them out).  Returns false if the chain has a head, or the
 * proof is not tried: the caller keeps the item then.
 */
bool
fp_attribution_verify_singles_take(FpVerifySingles *s, uint64 chain_hash,
								   const char *chain, int chainlen,
								   const uint8 *digest, int sign)
{
	const void *parts[] = {chain, digest};
	const size_t lens[] = {chainlen, FP_SHA256_LEN};

	if (!s->enabled || head_set_lookup(s->heads, chain_hash) != NULL)
		return false;
	fp_attribution_multiset_add(&s->sum, lengthof(parts), parts, lens, sign);
	if (sign > 0)
		s->receipts++;
	return true;
}

/*
 * What a parallel worker needs to take items as s would: whether the
 * proof is tried, the sum's key and the heads' chain hashes, written to
 * out (fp_attribution_verify_singles_shared_size bytes).
 */
typedef struct SharedSingles
{
	bool		enabled;
	FpMultisetHash sum;			/* its key; the sum empty */
	uint64		nheads;
	uint64		heads[FLEXIBLE_ARRAY_MEMBER];
} SharedSingles;

Size
fp_attribution_verify_singles_shared_size(const FpVerifySingles *s)
{
	return offsetof(SharedSingles, heads) +
		(s->enabled ? s->heads->members : 0) * sizeof(uint64);
}

void
fp_attribution_verify_singles_share(const FpVerifySingles *s, char *out)
{
	SharedSingles *shared = (SharedSingles *) out;

	shared->enabled = s->enabled;
	fp_attribution_multiset_fork(&shared->sum, &s->sum);
	shared->nheads = 0;
	if (s->enabled)
	{
		head_set_iterator it;
		HeadEntry  *e;

		head_set_start_iterate(s->heads, &it);
		while ((e = head_set_iterate(s->heads, &it)) != NULL)
			shared->heads[shared->nheads++] = e->hash;
	}
}

/* A parallel worker's copy of the leader's, from what it shared */
FpVerifySingles *
fp_attribution_verify_singles_attach(const char *shared_bytes)
{
	const SharedSingles *shared = (const SharedSingles *) shared_bytes;
	FpVerifySingles *s = palloc0(sizeof(FpVerifySingles));
	bool		found;

	s->enabled = shared->enabled;
	s->budget = SIZE_MAX;		/* the leader's set fitted */
	s->heads = head_set_create(CurrentMemoryContext, Max(shared->nheads, 16), NULL);
	for (uint64 i = 0; i < shared->nheads; i++)
		head_set_insert(s->heads, shared->heads[i], &found);
	s->sum = shared->sum;
	return s;
}

/* A parallel worker's sum and count of receipts taken, for the leader */
void
fp_attribution_verify_singles_part(const FpVerifySingles *s,
								   FpMultisetHash *sum, int64 *receipts)
{
	*sum = s->sum;
	*receipts = s->receipts;
}

/* Add a worker's part to the leader's */
void
fp_attribution_verify_singles_merge(FpVerifySingles *s,
									const FpMultisetHash *sum, int64 receipts)
{
	fp_attribution_multiset_merge(&s->sum, sum);
	s->receipts += receipts;
}

/*
 * True if every receipt taken has its row, and every row its receipt:
 * *chains of one receipt passed.  False if any differ; the caller must
 * then check every chain the long way.
 */
bool
fp_attribution_verify_singles_end(FpVerifySingles *s, int64 *chains)
{
	*chains = s->receipts;
	if (s->heads != NULL)
		head_set_destroy(s->heads);
	return fp_attribution_multiset_is_empty(&s->sum);
}
