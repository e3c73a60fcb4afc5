/*-------------------------------------------------------------------------
 *
 * otlp_protobuf.c
 *	  Write OTLP ExportTraceServiceRequest and ExportLogsServiceRequest in
 *	  the protobuf wire format straight from packed telemetry records.
 *
 * The exporter's copy of a ring holds the records as they are packed
 * there (telemetry.c); this writer reads them in place through the views
 * and appends the wire bytes to one buffer, with no unpacked copy and no
 * tree of protobuf-c messages in between, which were most of the cost of
 * an export.  Field numbers and wire types are those of the official
 * OTLP protos (proto/); like protobuf-c, it leaves out proto3 scalars
 * that are zero and strings or ids that are empty (all-zero ids: no
 * parent, no trace), and writes a oneof member whatever its value.
 * OTLP/JSON and the metrics, which are few, still go through protobuf-c
 * (otlp_encode.c).
 *
 * A nested message is written with a guess of its length's varint size
 * reserved before it; when it is done and the guess was wrong, its bytes
 * move by the difference (rare: the guesses fit the records' bounds).
 * The buffer is enlarged once per record, by a bound on its encoded size,
 * so the writes themselves need no checks.
 *
 * Runs only in the worker, on private copies of the records: no locks.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fp_attribution/otlp.h"

/* Wire types */
#define WT_VARINT 0
#define WT_I64 1
#define WT_LEN 2
#define WT_I32 5

/*
 * Bounds on encoded sizes: tags and lengths of a message are at most a
 * dozen bytes per field, the strings are bounded by telemetry.h.
 */
#define ATTR_WIRE_MAX (24 + FP_ATTR_KEY_LEN + FP_ATTR_VALUE_LEN)
#define EVENT_WIRE_MAX (32 + FP_EVENT_NAME_LEN + FP_EVENT_MAX_ATTRS * ATTR_WIRE_MAX)
#define SPAN_WIRE_MAX (160 + FP_SPAN_NAME_LEN + FP_STATUS_MESSAGE_LEN + \
					   FP_TRACESTATE_MAX_LEN + FP_SPAN_MAX_ATTRS * ATTR_WIRE_MAX + \
					   FP_SPAN_MAX_EVENTS * EVENT_WIRE_MAX)
#define LOG_WIRE_MAX (128 + sizeof(((FpLogRecord *) 0)->severity_text) + \
					  FP_LOG_EVENT_NAME_LEN + FP_LOG_BODY_LEN + \
					  FP_LOG_MAX_ATTRS * ATTR_WIRE_MAX)

/* Bytes of the varint of v */
static inline int
varint_size(uint64 v)
{
	int			n = 1;

	while (v >= 0x80)
	{
		v >>= 7;
		n++;
	}
	return n;
}

