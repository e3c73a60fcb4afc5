/*-------------------------------------------------------------------------
 *
 * otlp_encode.c
 *	  Build OTLP export requests (protobuf-c messages generated from
 *	  proto/) from telemetry records, and serialize them as protobuf or,
 *	  for http/json, as OTLP/JSON (otlp_json.c).
 *
 * Every request carries one resource (service.name, service.version,
 * deployment.environment.name, host.name, the Google Cloud project when
 * set, plus fp_attribution.otlp_resource_attributes) and one
 * instrumentation scope (fp_attribution and its version).  Messages are
 * built with palloc in the caller's memory context, which the worker
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

#include "fp_attribution/otlp.h"
#include "logs_service.pb-c.h"
#include "metrics_service.pb-c.h"
#include "trace_service.pb-c.h"

#define SCOPE_NAME "fp_attribution"
#ifndef FP_ATTRIBUTION_VERSION
#define FP_ATTRIBUTION_VERSION "1.0"
#endif

typedef Opentelemetry__Proto__Common__V1__KeyValue PbKeyValue;
typedef Opentelemetry__Proto__Common__V1__AnyValue PbAnyValue;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope PbScope;
typedef Opentelemetry__Proto__Resource__V1__Resource PbResource;
typedef Opentelemetry__Proto__Trace__V1__Span PbSpan;
typedef Opentelemetry__Proto__Trace__V1__Span__Event PbEvent;
typedef Opentelemetry__Proto__Trace__V1__Status PbStatus;
typedef Opentelemetry__Proto__Trace__V1__ScopeSpans PbScopeSpans;
typedef Opentelemetry__Proto__Trace__V1__ResourceSpans PbResourceSpans;
typedef Opentelemetry__Proto__Logs__V1__LogRecord PbLogRecord;
typedef Opentelemetry__Proto__Logs__V1__ScopeLogs PbScopeLogs;
typedef Opentelemetry__Proto__Logs__V1__ResourceLogs PbResourceLogs;
typedef Opentelemetry__Proto__Metrics__V1__Metric PbMetric;
typedef Opentelemetry__Proto__Metrics__V1__Sum PbSum;
typedef Opentelemetry__Proto__Metrics__V1__Gauge PbGauge;
typedef Opentelemetry__Proto__Metrics__V1__Histogram PbHistogram;
typedef Opentelemetry__Proto__Metrics__V1__NumberDataPoint PbNumberPoint;
typedef Opentelemetry__Proto__Metrics__V1__HistogramDataPoint PbHistogramPoint;
typedef Opentelemetry__Proto__Metrics__V1__ScopeMetrics PbScopeMetrics;
typedef Opentelemetry__Proto__Metrics__V1__ResourceMetrics PbResourceMetrics;

/* A string attribute, or a copy of an FpOtlpAttr */
static PbKeyValue *
key_value(const FpOtlpAttr *a)
{
	PbKeyValue *kv = palloc(sizeof(PbKeyValue));
	PbAnyValue *v = palloc(sizeof(PbAnyValue));

	opentelemetry__proto__common__v1__key_value__init(kv);
	opentelemetry__proto__common__v1__any_value__init(v);
	kv->key = (char *) a->key;
	kv->value = v;
	switch (a->type)
	{
		case FP_OTLP_STRING:
			v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
			v->string_value = (char *) (a->s ? a->s : "");
			break;
		case FP_OTLP_INT:
			v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
			v->int_value = a->i;
			break;
		case FP_OTLP_DOUBLE:
			v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
			v->double_value = a->d;
			break;
		case FP_OTLP_BOOL:
			v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
			v->bool_value = a->b;
			break;
	}
	return kv;
}

/* An array of KeyValue pointers for n attributes */
static PbKeyValue **
key_values(const FpOtlpAttr *attrs, int n)
{
	PbKeyValue **out = palloc(sizeof(PbKeyValue *) * Max(n, 1));

	for (int i = 0; i < n; i++)
		out[i] = key_value(&attrs[i]);
	return out;
}

