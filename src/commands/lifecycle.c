/*-------------------------------------------------------------------------
 *
 * lifecycle.c
 *	  Commissions, the status of a conversion and the commands that change
 *	  it: approve, reject, reverse and refund.
 *
 * Commission.  The insert trigger (row_triggers.c) gives an attributed
 * conversion the commission of the active offer its click names, in
 * integer minor units of the conversion's currency: a cpa offer pays its
 * fixed payout when the offer's currency is the conversion's (there are no
 * exchange rates here, so another currency earns no commission rather
 * than a guess); a revshare offer pays payout basis points of the revenue.
 * Rounding rule: every amount computed for the affiliate is rounded down
 * to the minor unit (floor, the numbers being non-negative), so the
 * affiliate is never credited a fraction the advertiser did not earn.  No
 * offer, an inactive one, or no attribution: commission_cents is NULL.
 *
 * Status.  A new conversion is "pending", or "approved" when its offer has
 * no hold period.  The commands move it along this state machine, and
 * refuse anything else (SQLSTATE 55000) writing nothing:
 *
 *	pending  --approve-->  approved
 *	pending  --reject--->  rejected				(terminal)
 *	approved --reverse-->  reversed				(terminal; all commission
 *												 reversed)
 *	pending | approved --refund(amount)--> same status, or reversed when
 *		nothing is left to refund
 *
 * A refund adds amount_cents to refunded_cents, never beyond revenue_cents,
 * and sets commission_reversed_cents so that the commission still due,
 * commission_cents - commission_reversed_cents, is
 * floor(commission_cents * (revenue_cents - refunded_cents) / revenue_cents).
 *
 * History.  Each command appends one receipt to the conversion's chain,
 * {"event": "conversion_approved" ..., "status": ..., and the new value of
 * every other column it changed, "reason" and "command_id" when given}.
 * The row is always the fold of its chain: the payload of the first
 * receipt, each of whose members except "event" takes the value a later
 * receipt gives it (fp_attribution_fold_event; verify_all checks it).
 *
 * Concurrency.  A command locks the conversion's row (SELECT ... FOR
 * UPDATE) before it reads its state, so two commands on one conversion
 * run one after the other, the second seeing what the first committed;
 * the receipt chain's head lock (receipts.c) is taken after it, always in
 * this order.  Under REPEATABLE READ the second gets a serialization
 * failure instead, as PostgreSQL's UPDATE does.
 *
 * Idempotency.  A command given a command_id that a receipt of the
 * conversion already carries returns that receipt and writes nothing (the
 * same command_id with another command is refused, 23505).
 *
 * Who may change a conversion.  Nobody but these commands and late
 * attribution (late_clicks.c): a row trigger, conversion_follows_receipt,
 * refuses every other UPDATE (as append_only refuses its DELETE and
 * TRUNCATE, receipts.c).  It lets an UPDATE through in two cases:
 *
 * - fp_attribution_lifecycle_updating is set: a backend-local flag that
 *	 only this C code sets, around its own UPDATE statement, never a
 *	 setting.  This is the path on one node, and on a Citus worker running
 *	 a delegated command or a trigger on a shard;
 * - the new row is what the newest receipt of the conversion's chain
 *	 says, and this transaction wrote that receipt: every member of the
 *	 row's payload takes the value the receipt gives it (or keeps its own,
 *	 fp_attribution_fold_event) and every other column is unchanged.  This
 *	 is the path of a command that Citus runs on the coordinator (inside
 *	 BEGIN ... COMMIT, or from PL/pgSQL): its UPDATE reaches the worker on
 *	 another backend, where the flag is not set, so the command appends its
 *	 receipt first.  A receipt of a conversion is written only by the
 *	 extension's commands (append_receipt refuses the built-in types and
 *	 receipts grant no INSERT), so this lets through exactly the change a
 *	 command proved, and verify_all still finds the row the fold of its
 *	 chain.
 *
 * Shared memory: none.  Backend-local state: the saved plans and the flag.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/uuid.h"

#include "fp_attribution/columns.h"
#include "fp_attribution/chain_fold.h"
#include "fp_attribution/extension.h"
#include "fp_attribution/lifecycle.h"
#include "fp_attribution/receipts.h"
#include "fp_attribution/spi_plans.h"
#include "fp_attribution/telemetry_record.h"
#include "fp_attribution/trace_context.h"
#include "fp_attribution/validate.h"

/* Longest reason, in characters */
#define REASON_MAX_CHARS 1024

