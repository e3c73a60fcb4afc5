/*-------------------------------------------------------------------------
 *
 * signing.c
 *	  SHA-256 and Ed25519 through OpenSSL: the receipt signing key, signing
 *	  and verification.
 *
 * The private key is a PEM file named by fp_attribution.signing_key_file
 * (superuser-only, reloadable).  Like PostgreSQL's ssl_key_file, the file
 * must be a regular file without group or world access; unlike it, the
 * key is loaded lazily by each backend when it first signs, so a bad file
 * fails the signing command (never the server start).  Before each
 * signature the file is stat()ed again: a changed setting, or a new file
 * renamed over the old one (other inode, size or mtime), is loaded afresh,
 * and a file that became group or world accessible is refused.  An
 * encrypted key is refused: there is nobody to ask for a passphrase.
 *
 * The key lives in backend-local OpenSSL memory and never leaves this
 * file: callers get the public half and signatures, nothing else.
 *
 * OpenSSL objects are malloc'd by OpenSSL, not palloc'd; each function
 * frees what it allocates before it can raise an error.  No shared state.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "storage/fd.h"
#include "utils/memutils.h"

#include "fp_attribution/ids.h"
#include "fp_attribution/signing.h"

char	   *fp_attribution_signing_key_file = NULL;

static EVP_PKEY *signing_pkey = NULL;
static FpSigningKey signing_key;
static struct stat signing_key_stat;	/* of the file signing_pkey came from */
static bool signing_key_stale = true;

/*
 * Assign hook of fp_attribution.signing_key_file: only note that the key
 * must be loaded again (assign hooks must not fail).
 */
void
fp_attribution_signing_key_file_assign(const char *newval, void *extra)
{
	signing_key_stale = true;
}

/*
 * The reason of the most recent OpenSSL error, for a message; clears the
 * queue.
 */
static const char *
openssl_error(void)
{
	unsigned long code = ERR_get_error();
	const char *reason = code != 0 ? ERR_reason_error_string(code) : NULL;

	ERR_clear_error();
	return reason != NULL ? reason : "no OpenSSL error reported";
}

/*
 * PEM passphrase callback: there is no passphrase, so an encrypted key
 * fails to load instead of prompting on the server's terminal.
 */
static int
no_passphrase(char *buf, int size, int rwflag, void *userdata)
{
	return -1;
}

/*
 * SHA-256 of the concatenation of nparts buffers into out (FP_SHA256_LEN
 * bytes).  The receipts, the Merkle log and verify_all's log coverage all
 * hash through here, mostly messages of one or two blocks, so OpenSSL's
 * SHA256_* functions are called rather than EVP: EVP's dispatch (a digest
 * init, an update per part, a final through the provider) cost as much as
 * the compression itself, about 3,000 instructions per integrated receipt
 * in the Merkle log alone (test/bench/log_callgrind.sh), and EVP_Digest()
 * would also fetch the digest again on every call.  They are deprecated
 * in OpenSSL 3 in favour of EVP but kept; PostgreSQL's pg_config.h asks
 * for the OpenSSL 1.0.1 API, where they are not.  They only fail on a
 * NULL argument.
 */
void
fp_attribution_sha256_parts(int nparts, const void *const *parts,
							const size_t *lens, uint8 *out)
{
	SHA256_CTX	ctx;

	SHA256_Init(&ctx);
	for (int i = 0; i < nparts; i++)
		SHA256_Update(&ctx, parts[i], lens[i]);
	SHA256_Final(out, &ctx);
}

/*
 * SHA-256 of data into out (FP_SHA256_LEN bytes).
 */
void
fp_attribution_sha256(const void *data, size_t len, uint8 *out)
{
	fp_attribution_sha256_parts(1, &data, &len, out);
}

/*
 * The key id of a raw Ed25519 public key: hex of the first 8 bytes of its
 * SHA-256.  out holds FP_KEY_ID_LEN + 1 bytes.
 */
void
fp_attribution_key_id(const uint8 *public_key, char *out)
{
	uint8		digest[FP_SHA256_LEN];

	fp_attribution_sha256(public_key, FP_ED25519_PUBLIC_KEY_LEN, digest);
	fp_attribution_hex_encode(digest, FP_KEY_ID_LEN / 2, out);
}

/*
 * Check that the key file is set, a regular file and private to its
 * owner; fill *st.  Raises an error naming the file otherwise.
 */
static void
check_key_file(const char *path, struct stat *st)
{
	if (path == NULL || path[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("fp_attribution.signing_key_file is not set"),
				 errhint("Set it to an Ed25519 private key in PEM format, or turn fp_attribution.sign_receipts off.")));
	if (stat(path, st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not access signing key file \"%s\": %m", path)));
	if (!S_ISREG(st->st_mode))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("signing key file \"%s\" is not a regular file", path)));
	if ((st->st_mode & (S_IRWXG | S_IRWXO)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("signing key file \"%s\" has group or world access", path),
				 errdetail("The file must have permissions u=rw (0600) or less.")));
}

