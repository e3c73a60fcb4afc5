// An affiliate's postback endpoint, for test/t/020_postbacks.pl and
// test/bench/postbacks.sh.  Usage: node postback_receiver.js SECRETS [PORT]
// (SECRETS: one or more separated by spaces; PORT default: any free port).  Prints "ready PORT" once listening on
// 127.0.0.1.
//
// Every request outside /control is recorded (method, path and query,
// the postback headers, body, whether its signature verified) and
// answered by its first path segment:
//   /ok/...        200
//   /script/NAME   the next scripted answer for NAME (POST
//                  /control/script?name=NAME&answers=503,429:1,200 queues
//                  them; "429:1" adds "Retry-After: 1"), 200 once none is left
//   /held/NAME     no answer while NAME is held (POST /control/hold?name=NAME),
//                  then 200 (POST /control/release?name=NAME answers those waiting)
//   /hang/...      never answers
// GET /control/requests returns the records as JSON; GET /control/open the
// number of requests waiting for an answer; GET /control/count the number
// of requests recorded (cheap, for the benchmark).
//
// Signatures ("X-Fp-Signature: t=<unix>,v1=<hex>") are checked with this
// file's own HMAC-SHA256 over "<t>.<body>" for POST, "<t>.<path and query>"
// for GET, compared in constant time, with each secret in turn: the record
// says whether one verified it, and which (signature_key, from 0).
'use strict';
const http = require('http');
const crypto = require('crypto');

const secrets = (process.argv[2] || '').split(' ');
const port = Number(process.argv[3] || 0);
const requests = [];
const scripts = {};
const held = {};			// name -> array of waiting responses, or absent
let open = 0;
let count = 0;
const record = process.env.RECORD !== '0';

// the index of the secret that verifies the header; -1: none; null: no header
function verify(header, message)
{
	if (!header)
		return null;
	const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
	if (!m)
		return -1;
	const got = Buffer.from(m[2], 'hex');
	return secrets.findIndex((secret) => {
		const want = crypto.createHmac('sha256', secret).update(m[1] + '.' + message).digest();
		return got.length === want.length && crypto.timingSafeEqual(got, want);
	});
}

function answer(res, status, headers)
{
	open--;
	res.writeHead(status, headers || {});
	res.end(status < 300 ? 'ok' : 'no');
}

http.createServer((req, res) => {
	const url = new URL(req.url, 'http://x');
	const chunks = [];
	req.on('data', (c) => chunks.push(c));
	req.on('end', () => {
		const body = Buffer.concat(chunks).toString();
		const parts = url.pathname.split('/');
		const name = url.searchParams.get('name');
		if (parts[1] === 'control') {
			if (parts[2] === 'requests')
				res.end(JSON.stringify(requests));
			else if (parts[2] === 'open')
				res.end(String(open));
			else if (parts[2] === 'count')
				res.end(String(count));
			else if (parts[2] === 'script') {
				scripts[name] = (scripts[name] || []).concat(url.searchParams.get('answers').split(','));
				res.end('ok');
			} else if (parts[2] === 'hold') {
				held[name] = held[name] || [];
				res.end('ok');
			} else if (parts[2] === 'release') {
				const waiting = held[name] || [];
				delete held[name];
				for (const w of waiting)
					if (!w.destroyed)
						answer(w, 200);
				res.end(String(waiting.length));
			} else {
				res.statusCode = 404;
				res.end();
			}
			return;
		}
		count++;
		open++;
		const message = req.method === 'POST' ? body : req.url;
		const key = verify(req.headers['x-fp-signature'], message);
		if (record)
			requests.push({
				time: Date.now(), method: req.method, url: req.url,
				idempotency_key: req.headers['idempotency-key'] || null,
				traceparent: req.headers['traceparent'] || null,
				event: req.headers['x-fp-event'] || null,
				signature_ok: key === null ? null : key >= 0,
				signature_key: key,
				body: body,
			});
		res.on('close', () => { if (!res.writableEnded) open--; });
		if (parts[1] === 'ok')
			answer(res, 200);
		else if (parts[1] === 'script') {
			const next = (scripts[parts[2]] || []).shift() || '200';
			const [status, retryAfter] = next.split(':');
			answer(res, Number(status), retryAfter ? {'Retry-After': retryAfter} : {});
		} else if (parts[1] === 'held') {
			if (held[parts[2]])
				held[parts[2]].push(res);
			else
				answer(res, 200);
		} else if (parts[1] === 'hang') {
			/* never answered */
		} else
			answer(res, 404);
	});
}).listen(port, '127.0.0.1', function () {
	console.log('ready ' + this.address().port);
});