/* Basis points in a whole */
#define BASIS_POINTS 10000

bool		fp_attribution_lifecycle_updating = false;

typedef enum LifecycleCommand
{
	LC_APPROVE,
	LC_REJECT,
	LC_REVERSE,
	LC_REFUND
} LifecycleCommand;

/* Their command kinds, the telemetry's name for them */
static const FpCommandKind command_kinds[] = {
	[LC_APPROVE] = FP_COMMAND_APPROVE_CONVERSION,
	[LC_REJECT] = FP_COMMAND_REJECT_CONVERSION,
	[LC_REVERSE] = FP_COMMAND_REVERSE_CONVERSION,
	[LC_REFUND] = FP_COMMAND_REFUND_CONVERSION,
};

/* The state machine of the file header, one row per command */
static const struct
{
	const char *verb;
	const char *event;
	const char *to;				/* NULL: refund decides */
	const char *from[3];		/* NULL-terminated */
	const char *hint;
}			commands[] = {
	[LC_APPROVE] = {"approve", "conversion_approved", "approved", {"pending"},
	"Only a pending conversion can be approved."},
	[LC_REJECT] = {"reject", "conversion_rejected", "rejected", {"pending"},
	"Only a pending conversion can be rejected; reverse an approved one."},
	[LC_REVERSE] = {"reverse", "conversion_reversed", "reversed", {"approved"},
	"Only an approved conversion can be reversed; reject a pending one."},
	[LC_REFUND] = {"refund", "conversion_refunded", NULL, {"pending", "approved"},
	"Only a pending or approved conversion can be refunded."},
};

/* The columns of a conversion the commands read and change */
typedef struct ConversionState
{
	const char *status;
	const char *currency;
	int64		revenue_cents;
	int64		refunded_cents;
	bool		has_commission;
	int64		commission_cents;
	int64		commission_reversed_cents;
} ConversionState;

static SPIPlanPtr offer_plan = NULL;
static SPIPlanPtr lock_plan = NULL;
static SPIPlanPtr command_plan = NULL;
static SPIPlanPtr update_plan = NULL;
static SPIPlanPtr receipt_plan = NULL;
static SPIPlanPtr newest_plan = NULL;

/*
 * floor(a * b / c) for a, b >= 0 and c > 0, without overflow; the result
 * is at most a or b when the other is at most c.
 */
static int64
mul_div_floor(int64 a, int64 b, int64 c)
{
	Numeric		product = numeric_mul_opt_error(int64_to_numeric(a),
												int64_to_numeric(b), NULL);
	Datum		quotient = DirectFunctionCall2(numeric_div_trunc,
											   NumericGetDatum(product),
											   NumericGetDatum(int64_to_numeric(c)));

	return DatumGetInt64(DirectFunctionCall1(numeric_int8, quotient));
}

/*
 * The commission an offer pays for a conversion (see the file header);
 * false when it pays none.
 */
static bool
commission(const char *payout_type, int64 payout, const char *offer_currency,
		   int64 revenue_cents, const char *currency, int64 *commission)
{
	if (strcmp(payout_type, "revshare") == 0)
	{
		*commission = mul_div_floor(revenue_cents, payout, BASIS_POINTS);
		return true;
	}
	if (strcmp(offer_currency, currency) != 0)
		return false;
	*commission = payout;
	return true;
}

#define CONVERSION_KEY \
	" WHERE c.advertiser_id OPERATOR(pg_catalog.=) $1" \
	" AND c.order_id OPERATOR(pg_catalog.=) $2"
