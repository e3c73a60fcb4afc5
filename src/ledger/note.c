/*-------------------------------------------------------------------------
 *
 * note.c
 *	  C2SP signed notes (c2sp.org/signed-note, Ed25519) carrying tlog
 *	  checkpoints (c2sp.org/tlog-checkpoint).
 *
 * A checkpoint body is three lines: the origin (the log's name), the tree
 * size in decimal and the root hash in standard base64.  The note is the
 * body, an empty line, and one signature line per signer:
 * "\u2014 <key name> <base64(key hash || signature)>".  The key hash is
 * the first 4 bytes (big-endian) of SHA-256(key name || 0x0A || 0x01 ||
 * Ed25519 public key); the signature covers the body bytes.  The verifier
 * key string is "<name>+<key hash, 8 hex digits>+<base64(0x01 || public
 * key)>".  The key name is the origin.
 *
 * Pure functions: no SPI, no fmgr; signing goes through signing.c.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/base64.h"
#include "lib/stringinfo.h"

#include "fp_attribution/note.h"

#define NOTE_ALG_ED25519 0x01
/* U+2014 EM DASH, then a space, starts every signature line */
#define NOTE_SIG_PREFIX "\xe2\x80\x94 "
#define NOTE_MAX_SIGS 16

/*
 * A key name is non-empty and has no "+", no whitespace and no control
 * characters.
 */
bool
fp_note_valid_name(const char *name)
{
	if (name[0] == '\0')
		return false;
	for (const unsigned char *p = (const unsigned char *) name; *p; p++)
		if (*p <= 0x20 || *p == 0x7f || *p == '+')
			return false;
	return true;
}

/*
 * The key hash of an Ed25519 key: SHA-256(name || "\n" || 0x01 || key),
 * first 4 bytes big-endian.
 */
uint32
fp_note_key_hash(const char *name, const uint8 *public_key)
{
	size_t		nlen = strlen(name);
	uint8	   *buf = palloc(nlen + 2 + FP_ED25519_PUBLIC_KEY_LEN);
	uint8		digest[FP_SHA256_LEN];

	memcpy(buf, name, nlen);
	buf[nlen] = '\n';
	buf[nlen + 1] = NOTE_ALG_ED25519;
	memcpy(buf + nlen + 2, public_key, FP_ED25519_PUBLIC_KEY_LEN);
	fp_attribution_sha256(buf, nlen + 2 + FP_ED25519_PUBLIC_KEY_LEN, digest);
	pfree(buf);
	return ((uint32) digest[0] << 24) | ((uint32) digest[1] << 16) |
		((uint32) digest[2] << 8) | (uint32) digest[3];
}

/* Append base64 of len bytes to buf */
static void
append_base64(StringInfo buf, const uint8 *data, int len)
{
	int			enclen = pg_b64_enc_len(len);

	enlargeStringInfo(buf, enclen + 1);
	enclen = pg_b64_encode((const char *) data, len, buf->data + buf->len,
						   enclen);
	if (enclen < 0)
		elog(ERROR, "could not encode base64");
	buf->len += enclen;
	buf->data[buf->len] = '\0';
}

/*
 * The verifier key: "<name>+<key hash in hex>+<base64(0x01 || key)>".
 */
char *
fp_note_verifier_key(const char *name, const uint8 *public_key)
{
	StringInfoData buf;
	uint8		key[1 + FP_ED25519_PUBLIC_KEY_LEN];

	key[0] = NOTE_ALG_ED25519;
	memcpy(key + 1, public_key, FP_ED25519_PUBLIC_KEY_LEN);
	initStringInfo(&buf);
	appendStringInfo(&buf, "%s+%08x+", name, fp_note_key_hash(name, public_key));
	append_base64(&buf, key, sizeof(key));
	return buf.data;
}

/*
 * The checkpoint body: origin, decimal size and base64 root, each ended
 * by a newline.
 */
char *
fp_note_checkpoint_body(const char *origin, int64 size, const uint8 *root)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s\n" INT64_FORMAT "\n", origin, size);
	append_base64(&buf, root, FP_MERKLE_HASH_LEN);
	appendStringInfoChar(&buf, '\n');
	return buf.data;
}

/*
 * The signed note: body, empty line, one Ed25519 signature by the loaded
 * signing key (public_key is its public half) under name.
 */
char *
fp_note_sign(const char *body, const char *name, const uint8 *public_key)
{
	StringInfoData buf;
	uint8		sig[4 + FP_ED25519_SIGNATURE_LEN];
	uint32		hash = fp_note_key_hash(name, public_key);

	sig[0] = hash >> 24;
	sig[1] = hash >> 16;
	sig[2] = hash >> 8;
	sig[3] = hash;
	fp_attribution_sign((const uint8 *) body, strlen(body), sig + 4);
	initStringInfo(&buf);
	appendStringInfo(&buf, "%s\n" NOTE_SIG_PREFIX "%s ", body, name);
	append_base64(&buf, sig, sizeof(sig));
	appendStringInfoChar(&buf, '\n');
	return buf.data;
}

