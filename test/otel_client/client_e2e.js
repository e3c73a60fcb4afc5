#!/usr/bin/env node
/*
 * client_e2e.js
 *	  fp_attribution joins the trace of a real instrumented client.
 *
 * An application traced with the OpenTelemetry JS SDK and
 * @opentelemetry/instrumentation-pg calls attribution.track_click through
 * the pg driver; the SDK exports its spans (OTLP/protobuf) to the test
 * receiver, which decodes with the official schema, and the extension
 * exports its own spans there too.  For every way of calling (simple query,
 * unnamed and named prepared statements, a pool, an explicit transaction)
 * and every way the instrumentation propagates context (SET application_name
 * with enableTraceContextPropagation, the SQLCommenter comment with
 * addSqlCommenterCommentToQueries, both), the test checks that the spans of
 * the trace form one tree: the command span's parent is the pg client span,
 * whose ancestor is the application's span.
 *
 * Run by run.sh under test/e2e/cluster.sh (PGHOST/PGPORT set).  Receiver
 * ports: FP_CLIENT_HTTP_PORT / FP_CLIENT_GRPC_PORT (default: any free one),
 * 127.0.0.1 only.  Prints "PASS <name>" or "FAIL <name>: <why>"; every wait
 * is bounded; the exit status is the number of failures (capped).
 */
'use strict';