/* The writes below assume the room was reserved (see the file banner) */
static inline void
put_varint(StringInfo b, uint64 v)
{
	uint8	   *p = (uint8 *) b->data + b->len;

	while (v >= 0x80)
	{
		*p++ = (uint8) (v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8) v;
	b->len = (char *) p - b->data;
}

static inline void
put_tag(StringInfo b, int field, int wire_type)
{
	put_varint(b, ((uint64) field << 3) | wire_type);
}

static inline void
put_bytes(StringInfo b, int field, const void *data, size_t len)
{
	put_tag(b, field, WT_LEN);
	put_varint(b, len);
	memcpy(b->data + b->len, data, len);
	b->len += len;
}

/* A string field, left out when empty */
static inline void
put_string(StringInfo b, int field, const char *s)
{
	if (s[0] != '\0')
		put_bytes(b, field, s, strlen(s));
}

/* A varint field (uint32, int64, enum), left out when zero */
static inline void
put_uint(StringInfo b, int field, uint64 v)
{
	if (v != 0)
	{
		put_tag(b, field, WT_VARINT);
		put_varint(b, v);
	}
}

/* Little-endian fixed-width values, as the wire format stores them */
static inline void
put_le(StringInfo b, uint64 v, int size)
{
	for (int i = 0; i < size; i++)
		b->data[b->len++] = (char) (v >> (8 * i));
}

/* A fixed64 field, left out when zero */
static inline void
put_fixed64(StringInfo b, int field, uint64 v)
{
	if (v != 0)
	{
		put_tag(b, field, WT_I64);
		put_le(b, v, 8);
	}
}

/* A fixed32 field, left out when zero */
static inline void
put_fixed32(StringInfo b, int field, uint32 v)
{
	if (v != 0)
	{
		put_tag(b, field, WT_I32);
		put_le(b, v, 4);
	}
}

/* An id (bytes), left out when all zero */
static inline void
put_id(StringInfo b, int field, const uint8 *id, size_t len)
{
	for (size_t i = 0; i < len; i++)
	{
		if (id[i] != 0)
		{
			put_bytes(b, field, id, len);
			return;
		}
	}
}

/*
 * Open a nested message: its tag, then reserve bytes for its length.
 * Returns where its content starts, for end_message.
 */
static inline int
begin_message(StringInfo b, int field, int reserve)
{
	put_tag(b, field, WT_LEN);
	b->len += reserve;
	return b->len;
}

/*
 * Close a nested message opened with reserve bytes for its length: write
 * the length, moving the content when its varint takes another size.
 */
static inline void
end_message(StringInfo b, int start, int reserve)
{
	int			len = b->len - start;
	int			size = varint_size(len);
	int			save;

	if (size != reserve)
	{
		if (size > reserve)
			enlargeStringInfo(b, size - reserve);
		memmove(b->data + start + size - reserve, b->data + start, len);
	}
	save = start + size - reserve + len;
	b->len = start - reserve;
	put_varint(b, len);
	b->len = save;
}

/* KeyValue (common.proto): key = 1, value = 2 (AnyValue) */
static void
put_attribute(StringInfo b, int field, const FpAttrView *a)
{
	int			kv = begin_message(b, field, 1);
	int			v;

	if (a->key_len > 0)
		put_bytes(b, 1, a->key, a->key_len);
	v = begin_message(b, 2, 1);
	/* AnyValue: a oneof, written whatever its value */
	switch (a->type)
	{
		case FP_ATTR_INT:
			put_tag(b, 3, WT_VARINT);
			put_varint(b, (uint64) a->i);
			break;
		case FP_ATTR_DOUBLE:
			{
				uint64		bits;

				memcpy(&bits, &a->d, sizeof(bits));
				put_tag(b, 4, WT_I64);
				put_le(b, bits, 8);
			}
			break;
		case FP_ATTR_BOOL:
			put_tag(b, 2, WT_VARINT);
			put_varint(b, a->b ? 1 : 0);
			break;
		default:
			put_bytes(b, 1, a->str, a->str_len);
			break;
	}
	end_message(b, v, 1);
	end_message(b, kv, 1);
}

/* n packed attributes (telemetry.h), each as a KeyValue */
static void
put_attributes(StringInfo b, int field, const char *packed, int n)
{
	for (int i = 0; i < n; i++)
	{
		FpAttrView	a;

		packed = fp_attribution_telemetry_attr_view(packed, &a);
		put_attribute(b, field, &a);
	}
}

/* A KeyValue with a string value */
static void
put_string_attribute(StringInfo b, int field, const char *key,
					 const char *value)
{
	int			kv = begin_message(b, field, 1);
	int			v;

	put_string(b, 1, key);
	v = begin_message(b, 2, 1);
	put_bytes(b, 1, value, strlen(value));
	end_message(b, v, 1);
	end_message(b, kv, 1);
}

/*
 * The frame shared by both requests, up to the records:
 * Export*ServiceRequest { resource_* = 1 { resource = 1, scope_* = 2 {
 * scope = 1, records = 2 ... } } }.  Returns where the two open messages
 * start, for end_request.
 */
static void
begin_request(StringInfo b, int *outer, int *inner)
{
	List	   *pairs = fp_attribution_otlp_resource_pairs();
	ListCell   *lc;
	int			m;

	enlargeStringInfo(b, 64 + list_length(pairs) * 16);
	*outer = begin_message(b, 1, 3);
	/* Resource: attributes = 1 */
	m = begin_message(b, 1, 2);
	foreach(lc, pairs)
	{
		FpOtlpPair *p = lfirst(lc);

		enlargeStringInfo(b, 16 + strlen(p->key) + strlen(p->value));
		put_string_attribute(b, 1, p->key, p->value);
	}
	end_message(b, m, 2);
	enlargeStringInfo(b, 64 + strlen(FP_OTLP_SCOPE_NAME) +
					  strlen(FP_ATTRIBUTION_VERSION));
	*inner = begin_message(b, 2, 3);
	/* InstrumentationScope: name = 1, version = 2 */
	m = begin_message(b, 1, 1);
	put_string(b, 1, FP_OTLP_SCOPE_NAME);
	put_string(b, 2, FP_ATTRIBUTION_VERSION);
	end_message(b, m, 1);
}

/* Close the frame: schema_url = 3 in both the scope and the resource level */
static void
end_request(StringInfo b, int outer, int inner)
{
	enlargeStringInfo(b, 16 + 2 * strlen(FP_OTLP_SCHEMA_URL));
	put_string(b, 3, FP_OTLP_SCHEMA_URL);
	end_message(b, inner, 3);
	put_string(b, 3, FP_OTLP_SCHEMA_URL);
	end_message(b, outer, 3);
}

/*
 * Span (trace.proto), as ScopeSpans.spans = 2: trace_id = 1, span_id = 2,
 * trace_state = 3, parent_span_id = 4, name = 5, kind = 6,
 * start_time_unix_nano = 7, end_time_unix_nano = 8, attributes = 9,
 * dropped_attributes_count = 10, events = 11 (time_unix_nano = 1,
 * name = 2, attributes = 3), status = 15 (message = 2, code = 3),
 * flags = 16.
 */
static void
put_span(StringInfo b, const FpSpanView *v)
{
	const FpSpanRecord *h = v->head;
	int			m = begin_message(b, 2, 2);

	put_id(b, 1, h->trace_id.bytes, sizeof(h->trace_id.bytes));
	put_id(b, 2, h->span_id.bytes, sizeof(h->span_id.bytes));
	put_string(b, 3, v->trace_state);
	put_id(b, 4, h->parent_span_id.bytes, sizeof(h->parent_span_id.bytes));
	put_string(b, 5, h->name);
	put_uint(b, 6, h->kind);
	put_fixed64(b, 7, (uint64) h->start_time_unix_nano);
	put_fixed64(b, 8, (uint64) h->end_time_unix_nano);
	put_attributes(b, 9, v->attrs, v->n_attrs);
	put_uint(b, 10, v->dropped_attributes_count);
	for (int e = 0; e < v->n_events; e++)
	{
		const FpSpanEvent *ev = &v->events[e];
		int			em = begin_message(b, 11, 2);

		put_fixed64(b, 1, (uint64) ev->time_unix_nano);
		put_string(b, 2, ev->name);
		for (int i = 0; i < ev->n_attrs; i++)
		{
			FpAttrView	a;

			fp_attribution_attr_view_of(&ev->attrs[i], &a);
			put_attribute(b, 3, &a);
		}
		end_message(b, em, 2);
	}
	if (h->status_code != FP_STATUS_UNSET)
	{
		int			sm = begin_message(b, 15, 1);

		put_string(b, 2, h->status_message);
		put_uint(b, 3, h->status_code);
		end_message(b, sm, 1);
	}
	put_fixed32(b, 16, h->flags | SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE |
				(h->parent_is_remote ? SPAN_FLAGS_CONTEXT_IS_REMOTE : 0));
	end_message(b, m, 2);
}

/* ExportTraceServiceRequest (trace_service.proto) for n packed spans */
StringInfo
fp_attribution_otlp_protobuf_spans(const char *packed, int n)
{
	StringInfo	b = makeStringInfo();
	int			outer,
				inner;

	begin_request(b, &outer, &inner);
	for (int i = 0; i < n; i++)
	{
		FpSpanView	v;

		packed = fp_attribution_telemetry_span_view(packed, &v);
		enlargeStringInfo(b, SPAN_WIRE_MAX);
		put_span(b, &v);
	}
	end_request(b, outer, inner);
	b->data[b->len] = '\0';
	return b;
}

/*
 * LogRecord (logs.proto), as ScopeLogs.log_records = 2: time_unix_nano = 1,
 * severity_number = 2, severity_text = 3, body = 5 (AnyValue),
 * attributes = 6, dropped_attributes_count = 7, flags = 8, trace_id = 9,
 * span_id = 10, observed_time_unix_nano = 11, event_name = 12.
 */
static void
put_log(StringInfo b, const FpLogView *lv)
{
	const FpLogRecord *r = lv->head;
	int			m = begin_message(b, 2, 2);

	put_fixed64(b, 1, (uint64) r->time_unix_nano);
	put_uint(b, 2, r->severity_number);
	put_string(b, 3, r->severity_text);
	if (r->body[0] != '\0')
	{
		int			bm = begin_message(b, 5, 2);

		put_bytes(b, 1, r->body, strlen(r->body));
		end_message(b, bm, 2);
	}
	put_attributes(b, 6, lv->attrs, lv->n_attrs);
	put_uint(b, 7, r->dropped_attributes_count);
	put_fixed32(b, 8, r->flags);
	put_id(b, 9, r->trace_id.bytes, sizeof(r->trace_id.bytes));
	put_id(b, 10, r->span_id.bytes, sizeof(r->span_id.bytes));
	put_fixed64(b, 11, (uint64) r->observed_time_unix_nano);
	put_string(b, 12, r->event_name);
	end_message(b, m, 2);
}

/* ExportLogsServiceRequest (logs_service.proto) for n packed log records */
StringInfo
fp_attribution_otlp_protobuf_logs(const char *packed, int n)
{
	StringInfo	b = makeStringInfo();
	int			outer,
				inner;

	begin_request(b, &outer, &inner);
	for (int i = 0; i < n; i++)
	{
		FpLogView	lv;

		packed = fp_attribution_telemetry_log_view(packed, &lv);
		enlargeStringInfo(b, LOG_WIRE_MAX);
		put_log(b, &lv);
	}
	end_request(b, outer, inner);
	b->data[b->len] = '\0';
	return b;
}
