/*-------------------------------------------------------------------------
 *
 * telemetry_rings.c
 *	  The span and log rings in shared memory: backends push their
 *	  transactions' records at transaction end, the exporter copies them
 *	  out packed, the SQL views peek at them unpacked.  The metric
 *	  counters live apart, in telemetry.c.
 *
 * Locking.  Each ring has an LWLock of the telemetry tranche (telemetry.c
 * requests the tranche and hands the two locks over at start-up): a writer
 * takes it exclusively for the memcpy of its records (a few kB) and nothing
 * else; a reader takes it shared to copy at most a bounded batch, then
 * releases it and does its encoding or tuple building without it.  Neither
 * side calls anything that can ereport while holding it.  A full ring
 * overwrites its oldest record (counted as dropped unless a consumer had
 * copied it), so a writer never waits for a consumer to make room.  The
 * exporter latch pointer is guarded by the spinlock "mutex", held only to
 * read or set them.  copied_upto and export_dropped are atomics, read and
 * written without the lock; so are waiting and wake_batch, which the
 * exporter workers set before they sleep and a writer reads (and waiting
 * exchanges) while it holds the lock exclusively: a worker that sets its
 * bit and then reads head under the shared lock either sees the records
 * of a push, or that push, ordered after it by the lock, sees the bit
 * and wakes it (see fp_attribution_telemetry_await_batch).
 *
 * Several exporter workers may consume a ring together
 * (fp_attribution.otlp_workers): each claims the next batch by moving
 * their shared claim position (an atomic they own) with compare-and-swap
 * while it holds the ring's lock in shared mode, and copies that batch in
 * the same acquisition, so no two consumers ever copy the same record, and
 * writers, who need the lock exclusively, cannot overwrite a batch between
 * its claim and its copy.  The exporter latches (one slot per worker) are
 * guarded by the spinlock, like the single one was.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"

#include "fp_attribution/telemetry.h"
#include "fp_attribution/telemetry_record.h"
#include "fp_attribution/telemetry_rings.h"

/*
 * A ring of at most capacity packed records.  They lie one after the other
 * in a byte area (a record never wraps: one that might not fit before the
 * end of the area starts at its beginning), and starts[pos % capacity]
 * gives the byte position of the record at pos.  Packed densely (a
 * click's spans average some 520 bytes against a 4,840-byte largest
 * span), a batch of records spans a tenth of the pages that one slot of
 * the largest record size each would: the first touch of each page, by
 * the backends that write and by the exporter that copies, was most of
 * the cost of the copy.  The area holds capacity + 1 of the largest records, so a record
 * is only ever overwritten because capacity newer ones follow it, never
 * for room (see ring_push).  Byte positions only grow; a record's place
 * in the area is its byte position modulo area_size.  The area, starts,
 * byte_head and the positions are guarded by lock, like the records
 * (see Locking above); the atomics are not.
 */
typedef struct FpRing
{
	LWLock	   *lock;
	int			capacity;
	Size		slot_size;		/* largest packed record, MAXALIGNed */
	Size		area_size;		/* (capacity + 1) * slot_size */
	char	   *slots;			/* the byte area */
	uint64	   *starts;			/* byte position of each record, by pos */
	uint64		byte_head;		/* byte position of the next record */
	uint64		head;			/* position of the next record; first is 1 */
	uint64		tail;			/* oldest position still in the ring */
	uint64		written;		/* records written since the last reset */
	uint64		dropped;		/* overwritten before any consumer copied */
	pg_atomic_uint64 copied_upto;	/* positions below were copied */
	pg_atomic_uint64 export_dropped;	/* reported by the exporter */
	pg_atomic_uint32 waiting;	/* workers asleep until a full batch, by bit */
	pg_atomic_uint32 wake_batch;	/* records that make a full batch */
} FpRing;

/* The packed form of a span: see pack_span */
#define SPAN_HEAD_SIZE offsetof(FpSpanRecord, trace_state)