/* Append a string attribute unless the key is already present */
static void
add_attr(List **attrs, const char *key, const char *value, bool replace)
{
	FpOtlpAttr *a;
	ListCell   *lc;

	foreach(lc, *attrs)
	{
		a = lfirst(lc);
		if (strcmp(a->key, key) == 0)
		{
			if (replace)
				a->s = value;
			return;
		}
	}
	a = palloc0(sizeof(FpOtlpAttr));
	a->key = key;
	a->type = FP_OTLP_STRING;
	a->s = value;
	*attrs = lappend(*attrs, a);
}

/*
 * The resource.  User-given attributes (fp_attribution.otlp_resource_
 * attributes) win over detected ones, except service.name, for which
 * fp_attribution.otlp_service_name (OTEL_SERVICE_NAME) wins, as the
 * OpenTelemetry SDK specification says.
 */
static PbResource *
resource(void)
{
	PbResource *r = palloc(sizeof(PbResource));
	List	   *attrs = NIL;
	List	   *pairs = NIL;
	ListCell   *lc;
	const char *error;
	char		host[256];
	int			i = 0;

	opentelemetry__proto__resource__v1__resource__init(r);
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
	if (gethostname(host, sizeof(host)) == 0)
	{
		host[sizeof(host) - 1] = '\0';
		add_attr(&attrs, "host.name", pstrdup(host), false);
	}
	if (fp_attribution_otlp_gcp_project[0])
	{
		add_attr(&attrs, "cloud.provider", "gcp", false);
		add_attr(&attrs, "cloud.account.id", fp_attribution_otlp_gcp_project, false);
		add_attr(&attrs, "gcp.project_id", fp_attribution_otlp_gcp_project, false);
	}
	r->n_attributes = list_length(attrs);
	r->attributes = palloc(sizeof(PbKeyValue *) * r->n_attributes);
	foreach(lc, attrs)
		r->attributes[i++] = key_value(lfirst(lc));
	return r;
}

static PbScope *
scope(void)
{
	PbScope    *s = palloc(sizeof(PbScope));

	opentelemetry__proto__common__v1__instrumentation_scope__init(s);
	s->name = SCOPE_NAME;
	s->version = FP_ATTRIBUTION_VERSION;
	return s;
}

