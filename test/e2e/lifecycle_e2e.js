#!/usr/bin/env node
/*
 * lifecycle_e2e.js
 *	  End-to-end test of the conversion lifecycle's metrics: the commands
 *	  run against a fresh server (cluster.sh), the exporter sends to the
 *	  official-schema receiver (test/otlp_receiver), and the decoded
 *	  counters must carry the values the commands imply:
 *	  affiliate.conversions.approved / .rejected / .reversed,
 *	  affiliate.refunds.cents and affiliate.commission.cents per currency,
 *	  affiliate.fraud_rule.hits per rule.  The receiver listens on
 *	  E2E_HTTP_PORT (default: any free port).
 *
 * Prints "PASS <name>" or "FAIL <name>: <why>"; every wait is bounded.
 * The exit status is the number of failures (capped).
 */
'use strict';

const path = require('node:path');
const { assert, waitFor, startReceiver, attrs } =
	require(path.join(__dirname, '..', 'otlp_receiver', 'client.js'));
const { sql, configure, test, results } = require('./harness.js');

/* The data points of a sum metric in a decoded request, or undefined */
function sumPoints(request, name) {
	for (const rm of request.resourceMetrics || [])
		for (const sm of rm.scopeMetrics || [])
			for (const m of sm.metrics || [])
				if (m.name === name)
					return m.sum;
	return undefined;
}

/* The value of the point of metric name whose attribute key is value */
function pointValue(request, name, key, value) {
	const sum = sumPoints(request, name);
	const p = sum && sum.dataPoints.find((d) => key === undefined || attrs(d.attributes)[key] === value);

	return p && Number(p.asInt);
}

async function main() {
	const rcv = await startReceiver({ http: Number(process.env.E2E_HTTP_PORT || 0) });

	// click_too_fast holds a conversion made within an hour of its click
	configure({ otlp_endpoint: `http://127.0.0.1:${rcv.http}`, fraud_min_click_age: '1h' });

	await test('lifecycle metrics: approved, rejected, reversed, refunds, commission and rule hits arrive with the commands\' values', async () => {
		sql(`INSERT INTO attribution.offers (offer_id, payout_type, payout, currency, hold_period) VALUES
				('e2e-cpa', 'cpa', 500, 'USD', '1 day'), ('e2e-rev', 'revshare', 1000, 'EUR', '1 day')`);
		// three clicks two hours ago, one just now
		for (const [i, offer] of [[1, 'e2e-cpa'], [2, 'e2e-cpa'], [3, 'e2e-rev']])
			sql(`SELECT 1 FROM attribution.track_click('aff-lc', offer_id => '${offer}',
					click_id => 'e2e00000-0000-4000-8000-00000000000${i}', clicked_at => now() - interval '2 hours')`);
		sql(`SELECT 1 FROM attribution.track_click('aff-lc', offer_id => 'e2e-cpa',
				click_id => 'e2e00000-0000-4000-8000-000000000004')`);
		// commission: 500 + 500 USD (cpa), 10 % of 8000 EUR = 800, and 500 USD
		// for the conversion held by the rule
		sql(`SELECT 1 FROM attribution.track_conversion('lc-1', 1000, 'USD', click_id => 'e2e00000-0000-4000-8000-000000000001')`);
		sql(`SELECT 1 FROM attribution.track_conversion('lc-2', 2000, 'USD', click_id => 'e2e00000-0000-4000-8000-000000000002')`);
		sql(`SELECT 1 FROM attribution.track_conversion('lc-3', 8000, 'EUR', click_id => 'e2e00000-0000-4000-8000-000000000003')`);
		sql(`SELECT 1 FROM attribution.track_conversion('lc-4', 3000, 'USD', click_id => 'e2e00000-0000-4000-8000-000000000004')`);
		assert(sql("SELECT review_reason FROM attribution.conversions WHERE order_id = 'lc-4'") === 'click_too_fast',
			   'lc-4 not held by click_too_fast');
		// approve two, reject one, refund 300 USD and 2000 EUR, reverse one;
		// a rolled-back approval counts nothing
		sql("SELECT 1 FROM attribution.approve_conversion('lc-1')");
		sql("SELECT 1 FROM attribution.approve_conversion('lc-3')");
		sql("SELECT 1 FROM attribution.reject_conversion('lc-4', 'default', 'fraud')");
		sql("SELECT 1 FROM attribution.refund_conversion('lc-1', 'default', 300)");
		sql("SELECT 1 FROM attribution.refund_conversion('lc-3', 'default', 2000)");
		sql("SELECT 1 FROM attribution.reverse_conversion('lc-1')");
		sql("BEGIN; SELECT 1 FROM attribution.approve_conversion('lc-2'); ROLLBACK;");

		const want = {
			'affiliate.conversions.approved': 2,
			'affiliate.conversions.rejected': 1,
			'affiliate.conversions.reversed': 1,
		};
		const perCurrency = {
			'affiliate.refunds.cents': { USD: 300, EUR: 2000 },
			'affiliate.commission.cents': { USD: 1500, EUR: 800 },
		};
		const req = await waitFor('a metrics export with the lifecycle counters', async () => {
			const d = await rcv.dump();

			return d.received.metrics.slice().reverse().find((r) =>
				pointValue(r.request, 'affiliate.conversions.reversed') === 1 &&
				pointValue(r.request, 'affiliate.refunds.cents', 'currency', 'EUR') === 2000);
		}, 30000);

		for (const [name, v] of Object.entries(want))
		{
			const sum = sumPoints(req.request, name);

			assert(sum && sum.isMonotonic === true && sum.aggregationTemporality === 2,
				   `${name}: not a cumulative monotonic sum`);
			assert(pointValue(req.request, name) === v, `${name} = ${pointValue(req.request, name)}, want ${v}`);
		}
		for (const [name, byCurrency] of Object.entries(perCurrency))
			for (const [currency, v] of Object.entries(byCurrency))
				assert(pointValue(req.request, name, 'currency', currency) === v,
					   `${name}{currency=${currency}} = ${pointValue(req.request, name, 'currency', currency)}, want ${v}`);
		assert(pointValue(req.request, 'affiliate.fraud_rule.hits', 'fp.rule', 'click_too_fast') === 1,
			   `affiliate.fraud_rule.hits{fp.rule=click_too_fast} = ${pointValue(req.request, 'affiliate.fraud_rule.hits', 'fp.rule', 'click_too_fast')}, want 1`);
		// and what was exported is what attribution.metrics shows
		const inSql = sql(`SELECT string_agg(name || coalesce(attributes ->> 'currency', '') || '=' || value, ' ' ORDER BY name, attributes::text)
							 FROM attribution.metrics WHERE name IN ('affiliate.conversions.approved', 'affiliate.commission.cents')`);
		assert(inSql === 'affiliate.commission.centsEUR=800 affiliate.commission.centsUSD=1500 affiliate.conversions.approved=2',
			   `attribution.metrics: ${inSql}`);
	});

	await rcv.stop();
	process.exit(Math.min(results.failures, 100));
}

main().catch((e) => {
	console.log(`FAIL lifecycle_e2e: ${e.stack}`);
	process.exit(1);
});
