/*-------------------------------------------------------------------------
 *
 * otlp_settings.c
 *	  The fp_attribution.otlp_* settings and where each signal is sent.
 *
 * Every setting's default comes from the standard OpenTelemetry variable
 * when it is set in the postmaster's environment (OTEL_EXPORTER_OTLP_*,
 * OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_BSP_*,
 * OTEL_METRIC_EXPORT_INTERVAL, ENVIRONMENT, GCP_PROJECT_ID), else from the
 * OpenTelemetry specification's default.  A variable that does not parse
 * is ignored with a warning rather than keeping the server from starting.
 *
 * The exporter variables come in a general and a per-signal form
 * (OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TRACES_HEADERS ...), the
 * per-signal one taking precedence.  Each form has its own setting, the
 * per-signal ones (fp_attribution.otlp_traces_headers ...) empty, or 0 for
 * the timeout, unless set: fp_attribution_otlp_target resolves them, so
 * the precedence holds whether a value came from the environment or from
 * postgresql.conf.
 *
 * All but fp_attribution.otlp_database and fp_attribution.otlp_workers
 * (restart only) are PGC_SIGHUP: the worker reads
 * them after a reload (a session SET could not reach the worker, so none
 * is PGC_SUSET).  Endpoints (http://user:token@host/?key=...) and headers
 * carry secrets, so those settings are GUC_SUPERUSER_ONLY (readable by
 * superusers and pg_read_all_settings), a bad OTEL_EXPORTER_OTLP_HEADERS
 * is reported without its value and a bad endpoint variable redacted.
 * Header names and values are sent as request lines, so control
 * characters in them, raw or percent-encoded, are refused: they would
 * let a value end the header and add others (CR LF) or cut it (NUL).
 *
 * No shared state: nothing to lock.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdlib.h>

#include "miscadmin.h"
#include "utils/guc.h"

#include "fp_attribution/otlp.h"
#include "fp_attribution/redact.h"

bool		fp_attribution_otlp_enabled = true;
char	   *fp_attribution_otlp_endpoint = NULL;
char	   *fp_attribution_otlp_headers = NULL;
char	   *fp_attribution_otlp_certificate = NULL;
char	   *fp_attribution_otlp_client_key = NULL;
char	   *fp_attribution_otlp_client_certificate = NULL;
FpOtlpSignalSettings fp_attribution_otlp_signal[FP_OTLP_NSIGNALS];
int			fp_attribution_otlp_protocol = FP_OTLP_HTTP_PROTOBUF;
int			fp_attribution_otlp_compression = FP_OTLP_COMPRESSION_NONE;
int			fp_attribution_otlp_timeout_ms = 10000;
int			fp_attribution_otlp_batch_size = 512;
int			fp_attribution_otlp_workers = 1;
int			fp_attribution_otlp_schedule_delay_ms = 5000;
int			fp_attribution_otlp_metric_interval_ms = 60000;
char	   *fp_attribution_otlp_service_name = NULL;
char	   *fp_attribution_otlp_resource_attributes = NULL;
char	   *fp_attribution_otlp_environment = NULL;
char	   *fp_attribution_otlp_gcp_project = NULL;
char	   *fp_attribution_otlp_database = NULL;

const char *const fp_attribution_otlp_signal_names[FP_OTLP_NSIGNALS] = {
	"traces", "metrics", "logs"
};

/* gRPC method of each signal's collector service */
static const char *const grpc_methods[FP_OTLP_NSIGNALS] = {
	"/opentelemetry.proto.collector.trace.v1.TraceService/Export",
	"/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
	"/opentelemetry.proto.collector.logs.v1.LogsService/Export"
};

static const struct config_enum_entry protocol_options[] = {
	{"http/protobuf", FP_OTLP_HTTP_PROTOBUF, false},
	{"http/json", FP_OTLP_HTTP_JSON, false},
	{"grpc", FP_OTLP_GRPC, false},
	{NULL, 0, false}
};

static const struct config_enum_entry compression_options[] = {
	{"none", FP_OTLP_COMPRESSION_NONE, false},
	{"gzip", FP_OTLP_COMPRESSION_GZIP, false},
	{NULL, 0, false}
};

/*
 * The per-signal enums add "" for "the general setting", hidden so that
 * PostgreSQL's hint on a bad value does not list an empty name.
 */
