/*-------------------------------------------------------------------------
 *
 * jcs.c
 *	  RFC 8785 JSON Canonicalization Scheme (JCS) over jsonb.
 *
 * jsonb::text is not canonical: jsonb orders object keys by length first,
 * prints numbers as numeric does and may add spaces.  JCS (RFC 8785) is
 * what any JCS library produces, so receipts can be checked without
 * PostgreSQL:
 *
 *	- no whitespace;
 *	- object members sorted by their keys as arrays of UTF-16 code units
 *	  (section 3.2.3); key and string text in UTF-8;
 *	- strings escaped as ECMAScript JSON.stringify does: \" \\ \b \f \n \r
 *	  \t, other control characters as \u00xx (lower-case hex), everything
 *	  else literal (section 3.2.2.2);
 *	- numbers as ECMAScript Number.prototype.toString() of the IEEE 754
 *	  double (section 3.2.2.3).
 *
 * A jsonb number is a numeric of any precision; JCS has only doubles.  In
 * the JSON.parse sense a number is the double nearest to it, so
 * 40407023462466896 and 40407023462466900 are written alike, as
 * 40407023462466900; only a number beyond the double range (1e400) has no
 * form.  Receipts need more: a payload hash must pin the stored value, so
 * in exact mode a number is accepted only if it already has the value of
 * its canonical text (every number written in RFC 8785 form does), and
 * 40407023462466896 is refused rather than hashed as if it were another
 * number.
 *
 * Nothing here is SQL-callable and nothing touches shared state; the
 * functions only allocate in CurrentMemoryContext.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <stdlib.h>

#include "common/shortest_dec.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/numeric.h"

#include "fp_attribution/jcs.h"

/* One object member, collected so members can be sorted */
typedef struct JcsMember
{
	const char *key;			/* UTF-8, not NUL-terminated */
	int			keylen;
	bool		ascii;			/* the key is all ASCII */
	JsonbValue	value;			/* scalar, or jbvBinary for a container */
} JcsMember;

/* A UTF-8 string read as UTF-16 code units */
typedef struct Utf16Reader
{
	const unsigned char *p;
	const unsigned char *end;
	int			pending;		/* low surrogate still to return, or 0 */
} Utf16Reader;

/*
 * A decimal number as sign, significant digits (no leading or trailing
 * zeros) and the position of the decimal point: value = 0.digits * 10^point.
 * Zero has no digits.
 */
typedef struct DecimalForm
{
	bool		negative;
	char	   *digits;
	int			ndigits;
	int			point;
} DecimalForm;

static bool append_container(StringInfo out, JsonbContainer *jc, bool exact,
							 const char **bad_number);
static bool append_members(StringInfo out, JcsMember *members, int n,
						   bool exact, const char **bad_number);

/*
 * Text as UTF-8: a no-op in a UTF-8 database, a conversion otherwise
 * (JCS is defined on UTF-8).  *len is updated.
 */
static const char *
as_utf8(const char *s, int *len)
{
	char	   *converted;

	if (GetDatabaseEncoding() == PG_UTF8)
		return s;
	converted = pg_server_to_any(s, *len, PG_UTF8);
	if (converted != s)
		*len = strlen(converted);
	return converted;
}

/*
 * The next UTF-16 code unit of the string, or -1 at its end.
 */
static int
next_utf16_unit(Utf16Reader *r)
{
	pg_wchar	cp;
	int			unit;

	if (r->pending != 0)
	{
		unit = r->pending;
		r->pending = 0;
		return unit;
	}
	if (r->p >= r->end)
		return -1;
	cp = utf8_to_unicode(r->p);
	r->p += pg_utf_mblen(r->p);
	if (cp < 0x10000)
		return (int) cp;
	cp -= 0x10000;
	r->pending = 0xDC00 | (cp & 0x3FF);
	return 0xD800 | (cp >> 10);
}

/*
 * True if the len bytes at s are all ASCII.
 */
static bool
is_ascii(const char *s, int len)
{
	for (int i = 0; i < len; i++)
		if (IS_HIGHBIT_SET(s[i]))
			return false;
	return true;
}

