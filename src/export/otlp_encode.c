/*-------------------------------------------------------------------------
 *
 * otlp_encode.c
 *	  Build OTLP export requests: spans and log records are written
 *	  straight from the packed records, in protobuf (otlp_protobuf.c) or
 *	  OTLP/JSON (otlp_json.c); for metrics, a tree of protobuf-c messages
 *	  (generated from proto/) is built and serialized as OTLP/JSON
 *	  (otlp_json.c) or protobuf.
 *
 * Every request carries one resource (service.name, service.version,
 * service.instance.id, telemetry.sdk.*, deployment.environment.name,
 * host.name, the Google Cloud project when set, plus
 * fp_attribution.otlp_resource_attributes) and one instrumentation scope
 * (fp_attribution and its version), both with the schema_url of the
 * semantic-conventions release whose names the attributes use.  Messages
 * are built with palloc in the caller's memory context, which the worker
 * resets after each request.
 *
 * Runs only in the worker, on private copies of the records: no locks.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include <openssl/evp.h>

#include "access/xlog.h"
#include "postmaster/postmaster.h"

#include "fp_attribution/otlp.h"
#include "metrics_service.pb-c.h"

/* The namespace the semantic conventions give for service.instance.id UUIDs */
static const uint8 instance_id_namespace[16] = {
	0x4d, 0x63, 0x00, 0x9a, 0x8d, 0x0f, 0x11, 0xee,
	0xaa, 0xd7, 0x4c, 0x79, 0x6e, 0xd8, 0xe3, 0x20
};

typedef Opentelemetry__Proto__Common__V1__KeyValue PbKeyValue;
typedef Opentelemetry__Proto__Common__V1__AnyValue PbAnyValue;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope PbScope;
typedef Opentelemetry__Proto__Resource__V1__Resource PbResource;
typedef Opentelemetry__Proto__Metrics__V1__Metric PbMetric;
typedef Opentelemetry__Proto__Metrics__V1__Sum PbSum;
typedef Opentelemetry__Proto__Metrics__V1__Gauge PbGauge;
typedef Opentelemetry__Proto__Metrics__V1__Histogram PbHistogram;
typedef Opentelemetry__Proto__Metrics__V1__NumberDataPoint PbNumberPoint;
typedef Opentelemetry__Proto__Metrics__V1__HistogramDataPoint PbHistogramPoint;
typedef Opentelemetry__Proto__Metrics__V1__Exemplar PbExemplar;
typedef Opentelemetry__Proto__Metrics__V1__ScopeMetrics PbScopeMetrics;
typedef Opentelemetry__Proto__Metrics__V1__ResourceMetrics PbResourceMetrics;

/* A KeyValue of an attribute */
static PbKeyValue *
key_value(const FpAttribute *a)
{
	PbKeyValue *kv = palloc(sizeof(PbKeyValue));
	PbAnyValue *v = palloc(sizeof(PbAnyValue));

	opentelemetry__proto__common__v1__key_value__init(kv);
	opentelemetry__proto__common__v1__any_value__init(v);
	kv->key = (char *) a->key;
	kv->value = v;
	switch (a->type)
	{
		case FP_ATTR_INT:
			v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
			v->int_value = a->value.i;
			break;
		case FP_ATTR_DOUBLE:
			v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
			v->double_value = a->value.d;
			break;
		case FP_ATTR_BOOL:
			v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
			v->bool_value = a->value.b;
			break;
		default:
			v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
			v->string_value = (char *) a->value.str;
			break;
	}
	return kv;
}

/* An array of KeyValue pointers for n attributes */
static PbKeyValue **
key_values(const FpAttribute *attrs, int n)
{
	PbKeyValue **out = palloc(sizeof(PbKeyValue *) * Max(n, 1));

	for (int i = 0; i < n; i++)
		out[i] = key_value(&attrs[i]);
	return out;
}

/* A string AnyValue */
static PbAnyValue *
string_value(const char *s)
{
	PbAnyValue *v = palloc(sizeof(PbAnyValue));

	opentelemetry__proto__common__v1__any_value__init(v);
	v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
	v->string_value = (char *) s;
	return v;
}

