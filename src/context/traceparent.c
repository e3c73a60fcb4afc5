/*-------------------------------------------------------------------------
 *
 * traceparent.c
 *	  Strict W3C Trace Context (level 1) parsing of traceparent, validation
 *	  of tracestate, and SQLCommenter extraction.
 *
 * Parsing follows the W3C rules exactly: lowercase hex only, version "ff"
 * is invalid, all-zero trace and parent ids are invalid, and a version
 * newer than 00 is parsed by its 00-compatible 55-character prefix, which
 * must be followed by end of string or '-'.  Nothing here allocates or
 * raises errors: callers decide what an invalid header means (the W3C
 * answer is "ignore it and start a new trace").
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "parser/scansup.h"

#include "fp_attribution/traceparent.h"

static const char hex_digits[] = "0123456789abcdef";

/*
 * Value of one lowercase hex digit, or -1.  Uppercase is rejected on
 * purpose: W3C requires lowercase and says to treat anything else as
 * invalid.
 */
static inline int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * Decode exactly outlen bytes from 2 * outlen lowercase hex characters.
 * Returns false on a length mismatch or a character that is not lowercase
 * hex.
 */
bool
fp_attribution_hex_decode(const char *hex, int hexlen, uint8 *out, int outlen)
{
	if (hexlen != outlen * 2)
		return false;
	for (int i = 0; i < outlen; i++)
	{
		int			hi = hex_value(hex[2 * i]);
		int			lo = hex_value(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8) ((hi << 4) | lo);
	}
	return true;
}

/*
 * Encode inlen bytes as lowercase hex into out, which must have room for
 * 2 * inlen + 1 characters; the result is NUL-terminated.
 */
void
fp_attribution_hex_encode(const uint8 *in, int inlen, char *out)
{
	for (int i = 0; i < inlen; i++)
	{
		out[2 * i] = hex_digits[in[i] >> 4];
		out[2 * i + 1] = hex_digits[in[i] & 0x0f];
	}
	out[2 * inlen] = '\0';
}

/*
 * True if all len bytes are zero, the W3C "invalid" id.
 */
bool
fp_attribution_id_is_zero(const uint8 *bytes, int len)
{
	uint8		acc = 0;

	for (int i = 0; i < len; i++)
		acc |= bytes[i];
	return acc == 0;
}

/*
 * Parse a traceparent header value of length len into *out.
 *
 * Returns false for anything the W3C specification calls invalid; *out is
 * then unspecified.  Leading or trailing whitespace is not trimmed: HTTP
 * frameworks strip it before the value reaches us, and an application
 * passing padded text has a bug we should count, not hide.
 */
bool
fp_attribution_parse_traceparent(const char *text, int len, FpTraceParent *out)
{
	uint8		version;

	if (text == NULL || len < FP_TRACEPARENT_LEN)
		return false;
	if (!fp_attribution_hex_decode(text, 2, &version, 1) || version == 0xff)
		return false;
	if (version == 0 && len != FP_TRACEPARENT_LEN)
		return false;
	/* A future version may append fields, separated by '-' */
	if (len > FP_TRACEPARENT_LEN && text[FP_TRACEPARENT_LEN] != '-')
		return false;
	if (text[2] != '-' || text[35] != '-' || text[52] != '-')
		return false;
	if (!fp_attribution_hex_decode(text + 3, 32, out->trace_id.bytes,
								   FP_TRACE_ID_LEN) ||
		!fp_attribution_hex_decode(text + 36, 16, out->parent_id.bytes,
								   FP_SPAN_ID_LEN) ||
		!fp_attribution_hex_decode(text + 53, 2, &out->flags, 1))
		return false;
	if (fp_attribution_id_is_zero(out->trace_id.bytes, FP_TRACE_ID_LEN) ||
		fp_attribution_id_is_zero(out->parent_id.bytes, FP_SPAN_ID_LEN))
		return false;
	out->version = version;
	return true;
}

/*
 * Format a version-00 traceparent into out (FP_TRACEPARENT_LEN + 1 bytes).
 */