const path = require('node:path');
const api = require('@opentelemetry/api');
const { NodeTracerProvider, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-node');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { registerInstrumentations } = require('@opentelemetry/instrumentation');
const { PgInstrumentation } = require('@opentelemetry/instrumentation-pg');

const { assert, waitFor, startReceiver, allSpans, attrs } =
	require(path.join(__dirname, '..', 'otlp_receiver', 'client.js'));
const PG_SCOPE = '@opentelemetry/instrumentation-pg';
const SPAN_KIND_CLIENT = 3;
const CLICK = 'SELECT trace_id, span_id FROM attribution.track_click($1)';
let failures = 0;

/*
 * Wait for the whole trace of one scenario and check that it is one tree:
 * a single root (the application's span), every other span's parent in the
 * trace, the command span a child of a pg client span.  want.source is the
 * expected fp.trace.source of the command span.
 */
async function checkTree(rcv, run, want) {
	const trace = run.app.traceId;
	const spans = await waitFor('the application and database spans of the trace', async () => {
		const got = allSpans(await rcv.dump()).filter((s) => s.traceId === trace);
		const names = new Set(got.map((s) => s.name));

		return ['attribution.track_click', 'INSERT attribution.clicks', 'attribution.click_tracked']
			.every((n) => names.has(n)) && got.some((s) => s.spanId === run.app.spanId) ? got : null;
	}, 20000);
	const byId = new Map(spans.map((s) => [s.spanId, s]));
	const command = byId.get(run.row.span_id);
	const roots = spans.filter((s) => !s.parentSpanId);

	assert(run.row.trace_id === trace, `row trace_id ${run.row.trace_id} is not the application's ${trace}`);
	assert(command && command.name === 'attribution.track_click', 'no command span with the row\'s span_id');
	assert(attrs(command.attributes)['fp.trace.source'] === want.source,
		   `fp.trace.source ${attrs(command.attributes)['fp.trace.source']}, want ${want.source}`);
	const client = byId.get(command.parentSpanId);
	assert(client && client.scope === PG_SCOPE && client.kind === SPAN_KIND_CLIENT,
		   `the command span's parent ${command.parentSpanId} is not a pg client span`);
	assert(roots.length === 1 && roots[0].spanId === run.app.spanId,
		   `roots: ${roots.map((s) => s.name).join(', ')}`);
	for (const s of spans)
		assert(!s.parentSpanId || byId.has(s.parentSpanId), `${s.name}: parent ${s.parentSpanId} not in the trace`);
	for (let s = client; s.spanId !== run.app.spanId; s = byId.get(s.parentSpanId))
		assert(s.parentSpanId, 'the pg client span does not descend from the application span');
	/* OTLP SpanFlags: the client's trace flags unchanged, parent remote (0x300) or local (0x100) */
	assert(command.flags === (0x300 | run.app.traceFlags), `command span flags ${command.flags}`);
	for (const s of spans.filter((x) => x.scope === 'fp_attribution' && x !== command))
		assert(s.flags === (0x100 | run.app.traceFlags), `${s.name}: flags ${s.flags}`);
}

/*
 * Where the instrumentation cannot carry context the command starts a new
 * trace: check that it is a root of its own, not a child of a stale span.
 */
async function checkNewRoot(rcv, run) {
	const command = await waitFor('the command span', async () =>
		allSpans(await rcv.dump()).find((s) => s.spanId === run.row.span_id), 20000);

	assert(!command.parentSpanId, `parent ${command.parentSpanId}`);
	assert(command.traceId !== run.app.traceId, 'joined the application trace');
	assert(attrs(command.attributes)['fp.trace.source'] === 'new_root', 'fp.trace.source');
	/* parent known not remote, random trace id, sampled */
	assert(command.flags === 0x103, `flags ${command.flags}`);
}

async function test(name, fn) {
	try {
		await fn();
		console.log(`PASS ${name}`);
	} catch (e) {
		failures++;
		console.log(`FAIL ${name}: ${e.message}`);
	}
}

async function main() {
	const rcv = await startReceiver({ http: process.env.FP_CLIENT_HTTP_PORT || 0, grpc: process.env.FP_CLIENT_GRPC_PORT || 0 });
	const provider = new NodeTracerProvider({
		resource: resourceFromAttributes({ 'service.name': 'fp-attribution-client-test' }),
		spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url: `http://127.0.0.1:${rcv.http}/v1/traces` }))],
	});
	const instrumentation = new PgInstrumentation({ requireParentSpan: true });

	provider.register();
	registerInstrumentations({ instrumentations: [instrumentation] });
	/* required after the instrumentation is registered, so that it is patched */
	const pg = require('pg');
	const tracer = api.trace.getTracer('fp-attribution-client-test');
	const admin = new pg.Client();

	await admin.connect();
	await admin.query(`ALTER SYSTEM SET fp_attribution.otlp_endpoint = 'http://127.0.0.1:${rcv.http}'`);
	await admin.query("ALTER SYSTEM SET fp_attribution.otlp_protocol = 'http/protobuf'");
	await admin.query('SELECT pg_reload_conf()');
	await admin.end();

	/* Run fn inside an application span; resolves to {app, row} */
	const traced = (name, fn) => tracer.startActiveSpan(name, async (span) => {
		try {
			return { app: span.spanContext(), row: await fn() };
		} finally {
			span.end();
		}
	});

	const modes = [
		{ name: 'application_name', config: { enableTraceContextPropagation: true } },
		{ name: 'sqlcommenter', config: { addSqlCommenterCommentToQueries: true } },
		{ name: 'both', config: { enableTraceContextPropagation: true, addSqlCommenterCommentToQueries: true } },
	];

	for (const mode of modes) {
		instrumentation.setConfig({ requireParentSpan: true, ...mode.config });
		/* new connections: application_name set by an earlier mode would linger */
		const client = new pg.Client();
		const pool = new pg.Pool({ max: 2 });
		const comment = mode.config.addSqlCommenterCommentToQueries;
		const appname = mode.config.enableTraceContextPropagation;
		const source = (commented) => (commented && comment ? 'sqlcommenter' : 'application_name');
		const aff = `aff-client-${mode.name}`;
		const scenarios = [
			['simple query', true,
			 async () => (await client.query(`SELECT trace_id, span_id FROM attribution.track_click('${aff}')`)).rows[0]],
			['unnamed prepared statement', true,
			 async () => (await client.query(CLICK, [aff])).rows[0]],
			['named prepared statement (parse)', false,
			 async () => (await client.query({ name: `click_${mode.name}`, text: CLICK, values: [aff] })).rows[0]],
			['named prepared statement (reuse)', false,
			 async () => (await client.query({ name: `click_${mode.name}`, text: CLICK, values: [aff] })).rows[0]],
			['pool', true,
			 async () => (await pool.query(CLICK, [aff])).rows[0]],
			['explicit transaction', true, async () => {
				await client.query('BEGIN');
				const row = (await client.query(CLICK, [aff])).rows[0];

				await client.query('COMMIT');
				return row;
			}],
		];

		await client.connect();
		for (const [what, commented, fn] of scenarios) {
			await test(`${mode.name}: ${what}`, async () => {
				const run = await traced(`${mode.name} ${what}`, fn);

				await provider.forceFlush();
				if (commented && comment || appname)
					await checkTree(rcv, run, { source: source(commented) });
				else
					await checkNewRoot(rcv, run);	/* no comment on a named statement */
			});
		}
		await client.end();
		await pool.end();
	}

	await test('the receiver decoded every request', async () => {
		const d = await rcv.dump();

		assert(d.errors.length === 0, JSON.stringify(d.errors));
	});
	await provider.shutdown();
	rcv.stop();
	process.exit(Math.min(failures, 100));
}

main().catch((e) => {
	console.log(`FAIL otel client harness: ${e.stack}`);
	process.exit(1);
});