/* Append a string attribute unless the key is already present */
static void
add_attr(List **attrs, const char *key, const char *value, bool replace)
{
	FpOtlpPair *a;
	ListCell   *lc;

	foreach(lc, *attrs)
	{
		a = lfirst(lc);
		if (strcmp(a->key, key) == 0)
		{
			if (replace)
				a->value = (char *) value;
			return;
		}
	}
	a = palloc(sizeof(FpOtlpPair));
	a->key = (char *) key;
	a->value = (char *) value;
	*attrs = lappend(*attrs, a);
}

/*
 * service.instance.id: the name-based (version 5, RFC 9562) UUID of
 * "<system identifier>:<host name>:<port>" in the namespace the semantic
 * conventions give.  The same across restarts of a server; a physical
 * standby, which shares the primary's system identifier, differs by its
 * host name or port.  Computed once per worker.
 */
static const char *
service_instance_id(const char *host)
{
	static char id[37];
	char		name[512];
	uint8		input[sizeof(instance_id_namespace) + sizeof(name)];
	uint8		digest[EVP_MAX_MD_SIZE];
	int			len;
	char	   *out = id;

	if (id[0] != '\0')
		return id;
	len = snprintf(name, sizeof(name), UINT64_FORMAT ":%s:%d",
				   GetSystemIdentifier(), host, PostPortNumber);
	len = Min(len, (int) sizeof(name) - 1);
	memcpy(input, instance_id_namespace, sizeof(instance_id_namespace));
	memcpy(input + sizeof(instance_id_namespace), name, len);
	if (EVP_Digest(input, sizeof(instance_id_namespace) + len, digest, NULL,
				   EVP_sha1(), NULL) != 1)
		return NULL;
	digest[6] = (digest[6] & 0x0f) | 0x50;	/* version 5 */
	digest[8] = (digest[8] & 0x3f) | 0x80;	/* RFC variant */
	for (int i = 0; i < 16; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*out++ = '-';
		out += sprintf(out, "%02x", digest[i]);
	}
	return id;
}

/*
 * The resource's attributes, as FpOtlpPair (string values).  User-given
 * attributes (fp_attribution.otlp_resource_attributes) win over detected
 * ones, except service.name, for which fp_attribution.otlp_service_name
 * (OTEL_SERVICE_NAME) wins, as the OpenTelemetry SDK specification says.
 */
List *
fp_attribution_otlp_resource_pairs(void)
{
	List	   *attrs = NIL;
	List	   *pairs = NIL;
	ListCell   *lc;
	const char *error;
	char		host[256];
	const char *instance_id;

	(void) fp_attribution_otlp_parse_pairs(fp_attribution_otlp_resource_attributes,
										   &pairs, &error);
	foreach(lc, pairs)
	{
		FpOtlpPair *p = lfirst(lc);

		add_attr(&attrs, p->key, p->value, false);
	}
	add_attr(&attrs, "service.name", fp_attribution_otlp_service_name, true);
	add_attr(&attrs, "service.version", FP_ATTRIBUTION_VERSION, false);
	if (fp_attribution_otlp_environment[0])
		add_attr(&attrs, "deployment.environment.name",
				 fp_attribution_otlp_environment, false);
	add_attr(&attrs, "telemetry.sdk.name", FP_OTLP_SCOPE_NAME, false);
	add_attr(&attrs, "telemetry.sdk.language", "c", false);
	add_attr(&attrs, "telemetry.sdk.version", FP_ATTRIBUTION_VERSION, false);
	if (gethostname(host, sizeof(host)) != 0)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	if (host[0] != '\0')
		add_attr(&attrs, "host.name", pstrdup(host), false);
	instance_id = service_instance_id(host);
	if (instance_id != NULL)
		add_attr(&attrs, "service.instance.id", instance_id, false);
	if (fp_attribution_otlp_gcp_project[0])
	{
		add_attr(&attrs, "cloud.provider", "gcp", false);
		add_attr(&attrs, "cloud.account.id", fp_attribution_otlp_gcp_project, false);
		add_attr(&attrs, "gcp.project_id", fp_attribution_otlp_gcp_project, false);
	}
	return attrs;
}

/* The resource, for the protobuf-c messages */
static PbResource *
resource(void)
{
	PbResource *r = palloc(sizeof(PbResource));
	List	   *attrs = fp_attribution_otlp_resource_pairs();
	ListCell   *lc;
	int			i = 0;

	opentelemetry__proto__resource__v1__resource__init(r);
	r->n_attributes = list_length(attrs);
	r->attributes = palloc(sizeof(PbKeyValue *) * r->n_attributes);
	foreach(lc, attrs)
	{
		FpOtlpPair *a = lfirst(lc);
		PbKeyValue *kv = palloc(sizeof(PbKeyValue));

		opentelemetry__proto__common__v1__key_value__init(kv);
		kv->key = a->key;
		kv->value = string_value(a->value);
		r->attributes[i++] = kv;
	}
	return r;
}