static const struct config_enum_entry signal_protocol_options[] = {
	{"", FP_OTLP_INHERIT, true},
	{"http/protobuf", FP_OTLP_HTTP_PROTOBUF, false},
	{"http/json", FP_OTLP_HTTP_JSON, false},
	{"grpc", FP_OTLP_GRPC, false},
	{NULL, 0, false}
};

static const struct config_enum_entry signal_compression_options[] = {
	{"", FP_OTLP_INHERIT, true},
	{"none", FP_OTLP_COMPRESSION_NONE, false},
	{"gzip", FP_OTLP_COMPRESSION_GZIP, false},
	{NULL, 0, false}
};

/* Google Cloud's OTLP ingestion, the default endpoint with GCP_PROJECT_ID */
#define GCP_OTLP_ENDPOINT "https://telemetry.googleapis.com"

/* A non-empty environment variable, or NULL */
static const char *
env(const char *name)
{
	const char *value = getenv(name);

	return (value != NULL && value[0] != '\0') ? value : NULL;
}

/* The environment variable if set, else dflt */
static const char *
env_or(const char *name, const char *dflt)
{
	const char *value = env(name);

	return value ? value : dflt;
}

/*
 * Warn about an environment variable we cannot use; value NULL keeps a
 * secret out of the log, and URLs in it lose their credentials.
 */
static void
ignore_env(const char *name, const char *value, const char *why)
{
	if (value)
	{
		size_t		size = strlen(value) + sizeof("***@?***");
		char	   *redacted = palloc(size);

		fp_attribution_redact_urls(redacted, value, size);
		ereport(WARNING,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ignoring environment variable %s=\"%s\"", name, redacted),
				 errdetail("%s", why)));
	}
	else
		ereport(WARNING,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ignoring environment variable %s", name),
				 errdetail("%s", why)));
}

/* An integer variable within [min, max], else dflt */
static int
env_int(const char *name, int dflt, int min, int max)
{
	const char *value = env(name);
	char	   *end;
	long		n;

	if (value == NULL)
		return dflt;
	n = strtol(value, &end, 10);
	if (*end != '\0' || n < min || n > max)
	{
		ignore_env(name, value, "The value must be an integer in range.");
		return dflt;
	}
	return (int) n;
}

/* An enum variable matched against a GUC's options, else dflt */
static int
env_enum(const char *name, const struct config_enum_entry *options, int dflt)
{
	const char *value = env(name);

	if (value == NULL)
		return dflt;
	for (const struct config_enum_entry *o = options; o->name; o++)
		if (pg_strcasecmp(o->name, value) == 0)
			return o->val;
	ignore_env(name, value, "The value is not one of the supported options.");
	return dflt;
}

/* One hex digit's value, or -1 */
static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A control character: below 0x20, or DEL */
static bool
is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7F;
}

/*
 * Copy [start, end) without surrounding blanks, percent-decoding it, as
 * the W3C Baggage format that OTEL_EXPORTER_OTLP_HEADERS and
 * OTEL_RESOURCE_ATTRIBUTES use requires.  Returns NULL, with *error
 * saying why, on a bad escape, on a NUL (which would silently cut the
 * string) and, unless controls_ok, on any other control character.
 */
static char *
decode_part(const char *start, const char *end, bool controls_ok,
			const char **error)
{
	char	   *out;
	char	   *o;

	while (start < end && (*start == ' ' || *start == '\t'))
		start++;
	while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	out = o = palloc(end - start + 1);
	while (start < end)
	{
		if (*start == '%')
		{
			if (end - start < 3 || hexval(start[1]) < 0 || hexval(start[2]) < 0)
			{
				*error = "A percent escape is malformed.";
				return NULL;
			}
			*o = (char) (hexval(start[1]) * 16 + hexval(start[2]));
			start += 3;
		}
		else
			*o = *start++;
		if (*o == '\0' || (!controls_ok && is_control((unsigned char) *o)))
		{
			*error = controls_ok ? "A member holds a NUL byte (%00)." :
				"A header name or value holds a control character (CR, LF, NUL, another byte below 0x20 or 0x7F), raw or percent-encoded.";
			return NULL;
		}
		o++;
	}
	*o = '\0';
	return out;
}