/*
 * Comparator of sort_members: member keys as arrays of UTF-16 code units.  UTF-8
 * byte order differs from it for characters above U+FFFF against
 * U+E000..U+FFFF, so the comparison of two keys is a memcmp only when
 * both are ASCII (one code unit a byte), as keys nearly always are:
 * reading code units cost most of canonicalising a payload.
 */
static inline int
member_cmp(const JcsMember *ma, const JcsMember *mb)
{
	Utf16Reader ra;
	Utf16Reader rb;

	if (ma->ascii && mb->ascii)
	{
		int			c;

		/* keys nearly always differ in their first byte: no call then */
		if (ma->keylen > 0 && mb->keylen > 0 && ma->key[0] != mb->key[0])
			return (unsigned char) ma->key[0] < (unsigned char) mb->key[0] ? -1 : 1;
		c = memcmp(ma->key, mb->key, Min(ma->keylen, mb->keylen));

		if (c != 0)
			return c < 0 ? -1 : 1;
		return (ma->keylen > mb->keylen) - (ma->keylen < mb->keylen);
	}

	ra = (Utf16Reader) {(const unsigned char *) ma->key,
	(const unsigned char *) ma->key + ma->keylen, 0};
	rb = (Utf16Reader) {(const unsigned char *) mb->key,
	(const unsigned char *) mb->key + mb->keylen, 0};
	for (;;)
	{
		int			ua = next_utf16_unit(&ra);
		int			ub = next_utf16_unit(&rb);

		if (ua != ub)
			return ua < ub ? -1 : 1;
		if (ua < 0)
			return 0;
	}
}

/*
 * Sort an object's members (sort_template.h, with member_cmp inlined:
 * through qsort's function pointer, sorting a dozen members cost a tenth
 * of verifying a receipt).
 */
#define ST_SORT sort_members
#define ST_ELEMENT_TYPE JcsMember
#define ST_COMPARE(a, b) member_cmp(a, b)
#define ST_SCOPE static
#define ST_DEFINE
#include "lib/sort_template.h"

/* A word with every byte b */
#define EVERY_BYTE(b) (UINT64CONST(0x0101010101010101) * (b))

/*
 * True if one of the 8 bytes at p needs escaping in a JSON string: a
 * control character, '"' or '\\'.  Word-at-a-time tests for a byte below
 * 0x20 and for a zero byte (in p XOR the quote, the backslash), exact as a
 * whole; a UTF-8 byte (0x80 and up) never matches.  Checking strings byte
 * by byte was a tenth of verifying a receipt.
 */
static inline bool
word_needs_escape(const char *p)
{
	uint64		w;
	uint64		quote;
	uint64		backslash;

	memcpy(&w, p, sizeof(w));
	quote = w ^ EVERY_BYTE('"');
	backslash = w ^ EVERY_BYTE('\\');
	return ((((w - EVERY_BYTE(0x20)) & ~w) |
			 ((quote - EVERY_BYTE(0x01)) & ~quote) |
			 ((backslash - EVERY_BYTE(0x01)) & ~backslash)) &
			EVERY_BYTE(0x80)) != 0;
}

/* The length of u's longest prefix that needs no escaping */
static int
plain_prefix(const char *u, int len)
{
	int			i = 0;

	while (i + 8 <= len && !word_needs_escape(u + i))
		i += 8;
	while (i < len && (unsigned char) u[i] >= 0x20 && u[i] != '"' && u[i] != '\\')
		i++;
	return i;
}

/*
 * Append a JSON string in JCS form: the ECMAScript JSON.stringify escapes,
 * everything else as is.  u is UTF-8.  Nearly every string needs no
 * escaping: it is copied with its quotes at once, room checked once
 * inline (three appends and their calls, for each of the two dozen
 * strings of a receipt and of its row, were 6 % of verify_all's
 * instructions besides SHA-256).
 */