typedef struct FpPackedSpan
{
	uint32		dropped_attributes_count;
	int			n_events;
	int			n_attrs;
	int			trace_state_len;	/* without the NUL */
	uint32		attrs_len;		/* bytes of the packed attributes */
	uint32		pad;
} FpPackedSpan;

/* What follows a log record's head: the length of its packed attributes */
typedef struct FpPackedLog
{
	uint32		attrs_len;
	uint32		pad;
} FpPackedLog;

/*
 * A packed attribute: its type, the length of its key, the length of its
 * string value (0 for other types), then the key and its NUL, then the
 * value: the string and its NUL, or a byte (bool), or 8 bytes (int64 and
 * double, unaligned).  A typical attribute takes 40-60 bytes instead of
 * FpAttribute's 168: the copy of a batch out of the ring was mostly the
 * fixed attributes.
 */
#define PACKED_ATTR_HEAD 3
#define PACKED_ATTR_MAX (PACKED_ATTR_HEAD + FP_ATTR_KEY_LEN + FP_ATTR_VALUE_LEN)

StaticAssertDecl(FP_ATTR_KEY_LEN <= 256 && FP_ATTR_VALUE_LEN <= 256,
				 "packed attribute lengths fit in a byte");

/* The largest packed span: the spans ring's slot size */
#define SPAN_PACKED_MAX \
	(MAXALIGN(SPAN_HEAD_SIZE) + sizeof(FpPackedSpan) + \
	 FP_SPAN_MAX_EVENTS * sizeof(FpSpanEvent) + \
	 FP_SPAN_MAX_ATTRS * PACKED_ATTR_MAX + FP_TRACESTATE_MAX_LEN + 1)

/* The largest packed log record: the logs ring's slot size */
#define LOG_HEAD_SIZE offsetof(FpLogRecord, attrs)
#define LOG_PACKED_MAX \
	(MAXALIGN(LOG_HEAD_SIZE) + sizeof(FpPackedLog) + \
	 FP_LOG_MAX_ATTRS * PACKED_ATTR_MAX)

StaticAssertDecl(sizeof(FpPackedSpan) % MAXIMUM_ALIGNOF == 0 &&
				 sizeof(FpSpanEvent) % MAXIMUM_ALIGNOF == 0,
				 "packed span parts keep their alignment");

/* The rings and what wakes the exporter */
typedef struct FpRingsShared
{
	slock_t		mutex;
	Latch	   *exporter_latches[FP_TELEMETRY_MAX_EXPORTERS];	/* by mutex */
	FpRing		spans;
	FpRing		logs;
	/* then each ring's byte area and starts (ring_bytes) */
} FpRingsShared;

static FpRingsShared *rings = NULL;

/* A ring's byte area: capacity + 1 of the largest records (see FpRing) */
static Size
ring_area(int capacity, Size record_size)
{
	return mul_size(capacity + 1, MAXALIGN(record_size));
}

/* A ring's shared memory: its byte area, then its starts */
static Size
ring_bytes(int capacity, Size record_size)
{
	return add_size(ring_area(capacity, record_size),
					mul_size(capacity, sizeof(uint64)));
}

/* Our shared memory: the header, then the spans ring, then the logs ring */
Size
fp_attribution_telemetry_rings_shmem_size(void)
{
	Size		size = MAXALIGN(sizeof(FpRingsShared));

	size = add_size(size, ring_bytes(fp_attribution_max_spans, SPAN_PACKED_MAX));
	return add_size(size, ring_bytes(fp_attribution_max_logs, LOG_PACKED_MAX));
}

