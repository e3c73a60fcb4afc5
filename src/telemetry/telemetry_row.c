/*-------------------------------------------------------------------------
 *
 * telemetry_row.c
 *	  The telemetry row trigger, attribution.telemetry_row_written(table):
 *	  AFTER INSERT FOR EACH ROW on clicks, conversions and receipts, it
 *	  turns the row as written into its event span, its business log
 *	  record(s) and its business metric increments, pending in the
 *	  transaction (telemetry_pending.c) until it ends.
 *
 * Cost.  It runs for every row of a bulk INSERT, so it reads the row once
 * (heap_deform_tuple), finds its columns through the table's cached column
 * map (columns.c) once per row, formats text and uuid columns without a
 * catalog lookup or an allocation, and converts each string to UTF-8 once
 * however many records carry it.  A record with no room is filled in a
 * static scratch record (see Bounds in telemetry_pending.c).
 *
 * Locking: none; everything is backend-local.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "fp_attribution/columns.h"
#include "fp_attribution/ids.h"
#include "fp_attribution/row_guard.h"
#include "fp_attribution/telemetry.h"
#include "fp_attribution/telemetry_pending.h"
#include "fp_attribution/telemetry_record.h"

/* The row the trigger fired for, and what it builds from it */
typedef struct RowRecords
{
	TriggerData *trigdata;
	FpTable		table;
	TupleDesc	desc;
	const FpColumnMap *map;		/* the table's columns, looked up once */
	Datum	   *values;			/* the row, deformed once */
	bool	   *nulls;
	FpSpanRecord *span;			/* NULL when not sampled or no room */
	PendingLog *log;
	PendingCommand *cmd;		/* the command that wrote it, if known */
	const FpTraceId *trace_id;
	const FpSpanId *span_id;
	uint8		flags;
	int64		now;
} RowRecords;

/*
 * Binary value of a column of the trigger's row, and its attribute number
 * into *attnum unless NULL (0: absent); absent or NULL: isnull
 */
static Datum
row_datum(RowRecords *r, FpColumn col, bool *isnull, int *attnum)
{
	int			n = r->map->attnum[col];

	if (attnum != NULL)
		*attnum = n;
	*isnull = n == 0 || r->nulls[n - 1];
	return *isnull ? (Datum) 0 : r->values[n - 1];
}

/*
 * Text form of a column, in the database encoding, into buf
 * (FP_ATTR_VALUE_LEN bytes), or NULL.  Text and uuid, our usual columns,
 * are converted here without a catalog lookup or an allocation; anything
 * else goes through its output function.
 */
static char *
row_string(RowRecords *r, FpColumn col, char *buf)
{
	bool		isnull;
	int			attnum;
	Datum		d = row_datum(r, col, &isnull, &attnum);
	Oid			type;

	if (isnull)
		return NULL;
	type = TupleDescAttr(r->desc, attnum - 1)->atttypid;
	if (type == TEXTOID)
		text_to_cstring_buffer(DatumGetTextPP(d), buf, FP_ATTR_VALUE_LEN);
	else if (type == UUIDOID)
		fp_attribution_format_uuid(DatumGetUUIDP(d), buf);
	else
	{
		char	   *value = SPI_getvalue(r->trigdata->tg_trigtuple, r->desc,
										 attnum);
		int			len = strlen(value);

		if (len >= FP_ATTR_VALUE_LEN)
			len = pg_mbcliplen(value, len, FP_ATTR_VALUE_LEN - 1);
		memcpy(buf, value, len);
		buf[len] = '\0';
	}
	return buf;
}

/* Whole milliseconds of an interval, months counted as 30 days */
static int64
interval_ms(const Interval *iv)
{
	return iv->time / 1000 +
		((int64) iv->month * DAYS_PER_MONTH + iv->day) * SECS_PER_DAY * 1000;
}


/*
 * Copy a column of the row into a string attribute of the log record and
 * the span; returns its text in buf, or NULL.  The text is converted to
 * UTF-8 once, into the log record; the span copies the converted text.
 */