/* Serialize a request as protobuf, or as OTLP/JSON for http/json */
static StringInfo
serialize(const ProtobufCMessage *msg)
{
	StringInfo	out = makeStringInfo();
	size_t		len;

	if (fp_attribution_otlp_protocol == FP_OTLP_HTTP_JSON)
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

static ProtobufCBinaryData
bytes(const uint8 *data, size_t len)
{
	ProtobufCBinaryData b;

	b.data = (uint8_t *) data;
	b.len = len;
	return b;
}

/*
 * ExportTraceServiceRequest for n spans, serialized.
 */
StringInfo
fp_attribution_otlp_encode_spans(const FpOtlpSpan *spans, int n)
{
	Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest req;
	PbResourceSpans *rs = palloc(sizeof(PbResourceSpans));
	PbScopeSpans *ss = palloc(sizeof(PbScopeSpans));

	opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(&req);
	opentelemetry__proto__trace__v1__resource_spans__init(rs);
	opentelemetry__proto__trace__v1__scope_spans__init(ss);
	req.n_resource_spans = 1;
	req.resource_spans = palloc(sizeof(PbResourceSpans *));
	req.resource_spans[0] = rs;
	rs->resource = resource();
	rs->n_scope_spans = 1;
	rs->scope_spans = palloc(sizeof(PbScopeSpans *));
	rs->scope_spans[0] = ss;
	ss->scope = scope();
	ss->n_spans = n;
	ss->spans = palloc(sizeof(PbSpan *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		const FpOtlpSpan *in = &spans[i];
		PbSpan	   *s = palloc(sizeof(PbSpan));

		opentelemetry__proto__trace__v1__span__init(s);
		s->trace_id = bytes(in->trace_id, 16);
		s->span_id = bytes(in->span_id, 8);
		if (in->has_parent)
			s->parent_span_id = bytes(in->parent_span_id, 8);
		s->trace_state = (char *) (in->trace_state ? in->trace_state : "");
		s->flags = in->flags;
		s->name = (char *) in->name;
		s->kind = in->kind;
		s->start_time_unix_nano = in->start_ns;
		s->end_time_unix_nano = in->end_ns;
		s->n_attributes = in->nattrs;
		s->attributes = key_values(in->attrs, in->nattrs);
		s->n_events = in->nevents;
		s->events = palloc(sizeof(PbEvent *) * Max(in->nevents, 1));
		for (int e = 0; e < in->nevents; e++)
		{
			PbEvent    *ev = palloc(sizeof(PbEvent));

			opentelemetry__proto__trace__v1__span__event__init(ev);
			ev->time_unix_nano = in->events[e].time_ns;
			ev->name = (char *) in->events[e].name;
			ev->n_attributes = in->events[e].nattrs;
			ev->attributes = key_values(in->events[e].attrs, in->events[e].nattrs);
			s->events[e] = ev;
		}
		if (in->status_code != 0)
		{
			s->status = palloc(sizeof(PbStatus));
			opentelemetry__proto__trace__v1__status__init(s->status);
			s->status->code = in->status_code;
			s->status->message = (char *) (in->status_message ? in->status_message : "");
		}
		ss->spans[i] = s;
	}
	return serialize(&req.base);
}

/*
 * ExportLogsServiceRequest for n log records, serialized.
 */
StringInfo
fp_attribution_otlp_encode_logs(const FpOtlpLog *logs, int n)
{
	Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest req;
	PbResourceLogs *rl = palloc(sizeof(PbResourceLogs));
	PbScopeLogs *sl = palloc(sizeof(PbScopeLogs));

	opentelemetry__proto__collector__logs__v1__export_logs_service_request__init(&req);
	opentelemetry__proto__logs__v1__resource_logs__init(rl);
	opentelemetry__proto__logs__v1__scope_logs__init(sl);
	req.n_resource_logs = 1;
	req.resource_logs = palloc(sizeof(PbResourceLogs *));
	req.resource_logs[0] = rl;
	rl->resource = resource();
	rl->n_scope_logs = 1;
	rl->scope_logs = palloc(sizeof(PbScopeLogs *));
	rl->scope_logs[0] = sl;
	sl->scope = scope();
	sl->n_log_records = n;
	sl->log_records = palloc(sizeof(PbLogRecord *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		const FpOtlpLog *in = &logs[i];
		PbLogRecord *r = palloc(sizeof(PbLogRecord));
		FpOtlpAttr	body = {0};

		opentelemetry__proto__logs__v1__log_record__init(r);
		r->time_unix_nano = in->time_ns;
		r->observed_time_unix_nano = in->observed_ns;
		r->severity_number = in->severity_number;
		r->severity_text = (char *) (in->severity_text ? in->severity_text : "");
		r->event_name = (char *) (in->event_name ? in->event_name : "");
		body.type = FP_OTLP_STRING;
		body.s = in->body;
		if (in->body)
			r->body = key_value(&body)->value;
		r->n_attributes = in->nattrs;
		r->attributes = key_values(in->attrs, in->nattrs);
		if (in->has_trace)
		{
			r->trace_id = bytes(in->trace_id, 16);
			r->span_id = bytes(in->span_id, 8);
			r->flags = in->flags;
		}
		sl->log_records[i] = r;
	}
	return serialize(&req.base);
}

/* One NumberDataPoint or HistogramDataPoint of a metric */
static void *
data_point(const FpOtlpMetric *m, const FpOtlpPoint *p)
{
	if (m->kind == FP_OTLP_HISTOGRAM)
	{
		PbHistogramPoint *h = palloc(sizeof(PbHistogramPoint));

		opentelemetry__proto__metrics__v1__histogram_data_point__init(h);
		h->start_time_unix_nano = m->start_ns;
		h->time_unix_nano = m->time_ns;
		h->n_attributes = p->nattrs;
		h->attributes = key_values(p->attrs, p->nattrs);
		h->count = p->count;
		h->sum_present_case = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__SUM_PRESENT_SUM;
		h->sum = p->sum;
		if (p->count > 0)
		{
			h->min_present_case = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__MIN_PRESENT_MIN;
			h->min = p->min;
			h->max_present_case = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__MAX_PRESENT_MAX;
			h->max = p->max;
		}
		h->n_explicit_bounds = p->nbounds;
		h->explicit_bounds = (double *) p->bounds;
		h->n_bucket_counts = p->nbounds + 1;
		h->bucket_counts = (uint64_t *) p->counts;
		return h;
	}
	else
	{
		PbNumberPoint *d = palloc(sizeof(PbNumberPoint));

		opentelemetry__proto__metrics__v1__number_data_point__init(d);
		if (m->kind == FP_OTLP_SUM)
			d->start_time_unix_nano = m->start_ns;
		d->time_unix_nano = m->time_ns;
		d->n_attributes = p->nattrs;
		d->attributes = key_values(p->attrs, p->nattrs);
		if (p->is_double)
		{
			d->value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
			d->as_double = p->as_double;
		}
		else
		{
			d->value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT;
			d->as_int = p->as_int;
		}
		return d;
	}
}

/*
 * ExportMetricsServiceRequest for n metrics (cumulative temporality),
 * serialized.
 */
StringInfo
fp_attribution_otlp_encode_metrics(const FpOtlpMetric *metrics, int n)
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
	rm->n_scope_metrics = 1;
	rm->scope_metrics = palloc(sizeof(PbScopeMetrics *));
	rm->scope_metrics[0] = sm;
	sm->scope = scope();
	sm->n_metrics = n;
	sm->metrics = palloc(sizeof(PbMetric *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		const FpOtlpMetric *in = &metrics[i];
		PbMetric   *m = palloc(sizeof(PbMetric));
		void	  **points = palloc(sizeof(void *) * Max(in->npoints, 1));

		opentelemetry__proto__metrics__v1__metric__init(m);
		m->name = (char *) in->name;
		m->description = (char *) (in->description ? in->description : "");
		m->unit = (char *) (in->unit ? in->unit : "");
		for (int p = 0; p < in->npoints; p++)
			points[p] = data_point(in, &in->points[p]);
		if (in->kind == FP_OTLP_SUM)
		{
			PbSum	   *sum = palloc(sizeof(PbSum));

			opentelemetry__proto__metrics__v1__sum__init(sum);
			sum->aggregation_temporality = OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE;
			sum->is_monotonic = true;
			sum->n_data_points = in->npoints;
			sum->data_points = (PbNumberPoint **) points;
			m->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM;
			m->sum = sum;
		}
		else if (in->kind == FP_OTLP_GAUGE)
		{
			PbGauge    *gauge = palloc(sizeof(PbGauge));

			opentelemetry__proto__metrics__v1__gauge__init(gauge);
			gauge->n_data_points = in->npoints;
			gauge->data_points = (PbNumberPoint **) points;
			m->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE;
			m->gauge = gauge;
		}
		else
		{
			PbHistogram *hist = palloc(sizeof(PbHistogram));

			opentelemetry__proto__metrics__v1__histogram__init(hist);
			hist->aggregation_temporality = OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE;
			hist->n_data_points = in->npoints;
			hist->data_points = (PbHistogramPoint **) points;
			m->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM;
			m->histogram = hist;
		}
		sm->metrics[i] = m;
	}
	return serialize(&req.base);
}
