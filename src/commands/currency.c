/*-------------------------------------------------------------------------
 *
 * currency.c
 *	  ISO 4217 alphabetic currency codes accepted for conversion revenue.
 *
 * The list holds the codes of ISO 4217 list one that denote money a
 * merchant can be paid in: national currencies, the euro and the regional
 * CFA, East Caribbean and Caribbean guilder codes, the SDR and the fund
 * codes.  Precious metals (XAU, ...) and the test and "no currency" codes
 * (XTS, XXX) are refused.  ANG stays accepted while orders priced in it
 * may still arrive after its replacement by XCG.  The array is sorted so a
 * lookup is a binary search over 167 entries.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "fp_attribution/currency.h"

static const char *const iso4217_codes[] = {
	"AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN",
	"BAM", "BBD", "BDT", "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV",
	"BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHE", "CHF",
	"CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK",
	"DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP",
	"GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL",
	"HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
	"JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT",
	"LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD",
	"MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR",
	"MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN",
	"PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF",
	"SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD",
	"SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP",
	"TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU",
	"UYW", "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG",
	"XDR", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG"
};

static int
compare_code(const void *key, const void *member)
{
	return strcmp((const char *) key, *(const char *const *) member);
}

/*
 * True if code (NUL-terminated, already upper case) is a known currency.
 */
bool
fp_attribution_currency_is_known(const char *code)
{
	if (strlen(code) != 3)
		return false;
	return bsearch(code, iso4217_codes, lengthof(iso4217_codes),
				   sizeof(iso4217_codes[0]), compare_code) != NULL;
}

/*
 * attribution.currency_is_known(code text) returns boolean
 *
 * Case-sensitive on purpose: the triggers upper-case input before asking.
 */
PG_FUNCTION_INFO_V1(fp_attribution_currency_is_known_sql);
Datum
fp_attribution_currency_is_known_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(fp_attribution_currency_is_known(text_to_cstring(PG_GETARG_TEXT_PP(0))));
}