static char *
row_attr(RowRecords *r, FpColumn col, const char *key, char *buf)
{
	char	   *value = row_string(r, col, buf);

	if (value != NULL)
	{
		FpAttribute *attr = fp_attribution_log_attr(&r->log->rec, key);

		fp_attribution_attr_str(attr, value);
		if (r->span != NULL)
			fp_attribution_attr_utf8(fp_attribution_span_attr(r->span, key),
									 attr->value.str);
	}
	return value;
}

static void
click_written(RowRecords *r)
{
	char		affiliate[FP_ATTR_VALUE_LEN];
	char		click_id[FP_ATTR_VALUE_LEN];
	char		ip[FP_ATTR_VALUE_LEN];
	bool		has_affiliate = row_attr(r, FP_COL_AFFILIATE_ID, "fp.affiliate.id", affiliate) != NULL;
	bool		has_click = row_attr(r, FP_COL_CLICK_ID, "fp.click.id", click_id) != NULL;

	if (fp_attribution_log_client_ip &&
		row_string(r, FP_COL_IP, ip) != NULL)
		fp_attribution_attr_str(fp_attribution_log_attr(&r->log->rec, "client.address"), ip);
	fp_attribution_pending_tally(GetCurrentSubTransactionId(), TALLY_CLICKS, FP_COMMAND_UNKNOWN,
			  has_affiliate ? affiliate : "")->n++;
	if (r->cmd != NULL)
	{
		fp_attribution_copy_text(r->cmd->affiliate_id, has_affiliate ? affiliate : "",
								 sizeof(r->cmd->affiliate_id));
		fp_attribution_copy_text(r->cmd->entity_id, has_click ? click_id : "",
								 sizeof(r->cmd->entity_id));
	}
}

static void
conversion_written(RowRecords *r)
{
	Tally	   *t;
	int64		revenue_cents;
	bool		attributed;
	char		affiliate[FP_ATTR_VALUE_LEN];
	char		order_id[FP_ATTR_VALUE_LEN];
	char		currency[FP_ATTR_VALUE_LEN];
	char		reason[FP_ATTR_VALUE_LEN];
	char		scratch[FP_ATTR_VALUE_LEN];
	bool		has_affiliate = row_attr(r, FP_COL_AFFILIATE_ID, "fp.affiliate.id", affiliate) != NULL;
	bool		has_order = row_attr(r, FP_COL_ORDER_ID, "fp.order.id", order_id) != NULL;
	bool		has_currency = row_attr(r, FP_COL_CURRENCY, "fp.currency", currency) != NULL;
	bool		isnull;
	Datum		d;

	row_attr(r, FP_COL_CONVERSION_ID, "fp.conversion.id", scratch);
	row_attr(r, FP_COL_CLICK_ID, "fp.click.id", scratch);
	d = row_datum(r, FP_COL_REVENUE_CENTS, &isnull, NULL);
	revenue_cents = isnull ? 0 : DatumGetInt64(d);
	d = row_datum(r, FP_COL_ATTRIBUTED, &isnull, NULL);
	attributed = !isnull && DatumGetBool(d);
	t = fp_attribution_pending_tally(GetCurrentSubTransactionId(), TALLY_CONVERSIONS,
				  FP_COMMAND_UNKNOWN, has_currency ? currency : "");
	t->n++;
	t->revenue_cents = fp_attribution_add_revenue(t->revenue_cents, Max(revenue_cents, 0));
	d = row_datum(r, FP_COL_COMMISSION_CENTS, &isnull, NULL);
	if (!isnull && DatumGetInt64(d) > 0)
		fp_attribution_telemetry_tally_lifecycle(FP_LIFECYCLE_COMMISSION_CENTS,
												 has_currency ? currency : "",
												 DatumGetInt64(d));
	if (attributed)
	{
		int64		latency_ms;

		d = row_datum(r, FP_COL_LATENCY, &isnull, NULL);
		latency_ms = isnull ? 0 : interval_ms(DatumGetIntervalP(d));
		fp_attribution_telemetry_tally_conversion(&t->latency, latency_ms);
		/* a conversion of a recorded command span links to it */
		if (r->cmd != NULL && r->cmd->span != NULL)
			fp_attribution_telemetry_tally_exemplar(&t->latency, r->now,
													Max(latency_ms, 0) / 1e3,
													r->trace_id, r->span_id);
	}
	fp_attribution_attr_int(fp_attribution_log_attr(&r->log->rec, "fp.revenue.cents"),
							revenue_cents);
	fp_attribution_attr_bool(fp_attribution_log_attr(&r->log->rec, "fp.attributed"),
							 attributed);
	if (r->cmd != NULL)
	{
		fp_attribution_copy_text(r->cmd->affiliate_id, has_affiliate ? affiliate : "",
								 sizeof(r->cmd->affiliate_id));
		fp_attribution_copy_text(r->cmd->entity_id, has_order ? order_id : "",
								 sizeof(r->cmd->entity_id));
	}

	/* attribution rules not met: worth a warning of its own */
	if (row_string(r, FP_COL_UNATTRIBUTED_REASON, reason) != NULL &&
		fp_attribution_pending_log_room())
	{
		PendingLog *rule = fp_attribution_pending_new_log(NULL, true, FP_SEVERITY_WARN,
								   "fp.business_rule.violated",
								   psprintf("business rule violated: conversion not attributed (%s)", reason),
								   r->now, r->trace_id, r->span_id, r->flags);

		fp_attribution_attr_str(fp_attribution_log_attr(&rule->rec, "fp.rule"), reason);
		fp_attribution_attr_str(fp_attribution_log_attr(&rule->rec, "fp.order.id"),
								has_order ? order_id : "");
		fp_attribution_pending_keep_log(rule);
	}
}