/*
 * Read the private key file (already checked).  Returns the key, or
 * raises an error naming the file.
 */
static EVP_PKEY *
read_private_key(const char *path)
{
	FILE	   *file;
	EVP_PKEY   *pkey;

	file = AllocateFile(path, "r");
	if (file == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open signing key file \"%s\": %m", path)));
	ERR_clear_error();
	pkey = PEM_read_PrivateKey(file, NULL, no_passphrase, NULL);
	FreeFile(file);
	if (pkey == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("could not load signing key file \"%s\": %s",
						path, openssl_error()),
				 errhint("The file must hold an unencrypted Ed25519 private key in PEM format, as written by \"openssl genpkey -algorithm ed25519\".")));
	if (EVP_PKEY_id(pkey) != EVP_PKEY_ED25519)
	{
		EVP_PKEY_free(pkey);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("signing key file \"%s\" does not hold an Ed25519 key", path)));
	}
	return pkey;
}

/*
 * Describe pkey's public half into *key; public_key_pem is allocated in
 * TopMemoryContext.  Frees pkey and raises an error on failure.
 */
static void
describe_public_key(EVP_PKEY *pkey, FpSigningKey *key)
{
	size_t		len = FP_ED25519_PUBLIC_KEY_LEN;
	BIO		   *bio;
	char	   *pem;
	long		pemlen;
	bool		ok;

	ok = EVP_PKEY_get_raw_public_key(pkey, key->public_key, &len) == 1 &&
		len == FP_ED25519_PUBLIC_KEY_LEN;
	bio = ok ? BIO_new(BIO_s_mem()) : NULL;
	ok = bio != NULL && PEM_write_bio_PUBKEY(bio, pkey) == 1;
	if (!ok)
	{
		BIO_free(bio);
		EVP_PKEY_free(pkey);
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not extract the public signing key: %s",
						openssl_error())));
	}
	pemlen = BIO_get_mem_data(bio, &pem);
	key->public_key_pem = MemoryContextAlloc(TopMemoryContext, pemlen + 1);
	memcpy(key->public_key_pem, pem, pemlen);
	key->public_key_pem[pemlen] = '\0';
	BIO_free(bio);
	fp_attribution_key_id(key->public_key, key->key_id);
}

/*
 * The current signing key, loaded from fp_attribution.signing_key_file on
 * first use, after the setting changed and after the file was replaced.
 * Raises an error if the file is missing, unsafe or not an Ed25519 key;
 * nothing is then signed with a key the settings no longer name.
 */
const FpSigningKey *
fp_attribution_signing_key(void)
{
	const char *path = fp_attribution_signing_key_file;
	struct stat st;
	EVP_PKEY   *pkey;
	FpSigningKey key;

	check_key_file(path, &st);
	if (!signing_key_stale && signing_pkey != NULL &&
		st.st_dev == signing_key_stat.st_dev &&
		st.st_ino == signing_key_stat.st_ino &&
		st.st_size == signing_key_stat.st_size &&
		st.st_mtime == signing_key_stat.st_mtime)
		return &signing_key;

	if (signing_pkey != NULL)
	{
		EVP_PKEY_free(signing_pkey);
		signing_pkey = NULL;
		pfree(signing_key.public_key_pem);
	}
	pkey = read_private_key(path);
	describe_public_key(pkey, &key);
	signing_pkey = pkey;
	signing_key = key;
	signing_key_stat = st;
	signing_key_stale = false;
	return &signing_key;
}

/*
 * Sign msg with the current signing key (fp_attribution_signing_key()
 * must have succeeded).  signature holds FP_ED25519_SIGNATURE_LEN bytes.
 */
void
fp_attribution_sign(const uint8 *msg, size_t len, uint8 *signature)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t		siglen = FP_ED25519_SIGNATURE_LEN;
	bool		ok;

	Assert(signing_pkey != NULL);
	ok = ctx != NULL &&
		EVP_DigestSignInit(ctx, NULL, NULL, NULL, signing_pkey) == 1 &&
		EVP_DigestSign(ctx, signature, &siglen, msg, len) == 1 &&
		siglen == FP_ED25519_SIGNATURE_LEN;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not sign receipt: %s", openssl_error())));
}

/*
 * True if signature (FP_ED25519_SIGNATURE_LEN bytes) is a valid Ed25519
 * signature of msg by the raw public key.  A malformed key is simply not
 * valid.
 */
bool
fp_attribution_verify_signature(const uint8 *public_key, const uint8 *msg,
								size_t len, const uint8 *signature)
{
	EVP_PKEY   *pkey;
	EVP_MD_CTX *ctx;
	bool		ok;

	pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, public_key,
									   FP_ED25519_PUBLIC_KEY_LEN);
	ctx = EVP_MD_CTX_new();
	ok = pkey != NULL && ctx != NULL &&
		EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
		EVP_DigestVerify(ctx, signature, FP_ED25519_SIGNATURE_LEN,
						 msg, len) == 1;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return ok;
}
