/*-------------------------------------------------------------------------
 *
 * redact.c
 *	  Remove the secrets of URLs from a message before it is shown.
 *
 * Endpoints may carry credentials (http://user:token@host/) or tokens in
 * their query string, and the exporter's errors name the URL they failed
 * on.  Every message that reaches the server log or
 * attribution.exporter_status goes through fp_attribution_redact_urls
 * first, which replaces the userinfo and the query string (and fragment)
 * of every URL in it by "***".
 *
 * The rule errs towards hiding: a URL is whatever follows "://" up to a
 * blank, a control character, a quote or an angle bracket; its userinfo
 * is everything up to the token's last "@" (so a password holding a raw
 * "/", "?" or "#", which libcurl would not parse as userinfo, is hidden
 * too, at the price of also hiding the host of a URL whose path or query
 * holds an "@").  One ":" ending the token is kept, as the exporter
 * writes "<url>: <why>".
 *
 * Writes into a caller's buffer, allocating nothing, so it can run in the
 * worker's error paths.  No shared state: nothing to lock.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fp_attribution/redact.h"

#define REDACTED "***"

/* Does c end a URL inside a message? */
static bool
ends_url(unsigned char c)
{
	return c <= ' ' || c == 0x7F || c == '"' || c == '\'' || c == '<' ||
		c == '>';
}

/* Append [s, s + len) to dst[*used], truncating at dstsize - 1 */
static void
append(char *dst, size_t dstsize, size_t *used, const char *s, size_t len)
{
	size_t		room = dstsize - 1 - *used;

	if (len > room)
		len = room;
	memcpy(dst + *used, s, len);
	*used += len;
}

/*
 * Copy src to dst (at most dstsize bytes with the terminator) with the
 * userinfo and the query string of every URL replaced by "***".  Applying
 * it twice gives the same result as once.
 */
void
fp_attribution_redact_urls(char *dst, const char *src, size_t dstsize)
{
	size_t		used = 0;
	const char *p = src;

	Assert(dstsize > 0);
	while (*p)
	{
		const char *scheme_end = strstr(p, "://");
		const char *start;
		const char *end;
		const char *at = NULL;
		const char *query;

		if (scheme_end == NULL)
		{
			append(dst, dstsize, &used, p, strlen(p));
			break;
		}
		start = scheme_end + 3;
		append(dst, dstsize, &used, p, start - p);
		for (end = start; *end && !ends_url((unsigned char) *end); end++)
			if (*end == '@')
				at = end;
		if (end > start && end[-1] == ':')
			end--;
		if (at)
		{
			append(dst, dstsize, &used, REDACTED "@", strlen(REDACTED "@"));
			start = at + 1;
		}
		query = start + strcspn(start, "?#");
		if (query < end)
		{
			append(dst, dstsize, &used, start, query + 1 - start);
			append(dst, dstsize, &used, REDACTED, strlen(REDACTED));
		}
		else
			append(dst, dstsize, &used, start, end - start);
		p = end;
	}
	dst[used] = '\0';
}