#define RECEIPT_KEY \
	" WHERE r.advertiser_id OPERATOR(pg_catalog.=) $1" \
	" AND r.aggregate_type OPERATOR(pg_catalog.=) 'conversion'" \
	" AND r.aggregate_id OPERATOR(pg_catalog.=) $2"

static void
prepare_plans(void)
{
	if (lock_plan != NULL)
		return;
	/* an inactive offer pays nothing, as no offer does */
	offer_plan = fp_attribution_keep_plan("SELECT o.payout_type, o.payout, o.currency,"
										  " o.hold_period OPERATOR(pg_catalog.=) '0'::pg_catalog.interval"
										  " FROM attribution.offers o"
										  " WHERE o.advertiser_id OPERATOR(pg_catalog.=) $1"
										  " AND o.offer_id OPERATOR(pg_catalog.=) $2 AND o.active",
										  2, (Oid[]) {TEXTOID, TEXTOID});
	lock_plan = fp_attribution_keep_plan("SELECT c.status, c.revenue_cents, c.refunded_cents,"
										 " c.commission_cents, c.commission_reversed_cents,"
										 " c.currency"
										 " FROM attribution.conversions c" CONVERSION_KEY
										 " FOR UPDATE",
										 2, (Oid[]) {TEXTOID, TEXTOID});
	command_plan = fp_attribution_keep_plan("SELECT r.* FROM attribution.receipts r" RECEIPT_KEY
											" AND (r.payload OPERATOR(pg_catalog.->>) 'command_id')"
											" OPERATOR(pg_catalog.=) $3",
											3, (Oid[]) {TEXTOID, TEXTOID, TEXTOID});
	update_plan = fp_attribution_keep_plan("UPDATE attribution.conversions c SET status = $3,"
										   " refunded_cents = $4, commission_reversed_cents = $5"
										   CONVERSION_KEY,
										   5, (Oid[]) {TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID});
	receipt_plan = fp_attribution_keep_plan("SELECT r.* FROM attribution.receipts r" RECEIPT_KEY
											" AND r.sequence OPERATOR(pg_catalog.=) $3",
											3, (Oid[]) {TEXTOID, TEXTOID, INT8OID});
	newest_plan = fp_attribution_keep_plan("SELECT r.payload, r.xmin FROM attribution.receipts r"
										   RECEIPT_KEY " ORDER BY r.sequence DESC LIMIT 1",
										   2, (Oid[]) {TEXTOID, TEXTOID});
}

/*
 * What a conversion of revenue_cents in currency (text) earns from the
 * advertiser's active offer offer_id ((Datum) 0: none): its commission,
 * if any, and its first status, "approved" when the offer has no hold
 * period, else "pending".  Caller is connected to SPI.
 */
void
fp_attribution_earn(Datum advertiser_id, Datum offer_id, int64 revenue_cents,
					Datum currency, FpEarning *earning)
{
	HeapTuple	offer;
	TupleDesc	desc;
	bool		isnull;
	int			rc;

	earning->status = "pending";
	earning->has_commission = false;
	earning->commission_cents = 0;
	if (offer_id == (Datum) 0)
		return;
	prepare_plans();
	rc = SPI_execute_plan(offer_plan, (Datum[]) {advertiser_id, offer_id}, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "offer lookup failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return;
	offer = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	earning->has_commission =
		commission(TextDatumGetCString(SPI_getbinval(offer, desc, 1, &isnull)),
				   DatumGetInt64(SPI_getbinval(offer, desc, 2, &isnull)),
				   TextDatumGetCString(SPI_getbinval(offer, desc, 3, &isnull)),
				   revenue_cents, TextDatumGetCString(currency),
				   &earning->commission_cents);
	if (DatumGetBool(SPI_getbinval(offer, desc, 4, &isnull)))
		earning->status = "approved";
}

/*
 * Lock the conversion and read its state; it must exist.
 */
static void
lock_conversion(Datum *key, ConversionState *st)
{
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	int			rc = SPI_execute_plan(lock_plan, key, NULL, false, 1);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not lock conversion: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("conversion of order \"%s\" of advertiser \"%s\" does not exist",
						TextDatumGetCString(key[1]), TextDatumGetCString(key[0]))));
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	st->status = TextDatumGetCString(SPI_getbinval(row, desc, 1, &isnull));
	st->revenue_cents = DatumGetInt64(SPI_getbinval(row, desc, 2, &isnull));
	st->refunded_cents = DatumGetInt64(SPI_getbinval(row, desc, 3, &isnull));
	st->commission_cents = DatumGetInt64(SPI_getbinval(row, desc, 4, &isnull));
	st->has_commission = !isnull;
	st->commission_reversed_cents = st->has_commission ?
		DatumGetInt64(SPI_getbinval(row, desc, 5, &isnull)) : 0;
	st->currency = TextDatumGetCString(SPI_getbinval(row, desc, 6, &isnull));
}

