/*-------------------------------------------------------------------------
 *
 * postback_template.c
 *	  Postback URL templates: validation, macro expansion with
 *	  percent-encoding, the JSON body of a POST and the HMAC-SHA256
 *	  signature.
 *
 * A template is an http:// or https:// URL whose path, query or fragment
 * may hold macros, "{name}" for the names in macro_names below.  Macros
 * are refused in the scheme and authority, so a value (say an order id
 * chosen by a shopper) can never pick the host a postback goes to.  Each
 * value is percent-encoded on expansion (everything but RFC 3986's
 * unreserved characters), so it stays one query value or path segment
 * whatever it holds; a missing value (a conversion without an offer)
 * expands to the empty string.
 *
 * Signature: hex(HMAC-SHA256(secret, "<timestamp>.<message>")), where the
 * timestamp is Unix seconds and the message the request body for POST,
 * or the request target (the path and query, as in the request line) for
 * GET, which has no body.  The receiver recomputes it from what it got,
 * checks the timestamp is recent (replay) and compares in constant time.
 *
 * Domain logic only: no fmgr, no shared state.  Results are palloc'd in
 * the caller's context.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/sha.h>

#include "common/sha2.h"
#include "lib/stringinfo.h"
#include "utils/json.h"

#include "fp_attribution/ids.h"
#include "fp_attribution/postbacks.h"

/* Longest template, in bytes */
#define TEMPLATE_MAX_LEN 4096

static const char *const macro_names[] = {
	"event", "advertiser_id", "affiliate_id", "click_id", "order_id",
	"offer_id", "status", "revenue_cents", "refunded_cents",
	"commission_cents", "currency", "receipt_id", "trace_id", "delivery_id"
};

/* The value of macro i of v (same order as macro_names), or NULL */
static const char *
macro_value(int i, const FpPostbackValues *v)
{
	const char *const values[] = {
		v->event, v->advertiser_id, v->affiliate_id, v->click_id,
		v->order_id, v->offer_id, v->status, v->revenue_cents,
		v->refunded_cents, v->commission_cents, v->currency,
		v->receipt_id, v->trace_id, v->delivery_id
	};

	StaticAssertStmt(lengthof(values) == lengthof(macro_names),
					 "every macro has a value");
	return values[i];
}

/* Index of the macro whose name is [name, name + len), or -1 */
static int
find_macro(const char *name, size_t len)
{
	for (int i = 0; i < lengthof(macro_names); i++)
		if (strlen(macro_names[i]) == len &&
			strncmp(macro_names[i], name, len) == 0)
			return i;
	return -1;
}

/* Length of the scheme and "://" of an http(s) URL, or 0 */
static size_t
scheme_len(const char *url)
{
	if (pg_strncasecmp(url, "http://", 7) == 0)
		return 7;
	if (pg_strncasecmp(url, "https://", 8) == 0)
		return 8;
	return 0;
}

/*
 * Is url_template a valid template?  If not, why (a sentence, with no
 * part of the template in it) is written to why.
 */
bool
fp_attribution_postback_template_valid(const char *url_template, char *why,
									   size_t whysize)
{
	size_t		start = scheme_len(url_template);
	size_t		authority_end;
	const char *p;

	if (start == 0)
	{
		strlcpy(why, "Only http:// and https:// URLs are allowed.", whysize);
		return false;
	}
	if (strlen(url_template) > TEMPLATE_MAX_LEN)
	{
		snprintf(why, whysize, "A URL template is at most %d bytes.",
				 TEMPLATE_MAX_LEN);
		return false;
	}
	for (p = url_template; *p; p++)
		if ((unsigned char) *p <= ' ' || *p == 0x7F)
		{
			strlcpy(why, "A URL must not hold a blank or a control character.",
					whysize);
			return false;
		}
	authority_end = start + strcspn(url_template + start, "/?#");
	if (authority_end == start || url_template[authority_end - 1] == '@')
	{
		strlcpy(why, "The URL has no host.", whysize);
		return false;
	}
	if (memchr(url_template + start, '{', authority_end - start) != NULL ||
		memchr(url_template + start, '}', authority_end - start) != NULL)
	{
		strlcpy(why, "Macros are allowed in the path, query and fragment only, not in the host.",
				whysize);
		return false;
	}
	for (p = url_template + authority_end; *p; p++)
	{
		const char *close;

		if (*p == '}')
		{
			strlcpy(why, "A \"}\" must close a macro.", whysize);
			return false;
		}
		if (*p != '{')
			continue;
		close = strchr(p + 1, '}');
		if (close == NULL || find_macro(p + 1, close - p - 1) < 0)
		{
			strlcpy(why, "Unknown or unterminated macro; the macros are {event}, {advertiser_id}, {affiliate_id}, {click_id}, {order_id}, {offer_id}, {status}, {revenue_cents}, {refunded_cents}, {commission_cents}, {currency}, {receipt_id}, {trace_id} and {delivery_id}.",
					whysize);
			return false;
		}
		p = close;
	}
	return true;
}