/*
 * Parse "key1=value1,key2=value2" into a List of FpOtlpPair (when pairs is
 * not NULL).  Empty members are skipped; a member without "=", an empty
 * key, a bad percent escape, a NUL or (unless controls_ok) another
 * control character is an error described in *error.
 */
static bool
parse_pairs(const char *list, bool controls_ok, List **pairs,
			const char **error)
{
	const char *p = list ? list : "";

	while (*p)
	{
		const char *end = strchr(p, ',');
		const char *eq;
		char	   *key;
		char	   *value;

		if (end == NULL)
			end = p + strlen(p);
		eq = memchr(p, '=', end - p);
		if (eq == NULL && strspn(p, " \t") < (size_t) (end - p))
		{
			*error = "Each member must have the form key=value.";
			return false;
		}
		if (eq)
		{
			key = decode_part(p, eq, controls_ok, error);
			if (key == NULL)
				return false;
			value = decode_part(eq + 1, end, controls_ok, error);
			if (value == NULL)
				return false;
			if (key[0] == '\0')
			{
				*error = "A key is empty.";
				return false;
			}
			if (pairs)
			{
				FpOtlpPair *pair = palloc(sizeof(FpOtlpPair));

				pair->key = key;
				pair->value = value;
				*pairs = lappend(*pairs, pair);
			}
		}
		p = *end ? end + 1 : end;
	}
	return true;
}

/*
 * Parse a list for use.  The headers' check hook has already refused
 * control characters, so one parser serves both lists.
 */
bool
fp_attribution_otlp_parse_pairs(const char *list, List **pairs,
								const char **error)
{
	return parse_pairs(list, true, pairs, error);
}

/* Is v a key=value list of resource attributes?  Else *error says why */
static bool
valid_pairs(const char *v, const char **error)
{
	return parse_pairs(v, true, NULL, error);
}

/* Is v a header list?  Else *error says why not */
static bool
valid_headers(const char *v, const char **error)
{
	return parse_pairs(v, false, NULL, error);
}

/*
 * Is v empty or an http(s) URL without blanks or control characters
 * (which no URL holds, and which would cut a redacted message short)?
 * Else *error says why not.
 */
static bool
valid_endpoint(const char *v, const char **error)
{
	if (v == NULL || v[0] == '\0')
		return true;
	if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
	{
		*error = "An OTLP endpoint is an http:// or https:// URL.";
		return false;
	}
	for (const char *c = v; *c; c++)
		if (*c == ' ' || is_control((unsigned char) *c))
		{
			*error = "An OTLP endpoint holds no blanks or control characters; percent-encode them.";
			return false;
		}
	return true;
}

/* Check hook of the resource attributes */
static bool
check_pairs(char **newval, void **extra, GucSource source)
{
	const char *error;

	if (valid_pairs(*newval, &error))
		return true;
	GUC_check_errdetail("%s", error);
	return false;
}

/* Check hook of the headers; like the endpoints', it hides the value */
static bool
check_headers(char **newval, void **extra, GucSource source)
{
	const char *error;

	if (valid_headers(*newval, &error))
		return true;
	GUC_check_errmsg("invalid value for an OTLP headers setting");
	GUC_check_errdetail("%s", error);
	GUC_check_errhint("The value is not shown: it may hold credentials.");
	return false;
}

/*
 * Check hook of the endpoints.  PostgreSQL's own message would repeat the
 * value, credentials included, to the client and (for a reload) the log.
 */
static bool
check_endpoint(char **newval, void **extra, GucSource source)
{
	const char *error;

	if (valid_endpoint(*newval, &error))
		return true;
	GUC_check_errmsg("invalid value for an OTLP endpoint setting");
	GUC_check_errdetail("%s", error);
	GUC_check_errhint("The value is not shown: it may hold credentials.");
	return false;
}

/*
 * A string variable that valid() accepts, else dflt.  The value becomes a
 * boot value, which must pass the setting's check hook: one that fails
 * would keep the server from starting (and log the value).  secret keeps
 * the value out of the warning.
 */
static const char *
env_checked(const char *name, const char *dflt,
			bool (*valid) (const char *, const char **), bool secret)
{
	const char *value = env(name);
	const char *error;

	if (value == NULL)
		return dflt;
	if (valid(value, &error))
		return value;
	ignore_env(name, secret ? NULL : value, error);
	return dflt;
}

