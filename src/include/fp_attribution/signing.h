/*-------------------------------------------------------------------------
 *
 * signing.h
 *	  SHA-256 and Ed25519 through OpenSSL: the receipt signing key, signing
 *	  and verification.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_SIGNING_H
#define FP_ATTRIBUTION_SIGNING_H

#define FP_SHA256_LEN 32
#define FP_ED25519_PUBLIC_KEY_LEN 32
#define FP_ED25519_SIGNATURE_LEN 64
/* key id: the first 8 bytes of SHA-256(raw public key), in hex */
#define FP_KEY_ID_LEN 16

/* The loaded private key's public half; valid until the next load */
typedef struct FpSigningKey
{
	char		key_id[FP_KEY_ID_LEN + 1];
	uint8		public_key[FP_ED25519_PUBLIC_KEY_LEN];
	char	   *public_key_pem;
} FpSigningKey;

extern char *fp_attribution_signing_key_file;

extern void fp_attribution_signing_key_file_assign(const char *newval,
												   void *extra);
extern void fp_attribution_sha256_parts(int nparts, const void *const *parts,
										const size_t *lens, uint8 *out);
extern void fp_attribution_sha256(const void *data, size_t len, uint8 *out);
extern void fp_attribution_key_id(const uint8 *public_key, char *out);
extern const FpSigningKey *fp_attribution_signing_key(void);
extern void fp_attribution_sign(const uint8 *msg, size_t len, uint8 *signature);
extern bool fp_attribution_verify_signature(const uint8 *public_key,
											const uint8 *msg, size_t len,
											const uint8 *signature);

#endif							/* FP_ATTRIBUTION_SIGNING_H */
