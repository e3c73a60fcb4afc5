/*-------------------------------------------------------------------------
 *
 * otlp_json.c
 *	  OTLP/JSON: spans and log records written straight from the packed
 *	  records (the export's bulk), and any protobuf-c message (metrics)
 *	  by walking the descriptors protoc-c generated from proto/.
 *
 * OTLP/JSON is the proto3 JSON mapping with the OTLP exceptions: field
 * names in lowerCamelCase, trace and span ids as lowercase hex (not
 * base64), enums as integers, 64-bit integers as decimal strings.  Fields
 * with their default value are omitted, except oneof members, whose
 * presence is meaningful (a histogram sum of 0, an integer gauge of 0).
 *
 * Pure function of its input: no shared state, no locks.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "common/base64.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "fp_attribution/otlp.h"
#include "common.pb-c.h"

static void message_json(StringInfo out, const ProtobufCMessage *msg);

/* Append a proto field name converted to lowerCamelCase, quoted */
static void
camel_name(StringInfo out, const char *name)
{
	bool		upper = false;

	appendStringInfoChar(out, '"');
	for (const char *p = name; *p; p++)
	{
		if (*p == '_')
			upper = true;
		else
		{
			appendStringInfoChar(out, upper ? pg_toupper((unsigned char) *p) : *p);
			upper = false;
		}
	}
	appendStringInfoString(out, "\":");
}

/* trace_id, span_id and parent_span_id are hex in OTLP/JSON */
static bool
is_id_field(const char *name)
{
	return strcmp(name, "trace_id") == 0 || strcmp(name, "span_id") == 0 ||
		strcmp(name, "parent_span_id") == 0;
}

static void
bytes_json(StringInfo out, const ProtobufCBinaryData *b, bool hex)
{
	appendStringInfoChar(out, '"');
	if (hex)
	{
		for (size_t i = 0; i < b->len; i++)
			appendStringInfo(out, "%02x", b->data[i]);
	}
	else
	{
		int			len = pg_b64_enc_len(b->len);

		enlargeStringInfo(out, len + 1);
		out->len += pg_b64_encode((const char *) b->data, b->len,
								  out->data + out->len, len);
	}
	appendStringInfoChar(out, '"');
}