/*
 * The receipt of an earlier run of this command with command_id, or NULL.
 * Read with a new snapshot (not read-only), so that a run committed while
 * we waited for the row lock is seen.
 */
static HeapTuple
earlier_run(Datum *key, const char *command_id, LifecycleCommand cmd)
{
	Datum		args[3] = {key[0], key[1], CStringGetTextDatum(command_id)};
	int			rc = SPI_execute_plan(command_plan, args, NULL, false, 1);
	JsonbValue *event;
	Jsonb	   *payload;
	bool		isnull;

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not look up command: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return NULL;
	payload = DatumGetJsonbP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
										   SPI_fnumber(SPI_tuptable->tupdesc, "payload"),
										   &isnull));
	event = getKeyJsonValueFromContainer(&payload->root, "event", strlen("event"), NULL);
	if (event == NULL || event->type != jbvString ||
		event->val.string.len != strlen(commands[cmd].event) ||
		memcmp(event->val.string.val, commands[cmd].event, event->val.string.len) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("command_id %s was already used by another command on this conversion",
						command_id),
				 errhint("Give every command its own command_id; reuse one only to retry that command.")));
	return SPI_tuptable->vals[0];
}

/*
 * Check the transition and compute the state after cmd.
 */
static void
apply_command(LifecycleCommand cmd, int64 amount, const char *order_id,
			  ConversionState *st)
{
	bool		allowed = false;

	for (int i = 0; commands[cmd].from[i] != NULL; i++)
		allowed |= strcmp(commands[cmd].from[i], st->status) == 0;
	if (!allowed)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot %s conversion of order \"%s\": it is %s",
						commands[cmd].verb, order_id, st->status),
				 errhint("%s", commands[cmd].hint)));
	if (cmd == LC_REVERSE)
		st->commission_reversed_cents = st->commission_cents;
	if (cmd == LC_REFUND)
	{
		int64		left = st->revenue_cents - st->refunded_cents;

		if (amount > left)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("refund of " INT64_FORMAT " exceeds what is left of order \"%s\"",
							amount, order_id),
					 errdetail(INT64_FORMAT " of " INT64_FORMAT " minor units are left to refund.",
							   left, st->revenue_cents)));
		st->refunded_cents += amount;
		if (st->has_commission)
			st->commission_reversed_cents = st->commission_cents -
				mul_div_floor(st->commission_cents,
							  st->revenue_cents - st->refunded_cents,
							  st->revenue_cents);
		if (st->refunded_cents == st->revenue_cents)
			st->status = "reversed";
	}
	else
		st->status = commands[cmd].to;
}

static void
push_member(JsonbParseState **ps, const char *name, JsonbValue *value)
{
	JsonbValue	key;

	key.type = jbvString;
	key.val.string.val = (char *) name;
	key.val.string.len = strlen(name);
	pushJsonbValue(ps, WJB_KEY, &key);
	pushJsonbValue(ps, WJB_VALUE, value);
}

static void
push_string(JsonbParseState **ps, const char *name, const char *s)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = strlen(s);
	push_member(ps, name, &v);
}

static void
push_int(JsonbParseState **ps, const char *name, int64 n)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(n);
	push_member(ps, name, &v);
}

/*
 * The payload of cmd's receipt: the event, what it changed, and the
 * reason and command_id when given.
 */
