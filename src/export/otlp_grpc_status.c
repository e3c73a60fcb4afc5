/*-------------------------------------------------------------------------
 *
 * otlp_grpc_status.c
 *	  Read the retry delay a gRPC server asks for: the google.rpc.RetryInfo
 *	  among the details of the google.rpc.Status in the
 *	  grpc-status-details-bin trailer.
 *
 * The OTLP specification makes RESOURCE_EXHAUSTED retryable only when the
 * server sends a RetryInfo, and asks clients to wait the delay it names
 * for any retryable code.  The trailer is base64 (gRPC sends it without
 * padding; both forms are accepted) of a serialized Status:
 *
 *	 Status    { int32 code = 1; string message = 2; repeated Any details = 3; }
 *	 Any       { string type_url = 1; bytes value = 2; }
 *	 RetryInfo { Duration retry_delay = 1; }
 *	 Duration  { int64 seconds = 1; int32 nanos = 2; }
 *
 * Four small messages do not justify generated code and the well-known
 * types' .proto files, so this walks the protobuf wire format by hand,
 * skipping every field it does not need.  Anything malformed means "no
 * RetryInfo".
 *
 * Pure functions of their input: no shared state, nothing to lock.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/base64.h"

#include "fp_attribution/otlp.h"

#define RETRY_INFO_TYPE_URL "type.googleapis.com/google.rpc.RetryInfo"

/* Longest delay we represent, in ms: an hour, as for Retry-After */
#define MAX_RETRY_DELAY_MS (3600 * 1000)

/* Protobuf wire types */
#define WIRE_VARINT 0
#define WIRE_I64 1
#define WIRE_LEN 2
#define WIRE_I32 5

/* A cursor over one serialized message */
typedef struct PbReader
{
	const uint8 *p;
	const uint8 *end;
} PbReader;

/* One field: its number and either its varint or its bytes */
typedef struct PbField
{
	uint32		number;
	uint64		varint;
	const uint8 *data;
	size_t		len;
} PbField;

/* Read a base-128 varint; false if it runs past the end or over 64 bits */
static bool
read_varint(PbReader *r, uint64 *value)
{
	*value = 0;
	for (int shift = 0; shift < 64; shift += 7)
	{
		uint8		b;

		if (r->p >= r->end)
			return false;
		b = *r->p++;
		*value |= (uint64) (b & 0x7F) << shift;
		if ((b & 0x80) == 0)
			return true;
	}
	return false;
}

/*
 * The next field of the message, or false at its end or on malformed
 * input.  Fixed-width fields are skipped over; their value is not needed.
 */
static bool
next_field(PbReader *r, PbField *f)
{
	uint64		key;

	if (r->p >= r->end || !read_varint(r, &key))
		return false;
	f->number = (uint32) (key >> 3);
	f->varint = 0;
	f->data = NULL;
	f->len = 0;
	switch (key & 7)
	{
		case WIRE_VARINT:
			return read_varint(r, &f->varint);
		case WIRE_I64:
		case WIRE_I32:
			{
				size_t		width = (key & 7) == WIRE_I64 ? 8 : 4;

				if ((size_t) (r->end - r->p) < width)
					return false;
				r->p += width;
				return true;
			}
		case WIRE_LEN:
			{
				uint64		len;

				if (!read_varint(r, &len) || len > (uint64) (r->end - r->p))
					return false;
				f->data = r->p;
				f->len = (size_t) len;
				r->p += len;
				return true;
			}
		default:
			return false;		/* groups (3, 4) are not used by these types */
	}
}

/* The delay of a serialized RetryInfo in ms, or -1 */
static int
retry_info_ms(const uint8 *data, size_t len)
{
	PbReader	info = {data, data + len};
	PbField		f;

	while (next_field(&info, &f))
	{
		PbReader	duration;
		int64		seconds = 0;
		int64		nanos = 0;

		if (f.number != 1 || f.data == NULL)
			continue;
		duration.p = f.data;
		duration.end = f.data + f.len;
		while (next_field(&duration, &f))
		{
			/* int64 and int32 as varints: negative ones are ten bytes */
			if (f.number == 1)
				seconds = (int64) f.varint;
			else if (f.number == 2)
				nanos = (int32) f.varint;
		}
		if (seconds < 0 || nanos < 0)
			return -1;
		if (seconds >= MAX_RETRY_DELAY_MS / 1000)
			return MAX_RETRY_DELAY_MS;
		return (int) (seconds * 1000 + nanos / 1000000);
	}
	return -1;
}

/*
 * The retry delay in ms named by a grpc-status-details-bin value (b64,
 * len bytes, not NUL-terminated), capped at an hour; -1 when it names
 * none or does not parse.
 */
int
fp_attribution_grpc_retry_delay_ms(const char *b64, size_t len)
{
	char	   *padded;
	char	   *raw;
	int			rawlen;
	PbReader	status;
	PbField		f;
	int			result = -1;

	if (len == 0 || len > 64 * 1024)
		return -1;
	padded = palloc(len + 4);
	memcpy(padded, b64, len);
	while (len % 4 != 0)
		padded[len++] = '=';
	raw = palloc(pg_b64_dec_len((int) len));
	rawlen = pg_b64_decode(padded, (int) len, raw, pg_b64_dec_len((int) len));
	status.p = (const uint8 *) raw;
	status.end = status.p + Max(rawlen, 0);
	while (rawlen > 0 && result < 0 && next_field(&status, &f))
	{
		PbReader	any;
		const uint8 *value = NULL;
		size_t		value_len = 0;
		bool		is_retry_info = false;

		if (f.number != 3 || f.data == NULL)
			continue;
		any.p = f.data;
		any.end = f.data + f.len;
		while (next_field(&any, &f))
		{
			if (f.number == 1 && f.data != NULL)
				is_retry_info = (f.len == strlen(RETRY_INFO_TYPE_URL) &&
								 memcmp(f.data, RETRY_INFO_TYPE_URL, f.len) == 0);
			else if (f.number == 2 && f.data != NULL)
			{
				value = f.data;
				value_len = f.len;
			}
		}
		if (is_retry_info && value != NULL)
			result = retry_info_ms(value, value_len);
	}
	pfree(padded);
	pfree(raw);
	return result;
}
