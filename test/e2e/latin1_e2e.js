#!/usr/bin/env node
/*
 * latin1_e2e.js
 *	  Telemetry recorded in a LATIN1 database (the affiliate id "café-…",
 *	  an error message with "É") arrives at the official-schema receiver
 *	  as the same characters, over http/protobuf and http/json: records are
 *	  converted to UTF-8 when they are written.  Run by latin1.sh through
 *	  cluster.sh, which provides PGHOST/PGPORT.
 *
 * Prints "PASS <name>" or "FAIL <name>: <why>"; every wait is bounded.
 */
'use strict';

const { execFileSync } = require('node:child_process');
const path = require('node:path');
const crypto = require('node:crypto');

const { sleep, startReceiver, allSpans, allLogs, attrs } =
	require(path.join(__dirname, '..', 'otlp_receiver', 'client.js'));
let failures = 0;

function sql(db, query) {
	return execFileSync('psql', ['-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', db, '-c', query],
						{ encoding: 'utf8', env: { ...process.env, PGCLIENTENCODING: 'UTF8' } }).trim();
}

/* The decoded spans and log records received so far with trace id trace */
async function received(rcv, trace) {
	const d = await rcv.dump();
	const spans = allSpans(d).filter((s) => s.traceId === trace);
	const logs = allLogs(d).filter((l) => l.traceId === trace);

	return { spans, logs, errors: d.errors };
}

async function main() {
	const rcv = await startReceiver();

	sql('postgres', `ALTER SYSTEM SET fp_attribution.otlp_endpoint = 'http://127.0.0.1:${rcv.http}'`);
	sql('postgres', "CREATE DATABASE latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0");
	sql('latin1', 'CREATE EXTENSION fp_attribution');
	for (const protocol of ['http/protobuf', 'http/json']) {
		const name = `LATIN1 database: UTF-8 strings over ${protocol}`;

		try {
			const trace = crypto.randomBytes(16).toString('hex');
			const tp = `00-${trace}-${crypto.randomBytes(8).toString('hex')}-01`;
			const affiliate = `café-${protocol}`;
			let got;

			sql('postgres', `ALTER SYSTEM SET fp_attribution.otlp_protocol = '${protocol}'`);
			sql('postgres', 'SELECT pg_reload_conf()');
			await sleep(300);
			sql('latin1', `SELECT 1 FROM attribution.track_click('${affiliate}', traceparent => '${tp}')`);
			sql('latin1', `DO $$ BEGIN PERFORM attribution.track_conversion('order-é', 1, 'É', traceparent => '${tp}');
						   EXCEPTION WHEN OTHERS THEN NULL; END $$`);
			for (let end = Date.now() + 15000; Date.now() < end; await sleep(100)) {
				got = await received(rcv, trace);
				if (got.spans.some((s) => s.name === 'attribution.track_conversion') &&
					got.logs.some((l) => l.eventName === 'fp.command.failed'))
					break;
			}
			const click = got.spans.find((s) => s.name === 'attribution.track_click');
			const failed = got.spans.find((s) => s.name === 'attribution.track_conversion');
			const tracked = got.logs.find((l) => l.eventName === 'fp.click.tracked');
			const failedLog = got.logs.find((l) => l.eventName === 'fp.command.failed');

			if (!click || !failed || !tracked || !failedLog)
				throw new Error('timed out waiting for the spans and logs');
			if (got.errors.length)
				throw new Error(`decoding errors: ${JSON.stringify(got.errors)}`);
			for (const [what, value] of [['span fp.affiliate.id', attrs(click.attributes)['fp.affiliate.id']],
										 ['log fp.affiliate.id', attrs(tracked.attributes)['fp.affiliate.id']]])
				if (value !== affiliate)
					throw new Error(`${what}: ${JSON.stringify(value)} != ${JSON.stringify(affiliate)}`);
			if (failed.status.message !== 'unknown currency code "É"')
				throw new Error(`status message ${JSON.stringify(failed.status.message)}`);
			if (failedLog.body.stringValue !== 'command failed: unknown currency code "É"')
				throw new Error(`log body ${JSON.stringify(failedLog.body)}`);
			console.log(`PASS ${name}`);
		} catch (e) {
			failures++;
			console.log(`FAIL ${name}: ${e.message}`);
		}
	}
	rcv.stop();
	process.exit(Math.min(failures, 100));
}

main().catch((e) => {
	console.log(`FAIL latin1_e2e: ${e.message}`);
	process.exit(1);
});