static void
double_json(StringInfo out, double d)
{
	if (isnan(d))
		appendStringInfoString(out, "\"NaN\"");
	else if (isinf(d))
		appendStringInfoString(out, d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
	else
		appendStringInfo(out, "%.17g", d);
}

/* Append one value of field f stored at p */
static void
value_json(StringInfo out, const ProtobufCFieldDescriptor *f, const void *p)
{
	switch (f->type)
	{
		case PROTOBUF_C_TYPE_INT32:
		case PROTOBUF_C_TYPE_SINT32:
		case PROTOBUF_C_TYPE_SFIXED32:
		case PROTOBUF_C_TYPE_ENUM:
			appendStringInfo(out, "%d", *(const int32 *) p);
			break;
		case PROTOBUF_C_TYPE_UINT32:
		case PROTOBUF_C_TYPE_FIXED32:
			appendStringInfo(out, "%u", *(const uint32 *) p);
			break;
		case PROTOBUF_C_TYPE_INT64:
		case PROTOBUF_C_TYPE_SINT64:
		case PROTOBUF_C_TYPE_SFIXED64:
			appendStringInfo(out, "\"" INT64_FORMAT "\"", *(const int64 *) p);
			break;
		case PROTOBUF_C_TYPE_UINT64:
		case PROTOBUF_C_TYPE_FIXED64:
			appendStringInfo(out, "\"" UINT64_FORMAT "\"", *(const uint64 *) p);
			break;
		case PROTOBUF_C_TYPE_FLOAT:
			double_json(out, *(const float *) p);
			break;
		case PROTOBUF_C_TYPE_DOUBLE:
			double_json(out, *(const double *) p);
			break;
		case PROTOBUF_C_TYPE_BOOL:
			appendStringInfoString(out, *(const protobuf_c_boolean *) p ? "true" : "false");
			break;
		case PROTOBUF_C_TYPE_STRING:
			escape_json(out, *(char *const *) p ? *(char *const *) p : "");
			break;
		case PROTOBUF_C_TYPE_BYTES:
			bytes_json(out, (const ProtobufCBinaryData *) p, is_id_field(f->name));
			break;
		case PROTOBUF_C_TYPE_MESSAGE:
			message_json(out, *(ProtobufCMessage *const *) p);
			break;
	}
}

/* Size in memory of one value of field f */
static size_t
value_size(const ProtobufCFieldDescriptor *f)
{
	switch (f->type)
	{
		case PROTOBUF_C_TYPE_INT64:
		case PROTOBUF_C_TYPE_SINT64:
		case PROTOBUF_C_TYPE_SFIXED64:
		case PROTOBUF_C_TYPE_UINT64:
		case PROTOBUF_C_TYPE_FIXED64:
			return 8;
		case PROTOBUF_C_TYPE_DOUBLE:
			return sizeof(double);
		case PROTOBUF_C_TYPE_BOOL:
			return sizeof(protobuf_c_boolean);
		case PROTOBUF_C_TYPE_STRING:
		case PROTOBUF_C_TYPE_MESSAGE:
			return sizeof(void *);
		case PROTOBUF_C_TYPE_BYTES:
			return sizeof(ProtobufCBinaryData);
		default:
			return 4;
	}
}

/* Is a singular proto3 field at its default (and so omitted)? */
static bool
is_default(const ProtobufCFieldDescriptor *f, const void *p)
{
	switch (f->type)
	{
		case PROTOBUF_C_TYPE_STRING:
			return *(char *const *) p == NULL || **(char *const *) p == '\0';
		case PROTOBUF_C_TYPE_MESSAGE:
			return *(void *const *) p == NULL;
		case PROTOBUF_C_TYPE_BYTES:
			return ((const ProtobufCBinaryData *) p)->len == 0;
		case PROTOBUF_C_TYPE_DOUBLE:
			return *(const double *) p == 0.0;
		default:
			{
				static const char zero[8] = {0};

				return memcmp(p, zero, value_size(f)) == 0;
			}
	}
}

static void
message_json(StringInfo out, const ProtobufCMessage *msg)
{
	const ProtobufCMessageDescriptor *d = msg->descriptor;
	const char *base = (const char *) msg;
	bool		first = true;

	appendStringInfoChar(out, '{');
	for (unsigned i = 0; i < d->n_fields; i++)
	{
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const void *p = base + f->offset;

		if (f->label == PROTOBUF_C_LABEL_REPEATED)
		{
			size_t		n = *(const size_t *) (base + f->quantifier_offset);
			const char *arr = *(char *const *) p;

			if (n == 0)
				continue;
			if (!first)
				appendStringInfoChar(out, ',');
			camel_name(out, f->name);
			appendStringInfoChar(out, '[');
			for (size_t k = 0; k < n; k++)
			{
				if (k > 0)
					appendStringInfoChar(out, ',');
				value_json(out, f, arr + k * value_size(f));
			}
			appendStringInfoChar(out, ']');
		}
		else
		{
			if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
			{
				if (*(const uint32 *) (base + f->quantifier_offset) != f->id)
					continue;
			}
			else if (is_default(f, p))
				continue;
			if (!first)
				appendStringInfoChar(out, ',');
			camel_name(out, f->name);
			value_json(out, f, p);
		}
		first = false;
	}
	appendStringInfoChar(out, '}');
}

/*
 * Append message (any protobuf-c message) to out as OTLP/JSON.
 */
void
fp_attribution_otlp_json(StringInfo out, const void *message)
{
	message_json(out, (const ProtobufCMessage *) message);
}

/*
 * The direct writer: spans and log records as OTLP/JSON straight from the
 * packed records, like otlp_protobuf.c writes protobuf, with no
 * protobuf-c tree and no per-character appends.  Its output is what
 * message_json writes for the same request: the fields in the order of
 * the descriptors, defaults left out, the AnyValue oneof always written.
 * Each record first reserves its worst case (every string byte escaped
 * as \u00XX), so the writers below append without checking for room.
 */

/* Worst case of a string of at most len bytes, quoted and escaped */
#define JSON_STR_MAX(len) (6 * (len) + 2)
/* An attribute: {"key":...,"value":{"doubleValue":...}} and a comma */
#define ATTR_JSON_MAX (64 + JSON_STR_MAX(FP_ATTR_KEY_LEN) + \
					   JSON_STR_MAX(FP_ATTR_VALUE_LEN))
#define EVENT_JSON_MAX (96 + JSON_STR_MAX(FP_EVENT_NAME_LEN) + \
						FP_EVENT_MAX_ATTRS * ATTR_JSON_MAX)
