/*-------------------------------------------------------------------------
 *
 * note.h
 *	  C2SP signed notes (Ed25519) carrying tlog checkpoints.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_NOTE_H
#define FP_ATTRIBUTION_NOTE_H

#include "fp_attribution/merkle.h"
#include "fp_attribution/signing.h"

/* A parsed checkpoint note; strings point into a palloc'd copy */
typedef struct FpCheckpoint
{
	char	   *body;			/* the signed text: origin, size, root lines */
	int			body_len;
	char	   *origin;
	int64		size;
	FpMerkleHash root;
	int			nsigs;
	char	  **sig_names;
	uint32	   *sig_key_hashes;
	uint8	  (*sigs)[FP_ED25519_SIGNATURE_LEN];
} FpCheckpoint;

extern bool fp_note_valid_name(const char *name);
extern uint32 fp_note_key_hash(const char *name, const uint8 *public_key);
extern char *fp_note_verifier_key(const char *name, const uint8 *public_key);
extern char *fp_note_checkpoint_body(const char *origin, int64 size,
									 const uint8 *root);
extern char *fp_note_sign(const char *body, const char *name,
						  const uint8 *public_key);
extern const char *fp_note_parse_checkpoint(const char *note,
											FpCheckpoint *cp);
extern bool fp_note_verify(const FpCheckpoint *cp, const char *name,
						   const uint8 *public_key);

#endif							/* FP_ATTRIBUTION_NOTE_H */
