/*-------------------------------------------------------------------------
 *
 * verify_match.c
 *	  verify_all's grouping of the items of click and conversion chains by
 *	  chain, in a hash table kept within a memory budget.
 *
 * Most chains are a click's or a conversion's of one receipt: the
 * receipt and its row.  Sorting every item to bring each chain's items
 * together was 18 % of verify_all at a million receipts (verify.c);
 * matching them in a hash table keyed by the chain costs one lookup per
 * item, and hands each chain's items to the caller once all are in
 * (verify.c decides the chain from them, or sorts the few it cannot).
 *
 * The table is kept within the budget as a hash join's is: the chains
 * are split into nbatch partitions by bits of the chain hash that the
 * table does not use.  Partition 0 stays in memory while the tables are
 * read; the items of the others are written to a temporary file each
 * (BufFile), then each partition in turn is read back into the table.
 * When the table outgrows the budget, nbatch doubles and the chains that
 * now belong to a later partition move to its file (and items read back
 * from a file that belong to a later partition go on to its file), so a
 * chain's items always meet in one partition.  Past MATCH_MAX_BATCHES
 * (a partition that cannot be split: a chain larger than the budget),
 * the partition's items go to the item callback instead, all of them,
 * so no chain is split between the two.
 *
 * Items are varlenas whose first 8 bytes are the chain's 64-bit hash and
 * whose first chainlen bytes of data identify the chain (verify.c lays
 * them out).  They are copied into 32 kB chunks, so memory is counted
 * exactly and freed at once.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/buffile.h"
#include "utils/memutils.h"

#include "fp_attribution/verify_match.h"

/* Size of the chunks items are copied into */
#define MATCH_CHUNK (32 * 1024)

/*
 * Most partitions: each written partition has a BufFile with an 8 kB
 * buffer, so 256 of them take 2 MB
 */
#define MATCH_MAX_BATCHES 256

/* An item in memory; its varlena follows */
typedef struct MatchItem
{
	struct MatchItem *next;
} MatchItem;

#define MATCH_ITEM_DATA(mi) ((bytea *) ((char *) (mi) + MAXALIGN(sizeof(MatchItem))))

/* A chain's identity: bytes of its first item's data */
typedef struct MatchKey
{
	const char *bytes;
	int			len;
	uint32		hash;
} MatchKey;

/* A chain in the table, with its items so far */
typedef struct MatchChain
{
	MatchKey	key;
	char		status;			/* simplehash's */
	int			nitems;
	MatchItem  *items;
} MatchChain;

#define SH_PREFIX match_table
#define SH_ELEMENT_TYPE MatchChain
#define SH_KEY_TYPE MatchKey
#define SH_KEY key
#define SH_HASH_KEY(tb, k) ((k).hash)
#define SH_EQUAL(tb, a, b) ((a).hash == (b).hash && (a).len == (b).len && \
							memcmp((a).bytes, (b).bytes, (a).len) == 0)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

struct FpVerifyMatch
{
	Size		budget;			/* bytes the table and its items may take */
	FpVerifyChainItems chain;
	FpVerifyItem item;
	void	   *arg;
	MemoryContext cxt;			/* the match's files and this struct */
	MemoryContext table_cxt;	/* the table and its chunks; reset per
								 * partition */
	match_table_hash *table;
	char	   *free;			/* free part of the current chunk */
	Size		free_len;
	Size		chunks_len;		/* bytes of chunks allocated */
	int			nbatch;			/* partitions: a power of 2 */
	int			curbatch;		/* the partition in memory */
	bool		overflowed;		/* curbatch goes to the item callback */
	BufFile    *files[MATCH_MAX_BATCHES];	/* of later partitions, or NULL */
	const bytea **group;		/* a chain's items, for the chain callback */
	int			maxgroup;
};

/* The 64-bit hash of the chain an item's data (or a key) starts with */
static uint64
chain_hash(const char *data)
{
	uint64		h = 0;

	for (int i = 0; i < 8; i++)
		h = (h << 8) | (uint8) data[i];
	return h;
}

/*
 * The partition of a chain hash: its high bits, as the table's buckets
 * take its low bits.
 */
