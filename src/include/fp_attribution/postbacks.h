/*-------------------------------------------------------------------------
 *
 * postbacks.h
 *	  Postbacks: the outbox written by the commands (postbacks.c), the
 *	  template expansion and signature (postback_template.c), the HTTP
 *	  transport (postback_http.c) and the worker that delivers them
 *	  (postback_worker.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_POSTBACKS_H
#define FP_ATTRIBUTION_POSTBACKS_H

#include "lib/stringinfo.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "fp_attribution/receipts.h"

/* Settings (postbacks.c); PGC_SIGHUP, read by the worker */
extern bool fp_attribution_postback_enabled;
extern int	fp_attribution_postback_concurrency;
extern int	fp_attribution_postback_endpoint_concurrency;
extern int	fp_attribution_postback_timeout_ms;
extern int	fp_attribution_postback_max_attempts;
extern int	fp_attribution_postback_max_age_s;
extern int	fp_attribution_postback_retry_initial_ms;
extern int	fp_attribution_postback_retry_max_ms;
extern int	fp_attribution_postback_disable_after;
extern int	fp_attribution_postback_retention_s;
extern int	fp_attribution_postback_batch_delay_ms;

/* Longest error message kept for a delivery */
#define FP_POSTBACK_ERROR_LEN 256

/* The values of a delivery, as text (NULL: empty), for its macros */
typedef struct FpPostbackValues
{
	const char *event;
	const char *advertiser_id;
	const char *affiliate_id;
	const char *click_id;
	const char *order_id;
	const char *offer_id;
	const char *status;
	const char *revenue_cents;
	const char *refunded_cents;
	const char *commission_cents;
	const char *currency;
	const char *receipt_id;
	const char *trace_id;
	const char *delivery_id;
} FpPostbackValues;

/* What the transport reports of one attempt */
typedef enum FpPostbackOutcome
{
	FP_POSTBACK_SENT,			/* 2xx */
	FP_POSTBACK_RETRYABLE,		/* connection error, timeout, 429, 5xx */
	FP_POSTBACK_PERMANENT		/* any other answer */
} FpPostbackOutcome;

typedef struct FpPostbackResult
{
	FpPostbackOutcome outcome;
	int			http_status;	/* 0 without an answer */
	int			retry_after_ms; /* -1 without Retry-After */
	double		elapsed_ms;
	char		error[FP_POSTBACK_ERROR_LEN];	/* redacted; "" on success */
} FpPostbackResult;

/* A conversion's values for its outbox rows (postback_rows.c) */
typedef struct FpOutboxRow
{
	const char *advertiser_id;
	const char *event;
	const char *order_id;		/* NULL: null, and so on */
	bool		has_click_id;
	pg_uuid_t	click_id;
	const char *affiliate_id;
	const char *offer_id;
	const char *status;
	bool		has_revenue_cents;
	int64		revenue_cents;
	bool		has_refunded_cents;
	int64		refunded_cents;
	bool		has_commission_cents;
	int64		commission_cents;
	const char *currency;
	pg_uuid_t	receipt_id;
	FpTraceId	trace_id;
	FpSpanId	span_id;
	bool		sampled;
} FpOutboxRow;

/* An attempt's outcome for its outbox row (postback_rows.c) */
typedef struct FpPostbackRowResult
{
	const char *advertiser_id;
	const pg_uuid_t *delivery_id;	/* with advertiser_id, the row's key */
	int			http_status;	/* 0 without an answer */
	const char *error;			/* NULL: none */
	const char *state;			/* pending (a retry), delivered or failed */
	TimestampTz next_attempt_at;
} FpPostbackRowResult;

/* postbacks.c: the command side */
extern void fp_attribution_postbacks_define_gucs(void);
extern void fp_attribution_postbacks_enqueue(const FpReceiptEnvelope *env,
											 Jsonb *payload);

/* postback_template.c: no fmgr, no shared state */
extern bool fp_attribution_postback_template_valid(const char *url_template,
												   char *why, size_t whysize);
extern char *fp_attribution_postback_expand(const char *url_template,
											const FpPostbackValues *v);
extern char *fp_attribution_postback_body(const FpPostbackValues *v);
extern char *fp_attribution_postback_signature(const char *secret,
											   int64 timestamp,
											   const char *message);

/* postback_http.c: the worker's transport */
extern void fp_attribution_postback_http_start(int slot, const char *method,
											   const char *url,
											   const char *body,
											   const char *const *headers,
											   int nheaders);
extern bool fp_attribution_postback_http_take(int slot,
											  FpPostbackResult *result);
extern bool fp_attribution_postback_http_busy(int slot);
extern const FpPostbackResult *fp_attribution_postback_http_result(int slot);
extern int	fp_attribution_postback_http_finished(void);
extern void fp_attribution_postback_http_progress(void);
extern void fp_attribution_postback_http_wait(long timeout_ms, bool latch,
											  uint32 wait_event_info);

/* postback_rows.c: writes to the outbox in place, on one node */
extern bool fp_attribution_postback_enqueue_in_place(Oid outbox_relid, const FpOutboxRow *row,
													 const int64 *endpoints, int n);
extern bool fp_attribution_postback_results_in_place(const FpPostbackRowResult *rows,
													 int n, TimestampTz now);

/* postback_worker.c */

#endif							/* FP_ATTRIBUTION_POSTBACKS_H */