/* A per-signal string setting if set, else the general one */
static const char *
own_or(const char *own, const char *general)
{
	return (own && own[0]) ? own : general;
}

/* The protocol a signal is exported with */
int
fp_attribution_otlp_signal_protocol(FpOtlpSignal signal)
{
	int			own = fp_attribution_otlp_signal[signal].protocol;

	return own != FP_OTLP_INHERIT ? own : fp_attribution_otlp_protocol;
}

/* The total time allowed for one request of a signal, in ms */
int
fp_attribution_otlp_signal_timeout(FpOtlpSignal signal)
{
	int			own = fp_attribution_otlp_signal[signal].timeout_ms;

	return own > 0 ? own : fp_attribution_otlp_timeout_ms;
}

/*
 * Where and how one signal is exported: each per-signal setting that is
 * set, else the general one (the timeout is the worker's to choose, with
 * fp_attribution_otlp_signal_timeout).  A per-signal endpoint is used as given for
 * HTTP (the specification's rule); otherwise the base endpoint gets
 * /v1/<signal>.  gRPC always appends the service's method path.  The URL
 * is palloc'd in the current memory context; the strings are the
 * settings' own, valid until the next reload.
 */
void
fp_attribution_otlp_target(FpOtlpSignal signal, FpOtlpTarget *target)
{
	const FpOtlpSignalSettings *own = &fp_attribution_otlp_signal[signal];
	bool		own_endpoint = (own->endpoint && own->endpoint[0]);
	const char *base = own_or(own->endpoint, fp_attribution_otlp_endpoint);
	int			len = strlen(base);

	target->protocol = fp_attribution_otlp_signal_protocol(signal);
	while (len > 0 && base[len - 1] == '/')
		len--;
	if (target->protocol == FP_OTLP_GRPC)
		target->url = psprintf("%.*s%s", len, base, grpc_methods[signal]);
	else if (own_endpoint)
		target->url = pstrdup(own->endpoint);
	else
		target->url = psprintf("%.*s/v1/%s", len, base,
							   fp_attribution_otlp_signal_names[signal]);
	target->headers = own_or(own->headers, fp_attribution_otlp_headers);
	target->compression = own->compression != FP_OTLP_INHERIT ?
		own->compression : fp_attribution_otlp_compression;
	target->certificate = own_or(own->certificate,
								 fp_attribution_otlp_certificate);
	target->client_key = own_or(own->client_key,
								fp_attribution_otlp_client_key);
	target->client_certificate = own_or(own->client_certificate,
										fp_attribution_otlp_client_certificate);
}

/*
 * Define one signal's own exporter settings, fp_attribution.otlp_<signal>_*,
 * with defaults from OTEL_EXPORTER_OTLP_<SIGNAL>_*.  Descriptions are
 * shared by the three signals (PostgreSQL keeps the pointers).
 */