/* Append s percent-encoded: all but RFC 3986 unreserved characters */
static void
append_encoded(StringInfo out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
			c == '~')
			appendStringInfoChar(out, (char) c);
		else
		{
			appendStringInfoChar(out, '%');
			appendStringInfoChar(out, hex[c >> 4]);
			appendStringInfoChar(out, hex[c & 15]);
		}
	}
}

/*
 * The URL of a delivery: url_template (valid) with every macro replaced
 * by its value, percent-encoded.
 */
char *
fp_attribution_postback_expand(const char *url_template,
							   const FpPostbackValues *v)
{
	StringInfoData out;
	const char *p = url_template;

	initStringInfo(&out);
	while (*p)
	{
		const char *open = strchr(p, '{');
		const char *close;
		int			macro;

		if (open == NULL)
		{
			appendStringInfoString(&out, p);
			break;
		}
		appendBinaryStringInfo(&out, p, open - p);
		close = strchr(open, '}');
		macro = close ? find_macro(open + 1, close - open - 1) : -1;
		if (macro < 0)
			elog(ERROR, "invalid postback URL template");
		if (macro_value(macro, v) != NULL)
			append_encoded(&out, macro_value(macro, v));
		p = close + 1;
	}
	return out.data;
}

/*
 * The JSON body of a POST: every macro's value under its name, amounts as
 * numbers, missing values as null.
 */
char *
fp_attribution_postback_body(const FpPostbackValues *v)
{
	StringInfoData out;

	initStringInfo(&out);
	appendStringInfoChar(&out, '{');
	for (int i = 0; i < lengthof(macro_names); i++)
	{
		const char *value = macro_value(i, v);
		bool		number = strstr(macro_names[i], "_cents") != NULL;

		if (i > 0)
			appendStringInfoChar(&out, ',');
		escape_json(&out, macro_names[i]);
		appendStringInfoChar(&out, ':');
		if (value == NULL)
			appendStringInfoString(&out, "null");
		else if (number)
			appendStringInfoString(&out, value);
		else
			escape_json(&out, value);
	}
	appendStringInfoChar(&out, '}');
	return out.data;
}

/*
 * HMAC-SHA256 (RFC 2104) of the concatenation of the nparts strings,
 * with OpenSSL's SHA256_* as signing.c hashes (and for the same reason):
 * through pg_hmac, OpenSSL 3 fetched the digest and built an HMAC
 * context for every request, 40 % of the signature's cost.
 */
static void
hmac_sha256(const char *key, int nparts, const char *const *parts, uint8 *mac)
{
	uint8		k[SHA256_CBLOCK] = {0};
	uint8		pad[SHA256_CBLOCK];
	uint8		inner[SHA256_DIGEST_LENGTH];
	size_t		keylen = strlen(key);
	SHA256_CTX	ctx;

	/* a key longer than a block is replaced by its hash */
	if (keylen > SHA256_CBLOCK)
		SHA256((const uint8 *) key, keylen, k);
	else
		memcpy(k, key, keylen);

	for (int i = 0; i < SHA256_CBLOCK; i++)
		pad[i] = k[i] ^ 0x36;
	SHA256_Init(&ctx);
	SHA256_Update(&ctx, pad, SHA256_CBLOCK);
	for (int i = 0; i < nparts; i++)
		SHA256_Update(&ctx, parts[i], strlen(parts[i]));
	SHA256_Final(inner, &ctx);

	for (int i = 0; i < SHA256_CBLOCK; i++)
		pad[i] = k[i] ^ 0x5c;
	SHA256_Init(&ctx);
	SHA256_Update(&ctx, pad, SHA256_CBLOCK);
	SHA256_Update(&ctx, inner, SHA256_DIGEST_LENGTH);
	SHA256_Final(mac, &ctx);

	explicit_bzero(k, sizeof(k));
	explicit_bzero(pad, sizeof(pad));
	explicit_bzero(&ctx, sizeof(ctx));
}

/*
 * The signature header's value, "t=<timestamp>,v1=<hex HMAC-SHA256 of
 * '<timestamp>.<message>'>".
 */
char *
fp_attribution_postback_signature(const char *secret, int64 timestamp,
								  const char *message)
{
	char		ts[32];
	uint8		mac[PG_SHA256_DIGEST_LENGTH];
	char		mac_hex[2 * PG_SHA256_DIGEST_LENGTH + 1];

	snprintf(ts, sizeof(ts), INT64_FORMAT ".", timestamp);
	hmac_sha256(secret, 2, (const char *const[]) {ts, message}, mac);
	/* not a "%02x" format per byte: that was a third of the signature's cost */
	fp_attribution_hex_encode(mac, PG_SHA256_DIGEST_LENGTH, mac_hex);
	return psprintf("t=" INT64_FORMAT ",v1=%s", timestamp, mac_hex);
}
