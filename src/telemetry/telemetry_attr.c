/*-------------------------------------------------------------------------
 *
 * telemetry_attr.c
 *	  Filling telemetry records (bounded attributes; text converted from
 *	  the database encoding to UTF-8 and truncated on a character boundary)
 *	  and writing them as JSON, for the SQL views and the JSON log lines.
 *	  No shared memory and no locks here.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "common/shortest_dec.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/timestamp.h"

#include "fp_attribution/ids.h"
#include "fp_attribution/telemetry_record.h"

/* Where attributes beyond a record's capacity go; never read */
FpAttribute fp_attribution_overflow_attr;

/* U+FFFD REPLACEMENT CHARACTER, for what has no UTF-8 form */
#define UTF8_REPLACEMENT "\xEF\xBF\xBD"

/*
 * Append the UTF-8 text src[0..len) to dst (*used bytes used, capacity
 * size including the NUL), as many whole characters as fit; false when
 * not all of them did.
 */
static bool
append_utf8(char *dst, int *used, Size size, const char *src, int len)
{
	int			room = size - 1 - *used;
	bool		whole = len <= room;

	if (!whole)
		len = pg_encoding_mbcliplen(PG_UTF8, src, len, room);
	memcpy(dst + *used, src, len);
	*used += len;
	return whole;
}

/*
 * Copy src, text in the database encoding, into dst of size bytes as
 * UTF-8 (what OTLP and JSON require), truncated on a character boundary
 * and always NUL-terminated.  A character with no UTF-8 form (or a byte
 * that is not UTF-8 in a SQL_ASCII database) becomes U+FFFD.  Never
 * raises an error: telemetry must not fail a command.  The conversion
 * function is looked up once per backend, at the first non-ASCII text of
 * a non-UTF-8 database; that happens while a command runs, never in a
 * transaction callback (records filled there only copy text converted
 * before, with fp_attribution_copy_utf8).
 */
void
fp_attribution_copy_text(char *dst, const char *src, Size size)
{
	static Oid	to_utf8_proc = InvalidOid;
	int			encoding = GetDatabaseEncoding();
	const char *p = src;
	int			used = 0;

	if (encoding == PG_UTF8)
	{
		fp_attribution_copy_utf8(dst, src, size);
		return;
	}
	if (encoding != PG_SQL_ASCII && !OidIsValid(to_utf8_proc))
	{
		for (const char *q = src; *q != '\0' && !OidIsValid(to_utf8_proc); q++)
			if (IS_HIGHBIT_SET(*q))
				to_utf8_proc = FindDefaultConversionProc(encoding, PG_UTF8);
	}
	while (*p != '\0')
	{
		const char *run = p;
		unsigned char buf[256];
		int			len = strlen(p);
		int			converted = 0;

		/* ASCII is the same in every server encoding and in UTF-8 */
		while (*p != '\0' && !IS_HIGHBIT_SET(*p))
			p++;
		if (p > run && !append_utf8(dst, &used, size, run, p - run))
			break;
		if (*p == '\0')
			break;
		len -= p - run;
		if (OidIsValid(to_utf8_proc))
			converted = pg_do_encoding_conversion_buf(to_utf8_proc, encoding,
													  PG_UTF8,
													  (unsigned char *) p, len,
													  buf, sizeof(buf), true);
		else if (pg_utf_mblen((const unsigned char *) p) <= len &&
				 pg_utf8_islegal((const unsigned char *) p,
								 pg_utf_mblen((const unsigned char *) p)))
		{
			/* a SQL_ASCII database holding UTF-8: keep it */
			converted = pg_utf_mblen((const unsigned char *) p);
			memcpy(buf, p, converted);
			buf[converted] = '\0';
		}
		if (converted == 0)
		{
			if (!append_utf8(dst, &used, size, UTF8_REPLACEMENT, 3))
				break;
			p += encoding == PG_SQL_ASCII ? 1 :
				Max(pg_encoding_mblen_bounded(encoding, p), 1);
			continue;
		}
		p += converted;
		if (!append_utf8(dst, &used, size, (char *) buf, strlen((char *) buf)))
			break;
	}
	dst[used] = '\0';
}

/*
 * Start a span record: everything but ids, times and attributes cleared.
 * Only the header is written, not the whole record, to keep this cheap.
 */
void
fp_attribution_span_init(FpSpanRecord *span, const char *name, FpSpanKind kind)
{
	memset(span, 0, offsetof(FpSpanRecord, status_message));
	fp_attribution_copy_name(span->name, name, sizeof(span->name));
	span->kind = kind;
	span->flags = FP_TRACE_FLAG_SAMPLED;
	span->status_message[0] = '\0';
	span->trace_state[0] = '\0';
	span->dropped_attributes_count = 0;
	span->n_events = 0;
	span->n_attrs = 0;
}

/*
 * Start a log record with the context of a command (trace_id NULL: none),
 * no body and no attributes
 */
void
fp_attribution_log_init(FpLogRecord *log, FpSeverity severity,
						const char *event_name, int64 time,
						const FpTraceId *trace_id, const FpSpanId *span_id,
						uint8 flags)
{
	log->time_unix_nano = time;
	log->observed_time_unix_nano = time;
	log->severity_number = severity;
	fp_attribution_copy_name(log->severity_text,
			  severity == FP_SEVERITY_ERROR ? "ERROR" :
			  severity == FP_SEVERITY_WARN ? "WARN" :
			  severity == FP_SEVERITY_INFO ? "INFO" : "DEBUG",
			  sizeof(log->severity_text));
	fp_attribution_copy_name(log->event_name, event_name, sizeof(log->event_name));
	log->body[0] = '\0';
	if (trace_id != NULL)
	{
		log->trace_id = *trace_id;
		log->span_id = *span_id;
	}
	else
	{
		memset(&log->trace_id, 0, sizeof(log->trace_id));
		memset(&log->span_id, 0, sizeof(log->span_id));
	}
	log->flags = flags;
	log->dropped_attributes_count = 0;
	log->n_attrs = 0;
}

/* A string attribute from text in the database encoding */
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
 * are within the ranges JSON readers handle for our attributes).  Nothing
 * is allocated when buf has room (see fp_attribution_log_json_line).
 */
void
fp_attribution_attrs_json(StringInfo buf, const FpAttribute *attrs, int n)
{
	char		number[DOUBLE_SHORTEST_DECIMAL_LEN];

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
				double_to_shortest_decimal_buf(a->value.d, number);
				appendStringInfoString(buf, number);
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
 * are omitted when the record belongs to no span.  With
 * FP_LOG_JSON_LINE_MAX bytes of room in buf, nothing is allocated: the
 * abort callback writes these lines.
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