#define SPAN_JSON_MAX (512 + JSON_STR_MAX(FP_SPAN_NAME_LEN) + \
					   JSON_STR_MAX(FP_STATUS_MESSAGE_LEN) + \
					   JSON_STR_MAX(FP_TRACESTATE_MAX_LEN) + \
					   FP_SPAN_MAX_ATTRS * ATTR_JSON_MAX + \
					   FP_SPAN_MAX_EVENTS * EVENT_JSON_MAX)
#define LOG_JSON_MAX (512 + JSON_STR_MAX(FP_LOG_EVENT_NAME_LEN) + \
					  JSON_STR_MAX(FP_LOG_BODY_LEN) + \
					  FP_LOG_MAX_ATTRS * ATTR_JSON_MAX)

/*
 * How each byte is written inside a JSON string: 0 as itself, else the
 * letter after the backslash ('u' for \u00XX), as escape_json does.
 */
static const char json_escape[256] = {
	'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r', 'u', 'u',
	'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',
	0, 0, '"', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	['\\'] = '\\'
};

static const char hex_digits[] = "0123456789abcdef";

/* Append n bytes known to need no escaping (keys and punctuation) */
static inline void
put_raw(StringInfo b, const char *s, int n)
{
	memcpy(b->data + b->len, s, n);
	b->len += n;
}

#define PUT_LITERAL(b, s) put_raw(b, s, sizeof(s) - 1)

/* Append s quoted, escaped as escape_json does */
static inline void
put_str(StringInfo b, const char *s)
{
	char	   *p = b->data + b->len;

	*p++ = '"';
	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;
		char		e = json_escape[c];

		if (likely(e == 0))
			*p++ = c;
		else
		{
			*p++ = '\\';
			*p++ = e;
			if (e == 'u')
			{
				*p++ = '0';
				*p++ = '0';
				*p++ = hex_digits[c >> 4];
				*p++ = hex_digits[c & 15];
			}
		}
	}
	*p++ = '"';
	b->len = p - b->data;
}

/* "key":"value", or nothing when value is empty (a proto3 default) */
static inline void
put_str_field(StringInfo b, const char *key, int key_len, const char *value)
{
	if (value[0] == '\0')
		return;
	put_raw(b, key, key_len);
	put_str(b, value);
}

#define PUT_STR_FIELD(b, k, v) put_str_field(b, k, sizeof(k) - 1, v)

/* An unsigned integer, unquoted (32-bit fields) */
static inline void
put_uint(StringInfo b, uint64 v)
{
	b->len += pg_ulltoa_n(v, b->data + b->len);
}

/* "key":v, or nothing when v is 0 */
#define PUT_UINT_FIELD(b, k, v) \
	do { if ((v) != 0) { PUT_LITERAL(b, k); put_uint(b, v); } } while (0)

/* "key":"v" for a 64-bit field (a string in OTLP/JSON), or nothing for 0 */
#define PUT_UINT64_FIELD(b, k, v) \
	do { \
		if ((v) != 0) \
		{ \
			PUT_LITERAL(b, k "\""); \
			put_uint(b, (uint64) (v)); \
			PUT_LITERAL(b, "\""); \
		} \
	} while (0)

/* "key":"hex" for an id, or nothing when it is all zero */
static inline void
put_id_field(StringInfo b, const char *key, int key_len, const uint8 *id,
			 int len)
{
	char	   *p;

	for (int i = 0; i < len; i++)
	{
		if (id[i] == 0)
			continue;
		put_raw(b, key, key_len);
		p = b->data + b->len;
		*p++ = '"';
		for (int k = 0; k < len; k++)
		{
			*p++ = hex_digits[id[k] >> 4];
			*p++ = hex_digits[id[k] & 15];
		}
		*p++ = '"';
		b->len = p - b->data;
		return;
	}
}

#define PUT_ID_FIELD(b, k, id) \
	put_id_field(b, k, sizeof(k) - 1, (id).bytes, sizeof((id).bytes))