static void
receipt_written(RowRecords *r)
{
	char		scratch[FP_ATTR_VALUE_LEN];
	bool		isnull;
	Datum		d = row_datum(r, FP_COL_SEQUENCE, &isnull, NULL);

	row_attr(r, FP_COL_RECEIPT_ID, "fp.receipt.id", scratch);
	row_attr(r, FP_COL_AGGREGATE_TYPE, "fp.aggregate.type", scratch);
	row_attr(r, FP_COL_AGGREGATE_ID, "fp.aggregate.id", scratch);
	row_attr(r, FP_COL_KEY_ID, "fp.receipt.key_id", scratch);
	if (!isnull)
	{
		if (r->span != NULL)
			fp_attribution_attr_int(fp_attribution_span_attr(r->span, "fp.receipt.sequence"),
									DatumGetInt64(d));
		fp_attribution_attr_int(fp_attribution_log_attr(&r->log->rec, "fp.receipt.sequence"),
								DatumGetInt64(d));
	}
	fp_attribution_pending_tally(GetCurrentSubTransactionId(), TALLY_RECEIPTS, FP_COMMAND_UNKNOWN,
			  NULL)->n++;
}

/*
 * attribution.telemetry_row_written(table), AFTER INSERT FOR EACH ROW on
 * clicks, conversions and receipts, the argument naming which: the event
 * span, the business log record(s) and the business metric increments of
 * the row, pending until commit.  The row's trace_id and span_id are the
 * event span's trace and parent.  It reads the row by column name, and
 * names the table by the argument, never by the name of the table it
 * fired on (a copy or a shard under another name is the same table).  The
 * span and log records count against the transaction's caps (see
 * reserve() in telemetry_pending.c); the metric increments are tallied.
 */