static void
ring_init(FpRing *ring, LWLock *lock, int capacity, Size record_size,
		  char *slots)
{
	ring->lock = lock;
	ring->capacity = capacity;
	ring->slot_size = MAXALIGN(record_size);
	ring->area_size = ring_area(capacity, record_size);
	ring->slots = slots;
	ring->starts = (uint64 *) (slots + ring->area_size);
	ring->byte_head = 0;
	ring->head = ring->tail = 1;
	ring->written = ring->dropped = 0;
	pg_atomic_init_u64(&ring->copied_upto, 1);
	pg_atomic_init_u64(&ring->export_dropped, 0);
	pg_atomic_init_u32(&ring->waiting, 0);
	pg_atomic_init_u32(&ring->wake_batch, 1);
}

/*
 * Create or attach the rings, guarded by the two locks given; called by
 * fp_attribution_telemetry_shmem_init with AddinShmemInitLock held.
 */
void
fp_attribution_telemetry_rings_shmem_init(LWLock *spans_lock, LWLock *logs_lock)
{
	bool		found;
	char	   *area;

	rings = ShmemInitStruct("fp_attribution telemetry rings",
							fp_attribution_telemetry_rings_shmem_size(),
							&found);
	if (found)
		return;
	SpinLockInit(&rings->mutex);
	memset(rings->exporter_latches, 0, sizeof(rings->exporter_latches));
	area = (char *) rings + MAXALIGN(sizeof(FpRingsShared));
	ring_init(&rings->spans, spans_lock, fp_attribution_max_spans,
			  SPAN_PACKED_MAX, area);
	ring_init(&rings->logs, logs_lock, fp_attribution_max_logs,
			  LOG_PACKED_MAX,
			  area + ring_bytes(fp_attribution_max_spans, SPAN_PACKED_MAX));
}

/* The ring of a signal (spans or logs) */
static FpRing *
ring_of(FpSignal signal)
{
	Assert(signal == FP_SIGNAL_SPANS || signal == FP_SIGNAL_LOGS);
	return signal == FP_SIGNAL_SPANS ? &rings->spans : &rings->logs;
}

/* The packed record at pos; the caller holds the ring's lock */
static inline char *
ring_slot(FpRing *ring, uint64 pos)
{
	return ring->slots + ring->starts[pos % ring->capacity] % ring->area_size;
}

/* Packing of a record into a slot: returns the bytes written */
typedef Size (*FpPackFn) (char *dst, const void *record);

/* Copying a record out of a slot: returns the bytes written */
typedef Size (*FpCopyFn) (char *dst, const char *src);

/* Pack n attributes at dst (see PACKED_ATTR_HEAD); returns the end */
static char *
pack_attrs(char *dst, const FpAttribute *attrs, int n)
{
	for (int i = 0; i < n; i++)
	{
		const FpAttribute *a = &attrs[i];
		int			key_len = strlen(a->key);
		char	   *p = dst + PACKED_ATTR_HEAD;

		dst[0] = a->type;
		dst[1] = key_len;
		dst[2] = 0;
		memcpy(p, a->key, key_len + 1);
		p += key_len + 1;
		switch (a->type)
		{
			case FP_ATTR_STRING:
				{
					int			len = strlen(a->value.str);

					dst[2] = len;
					memcpy(p, a->value.str, len + 1);
					p += len + 1;
				}
				break;
			case FP_ATTR_BOOL:
				*p++ = a->value.b;
				break;
			default:
				memcpy(p, &a->value.i, sizeof(int64));
				p += sizeof(int64);
				break;
		}
		dst = p;
	}
	return dst;
}

/*
 * The packed attribute at src into *a (pointing into src); returns the
 * packed attribute after it.
 */
