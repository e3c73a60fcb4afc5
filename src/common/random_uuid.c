/*-------------------------------------------------------------------------
 *
 * random_uuid.c
 *	  Random (version 4) uuids for new rows and receipts.
 *
 * The bits come from pg_strong_random, as gen_random_uuid()'s do, but a
 * kilobyte at a time: each call of it has a fixed cost (about 10,000
 * instructions through OpenSSL) that a uuid per click and per receipt
 * paid twice.  The buffer is filled on first use in each process, never
 * in the postmaster, so no two processes share bytes, and each byte is
 * handed out once.
 *
 * Shared memory: none.  Backend-local state: the unused random bytes.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fp_attribution/random_uuid.h"

#define RANDOM_BUFFER_LEN 1024

static uint8 random_buffer[RANDOM_BUFFER_LEN];
static int	random_used = RANDOM_BUFFER_LEN;

/*
 * Fill *uuid with a random version 4 uuid.
 */
void
fp_attribution_random_uuid(pg_uuid_t *uuid)
{
	if (random_used + UUID_LEN > RANDOM_BUFFER_LEN)
	{
		if (!pg_strong_random(random_buffer, RANDOM_BUFFER_LEN))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate random values")));
		random_used = 0;
	}
	memcpy(uuid->data, random_buffer + random_used, UUID_LEN);
	/* each byte once: what is handed out is forgotten */
	memset(random_buffer + random_used, 0, UUID_LEN);
	random_used += UUID_LEN;
	uuid->data[6] = (uuid->data[6] & 0x0f) | 0x40;
	uuid->data[8] = (uuid->data[8] & 0x3f) | 0x80;
}