static void
append_utf8_string(StringInfo out, const char *u, int len)
{
	int			plain = plain_prefix(u, len);

	if (plain == len)
	{
		if (out->len + len + 2 >= out->maxlen)
			enlargeStringInfo(out, len + 2);
		out->data[out->len] = '"';
		memcpy(out->data + out->len + 1, u, len);
		out->data[out->len + 1 + len] = '"';
		out->len += len + 2;
		out->data[out->len] = '\0';
		return;
	}
	appendStringInfoCharMacro(out, '"');
	/* each run up to the next character to escape is copied at once */
	for (int i = 0;; i++)
	{
		unsigned char c;
		const char *esc = NULL;

		appendBinaryStringInfo(out, u + i, plain);
		i += plain;
		if (i == len)
			break;
		c = (unsigned char) u[i];
		switch (c)
		{
			case '"':
				esc = "\\\"";
				break;
			case '\\':
				esc = "\\\\";
				break;
			case '\b':
				esc = "\\b";
				break;
			case '\f':
				esc = "\\f";
				break;
			case '\n':
				esc = "\\n";
				break;
			case '\r':
				esc = "\\r";
				break;
			case '\t':
				esc = "\\t";
				break;
		}
		if (esc != NULL)
			appendStringInfoString(out, esc);
		else
			appendStringInfo(out, "\\u%04x", c);
		plain = plain_prefix(u + i + 1, len - i - 1);
	}
	appendStringInfoCharMacro(out, '"');
}

/*
 * Append a JSON string in JCS form; s is in the database encoding.
 */
void
fp_attribution_jcs_append_string(StringInfo out, const char *s, int len)
{
	const char *u = as_utf8(s, &len);

	append_utf8_string(out, u, len);
}

/*
 * Parse a plain or exponent decimal ("-12.50", "1.5e-07") into *d.  The
 * input is trusted (numeric or Ryu output).
 */
static void
parse_decimal(const char *s, DecimalForm *d)
{
	const char *p = s;
	int			intdigits = -1;
	int			exp10 = 0;
	int			start = 0;

	d->negative = (*p == '-');
	if (*p == '-' || *p == '+')
		p++;
	d->digits = palloc(strlen(p) + 1);
	d->ndigits = 0;
	for (; *p != '\0' && *p != 'e' && *p != 'E'; p++)
	{
		if (*p == '.')
			intdigits = d->ndigits;
		else
			d->digits[d->ndigits++] = *p;
	}
	if (*p != '\0')
		exp10 = atoi(p + 1);
	if (intdigits < 0)
		intdigits = d->ndigits;

	while (start < d->ndigits && d->digits[start] == '0')
	{
		start++;
		intdigits--;
	}
	while (d->ndigits > start && d->digits[d->ndigits - 1] == '0')
		d->ndigits--;
	d->digits += start;
	d->ndigits -= start;
	if (d->ndigits == 0)
	{
		d->negative = false;
		d->point = 0;
	}
	else
		d->point = intdigits + exp10;
}

/*
 * Append a decimal as ECMAScript Number::toString formats it (ECMA-262,
 * section 6.1.6.1.20), given its shortest round-trip digits: k digits,
 * point n.
 */
