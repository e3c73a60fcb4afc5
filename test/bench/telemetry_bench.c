/*-------------------------------------------------------------------------
 *
 * telemetry_bench.c
 *	  Micro-benchmark of the telemetry core's recording paths, built as a
 *	  separate module (never installed) that calls into the preloaded
 *	  fp_attribution library.  See test/bench/telemetry_micro.sh.
 *
 * Each function records n items exactly as telemetry_xact.c does at
 * commit and returns the mean cost of one, in nanoseconds:
 *
 *	span	fill a DB-operation span (ids, times, six attributes) and hand
 *			it to the span ring (lock, copy, unlock)
 *	counter one counter increment (receipts.total)
 *	histogram a command: commands.total and the commands.latency histogram
 *	series	a click: affiliate.clicks.total and the capped per-affiliate series
 *	log		fill a log record (body, ids, three attributes) and hand it to
 *			the log ring
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "fmgr.h"
#include "utils/builtins.h"

#include "fp_attribution/telemetry_record.h"

PG_MODULE_MAGIC;

static void
bench_span(FpSpanRecord *span)
{
	fp_attribution_span_init(span, "INSERT attribution.clicks", FP_SPAN_KIND_INTERNAL);
	memset(&span->trace_id, 0x11, sizeof(span->trace_id));
	memset(&span->parent_span_id, 0x22, sizeof(span->parent_span_id));
	fp_attribution_new_span_id(&span->span_id);
	span->start_time_unix_nano = fp_attribution_now_unix_nano();
	fp_attribution_attr_str(fp_attribution_span_attr(span, "db.system.name"), "postgresql");
	fp_attribution_attr_str(fp_attribution_span_attr(span, "db.namespace"), "postgres");
	fp_attribution_attr_str(fp_attribution_span_attr(span, "db.operation.name"), "INSERT");
	fp_attribution_attr_str(fp_attribution_span_attr(span, "db.collection.name"), "attribution.clicks");
	fp_attribution_attr_str(fp_attribution_span_attr(span, "db.query.summary"), "INSERT attribution.clicks");
	span->end_time_unix_nano = fp_attribution_now_unix_nano();
	fp_attribution_attr_int(fp_attribution_span_attr(span, "db.response.returned_rows"), 1);
	fp_attribution_telemetry_push_spans(&span, 1);
}

static void
bench_log(FpLogRecord *log)
{
	log->time_unix_nano = log->observed_time_unix_nano = fp_attribution_now_unix_nano();
	log->severity_number = FP_SEVERITY_INFO;
	strlcpy(log->severity_text, "INFO", sizeof(log->severity_text));
	strlcpy(log->event_name, "fp.click.tracked", sizeof(log->event_name));
	fp_attribution_copy_text(log->body, "click tracked", sizeof(log->body));
	memset(&log->trace_id, 0x11, sizeof(log->trace_id));
	memset(&log->span_id, 0x22, sizeof(log->span_id));
	log->flags = 1;
	log->dropped_attributes_count = 0;
	log->n_attrs = 0;
	fp_attribution_attr_str(fp_attribution_log_attr(log, "fp.affiliate.id"), "aff-42");
	fp_attribution_attr_str(fp_attribution_log_attr(log, "fp.click.id"), "00000000-0000-0000-0000-00000000c001");
	fp_attribution_attr_str(fp_attribution_log_attr(log, "fp.command.name"), "track_click");
	fp_attribution_telemetry_push_logs(&log, 1);
}

PG_FUNCTION_INFO_V1(fp_attribution_telemetry_bench);
Datum
fp_attribution_telemetry_bench(PG_FUNCTION_ARGS)
{
	char	   *what = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int			n = PG_GETARG_INT32(1);
	FpSpanRecord *span = palloc(sizeof(FpSpanRecord));
	FpLogRecord *log = palloc(sizeof(FpLogRecord));
	struct timespec t0,
				t1;

	if (!fp_attribution_telemetry_available())
		elog(ERROR, "fp_attribution is not preloaded");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < n; i++)
	{
		if (strcmp(what, "span") == 0)
			bench_span(span);
		else if (strcmp(what, "counter") == 0)
			fp_attribution_telemetry_count_receipts(1);
		else if (strcmp(what, "histogram") == 0)
			fp_attribution_telemetry_count_command(FP_COMMAND_TRACK_CLICK, 350000, false);
		else if (strcmp(what, "series") == 0)
			fp_attribution_telemetry_count_click("aff-42");
		else if (strcmp(what, "log") == 0)
			bench_log(log);
		else
			elog(ERROR, "unknown benchmark \"%s\"", what);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	PG_RETURN_FLOAT8(((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / n);
}