const char *
fp_attribution_telemetry_attr_view(const char *src, FpAttrView *a)
{
	const char *p = src + PACKED_ATTR_HEAD;

	a->type = (uint8) src[0];
	a->key_len = (uint8) src[1];
	a->key = p;
	p += a->key_len + 1;
	a->str = p;
	a->str_len = 0;
	switch (a->type)
	{
		case FP_ATTR_STRING:
			a->str_len = (uint8) src[2];
			p += a->str_len + 1;
			break;
		case FP_ATTR_BOOL:
			a->b = *p++ != 0;
			break;
		case FP_ATTR_INT:
			memcpy(&a->i, p, sizeof(int64));
			p += sizeof(int64);
			break;
		default:
			memcpy(&a->d, p, sizeof(double));
			p += sizeof(double);
			break;
	}
	return p;
}

/* Unpack n packed attributes at src into attrs; returns the end of src */
static const char *
unpack_attrs(FpAttribute *attrs, const char *src, int n)
{
	for (int i = 0; i < n; i++)
	{
		FpAttrView	v;

		src = fp_attribution_telemetry_attr_view(src, &v);
		memcpy(attrs[i].key, v.key, v.key_len + 1);
		attrs[i].type = v.type;
		switch (v.type)
		{
			case FP_ATTR_STRING:
				memcpy(attrs[i].value.str, v.str, v.str_len + 1);
				break;
			case FP_ATTR_BOOL:
				attrs[i].value.b = v.b;
				break;
			case FP_ATTR_INT:
				attrs[i].value.i = v.i;
				break;
			default:
				attrs[i].value.d = v.d;
				break;
		}
	}
	return src;
}

/*
 * A span slot holds only what is defined, in an order that keeps every
 * part that needs it aligned, so that the exporter encodes straight from
 * a copy of the slot (fp_attribution_telemetry_span_view) without
 * unpacking it: the fixed head (the record up to trace_state,
 * MAXALIGNed), FpPackedSpan, the events in use, the attributes in use
 * packed (PACKED_ATTR_HEAD), and last the tracestate string.  That is a
 * tenth of the record or less, and the copy under the lock is most of
 * the cost of recording a span.
 */

static Size
pack_span(char *dst, const void *record)
{
	const FpSpanRecord *s = record;
	FpPackedSpan *c = (FpPackedSpan *) (dst + MAXALIGN(SPAN_HEAD_SIZE));
	char	   *p = (char *) (c + 1);

	memcpy(dst, s, SPAN_HEAD_SIZE);
	c->dropped_attributes_count = s->dropped_attributes_count;
	c->n_events = s->n_events;
	c->n_attrs = s->n_attrs;
	c->trace_state_len = strlen(s->trace_state);
	memcpy(p, s->events, s->n_events * sizeof(FpSpanEvent));
	p += s->n_events * sizeof(FpSpanEvent);
	c->attrs_len = pack_attrs(p, s->attrs, s->n_attrs) - p;
	c->pad = 0;
	p += c->attrs_len;
	memcpy(p, s->trace_state, c->trace_state_len + 1);
	p += c->trace_state_len + 1;
	return p - dst;
}

/*
 * Where the parts of a packed span lie; returns the packed record after
 * it.  src is MAXALIGNed (a slot, or a copy of one).
 */
const char *
fp_attribution_telemetry_span_view(const char *src, FpSpanView *v)
{
	const FpPackedSpan *c = (const FpPackedSpan *) (src + MAXALIGN(SPAN_HEAD_SIZE));
	const char *p = (const char *) (c + 1);

	v->head = (const FpSpanRecord *) src;
	v->dropped_attributes_count = c->dropped_attributes_count;
	v->n_events = c->n_events;
	v->events = (const FpSpanEvent *) p;
	p += c->n_events * sizeof(FpSpanEvent);
	v->n_attrs = c->n_attrs;
	v->attrs = p;
	p += c->attrs_len;
	v->trace_state = p;
	p += c->trace_state_len + 1;
	return src + MAXALIGN(p - src);
}

