/*
 * client.js
 *	  What every end-to-end test needs around the test receiver: start it
 *	  on 127.0.0.1, drive and read it, wait for what it decoded.
 *
 * startReceiver({ http, grpc, args }) starts receiver.js (ports default to
 * free ones; args are more options, e.g. --tls-cert) and resolves to
 * { http, grpc, https, grpcs, proc, dump(), script(s), reset(), stop() }; allSpans / allLogs flatten a dump, each span with the name of
 * its instrumentation scope; attrs turns OTLP attributes into an object.
 */
'use strict';

const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');

const RECEIVER = path.join(__dirname, 'receiver.js');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function assert(cond, msg) {
	if (!cond)
		throw new Error(msg);
}

/* Poll fn every 100 ms until it returns something truthy, at most timeoutMs */
async function waitFor(what, fn, timeoutMs = 15000) {
	const end = Date.now() + timeoutMs;
	let last;

	while (Date.now() < end) {
		last = await fn();
		if (last)
			return last;
		await sleep(100);
	}
	throw new Error(`timed out waiting for ${what}`);
}

function startReceiver({ http = 0, grpc = 0, args = [] } = {}) {
	return new Promise((resolve, reject) => {
		const proc = spawn('node', [RECEIVER, '--http-port', String(http), '--grpc-port', String(grpc), ...args],
						   { stdio: ['ignore', 'pipe', 'inherit'] });
		const rl = readline.createInterface({ input: proc.stdout });

		proc.on('error', reject);
		rl.once('line', (line) => {
			const ports = JSON.parse(line);
			const base = `http://127.0.0.1:${ports.http}`;
			const post = (p, body) => fetch(base + p, { method: 'POST', body: JSON.stringify(body || {}) }).then((r) => r.json());

			resolve({
				...ports,
				proc,
				dump: () => fetch(base + '/control/dump').then((r) => r.json()),
				script: (s) => post('/control/script', s),
				reset: () => post('/control/reset'),
				stop: () => new Promise((res) => { proc.once('exit', res); proc.kill('SIGKILL'); }),
			});
		});
	});
}

function allSpans(d) {
	return d.received.traces.flatMap((r) => (r.request.resourceSpans || []).flatMap((rs) =>
		(rs.scopeSpans || []).flatMap((ss) => (ss.spans || []).map((s) => ({ ...s, scope: ss.scope.name })))));
}

function allLogs(d) {
	return d.received.logs.flatMap((r) => (r.request.resourceLogs || []).flatMap((rl) =>
		(rl.scopeLogs || []).flatMap((sl) => sl.logRecords || [])));
}

function attrs(list) {
	return Object.fromEntries((list || []).map((a) => [a.key, Object.values(a.value)[0]]));
}

module.exports = { sleep, assert, waitFor, startReceiver, allSpans, allLogs, attrs };
