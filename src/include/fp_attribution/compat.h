/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  The one place for differences between PostgreSQL majors.
 *
 * Built and tested only against PostgreSQL 15 (Debian 12).  The code
 * needs 15 (shmem_request_hook, InitMaterializedSRF), hence the #error.
 * The branches for 16, 17 and 18 below follow those releases' documented
 * API changes but have never been compiled; other differences are likely.
 * Delete a shim when its major drops out of support.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_COMPAT_H
#define FP_ATTRIBUTION_COMPAT_H

#include "storage/proc.h"

#if PG_VERSION_NUM < 150000
#error "fp_attribution needs PostgreSQL 15 or later"
#endif

/* PG17 moved the local transaction id into PGPROC.vxid */
#if PG_VERSION_NUM >= 170000
#define FP_MY_LOCAL_XID() (MyProc->vxid.lxid)
#else
#define FP_MY_LOCAL_XID() (MyProc->lxid)
#endif

/* PG17 has named custom wait events; before, all share "Extension" */
#if PG_VERSION_NUM >= 170000
#include "utils/wait_event.h"
#define FP_WAIT_EVENT_EXPORTER WaitEventExtensionNew("FpAttributionExport")
#define FP_WAIT_EVENT_LEDGER WaitEventExtensionNew("FpAttributionLedger")
#else
#include "utils/wait_event.h"
#define FP_WAIT_EVENT_EXPORTER PG_WAIT_EXTENSION
#define FP_WAIT_EVENT_LEDGER PG_WAIT_EXTENSION
#endif

/*
 * PG17 ties a WaitEventSet to a resource owner instead of a memory
 * context; NULL there means the caller frees it, as we always do.
 */
#if PG_VERSION_NUM >= 170000
#define FP_CREATE_WAIT_EVENT_SET(n) CreateWaitEventSet(NULL, (n))
#else
#define FP_CREATE_WAIT_EVENT_SET(n) CreateWaitEventSet(CurrentMemoryContext, (n))
#endif

/*
 * JSON semantic actions return JsonParseErrorType since PG16 (void
 * before); PG17 added the caller-allocated lexer argument.
 */
#if PG_VERSION_NUM >= 160000
#define FP_JSON_ACTION JsonParseErrorType
#define FP_JSON_ACTION_DONE return JSON_SUCCESS
#else
#define FP_JSON_ACTION void
#define FP_JSON_ACTION_DONE return
#endif
#if PG_VERSION_NUM >= 170000
#define FP_JSON_LEXER(json, len) \
	makeJsonLexContextCstringLen(NULL, (json), (len), PG_UTF8, true)
#else
#define FP_JSON_LEXER(json, len) \
	makeJsonLexContextCstringLen((json), (len), PG_UTF8, true)
#endif

/* PG18 dropped ExecutorRun's execute_once argument */
#if PG_VERSION_NUM >= 180000
#define FP_EXECUTOR_RUN_PARAMS \
	QueryDesc *queryDesc, ScanDirection direction, uint64 count
#define FP_EXECUTOR_RUN_ARGS queryDesc, direction, count
#else
#define FP_EXECUTOR_RUN_PARAMS \
	QueryDesc *queryDesc, ScanDirection direction, uint64 count, \
	bool execute_once
#define FP_EXECUTOR_RUN_ARGS queryDesc, direction, count, execute_once
#endif

#endif							/* FP_ATTRIBUTION_COMPAT_H */