static Jsonb *
command_payload(LifecycleCommand cmd, const ConversionState *st, int64 amount,
				const char *reason, const char *command_id)
{
	JsonbParseState *ps = NULL;

	pushJsonbValue(&ps, WJB_BEGIN_OBJECT, NULL);
	push_string(&ps, "event", commands[cmd].event);
	push_string(&ps, "status", st->status);
	if (cmd == LC_REFUND)
	{
		push_int(&ps, "amount_cents", amount);
		push_int(&ps, "refunded_cents", st->refunded_cents);
	}
	if ((cmd == LC_REFUND || cmd == LC_REVERSE) && st->has_commission)
		push_int(&ps, "commission_reversed_cents", st->commission_reversed_cents);
	if (reason != NULL)
		push_string(&ps, "reason", reason);
	if (command_id != NULL)
		push_string(&ps, "command_id", command_id);
	return JsonbValueToJsonb(pushJsonbValue(&ps, WJB_END_OBJECT, NULL));
}

/*
 * Run an UPDATE of attribution.conversions: the only way a conversion
 * changes, for the commands here and late attribution (late_clicks.c);
 * the conversion_follows_receipt trigger lets it through (file header).  Returns the SPI
 * result code.
 */
int
fp_attribution_update_conversion(SPIPlanPtr plan, Datum *args,
								 const char *nulls)
{
	int			rc;

	fp_attribution_lifecycle_updating = true;
	PG_TRY();
	{
		rc = SPI_execute_plan(plan, args, nulls, false, 0);
	}
	PG_FINALLY();
	{
		fp_attribution_lifecycle_updating = false;
	}
	PG_END_TRY();
	return rc;
}

/*
 * Whether every column of desc that is not a member of payload (the row's
 * payload) is the same in both versions of the row.
 */
static bool
other_columns_unchanged(TupleDesc desc, Jsonb *payload, HeapTuple before,
						HeapTuple after)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const char *name = NameStr(att->attname);
		bool		before_null;
		bool		after_null;
		Datum		b;
		Datum		a;

		if (att->attisdropped ||
			getKeyJsonValueFromContainer(&payload->root, name, strlen(name),
										 NULL) != NULL)
			continue;
		b = heap_getattr(before, i + 1, desc, &before_null);
		a = heap_getattr(after, i + 1, desc, &after_null);
		if (before_null != after_null ||
			(!before_null && !datumIsEqual(b, a, att->attbyval, att->attlen)))
			return false;
	}
	return true;
}

/*
 * Whether the UPDATE of a conversion of rel from before to after is what
 * the newest receipt of its chain says, that receipt written by this
 * transaction (the file header's second case).  The receipt is read as
 * the table's owner (the updating role need not read receipts), with a
 * new snapshot, which sees the receipt the command wrote before.
 */
static bool
update_follows_receipt(Relation rel, HeapTuple before, HeapTuple after)
{
	TupleDesc	desc = RelationGetDescr(rel);
	const FpColumnMap *map = fp_attribution_column_map(rel, FP_TABLE_CONVERSIONS);
	MemoryContext caller_cxt = CurrentMemoryContext;
	Jsonb	   *old_payload = fp_attribution_row_payload("conversion", before, desc);
	Jsonb	   *new_payload = fp_attribution_row_payload("conversion", after, desc);
	Datum		key[2];
	bool		isnull;
	bool		follows = false;
	Oid			save_user;
	int			save_sec;
	int			rc;

	key[0] = heap_getattr(before,
						  fp_attribution_required_column(map, FP_COL_ADVERTISER_ID),
						  desc, &isnull);
	key[1] = heap_getattr(before,
						  fp_attribution_required_column(map, FP_COL_ORDER_ID),
						  desc, &isnull);
	SPI_connect();
	prepare_plans();
	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(rel->rd_rel->relowner,
						   save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_NOFORCE_RLS);
	rc = SPI_execute_plan(newest_plan, key, NULL, false, 1);
	SetUserIdAndSecContext(save_user, save_sec);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read the conversion's receipts: %s",
			 SPI_result_code_string(rc));
	if (SPI_processed == 1)
	{
		HeapTuple	newest = SPI_tuptable->vals[0];
		TupleDesc	rdesc = SPI_tuptable->tupdesc;
		TransactionId xmin = DatumGetTransactionId(SPI_getbinval(newest, rdesc,
																 2, &isnull));

		if (TransactionIdIsCurrentTransactionId(xmin))
		{
			Jsonb	   *event = DatumGetJsonbP(SPI_getbinval(newest, rdesc,
															 1, &isnull));
			Jsonb	   *expected = fp_attribution_fold_event(caller_cxt,
															 old_payload, event);

			follows = compareJsonbContainers(&expected->root,
											 &new_payload->root) == 0 &&
				other_columns_unchanged(desc, old_payload, before, after);
		}
	}
	SPI_finish();
	return follows;
}

