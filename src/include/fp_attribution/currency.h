/*-------------------------------------------------------------------------
 *
 * currency.h
 *	  ISO 4217 currency code lookup.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_CURRENCY_H
#define FP_ATTRIBUTION_CURRENCY_H

extern bool fp_attribution_currency_is_known(const char *code);

#endif							/* FP_ATTRIBUTION_CURRENCY_H */