static int
partition_of(const FpVerifyMatch *m, uint64 hash)
{
	return (int) ((hash >> 32) & (uint64) (m->nbatch - 1));
}

/* An empty table in a fresh table_cxt */
static void
table_create(FpVerifyMatch *m)
{
	MemoryContextReset(m->table_cxt);
	m->table = match_table_create(m->table_cxt, 1024, NULL);
	m->free = NULL;
	m->free_len = 0;
	m->chunks_len = 0;
}

/* Whether the table and its items take more than the budget */
static bool
over_budget(const FpVerifyMatch *m)
{
	return m->chunks_len + (Size) m->table->size * sizeof(MatchChain) > m->budget;
}

/* len bytes (MAXALIGNed) from the current chunk, or a new one */
static void *
chunk_alloc(FpVerifyMatch *m, Size len)
{
	void	   *p;

	len = MAXALIGN(len);
	if (len > m->free_len)
	{
		Size		size = Max(len, MATCH_CHUNK);

		m->free = MemoryContextAlloc(m->table_cxt, size);
		m->free_len = size;
		m->chunks_len += size;
	}
	p = m->free;
	m->free += len;
	m->free_len -= len;
	return p;
}

/*
 * Add a copy of item to its chain in the table.
 */
static void
table_add(FpVerifyMatch *m, const bytea *item, int chainlen)
{
	MatchItem  *mi = chunk_alloc(m, MAXALIGN(sizeof(MatchItem)) + VARSIZE(item));
	bytea	   *copy = MATCH_ITEM_DATA(mi);
	MatchKey	key;
	MatchChain *c;
	bool		found;

	memcpy(copy, item, VARSIZE(item));
	key.bytes = VARDATA(copy);
	key.len = chainlen;
	key.hash = (uint32) chain_hash(key.bytes);
	c = match_table_insert(m->table, key, &found);
	if (!found)
	{
		c->nitems = 0;
		c->items = NULL;
	}
	mi->next = c->items;
	c->items = mi;
	c->nitems++;
}

/*
 * Write item to the file of partition p (a later one than in memory).
 */
static void
spill(FpVerifyMatch *m, int p, const bytea *item, int chainlen)
{
	uint32		len = chainlen;

	Assert(p > m->curbatch);
	if (m->files[p] == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(m->cxt);

		m->files[p] = BufFileCreateTemp(false);
		MemoryContextSwitchTo(old);
	}
	BufFileWrite(m->files[p], &len, sizeof(len));
	BufFileWrite(m->files[p], (void *) item, VARSIZE(item));
}

/*
 * Hand every item of the table to the item callback, and every later
 * item of this partition too: it cannot be split further.
 */
static void
overflow(FpVerifyMatch *m)
{
	match_table_iterator it;
	MatchChain *c;

	match_table_start_iterate(m->table, &it);
	while ((c = match_table_iterate(m->table, &it)) != NULL)
		for (MatchItem *mi = c->items; mi != NULL; mi = mi->next)
			m->item(m->arg, MATCH_ITEM_DATA(mi));
	table_create(m);
	m->overflowed = true;
}

/*
 * Double the partitions until the table fits (moving the chains of the
 * new later partitions to their files), or overflow.
 */
static void
shrink(FpVerifyMatch *m)
{
	while (over_budget(m) && m->nbatch < MATCH_MAX_BATCHES)
	{
		MemoryContext old_cxt = m->table_cxt;
		match_table_hash *old = m->table;
		match_table_iterator it;
		MatchChain *c;

		m->nbatch *= 2;
		m->table_cxt = AllocSetContextCreate(m->cxt, "fp_attribution verify match",
											 ALLOCSET_DEFAULT_SIZES);
		table_create(m);
		match_table_start_iterate(old, &it);
		while ((c = match_table_iterate(old, &it)) != NULL)
		{
			int			p = partition_of(m, chain_hash(c->key.bytes));

			for (MatchItem *mi = c->items; mi != NULL; mi = mi->next)
			{
				if (p == m->curbatch)
					table_add(m, MATCH_ITEM_DATA(mi), c->key.len);
				else
					spill(m, p, MATCH_ITEM_DATA(mi), c->key.len);
			}
		}
		MemoryContextDelete(old_cxt);
	}
	if (over_budget(m))
		overflow(m);
}

