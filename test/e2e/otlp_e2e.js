#!/usr/bin/env node
/*
 * otlp_e2e.js
 *	  End-to-end tests of the OTLP exporter against the official-schema
 *	  receiver.  Run by cluster.sh, which provides PGHOST/PGPORT.
 *
 * Each test prints "PASS <name>" or "FAIL <name>: <why>"; every wait is
 * bounded.  The exit status is the number of failures (capped).
 */
'use strict';

const path = require('node:path');
const { sleep, assert, waitFor, startReceiver, allSpans, allLogs, attrs } =
	require(path.join(__dirname, '..', 'otlp_receiver', 'client.js'));
const { sql, configure, status, test, results } = require('./harness.js');

const EXPORTER = "backend_type = 'fp_attribution exporter'";

/* A click with a malformed traceparent: bumps fp.traceparent.invalid */
function badClick() {
	sql("SELECT 1 FROM attribution.track_click('aff-e2e', traceparent => 'not-a-traceparent')");
	return sql('SELECT invalid_traceparents FROM attribution.telemetry_status');
}

/* The value of a metric in a decoded ExportMetricsServiceRequest */
function metricValue(request, name) {
	for (const rm of request.resourceMetrics || [])
		for (const sm of rm.scopeMetrics || [])
			for (const m of sm.metrics || [])
				if (m.name === name)
					return m.sum.dataPoints[0].asInt;
	return undefined;
}

function randomHex(bytes) {
	return require('node:crypto').randomBytes(bytes).toString('hex');
}

/* All metrics of a decoded request, by name */
function metricsByName(request) {
	const out = {};

	for (const rm of request.resourceMetrics || [])
		for (const sm of rm.scopeMetrics || [])
			for (const m of sm.metrics || [])
				out[m.name] = m;
	return out;
}

/* Wait until a metrics request matching pred carries counter value want */
function waitMetric(rcv, want, pred = () => true, timeoutMs) {
	return waitFor(`fp.traceparent.invalid = ${want}`, async () => {
		const d = await rcv.dump();

		return d.received.metrics.find((r) => pred(r) && metricValue(r.request, 'fp.traceparent.invalid') === String(want));
	}, timeoutMs);
}