/* A KeyValue; the AnyValue oneof is written whatever its value */
static void
put_attribute(StringInfo b, const FpAttrView *a)
{
	PUT_LITERAL(b, "{\"key\":");
	put_str(b, a->key);
	switch (a->type)
	{
		case FP_ATTR_INT:
			PUT_LITERAL(b, ",\"value\":{\"intValue\":\"");
			b->len += pg_lltoa(a->i, b->data + b->len);
			PUT_LITERAL(b, "\"}}");
			break;
		case FP_ATTR_DOUBLE:
			PUT_LITERAL(b, ",\"value\":{\"doubleValue\":");
			double_json(b, a->d);
			PUT_LITERAL(b, "}}");
			break;
		case FP_ATTR_BOOL:
			if (a->b)
				PUT_LITERAL(b, ",\"value\":{\"boolValue\":true}}");
			else
				PUT_LITERAL(b, ",\"value\":{\"boolValue\":false}}");
			break;
		default:
			PUT_LITERAL(b, ",\"value\":{\"stringValue\":");
			put_str(b, a->str);
			PUT_LITERAL(b, "}}");
			break;
	}
}

/*
 * ,"attributes":[...] for n packed attributes (telemetry.h), or nothing
 * when there are none
 */
static void
put_attributes(StringInfo b, const char *packed, int n)
{
	if (n == 0)
		return;
	PUT_LITERAL(b, ",\"attributes\":[");
	for (int i = 0; i < n; i++)
	{
		FpAttrView	a;

		packed = fp_attribution_telemetry_attr_view(packed, &a);
		if (i > 0)
			PUT_LITERAL(b, ",");
		put_attribute(b, &a);
	}
	PUT_LITERAL(b, "]");
}

/*
 * The frame shared by both requests, up to their records:
 * {"resourceX":[{"resource":{"attributes":[...]},"scopeX":[{"scope":
 * {"name":...,"version":...},"records":[ -- records_key names the two
 * levels and the records.
 */
static void
begin_request(StringInfo b, const char *resource_key, const char *scope_key,
			  const char *records_key)
{
	List	   *pairs = fp_attribution_otlp_resource_pairs();
	ListCell   *lc;

	appendStringInfo(b, "{\"%s\":[{\"resource\":{", resource_key);
	if (pairs != NIL)
		appendStringInfoString(b, "\"attributes\":[");
	foreach(lc, pairs)
	{
		FpOtlpPair *p = lfirst(lc);

		if (foreach_current_index(lc) > 0)
			appendStringInfoChar(b, ',');
		appendStringInfoString(b, "{\"key\":");
		escape_json(b, p->key);
		appendStringInfoString(b, ",\"value\":{\"stringValue\":");
		escape_json(b, p->value);
		appendStringInfoString(b, "}}");
	}
	if (pairs != NIL)
		appendStringInfoChar(b, ']');
	appendStringInfo(b, "},\"%s\":[{\"scope\":{\"name\":\"%s\",\"version\":\"%s\"},\"%s\":[",
					 scope_key, FP_OTLP_SCOPE_NAME, FP_ATTRIBUTION_VERSION,
					 records_key);
}

/* Close the frame: schemaUrl in both the scope and the resource level */
static void
end_request(StringInfo b)
{
	appendStringInfoString(b, "],\"schemaUrl\":\"" FP_OTLP_SCHEMA_URL "\"}],"
						   "\"schemaUrl\":\"" FP_OTLP_SCHEMA_URL "\"}]}");
}

/*
 * Objects are written with a comma before every field, and the first
 * comma is then overwritten with the opening brace: no field needs to
 * know whether one came before it.
 */
static inline void
close_object(StringInfo b, int start)
{
	if (b->len == start)
		PUT_LITERAL(b, "{");
	else
		b->data[start] = '{';
	PUT_LITERAL(b, "}");
}

/*
 * A Span, its fields in trace.proto's order (as message_json writes
 * them); flags always has CONTEXT_HAS_IS_REMOTE, so it is never left out.
 */