/*
 * attribution.conversion_follows_receipt() BEFORE UPDATE row trigger on
 * attribution.conversions: lets through the lifecycle commands' and late
 * attribution's UPDATE only (file header).
 */
PG_FUNCTION_INFO_V1(fp_attribution_conversion_follows_receipt);
Datum
fp_attribution_conversion_follows_receipt(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("conversion_follows_receipt must be a BEFORE UPDATE FOR EACH ROW trigger")));
	if (!fp_attribution_lifecycle_updating &&
		!update_follows_receipt(trigdata->tg_relation, trigdata->tg_trigtuple,
								trigdata->tg_newtuple))
		fp_attribution_refuse_change("conversions", "UPDATE");
	return PointerGetDatum(trigdata->tg_newtuple);
}

/*
 * Write the new state of a command.
 */
static void
update_conversion(Datum *key, const ConversionState *st)
{
	Datum		args[5] = {key[0], key[1], CStringGetTextDatum(st->status),
	Int64GetDatum(st->refunded_cents), Int64GetDatum(st->commission_reversed_cents)};
	char		nulls[5] = {' ', ' ', ' ', ' ', st->has_commission ? ' ' : 'n'};
	int			rc = fp_attribution_update_conversion(update_plan, args, nulls);

	if (rc != SPI_OK_UPDATE || SPI_processed != 1)
		elog(ERROR, "could not update conversion: %s", SPI_result_code_string(rc));
}

/*
 * Tally the business metrics of a command that changed its conversion
 * from status "from" to st (counted if it commits).
 */
static void
count_change(LifecycleCommand cmd, const char *from, const ConversionState *st,
			 int64 amount)
{
	if (cmd == LC_APPROVE)
		fp_attribution_telemetry_tally_lifecycle(FP_LIFECYCLE_APPROVED, NULL, 1);
	else if (cmd == LC_REJECT)
		fp_attribution_telemetry_tally_lifecycle(FP_LIFECYCLE_REJECTED, NULL, 1);
	else if (strcmp(st->status, "reversed") == 0 && strcmp(from, "reversed") != 0)
		fp_attribution_telemetry_tally_lifecycle(FP_LIFECYCLE_REVERSED, NULL, 1);
	if (cmd == LC_REFUND)
		fp_attribution_telemetry_tally_lifecycle(FP_LIFECYCLE_REFUNDS_CENTS,
												 st->currency, amount);
}

/*
 * The four commands.  Arguments: order_id, advertiser_id, (refund only:
 * amount_cents,) reason, command_id, traceparent, tracestate; returns the
 * receipt of the change.
 */
