/*-------------------------------------------------------------------------
 *
 * server_log.c
 *	  PostgreSQL's own server log as OTLP log records: an emit_log_hook
 *	  that copies each message at or above
 *	  fp_attribution.server_log_min_level into the logs ring, with the
 *	  trace and span id of the fp_attribution command the backend runs, so
 *	  that a constraint violation, a deadlock or a RAISE WARNING lines up
 *	  with the command's trace.
 *
 * A record: time = when the hook ran; severity_text = PostgreSQL's level
 * ("WARNING", "LOG", ...); severity_number after the OpenTelemetry log
 * data model (DEBUG5..DEBUG2 TRACE..TRACE4, DEBUG1 DEBUG, LOG and INFO
 * INFO, NOTICE INFO2, WARNING WARN, ERROR ERROR, FATAL FATAL, PANIC
 * FATAL4); body = the primary message; attributes db.system.name
 * ("postgresql"), db.response.status_code (the SQLSTATE),
 * db.namespace and user.name (when the process serves a client),
 * and process.pid.  Five attributes only: a record is copied into the
 * ring by every logging backend, and its cost is the bytes written there
 * (the source location, code.*, would double it).  The minimum level
 * compares severity numbers, so LOG ranks with INFO, below WARNING
 * (unlike log_min_messages, which ranks it above ERROR).  The hook only
 * sees what log_min_messages lets through to the server log.
 *
 * Rules of the hook.  It runs inside EmitErrorReport, in ErrorContext,
 * for every message of every process that loaded the library, possibly
 * while the process is failing; whatever it does must not fail, wait on
 * itself, allocate, or log.  So:
 *
 *	- Installed only when the library is preloaded (no shared memory
 *	  otherwise), chained to any previous hook, which is always called.
 *	- Nothing is recorded by a process without a PGPROC (the postmaster,
 *	  which must never touch shared-memory locks; the logger, which has
 *	  detached shared memory; a child before InitProcess or after
 *	  ProcKill in proc exit), by the fp_attribution exporter (its own
 *	  failures would feed the ring they fail to export), when telemetry is
 *	  off for the session, in error recursion, or for the JSON lines of
 *	  fp_attribution.log_json (already log records).
 *	- Re-entry: a static flag is set while a record is built and pushed; a
 *	  message raised meanwhile is not recorded (counted as dropped later).
 *	  Nothing on that path ereports, so the flag cannot stay set.
 *	- The logs ring lock: ring_push holds it only for a memcpy, and no
 *	  holder waits for anything else, so taking it can not deadlock with
 *	  the locks the failing process may hold.  The only wait that could
 *	  never end is on the lock this process holds itself (a message raised
 *	  inside the ring code, whatever the reason): then the record is not
 *	  written and counted as dropped at the next message that is.
 *	- No allocation: the record is a static buffer, strings are copied
 *	  into it (non-ASCII text of databases in encodings other than UTF-8
 *	  becomes U+FFFD: converting it would need a catalog lookup, which an
 *	  aborted transaction forbids), the SQLSTATE comes from
 *	  unpack_sql_state's static buffer.  Critical sections are therefore
 *	  fine.
 *	- Bounded like the other records: a full ring overwrites its oldest
 *	  record and counts it as dropped (attribution.telemetry_status); the
 *	  logging process never waits for the exporter.
 *
 * Locking: none here; the ring is written through telemetry.c.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "libpq/libpq-be.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/proc.h"
#include "utils/elog.h"
#include "utils/guc.h"

#include "fp_attribution/server_log.h"
#include "fp_attribution/telemetry.h"
#include "fp_attribution/telemetry_record.h"

#define SERVER_LOG_OFF 0

/* U+FFFD REPLACEMENT CHARACTER */
#define UTF8_REPLACEMENT "\xEF\xBF\xBD"

int			fp_attribution_server_log_min_level = SERVER_LOG_OFF;
int			fp_attribution_server_log_paused = 0;