async function main() {
	let rcv = await startReceiver();
	const endpoint = () => `http://127.0.0.1:${rcv.http}`;

	configure({ otlp_endpoint: endpoint() });

	await test('worker visible in pg_stat_activity with its wait event', async () => {
		const row = await waitFor('exporter in pg_stat_activity',
								  () => sql(`SELECT backend_type || '|' || coalesce(wait_event_type, '') FROM pg_stat_activity WHERE ${EXPORTER}`));
		assert(row.startsWith('fp_attribution exporter|'), `got ${row}`);
		await waitFor('wait event Extension', () => sql(`SELECT wait_event_type = 'Extension' FROM pg_stat_activity WHERE ${EXPORTER}`) === 't');
	});

	await test('http/protobuf: metric value, resource and scope', async () => {
		const want = badClick();
		const req = await waitMetric(rcv, want, (r) => r.protocol === 'http/protobuf' && !r.gzip);
		const rm = req.request.resourceMetrics[0];
		const attrs = Object.fromEntries(rm.resource.attributes.map((a) => [a.key, a.value.stringValue]));

		assert(attrs['service.name'] === 'fp_attribution', 'service.name');
		assert(attrs['service.version'] === sql("SELECT extversion FROM pg_extension WHERE extname = 'fp_attribution'"), 'service.version');
		assert(attrs['host.name'], 'host.name');
		assert(rm.scopeMetrics[0].scope.name === 'fp_attribution', 'scope name');
		assert(req.headers['content-type'] === 'application/x-protobuf', 'content type');
	});

	for (const [protocol, compression] of [['http/json', 'none'], ['http/protobuf', 'gzip'], ['http/json', 'gzip'], ['grpc', 'none'], ['grpc', 'gzip']]) {
		await test(`${protocol} with compression ${compression}`, async () => {
			const port = protocol === 'grpc' ? rcv.grpc : rcv.http;

			configure({ otlp_protocol: protocol, otlp_compression: compression, otlp_endpoint: `http://127.0.0.1:${port}` });
			await sleep(300);
			const want = badClick();

			await waitMetric(rcv, want, (r) => r.protocol === protocol && r.gzip === (compression === 'gzip'));
			if (process.env.E2E_SPANS !== 'no') {
				const trace = randomHex(16);

				sql(`SELECT 1 FROM attribution.track_click('aff-e2e-proto', traceparent => '00-${trace}-${randomHex(8)}-01')`);
				await waitFor('a span and a log record of the click', async () => {
					const d = await rcv.dump();
					const spanSeen = d.received.traces.some((r) => r.protocol === protocol && allSpans({ received: { traces: [r] } }).some((x) => x.traceId === trace));
					const logSeen = d.received.logs.some((r) => r.protocol === protocol && allLogs({ received: { logs: [r] } }).some((x) => x.traceId === trace));
					return spanSeen && logSeen;
				});
			}
			const d = await rcv.dump();
			assert(d.errors.length === 0, `decoding errors: ${JSON.stringify(d.errors)}`);
		});
	}
	configure({ otlp_protocol: 'http/protobuf', otlp_compression: 'none', otlp_endpoint: endpoint() });

	await test('spans: trace, span and parent ids equal the rows; names and attributes', async () => {
		const trace = randomHex(16);
		const parent = randomHex(8);
		const row = sql(`SELECT trace_id || '|' || span_id FROM attribution.track_click('aff-e2e-span', traceparent => '00-${trace}-${parent}-01')`).split('|');
		const want = ['INSERT attribution.clicks', 'attribution.click_tracked', 'attribution.track_click'];

		assert(row[0] === trace, `row trace_id ${row[0]}`);
		const spans = await waitFor('the spans of the click', async () => {
			const got = allSpans(await rcv.dump()).filter((x) => x.traceId === trace);
			return got.length >= want.length ? got : null;
		});
		const command = spans.find((x) => x.name === 'attribution.track_click');

		assert(command, 'no command span');
		assert(command.spanId === row[1], `command span ${command.spanId} != row ${row[1]}`);
		assert(command.parentSpanId === parent, `command parent ${command.parentSpanId} != ${parent}`);
		assert(command.kind === 2, `kind ${command.kind}`);
		assert(Number(command.endTimeUnixNano) >= Number(command.startTimeUnixNano), 'times');
		const a = attrs(command.attributes);
		assert(a['fp.affiliate.id'] === 'aff-e2e-span', `fp.affiliate.id ${a['fp.affiliate.id']}`);
		assert(a['db.system.name'] === 'postgresql', 'db.system.name');
		for (const name of want.slice(0, 2)) {
			const child = spans.find((x) => x.name === name);
			assert(child && child.parentSpanId === row[1], `${name} is not a child of the command span`);
			assert(child.flags === 0x101, `${name}: flags ${child.flags}, want 0x101 (local parent, sampled)`);
		}
		// SpanFlags: the parent is known to be remote; trace flags as they came
		assert(command.flags === 0x301, `command flags ${command.flags}, want 0x301`);
	});

	await test('span flags: a root has the random-trace-id flag, not a remote parent', async () => {
		const row = sql("SELECT trace_id || '|' || span_id FROM attribution.track_click('aff-e2e-root')").split('|');
		const command = await waitFor('the root command span', async () =>
			allSpans(await rcv.dump()).find((x) => x.spanId === row[1]));

		assert(!command.parentSpanId, 'not a root');
		assert(command.flags === 0x103, `flags ${command.flags}, want 0x103 (parent not remote, random, sampled)`);
	});

	await test('logs carry the trace id of their span', async () => {
		const trace = randomHex(16);
		const row = sql(`SELECT trace_id || '|' || span_id FROM attribution.track_click('aff-e2e-log', traceparent => '00-${trace}-${randomHex(8)}-01')`).split('|');
		const logs = await waitFor('the logs of the click', async () => {
			const got = allLogs(await rcv.dump()).filter((x) => x.traceId === trace);
			return got.some((x) => x.eventName === 'fp.click.tracked') ? got : null;
		});
		const tracked = logs.find((x) => x.eventName === 'fp.click.tracked');

		assert(tracked.spanId && tracked.spanId.length === 16, 'span id');
		assert(tracked.severityNumber === 9, `severity ${tracked.severityNumber}`);
		assert(attrs(tracked.attributes)['fp.affiliate.id'] === 'aff-e2e-log', 'fp.affiliate.id');
		assert(logs.some((x) => x.spanId === row[1]), 'no log on the command span');
	});

	await test('server log: a warning and a constraint violation in commands, with their attributes and trace', async () => {
		sql(`CREATE TABLE e2e_server_log_keys (k int PRIMARY KEY);
			 INSERT INTO e2e_server_log_keys VALUES (1);
			 CREATE FUNCTION e2e_server_log() RETURNS trigger LANGUAGE plpgsql AS $$
			 BEGIN
				 IF NEW.affiliate_id = 'aff-e2e-warn' THEN
					 RAISE WARNING 'e2e warning from %', NEW.affiliate_id;
				 ELSIF NEW.affiliate_id = 'aff-e2e-dup' THEN
					 INSERT INTO public.e2e_server_log_keys VALUES (1);
				 END IF;
				 RETURN NEW;
			 END $$;
			 CREATE TRIGGER e2e_server_log BEFORE INSERT ON attribution.clicks
				 FOR EACH ROW EXECUTE FUNCTION e2e_server_log()`);
		/* the hook sees what log_min_messages sends to the server log (here LOG) */
		sql('ALTER SYSTEM SET log_min_messages = warning');
		configure({ server_log_min_level: 'warning' });
		try {
			const warnTrace = randomHex(16);
			const dupTrace = randomHex(16);
			const row = sql(`SELECT pg_backend_pid() || '|' || span_id FROM attribution.track_click('aff-e2e-warn', traceparent => '00-${warnTrace}-${randomHex(8)}-01')`).split('|');
			let failed = false;

			try {
				sql(`SELECT 1 FROM attribution.track_click('aff-e2e-dup', traceparent => '00-${dupTrace}-${randomHex(8)}-01')`);
			} catch (e) {
				failed = true;
			}
			assert(failed, 'the duplicate key did not fail the command');

			const logs = await waitFor('the server log records', async () => {
				const got = allLogs(await rcv.dump()).filter((x) => attrs(x.attributes)['db.system.name'] === 'postgresql');
				const warn = got.find((x) => x.traceId === warnTrace && x.severityText === 'WARNING');
				const dup = got.find((x) => x.traceId === dupTrace && x.severityText === 'ERROR');
				return warn && dup ? { warn, dup } : null;
			});
			const w = attrs(logs.warn.attributes);
			const d = attrs(logs.dup.attributes);

			assert(logs.warn.severityNumber === 13, `warning severity ${logs.warn.severityNumber}`);
			assert(logs.warn.body.stringValue === 'e2e warning from aff-e2e-warn', `body ${JSON.stringify(logs.warn.body)}`);
			assert(logs.warn.spanId === row[1], 'the warning is not on the command span');
			assert(w['db.response.status_code'] === '01000', `warning SQLSTATE ${w['db.response.status_code']}`);
			assert(w['db.namespace'] === 'postgres' && w['user.name'] === 'postgres', 'database or user');
			assert(String(w['process.pid']) === row[0], `process.pid ${w['process.pid']}, want ${row[0]}`);
			assert(logs.dup.severityNumber === 17, `error severity ${logs.dup.severityNumber}`);
			assert(d['db.response.status_code'] === '23505', `error SQLSTATE ${d['db.response.status_code']}`);
			assert(logs.dup.spanId && logs.dup.spanId.length === 16, 'the error has no span id');
		} finally {
			sql('ALTER SYSTEM RESET log_min_messages');
			configure({ server_log_min_level: 'off' });
			sql(`DROP TRIGGER e2e_server_log ON attribution.clicks;
				 DROP FUNCTION e2e_server_log(); DROP TABLE e2e_server_log_keys`);
		}
	});

	await test('resource and scope of every signal: service.instance.id, telemetry.sdk, schema_url', async () => {
		const crypto = require('node:crypto');
		const ns = Buffer.from('4d63009a8d0f11eeaad74c796ed8e320', 'hex');
		const name = `${sql('SELECT system_identifier FROM pg_control_system()')}:${require('node:os').hostname()}:${sql('SHOW port')}`;
		const h = crypto.createHash('sha1').update(Buffer.concat([ns, Buffer.from(name)])).digest();
		const schema = 'https://opentelemetry.io/schemas/1.45.0';
		const version = sql("SELECT extversion FROM pg_extension WHERE extname = 'fp_attribution'");

		h[6] = (h[6] & 0x0f) | 0x50;
		h[8] = (h[8] & 0x3f) | 0x80;
		const uuid = h.subarray(0, 16).toString('hex').replace(/^(.{8})(.{4})(.{4})(.{4})/, '$1-$2-$3-$4-');
		const d = await rcv.dump();

		for (const [signal, field, scopes] of [['traces', 'resourceSpans', 'scopeSpans'],
											   ['metrics', 'resourceMetrics', 'scopeMetrics'],
											   ['logs', 'resourceLogs', 'scopeLogs']]) {
			const got = d.received[signal].filter((r) => r.protocol === 'http/protobuf');
			assert(got.length > 0, `no ${signal} request`);
			const r = got[got.length - 1].request[field][0];
			const a = attrs(r.resource.attributes);

			assert(a['service.instance.id'] === uuid, `${signal}: service.instance.id ${a['service.instance.id']}, want ${uuid} (UUIDv5 of ${name})`);
			assert(a['telemetry.sdk.name'] === 'fp_attribution' && a['telemetry.sdk.language'] === 'c' &&
				   a['telemetry.sdk.version'] === version, `${signal}: telemetry.sdk.* ${JSON.stringify(a)}`);
			assert(r.schemaUrl === schema, `${signal}: resource schema_url ${r.schemaUrl}`);
			assert(r[scopes][0].schemaUrl === schema, `${signal}: scope schema_url ${r[scopes][0].schemaUrl}`);
		}
	});

	await test('the twelve metrics, with the values tracked', async () => {
		const twelve = ['affiliate.clicks.total', 'affiliate.clicks.by_id', 'affiliate.conversions.total',
			'affiliate.revenue.cents', 'affiliate.conversion.latency', 'affiliate.windows.active',
			'commands.total', 'commands.latency', 'commands.errors', 'receipts.total',
			'receipts.verifications.success', 'receipts.verifications.failed'];

		sql("SELECT 1 FROM attribution.track_click('aff-e2e-m', visitor_id => 'v-e2e-m')");
		sql(`SELECT 1 FROM attribution.track_conversion('order-e2e-${randomHex(4)}', 1234, 'EUR', visitor_id => 'v-e2e-m')`);
		const clicks = sql("SELECT value FROM attribution.metrics WHERE name = 'affiliate.clicks.total'");
		const revenue = sql("SELECT value FROM attribution.metrics WHERE name = 'affiliate.revenue.cents' AND attributes ->> 'currency' = 'EUR'");
		const latency = sql("SELECT count FROM attribution.metrics WHERE name = 'affiliate.conversion.latency' AND attributes = '{}'");
		const windows = sql("SELECT value FROM attribution.metrics WHERE name = 'affiliate.windows.active'");
		const req = await waitFor('a metrics export with the new values', async () => {
			const d = await rcv.dump();

			return d.received.metrics.slice().reverse().find((r) => {
				const m = metricsByName(r.request);
				// both commands' values: an export taken between them has the click only
				return m['affiliate.clicks.total'] && m['affiliate.clicks.total'].sum.dataPoints[0].asInt === clicks &&
					m['affiliate.revenue.cents'] &&
					m['affiliate.revenue.cents'].sum.dataPoints.some((p) => attrs(p.attributes).currency === 'EUR' && p.asInt === revenue);
			});
		});
		const m = metricsByName(req.request);

		for (const name of twelve)
			assert(m[name], `metric ${name} not exported`);
		const eur = m['affiliate.revenue.cents'].sum.dataPoints.find((p) => attrs(p.attributes).currency === 'EUR');
		assert(eur && eur.asInt === revenue, `revenue ${eur && eur.asInt} != ${revenue}`);
		assert(m['affiliate.conversion.latency'].histogram.dataPoints[0].count === latency, 'latency histogram count');
		assert(m['affiliate.windows.active'].gauge.dataPoints[0].asInt === windows, `windows.active ${m['affiliate.windows.active'].gauge.dataPoints[0].asInt} != ${windows}`);
		assert(m['affiliate.clicks.total'].sum.isMonotonic === true &&
			   m['affiliate.clicks.total'].sum.aggregationTemporality === 2, 'cumulative monotonic sum');
	});

	await test('ledger.integration.lag: measured by the ledger worker, exported by the exporter', async () => {
		// the commands above queued receipts; the ledger worker integrates them
		// every second and publishes the lag in shared memory
		const req = await waitFor('a metrics export with ledger.integration.lag', async () => {
			const d = await rcv.dump();

			return d.received.metrics.slice().reverse().find((r) => metricsByName(r.request)['ledger.integration.lag']);
		});
		const lag = metricsByName(req.request)['ledger.integration.lag'];

		assert(lag.unit === 's' && lag.gauge, `ledger.integration.lag: ${JSON.stringify(lag)}`);
		// 0 (an empty queue at the run's start) may be left out by the decoder
		const v = lag.gauge.dataPoints[0].asDouble ?? 0;
		assert(typeof v === 'number' && v >= 0 && v < 60, `ledger.integration.lag value ${v}`);
	});

	await test('exemplars: latency points link to the latest sampled command span', async () => {
		const trace = randomHex(16);
		const ctrace = randomHex(16);
		const visitor = `v-e2e-ex-${randomHex(4)}`;
		const click = sql(`SELECT span_id FROM attribution.track_click('aff-e2e-ex', visitor_id => '${visitor}', traceparent => '00-${trace}-${randomHex(8)}-01')`);
		const conv = sql(`SELECT span_id FROM attribution.track_conversion('order-e2e-ex-${randomHex(4)}', 100, 'EUR', visitor_id => '${visitor}', traceparent => '00-${ctrace}-${randomHex(8)}-01')`);
		// an unsampled command is no exemplar
		sql(`SELECT 1 FROM attribution.track_click('aff-e2e-ex', traceparent => '00-${randomHex(16)}-${randomHex(8)}-00')`);
		const find = (m, name, command) => {
			const h = m[name] && m[name].histogram.dataPoints.find((p) => !command || attrs(p.attributes)['fp.command.name'] === command);
			return h && h.exemplars && h.exemplars[0];
		};
		const req = await waitFor('metrics with the exemplars', async () => {
			const d = await rcv.dump();

			return d.received.metrics.slice().reverse().find((r) => {
				const m = metricsByName(r.request);
				const c = find(m, 'commands.latency', 'track_click');
				const v = find(m, 'affiliate.conversion.latency');
				// an export between the click and the conversion carries
				// the click's exemplar beside an older conversion's
				return c && c.traceId === trace && v && v.traceId === ctrace;
			});
		});
		const m = metricsByName(req.request);
		const c = find(m, 'commands.latency', 'track_click');
		const v = find(m, 'affiliate.conversion.latency');

		assert(c.spanId === click, `commands.latency exemplar span ${c.spanId} != ${click}`);
		assert(c.asDouble > 0 && c.asDouble < 60 && Number(c.timeUnixNano) > 0, `exemplar value ${c.asDouble} time ${c.timeUnixNano}`);
		assert(v && v.traceId === ctrace && v.spanId === conv, `conversion.latency exemplar ${JSON.stringify(v)}`);
		assert(v.asDouble >= 0 && v.asDouble < 60, `conversion latency ${v.asDouble}`);
	});

	await test('headers sent, and hidden from non-superusers', async () => {
		configure({ otlp_headers: 'x-test-token=abc%20def, x-other=1' });
		const want = badClick();
		const req = await waitMetric(rcv, want);

		assert(req.headers['x-test-token'] === 'abc def', `header ${req.headers['x-test-token']}`);
		sql('DROP ROLE IF EXISTS regress_fp_otlp_user; CREATE ROLE regress_fp_otlp_user');
		let hidden = false;
		try {
			sql('SET ROLE regress_fp_otlp_user; SHOW fp_attribution.otlp_headers');
		} catch (e) {
			hidden = /permission denied|must be superuser|pg_read_all_settings/.test(String(e.stderr));
		}
		assert(hidden, 'a non-superuser could read the headers');
		configure({ otlp_headers: '' });
	});

	await test('503 with Retry-After then 200: retried after the delay', async () => {
		const before = status('metrics');

		await rcv.reset();
		await rcv.script({ signal: 'metrics', status: 503, retryAfter: 1, times: 2 });
		const want = badClick();
		await waitMetric(rcv, want);
		const d = await rcv.dump();
		const all = d.attempts.filter((x) => x.signal === 'metrics');
		// an export already on its way between reset and script is answered
		// 200 before the script applies: start at the first scripted answer
		const a = all.slice(Math.max(0, all.findIndex((x) => x.answer === 503)));

		assert(a.length >= 3 && a[0].answer === 503 && a[1].answer === 503 && a[2].answer === 200, `answers ${all.map((x) => x.answer)}`);
		assert(a[1].time - a[0].time >= 900 && a[2].time - a[1].time >= 900, 'Retry-After not honoured');
		assert(status('metrics').retried - before.retried >= 2, 'retried not counted');
	});

	await test('partial success counted (protobuf, JSON and gRPC responses)', async () => {
		for (const protocol of ['http/protobuf', 'http/json', 'grpc']) {
			const before = status('metrics');
			const port = protocol === 'grpc' ? rcv.grpc : rcv.http;

			configure({ otlp_protocol: protocol, otlp_endpoint: `http://127.0.0.1:${port}` });
			await sleep(300);
			await rcv.script({ signal: 'metrics', status: 200, rejected: 1, message: `one point refused via ${protocol}` });
			await waitFor(`a partial success over ${protocol}`, () => status('metrics').rejected === before.rejected + 1);
			assert(status("metrics").lastError === `one point refused via ${protocol}`, `${protocol}: last_error ${status("metrics").lastError}`);
		}
		configure({ otlp_protocol: 'http/protobuf', otlp_endpoint: endpoint() });
		await sleep(300);
	});

	await test('400: not retried, dropped and counted', async () => {
		const before = status('metrics');

		await rcv.reset();
		await rcv.script({ signal: 'metrics', status: 400, message: 'bad data' });
		await waitFor('a 400 answer', async () => (await rcv.dump()).attempts.some((x) => x.answer === 400));
		await waitFor('the next batch', async () => (await rcv.dump()).attempts.filter((x) => x.signal === 'metrics').length >= 2);
		const after = status('metrics');
		const d = await rcv.dump();
		const a = d.attempts.filter((x) => x.signal === 'metrics');

		assert(after.failed === before.failed + 1, `failed ${before.failed} -> ${after.failed}`);
		assert(after.retried === before.retried, 'a 400 was retried');
		assert(after.dropped > before.dropped, 'drop not counted');
		assert(/HTTP 400/.test(after.lastError), `last_error ${after.lastError}`);
		assert(a[1].time - a[0].time >= 250, 'second request came as a retry, not the next interval');
	});

	await test('collector that never answers: timed out and retried', async () => {
		configure({ otlp_timeout: 1000 });
		await sleep(300);
		const before = status('metrics');

		await rcv.reset();
		await rcv.script({ signal: 'metrics', hang: true, times: 1 });
		await waitFor('a hanging request', async () => (await rcv.dump()).attempts.some((x) => x.answer === 'hang'));
		const want = badClick();

		await waitMetric(rcv, want, undefined, 30000);
		const after = status('metrics');
		assert(after.retried > before.retried, 'timeout not retried');
		assert(/[Tt]imeout|timed out/.test(after.lastError), `last_error ${after.lastError}`);
	});

	await test('collector that never answers: backends never wait for it', async () => {
		// Causal, not timed: while one metrics request hangs (otlp_timeout
		// 60 s), 20 clicks finish and that request is still the one in
		// flight.  Clicks that waited for the exporter could only finish
		// after it timed out, which the status would show as a retry.
		configure({ otlp_timeout: 60000 });
		await sleep(300);
		await rcv.reset();
		await rcv.script({ signal: 'metrics', hang: true, times: 1 });
		await waitFor('a hanging request', async () => (await rcv.dump()).attempts.some((x) => x.answer === 'hang'));
		const before = status('metrics');

		for (let i = 0; i < 20; i++)
			badClick();
		const during = status('metrics');
		assert(during.retried === before.retried && during.sent === before.sent && during.failed === before.failed,
			   'the hanging request ended while the clicks ran');
		const want = sql('SELECT invalid_traceparents FROM attribution.telemetry_status');
		await rcv.reset();			/* ends the hanging request: sent again */
		await waitMetric(rcv, want, undefined, 30000);
		configure({ otlp_timeout: 2000 });
	});

	for (const protocol of ['http/protobuf', 'grpc']) {
		await test(`${protocol}: a hanging traces request holds back neither logs nor metrics`, async () => {
			// The first click's spans go to a traces request that is never
			// answered (otlp_timeout 60 s).  While it hangs, the log record
			// and metric value of clicks made after it started must arrive
			// (each wait 15 s): a worker that sent the signals one after
			// another could not send them before that request timed out.
			const port = protocol === 'grpc' ? rcv.grpc : rcv.http;

			configure({ otlp_protocol: protocol, otlp_endpoint: `http://127.0.0.1:${port}`, otlp_timeout: 60000 });
			await sleep(300);
			await rcv.reset();
			await rcv.script({ signal: 'traces', hang: true, times: 1 });
			const before = status('traces');
			badClick();
			await waitFor('a hanging traces request', async () =>
				(await rcv.dump()).attempts.some((x) => x.signal === 'traces' && x.answer === 'hang'));
			const want = badClick();
			const trace = randomHex(16);

			sql(`SELECT 1 FROM attribution.track_click('aff-e2e', traceparent => '00-${trace}-${randomHex(8)}-01')`);
			await waitFor('the second click\'s log record', async () =>
				allLogs(await rcv.dump()).some((l) => l.traceId === trace));
			await waitMetric(rcv, want);
			const during = status('traces');
			assert(during.sent === before.sent && during.retried === before.retried,
				   'the traces request ended before the other signals arrived');
			// end the hanging request: the spans are sent again and arrive
			await rcv.reset();
			await waitFor('the spans, after the hanging request ended', () => status('traces').sent > before.sent, 30000);
		});
	}
	configure({ otlp_protocol: 'http/protobuf', otlp_endpoint: endpoint(), otlp_timeout: 2000 });
	await sleep(300);

	await test('collector down then up: data arrives, transactions never failed', async () => {
		const port = rcv.http;

		await rcv.stop();
		for (let i = 0; i < 10; i++)
			badClick();
		await waitFor('a failed attempt', () => status('metrics').lastError.includes('onnect'));
		rcv = await startReceiver({ http: port });
		const want = sql('SELECT invalid_traceparents FROM attribution.telemetry_status');
		await waitMetric(rcv, want, undefined, 30000);
	});

	await test('SIGHUP endpoint change', async () => {
		const other = await startReceiver();

		configure({ otlp_endpoint: `http://127.0.0.1:${other.http}` });
		const want = badClick();
		await waitMetric(other, want);
		await rcv.stop();
		rcv = other;
	});

	await test('worker killed: restarted', async () => {
		const pid = sql(`SELECT pid FROM pg_stat_activity WHERE ${EXPORTER}`);

		sql(`SELECT pg_terminate_backend(${pid})`);
		await waitFor('a new exporter', () => {
			const now = sql(`SELECT pid FROM pg_stat_activity WHERE ${EXPORTER}`);
			return now !== '' && now !== pid;
		}, 20000);
		const want = badClick();
		await waitMetric(rcv, want);
	});

	await rcv.stop();
	process.exit(Math.min(results.failures, 100));
}

main().catch((e) => {
	console.log(`FAIL otlp e2e harness: ${e.stack}`);
	process.exit(1);
});