/* Parse a non-negative decimal without sign or leading zeros */
static bool
parse_size(const char *s, int len, int64 *out)
{
	int64		v = 0;

	if (len == 0 || len > 19 || (len > 1 && s[0] == '0'))
		return false;
	for (int i = 0; i < len; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return false;
		if (v > (PG_INT64_MAX - (s[i] - '0')) / 10)
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/*
 * Parse a checkpoint note into *cp.  Returns NULL, or what is wrong with
 * it.  Extension lines after the root are kept in the body (signed) and
 * otherwise ignored.
 */
const char *
fp_note_parse_checkpoint(const char *note, FpCheckpoint *cp)
{
	char	   *text = pstrdup(note);
	char	   *sep = strstr(text, "\n\n");
	char	   *line;
	char	   *nl;
	char	   *p;
	uint8		rootbuf[FP_MERKLE_HASH_LEN + 3];

	memset(cp, 0, sizeof(*cp));
	if (sep == NULL)
		return "no empty line between the body and the signatures";
	cp->body = pnstrdup(text, sep + 1 - text);
	cp->body_len = sep + 1 - text;

	/* origin */
	line = text;
	nl = strchr(line, '\n');
	if (nl == line)
		return "empty origin line";
	*nl = '\0';
	cp->origin = line;
	/* size */
	line = nl + 1;
	nl = strchr(line, '\n');
	if (nl > sep || !parse_size(line, nl - line, &cp->size))
		return "the second line is not a tree size";
	/* root */
	line = nl + 1;
	nl = strchr(line, '\n');
	if (nl > sep ||
		pg_b64_dec_len(nl - line) > (int) sizeof(rootbuf) ||
		pg_b64_decode(line, nl - line, (char *) rootbuf, sizeof(rootbuf)) != FP_MERKLE_HASH_LEN)
		return "the third line is not a base64 SHA-256 root hash";
	memcpy(cp->root, rootbuf, FP_MERKLE_HASH_LEN);

	/* signature lines */
	cp->sig_names = palloc(NOTE_MAX_SIGS * sizeof(char *));
	cp->sig_key_hashes = palloc(NOTE_MAX_SIGS * sizeof(uint32));
	cp->sigs = palloc(NOTE_MAX_SIGS * FP_ED25519_SIGNATURE_LEN);
	for (p = sep + 2; *p != '\0'; p = nl + 1)
	{
		char	   *space;
		uint8		sig[4 + FP_ED25519_SIGNATURE_LEN + 3];
		int			siglen;

		nl = strchr(p, '\n');
		if (nl == NULL)
			return "the last signature line has no newline";
		*nl = '\0';
		if (strncmp(p, NOTE_SIG_PREFIX, strlen(NOTE_SIG_PREFIX)) != 0)
			return "a signature line does not start with an em dash and a space";
		p += strlen(NOTE_SIG_PREFIX);
		space = strchr(p, ' ');
		if (space == NULL)
			return "a signature line has no signature";
		*space = '\0';
		siglen = pg_b64_dec_len(strlen(space + 1));
		if (siglen > (int) sizeof(sig))
			continue;			/* not Ed25519: another signer's, ignored */
		siglen = pg_b64_decode(space + 1, strlen(space + 1), (char *) sig,
							   sizeof(sig));
		if (siglen != 4 + FP_ED25519_SIGNATURE_LEN || cp->nsigs == NOTE_MAX_SIGS)
			continue;
		cp->sig_names[cp->nsigs] = p;
		cp->sig_key_hashes[cp->nsigs] = ((uint32) sig[0] << 24) |
			((uint32) sig[1] << 16) | ((uint32) sig[2] << 8) | (uint32) sig[3];
		memcpy(cp->sigs[cp->nsigs], sig + 4, FP_ED25519_SIGNATURE_LEN);
		cp->nsigs++;
	}
	if (cp->nsigs == 0)
		return "the note has no Ed25519 signature";
	return NULL;
}

/*
 * Whether one of the note's signatures is a valid one by the key
 * (name, public_key) over its body.
 */
bool
fp_note_verify(const FpCheckpoint *cp, const char *name,
			   const uint8 *public_key)
{
	uint32		hash = fp_note_key_hash(name, public_key);

	for (int i = 0; i < cp->nsigs; i++)
		if (strcmp(cp->sig_names[i], name) == 0 &&
			cp->sig_key_hashes[i] == hash &&
			fp_attribution_verify_signature(public_key,
											(const uint8 *) cp->body,
											cp->body_len, cp->sigs[i]))
			return true;
	return false;
}