static const struct config_enum_entry level_options[] = {
	{"off", SERVER_LOG_OFF, false},
	{"debug5", DEBUG5, false},
	{"debug4", DEBUG4, false},
	{"debug3", DEBUG3, false},
	{"debug2", DEBUG2, false},
	{"debug1", DEBUG1, false},
	{"debug", DEBUG2, true},
	{"log", LOG, false},
	{"info", INFO, false},
	{"notice", NOTICE, false},
	{"warning", WARNING, false},
	{"error", ERROR, false},
	{"fatal", FATAL, false},
	{"panic", PANIC, false},
	{NULL, 0, false}
};

static emit_log_hook_type prev_emit_log_hook = NULL;

/* Set while a record is built and pushed */
static bool recording = false;

/* Messages not recorded because it was unsafe, to count as dropped */
static uint64 unrecorded = 0;

/* The record being built; static so that the hook allocates nothing */
static FpLogRecord record;

/* OpenTelemetry SeverityNumber of a PostgreSQL level */
static int
severity_number(int elevel)
{
	switch (elevel)
	{
		case DEBUG5:
			return 1;			/* TRACE */
		case DEBUG4:
			return 2;
		case DEBUG3:
			return 3;
		case DEBUG2:
			return 4;
		case DEBUG1:
			return 5;			/* DEBUG */
		case LOG:
		case LOG_SERVER_ONLY:
		case INFO:
			return 9;			/* INFO */
		case NOTICE:
			return 10;			/* INFO2 */
		case WARNING:
		case WARNING_CLIENT_ONLY:
			return 13;			/* WARN */
		case ERROR:
			return 17;			/* ERROR */
		case FATAL:
			return 21;			/* FATAL */
		default:
			return 24;			/* PANIC: FATAL4 */
	}
}

/* PostgreSQL's name of a level, as in the server log */
static const char *
level_name(int elevel)
{
	switch (elevel)
	{
		case DEBUG5:
			return "DEBUG5";
		case DEBUG4:
			return "DEBUG4";
		case DEBUG3:
			return "DEBUG3";
		case DEBUG2:
			return "DEBUG2";
		case DEBUG1:
			return "DEBUG1";
		case LOG:
		case LOG_SERVER_ONLY:
			return "LOG";
		case INFO:
			return "INFO";
		case NOTICE:
			return "NOTICE";
		case WARNING:
		case WARNING_CLIENT_ONLY:
			return "WARNING";
		case ERROR:
			return "ERROR";
		case FATAL:
			return "FATAL";
		default:
			return "PANIC";
	}
}

/*
 * Copy server text (database encoding) into dst of size bytes as UTF-8,
 * without a conversion function (see the file banner): UTF-8 and
 * SQL_ASCII keep valid UTF-8 sequences, other encodings their ASCII;
 * everything else becomes U+FFFD.  Truncated on a character boundary.
 */
static void
copy_server_text(char *dst, const char *src, Size size)
{
	int			encoding = GetDatabaseEncoding();
	bool		utf8 = encoding == PG_UTF8 || encoding == PG_SQL_ASCII;
	Size		used = 0;

	/*
	 * Most text of a UTF-8 database is valid (a name from a startup packet
	 * that matched no role may not be): check it in one pass first.
	 */
	if (encoding == PG_UTF8)
	{
		int			len = strlen(src);

		if (pg_encoding_verifymbstr(PG_UTF8, src, len) == len)
		{
			fp_attribution_copy_utf8(dst, src, size);
			return;
		}
	}
	while (*src != '\0')
	{
		const char *bytes = src;
		int			len = 1;	/* bytes of src taken */
		int			out = 1;	/* bytes of dst written */

		if (IS_HIGHBIT_SET(*src))
		{
			int			mblen = utf8 ? pg_utf_mblen((const unsigned char *) src) :
				pg_encoding_mblen(encoding, src);

			len = strnlen(src, mblen);
			if (utf8 && len == mblen &&
				pg_utf8_islegal((const unsigned char *) src, len))
				out = len;
			else
			{
				if (utf8)
					len = 1;
				bytes = UTF8_REPLACEMENT;
				out = 3;
			}
		}
		if (used + out >= size)
			break;
		memcpy(dst + used, bytes, out);
		used += out;
		src += len;
	}
	dst[used] = '\0';
}