void
fp_attribution_format_traceparent(const FpTraceId *trace_id,
								  const FpSpanId *span_id, uint8 flags,
								  char *out)
{
	out[0] = '0';
	out[1] = '0';
	out[2] = '-';
	fp_attribution_hex_encode(trace_id->bytes, FP_TRACE_ID_LEN, out + 3);
	out[35] = '-';
	fp_attribution_hex_encode(span_id->bytes, FP_SPAN_ID_LEN, out + 36);
	out[52] = '-';
	fp_attribution_hex_encode(&flags, 1, out + 53);
}

/*
 * Light validation of a tracestate value: bounded length and printable
 * ASCII (W3C allows 0x20-0x7e).  Member syntax is left to the vendors that
 * own each entry; we only carry the header through.
 */
bool
fp_attribution_tracestate_is_valid(const char *text, int len)
{
	if (len > FP_TRACESTATE_MAX_LEN)
		return false;
	for (int i = 0; i < len; i++)
	{
		if (text[i] < 0x20 || text[i] > 0x7e)
			return false;
	}
	return true;
}

/*
 * Decode %XX escapes of src[0..len) into out (outsize bytes, NUL
 * terminated).  Returns false on a malformed escape or overflow.
 */
static bool
url_decode(const char *src, int len, char *out, int outsize)
{
	int			n = 0;

	for (int i = 0; i < len; i++)
	{
		char		c = src[i];

		if (c == '%')
		{
			int			hi,
						lo;

			if (i + 2 >= len)
				return false;
			hi = hex_value(pg_ascii_tolower((unsigned char) src[i + 1]));
			lo = hex_value(pg_ascii_tolower((unsigned char) src[i + 2]));
			if (hi < 0 || lo < 0)
				return false;
			c = (char) ((hi << 4) | lo);
			i += 2;
		}
		if (n + 1 >= outsize)
			return false;
		out[n++] = c;
	}
	out[n] = '\0';
	return true;
}

/*
 * Return the position of the comma that ends the pair starting at p (or
 * end), ignoring commas inside quoted values.
 */
static const char *
skip_pair(const char *p, const char *end)
{
	bool		quoted = false;

	for (; p < end; p++)
	{
		if (*p == '\'')
			quoted = !quoted;
		else if (*p == ',' && !quoted)
			break;
	}
	return p;
}

/*
 * Find key='value' in the SQLCommenter comment that ends query, and
 * URL-decode the value into out.
 *
 * SQLCommenter appends one comment, of comma-separated key='value' pairs,
 * at the very end of the statement (a trailing semicolon and whitespace
 * are allowed).  Looking only there means a string literal in the query
 * that happens to contain "traceparent=" is never mistaken for context.
 */
bool
fp_attribution_sqlcomment_value(const char *query, const char *key,
								char *out, int outsize)
{
	const char *end;
	const char *start;
	const char *p;
	size_t		keylen = strlen(key);

	if (query == NULL)
		return false;
	end = query + strlen(query);
	while (end > query && (end[-1] == ';' || scanner_isspace(end[-1])))
		end--;
	if (end - query < 4 || end[-1] != '/' || end[-2] != '*')
		return false;
	end -= 2;					/* now at the closing star-slash */
	for (start = end - 1; start > query; start--)
	{
		if (start[-1] == '/' && start[0] == '*')
			break;
	}
	if (start <= query)
		return false;
	p = start + 1;

	while (p < end)
	{
		const char *value;
		const char *value_end;

		while (p < end && (*p == ',' || scanner_isspace(*p)))
			p++;
		if ((size_t) (end - p) > keylen + 2 &&
			strncmp(p, key, keylen) == 0 && p[keylen] == '=' &&
			p[keylen + 1] == '\'')
		{
			value = p + keylen + 2;
			value_end = memchr(value, '\'', end - value);
			if (value_end == NULL)
				return false;
			return url_decode(value, value_end - value, out, outsize);
		}
		p = skip_pair(p, end);
	}
	return false;
}