static void
append_ecmascript_number(StringInfo out, const DecimalForm *d)
{
	int			k = d->ndigits;
	int			n = d->point;

	if (k == 0)
	{
		appendStringInfoCharMacro(out, '0');
		return;
	}
	if (d->negative)
		appendStringInfoCharMacro(out, '-');
	if (k <= n && n <= 21)
	{
		appendBinaryStringInfo(out, d->digits, k);
		for (int i = k; i < n; i++)
			appendStringInfoCharMacro(out, '0');
	}
	else if (0 < n && n <= 21)
	{
		appendBinaryStringInfo(out, d->digits, n);
		appendStringInfoCharMacro(out, '.');
		appendBinaryStringInfo(out, d->digits + n, k - n);
	}
	else if (-6 < n && n <= 0)
	{
		appendStringInfoString(out, "0.");
		for (int i = n; i < 0; i++)
			appendStringInfoCharMacro(out, '0');
		appendBinaryStringInfo(out, d->digits, k);
	}
	else
	{
		appendStringInfoCharMacro(out, d->digits[0]);
		if (k > 1)
		{
			appendStringInfoCharMacro(out, '.');
			appendBinaryStringInfo(out, d->digits + 1, k - 1);
		}
		appendStringInfo(out, "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
	}
}

/*
 * Write the k digits of d truncated to k digits, rounded up if up, as the
 * string strtod reads: "0.<digits>e<point>".  Returns the point (a carry
 * out of the first digit moves it).
 */
static int
truncated_digits(const DecimalForm *d, int k, bool up, char *digits)
{
	int			point = d->point;

	memcpy(digits, d->digits, k);
	if (up)
	{
		int			i = k - 1;

		while (i >= 0 && digits[i] == '9')
			digits[i--] = '0';
		if (i >= 0)
			digits[i]++;
		else
		{
			/* 99..9 + 1: one digit, one place up; the zeros are dropped */
			digits[0] = '1';
			point++;
		}
	}
	return point;
}

/*
 * Ryu (double_to_shortest_decimal) finds the shortest digits strictly
 * inside the interval of decimals that read back as x; ECMAScript's
 * Number::toString takes the shortest that read back as x, and with an even
 * significand the interval's bounds do (round half to even).  So when a
 * bound itself has fewer digits, ECMAScript writes it: 40407023462466896
 * is 40407023462466900.  A bound has fewer than 17 digits only when the
 * double's spacing is at least 2, that is |x| >= 2^53 (below, a bound is
 * an odd multiple of a power of 5 over a power of 10 of at least 17
 * digits).  At most one k-digit candidate can be a bound (two would be a
 * spacing-wide interval holding a k-digit decimal inside, which Ryu would
 * have found), so the first k that reads back is the answer.
 */
static void
shortest_with_bounds(double value, DecimalForm *d)
{
	char		text[DOUBLE_SHORTEST_DECIMAL_LEN + 16];
	char		digits[DOUBLE_SHORTEST_DECIMAL_LEN];

	if (fabs(value) < 9007199254740992.0)
		return;
	for (int k = 1; k < d->ndigits; k++)
	{
		for (int up = 0; up <= 1; up++)
		{
			int			point = truncated_digits(d, k, up, digits);
			int			len = k;

			while (len > 1 && digits[len - 1] == '0')
				len--;
			snprintf(text, sizeof(text), "%s0.%.*se%d",
					 d->negative ? "-" : "", len, digits, point);
			if (strtod(text, NULL) == value)
			{
				memcpy(d->digits, digits, len);
				d->ndigits = len;
				d->point = point;
				return;
			}
		}
	}
}

/*
 * Append a number in JCS form: the ECMAScript text of the nearest double.
 * Returns false, leaving out unchanged and setting *bad_number to the
 * number's text, if it is beyond the double range or, when exact, if its
 * value is not that of its canonical text.
 */
static bool
append_number(StringInfo out, Numeric num, bool exact,
			  const char **bad_number)
{
	char	   *text = numeric_normalize(num);
	char		shortest[DOUBLE_SHORTEST_DECIMAL_LEN];
	double		value;
	DecimalForm rounded;

	/*
	 * strtod rounds correctly; on underflow (ERANGE) it still gives 0 or a
	 * subnormal, which is JSON.parse's answer too
	 */
	value = strtod(text, NULL);
	if (isinf(value) || isnan(value))
	{
		*bad_number = text;
		return false;
	}
	double_to_shortest_decimal_buf(value, shortest);
	parse_decimal(shortest, &rounded);
	shortest_with_bounds(value, &rounded);
	if (exact)
	{
		DecimalForm stored;

		parse_decimal(text, &stored);
		if (stored.negative != rounded.negative ||
			stored.ndigits != rounded.ndigits ||
			stored.point != rounded.point ||
			memcmp(stored.digits, rounded.digits, stored.ndigits) != 0)
		{
			*bad_number = text;
			return false;
		}
	}
	append_ecmascript_number(out, &rounded);
	return true;
}

/*
 * Append one value: a scalar, or (jbvBinary) a nested container.
 */
static bool
append_value(StringInfo out, JsonbValue *v, bool exact,
			 const char **bad_number)
{
	switch (v->type)
	{
		case jbvNull:
			appendStringInfoString(out, "null");
			return true;
		case jbvBool:
			appendStringInfoString(out, v->val.boolean ? "true" : "false");
			return true;
		case jbvString:
			fp_attribution_jcs_append_string(out, v->val.string.val,
											 v->val.string.len);
			return true;
		case jbvNumeric:
			return append_number(out, v->val.numeric, exact, bad_number);
		case jbvBinary:
			return append_container(out, v->val.binary.data, exact,
									bad_number);
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v->type);
	}
	return false;				/* keep compiler quiet */
}

