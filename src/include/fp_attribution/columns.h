/*-------------------------------------------------------------------------
 *
 * columns.h
 *	  The one column map of clicks, conversions and receipts, shared by the
 *	  row triggers, the receipts and telemetry (columns.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_COLUMNS_H
#define FP_ATTRIBUTION_COLUMNS_H

#include "access/tupdesc.h"
#include "utils/relcache.h"

/* The tables whose rows the triggers read, by kind (never by name) */
typedef enum FpRowTable
{
	FP_TABLE_CLICKS,
	FP_TABLE_CONVERSIONS,
	FP_TABLE_RECEIPTS,
	FP_NUM_ROW_TABLES
} FpRowTable;

/* Every column the C code reads or writes, of any of those tables */
typedef enum FpColumn
{
	FP_COL_ADVERTISER_ID,
	FP_COL_CLICK_ID,
	FP_COL_AFFILIATE_ID,
	FP_COL_OFFER_ID,
	FP_COL_CAMPAIGN_ID,
	FP_COL_VISITOR_ID,
	FP_COL_IP,
	FP_COL_USER_AGENT,
	FP_COL_REFERRER,
	FP_COL_LANDING_URL,
	FP_COL_CLICKED_AT,
	FP_COL_WINDOW_ENDS_AT,
	FP_COL_ORDER_ID,
	FP_COL_CONVERSION_ID,
	FP_COL_REVENUE_CENTS,
	FP_COL_CURRENCY,
	FP_COL_CONVERTED_AT,
	FP_COL_ATTRIBUTED,
	FP_COL_UNATTRIBUTED_REASON,
	FP_COL_LATENCY,
	FP_COL_TRACE_ID,
	FP_COL_SPAN_ID,
	FP_COL_PARENT_SPAN_ID,
	FP_COL_SAMPLED,
	FP_COL_TRACESTATE,
	FP_COL_RECORDED_AT,
	FP_COL_STATUS,
	FP_COL_COMMISSION_CENTS,
	FP_COL_REFUNDED_CENTS,
	FP_COL_COMMISSION_REVERSED_CENTS,
	FP_COL_REVIEW_REASON,
	FP_COL_RECEIPT_ID,
	FP_COL_AGGREGATE_TYPE,
	FP_COL_AGGREGATE_ID,
	FP_COL_KEY_ID,
	FP_COL_SEQUENCE,
	FP_NUM_COLUMNS
} FpColumn;

/* Attribute numbers (from 1; 0: the table lacks the column) by FpColumn */
typedef struct FpColumnMap
{
	int			attnum[FP_NUM_COLUMNS];
} FpColumnMap;

extern const char *const fp_attribution_column_names[FP_NUM_COLUMNS];

extern void fp_attribution_build_column_map(TupleDesc desc, FpColumnMap *map);
extern const FpColumnMap *fp_attribution_column_map(Relation rel,
													FpRowTable table);
extern int	fp_attribution_required_column(const FpColumnMap *map,
										   FpColumn col);

#endif							/* FP_ATTRIBUTION_COLUMNS_H */
