/*-------------------------------------------------------------------------
 *
 * telemetry_sql.c
 *	  SQL access to the telemetry core: the functions behind the views
 *	  attribution.spans, attribution.logs, attribution.metrics and the
 *	  buffer columns of attribution.telemetry_status, and the reset.
 *
 * Records are copied out of shared memory in bounded batches (see
 * telemetry.c for the lock protocol); tuples are built afterwards with no
 * lock held.  Reading does not consume: the exporter still sees every
 * record.  Records hold UTF-8 text; in a database of another encoding
 * the views convert it, and a character that encoding lacks shows as '?'.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "fp_attribution/telemetry.h"
#include "fp_attribution/telemetry_record.h"

/* Records copied per lock acquisition */
#define READ_BATCH 64

/* An id column; the all-zero id (no parent, no span) is SQL NULL */
static Datum
id_datum(const uint8 *bytes, int len, bool *isnull)
{
	*isnull = fp_attribution_id_is_zero(bytes, len);
	return *isnull ? (Datum) 0 : fp_attribution_id_datum(bytes, len);
}

static Datum
unix_nano_timestamptz(int64 ns)
{
	return TimestampTzGetDatum(fp_attribution_unix_nano_to_timestamptz(ns));
}

/*
 * UTF-8 text of a record in the database encoding; a character the
 * database encoding lacks becomes '?'.
 */
static char *
server_text(const char *utf8)
{
	static Oid	from_utf8_proc = InvalidOid;
	int			encoding = GetDatabaseEncoding();
	const char *p = utf8;
	int			len;
	StringInfoData out;

	if (encoding == PG_UTF8 || encoding == PG_SQL_ASCII)
		return (char *) utf8;
	while (*p != '\0' && !IS_HIGHBIT_SET(*p))
		p++;
	if (*p == '\0')
		return (char *) utf8;
	if (!OidIsValid(from_utf8_proc))
		from_utf8_proc = FindDefaultConversionProc(PG_UTF8, encoding);

	initStringInfo(&out);
	p = utf8;
	len = strlen(p);
	while (len > 0)
	{
		int			converted = 0;

		enlargeStringInfo(&out, len * MAX_CONVERSION_GROWTH + 1);
		if (OidIsValid(from_utf8_proc))
			converted = pg_do_encoding_conversion_buf(from_utf8_proc, PG_UTF8,
													  encoding,
													  (unsigned char *) p, len,
													  (unsigned char *) out.data + out.len,
													  out.maxlen - out.len, true);
		out.len += strlen(out.data + out.len);
		p += converted;
		len -= converted;
		if (len > 0 && converted == 0)
		{
			int			skip = Min(pg_utf_mblen((const unsigned char *) p), len);

			appendStringInfoChar(&out, '?');
			p += skip;
			len -= skip;
		}
	}
	return out.data;
}

static Datum
text_datum(const char *utf8)
{
	return CStringGetTextDatum(server_text(utf8));
}

static Datum
json_datum(StringInfo buf)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(server_text(buf->data)));
}

static Datum
attrs_datum(const FpAttribute *attrs, int n)
{
	StringInfoData buf;

	initStringInfo(&buf);
	fp_attribution_attrs_json(&buf, attrs, n);
	return json_datum(&buf);
}

static const char *
span_kind_name(uint8 kind)
{
	switch ((FpSpanKind) kind)
	{
		case FP_SPAN_KIND_INTERNAL:
			return "internal";
		case FP_SPAN_KIND_SERVER:
			return "server";
		case FP_SPAN_KIND_CLIENT:
			return "client";
		case FP_SPAN_KIND_PRODUCER:
			return "producer";
		case FP_SPAN_KIND_CONSUMER:
			return "consumer";
		case FP_SPAN_KIND_UNSPECIFIED:
			break;
	}
	return "unspecified";
}

static const char *
status_name(uint8 code)
{
	return code == FP_STATUS_ERROR ? "error" : code == FP_STATUS_OK ? "ok" : "unset";
}

