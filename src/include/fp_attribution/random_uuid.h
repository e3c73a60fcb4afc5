/*-------------------------------------------------------------------------
 *
 * random_uuid.h
 *	  Random (version 4) uuids for new rows and receipts (random_uuid.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_RANDOM_UUID_H
#define FP_ATTRIBUTION_RANDOM_UUID_H

#include "utils/uuid.h"

extern void fp_attribution_random_uuid(pg_uuid_t *uuid);

#endif							/* FP_ATTRIBUTION_RANDOM_UUID_H */
