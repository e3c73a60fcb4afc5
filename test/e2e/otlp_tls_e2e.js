#!/usr/bin/env node
/*
 * otlp_tls_e2e.js
 *	  End-to-end tests of the exporter's TLS and of gRPC's rich retry
 *	  answers, against the official-schema receiver.  Run by cluster.sh,
 *	  which provides PGHOST/PGPORT.
 *
 * The test makes its certificates with openssl in a private directory: a
 * CA, a server certificate for 127.0.0.1 and a client certificate signed
 * by it, and a second, unrelated CA.  One receiver serves TLS, another
 * requires mutual TLS.  Checked: http/protobuf and gRPC over TLS verified
 * with fp_attribution.otlp_certificate; a wrong CA fails the export
 * (counted, in last_error) but never the user's transaction; a per-signal
 * certificate wins over the general one; the mutual-TLS receiver accepts
 * the exporter only with its client certificate.  Then gRPC
 * RESOURCE_EXHAUSTED: retried after the RetryInfo delay when the answer
 * carries one, dropped without; UNAVAILABLE's RetryInfo delay honoured.
 *
 * Prints "PASS <name>" or "FAIL <name>: <why>"; every wait is bounded.
 * The exit status is the number of failures (capped).
 */
'use strict';

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { sleep, assert, waitFor, startReceiver } =
	require(path.join(__dirname, '..', 'otlp_receiver', 'client.js'));
const { sql, configure, status, test, results } = require('./harness.js');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fp_tls_e2e.'));
const file = (name) => path.join(dir, name);