static PbScope *
scope(void)
{
	PbScope    *s = palloc(sizeof(PbScope));

	opentelemetry__proto__common__v1__instrumentation_scope__init(s);
	s->name = FP_OTLP_SCOPE_NAME;
	s->version = FP_ATTRIBUTION_VERSION;
	return s;
}

/*
 * Serialize a signal's request as protobuf, or as OTLP/JSON when the
 * signal is sent with http/json
 */
static StringInfo
serialize(FpOtlpSignal signal, const ProtobufCMessage *msg)
{
	StringInfo	out = makeStringInfo();
	size_t		len;

	if (fp_attribution_otlp_signal_protocol(signal) == FP_OTLP_HTTP_JSON)
	{
		fp_attribution_otlp_json(out, msg);
		return out;
	}
	len = protobuf_c_message_get_packed_size(msg);
	enlargeStringInfo(out, (int) len);
	out->len = (int) protobuf_c_message_pack(msg, (uint8_t *) out->data);
	out->data[out->len] = '\0';
	return out;
}

/* An id as bytes; all-zero ids (no parent, no trace) are left empty */
static ProtobufCBinaryData
id_bytes(const uint8 *data, size_t len)
{
	ProtobufCBinaryData b = {0, NULL};

	for (size_t i = 0; i < len; i++)
	{
		if (data[i] != 0)
		{
			b.data = (uint8_t *) data;
			b.len = len;
			break;
		}
	}
	return b;
}

/*
 * ExportTraceServiceRequest for n packed spans, serialized for the
 * protocol the traces are sent with: both writers work straight from the
 * packed records.
 */
StringInfo
fp_attribution_otlp_encode_spans(const char *packed, int n)
{
	if (fp_attribution_otlp_signal_protocol(FP_OTLP_TRACES) == FP_OTLP_HTTP_JSON)
		return fp_attribution_otlp_json_spans(packed, n);
	return fp_attribution_otlp_protobuf_spans(packed, n);
}

/* ExportLogsServiceRequest for n packed log records, likewise */
StringInfo
fp_attribution_otlp_encode_logs(const char *packed, int n)
{
	if (fp_attribution_otlp_signal_protocol(FP_OTLP_LOGS) == FP_OTLP_HTTP_JSON)
		return fp_attribution_otlp_json_logs(packed, n);
	return fp_attribution_otlp_protobuf_logs(packed, n);
}

/* The NumberDataPoint or HistogramDataPoint of a point */
static void *
data_point(const FpMetricPoint *p)
{
	if (p->kind == FP_METRIC_HISTOGRAM)
	{
		PbHistogramPoint *h = palloc(sizeof(PbHistogramPoint));

		opentelemetry__proto__metrics__v1__histogram_data_point__init(h);
		h->start_time_unix_nano = p->start_time_unix_nano;
		h->time_unix_nano = p->time_unix_nano;
		h->n_attributes = p->n_attrs;
		h->attributes = key_values(p->attrs, p->n_attrs);
		h->count = p->count;
		h->sum_present_case = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__SUM_PRESENT_SUM;
		h->sum = p->sum;
		h->n_explicit_bounds = p->n_bounds;
		h->explicit_bounds = (double *) p->explicit_bounds;
		h->n_bucket_counts = p->n_bounds + 1;
		h->bucket_counts = (uint64_t *) p->bucket_counts;
		if (p->exemplar.time_unix_nano != 0)
		{
			PbExemplar *e = palloc(sizeof(PbExemplar));

			opentelemetry__proto__metrics__v1__exemplar__init(e);
			e->time_unix_nano = p->exemplar.time_unix_nano;
			e->value_case = OPENTELEMETRY__PROTO__METRICS__V1__EXEMPLAR__VALUE_AS_DOUBLE;
			e->as_double = p->exemplar.value;
			e->trace_id = id_bytes(p->exemplar.trace_id.bytes, FP_TRACE_ID_LEN);
			e->span_id = id_bytes(p->exemplar.span_id.bytes, FP_SPAN_ID_LEN);
			h->n_exemplars = 1;
			h->exemplars = palloc(sizeof(PbExemplar *));
			h->exemplars[0] = e;
		}
		return h;
	}
	else
	{
		PbNumberPoint *d = palloc(sizeof(PbNumberPoint));

		opentelemetry__proto__metrics__v1__number_data_point__init(d);
		if (p->kind == FP_METRIC_SUM)
			d->start_time_unix_nano = p->start_time_unix_nano;
		d->time_unix_nano = p->time_unix_nano;
		d->n_attributes = p->n_attrs;
		d->attributes = key_values(p->attrs, p->n_attrs);
		if (p->value_is_double)
		{
			d->value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
			d->as_double = p->value_double;
		}
		else
		{
			d->value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT;
			d->as_int = p->value_int;
		}
		return d;
	}
}

