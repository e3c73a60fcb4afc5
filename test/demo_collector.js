#!/usr/bin/env node
/*
 * demo_collector.js
 *	  Summarise, for test/demo.sh, the test receiver's /control/dump (read
 *	  on stdin): what the collector decoded, with the official OTLP schema,
 *	  from fp_attribution's export.  Same trace ids as attribution.spans.
 */
'use strict';

const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
	const { received, errors } = JSON.parse(Buffer.concat(chunks).toString());
	const flat = (reqs, outer, inner, items) =>
		reqs.flatMap((r) => (r.request[outer] || []).flatMap((o) => (o[inner] || []).flatMap((i) => i[items] || [])));
	const attrs = (list) => (list || []).map((a) => `${a.key}=${Object.values(a.value)[0]}`).join(',');

	const service = received.traces[0]?.request.resourceSpans[0].resource.attributes
		.find((a) => a.key === 'service.name')?.value.stringValue;
	console.log(`requests: ${received.traces.length} traces, ${received.metrics.length} metrics, ` +
				`${received.logs.length} logs; decoding errors: ${errors.length}; service.name=${service}`);

	/* Spans by trace, in the order the exporter sent them. */
	const spans = flat(received.traces, 'resourceSpans', 'scopeSpans', 'spans');
	const traces = new Map();
	for (const s of spans)
		traces.set(s.traceId, [...(traces.get(s.traceId) || []), s.name]);
	console.log(`${spans.length} spans in ${traces.size} traces:`);
	for (const [id, names] of traces)
		console.log(`  ${id}  ${names.length}: ${names.join(', ')}`);

	/* Metrics are cumulative: the last export of each series is its value. */
	const series = new Map();
	for (const m of flat(received.metrics, 'resourceMetrics', 'scopeMetrics', 'metrics')) {
		const data = m.sum || m.gauge || m.histogram;
		for (const p of data.dataPoints || []) {
			const v = m.histogram ? `count ${Number(p.count ?? 0)}, sum ${+Number(p.sum ?? 0).toFixed(3)}` : p.asInt ?? p.asDouble ?? 0;
			const a = attrs(p.attributes);

			series.set(a ? `${m.name} {${a}}` : m.name, v);
		}
	}
	const width = Math.max(...[...series.keys()].map((k) => k.length));
	console.log(`${series.size} metric series (last export):`);
	for (const k of [...series.keys()].sort())
		console.log(`  ${k.padEnd(width)}  ${series.get(k)}`);

	const logs = flat(received.logs, 'resourceLogs', 'scopeLogs', 'logRecords');
	const bySeverity = {};
	for (const l of logs)
		bySeverity[l.severityText] = (bySeverity[l.severityText] || 0) + 1;
	console.log(`${logs.length} log records: ` + Object.entries(bySeverity).map(([k, n]) => `${n} ${k}`).join(', '));
});