/* Copy a span as an FpSpanRecord */
static Size
unpack_span(char *dst, const char *src)
{
	FpSpanRecord *s = (FpSpanRecord *) dst;
	FpSpanView	v;

	(void) fp_attribution_telemetry_span_view(src, &v);
	memcpy(s, src, SPAN_HEAD_SIZE);
	strcpy(s->trace_state, v.trace_state);
	s->dropped_attributes_count = v.dropped_attributes_count;
	s->n_events = v.n_events;
	memcpy(s->events, v.events, v.n_events * sizeof(FpSpanEvent));
	s->n_attrs = v.n_attrs;
	(void) unpack_attrs(s->attrs, v.attrs, v.n_attrs);
	return sizeof(FpSpanRecord);
}

/* Copy a span as it is packed */
static Size
copy_packed_span(char *dst, const char *src)
{
	FpSpanView	v;
	Size		size = fp_attribution_telemetry_span_view(src, &v) - src;

	memcpy(dst, src, size);
	return size;
}

/*
 * A log slot is the record up to its attributes (MAXALIGNed), FpPackedLog,
 * then the attributes in use, packed
 */
static Size
pack_log(char *dst, const void *record)
{
	const FpLogRecord *log = record;
	FpPackedLog *c = (FpPackedLog *) (dst + MAXALIGN(LOG_HEAD_SIZE));
	char	   *p = (char *) (c + 1);

	memcpy(dst, log, LOG_HEAD_SIZE);
	c->attrs_len = pack_attrs(p, log->attrs, log->n_attrs) - p;
	c->pad = 0;
	return p + c->attrs_len - dst;
}

/*
 * Where the parts of a packed log record lie; returns the packed record
 * after it.  src is MAXALIGNed.
 */
const char *
fp_attribution_telemetry_log_view(const char *src, FpLogView *v)
{
	const FpPackedLog *c = (const FpPackedLog *) (src + MAXALIGN(LOG_HEAD_SIZE));

	v->head = (const FpLogRecord *) src;
	v->n_attrs = v->head->n_attrs;
	v->attrs = (const char *) (c + 1);
	return src + MAXALIGN(v->attrs + c->attrs_len - src);
}

/* Copy a log record as an FpLogRecord */
static Size
unpack_log(char *dst, const char *src)
{
	FpLogView	v;

	(void) fp_attribution_telemetry_log_view(src, &v);
	memcpy(dst, src, LOG_HEAD_SIZE);
	(void) unpack_attrs(((FpLogRecord *) dst)->attrs, v.attrs, v.n_attrs);
	return sizeof(FpLogRecord);
}

/* Copy a log record as it is packed */
static Size
copy_packed_log(char *dst, const char *src)
{
	FpLogView	v;
	Size		size = fp_attribution_telemetry_log_view(src, &v) - src;

	memcpy(dst, src, size);
	return size;
}

/*
 * Set the latch of every exporter worker but except (NULL: all of them).
 * The latches are copied under the spinlock and set after it.
 */
static void
wake_exporters(Latch *except)
{
	Latch	   *latches[FP_TELEMETRY_MAX_EXPORTERS];

	SpinLockAcquire(&rings->mutex);
	memcpy(latches, rings->exporter_latches, sizeof(latches));
	SpinLockRelease(&rings->mutex);
	for (int i = 0; i < FP_TELEMETRY_MAX_EXPORTERS; i++)
		if (latches[i] != NULL && latches[i] != except)
			SetLatch(latches[i]);
}

/*
 * Records not yet copied by an exporter; the caller holds the ring's lock
 */
static inline uint64
ring_backlog(FpRing *ring)
{
	return ring->head - Max(pg_atomic_read_u64(&ring->copied_upto), ring->tail);
}

/*
 * Append n records and, when that makes a full batch wait, wake the
 * exporter workers that sleep until one does (OpenTelemetry's batching
 * rule).  A worker that is busy sending is not woken: it looks for the
 * next full batch itself when its request ends, so each wake-up finds
 * work (waking at every batch's worth of records, busy or not, cost a
 * wake-up per request more).
 */
