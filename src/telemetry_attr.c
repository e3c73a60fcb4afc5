/*-------------------------------------------------------------------------
 *
 * telemetry_attr.c
 *	  Filling telemetry records (bounded attributes, UTF-8-safe truncation)
 *	  and writing them as JSON, for the SQL views and the JSON log lines.
 *	  No shared memory and no locks here.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/json.h"
#include "utils/timestamp.h"

#include "fp_attribution/ids.h"
#include "fp_attribution/telemetry_record.h"

/* Where attributes beyond a record's capacity go; never read */
static FpAttribute overflow_attr;

/*
 * Copy an ASCII name (a key or span name, always one of ours) into a
 * buffer of size bytes.  strlen + memcpy is several times cheaper than
 * the portable byte-at-a-time strlcpy, and this runs for every attribute.
 */
static inline void
copy_name(char *dst, const char *src, Size size)
{
	Size		len = strnlen(src, size - 1);

	memcpy(dst, src, len);
	dst[len] = '\0';
}

/*
 * Copy src into dst of size bytes, truncated on a character boundary of
 * the database encoding and always NUL-terminated.
 */
void
fp_attribution_copy_text(char *dst, const char *src, Size size)
{
	int			len = strlen(src);

	if (len >= size)
		len = pg_mbcliplen(src, len, size - 1);
	memcpy(dst, src, len);
	dst[len] = '\0';
}

/*
 * Start a span record: everything but ids, times and attributes cleared.
 * Only the header is written, not the whole record, to keep this cheap.
 */
void
fp_attribution_span_init(FpSpanRecord *span, const char *name, FpSpanKind kind)
{
	memset(span, 0, offsetof(FpSpanRecord, status_message));
	copy_name(span->name, name, sizeof(span->name));
	span->kind = kind;
	span->flags = FP_TRACE_FLAG_SAMPLED;
	span->status_message[0] = '\0';
	span->trace_state[0] = '\0';
	span->dropped_attributes_count = 0;
	span->n_events = 0;
	span->n_attrs = 0;
}

static FpAttribute *
next_attr(FpAttribute *attrs, int *n, int max, uint32 *dropped,
		  const char *key)
{
	FpAttribute *a;

	if (*n >= max)
	{
		(*dropped)++;
		return &overflow_attr;
	}
	a = &attrs[(*n)++];
	copy_name(a->key, key, FP_ATTR_KEY_LEN);
	return a;
}

/*
 * The next free attribute of a span (or log record) with its key set; the
 * caller sets the value.  Past the capacity the attribute is counted in
 * dropped_attributes_count and the value goes nowhere.
 */
FpAttribute *
fp_attribution_span_attr(FpSpanRecord *span, const char *key)
{
	return next_attr(span->attrs, &span->n_attrs, FP_SPAN_MAX_ATTRS,
					 &span->dropped_attributes_count, key);
}

FpAttribute *
fp_attribution_log_attr(FpLogRecord *log, const char *key)
{
	return next_attr(log->attrs, &log->n_attrs, FP_LOG_MAX_ATTRS,
					 &log->dropped_attributes_count, key);
}

void
fp_attribution_attr_str(FpAttribute *attr, const char *value)
{
	attr->type = FP_ATTR_STRING;
	fp_attribution_copy_text(attr->value.str, value, FP_ATTR_VALUE_LEN);
}

void
fp_attribution_attr_int(FpAttribute *attr, int64 value)
{
	attr->type = FP_ATTR_INT;
	attr->value.i = value;
}

void
fp_attribution_attr_bool(FpAttribute *attr, bool value)
{
	attr->type = FP_ATTR_BOOL;
	attr->value.b = value;
}

void
fp_attribution_attr_double(FpAttribute *attr, double value)
{
	attr->type = FP_ATTR_DOUBLE;
	attr->value.d = value;
}

/*
 * Attributes as a JSON object.  Integers are written as numbers (they
 * are within the ranges JSON readers handle for our attributes).
 */
void
fp_attribution_attrs_json(StringInfo buf, const FpAttribute *attrs, int n)
{
	appendStringInfoChar(buf, '{');
	for (int i = 0; i < n; i++)
	{
		const FpAttribute *a = &attrs[i];

		if (i > 0)
			appendStringInfoString(buf, ", ");
		escape_json(buf, a->key);
		appendStringInfoString(buf, ": ");
		switch ((FpAttrType) a->type)
		{
			case FP_ATTR_STRING:
				escape_json(buf, a->value.str);
				break;
			case FP_ATTR_BOOL:
				appendStringInfoString(buf, a->value.b ? "true" : "false");
				break;
			case FP_ATTR_INT:
				appendStringInfo(buf, INT64_FORMAT, a->value.i);
				break;
			case FP_ATTR_DOUBLE:
				appendStringInfoString(buf, float8out_internal(a->value.d));
				break;
		}
	}
	appendStringInfoChar(buf, '}');
}

/* A span's events as a JSON array of {name, time_unix_nano, attributes} */
void
fp_attribution_span_events_json(StringInfo buf, const FpSpanRecord *span)
{
	appendStringInfoChar(buf, '[');
	for (int i = 0; i < span->n_events; i++)
	{
		const FpSpanEvent *e = &span->events[i];

		if (i > 0)
			appendStringInfoString(buf, ", ");
		appendStringInfoString(buf, "{\"name\": ");
		escape_json(buf, e->name);
		appendStringInfo(buf, ", \"time_unix_nano\": " INT64_FORMAT
						 ", \"attributes\": ", e->time_unix_nano);
		fp_attribution_attrs_json(buf, e->attrs, e->n_attrs);
		appendStringInfoChar(buf, '}');
	}
	appendStringInfoChar(buf, ']');
}

/*
 * One log record as a single-line JSON object, for the server log.  Ids
 * are omitted when the record belongs to no span.
 */
void
fp_attribution_log_json_line(StringInfo buf, const FpLogRecord *log)
{
	TimestampTz ts = fp_attribution_unix_nano_to_timestamptz(log->time_unix_nano);
	char		hex[FP_TRACE_ID_LEN * 2 + 1];

	appendStringInfoString(buf, "{\"time\": ");
	escape_json(buf, timestamptz_to_str(ts));
	appendStringInfo(buf, ", \"severity_number\": %d, \"severity\": ",
					 log->severity_number);
	escape_json(buf, log->severity_text);
	appendStringInfoString(buf, ", \"event_name\": ");
	escape_json(buf, log->event_name);
	appendStringInfoString(buf, ", \"body\": ");
	escape_json(buf, log->body);
	if (!fp_attribution_id_is_zero(log->trace_id.bytes, FP_TRACE_ID_LEN))
	{
		fp_attribution_hex_encode(log->trace_id.bytes, FP_TRACE_ID_LEN, hex);
		appendStringInfo(buf, ", \"trace_id\": \"%s\"", hex);
		fp_attribution_hex_encode(log->span_id.bytes, FP_SPAN_ID_LEN, hex);
		appendStringInfo(buf, ", \"span_id\": \"%s\"", hex);
		appendStringInfo(buf, ", \"trace_flags\": \"%02x\"", log->flags);
	}
	appendStringInfoString(buf, ", \"attributes\": ");
	fp_attribution_attrs_json(buf, log->attrs, log->n_attrs);
	appendStringInfoChar(buf, '}');
}
