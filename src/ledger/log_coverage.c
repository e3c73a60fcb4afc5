/*-------------------------------------------------------------------------
 *
 * log_coverage.c
 *	  verify_all()'s proof that every receipt is in its advertiser's log
 *	  or queued for it (the log_missing check) from one pass over the
 *	  receipts it reads anyway.
 *
 * log_missing is an anti-join of attribution.receipts with log_entries
 * and log_queue.  When no ledger worker runs, the queue holds every
 * receipt, and the anti-join, which reads the receipts a second time and
 * hashes them all, was 14 % of verify_all's time at a million receipts.
 *
 * Instead verify_all adds a keyed hash of every receipt's
 * (advertiser_id, receipt_id) to a sum as its scan reads the receipt, and
 * subtracts that of every row of log_entries and log_queue, read here in
 * place.  The sum and the count are zero when the receipts and the rows
 * of the two tables name the same (advertiser_id, receipt_id) multiset:
 * then every receipt has its entry or queue row, and log_missing passes
 * without its query.  Anything else (a receipt missing from both, but
 * also a queue row whose receipt is gone, which is no failure) leaves a
 * difference, and the query runs as before and finds the failure, if
 * any, exactly.
 *
 * The sum is multiset_hash.c's, of each receipt's advertiser_id, a zero
 * byte (text holds none) and the 16 bytes of its receipt_id.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/relscan.h"
#include "access/tableam.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/uuid.h"

#include "fp_attribution/extension_tables.h"
#include "fp_attribution/log.h"

/*
 * Start the sum.
 */
void
fp_attribution_log_coverage_begin(FpLogCoverage *c)
{
	fp_attribution_multiset_begin(c);
}

/*
 * Add (sign 1) or subtract (sign -1) one (advertiser_id, receipt_id).
 */
static void
coverage_add(FpLogCoverage *c, const char *adv, int advlen,
			 const pg_uuid_t *receipt_id, int sign)
{
	static const char zero = '\0';
	const void *parts[] = {adv, &zero, receipt_id->data};
	const size_t lens[] = {advlen, 1, UUID_LEN};

	fp_attribution_multiset_add(c, lengthof(parts), parts, lens, sign);
}

/*
 * Add a receipt that verify_all read.
 */
void
fp_attribution_log_coverage_add(FpLogCoverage *c, const char *adv,
								const pg_uuid_t *receipt_id)
{
	coverage_add(c, adv, strlen(adv), receipt_id, 1);
}

/*
 * Subtract every row of the extension's table name (log_entries or
 * log_queue), read in place with the query's snapshot, as the log_missing
 * query would see it.
 */
static void
coverage_subtract_table(FpLogCoverage *c, const char *name)
{
	Relation	rel = fp_attribution_open_table(name, AccessShareLock, ACL_SELECT);
	TupleDesc	desc = RelationGetDescr(rel);
	int			adv_attno = SPI_fnumber(desc, "advertiser_id");
	int			id_attno = SPI_fnumber(desc, "receipt_id");
	TableScanDesc scan;
	HeapTuple	tuple;

	if (adv_attno <= 0 || id_attno <= 0)
		elog(ERROR, "attribution.%s lacks advertiser_id or receipt_id", name);
	scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		adv_null;
		bool		id_null;
		Datum		adv = heap_getattr(tuple, adv_attno, desc, &adv_null);
		Datum		id = heap_getattr(tuple, id_attno, desc, &id_null);
		text	   *t;

		CHECK_FOR_INTERRUPTS();
		if (adv_null || id_null)
			continue;			/* NOT NULL columns: matches no receipt */
		t = DatumGetTextPP(adv);
		coverage_add(c, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t),
					 DatumGetUUIDP(id), -1);
		if ((Pointer) t != DatumGetPointer(adv))
			pfree(t);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
}

/*
 * True if the receipts added name exactly the rows of log_entries and
 * log_queue (so the log_missing check passes); false if anything
 * differs, which the log_missing query then looks into.
 */
bool
fp_attribution_log_coverage_complete(FpLogCoverage *c)
{
	coverage_subtract_table(c, "log_entries");
	coverage_subtract_table(c, "log_queue");
	return fp_attribution_multiset_is_empty(c);
}