static void
ring_push(FpRing *ring, void *const *records, int n, FpPackFn pack)
{
	bool		wake = false;

	LWLockAcquire(ring->lock, LW_EXCLUSIVE);
	for (int i = 0; i < n; i++)
	{
		uint64		at = ring->byte_head;

		/* room for the largest record before the end of the area */
		if (at % ring->area_size + ring->slot_size > ring->area_size)
			at += ring->area_size - at % ring->area_size;
		if (ring->head - ring->tail == ring->capacity)
		{
			if (ring->tail >= pg_atomic_read_u64(&ring->copied_upto))
				ring->dropped++;
			ring->tail++;
		}

		/*
		 * The capacity - 1 records kept span less than capacity * slot_size
		 * bytes (each is at most slot_size, with at most one skipped end of
		 * the area among them), so the area's extra slot leaves room for
		 * this one without overwriting them.
		 */
		Assert(ring->head == ring->tail ||
			   at + ring->slot_size - ring->starts[ring->tail % ring->capacity] <=
			   ring->area_size);
		ring->starts[ring->head % ring->capacity] = at;
		ring->byte_head = at + MAXALIGN(pack(ring->slots + at % ring->area_size,
											 records[i]));
		ring->head++;
		ring->written++;
	}
	if (pg_atomic_read_u32(&ring->waiting) != 0 &&
		ring_backlog(ring) >= pg_atomic_read_u32(&ring->wake_batch))
		wake = pg_atomic_exchange_u32(&ring->waiting, 0) != 0;
	LWLockRelease(ring->lock);

	if (wake)
		wake_exporters(NULL);
}

/*
 * Copy the records at positions from .. to - 1 still in the ring to out,
 * one after the other (copy says how: unpacked, or as packed); returns
 * how many, and in *lost (when not NULL) how many of those positions were
 * overwritten already.  consume marks them as copied for the dropped
 * count; the SQL views read without consuming.  The caller holds the
 * ring's lock (shared is enough).
 */
static int
ring_copy_range(FpRing *ring, uint64 from, uint64 to, char *out,
				uint64 *lost, bool consume, FpCopyFn copy)
{
	uint64		pos = Max(from, ring->tail);
	int			n = 0;

	to = Min(to, ring->head);
	if (lost != NULL)
		*lost = from < ring->tail ? Min(ring->tail, Max(to, from)) - from : 0;
	for (; pos < to; pos++, n++)
		out += copy(out, ring_slot(ring, pos));
	if (consume)
	{
		uint64		old = pg_atomic_read_u64(&ring->copied_upto);

		while (old < pos &&
			   !pg_atomic_compare_exchange_u64(&ring->copied_upto, &old, pos))
			;
	}
	return n;
}

/*
 * Copy up to max records at or after *cursor to out (see ring_copy_range)
 * and advance *cursor; returns how many.
 */
static int
ring_copy(FpRing *ring, uint64 *cursor, char *out, int max, uint64 *lost,
		  bool consume, FpCopyFn copy)
{
	uint64		from;
	int			n;

	LWLockAcquire(ring->lock, LW_SHARED);
	from = Max(Max(*cursor, 1), ring->tail);
	n = ring_copy_range(ring, Max(*cursor, 1), from + max, out, lost,
						consume, copy);
	LWLockRelease(ring->lock);
	*cursor = from + n;
	return n;
}

void
fp_attribution_telemetry_push_spans(FpSpanRecord *const *spans, int n)
{
	if (rings != NULL && n > 0)
		ring_push(&rings->spans, (void *const *) spans, n, pack_span);
}

void
fp_attribution_telemetry_push_logs(FpLogRecord *const *logs, int n)
{
	if (rings != NULL && n > 0)
		ring_push(&rings->logs, (void *const *) logs, n, pack_log);
}

/*
 * Whether this process holds the logs ring lock: a message raised then
 * must not be pushed (the server log hook, server_log.c), or the process
 * would wait on itself.
 */