static Datum
change_conversion(FunctionCallInfo fcinfo, LifecycleCommand cmd)
{
	int			a = cmd == LC_REFUND ? 1 : 0;	/* the amount shifts the rest */
	text	   *order_id;
	text	   *advertiser_id;
	int64		amount = 0;
	char	   *reason = NULL;
	char	   *command_id = NULL;
	FpCommandContext ctx;
	FpReceiptEnvelope env;
	ConversionState st;
	Datum		key[2];
	HeapTuple	receipt;
	Datum		result;
	int			rc;

	order_id = fp_attribution_check_text("order_id",
										 PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0),
										 FP_ID_MAX_CHARS, true);
	advertiser_id = fp_attribution_check_text("advertiser_id",
											  PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1),
											  FP_ID_MAX_CHARS, true);
	if (cmd == LC_REFUND)
	{
		if (PG_ARGISNULL(2))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("amount_cents must not be null")));
		amount = PG_GETARG_INT64(2);
		if (amount <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("amount_cents must be positive"),
					 errdetail("The value is " INT64_FORMAT ".", amount)));
	}
	if (!PG_ARGISNULL(2 + a))
		reason = text_to_cstring(fp_attribution_check_text("reason", PG_GETARG_TEXT_PP(2 + a),
														   REASON_MAX_CHARS, false));
	if (!PG_ARGISNULL(3 + a))
		command_id = DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(3 + a)));
	fp_attribution_begin_command(PG_ARGISNULL(4 + a) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(4 + a)),
								 PG_ARGISNULL(5 + a) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(5 + a)),
								 &ctx);
	fp_attribution_telemetry_name_command(command_kinds[cmd],
										  text_to_cstring(order_id));

	key[0] = PointerGetDatum(advertiser_id);
	key[1] = PointerGetDatum(order_id);
	SPI_connect();
	prepare_plans();
	lock_conversion(key, &st);
	receipt = command_id != NULL ? earlier_run(key, command_id, cmd) : NULL;
	if (receipt == NULL)
	{
		const char *from = st.status;

		apply_command(cmd, amount, text_to_cstring(order_id), &st);
		count_change(cmd, from, &st, amount);

		/* the receipt before the UPDATE that follows it (file header) */
		memset(&env, 0, sizeof(env));
		env.advertiser_id = text_to_cstring(advertiser_id);
		env.aggregate_type = "conversion";
		env.aggregate_id = text_to_cstring(order_id);
		env.trace_id = ctx.trace_id;
		env.span_id = ctx.span_id;
		fp_attribution_append_row_event(&env,
										command_payload(cmd, &st, amount, reason, command_id),
										fp_attribution_extension_owner());
		update_conversion(key, &st);
		rc = SPI_execute_plan(receipt_plan,
							  (Datum[]) {key[0], key[1], Int64GetDatum(env.sequence)},
							  NULL, false, 1);
		if (rc != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not read back the new receipt");
		receipt = SPI_tuptable->vals[0];
	}
	result = PointerGetDatum(SPI_returntuple(receipt, SPI_tuptable->tupdesc));
	SPI_finish();
	PG_RETURN_DATUM(result);
}

/*
 * attribution.approve_conversion(order_id, advertiser_id, reason,
 *								  command_id, traceparent, tracestate)
 */
PG_FUNCTION_INFO_V1(fp_attribution_approve_conversion);
Datum
fp_attribution_approve_conversion(PG_FUNCTION_ARGS)
{
	return change_conversion(fcinfo, LC_APPROVE);
}

/*
 * attribution.reject_conversion(order_id, advertiser_id, reason,
 *								 command_id, traceparent, tracestate)
 */
PG_FUNCTION_INFO_V1(fp_attribution_reject_conversion);
Datum
fp_attribution_reject_conversion(PG_FUNCTION_ARGS)
{
	return change_conversion(fcinfo, LC_REJECT);
}

/*
 * attribution.reverse_conversion(order_id, advertiser_id, reason,
 *								  command_id, traceparent, tracestate)
 */
PG_FUNCTION_INFO_V1(fp_attribution_reverse_conversion);
Datum
fp_attribution_reverse_conversion(PG_FUNCTION_ARGS)
{
	return change_conversion(fcinfo, LC_REVERSE);
}

/*
 * attribution.refund_conversion(order_id, advertiser_id, amount_cents,
 *								 reason, command_id, traceparent, tracestate)
 */
PG_FUNCTION_INFO_V1(fp_attribution_refund_conversion);
Datum
fp_attribution_refund_conversion(PG_FUNCTION_ARGS)
{
	return change_conversion(fcinfo, LC_REFUND);
}