PG_FUNCTION_INFO_V1(fp_attribution_telemetry_row_written);
Datum
fp_attribution_telemetry_row_written(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	FpTable		table;
	bool		isnull;
	Datum		d;
	FpTraceId	trace_id;
	FpSpanId	span_id;
	bool		sampled;
	RowRecords	r;
	TupleDesc	desc;
	bool		log_room;
	PendingSpan *ps;
	static PendingLog scratch_log;	/* a record with no room, filled for nothing */
	static const FpRowTable row_tables[] = {
		[TABLE_CLICKS] = FP_TABLE_CLICKS,
		[TABLE_CONVERSIONS] = FP_TABLE_CONVERSIONS,
		[TABLE_RECEIPTS] = FP_TABLE_RECEIPTS,
	};

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		elog(ERROR, "telemetry_row_written must be an AFTER INSERT row trigger");
	table = trigdata->tg_trigger->tgnargs == 1 ?
		fp_attribution_telemetry_table_of_name(trigdata->tg_trigger->tgargs[0]) : TABLE_OTHER;
	if (table == TABLE_OTHER)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("telemetry_row_written needs one argument: clicks, conversions or receipts")));
	/* A restored row is not new work (row_guard.c) */
	if (!fp_attribution_telemetry_active() ||
		fp_attribution_restoring(trigdata->tg_relation->rd_rel->relowner))
		return PointerGetDatum(NULL);

	desc = RelationGetDescr(trigdata->tg_relation);
	memset(&r, 0, sizeof(r));
	r.trigdata = trigdata;
	r.table = table;
	r.desc = desc;
	r.map = fp_attribution_column_map(trigdata->tg_relation, row_tables[table]);
	r.values = palloc(desc->natts * sizeof(Datum));
	r.nulls = palloc(desc->natts * sizeof(bool));
	heap_deform_tuple(trigdata->tg_trigtuple, desc, r.values, r.nulls);
	d = row_datum(&r, FP_COL_TRACE_ID, &isnull, NULL);
	if (isnull)
		return PointerGetDatum(NULL);
	memcpy(&trace_id, DatumGetPointer(d), sizeof(trace_id));
	d = row_datum(&r, FP_COL_SPAN_ID, &isnull, NULL);
	if (isnull)
		return PointerGetDatum(NULL);
	memcpy(&span_id, DatumGetPointer(d), sizeof(span_id));

	r.now = fp_attribution_telemetry_clock();
	r.trace_id = &trace_id;
	r.span_id = &span_id;
	r.cmd = fp_attribution_pending_command_of_span(&span_id);
	d = row_datum(&r, FP_COL_SAMPLED, &isnull, NULL);
	sampled = !isnull ? DatumGetBool(d) : r.cmd != NULL ? r.cmd->sampled : true;
	/* the command's other flags (random trace id, ...) when it is ours */
	r.flags = (r.cmd != NULL ? r.cmd->flags & ~FP_TRACE_FLAG_SAMPLED : 0) |
		(sampled ? FP_TRACE_FLAG_SAMPLED : 0);
	if (r.cmd != NULL &&
		(table != TABLE_RECEIPTS || fp_attribution_is_lifecycle_command(r.cmd->kind)))
	{
		r.cmd->wrote_row = true;
		if (r.cmd->kind == FP_COMMAND_UNKNOWN)
			r.cmd->kind = fp_attribution_command_of_table(table);
	}

	if (sampled && (ps = fp_attribution_pending_span()) != NULL)
	{
		r.span = &ps->rec;
		fp_attribution_span_init(r.span,
								 table == TABLE_CLICKS ? "attribution.click_tracked" :
								 table == TABLE_CONVERSIONS ? "attribution.conversion_tracked" :
								 "attribution.receipt_written",
								 FP_SPAN_KIND_INTERNAL);
		r.span->trace_id = trace_id;
		r.span->parent_span_id = span_id;
		fp_attribution_new_span_id(&r.span->span_id);
		r.span->start_time_unix_nano = fp_attribution_pending_write_start(r.now);
		r.span->end_time_unix_nano = r.now;
		fp_attribution_pending_db_attrs(r.span);
		fp_attribution_attr_utf8(fp_attribution_span_attr(r.span, "db.collection.name"),
								 table == TABLE_CLICKS ? "attribution.clicks" :
								 table == TABLE_CONVERSIONS ? "attribution.conversions" :
								 "attribution.receipts");
	}
	log_room = fp_attribution_pending_log_room();
	r.log = fp_attribution_pending_new_log(log_room ? NULL : &scratch_log, true, FP_SEVERITY_INFO,
					table == TABLE_CLICKS ? "fp.click.tracked" :
					table == TABLE_CONVERSIONS ? "fp.conversion.tracked" :
					"fp.receipt.generated",
					table == TABLE_CLICKS ? "click tracked" :
					table == TABLE_CONVERSIONS ? "conversion tracked" :
					"receipt generated",
					r.now, &trace_id, &span_id, r.flags);
	if (table == TABLE_CLICKS)
		click_written(&r);
	else if (table == TABLE_CONVERSIONS)
		conversion_written(&r);
	else
		receipt_written(&r);
	if (log_room)
		fp_attribution_pending_keep_log(r.log);
	pfree(r.values);
	pfree(r.nulls);
	return PointerGetDatum(NULL);
}