bool
fp_attribution_telemetry_logs_lock_held(void)
{
	return rings != NULL && LWLockHeldByMe(rings->logs.lock);
}

/*
 * Count n records that a backend could not keep (its transaction collected
 * more than the ring holds) as dropped.
 */
void
fp_attribution_telemetry_count_drops(FpSignal signal, uint64 n)
{
	FpRing	   *ring;

	if (rings == NULL || n == 0)
		return;
	ring = ring_of(signal);
	LWLockAcquire(ring->lock, LW_EXCLUSIVE);
	ring->dropped += n;
	LWLockRelease(ring->lock);
}

/* How a signal's records are copied as they are packed */
static FpCopyFn
packed_copier(FpSignal signal)
{
	return signal == FP_SIGNAL_SPANS ? copy_packed_span : copy_packed_log;
}

/*
 * The exporter's claim: move *claimed (the position below which every
 * record was claimed by one of the exporter workers) past the next batch,
 * at most max records, and copy that batch as it is packed in the ring
 * into out, which holds fp_attribution_telemetry_packed_max() bytes per
 * record (read them with the views).  Returns how many were copied; the
 * batch is *start .. *end - 1, of which the *lost first ones had been
 * overwritten (*start = *end: nothing was waiting).  The claim and the
 * copy happen in one shared acquisition of the ring's lock (see Locking).
 */
int
fp_attribution_telemetry_claim_packed(FpSignal signal,
									  pg_atomic_uint64 *claimed, char *out,
									  int max, uint64 *start, uint64 *end,
									  uint64 *lost)
{
	FpRing	   *ring;
	uint64		old;
	int			n;

	fp_attribution_telemetry_require();
	ring = ring_of(signal);
	LWLockAcquire(ring->lock, LW_SHARED);
	old = pg_atomic_read_u64(claimed);
	do
	{
		*start = Max(old, 1);
		*end = Max(Min(*start + max, ring->head), *start);
	} while (*end > *start &&
			 !pg_atomic_compare_exchange_u64(claimed, &old, *end));
	n = ring_copy_range(ring, *start, *end, out, lost, true,
						packed_copier(signal));
	LWLockRelease(ring->lock);
	return n;
}

/*
 * Copy again a batch claimed earlier (start .. end - 1), for a worker that
 * takes over its predecessor's claim; like the claim, it returns how many
 * were copied and in *lost how many of them had been overwritten.
 */
int
fp_attribution_telemetry_copy_packed(FpSignal signal, uint64 start,
									 uint64 end, char *out, uint64 *lost)
{
	FpRing	   *ring;
	int			n;

	fp_attribution_telemetry_require();
	ring = ring_of(signal);
	LWLockAcquire(ring->lock, LW_SHARED);
	n = ring_copy_range(ring, start, end, out, lost, true,
						packed_copier(signal));
	LWLockRelease(ring->lock);
	return n;
}

/* The largest packed record of a signal */
Size
fp_attribution_telemetry_packed_max(FpSignal signal)
{
	return signal == FP_SIGNAL_SPANS ? MAXALIGN(SPAN_PACKED_MAX) :
		MAXALIGN(LOG_PACKED_MAX);
}

/*
 * The exporter polls this to see whether a full batch waits; the lock is
 * shared and held for one read.
 */
uint64
fp_attribution_telemetry_head(FpSignal signal)
{
	FpRing	   *ring;
	uint64		head;

	fp_attribution_telemetry_require();
	ring = ring_of(signal);
	LWLockAcquire(ring->lock, LW_SHARED);
	head = ring->head;
	LWLockRelease(ring->lock);
	return head;
}

/* For the SQL views: copy without marking the records as consumed */
int
fp_attribution_telemetry_peek_spans(uint64 *cursor, FpSpanRecord *out, int max)
{
	fp_attribution_telemetry_require();
	return ring_copy(&rings->spans, cursor, (char *) out, max, NULL, false,
					 unpack_span);
}