function openssl(...args) {
	execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/* A P-256 key and a certificate for subject cn, self-signed or signed by ca */
function certificate(name, cn, { ca, ext } = {}) {
	const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
				 '-keyout', `${name}.key`, '-subj', `/CN=${cn}`];

	if (!ca) {
		openssl('req', '-x509', ...key, '-out', `${name}.pem`, '-days', '2');
		return;
	}
	fs.writeFileSync(file(`${name}.ext`), ext);
	openssl('req', ...key, '-out', `${name}.csr`);
	openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`,
			'-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
}

/* Wait for a metrics request received over TLS (grpc or not) */
function waitTlsMetrics(rcv, protocol) {
	return waitFor(`metrics over TLS by ${protocol}`, async () =>
		(await rcv.dump()).received.metrics.find((r) => r.tls && r.protocol === protocol));
}

/* Wait until a signal's failures exceed n; returns its status */
function waitFailed(signal, n) {
	return waitFor(`a failed ${signal} export`, () => {
		const s = status(signal);

		return s.failed + s.retried > n ? s : null;
	});
}

/* A click in an explicit transaction: it must commit whatever the export */
function click() {
	return sql("BEGIN; SELECT 1 FROM attribution.track_click('aff-tls'); COMMIT;");
}

async function main() {
	certificate('ca', 'fp-test-ca');
	certificate('wrong-ca', 'fp-wrong-ca');
	certificate('server', '127.0.0.1', { ca: 'ca', ext: 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' });
	certificate('client', 'fp-exporter', { ca: 'ca', ext: 'extendedKeyUsage=clientAuth\n' });
	const serverTls = ['--tls-cert', file('server.pem'), '--tls-key', file('server.key')];
	const rcv = await startReceiver({ args: serverTls });
	const mtls = await startReceiver({ args: [...serverTls, '--tls-client-ca', file('ca.pem')] });

	await test('TLS: http/protobuf over https, verified with otlp_certificate', async () => {
		configure({ otlp_protocol: 'http/protobuf', otlp_endpoint: `https://127.0.0.1:${rcv.https}`,
					otlp_certificate: file('ca.pem') });
		await rcv.reset();
		await waitTlsMetrics(rcv, 'http/protobuf');
		assert((await rcv.dump()).errors.length === 0, 'decoding errors');
	});

	await test('TLS: gRPC over https (HTTP/2 by ALPN), verified with otlp_certificate', async () => {
		configure({ otlp_protocol: 'grpc', otlp_endpoint: `https://127.0.0.1:${rcv.grpcs}`,
					otlp_certificate: file('ca.pem') });
		await rcv.reset();
		await waitTlsMetrics(rcv, 'grpc');
		configure({ otlp_protocol: 'http/protobuf', otlp_endpoint: `https://127.0.0.1:${rcv.https}` });
	});

	for (const protocol of ['http/protobuf', 'grpc']) {
		await test(`TLS ${protocol}: a wrong CA fails the export, counted and visible, never the transaction`, async () => {
			const port = protocol === 'grpc' ? rcv.grpcs : rcv.https;
			const before = status('metrics');

			configure({ otlp_protocol: protocol, otlp_endpoint: `https://127.0.0.1:${port}`,
						otlp_certificate: file('wrong-ca.pem') });
			await sleep(300);
			await rcv.reset();
			click();
			const after = await waitFailed('metrics', before.failed + before.retried);

			assert(/SSL|certificate/i.test(after.lastError), `last_error ${after.lastError}`);
			assert(after.lastError.startsWith(`https://127.0.0.1:${port}/`), `last_error names ${after.lastError}`);
			assert((await rcv.dump()).attempts.length === 0, 'a request got through');
			assert(sql("SELECT count(*) > 0 FROM attribution.clicks WHERE affiliate_id = 'aff-tls'") === 't', 'the click did not commit');
		});
	}

	await test('TLS: a per-signal certificate wins over the general one', async () => {
		const before = status('metrics');

		configure({ otlp_protocol: 'http/protobuf', otlp_endpoint: `https://127.0.0.1:${rcv.https}`,
					otlp_certificate: file('wrong-ca.pem'), otlp_traces_certificate: file('ca.pem') });
		await sleep(300);
		await rcv.reset();
		click();
		await waitFor('traces over TLS', async () => (await rcv.dump()).received.traces.some((r) => r.tls));
		await waitFailed('metrics', before.failed + before.retried);
		assert((await rcv.dump()).received.metrics.length === 0, 'metrics verified with the wrong CA');
		configure({ otlp_certificate: file('ca.pem'), otlp_traces_certificate: '' });
	});

	for (const protocol of ['http/protobuf', 'grpc']) {
		await test(`mutual TLS ${protocol}: refused without the client certificate, accepted with it`, async () => {
			const port = protocol === 'grpc' ? mtls.grpcs : mtls.https;
			const before = status('metrics');

			configure({ otlp_protocol: protocol, otlp_endpoint: `https://127.0.0.1:${port}`,
						otlp_certificate: file('ca.pem'), otlp_client_certificate: '', otlp_client_key: '' });
			await sleep(300);
			await mtls.reset();
			await waitFailed('metrics', before.failed + before.retried);
			assert((await mtls.dump()).attempts.length === 0, 'accepted without a client certificate');

			configure({ otlp_client_certificate: file('client.pem'), otlp_client_key: file('client.key') });
			const got = await waitTlsMetrics(mtls, protocol);
			assert(got.clientCN === 'fp-exporter', `client certificate ${got.clientCN}`);
		});
	}
	configure({ otlp_client_certificate: '', otlp_client_key: '', otlp_certificate: '' });

	/* gRPC's rich retry answers, over cleartext HTTP/2 */
	configure({ otlp_protocol: 'grpc', otlp_endpoint: `http://127.0.0.1:${rcv.grpc}` });
	await sleep(300);
	for (const padded of [false, true]) {
		await test(`gRPC RESOURCE_EXHAUSTED with RetryInfo (base64 ${padded ? '' : 'un'}padded): retried after its delay`, async () => {
			const before = status('metrics');

			await rcv.reset();
			/*
			 * 429 maps to RESOURCE_EXHAUSTED; the delay is longer than any
			 * first backoff (0.5-1.5 s), so only RetryInfo explains the wait
			 */
			await rcv.script({ signal: 'metrics', status: 429, retryInfoMs: 2500, message: 'quota', padded });
			await waitFor('the retry accepted', async () => {
				const a = (await rcv.dump()).attempts.filter((x) => x.signal === 'metrics');
				const i = a.findIndex((x) => x.answer === 429);

				return i >= 0 && a.length > i + 1;
			});
			const a = (await rcv.dump()).attempts.filter((x) => x.signal === 'metrics');
			const i = a.findIndex((x) => x.answer === 429);

			assert(a[i + 1].answer === 200, `answers ${a.map((x) => x.answer)}`);
			assert(a[i + 1].time - a[i].time >= 2400, `retried after ${a[i + 1].time - a[i].time} ms, not the 2500 ms asked`);
			assert(status('metrics').retried === before.retried + 1, 'retry not counted');
		});
	}

	/*
	 * No details, details that are not base64, and a Status whose RetryInfo
	 * (one second) is cut short: its last two bytes are missing
	 */
	const cut = 'CAgaMAoodHlwZS5nb29nbGVhcGlzLmNvbS9nb29nbGUucnBjLlJldHJ5SW5mbxIECgI';

	for (const [what, detailsBin] of [['without RetryInfo', undefined], ['with details that are not base64', '%%not-base64%%'],
									  ['with its RetryInfo cut short', cut]]) {
		await test(`gRPC RESOURCE_EXHAUSTED ${what}: not retried, dropped and counted`, async () => {
			const before = status('metrics');

			await rcv.reset();
			await rcv.script({ signal: 'metrics', status: 429, message: 'quota for good', detailsBin });
			await waitFor('the refusal counted', () => status('metrics').failed === before.failed + 1);
			const after = status('metrics');

			assert(after.retried === before.retried, 'retried without a RetryInfo');
			assert(after.dropped > before.dropped, 'drop not counted');
			assert(/grpc-status 8/.test(after.lastError), `last_error ${after.lastError}`);
		});
	}

	await test('gRPC UNAVAILABLE with RetryInfo: its delay replaces the backoff', async () => {
		await rcv.reset();
		await rcv.script({ signal: 'metrics', status: 503, retryInfoMs: 2500 });
		await waitFor('the retry', async () => {
			const a = (await rcv.dump()).attempts.filter((x) => x.signal === 'metrics');
			const i = a.findIndex((x) => x.answer === 503);

			return i >= 0 && a.length > i + 1;
		});
		const a = (await rcv.dump()).attempts.filter((x) => x.signal === 'metrics');
		const i = a.findIndex((x) => x.answer === 503);

		/* the first backoff would be 0.5-1.5 s */
		assert(a[i + 1].time - a[i].time >= 2400, `retried after ${a[i + 1].time - a[i].time} ms`);
	});

	await rcv.stop();
	await mtls.stop();
	fs.rmSync(dir, { recursive: true, force: true });
	process.exit(Math.min(results.failures, 100));
}

main().catch((e) => {
	console.log(`FAIL otlp TLS e2e harness: ${e.stack}`);
	process.exit(1);
});