/*
 * attribution.spans_internal() returns setof record, oldest first.
 */
PG_FUNCTION_INFO_V1(fp_attribution_spans);
Datum
fp_attribution_spans(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	FpSpanRecord *batch;
	uint64		cursor = 0;
	int			n;

	InitMaterializedSRF(fcinfo, 0);
	batch = palloc(READ_BATCH * sizeof(FpSpanRecord));
	while ((n = fp_attribution_telemetry_peek_spans(&cursor, batch, READ_BATCH)) > 0)
	{
		for (int i = 0; i < n; i++)
		{
			FpSpanRecord *s = &batch[i];
			Datum		values[14];
			bool		nulls[14] = {false};
			StringInfoData buf;

			values[0] = id_datum(s->trace_id.bytes, FP_TRACE_ID_LEN, &nulls[0]);
			values[1] = id_datum(s->span_id.bytes, FP_SPAN_ID_LEN, &nulls[1]);
			values[2] = id_datum(s->parent_span_id.bytes, FP_SPAN_ID_LEN, &nulls[2]);
			values[3] = text_datum(s->name);
			values[4] = CStringGetTextDatum(span_kind_name(s->kind));
			values[5] = unix_nano_timestamptz(s->start_time_unix_nano);
			values[6] = unix_nano_timestamptz(s->end_time_unix_nano);
			values[7] = Float8GetDatum((s->end_time_unix_nano - s->start_time_unix_nano) / 1e6);
			values[8] = CStringGetTextDatum(status_name(s->status_code));
			values[9] = text_datum(s->status_message);
			nulls[9] = s->status_message[0] == '\0';
			values[10] = CStringGetTextDatum(s->trace_state);
			nulls[10] = s->trace_state[0] == '\0';
			values[11] = attrs_datum(s->attrs, s->n_attrs);
			initStringInfo(&buf);
			fp_attribution_span_events_json(&buf, s);
			values[12] = json_datum(&buf);
			values[13] = Int64GetDatum(s->start_time_unix_nano);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	return (Datum) 0;
}

/*
 * attribution.logs_internal() returns setof record, oldest first.
 */
PG_FUNCTION_INFO_V1(fp_attribution_logs);
Datum
fp_attribution_logs(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	FpLogRecord *batch;
	uint64		cursor = 0;
	int			n;

	InitMaterializedSRF(fcinfo, 0);
	batch = palloc(READ_BATCH * sizeof(FpLogRecord));
	while ((n = fp_attribution_telemetry_peek_logs(&cursor, batch, READ_BATCH)) > 0)
	{
		for (int i = 0; i < n; i++)
		{
			FpLogRecord *l = &batch[i];
			Datum		values[9];
			bool		nulls[9] = {false};

			values[0] = unix_nano_timestamptz(l->time_unix_nano);
			values[1] = Int32GetDatum(l->severity_number);
			values[2] = CStringGetTextDatum(l->severity_text);
			values[3] = CStringGetTextDatum(l->event_name);
			values[4] = text_datum(l->body);
			values[5] = id_datum(l->trace_id.bytes, FP_TRACE_ID_LEN, &nulls[5]);
			values[6] = id_datum(l->span_id.bytes, FP_SPAN_ID_LEN, &nulls[6]);
			values[7] = attrs_datum(l->attrs, l->n_attrs);
			values[8] = Int64GetDatum(l->time_unix_nano);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	return (Datum) 0;
}

static const char *
metric_kind_name(uint8 kind)
{
	return kind == FP_METRIC_HISTOGRAM ? "histogram" :
		kind == FP_METRIC_GAUGE ? "gauge" : "sum";
}

/*
 * attribution.metrics_internal() returns setof record: one row per
 * series of every metric kept in shared memory.
 */
PG_FUNCTION_INFO_V1(fp_attribution_metrics);
Datum
fp_attribution_metrics(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			max = fp_attribution_telemetry_max_metric_points();
	FpMetricPoint *points = palloc(max * sizeof(FpMetricPoint));
	int			n = fp_attribution_telemetry_collect_metrics(points, max);

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < n; i++)
	{
		FpMetricPoint *p = &points[i];
		Datum		values[11];
		bool		nulls[11] = {false};

		values[0] = CStringGetTextDatum(p->name);
		values[1] = CStringGetTextDatum(metric_kind_name(p->kind));
		values[2] = CStringGetTextDatum(p->unit);
		values[3] = attrs_datum(p->attrs, p->n_attrs);
		values[4] = Int64GetDatum(p->value_int);
		values[5] = Int64GetDatum((int64) p->count);
		values[6] = Float8GetDatum(p->sum);
		if (p->kind == FP_METRIC_HISTOGRAM)
		{
			Datum	   *bounds = palloc(p->n_bounds * sizeof(Datum));
			Datum	   *counts = palloc((p->n_bounds + 1) * sizeof(Datum));

			nulls[4] = true;
			for (int b = 0; b < p->n_bounds; b++)
				bounds[b] = Float8GetDatum(p->explicit_bounds[b]);
			for (int b = 0; b <= p->n_bounds; b++)
				counts[b] = Int64GetDatum((int64) p->bucket_counts[b]);
			values[7] = PointerGetDatum(construct_array(bounds, p->n_bounds, FLOAT8OID,
														sizeof(float8), FLOAT8PASSBYVAL,
														TYPALIGN_DOUBLE));
			values[8] = PointerGetDatum(construct_array(counts, p->n_bounds + 1, INT8OID,
														sizeof(int64), FLOAT8PASSBYVAL,
														TYPALIGN_DOUBLE));
		}
		else
			nulls[5] = nulls[6] = nulls[7] = nulls[8] = true;
		values[9] = unix_nano_timestamptz(p->start_time_unix_nano);
		values[10] = CStringGetTextDatum(p->description);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * attribution.telemetry_buffers_internal() returns one row: for spans and
 * logs capacity, held, written, dropped, dropped by the exporter; for
 * metrics the affiliate series cap, series used, increments that went to
 * the overflow series, points dropped by the exporter.
 */
PG_FUNCTION_INFO_V1(fp_attribution_telemetry_buffers);
Datum
fp_attribution_telemetry_buffers(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[14];
	bool		nulls[14] = {false};
	int64		state[5];
	int			k = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	fp_attribution_telemetry_buffer_state(FP_SIGNAL_SPANS, state);
	for (int i = 0; i < 5; i++)
		values[k++] = Int64GetDatum(state[i]);
	fp_attribution_telemetry_buffer_state(FP_SIGNAL_LOGS, state);
	for (int i = 0; i < 5; i++)
		values[k++] = Int64GetDatum(state[i]);
	fp_attribution_telemetry_buffer_state(FP_SIGNAL_METRICS, state);
	for (int i = 0; i < 4; i++)
		values[k++] = Int64GetDatum(state[i]);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * attribution.reset_telemetry(signal text DEFAULT NULL): empty the span or
 * log buffer, or zero the metrics; NULL resets all three.
 */
PG_FUNCTION_INFO_V1(fp_attribution_reset_telemetry);
Datum
fp_attribution_reset_telemetry(PG_FUNCTION_ARGS)
{
	static const char *const names[FP_SIGNAL_COUNT] = {"spans", "logs", "metrics"};
	char	   *signal = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	bool		known = signal == NULL;

	for (int i = 0; i < FP_SIGNAL_COUNT && !known; i++)
		known = strcmp(signal, names[i]) == 0;
	if (!known)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown telemetry signal \"%s\"", signal),
				 errhint("Use spans, logs, metrics, or NULL for all three.")));
	for (int i = 0; i < FP_SIGNAL_COUNT; i++)
		if (signal == NULL || strcmp(signal, names[i]) == 0)
			fp_attribution_telemetry_reset((FpSignal) i);
	PG_RETURN_VOID();
}