/*
 * Start matching within work_mem_kb kilobytes.  Allocates in the current
 * memory context, which must outlive fp_attribution_verify_match_end.
 */
FpVerifyMatch *
fp_attribution_verify_match_begin(int work_mem_kb, FpVerifyChainItems chain,
								  FpVerifyItem item, void *arg)
{
	FpVerifyMatch *m = palloc0(sizeof(FpVerifyMatch));

	m->budget = (Size) work_mem_kb * 1024;
	m->chain = chain;
	m->item = item;
	m->arg = arg;
	m->nbatch = 1;
	m->cxt = AllocSetContextCreate(CurrentMemoryContext, "fp_attribution verify match files",
								   ALLOCSET_DEFAULT_SIZES);
	m->table_cxt = AllocSetContextCreate(m->cxt, "fp_attribution verify match",
										 ALLOCSET_DEFAULT_SIZES);
	table_create(m);
	return m;
}

/*
 * Add an item (copied) whose data's first chainlen bytes identify its
 * chain.
 */
void
fp_attribution_verify_match_put(FpVerifyMatch *m, const bytea *item,
								 int chainlen)
{
	int			p = partition_of(m, chain_hash(VARDATA(item)));

	if (p != m->curbatch)
		spill(m, p, item, chainlen);
	else if (m->overflowed)
		m->item(m->arg, item);
	else
	{
		table_add(m, item, chainlen);
		if (over_budget(m))
			shrink(m);
	}
}

/*
 * Hand every chain of the table to the chain callback and empty it.
 */
static void
resolve(FpVerifyMatch *m)
{
	match_table_iterator it;
	MatchChain *c;

	match_table_start_iterate(m->table, &it);
	while ((c = match_table_iterate(m->table, &it)) != NULL)
	{
		int			n = 0;

		CHECK_FOR_INTERRUPTS();
		if (c->nitems > m->maxgroup)
		{
			m->maxgroup = Max(c->nitems, 2 * m->maxgroup);
			m->group = m->group == NULL ?
				MemoryContextAlloc(m->cxt, m->maxgroup * sizeof(bytea *)) :
				repalloc(m->group, m->maxgroup * sizeof(bytea *));
		}
		for (MatchItem *mi = c->items; mi != NULL; mi = mi->next)
			m->group[n++] = MATCH_ITEM_DATA(mi);
		m->chain(m->arg, m->group, n);
	}
	table_create(m);
}

/*
 * Read partition p's file back: its items go to the table (or, for a
 * later partition since nbatch grew, on to its file).
 */
static void
load(FpVerifyMatch *m, int p)
{
	BufFile    *file = m->files[p];
	StringInfoData buf;
	uint32		chainlen;

	if (file == NULL)
		return;
	initStringInfo(&buf);
	if (BufFileSeek(file, 0, 0, SEEK_SET) != 0)
		elog(ERROR, "could not rewind a temporary file of verify_all");
	while (BufFileRead(file, &chainlen, sizeof(chainlen)) == sizeof(chainlen))
	{
		Size		len;

		CHECK_FOR_INTERRUPTS();
		if (BufFileRead(file, buf.data, VARHDRSZ) != VARHDRSZ)
			elog(ERROR, "could not read a temporary file of verify_all");
		len = VARSIZE(buf.data);
		enlargeStringInfo(&buf, len);
		if (BufFileRead(file, buf.data + VARHDRSZ, len - VARHDRSZ) != len - VARHDRSZ)
			elog(ERROR, "could not read a temporary file of verify_all");
		fp_attribution_verify_match_put(m, (bytea *) buf.data, chainlen);
	}
	BufFileClose(file);
	m->files[p] = NULL;
	pfree(buf.data);
}

/*
 * Hand every chain to the callbacks, partition by partition, and free
 * everything.
 */
void
fp_attribution_verify_match_end(FpVerifyMatch *m)
{
	for (;;)
	{
		resolve(m);
		if (++m->curbatch >= m->nbatch)
			break;
		m->overflowed = false;
		load(m, m->curbatch);
	}
	MemoryContextDelete(m->cxt);
	pfree(m);
}