int
fp_attribution_telemetry_peek_logs(uint64 *cursor, FpLogRecord *out, int max)
{
	fp_attribution_telemetry_require();
	return ring_copy(&rings->logs, cursor, (char *) out, max, NULL, false,
					 unpack_log);
}

/*
 * Register (or, with NULL, withdraw) the latch of exporter worker number
 * worker, which the backends set when a ring fills up.
 */
void
fp_attribution_telemetry_set_exporter_latch(int worker, Latch *latch)
{
	Assert(worker >= 0 && worker < FP_TELEMETRY_MAX_EXPORTERS);
	fp_attribution_telemetry_require();
	SpinLockAcquire(&rings->mutex);
	rings->exporter_latches[worker] = latch;
	SpinLockRelease(&rings->mutex);
}

/*
 * Exporter worker number worker is about to sleep holding no batch of
 * signal: have the backends wake it as soon as batch records wait to be
 * copied.  Returns true if they already do, and then the worker must not
 * sleep (the backends that pushed them saw no one waiting).
 */
bool
fp_attribution_telemetry_await_batch(FpSignal signal, int worker, int batch)
{
	FpRing	   *ring;
	bool		ready;

	Assert(worker >= 0 && worker < FP_TELEMETRY_MAX_EXPORTERS);
	fp_attribution_telemetry_require();
	ring = ring_of(signal);
	pg_atomic_write_u32(&ring->wake_batch, Max(batch, 1));
	pg_atomic_fetch_or_u32(&ring->waiting, 1 << worker);
	LWLockAcquire(ring->lock, LW_SHARED);
	ready = ring_backlog(ring) >= batch;
	LWLockRelease(ring->lock);
	return ready;
}

/* The worker is awake again: a push need not wake it for this signal */
void
fp_attribution_telemetry_awake(FpSignal signal, int worker)
{
	fp_attribution_telemetry_require();
	pg_atomic_fetch_and_u32(&ring_of(signal)->waiting, ~(1 << worker));
}

/*
 * Wake the other exporter workers: one that claimed a full batch and sees
 * another waiting calls this, so that an idle worker takes it at once.
 */
void
fp_attribution_telemetry_wake_other_exporters(void)
{
	fp_attribution_telemetry_require();
	wake_exporters(MyLatch);
}

/* Records of a signal that the exporter could not deliver */
void
fp_attribution_telemetry_ring_export_drops(FpSignal signal, uint64 n)
{
	fp_attribution_telemetry_require();
	pg_atomic_fetch_add_u64(&ring_of(signal)->export_dropped, n);
}

/*
 * A ring's state for attribution.telemetry_status: capacity, records held,
 * written since reset, dropped, dropped by the exporter.
 */
void
fp_attribution_telemetry_ring_state(FpSignal signal, int64 *out)
{
	FpRing	   *ring;

	fp_attribution_telemetry_require();
	ring = ring_of(signal);
	LWLockAcquire(ring->lock, LW_SHARED);
	out[0] = ring->capacity;
	out[1] = (int64) (ring->head - ring->tail);
	out[2] = (int64) ring->written;
	out[3] = (int64) ring->dropped;
	LWLockRelease(ring->lock);
	out[4] = (int64) pg_atomic_read_u64(&ring->export_dropped);
}

/* Empty a signal's ring and zero its counts */
void
fp_attribution_telemetry_ring_reset(FpSignal signal)
{
	FpRing	   *ring;

	fp_attribution_telemetry_require();
	ring = ring_of(signal);
	LWLockAcquire(ring->lock, LW_EXCLUSIVE);
	ring->tail = ring->head;
	ring->written = ring->dropped = 0;
	pg_atomic_write_u64(&ring->export_dropped, 0);
	LWLockRelease(ring->lock);
}