/* A Metric for the first point of a name, without data points yet */
static PbMetric *
new_metric(const FpMetricPoint *p, int npoints)
{
	PbMetric   *m = palloc(sizeof(PbMetric));
	void	  **points = palloc(sizeof(void *) * npoints);

	opentelemetry__proto__metrics__v1__metric__init(m);
	m->name = (char *) p->name;
	m->description = (char *) p->description;
	m->unit = (char *) p->unit;
	if (p->kind == FP_METRIC_SUM)
	{
		PbSum	   *sum = palloc(sizeof(PbSum));

		opentelemetry__proto__metrics__v1__sum__init(sum);
		sum->aggregation_temporality = p->temporality;
		sum->is_monotonic = p->is_monotonic;
		sum->data_points = (PbNumberPoint **) points;
		m->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM;
		m->sum = sum;
	}
	else if (p->kind == FP_METRIC_GAUGE)
	{
		PbGauge    *gauge = palloc(sizeof(PbGauge));

		opentelemetry__proto__metrics__v1__gauge__init(gauge);
		gauge->data_points = (PbNumberPoint **) points;
		m->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE;
		m->gauge = gauge;
	}
	else
	{
		PbHistogram *hist = palloc(sizeof(PbHistogram));

		opentelemetry__proto__metrics__v1__histogram__init(hist);
		hist->aggregation_temporality = p->temporality;
		hist->data_points = (PbHistogramPoint **) points;
		m->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM;
		m->histogram = hist;
	}
	return m;
}

/* Append a data point to the Metric of its name */
static void
add_point(PbMetric *m, const FpMetricPoint *p)
{
	if (m->data_case == OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM)
		m->sum->data_points[m->sum->n_data_points++] = data_point(p);
	else if (m->data_case == OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE)
		m->gauge->data_points[m->gauge->n_data_points++] = data_point(p);
	else
		m->histogram->data_points[m->histogram->n_data_points++] = data_point(p);
}

/*
 * ExportMetricsServiceRequest for n points, serialized.  Points with the
 * same name are series of one Metric and are grouped under it, in the
 * order names first appear.
 */
StringInfo
fp_attribution_otlp_encode_metrics(const FpMetricPoint *points, int n)
{
	Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest req;
	PbResourceMetrics *rm = palloc(sizeof(PbResourceMetrics));
	PbScopeMetrics *sm = palloc(sizeof(PbScopeMetrics));

	opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__init(&req);
	opentelemetry__proto__metrics__v1__resource_metrics__init(rm);
	opentelemetry__proto__metrics__v1__scope_metrics__init(sm);
	req.n_resource_metrics = 1;
	req.resource_metrics = palloc(sizeof(PbResourceMetrics *));
	req.resource_metrics[0] = rm;
	rm->resource = resource();
	rm->schema_url = FP_OTLP_SCHEMA_URL;
	rm->n_scope_metrics = 1;
	rm->scope_metrics = palloc(sizeof(PbScopeMetrics *));
	rm->scope_metrics[0] = sm;
	sm->scope = scope();
	sm->schema_url = FP_OTLP_SCHEMA_URL;
	sm->metrics = palloc(sizeof(PbMetric *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		PbMetric   *m = NULL;

		for (size_t k = 0; k < sm->n_metrics && m == NULL; k++)
			if (strcmp(sm->metrics[k]->name, points[i].name) == 0)
				m = sm->metrics[k];
		if (m == NULL)
		{
			m = new_metric(&points[i], n - i);
			sm->metrics[sm->n_metrics++] = m;
		}
		add_point(m, &points[i]);
	}
	return serialize(FP_OTLP_METRICS, &req.base);
}
