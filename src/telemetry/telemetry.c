/*-------------------------------------------------------------------------
 *
 * telemetry.c
 *	  The shared-memory half of the telemetry core: its settings, its
 *	  shared-memory hooks and lock tranche, and the metrics registry (the
 *	  counters and histograms, the capped per-attribute series, the parked
 *	  increments of prepared transactions) with the metrics part of the
 *	  consumer API of telemetry.h.  The span and log rings are in
 *	  telemetry_rings.c.
 *
 * Backends collect a transaction's records in local memory
 * (telemetry_pending.c) and hand them over at transaction end
 * (telemetry_xact.c), with one call per signal.
 *
 * Locking.  One named tranche, "fp_attribution telemetry", holds three
 * LWLocks:
 *
 *	- spans ring lock, logs ring lock: handed to telemetry_rings.c, whose
 *	  header describes their use.
 *	- series lock: guards the key part of the per-attribute series table.
 *	  Incrementing an existing series takes it shared (the value itself is
 *	  an atomic); adding a series takes it exclusively; reset takes it
 *	  exclusively.
 *	- parked lock: guards the parked-metrics slots of prepared
 *	  transactions (see below), taken exclusively to fill or empty a slot
 *	  by a memcpy; nothing else is done under it.
 *
 * Each histogram's exemplar (the latest sampled measurement with its trace
 * and span ids, 48 bytes) is guarded by a spinlock of its own, held only to
 * copy it in or out.
 *
 * The fixed counters and histogram buckets are pg_atomic_uint64 updated
 * with fetch-add and read without a lock: a snapshot may be a few
 * increments inconsistent across series, which cumulative metrics
 * tolerate.  Series values saturate at INT64_MAX (a compare-and-swap
 * loop) rather than wrap: OTLP sums are signed 64-bit integers, and
 * affiliate.revenue.cents can get there.
 *
 * Prepared transactions.  Business metrics count committed work, so the
 * increments of a transaction that PREPARE TRANSACTION parks are kept in
 * a shared slot named by its GID (one slot per max_prepared_transactions)
 * until COMMIT PREPARED, in whatever session, counts them, or ROLLBACK
 * PREPARED drops them.  A slot holds FP_PARKED_MAX_SERIES keyed series;
 * further affiliates or currencies of that one transaction go to their
 * metric's overflow series.  Slots live in shared memory only: a
 * transaction still prepared when the server restarts is never counted.
 * start_time_unix_nano is written by reset only, under the series lock.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/twophase.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "commands/extension.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "fp_attribution/shmem.h"
#include "fp_attribution/telemetry.h"
#include "fp_attribution/telemetry_record.h"
#include "fp_attribution/telemetry_rings.h"

#define TELEMETRY_TRANCHE "fp_attribution telemetry"
#define LOCK_SPANS 0
#define LOCK_LOGS 1
#define LOCK_SERIES 2
#define LOCK_PARKED 3
#define TELEMETRY_LOCKS 4

/* Currencies are validated against ISO 4217, which has fewer codes */
#define MAX_CURRENCY_SERIES 200

/* The fraud rules are a handful (fraud_rules.c) */
#define MAX_RULE_SERIES 16

bool		fp_attribution_telemetry_enabled = true;
int			fp_attribution_max_spans = 2048;
int			fp_attribution_max_logs = 2048;
int			fp_attribution_max_affiliate_series = 1000;
bool		fp_attribution_log_json = false;
bool		fp_attribution_log_client_ip = false;
int			fp_attribution_max_pending_telemetry = 4096;

typedef struct FpHistogram
{
	pg_atomic_uint64 count;
	pg_atomic_uint64 sum;		/* in units of the definition's sum_scale */
	pg_atomic_uint64 buckets[FP_HISTOGRAM_MAX_BOUNDS + 1];
	slock_t		exemplar_lock;
	FpExemplar	exemplar;		/* guarded by exemplar_lock */
} FpHistogram;

/* Metrics whose series carry one string attribute, capped */
typedef enum FpSeriesMetric
{
	SERIES_CLICKS_BY_ID = 1,
	SERIES_REVENUE_BY_CURRENCY,
	SERIES_REFUNDS_BY_CURRENCY,
	SERIES_COMMISSION_BY_CURRENCY,
	SERIES_RULE_HITS,
	SERIES_METRICS = SERIES_RULE_HITS
} FpSeriesMetric;

/* The lifecycle metrics counted without an attribute */
#define LIFECYCLE_COUNTERS (FP_LIFECYCLE_REVERSED + 1)

typedef struct FpSeriesEntry
{
	uint8		metric;			/* FpSeriesMetric; 0 = free */
	char		key[FP_ATTR_VALUE_LEN];
	pg_atomic_uint64 value;
} FpSeriesEntry;

/* Keyed series of one prepared transaction, and their overflow */
#define FP_PARKED_MAX_SERIES 16

typedef struct FpParkedSeries
{
	uint8		metric;			/* FpSeriesMetric */
	char		key[FP_ATTR_VALUE_LEN];
	uint64		n;				/* clicks, or conversions */
	uint64		value;			/* series value: clicks, or revenue cents */
} FpParkedSeries;

/* The business metric increments of one prepared transaction */
typedef struct FpParked
{
	char		gid[GIDSIZE];	/* "" when the slot is free */
	int			n_series;
	FpParkedSeries series[FP_PARKED_MAX_SERIES];
	FpParkedSeries overflow[SERIES_METRICS + 1];	/* key unused */
	uint64		receipts;
	uint64		lifecycle[LIFECYCLE_COUNTERS];
	FpLatencyTally conversion_latency;
} FpParked;

