/*
 * exported_spans.js
 *	  The coordinator's span of a delegated command call, as the nodes
 *	  export it: every node of the cluster exports to the test receiver
 *	  (test/otlp_receiver, which decodes with the official OTLP schema),
 *	  each under a service name of its own, and the spans of one trace
 *	  must chain caller -> coordinator (client) -> worker (server), the
 *	  coordinator's span exported by the coordinator and the worker's by
 *	  the worker holding the advertiser; a command that fails on the worker
 *	  ends both with status ERROR.  Run by tests.sh inside cluster.sh (PG*
 *	  point at the coordinator); prints one PASS/FAIL line per check.
 */
'use strict';

const { execFileSync } = require('node:child_process');
const { startReceiver, waitFor, attrs } = require('../otlp_receiver/client.js');

const SPAN_KIND_SERVER = 2;
const SPAN_KIND_CLIENT = 3;
const STATUS_ERROR = 2;

const nodes = {
	coordinator: process.env.PGPORT,
	worker1: process.env.CITUS_WORKER1_PORT,
	worker2: process.env.CITUS_WORKER2_PORT,
};
let status = 0;

function psql(port, query) {
	return execFileSync('psql', ['-XAtq', '-v', 'ON_ERROR_STOP=1', '-p', String(port), '-c', query],
						{ encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

function check(name, expected, actual) {
	const e = JSON.stringify(expected);
	const a = JSON.stringify(actual);

	if (e === a)
		console.log(`PASS citus: exported spans: ${name}`);
	else {
		console.log(`FAIL citus: exported spans: ${name}: expected ${e}, got ${a}`);
		status = 1;
	}
}

/* Every span received, with the service.name of the node that sent it */
function spansOf(dump) {
	return dump.received.traces.flatMap((r) => (r.request.resourceSpans || []).flatMap((rs) => {
		const service = attrs(rs.resource && rs.resource.attributes)['service.name'];

		return (rs.scopeSpans || []).flatMap((ss) => (ss.spans || []).map((s) => ({ ...s, service })));
	}));
}

/* The client and server spans of trace, once both nodes have sent them */
async function chain(rcv, trace) {
	return waitFor(`the spans of trace ${trace}`, async () => {
		const spans = spansOf(await rcv.dump()).filter((s) => s.traceId === trace);
		const client = spans.filter((s) => s.kind === SPAN_KIND_CLIENT);
		const server = spans.filter((s) => s.kind === SPAN_KIND_SERVER);

		return client.length > 0 && server.length > 0 ? { client, server } : null;
	});
}

/* What the checks compare of a span */
function summary(s) {
	const a = attrs(s.attributes);

	return {
		service: s.service, name: s.name, parent: s.parentSpanId || '',
		outcome: a['fp.command.outcome'], source: a['fp.trace.source'],
		error: (s.status && s.status.code) === STATUS_ERROR,
	};
}

function configure(settings) {
	for (const [node, port] of Object.entries(nodes)) {
		for (const [k, v] of Object.entries(settings(node)))
			psql(port, v === null ? `ALTER SYSTEM RESET fp_attribution.${k}` :
				 `ALTER SYSTEM SET fp_attribution.${k} = '${v}'`);
		psql(port, 'SELECT pg_reload_conf()');
	}
}

(async () => {
	const rcv = await startReceiver();
	const worker = Object.keys(nodes).find((n) => nodes[n] === psql(nodes.coordinator, `
		SELECT nodeport FROM pg_catalog.pg_dist_placement p JOIN pg_catalog.pg_dist_node n USING (groupid)
		 WHERE p.shardid = pg_catalog.get_shard_id_for_distribution_column('attribution.clicks', 'adv-trace')`));
	const caller = '00f067aa0ba90230';
	const settings = ['otlp_endpoint', 'otlp_service_name', 'otlp_schedule_delay'];

	try {
		configure((node) => ({
			otlp_endpoint: `http://127.0.0.1:${rcv.http}`,
			otlp_service_name: `fp-${node}`,
			otlp_schedule_delay: 100,
		}));

		/* a delegated call with a SQLCommenter comment */
		const ok = '4bf92f3577b34da6a3ce929d0e0e4730';

		psql(nodes.coordinator, `SELECT 1 FROM attribution.track_click('aff', advertiser_id => 'adv-trace')
								 /*traceparent='00-${ok}-${caller}-01'*/`);
		let c = await chain(rcv, ok);

		check('coordinator span, child of the caller', [{
			service: 'fp-coordinator', name: 'attribution.track_click', parent: caller,
			outcome: 'forwarded', source: 'sqlcommenter', error: false,
		}], c.client.map(summary));
		check('worker span, child of the coordinator span', [{
			service: `fp-${worker}`, name: 'attribution.track_click', parent: c.client[0].spanId,
			outcome: 'created', source: 'argument', error: false,
		}], c.server.map(summary));

		/* the command fails on the worker: both spans end with an error */
		const bad = '4bf92f3577b34da6a3ce929d0e0e4731';

		try {
			psql(nodes.coordinator, `SELECT 1 FROM attribution.track_click(' ', advertiser_id => 'adv-trace',
									 traceparent => '00-${bad}-${caller}-01')`);
		} catch (e) {
			/* expected: affiliate_id must not be empty */
		}
		c = await chain(rcv, bad);
		check('failing command: coordinator span', [{
			service: 'fp-coordinator', name: 'attribution.track_click', parent: caller,
			outcome: 'failed', source: 'argument', error: true,
		}], c.client.map(summary));
		check('failing command: its exception event', ['exception 22023'],
			  c.client.flatMap((s) => (s.events || []).map((e) => `${e.name} ${attrs(e.attributes)['exception.type']}`)));
		check('failing command: worker span', [{
			service: `fp-${worker}`, name: 'attribution.track_click', parent: c.client[0].spanId,
			outcome: 'failed', source: 'argument', error: true,
		}], c.server.map(summary));
	} catch (e) {
		console.log(`FAIL citus: exported spans: ${e.message}`);
		status = 1;
	} finally {
		configure(() => Object.fromEntries(settings.map((k) => [k, null])));
		await rcv.stop();
	}
	process.exit(status);
})();
