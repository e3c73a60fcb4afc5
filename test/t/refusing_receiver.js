// A collector that refuses on demand, for test/t/006_exporter_accounting.pl
// and 007_exporter_signal_settings.pl.
// Usage: node refusing_receiver.js [PORT] (default: any free port).  Answers 200 with an empty body
// (a valid empty Export*ServiceResponse in protobuf) unless a refusal is
// pending for the path: POST /refuse?status=503&n=1 makes the next n
// requests to each of /v1/traces and /v1/logs answer that status with
// "Retry-After: 3600".  A path starting with /hang/ is never answered.
// GET /count returns the requests answered, by path and status, as JSON;
// GET /requests every request's path, content-type, content-encoding and
// x-signal header, as a JSON list.  Prints "ready PORT" once listening on
// 127.0.0.1.
'use strict';
const http = require('http');

const port = Number(process.argv[2] || 0);
const refusals = {'/v1/traces': [], '/v1/logs': []};
const counts = {};
const requests = [];

http.createServer((req, res) => {
	const url = new URL(req.url, 'http://x');
	req.resume();
	req.on('end', () => {
		if (url.pathname === '/refuse') {
			const status = Number(url.searchParams.get('status'));
			for (let i = 0; i < Number(url.searchParams.get('n')); i++)
				for (const path of Object.keys(refusals))
					refusals[path].push(status);
			res.end('ok');
			return;
		}
		if (url.pathname === '/count') {
			res.end(JSON.stringify(counts));
			return;
		}
		if (url.pathname === '/requests') {
			res.end(JSON.stringify(requests));
			return;
		}
		requests.push({
			path: url.pathname,
			contentType: req.headers['content-type'],
			contentEncoding: req.headers['content-encoding'] || '',
			signal: req.headers['x-signal'] || '',
		});
		if (url.pathname.startsWith('/hang/'))
			return;
		const status = (refusals[url.pathname] || []).shift() || 200;
		const key = url.pathname + ' ' + status;
		counts[key] = (counts[key] || 0) + 1;
		if (status !== 200)
			res.setHeader('Retry-After', '3600');
		res.setHeader('Content-Type', 'application/x-protobuf');
		res.statusCode = status;
		res.end();
	});
}).listen(port, '127.0.0.1', function () {
	console.log(`ready ${this.address().port}`);
});