static void
put_span(StringInfo b, const FpSpanView *v)
{
	const FpSpanRecord *h = v->head;
	int			start = b->len;

	PUT_ID_FIELD(b, ",\"traceId\":", h->trace_id);
	PUT_ID_FIELD(b, ",\"spanId\":", h->span_id);
	PUT_STR_FIELD(b, ",\"traceState\":", v->trace_state);
	PUT_ID_FIELD(b, ",\"parentSpanId\":", h->parent_span_id);
	PUT_STR_FIELD(b, ",\"name\":", h->name);
	PUT_UINT_FIELD(b, ",\"kind\":", h->kind);
	PUT_UINT64_FIELD(b, ",\"startTimeUnixNano\":", h->start_time_unix_nano);
	PUT_UINT64_FIELD(b, ",\"endTimeUnixNano\":", h->end_time_unix_nano);
	put_attributes(b, v->attrs, v->n_attrs);
	PUT_UINT_FIELD(b, ",\"droppedAttributesCount\":", v->dropped_attributes_count);
	if (v->n_events > 0)
	{
		PUT_LITERAL(b, ",\"events\":[");
		for (int e = 0; e < v->n_events; e++)
		{
			const FpSpanEvent *ev = &v->events[e];
			int			ev_start;

			if (e > 0)
				PUT_LITERAL(b, ",");
			ev_start = b->len;
			PUT_UINT64_FIELD(b, ",\"timeUnixNano\":", ev->time_unix_nano);
			PUT_STR_FIELD(b, ",\"name\":", ev->name);
			if (ev->n_attrs > 0)
			{
				PUT_LITERAL(b, ",\"attributes\":[");
				for (int i = 0; i < ev->n_attrs; i++)
				{
					FpAttrView	a;

					fp_attribution_attr_view_of(&ev->attrs[i], &a);
					if (i > 0)
						PUT_LITERAL(b, ",");
					put_attribute(b, &a);
				}
				PUT_LITERAL(b, "]");
			}
			close_object(b, ev_start);
		}
		PUT_LITERAL(b, "]");
	}
	if (h->status_code != FP_STATUS_UNSET)
	{
		int			st_start;

		PUT_LITERAL(b, ",\"status\":");
		st_start = b->len;
		PUT_STR_FIELD(b, ",\"message\":", h->status_message);
		PUT_UINT_FIELD(b, ",\"code\":", h->status_code);
		close_object(b, st_start);
	}
	PUT_LITERAL(b, ",\"flags\":");
	put_uint(b, h->flags | SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE |
			 (h->parent_is_remote ? SPAN_FLAGS_CONTEXT_IS_REMOTE : 0));
	close_object(b, start);
}

/* ExportTraceServiceRequest as OTLP/JSON for n packed spans */
StringInfo
fp_attribution_otlp_json_spans(const char *packed, int n)
{
	StringInfo	b = makeStringInfo();

	begin_request(b, "resourceSpans", "scopeSpans", "spans");
	for (int i = 0; i < n; i++)
	{
		FpSpanView	v;

		packed = fp_attribution_telemetry_span_view(packed, &v);
		enlargeStringInfo(b, SPAN_JSON_MAX);
		if (i > 0)
			PUT_LITERAL(b, ",");
		put_span(b, &v);
	}
	end_request(b);
	return b;
}

/* A LogRecord, its fields in logs.proto's order (as message_json) */
static void
put_log(StringInfo b, const FpLogView *lv)
{
	const FpLogRecord *r = lv->head;
	int			start = b->len;

	PUT_UINT64_FIELD(b, ",\"timeUnixNano\":", r->time_unix_nano);
	PUT_UINT_FIELD(b, ",\"severityNumber\":", r->severity_number);
	PUT_STR_FIELD(b, ",\"severityText\":", r->severity_text);
	if (r->body[0] != '\0')
	{
		PUT_LITERAL(b, ",\"body\":{\"stringValue\":");
		put_str(b, r->body);
		PUT_LITERAL(b, "}");
	}
	put_attributes(b, lv->attrs, lv->n_attrs);
	PUT_UINT_FIELD(b, ",\"droppedAttributesCount\":", r->dropped_attributes_count);
	PUT_UINT_FIELD(b, ",\"flags\":", r->flags);
	PUT_ID_FIELD(b, ",\"traceId\":", r->trace_id);
	PUT_ID_FIELD(b, ",\"spanId\":", r->span_id);
	PUT_UINT64_FIELD(b, ",\"observedTimeUnixNano\":", r->observed_time_unix_nano);
	PUT_STR_FIELD(b, ",\"eventName\":", r->event_name);
	close_object(b, start);
}

/* ExportLogsServiceRequest as OTLP/JSON for n packed log records */
StringInfo
fp_attribution_otlp_json_logs(const char *packed, int n)
{
	StringInfo	b = makeStringInfo();

	begin_request(b, "resourceLogs", "scopeLogs", "logRecords");
	for (int i = 0; i < n; i++)
	{
		FpLogView	lv;

		packed = fp_attribution_telemetry_log_view(packed, &lv);
		enlargeStringInfo(b, LOG_JSON_MAX);
		if (i > 0)
			PUT_LITERAL(b, ",");
		put_log(b, &lv);
	}
	end_request(b);
	return b;
}