/* A string attribute; value in the database encoding */
static void
add_text(const char *key, const char *value)
{
	FpAttribute *a = fp_attribution_log_attr(&record, key);

	a->type = FP_ATTR_STRING;
	copy_server_text(a->value.str, value, sizeof(a->value.str));
}

/* Whether this process may record edata now; see the rules above */
static bool
wanted(const ErrorData *edata)
{
	if (fp_attribution_server_log_min_level == SERVER_LOG_OFF ||
		severity_number(edata->elevel) <
		severity_number(fp_attribution_server_log_min_level))
		return false;
	if (MyProc == NULL || !IsUnderPostmaster ||
		!fp_attribution_telemetry_enabled ||
		!fp_attribution_telemetry_available() ||
		fp_attribution_server_log_paused > 0 || in_error_recursion_trouble())
		return false;
	if (MyBgworkerEntry != NULL &&
		strcmp(MyBgworkerEntry->bgw_type, "fp_attribution exporter") == 0)
		return false;
	return true;
}

/* Fill the static record from edata */
static void
build(const ErrorData *edata)
{
	FpTraceId	trace_id;
	FpSpanId	span_id;
	uint8		flags;

	memset(&record, 0, offsetof(FpLogRecord, attrs));
	record.time_unix_nano = fp_attribution_now_unix_nano();
	record.observed_time_unix_nano = record.time_unix_nano;
	record.severity_number = severity_number(edata->elevel);
	strlcpy(record.severity_text, level_name(edata->elevel),
			sizeof(record.severity_text));
	if (edata->message != NULL)
		copy_server_text(record.body, edata->message, sizeof(record.body));
	if (fp_attribution_telemetry_current_command(&trace_id, &span_id, &flags))
	{
		record.trace_id = trace_id;
		record.span_id = span_id;
		record.flags = flags;
	}

	fp_attribution_attr_utf8(fp_attribution_log_attr(&record, "db.system.name"),
							 "postgresql");
	fp_attribution_attr_utf8(fp_attribution_log_attr(&record, "db.response.status_code"),
							 unpack_sql_state(edata->sqlerrcode));
	if (MyProcPort != NULL && MyProcPort->database_name != NULL)
		add_text("db.namespace", MyProcPort->database_name);
	if (MyProcPort != NULL && MyProcPort->user_name != NULL)
		add_text("user.name", MyProcPort->user_name);
	fp_attribution_attr_int(fp_attribution_log_attr(&record, "process.pid"),
							MyProcPid);
}

/*
 * The emit_log_hook: record edata when wanted and safe (see the rules in
 * the file banner), then call the previous hook.
 */
static void
fp_attribution_emit_log_hook(ErrorData *edata)
{
	if (wanted(edata))
	{
		if (recording || fp_attribution_telemetry_logs_lock_held())
			unrecorded++;
		else
		{
			FpLogRecord *r = &record;

			recording = true;
			build(edata);
			fp_attribution_telemetry_push_logs(&r, 1);
			if (unrecorded > 0)
			{
				fp_attribution_telemetry_count_drops(FP_SIGNAL_LOGS, unrecorded);
				unrecorded = 0;
			}
			recording = false;
		}
	}

	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

void
fp_attribution_server_log_define_gucs(void)
{
	DefineCustomEnumVariable("fp_attribution.server_log_min_level",
							 gettext_noop("Server log messages at or above this level are also recorded as OTLP log records."),
							 gettext_noop("Levels compare by OpenTelemetry severity: LOG ranks with INFO. \"off\" records none."),
							 &fp_attribution_server_log_min_level,
							 SERVER_LOG_OFF, level_options,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
}

/* Called from _PG_init while shared_preload_libraries is processed */
void
fp_attribution_server_log_install_hook(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = fp_attribution_emit_log_hook;
}
