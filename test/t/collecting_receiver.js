// A collector for OTLP/JSON that keeps what identifies each record, for
// test/t/030_exporter_workers.pl.  Usage: node collecting_receiver.js
// [PORT] (default: any free port).  POST /v1/traces and /v1/logs are
// parsed and answered 200 "{}"; /v1/metrics is answered without a look.
// GET /dump returns {"spans": [spanId...], "logs": count,
// "traceConnections": count of distinct client connections that sent
// traces}.  Prints "ready PORT" once listening on 127.0.0.1.
'use strict';
const http = require('http');

const port = Number(process.argv[2] || 0);
const spans = [];
let logs = 0;
const traceConnections = new Set();

http.createServer((req, res) => {
	const chunks = [];
	req.on('data', (c) => chunks.push(c));
	req.on('end', () => {
		if (req.url === '/dump') {
			res.end(JSON.stringify({spans, logs, traceConnections: traceConnections.size}));
			return;
		}
		const body = chunks.length ? JSON.parse(Buffer.concat(chunks)) : {};
		if (req.url === '/v1/traces') {
			traceConnections.add(req.socket.remotePort);
			for (const rs of body.resourceSpans || [])
				for (const ss of rs.scopeSpans || [])
					for (const s of ss.spans || [])
						spans.push(s.spanId);
		} else if (req.url === '/v1/logs') {
			for (const rl of body.resourceLogs || [])
				for (const sl of rl.scopeLogs || [])
					logs += (sl.logRecords || []).length;
		}
		res.setHeader('Content-Type', 'application/json');
		res.end('{}');
	});
}).listen(port, '127.0.0.1', function () {
	console.log(`ready ${this.address().port}`);
});