/*
 * Append an object, array or raw scalar container.  Nested containers
 * are visited recursively (skipNested iteration hands them over as
 * jbvBinary), so each level's members can be sorted on their own.
 */
static bool
append_container(StringInfo out, JsonbContainer *jc, bool exact,
				 const char **bad_number)
{
	JsonbIterator *it = JsonbIteratorInit(jc);
	JsonbIteratorToken tok;
	JsonbValue	v;
	bool		raw_scalar = false;
	bool		first = true;

	check_stack_depth();
	tok = JsonbIteratorNext(&it, &v, true);
	if (tok == WJB_BEGIN_ARRAY)
	{
		raw_scalar = v.val.array.rawScalar;
		if (!raw_scalar)
			appendStringInfoCharMacro(out, '[');
		while ((tok = JsonbIteratorNext(&it, &v, true)) == WJB_ELEM)
		{
			if (!first)
				appendStringInfoCharMacro(out, ',');
			first = false;
			if (!append_value(out, &v, exact, bad_number))
				return false;
		}
		if (!raw_scalar)
			appendStringInfoCharMacro(out, ']');
		return true;
	}
	else
	{
		int			nmembers = v.val.object.nPairs;
		JcsMember  *members = palloc(sizeof(JcsMember) * Max(nmembers, 1));
		int			n = 0;

		Assert(tok == WJB_BEGIN_OBJECT);
		while ((tok = JsonbIteratorNext(&it, &v, true)) == WJB_KEY)
		{
			Assert(n < nmembers);
			members[n].keylen = v.val.string.len;
			members[n].key = as_utf8(v.val.string.val, &members[n].keylen);
			members[n].ascii = is_ascii(members[n].key, members[n].keylen);
			tok = JsonbIteratorNext(&it, &members[n].value, true);
			Assert(tok == WJB_VALUE);
			n++;
		}
		if (!append_members(out, members, n, exact, bad_number))
			return false;
		pfree(members);
		return true;
	}
}

/*
 * Append an object of these members (keys in UTF-8), sorted here.
 */
static bool
append_members(StringInfo out, JcsMember *members, int n, bool exact,
			   const char **bad_number)
{
	sort_members(members, n);
	appendStringInfoCharMacro(out, '{');
	for (int i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoCharMacro(out, ',');
		append_utf8_string(out, members[i].key, members[i].keylen);
		appendStringInfoCharMacro(out, ':');
		if (!append_value(out, &members[i].value, exact, bad_number))
			return false;
	}
	appendStringInfoCharMacro(out, '}');
	return true;
}

/*
 * Append the JCS form of a jsonb document to out.  Returns false if a
 * number cannot be canonicalized (exact: or is not already in its
 * canonical value); *bad_number then names it and out holds a partial
 * result the caller must discard.
 */
bool
fp_attribution_jcs_append_jsonb(StringInfo out, JsonbContainer *jc,
								bool exact, const char **bad_number)
{
	return append_container(out, jc, exact, bad_number);
}

/*
 * Append the JCS form of the object with these n members (keys in the
 * server encoding, values scalars), as fp_attribution_jcs_append_jsonb
 * writes the same object stored as jsonb: verification hashes a row's
 * payload this way without building the jsonb (src/ledger/receipts.c).
 * Keys must differ from each other, as a jsonb object's do.
 */
bool
fp_attribution_jcs_append_object(StringInfo out, const char *const *keys,
								 const JsonbValue *values, int n, bool exact,
								 const char **bad_number)
{
	JcsMember  *members = palloc(sizeof(JcsMember) * Max(n, 1));
	bool		ok;

	for (int i = 0; i < n; i++)
	{
		members[i].keylen = strlen(keys[i]);
		members[i].key = as_utf8(keys[i], &members[i].keylen);
		members[i].ascii = is_ascii(members[i].key, members[i].keylen);
		members[i].value = values[i];
	}
	ok = append_members(out, members, n, exact, bad_number);
	pfree(members);
	return ok;
}
