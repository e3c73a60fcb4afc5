/*
 * harness.js
 *	  What the end-to-end test scripts share on the database side: psql
 *	  queries, exporter settings through ALTER SYSTEM and a reload, a
 *	  signal's row of attribution.exporter_status, and test(), which prints
 *	  "PASS <name>" or "FAIL <name>: <why>" and counts the failures.
 *	  PGHOST/PGPORT come from cluster.sh.
 */
'use strict';

const { execFileSync } = require('node:child_process');

const results = { failures: 0 };

function sql(query) {
	return execFileSync('psql', ['-XAtq', '-v', 'ON_ERROR_STOP=1', '-c', query],
						{ encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/* ALTER SYSTEM SET fp_attribution.<k> = '<v>' for each pair, then reload */
function configure(settings) {
	for (const [k, v] of Object.entries(settings))
		sql(`ALTER SYSTEM SET fp_attribution.${k} = '${v}'`);
	sql('SELECT pg_reload_conf()');
}

function status(signal) {
	const row = sql(`SELECT sent, failed, retried, dropped, rejected, coalesce(last_error, '') FROM attribution.exporter_status WHERE signal = '${signal}'`).split('|');

	return { sent: +row[0], failed: +row[1], retried: +row[2], dropped: +row[3], rejected: +row[4], lastError: row[5] };
}

/* Run one test unless E2E_ONLY (a regular expression) leaves it out */
async function test(name, fn) {
	if (process.env.E2E_ONLY && !new RegExp(process.env.E2E_ONLY).test(name))
		return;
	try {
		await fn();
		console.log(`PASS ${name}`);
	} catch (e) {
		results.failures++;
		console.log(`FAIL ${name}: ${e.message}`);
	}
}

module.exports = { sql, configure, status, test, results };