typedef struct FpTelemetryShared
{
	int64		start_time_unix_nano;
	pg_atomic_uint64 clicks_total;
	pg_atomic_uint64 conversions_total;
	pg_atomic_uint64 receipts_total;
	pg_atomic_uint64 lifecycle_total[LIFECYCLE_COUNTERS];
	pg_atomic_uint64 commands_total[FP_COMMAND_KINDS];
	pg_atomic_uint64 commands_errors[FP_COMMAND_KINDS];
	FpHistogram commands_latency[FP_COMMAND_KINDS];
	FpHistogram conversion_latency;
	pg_atomic_uint64 postbacks[FP_POSTBACK_OUTCOMES];	/* postback worker */
	FpHistogram postback_latency;
	pg_atomic_uint64 metrics_export_dropped;
	LWLock	   *parked_lock;
	FpParked   *parked;			/* max_prepared_xacts slots */
	/* per-attribute series: open addressing, linear probing */
	LWLock	   *series_lock;
	int			series_mask;
	int			series_used[SERIES_METRICS + 1];	/* under series_lock */
	pg_atomic_uint64 series_overflow[SERIES_METRICS + 1];
	FpSeriesEntry series[FLEXIBLE_ARRAY_MEMBER];
} FpTelemetryShared;

static FpTelemetryShared *tel = NULL;

/* Where count_* add while a PREPARE parks its increments, else NULL */
static FpParked *parking = NULL;

/* Histogram bucket bounds, in seconds */
static const double command_latency_bounds[] = {
	0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.0075,
	0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};
static const double conversion_latency_bounds[] = {
	1, 10, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600,
	86400, 2 * 86400, 3 * 86400, 7 * 86400, 14 * 86400, 21 * 86400,
	30 * 86400
};

/* Histogram sums are kept as integers: nanoseconds and milliseconds */
#define COMMAND_SUM_SCALE 1e-9
#define CONVERSION_SUM_SCALE 1e-3

static const char *const command_names[FP_COMMAND_KINDS] = {
	"unknown", "track_click", "track_conversion", "approve_conversion",
	"reject_conversion", "reverse_conversion", "refund_conversion"
};

/* The value of fp.command.name for a kind */
const char *
fp_attribution_command_name(FpCommandKind kind)
{
	return command_names[kind];
}

