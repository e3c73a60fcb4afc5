/*-------------------------------------------------------------------------
 *
 * otlp_json.c
 *	  Serialize any protobuf-c message as OTLP/JSON, by walking the
 *	  descriptors protoc-c generated from proto/.
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