static void
define_signal_gucs(FpOtlpSignal s)
{
	const char *name = fp_attribution_otlp_signal_names[s];
	char	   *upper = pstrdup(name);
	FpOtlpSignalSettings *own = &fp_attribution_otlp_signal[s];

	for (char *c = upper; *c; c++)
		*c = pg_toupper((unsigned char) *c);
#define SIGNAL_GUC(what) psprintf("fp_attribution.otlp_%s_%s", name, what)
#define SIGNAL_ENV(what) psprintf("OTEL_EXPORTER_OTLP_%s_%s", upper, what)
	DefineCustomStringVariable(SIGNAL_GUC("endpoint"),
							   gettext_noop("URL for one signal, used as given; empty means the base endpoint."),
							   NULL,
							   &own->endpoint,
							   env_checked(SIGNAL_ENV("ENDPOINT"), "",
										   valid_endpoint, false),
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   check_endpoint, NULL, NULL);
	DefineCustomStringVariable(SIGNAL_GUC("headers"),
							   gettext_noop("Request headers of one signal, replacing fp_attribution.otlp_headers; empty means those."),
							   NULL,
							   &own->headers,
							   env_checked(SIGNAL_ENV("HEADERS"), "",
										   valid_headers, true),
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   check_headers, NULL, NULL);
	DefineCustomEnumVariable(SIGNAL_GUC("protocol"),
							 gettext_noop("OTLP transport of one signal; empty means fp_attribution.otlp_protocol."),
							 NULL,
							 &own->protocol,
							 env_enum(SIGNAL_ENV("PROTOCOL"), protocol_options,
									  FP_OTLP_INHERIT),
							 signal_protocol_options,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomEnumVariable(SIGNAL_GUC("compression"),
							 gettext_noop("Compression of one signal's requests; empty means fp_attribution.otlp_compression."),
							 NULL,
							 &own->compression,
							 env_enum(SIGNAL_ENV("COMPRESSION"), compression_options,
									  FP_OTLP_INHERIT),
							 signal_compression_options,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable(SIGNAL_GUC("timeout"),
							gettext_noop("Total time allowed for one request of one signal; 0 means fp_attribution.otlp_timeout."),
							NULL,
							&own->timeout_ms,
							env_int(SIGNAL_ENV("TIMEOUT"), 0, 1, 600000),
							0, 600000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomStringVariable(SIGNAL_GUC("certificate"),
							   gettext_noop("PEM file of the CA certificates that verify one signal's collector; empty means fp_attribution.otlp_certificate."),
							   NULL,
							   &own->certificate,
							   env_or(SIGNAL_ENV("CERTIFICATE"), ""),
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable(SIGNAL_GUC("client_key"),
							   gettext_noop("PEM file of the private key for mutual TLS of one signal; empty means fp_attribution.otlp_client_key."),
							   NULL,
							   &own->client_key,
							   env_or(SIGNAL_ENV("CLIENT_KEY"), ""),
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable(SIGNAL_GUC("client_certificate"),
							   gettext_noop("PEM file of the client certificate (chain) for mutual TLS of one signal; empty means fp_attribution.otlp_client_certificate."),
							   NULL,
							   &own->client_certificate,
							   env_or(SIGNAL_ENV("CLIENT_CERTIFICATE"), ""),
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
#undef SIGNAL_GUC
#undef SIGNAL_ENV
}

/*
 * Define every fp_attribution.otlp_* setting.  Called from _PG_init.
 */
void
fp_attribution_otlp_define_gucs(void)
{
	int			protocol = env_enum("OTEL_EXPORTER_OTLP_PROTOCOL",
									protocol_options, FP_OTLP_HTTP_PROTOBUF);
	const char *gcp = env("GCP_PROJECT_ID");
	const char *endpoint;

	if (gcp)
		endpoint = GCP_OTLP_ENDPOINT;
	else if (protocol == FP_OTLP_GRPC)
		endpoint = "http://localhost:4317";
	else
		endpoint = "http://localhost:4318";

	/* PGC_POSTMASTER settings can only be defined while preloading */
	if (process_shared_preload_libraries_in_progress)
	{
		DefineCustomStringVariable("fp_attribution.otlp_database",
								   gettext_noop("Database the export worker connects to, to read affiliate.windows.active."),
								   gettext_noop("The extension should be installed there; the worker keeps DROP DATABASE of it waiting."),
								   &fp_attribution_otlp_database,
								   "postgres",
								   PGC_POSTMASTER, GUC_SUPERUSER_ONLY,
								   NULL, NULL, NULL);
		DefineCustomIntVariable("fp_attribution.otlp_workers",
								gettext_noop("Number of export workers sharing the span and log buffers."),
								gettext_noop("The first one also exports the metrics."),
								&fp_attribution_otlp_workers,
								1, 1, FP_TELEMETRY_MAX_EXPORTERS,
								PGC_POSTMASTER, 0,
								NULL, NULL, NULL);
	}
	DefineCustomBoolVariable("fp_attribution.otlp_enabled",
							 gettext_noop("Whether the worker exports telemetry over OTLP."),
							 NULL,
							 &fp_attribution_otlp_enabled,
							 true,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomStringVariable("fp_attribution.otlp_endpoint",
							   gettext_noop("Base URL of the OTLP collector."),
							   gettext_noop("HTTP appends /v1/traces, /v1/metrics or /v1/logs."),
							   &fp_attribution_otlp_endpoint,
							   env_checked("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint,
										   valid_endpoint, false),
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   check_endpoint, NULL, NULL);
	DefineCustomStringVariable("fp_attribution.otlp_headers",
							   gettext_noop("Extra request headers, as key=value pairs separated by commas."),
							   gettext_noop("Values may be percent-encoded; typically an authorization token."),
							   &fp_attribution_otlp_headers,
							   env_checked("OTEL_EXPORTER_OTLP_HEADERS", "",
										   valid_headers, true),
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   check_headers, NULL, NULL);
	DefineCustomStringVariable("fp_attribution.otlp_certificate",
							   gettext_noop("PEM file of the CA certificates that verify the collector's TLS certificate."),
							   gettext_noop("Empty means the system's trusted CAs; a relative path is relative to the data directory."),
							   &fp_attribution_otlp_certificate,
							   env_or("OTEL_EXPORTER_OTLP_CERTIFICATE", ""),
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("fp_attribution.otlp_client_key",
							   gettext_noop("PEM file of the private key for mutual TLS with the collector."),
							   NULL,
							   &fp_attribution_otlp_client_key,
							   env_or("OTEL_EXPORTER_OTLP_CLIENT_KEY", ""),
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("fp_attribution.otlp_client_certificate",
							   gettext_noop("PEM file of the client certificate (chain) for mutual TLS with the collector."),
							   NULL,
							   &fp_attribution_otlp_client_certificate,
							   env_or("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", ""),
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomEnumVariable("fp_attribution.otlp_protocol",
							 gettext_noop("OTLP transport: http/protobuf, http/json or grpc."),
							 NULL,
							 &fp_attribution_otlp_protocol,
							 protocol, protocol_options,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomEnumVariable("fp_attribution.otlp_compression",
							 gettext_noop("Compression of request bodies: none or gzip."),
							 NULL,
							 &fp_attribution_otlp_compression,
							 env_enum("OTEL_EXPORTER_OTLP_COMPRESSION",
									  compression_options,
									  FP_OTLP_COMPRESSION_NONE),
							 compression_options,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("fp_attribution.otlp_timeout",
							gettext_noop("Total time allowed for one export request."),
							NULL,
							&fp_attribution_otlp_timeout_ms,
							env_int("OTEL_EXPORTER_OTLP_TIMEOUT", 10000, 1, 600000),
							1, 600000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("fp_attribution.otlp_batch_size",
							gettext_noop("Maximum spans or log records in one export request."),
							NULL,
							&fp_attribution_otlp_batch_size,
							env_int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, 1, 65536),
							1, 65536,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("fp_attribution.otlp_schedule_delay",
							gettext_noop("Longest time a span or log record waits before it is exported."),
							NULL,
							&fp_attribution_otlp_schedule_delay_ms,
							env_int("OTEL_BSP_SCHEDULE_DELAY", 5000, 1, 3600000),
							1, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("fp_attribution.otlp_metric_interval",
							gettext_noop("Interval between two metric exports."),
							NULL,
							&fp_attribution_otlp_metric_interval_ms,
							env_int("OTEL_METRIC_EXPORT_INTERVAL", 60000, 100, 86400000),
							100, 86400000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomStringVariable("fp_attribution.otlp_service_name",
							   gettext_noop("Resource attribute service.name."),
							   NULL,
							   &fp_attribution_otlp_service_name,
							   env_or("OTEL_SERVICE_NAME", "fp_attribution"),
							   PGC_SIGHUP, 0,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("fp_attribution.otlp_resource_attributes",
							   gettext_noop("Extra resource attributes, as key=value pairs separated by commas."),
							   NULL,
							   &fp_attribution_otlp_resource_attributes,
							   env_checked("OTEL_RESOURCE_ATTRIBUTES", "",
										   valid_pairs, false),
							   PGC_SIGHUP, 0,
							   check_pairs, NULL, NULL);
	DefineCustomStringVariable("fp_attribution.otlp_environment",
							   gettext_noop("Resource attribute deployment.environment.name; empty omits it."),
							   NULL,
							   &fp_attribution_otlp_environment,
							   env_or("ENVIRONMENT", ""),
							   PGC_SIGHUP, 0,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("fp_attribution.otlp_gcp_project",
							   gettext_noop("Google Cloud project receiving the telemetry; empty for none."),
							   gettext_noop("Adds gcp.project_id and cloud.* resource attributes and the x-goog-user-project header."),
							   &fp_attribution_otlp_gcp_project,
							   gcp ? gcp : "",
							   PGC_SIGHUP, 0,
							   NULL, NULL, NULL);
	for (int s = 0; s < FP_OTLP_NSIGNALS; s++)
		define_signal_gucs(s);
}