void
fp_attribution_telemetry_define_gucs(void)
{
	DefineCustomBoolVariable("fp_attribution.telemetry",
							 gettext_noop("Records spans, metrics and log records of commands."),
							 NULL,
							 &fp_attribution_telemetry_enabled,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("fp_attribution.log_json",
							 gettext_noop("Also writes each telemetry log record to the server log as one JSON line."),
							 NULL,
							 &fp_attribution_log_json,
							 false,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("fp_attribution.max_pending_telemetry",
							gettext_noop("Memory a transaction may use for its spans and log records until it ends."),
							gettext_noop("Records beyond it are counted as dropped; metrics are always counted."),
							&fp_attribution_max_pending_telemetry,
							4096, 64, MAX_KILOBYTES,
							PGC_SUSET, GUC_UNIT_KB,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("fp_attribution.log_client_ip",
							 gettext_noop("Includes the raw client IP address of a click in its log record."),
							 NULL,
							 &fp_attribution_log_client_ip,
							 false,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	/*
	 * Buffer sizes exist only with shared memory: a restart-only setting
	 * cannot be defined by a library loaded after startup.
	 */
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomIntVariable("fp_attribution.max_spans",
							gettext_noop("Spans kept in shared memory."),
							gettext_noop("When full, the oldest span is overwritten and counted as dropped unless it was exported."),
							&fp_attribution_max_spans,
							2048, 16, 1024 * 1024,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("fp_attribution.max_logs",
							gettext_noop("Log records kept in shared memory."),
							gettext_noop("When full, the oldest record is overwritten and counted as dropped unless it was exported."),
							&fp_attribution_max_logs,
							2048, 16, 1024 * 1024,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("fp_attribution.max_affiliate_series",
							gettext_noop("Distinct affiliate.id series of affiliate.clicks.by_id."),
							gettext_noop("Further affiliates are counted in one series with otel.metric.overflow=true."),
							&fp_attribution_max_affiliate_series,
							1000, 1, 100000,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
}

/* Slots of the series table: a power of two, at most half full */
static int
series_slots(void)
{
	int			want = 2 * (fp_attribution_max_affiliate_series +
							3 * MAX_CURRENCY_SERIES + MAX_RULE_SERIES);
	int			n = 1;

	while (n < want)
		n <<= 1;
	return n;
}

static Size
telemetry_shmem_size(void)
{
	Size		size;

	size = add_size(offsetof(FpTelemetryShared, series),
					mul_size(series_slots(), sizeof(FpSeriesEntry)));
	size = add_size(MAXALIGN(size),
					mul_size(max_prepared_xacts, sizeof(FpParked)));
	return size;
}

/*
 * Reserve our space and locks; called from the shmem request hook.
 */
void
fp_attribution_telemetry_shmem_request(void)
{
	RequestAddinShmemSpace(telemetry_shmem_size());
	RequestAddinShmemSpace(fp_attribution_telemetry_rings_shmem_size());
	RequestNamedLWLockTranche(TELEMETRY_TRANCHE, TELEMETRY_LOCKS);
}

static void
histogram_init(FpHistogram *h)
{
	pg_atomic_init_u64(&h->count, 0);
	pg_atomic_init_u64(&h->sum, 0);
	for (int i = 0; i <= FP_HISTOGRAM_MAX_BOUNDS; i++)
		pg_atomic_init_u64(&h->buckets[i], 0);
	SpinLockInit(&h->exemplar_lock);
	memset(&h->exemplar, 0, sizeof(h->exemplar));
}

/*
 * Create or attach our part of the segment; called from the shmem startup
 * hook with AddinShmemInitLock held.
 */
void
fp_attribution_telemetry_shmem_init(void)
{
	bool		found;
	LWLockPadded *locks = GetNamedLWLockTranche(TELEMETRY_TRANCHE);
	int			nslots = series_slots();

	fp_attribution_telemetry_rings_shmem_init(&locks[LOCK_SPANS].lock,
											  &locks[LOCK_LOGS].lock);

	tel = ShmemInitStruct("fp_attribution telemetry", telemetry_shmem_size(),
						  &found);
	if (found)
		return;

	tel->start_time_unix_nano = fp_attribution_now_unix_nano();
	pg_atomic_init_u64(&tel->clicks_total, 0);
	pg_atomic_init_u64(&tel->conversions_total, 0);
	pg_atomic_init_u64(&tel->receipts_total, 0);
	for (int m = 0; m < LIFECYCLE_COUNTERS; m++)
		pg_atomic_init_u64(&tel->lifecycle_total[m], 0);
	for (int k = 0; k < FP_COMMAND_KINDS; k++)
	{
		pg_atomic_init_u64(&tel->commands_total[k], 0);
		pg_atomic_init_u64(&tel->commands_errors[k], 0);
		histogram_init(&tel->commands_latency[k]);
	}
	histogram_init(&tel->conversion_latency);
	for (int o = 0; o < FP_POSTBACK_OUTCOMES; o++)
		pg_atomic_init_u64(&tel->postbacks[o], 0);
	histogram_init(&tel->postback_latency);
	pg_atomic_init_u64(&tel->metrics_export_dropped, 0);
	tel->parked_lock = &locks[LOCK_PARKED].lock;
	tel->parked = (FpParked *)
		((char *) tel + MAXALIGN(offsetof(FpTelemetryShared, series) +
								 nslots * sizeof(FpSeriesEntry)));
	for (int i = 0; i < max_prepared_xacts; i++)
		tel->parked[i].gid[0] = '\0';
	tel->series_lock = &locks[LOCK_SERIES].lock;
	tel->series_mask = nslots - 1;
	for (int m = 0; m <= SERIES_METRICS; m++)
	{
		tel->series_used[m] = 0;
		pg_atomic_init_u64(&tel->series_overflow[m], 0);
	}
	for (int i = 0; i < nslots; i++)
	{
		tel->series[i].metric = 0;
		pg_atomic_init_u64(&tel->series[i].value, 0);
	}
}

bool
fp_attribution_telemetry_available(void)
{
	return tel != NULL;
}

/* The standard error for consumers when the library was not preloaded */
void
fp_attribution_telemetry_require(void)
{
	if (tel == NULL)
		fp_attribution_require_shmem();
	if (tel == NULL)
		elog(ERROR, "fp_attribution telemetry shared memory is missing");
}

/*
 * Buffer state for attribution.telemetry_status: per signal capacity,
 * records held, written since reset, dropped, dropped by the exporter.
 */
void
fp_attribution_telemetry_buffer_state(FpSignal signal, int64 *out)
{
	fp_attribution_telemetry_require();
	if (signal == FP_SIGNAL_METRICS)
	{
		LWLockAcquire(tel->series_lock, LW_SHARED);
		out[0] = fp_attribution_max_affiliate_series;
		out[1] = tel->series_used[SERIES_CLICKS_BY_ID];
		LWLockRelease(tel->series_lock);
		out[2] = (int64) pg_atomic_read_u64(&tel->series_overflow[SERIES_CLICKS_BY_ID]);
		out[3] = (int64) pg_atomic_read_u64(&tel->metrics_export_dropped);
		return;
	}
	fp_attribution_telemetry_ring_state(signal, out);
}

/* Records of a signal that the exporter could not deliver */
void
fp_attribution_telemetry_count_export_drops(FpSignal signal, uint64 n)
{
	fp_attribution_telemetry_require();
	if (signal == FP_SIGNAL_METRICS)
		pg_atomic_fetch_add_u64(&tel->metrics_export_dropped, n);
	else
		fp_attribution_telemetry_ring_export_drops(signal, n);
}

static void
histogram_reset(FpHistogram *h)
{
	pg_atomic_write_u64(&h->count, 0);
	pg_atomic_write_u64(&h->sum, 0);
	for (int i = 0; i <= FP_HISTOGRAM_MAX_BOUNDS; i++)
		pg_atomic_write_u64(&h->buckets[i], 0);
	SpinLockAcquire(&h->exemplar_lock);
	memset(&h->exemplar, 0, sizeof(h->exemplar));
	SpinLockRelease(&h->exemplar_lock);
}

/*
 * Empty one signal's buffer (spans, logs) or zero the metrics, forget
 * their series and restart their start time.
 */
void
fp_attribution_telemetry_reset(FpSignal signal)
{
	fp_attribution_telemetry_require();
	if (signal != FP_SIGNAL_METRICS)
		fp_attribution_telemetry_ring_reset(signal);
	else
	{
		LWLockAcquire(tel->series_lock, LW_EXCLUSIVE);
		for (int i = 0; i <= tel->series_mask; i++)
		{
			tel->series[i].metric = 0;
			pg_atomic_write_u64(&tel->series[i].value, 0);
		}
		for (int m = 0; m <= SERIES_METRICS; m++)
		{
			tel->series_used[m] = 0;
			pg_atomic_write_u64(&tel->series_overflow[m], 0);
		}
		pg_atomic_write_u64(&tel->clicks_total, 0);
		pg_atomic_write_u64(&tel->conversions_total, 0);
		pg_atomic_write_u64(&tel->receipts_total, 0);
		for (int m = 0; m < LIFECYCLE_COUNTERS; m++)
			pg_atomic_write_u64(&tel->lifecycle_total[m], 0);
		for (int k = 0; k < FP_COMMAND_KINDS; k++)
		{
			pg_atomic_write_u64(&tel->commands_total[k], 0);
			pg_atomic_write_u64(&tel->commands_errors[k], 0);
			histogram_reset(&tel->commands_latency[k]);
		}
		histogram_reset(&tel->conversion_latency);
		for (int o = 0; o < FP_POSTBACK_OUTCOMES; o++)
			pg_atomic_write_u64(&tel->postbacks[o], 0);
		histogram_reset(&tel->postback_latency);
		pg_atomic_write_u64(&tel->metrics_export_dropped, 0);
		tel->start_time_unix_nano = fp_attribution_now_unix_nano();
		LWLockRelease(tel->series_lock);
	}
}

/*----------
 * Recording metrics
 *----------
 */

/* *v += delta, stopping at INT64_MAX (delta is at most that) */
static void
add_saturating(pg_atomic_uint64 *v, uint64 delta)
{
	uint64		old = pg_atomic_read_u64(v);
	uint64		sum;

	do
	{
		sum = old > (uint64) PG_INT64_MAX - delta ? (uint64) PG_INT64_MAX :
			old + delta;
	} while (!pg_atomic_compare_exchange_u64(v, &old, sum));
}

/*
 * Add delta to the series of metric with attribute value key.  A new key
 * beyond the metric's cap goes to its overflow series.
 */
static void
series_add(FpSeriesMetric metric, const char *key, int cap, uint64 delta)
{
	char		buf[FP_ATTR_VALUE_LEN];
	const char *k = key;
	Size		len = strnlen(key, FP_ATTR_VALUE_LEN);
	uint32		h;
	int			i;

	/* a key too long for a slot is truncated, as the attribute would be */
	if (len == FP_ATTR_VALUE_LEN)
	{
		fp_attribution_copy_utf8(buf, key, sizeof(buf));
		k = buf;
		len = strlen(buf);
	}
	h = hash_bytes((const unsigned char *) k, len) ^ metric;

	LWLockAcquire(tel->series_lock, LW_SHARED);
	for (i = h & tel->series_mask; tel->series[i].metric != 0;
		 i = (i + 1) & tel->series_mask)
	{
		if (tel->series[i].metric == metric && memcmp(tel->series[i].key, k, len + 1) == 0)
		{
			add_saturating(&tel->series[i].value, delta);
			LWLockRelease(tel->series_lock);
			return;
		}
	}
	LWLockRelease(tel->series_lock);

	/* Not there: add it, unless another backend did meanwhile */
	LWLockAcquire(tel->series_lock, LW_EXCLUSIVE);
	for (i = h & tel->series_mask; tel->series[i].metric != 0;
		 i = (i + 1) & tel->series_mask)
	{
		if (tel->series[i].metric == metric && memcmp(tel->series[i].key, k, len + 1) == 0)
			break;
	}
	if (tel->series[i].metric == 0)
	{
		if (tel->series_used[metric] >= cap)
		{
			add_saturating(&tel->series_overflow[metric], delta);
			LWLockRelease(tel->series_lock);
			return;
		}
		memcpy(tel->series[i].key, k, len + 1);
		tel->series[i].metric = metric;
		tel->series_used[metric]++;
	}
	add_saturating(&tel->series[i].value, delta);
	LWLockRelease(tel->series_lock);
}

/* Add the histogram samples tallied by a backend */
static void
histogram_add(FpHistogram *h, const FpLatencyTally *t)
{
	if (t->count == 0)
		return;
	for (int i = 0; i <= FP_HISTOGRAM_MAX_BOUNDS; i++)
		if (t->buckets[i] != 0)
			pg_atomic_fetch_add_u64(&h->buckets[i], t->buckets[i]);
	pg_atomic_fetch_add_u64(&h->count, t->count);
	pg_atomic_fetch_add_u64(&h->sum, t->sum);
	if (t->exemplar.time_unix_nano != 0)
	{
		SpinLockAcquire(&h->exemplar_lock);
		if (t->exemplar.time_unix_nano >= h->exemplar.time_unix_nano)
			h->exemplar = t->exemplar;
		SpinLockRelease(&h->exemplar_lock);
	}
}

/* Tally one sample of value (sum_units in the histogram's sum units) */
static void
tally_record(FpLatencyTally *t, const double *bounds, int n_bounds,
			 double value, uint64 sum_units)
{
	int			i = 0;

	while (i < n_bounds && value > bounds[i])
		i++;
	t->buckets[i]++;
	t->count++;
	t->sum += sum_units;
}

/* A command's duration; a negative one (it cannot be) counts as 0 */
void
fp_attribution_telemetry_tally_command(FpLatencyTally *t, int64 duration_ns)
{
	duration_ns = Max(duration_ns, 0);
	tally_record(t, command_latency_bounds, lengthof(command_latency_bounds),
				 duration_ns * COMMAND_SUM_SCALE, (uint64) duration_ns);
}

/*
 * Offer a tallied measurement of a recorded span as its histogram's
 * exemplar: the latest one wins, here and in shared memory.
 */
void
fp_attribution_telemetry_tally_exemplar(FpLatencyTally *t, int64 time_unix_nano,
										double seconds,
										const FpTraceId *trace_id,
										const FpSpanId *span_id)
{
	if (time_unix_nano < t->exemplar.time_unix_nano)
		return;
	t->exemplar.time_unix_nano = time_unix_nano;
	t->exemplar.value = seconds;
	t->exemplar.trace_id = *trace_id;
	t->exemplar.span_id = *span_id;
}

void
fp_attribution_telemetry_tally_conversion(FpLatencyTally *t, int64 latency_ms)
{
	latency_ms = Max(latency_ms, 0);
	tally_record(t, conversion_latency_bounds,
				 lengthof(conversion_latency_bounds),
				 latency_ms * CONVERSION_SUM_SCALE, (uint64) latency_ms);
}

void
fp_attribution_telemetry_count_commands(FpCommandKind kind,
										const FpLatencyTally *latency,
										bool failed)
{
	if (tel == NULL || latency->count == 0)
		return;
	pg_atomic_fetch_add_u64(&tel->commands_total[kind], latency->count);
	if (failed)
		pg_atomic_fetch_add_u64(&tel->commands_errors[kind], latency->count);
	histogram_add(&tel->commands_latency[kind], latency);
}

/*
 * Add n to the series of metric with attribute value key, or to its
 * overflow series when key is NULL.
 */
static void
series_count(FpSeriesMetric metric, const char *key, int cap, uint64 n)
{
	if (key != NULL)
		series_add(metric, key, cap, n);
	else
		add_saturating(&tel->series_overflow[metric], n);
}

/*
 * While a PREPARE parks its increments: the parked series of metric with
 * key (NULL: the overflow series), added if need be; past
 * FP_PARKED_MAX_SERIES a new key goes to the overflow series.
 */
static FpParkedSeries *
parked_series(FpSeriesMetric metric, const char *key)
{
	FpParkedSeries *s;

	if (key != NULL)
	{
		for (int i = 0; i < parking->n_series; i++)
			if (parking->series[i].metric == metric &&
				strcmp(parking->series[i].key, key) == 0)
				return &parking->series[i];
		if (parking->n_series < FP_PARKED_MAX_SERIES)
		{
			s = &parking->series[parking->n_series++];
			s->metric = metric;
			fp_attribution_copy_utf8(s->key, key, sizeof(s->key));
			s->n = s->value = 0;
			return s;
		}
	}
	return &parking->overflow[metric];
}

/* a + b, stopping at INT64_MAX (both are at most that) */
static uint64
sum_saturating(uint64 a, uint64 b)
{
	return a > (uint64) PG_INT64_MAX - b ? (uint64) PG_INT64_MAX : a + b;
}

void
fp_attribution_telemetry_count_clicks(const char *affiliate_id, uint64 n)
{
	FpParkedSeries *s;

	if (tel == NULL)
		return;
	if (parking != NULL)
	{
		s = parked_series(SERIES_CLICKS_BY_ID, affiliate_id);
		s->n += n;
		s->value += n;
		return;
	}
	pg_atomic_fetch_add_u64(&tel->clicks_total, n);
	series_count(SERIES_CLICKS_BY_ID, affiliate_id,
				 fp_attribution_max_affiliate_series, n);
}

/* revenue_cents is at least 0 (the conversions table checks it) */
void
fp_attribution_telemetry_count_conversions(const char *currency, uint64 n,
										   int64 revenue_cents,
										   const FpLatencyTally *latency)
{
	FpParkedSeries *s;
	uint64		revenue = (uint64) Max(revenue_cents, 0);

	if (tel == NULL)
		return;
	if (parking != NULL)
	{
		s = parked_series(SERIES_REVENUE_BY_CURRENCY, currency);
		s->n += n;
		s->value = sum_saturating(s->value, revenue);
		fp_attribution_telemetry_merge_tally(&parking->conversion_latency,
											 latency);
		return;
	}
	pg_atomic_fetch_add_u64(&tel->conversions_total, n);
	series_count(SERIES_REVENUE_BY_CURRENCY, currency, MAX_CURRENCY_SERIES,
				 revenue);
	histogram_add(&tel->conversion_latency, latency);
}

/*
 * One postback attempt (the postback worker): its outcome and, for an
 * attempt that got an answer or timed out, its duration.
 */
void
fp_attribution_telemetry_count_postback(FpPostbackMetric outcome,
										double latency_ms)
{
	FpLatencyTally t;

	if (tel == NULL)
		return;
	pg_atomic_fetch_add_u64(&tel->postbacks[outcome], 1);
	memset(&t, 0, sizeof(t));
	latency_ms = Max(latency_ms, 0);
	tally_record(&t, command_latency_bounds, lengthof(command_latency_bounds),
				 latency_ms / 1000.0, (uint64) (latency_ms * 1000000.0));
	histogram_add(&tel->postback_latency, &t);
}

void
fp_attribution_telemetry_count_receipts(uint64 n)
{
	if (tel == NULL)
		return;
	if (parking != NULL)
		parking->receipts += n;
	else
		pg_atomic_fetch_add_u64(&tel->receipts_total, n);
}

/* The series metric of a lifecycle metric kept per attribute value */
static FpSeriesMetric
lifecycle_series(FpLifecycleMetric metric)
{
	return metric == FP_LIFECYCLE_REFUNDS_CENTS ? SERIES_REFUNDS_BY_CURRENCY :
		metric == FP_LIFECYCLE_COMMISSION_CENTS ? SERIES_COMMISSION_BY_CURRENCY :
		SERIES_RULE_HITS;
}

/* The cap on the series of a series metric */
static int
series_cap(FpSeriesMetric metric)
{
	return metric == SERIES_CLICKS_BY_ID ? fp_attribution_max_affiliate_series :
		metric == SERIES_RULE_HITS ? MAX_RULE_SERIES : MAX_CURRENCY_SERIES;
}

/*
 * Add value to a lifecycle metric: a counter (key unused), or the series
 * of key (a currency, a rule; NULL: the overflow series).
 */
void
fp_attribution_telemetry_count_lifecycle(FpLifecycleMetric metric,
										 const char *key, uint64 value)
{
	FpSeriesMetric series;
	FpParkedSeries *s;

	if (tel == NULL)
		return;
	if (metric < LIFECYCLE_COUNTERS)
	{
		if (parking != NULL)
			parking->lifecycle[metric] += value;
		else
			pg_atomic_fetch_add_u64(&tel->lifecycle_total[metric], value);
		return;
	}
	series = lifecycle_series(metric);
	if (parking != NULL)
	{
		s = parked_series(series, key);
		s->n++;
		s->value = sum_saturating(s->value, value);
		return;
	}
	series_count(series, key, series_cap(series), value);
}

/* dst += src, for latency tallies */
void
fp_attribution_telemetry_merge_tally(FpLatencyTally *dst,
									 const FpLatencyTally *src)
{
	dst->count += src->count;
	dst->sum += src->sum;
	for (int i = 0; i <= FP_HISTOGRAM_MAX_BOUNDS; i++)
		dst->buckets[i] += src->buckets[i];
	if (src->exemplar.time_unix_nano > dst->exemplar.time_unix_nano)
		dst->exemplar = src->exemplar;
}

/*----------
 * Prepared transactions (see the file banner)
 *----------
 */

static FpParked parked_local;

/* Count a parked series (key NULL: the overflow series) */
static void
count_parked(FpSeriesMetric metric, const char *key, const FpParkedSeries *s)
{
	if (s->n == 0)
		return;
	if (metric == SERIES_CLICKS_BY_ID)
		pg_atomic_fetch_add_u64(&tel->clicks_total, s->n);
	else if (metric == SERIES_REVENUE_BY_CURRENCY)
		pg_atomic_fetch_add_u64(&tel->conversions_total, s->n);
	series_count(metric, key, series_cap(metric), s->value);
}

/*
 * Until fp_attribution_telemetry_park_end(), the count_* functions of the
 * business metrics add to the increments parked for prepared transaction
 * gid instead of counting them.  Allocates nothing.
 */
void
fp_attribution_telemetry_park_begin(const char *gid)
{
	memset(&parked_local, 0, sizeof(parked_local));
	strlcpy(parked_local.gid, gid, sizeof(parked_local.gid));
	parking = &parked_local;
}

/*
 * Keep the increments parked since fp_attribution_telemetry_park_begin()
 * in a free shared slot.  There is always one (a slot per prepared
 * transaction there can be), short of a GID prepared twice, which PREPARE
 * refuses.  Called in the PREPARE callback: no allocation, no error.
 */
void
fp_attribution_telemetry_park_end(void)
{
	parking = NULL;
	if (tel == NULL || parked_local.gid[0] == '\0')
		return;
	LWLockAcquire(tel->parked_lock, LW_EXCLUSIVE);
	for (int i = 0; i < max_prepared_xacts; i++)
	{
		if (tel->parked[i].gid[0] == '\0')
		{
			memcpy(&tel->parked[i], &parked_local, sizeof(FpParked));
			break;
		}
	}
	LWLockRelease(tel->parked_lock);
}

/*
 * COMMIT PREPARED gid (commit) or ROLLBACK PREPARED gid finished: count
 * the increments parked for it, or drop them.
 */
void
fp_attribution_telemetry_finish_prepared(const char *gid, bool commit)
{
	bool		found = false;

	if (tel == NULL)
		return;
	LWLockAcquire(tel->parked_lock, LW_EXCLUSIVE);
	for (int i = 0; i < max_prepared_xacts && !found; i++)
	{
		if (strcmp(tel->parked[i].gid, gid) == 0)
		{
			memcpy(&parked_local, &tel->parked[i], sizeof(FpParked));
			tel->parked[i].gid[0] = '\0';
			found = true;
		}
	}
	LWLockRelease(tel->parked_lock);
	if (!found || !commit)
		return;

	for (int i = 0; i < parked_local.n_series; i++)
		count_parked(parked_local.series[i].metric, parked_local.series[i].key,
					 &parked_local.series[i]);
	for (int m = SERIES_CLICKS_BY_ID; m <= SERIES_METRICS; m++)
		count_parked(m, NULL, &parked_local.overflow[m]);
	histogram_add(&tel->conversion_latency, &parked_local.conversion_latency);
	pg_atomic_fetch_add_u64(&tel->receipts_total, parked_local.receipts);
	for (int m = 0; m < LIFECYCLE_COUNTERS; m++)
		pg_atomic_fetch_add_u64(&tel->lifecycle_total[m],
								parked_local.lifecycle[m]);
}

/*----------
 * Reading metrics
 *----------
 */

/* Static description of each metric */
typedef struct FpMetricDef
{
	const char *name;
	const char *description;
	const char *unit;
	FpMetricKind kind;
	bool		monotonic;
} FpMetricDef;

enum
{
	DEF_CLICKS_TOTAL,
	DEF_CLICKS_BY_ID,
	DEF_CONVERSIONS_TOTAL,
	DEF_REVENUE_CENTS,
	DEF_CONVERSION_LATENCY,
	DEF_WINDOWS_ACTIVE,
	DEF_COMMANDS_TOTAL,
	DEF_COMMANDS_LATENCY,
	DEF_COMMANDS_ERRORS,
	DEF_RECEIPTS_TOTAL,
	DEF_VERIFICATIONS_SUCCESS,
	DEF_VERIFICATIONS_FAILED,
	DEF_POSTBACKS_SENT,
	DEF_POSTBACKS_FAILED,
	DEF_POSTBACKS_RETRIED,
	DEF_POSTBACKS_LATENCY,
	DEF_CONVERSIONS_APPROVED,	/* in FpLifecycleMetric order */
	DEF_CONVERSIONS_REJECTED,
	DEF_CONVERSIONS_REVERSED,
	DEF_REFUNDS_CENTS,
	DEF_COMMISSION_CENTS,
	DEF_RULE_HITS
};

static const FpMetricDef metric_defs[] = {
	{"affiliate.clicks.total", "Committed clicks.", "{click}", FP_METRIC_SUM, true},
	{"affiliate.clicks.by_id", "Committed clicks per affiliate.", "{click}", FP_METRIC_SUM, true},
	{"affiliate.conversions.total", "Committed conversions, attributed or not.", "{conversion}", FP_METRIC_SUM, true},
	{"affiliate.revenue.cents", "Revenue of committed conversions in minor currency units, per currency.", "{cent}", FP_METRIC_SUM, true},
	{"affiliate.conversion.latency", "Time from click to attributed conversion.", "s", FP_METRIC_HISTOGRAM, false},
	{"affiliate.windows.active", "Clicks whose attribution window is open and that have not converted.", "{click}", FP_METRIC_GAUGE, false},
	{"commands.total", "Commands that ended, committed or failed.", "{command}", FP_METRIC_SUM, true},
	{"commands.latency", "Command duration.", "s", FP_METRIC_HISTOGRAM, false},
	{"commands.errors", "Commands that failed or were rolled back.", "{command}", FP_METRIC_SUM, true},
	{"receipts.total", "Committed receipts.", "{receipt}", FP_METRIC_SUM, true},
	{"receipts.verifications.success", "Receipt verifications that succeeded.", "{verification}", FP_METRIC_SUM, true},
	{"receipts.verifications.failed", "Receipt verifications that failed.", "{verification}", FP_METRIC_SUM, true},
	{"postbacks.sent", "Postbacks delivered (2xx answer).", "{postback}", FP_METRIC_SUM, true},
	{"postbacks.failed", "Postbacks given up.", "{postback}", FP_METRIC_SUM, true},
	{"postbacks.retried", "Postback attempts that failed and will be retried.", "{attempt}", FP_METRIC_SUM, true},
	{"postbacks.latency", "Duration of a postback attempt.", "s", FP_METRIC_HISTOGRAM, false},
	{"affiliate.conversions.approved", "Conversions approved by a committed command.", "{conversion}", FP_METRIC_SUM, true},
	{"affiliate.conversions.rejected", "Conversions rejected by a committed command.", "{conversion}", FP_METRIC_SUM, true},
	{"affiliate.conversions.reversed", "Conversions reversed by a committed command or a full refund.", "{conversion}", FP_METRIC_SUM, true},
	{"affiliate.refunds.cents", "Refunded revenue in minor currency units, per currency.", "{cent}", FP_METRIC_SUM, true},
	{"affiliate.commission.cents", "Commission earned by committed conversions in minor currency units, per currency.", "{cent}", FP_METRIC_SUM, true},
	{"affiliate.fraud_rule.hits", "New conversions held pending by a fraud rule, per rule.", "{conversion}", FP_METRIC_SUM, true},
};

static FpMetricPoint *
new_point(FpMetricPoint *out, int *n, int max, int def, int64 now)
{
	FpMetricPoint *p;
	const FpMetricDef *d = &metric_defs[def];

	if (*n >= max)
		return NULL;
	p = &out[(*n)++];
	memset(p, 0, offsetof(FpMetricPoint, explicit_bounds));
	strlcpy(p->name, d->name, sizeof(p->name));
	strlcpy(p->description, d->description, sizeof(p->description));
	strlcpy(p->unit, d->unit, sizeof(p->unit));
	p->kind = d->kind;
	p->is_monotonic = d->monotonic;
	p->temporality = FP_TEMPORALITY_CUMULATIVE;
	p->start_time_unix_nano = tel->start_time_unix_nano;
	p->time_unix_nano = now;
	return p;
}

static FpMetricPoint *
counter_point(FpMetricPoint *out, int *n, int max, int def, int64 now,
			  uint64 value, const char *attr_key, const char *attr_value)
{
	FpMetricPoint *p = new_point(out, n, max, def, now);

	if (p == NULL)
		return NULL;
	p->value_int = (int64) value;
	if (attr_key != NULL)
	{
		p->n_attrs = 1;
		strlcpy(p->attrs[0].key, attr_key, FP_ATTR_KEY_LEN);
		fp_attribution_attr_utf8(&p->attrs[0], attr_value);
	}
	return p;
}

static void
overflow_point(FpMetricPoint *out, int *n, int max, int def, int64 now,
			   uint64 value)
{
	FpMetricPoint *p = new_point(out, n, max, def, now);

	if (p == NULL)
		return;
	p->value_int = (int64) value;
	p->n_attrs = 1;
	strlcpy(p->attrs[0].key, "otel.metric.overflow", FP_ATTR_KEY_LEN);
	fp_attribution_attr_bool(&p->attrs[0], true);
}

static void
histogram_point(FpMetricPoint *out, int *n, int max, int def, int64 now,
				FpHistogram *h, const double *bounds, int n_bounds,
				double sum_scale, const char *command)
{
	FpMetricPoint *p = new_point(out, n, max, def, now);

	if (p == NULL)
		return;
	p->n_bounds = n_bounds;
	memcpy(p->explicit_bounds, bounds, n_bounds * sizeof(double));
	for (int i = 0; i <= n_bounds; i++)
		p->bucket_counts[i] = pg_atomic_read_u64(&h->buckets[i]);
	p->count = pg_atomic_read_u64(&h->count);
	p->sum = pg_atomic_read_u64(&h->sum) * sum_scale;
	SpinLockAcquire(&h->exemplar_lock);
	p->exemplar = h->exemplar;
	SpinLockRelease(&h->exemplar_lock);
	if (command != NULL)
	{
		p->n_attrs = 1;
		strlcpy(p->attrs[0].key, "fp.command.name", FP_ATTR_KEY_LEN);
		fp_attribution_attr_utf8(&p->attrs[0], command);
	}
}

/*
 * The points of the series of series metric m, then its overflow series.
 * Caller holds the series lock.
 */
static void
series_points(FpMetricPoint *out, int *n, int max, FpSeriesMetric m, int64 now)
{
	static const struct
	{
		int			def;
		const char *key;
	}			series_defs[SERIES_METRICS + 1] = {
		[SERIES_CLICKS_BY_ID] = {DEF_CLICKS_BY_ID, "affiliate.id"},
		[SERIES_REVENUE_BY_CURRENCY] = {DEF_REVENUE_CENTS, "currency"},
		[SERIES_REFUNDS_BY_CURRENCY] = {DEF_REFUNDS_CENTS, "currency"},
		[SERIES_COMMISSION_BY_CURRENCY] = {DEF_COMMISSION_CENTS, "currency"},
		[SERIES_RULE_HITS] = {DEF_RULE_HITS, "fp.rule"},
	};
	int			def = series_defs[m].def;
	uint64		overflow = pg_atomic_read_u64(&tel->series_overflow[m]);

	for (int i = 0; i <= tel->series_mask; i++)
		if (tel->series[i].metric == m)
			counter_point(out, n, max, def, now,
						  pg_atomic_read_u64(&tel->series[i].value),
						  series_defs[m].key, tel->series[i].key);
	if (overflow > 0)
		overflow_point(out, n, max, def, now, overflow);
}

int
fp_attribution_telemetry_max_metric_points(void)
{
	fp_attribution_telemetry_require();
	return 20 + LIFECYCLE_COUNTERS + 4 * FP_COMMAND_KINDS +
		fp_attribution_max_affiliate_series +
		3 * MAX_CURRENCY_SERIES + 2 * MAX_RULE_SERIES;
}

/*
 * Snapshot every metric kept in shared memory (all but the
 * affiliate.windows.active gauge) into out; returns the number of points.
 * Series of one metric are adjacent.
 */
int
fp_attribution_telemetry_collect_metrics(FpMetricPoint *out, int max)
{
	int			n = 0;
	int64		now = fp_attribution_now_unix_nano();
	FpAttributionCounters *counters;
	FpMetricPoint *p;

	fp_attribution_telemetry_require();
	counters = &fp_attribution_shared->counters;
	counter_point(out, &n, max, DEF_CLICKS_TOTAL, now,
				  pg_atomic_read_u64(&tel->clicks_total), NULL, NULL);

	/* the series table, one metric at a time, then its overflow series */
	LWLockAcquire(tel->series_lock, LW_SHARED);
	for (int m = SERIES_CLICKS_BY_ID; m <= SERIES_REVENUE_BY_CURRENCY; m++)
	{
		if (m == SERIES_REVENUE_BY_CURRENCY)
			counter_point(out, &n, max, DEF_CONVERSIONS_TOTAL, now,
						  pg_atomic_read_u64(&tel->conversions_total), NULL, NULL);
		series_points(out, &n, max, m, now);
	}
	LWLockRelease(tel->series_lock);

	histogram_point(out, &n, max, DEF_CONVERSION_LATENCY, now,
					&tel->conversion_latency, conversion_latency_bounds,
					lengthof(conversion_latency_bounds), CONVERSION_SUM_SCALE,
					NULL);
	/* commands of unknown kind are never counted (telemetry_xact.c) */
	for (int k = FP_COMMAND_TRACK_CLICK; k < FP_COMMAND_KINDS; k++)
		counter_point(out, &n, max, DEF_COMMANDS_TOTAL, now,
					  pg_atomic_read_u64(&tel->commands_total[k]),
					  "fp.command.name", command_names[k]);
	for (int k = FP_COMMAND_TRACK_CLICK; k < FP_COMMAND_KINDS; k++)
		histogram_point(out, &n, max, DEF_COMMANDS_LATENCY, now,
						&tel->commands_latency[k], command_latency_bounds,
						lengthof(command_latency_bounds), COMMAND_SUM_SCALE,
						command_names[k]);
	for (int k = FP_COMMAND_TRACK_CLICK; k < FP_COMMAND_KINDS; k++)
		counter_point(out, &n, max, DEF_COMMANDS_ERRORS, now,
					  pg_atomic_read_u64(&tel->commands_errors[k]),
					  "fp.command.name", command_names[k]);
	counter_point(out, &n, max, DEF_RECEIPTS_TOTAL, now,
				  pg_atomic_read_u64(&tel->receipts_total), NULL, NULL);

	/*
	 * Verifications are counted by verify.c in the shared counters, which
	 * attribution.reset_telemetry_status() resets: their start time is that
	 * reset's.
	 */
	p = counter_point(out, &n, max, DEF_VERIFICATIONS_SUCCESS, now,
					  pg_atomic_read_u64(&counters->verifications_success),
					  NULL, NULL);
	if (p != NULL)
		p->start_time_unix_nano = fp_attribution_timestamptz_to_unix_nano(counters->reset_time);
	p = counter_point(out, &n, max, DEF_VERIFICATIONS_FAILED, now,
					  pg_atomic_read_u64(&counters->verifications_failed),
					  NULL, NULL);
	if (p != NULL)
		p->start_time_unix_nano = fp_attribution_timestamptz_to_unix_nano(counters->reset_time);
	counter_point(out, &n, max, DEF_POSTBACKS_SENT, now,
				  pg_atomic_read_u64(&tel->postbacks[FP_POSTBACK_METRIC_SENT]),
				  NULL, NULL);
	counter_point(out, &n, max, DEF_POSTBACKS_FAILED, now,
				  pg_atomic_read_u64(&tel->postbacks[FP_POSTBACK_METRIC_FAILED]),
				  NULL, NULL);
	counter_point(out, &n, max, DEF_POSTBACKS_RETRIED, now,
				  pg_atomic_read_u64(&tel->postbacks[FP_POSTBACK_METRIC_RETRIED]),
				  NULL, NULL);
	histogram_point(out, &n, max, DEF_POSTBACKS_LATENCY, now,
					&tel->postback_latency, command_latency_bounds,
					lengthof(command_latency_bounds), COMMAND_SUM_SCALE, NULL);

	/* the conversion lifecycle */
	for (int m = 0; m < LIFECYCLE_COUNTERS; m++)
		counter_point(out, &n, max, DEF_CONVERSIONS_APPROVED + m, now,
					  pg_atomic_read_u64(&tel->lifecycle_total[m]), NULL, NULL);
	LWLockAcquire(tel->series_lock, LW_SHARED);
	for (int m = SERIES_REFUNDS_BY_CURRENCY; m <= SERIES_RULE_HITS; m++)
		series_points(out, &n, max, m, now);
	LWLockRelease(tel->series_lock);
	return n;
}

/*
 * The affiliate.windows.active gauge, by running attribution.windows_active()
 * (an index range scan).  Needs an open transaction; false when the
 * extension is not installed in the current database.  The worker runs
 * this as a superuser, so the schema must be the extension's own: a
 * schema "attribution" that anyone else created is never looked into.
 */
bool
fp_attribution_telemetry_windows_active_point(FpMetricPoint *out)
{
	int			n = 0;
	bool		isnull;
	Datum		value;
	Oid			extoid;
	Oid			nspoid;

	fp_attribution_telemetry_require();
	extoid = get_extension_oid("fp_attribution", true);
	nspoid = get_namespace_oid("attribution", true);
	if (!OidIsValid(extoid) || !OidIsValid(nspoid) ||
		getExtensionOfObject(NamespaceRelationId, nspoid) != extoid)
		return false;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT attribution.windows_active()", true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not compute attribution.windows_active()");
	value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
						  &isnull);
	new_point(out, &n, 1, DEF_WINDOWS_ACTIVE, fp_attribution_now_unix_nano());
	out->value_int = isnull ? 0 : DatumGetInt64(value);
	SPI_finish();
	return true;
}
