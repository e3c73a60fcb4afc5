/*-------------------------------------------------------------------------
 *
 * tracestate_ot.c
 *	  The OpenTelemetry member of a W3C tracestate ("ot=th:...;rv:..."),
 *	  as OpenTelemetry's consistent probability sampling defines it.
 *
 * A tracestate is a comma-separated list of key=value members (optional
 * blanks around the commas).  The "ot" member's value is a semicolon-
 * separated list of sub-keys "k:v"; two matter for sampling:
 *	th	the rejection threshold T: 1 to 14 lowercase hex digits, read as a
 *		56-bit number padded with trailing zeros ("th:8" = 2^55, 50 %);
 *		a span was sampled when its randomness R >= T
 *	rv	explicit randomness R: exactly 14 hex digits; without it R is the
 *		trace id's low 56 bits
 * When this code changes the ot member it moves it to the front of the
 * list, as W3C Trace Context asks of a member its owner updates; every
 * other member, and every other ot sub-key, is kept as it came, in order.
 *
 * Pure functions, no shared state.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "fp_attribution/tracestate_ot.h"

#define OT_HEX_DIGITS 14		/* 56 bits */

/* Skip W3C optional white space (blanks and tabs) */
static const char *
skip_ows(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

/* One list member, without the white space around it */
typedef struct OtElement
{
	const char *start;
	int			len;
} OtElement;

/*
 * The next sep-separated element of [*p, end), trimmed; advances *p past
 * its separator.  Returns false when the list is exhausted.
 */
static bool
next_element(const char **p, const char *end, char sep, OtElement *out)
{
	const char *s;
	const char *e;

	if (*p > end)
		return false;
	s = skip_ows(*p, end);
	e = memchr(s, sep, end - s);
	if (e == NULL)
		e = end;
	*p = e + 1;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	out->start = s;
	out->len = e - s;
	return true;
}

/* Parse mindigits to 14 lowercase hex digits, left-aligned in 56 bits */
static bool
parse_hex56(const char *s, int len, int mindigits, uint64 *out)
{
	uint64		v = 0;

	if (len < mindigits || len > OT_HEX_DIGITS)
		return false;
	for (int i = 0; i < len; i++)
	{
		int			d;

		if (s[i] >= '0' && s[i] <= '9')
			d = s[i] - '0';
		else if (s[i] >= 'a' && s[i] <= 'f')
			d = s[i] - 'a' + 10;
		else
			return false;
		v = (v << 4) | d;
	}
	*out = v << (4 * (OT_HEX_DIGITS - len));
	return true;
}

/* Is this member the "ot" one?  Its value goes to *value. */
static bool
is_ot_member(const OtElement *m, OtElement *value)
{
	if (m->len < 3 || strncmp(m->start, "ot=", 3) != 0)
		return false;
	value->start = m->start + 3;
	value->len = m->len - 3;
	return true;
}

/*
 * Read th and rv from the ot member of tracestate (may be NULL).  A value
 * that is not well formed counts as absent.
 */
void
fp_attribution_ot_parse(const char *tracestate, FpOtSampling *out)
{
	const char *p;
	const char *end;
	OtElement		m;

	memset(out, 0, sizeof(*out));
	if (tracestate == NULL)
		return;
	p = tracestate;
	end = tracestate + strlen(tracestate);
	while (next_element(&p, end, ',', &m))
	{
		OtElement		value;
		const char *q;
		const char *vend;
		OtElement		sub;

		if (!is_ot_member(&m, &value))
			continue;
		q = value.start;
		vend = value.start + value.len;
		while (next_element(&q, vend, ';', &sub))
		{
			if (sub.len > 3 && strncmp(sub.start, "th:", 3) == 0)
				out->has_th = parse_hex56(sub.start + 3, sub.len - 3, 1, &out->th);
			else if (sub.len > 3 && strncmp(sub.start, "rv:", 3) == 0)
				out->has_rv = parse_hex56(sub.start + 3, sub.len - 3,
										  OT_HEX_DIGITS, &out->rv);
		}
		return;
	}
}

/*
 * tracestate with the ot member's th replaced by threshold (or removed,
 * when set is false), that member first, everything else as it came.  An
 * ot member left empty is dropped.  Returns a palloc'd string, or NULL
 * when nothing is left.
 */
char *
fp_attribution_ot_set_threshold(const char *tracestate, bool set,
								uint64 threshold)
{
	StringInfoData ot;
	StringInfoData rest;
	const char *p;
	const char *end;
	OtElement		m;

	initStringInfo(&ot);
	initStringInfo(&rest);
	if (set)
	{
		char		hex[OT_HEX_DIGITS + 1];
		int			len = OT_HEX_DIGITS;

		snprintf(hex, sizeof(hex), "%014" INT64_MODIFIER "x", threshold);
		/* trailing zeros are implied; "th:0" stands for zero */
		while (len > 1 && hex[len - 1] == '0')
			len--;
		appendStringInfo(&ot, "th:%.*s", len, hex);
	}
	p = tracestate != NULL ? tracestate : "";
	end = p + strlen(p);
	while (next_element(&p, end, ',', &m))
	{
		OtElement		value;

		if (m.len == 0)
			continue;
		if (is_ot_member(&m, &value))
		{
			const char *q = value.start;
			const char *vend = value.start + value.len;
			OtElement		sub;

			while (next_element(&q, vend, ';', &sub))
			{
				if (sub.len == 0 || strncmp(sub.start, "th:", 3) == 0)
					continue;
				appendStringInfo(&ot, "%s%.*s", ot.len > 0 ? ";" : "",
								 sub.len, sub.start);
			}
			continue;
		}
		appendStringInfo(&rest, "%s%.*s", rest.len > 0 ? "," : "",
						 m.len, m.start);
	}
	if (ot.len == 0 && rest.len == 0)
		return NULL;
	if (ot.len == 0)
		return rest.data;
	if (rest.len == 0)
		return psprintf("ot=%s", ot.data);
	return psprintf("ot=%s,%s", ot.data, rest.data);
}

/*
 * The rejection threshold of a sampling ratio: a trace is sampled when its
 * randomness (56 bits) is at least this.
 */
uint64
fp_attribution_ratio_threshold(double ratio)
{
	if (ratio >= 1.0)
		return 0;
	if (ratio <= 0.0)
		return FP_OT_MAX_THRESHOLD;
	return (uint64) ((1.0 - ratio) * (double) FP_OT_MAX_THRESHOLD);
}
