#!/usr/bin/env node
/*
 * receiver.js
 *	  A real OTLP receiver for fp_attribution's end-to-end tests.
 *
 * It decodes everything with the official OTLP schema as shipped, compiled,
 * in @opentelemetry/otlp-transformer (never with the project's own proto/),
 * so a wrong field number, type or JSON name in the exporter shows up as a
 * decoding failure or a missing value here.
 *
 * Listens on 127.0.0.1 only:
 *   HTTP/1.1 (--http-port): POST /v1/traces, /v1/metrics, /v1/logs with
 *     application/x-protobuf or application/json bodies, optionally gzip;
 *   HTTP/2 cleartext gRPC (--grpc-port): the three collector Export methods,
 *     5-byte length-prefixed messages, grpc-status trailers;
 *   control (on the HTTP port):
 *     GET  /control/dump     everything received, decoded, as JSON
 *     POST /control/script   {"signal": "traces"|"metrics"|"logs"|"any",
 *                             "status": 503, "retryAfter": 1, "times": 2,
 *                             "hang": false, "rejected": 0, "message": ""}
 *                            queue scripted answers (FIFO per signal)
 *     POST /control/reset    forget everything received and scripted
 *   TLS (with --tls-cert FILE --tls-key FILE): the same HTTP/1.1 and gRPC
 *     services, also over TLS on their own ports (https, grpcs); with
 *     --tls-client-ca FILE they require a client certificate signed by
 *     that CA (mutual TLS).  Each attempt records tls (true/false) and the
 *     client certificate's common name, if any; control stays on the plain
 *     HTTP port.
 * A script's "grpcStatus" overrides the gRPC code and "retryInfoMs" adds a
 * google.rpc.RetryInfo with that delay in the grpc-status-details-bin
 * trailer (built with protobufjs from the google.rpc definitions; base64
 * without padding unless "padded"); "detailsBin" sends that trailer as
 * given instead.
 * --discard: decode every request but keep only counts (for benchmarks).
 * Prints one JSON line {"http": port, "grpc": port} when ready, with
 * "https" and "grpcs" ports when TLS is on.
 */
'use strict';

const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const http2 = require('node:http2');
const zlib = require('node:zlib');
const protobuf = require('protobufjs');
const root = require('@opentelemetry/otlp-transformer/build/src/generated/root');

const collector = root.opentelemetry.proto.collector;
const SIGNALS = {
	traces: {
		req: collector.trace.v1.ExportTraceServiceRequest,
		res: collector.trace.v1.ExportTraceServiceResponse,
		rejectedField: 'rejectedSpans',
		grpcPath: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
	},
	metrics: {
		req: collector.metrics.v1.ExportMetricsServiceRequest,
		res: collector.metrics.v1.ExportMetricsServiceResponse,
		rejectedField: 'rejectedDataPoints',
		grpcPath: '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export',
	},
	logs: {
		req: collector.logs.v1.ExportLogsServiceRequest,
		res: collector.logs.v1.ExportLogsServiceResponse,
		rejectedField: 'rejectedLogRecords',
		grpcPath: '/opentelemetry.proto.collector.logs.v1.LogsService/Export',
	},
};
const DISCARD = process.argv.includes('--discard');
const ID_KEYS = new Set(['traceId', 'spanId', 'parentSpanId']);
const TO_OBJECT = { longs: String, enums: Number, bytes: String, defaults: false, arrays: true };

function arg(name, dflt) {
	const i = process.argv.indexOf(name);
	return i >= 0 ? process.argv[i + 1] : dflt;
}

let received;					/* signal -> list of decoded requests */
let attempts;					/* every request, answered or not */
let errors;						/* decoding failures */
let scripts;					/* signal -> queue of scripted answers */
let hanging;					/* requests never answered, ended on reset */

function reset() {
	for (const h of hanging || [])
		h();
	received = { traces: [], metrics: [], logs: [] };
	attempts = [];
	errors = [];
	scripts = { traces: [], metrics: [], logs: [], any: [] };
	hanging = [];
}
reset();

/* Rewrite id fields between base64 (protobufjs) and hex (OTLP JSON). */
function convertIds(obj, from, to) {
	if (Array.isArray(obj))
		return obj.map((v) => convertIds(v, from, to));
	if (obj === null || typeof obj !== 'object')
		return obj;
	const out = {};
	for (const [k, v] of Object.entries(obj))
		out[k] = ID_KEYS.has(k) && typeof v === 'string' ? Buffer.from(v, from).toString(to) : convertIds(v, from, to);
	return out;
}

function isDefault(v) {
	return v === 0 || v === '0' || v === '' || v === false || v === null ||
		(Array.isArray(v) && v.length === 0);
}

/*
 * OTLP/JSON strictness: every key the exporter sent must survive a round
 * trip through the official message type, so a misspelt or mis-cased field
 * name (which protobufjs would silently ignore) is an error.
 */
function checkSame(sent, back, path) {
	if (Array.isArray(sent)) {
		if (!Array.isArray(back) || back.length !== sent.length)
			throw new Error(`${path}: array length differs after decoding`);
		sent.forEach((v, i) => checkSame(v, back[i], `${path}[${i}]`));
		return;
	}
	if (sent !== null && typeof sent === 'object') {
		for (const [k, v] of Object.entries(sent)) {
			if (back === undefined || back === null || !(k in back)) {
				if (isDefault(v))
					continue;
				throw new Error(`${path}.${k}: unknown field or wrong type`);
			}
			checkSame(v, back[k], `${path}.${k}`);
		}
		return;
	}
	if (String(sent) !== String(back) && !(typeof sent === 'number' && Number(back) === sent))
		throw new Error(`${path}: sent ${JSON.stringify(sent)}, decoded ${JSON.stringify(back)}`);
}

function decode(signal, body, json) {
	const type = SIGNALS[signal].req;
	let msg;

	if (json) {
		const sent = JSON.parse(body.toString('utf8'));
		msg = type.fromObject(convertIds(sent, 'hex', 'base64'));
		checkSame(sent, convertIds(type.toObject(msg, TO_OBJECT), 'base64', 'hex'), signal);
	} else
		msg = type.decode(body);
	return convertIds(type.toObject(msg, TO_OBJECT), 'base64', 'hex');
}

/* The next scripted answer for a signal, if any; each is used "times" times. */
function takeScript(signal) {
	const q = scripts[signal].length ? scripts[signal] : scripts.any;
	const s = q[0];

	if (!s)
		return null;
	if (--s.times <= 0)
		q.shift();
	return s;
}

function responseBody(signal, script, json) {
	const def = SIGNALS[signal];
	const obj = {};

	if (script && (script.rejected || script.message))
		obj.partialSuccess = { [def.rejectedField]: script.rejected || 0, errorMessage: script.message || '' };
	if (json)
		return Buffer.from(JSON.stringify(obj));
	return Buffer.from(def.res.encode(def.res.fromObject(obj)).finish());
}

/* Whether a request came over TLS, and the client certificate's CN */
function tlsOf(socket) {
	const cert = socket.encrypted ? socket.getPeerCertificate() : null;

	return { tls: !!socket.encrypted, clientCN: cert && cert.subject ? cert.subject.CN : null };
}

/* Record one request; returns the script to answer it with. */
function handle(signal, protocol, headers, raw, gzipped, json, socket) {
	const attempt = { signal, protocol, time: Date.now(), gzip: gzipped, headers, ...tlsOf(socket) };
	const script = takeScript(signal);

	attempt.answer = script ? (script.hang ? 'hang' : script.status) : 200;
	attempts.push(attempt);
	if (script && (script.hang || script.status !== 200))
		return script;
	try {
		const body = gzipped ? zlib.gunzipSync(raw) : raw;

		if (DISCARD) {
			SIGNALS[signal].req.decode(body);
			received[signal].length++;
			attempts.pop();
			return script;
		}
		received[signal].push({ protocol, gzip: gzipped, headers, ...tlsOf(socket), request: decode(signal, body, json) });
	} catch (e) {
		errors.push({ signal, protocol, error: String(e && e.message || e) });
		attempt.answer = 400;
		return { status: 400, message: String(e && e.message || e) };
	}
	return script;
}

function readBody(stream, done) {
	const chunks = [];

	stream.on('data', (c) => chunks.push(c));
	stream.on('end', () => done(Buffer.concat(chunks)));
}

function control(req, res, body) {
	res.setHeader('content-type', 'application/json');
	if (req.url === '/control/dump') {
		res.end(JSON.stringify({ received, attempts, errors }));
	} else if (req.url === '/control/reset') {
		reset();
		res.end('{}');
	} else if (req.url === '/control/script') {
		const s = JSON.parse(body.toString() || '{}');

		s.signal = s.signal || 'any';
		s.times = s.times || 1;
		s.status = s.status || (s.hang ? 0 : 200);
		scripts[s.signal].push(s);
		res.end('{}');
	} else {
		res.statusCode = 404;
		res.end('{}');
	}
}

function onHttpRequest(req, res) {
	readBody(req, (raw) => {
		if (req.url.startsWith('/control/'))
			return control(req, res, raw);
		const signal = { '/v1/traces': 'traces', '/v1/metrics': 'metrics', '/v1/logs': 'logs' }[req.url];
		const ctype = String(req.headers['content-type'] || '');
		const json = ctype.startsWith('application/json');

		if (req.method !== 'POST' || !signal || !(json || ctype.startsWith('application/x-protobuf'))) {
			res.statusCode = signal ? 415 : 404;
			return res.end();
		}
		const script = handle(signal, json ? 'http/json' : 'http/protobuf', req.headers, raw,
							  req.headers['content-encoding'] === 'gzip', json, req.socket);

		if (script && script.hang) {
			hanging.push(() => res.destroy());
			return;
		}
		res.statusCode = script ? script.status : 200;
		if (script && script.retryAfter !== undefined)
			res.setHeader('retry-after', String(script.retryAfter));
		res.setHeader('content-type', json ? 'application/json' : 'application/x-protobuf');
		if (res.statusCode === 200)
			return res.end(responseBody(signal, script, json));
		res.end(script.message || 'scripted failure');
	});
}

/*
 * The google.rpc types of gRPC's rich error model, from their published
 * definitions (google/rpc/status.proto, error_details.proto and the
 * well-known Any and Duration).
 */
const rpc = protobuf.Root.fromJSON({
	nested: {
		Duration: { fields: { seconds: { type: 'int64', id: 1 }, nanos: { type: 'int32', id: 2 } } },
		Any: { fields: { type_url: { type: 'string', id: 1 }, value: { type: 'bytes', id: 2 } } },
		RetryInfo: { fields: { retry_delay: { type: 'Duration', id: 1 } } },
		ErrorInfo: { fields: { reason: { type: 'string', id: 1 }, domain: { type: 'string', id: 2 } } },
		Status: { fields: { code: { type: 'int32', id: 1 }, message: { type: 'string', id: 2 }, details: { rule: 'repeated', type: 'Any', id: 3 } } },
	},
});

/*
 * grpc-status-details-bin: a Status whose details hold an ErrorInfo, as
 * quota errors usually do (the client must skip it), then a RetryInfo
 */
function statusDetails(code, message, retryMs, padded) {
	const [Status, RetryInfo, ErrorInfo] = ['Status', 'RetryInfo', 'ErrorInfo'].map((t) => rpc.lookupType(t));
	const info = RetryInfo.encode(RetryInfo.create({
		retry_delay: { seconds: Math.floor(retryMs / 1000), nanos: (retryMs % 1000) * 1e6 },
	})).finish();
	const error = ErrorInfo.encode(ErrorInfo.create({ reason: 'RATE_LIMIT_EXCEEDED', domain: 'receiver.test' })).finish();
	const status = Status.encode(Status.create({
		code, message,
		details: [
			{ type_url: 'type.googleapis.com/google.rpc.ErrorInfo', value: error },
			{ type_url: 'type.googleapis.com/google.rpc.RetryInfo', value: info },
		],
	})).finish();

	/* binary metadata goes unpadded, as gRPC implementations send it */
	const b64 = Buffer.from(status).toString('base64');

	return padded ? b64 : b64.replace(/=+$/, '');
}

/* HTTP status of a script mapped to the gRPC status OTLP/gRPC would use */
const GRPC_OF_HTTP = { 200: 0, 400: 3, 429: 8, 502: 14, 503: 14, 504: 4 };

function onGrpcStream(stream, headers) {
	const signal = Object.keys(SIGNALS).find((s) => SIGNALS[s].grpcPath === headers[':path']);

	readBody(stream, (raw) => {
		if (!signal || raw.length < 5) {
			stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12' }, { endStream: true });
			return;
		}
		const compressed = raw[0] === 1;
		const len = raw.readUInt32BE(1);
		const hdrs = { ...headers };
		const script = handle(signal, 'grpc', hdrs, raw.subarray(5, 5 + len),
							  compressed && headers['grpc-encoding'] === 'gzip', false, stream.session.socket);

		if (script && script.hang) {
			hanging.push(() => stream.close(http2.constants.NGHTTP2_CANCEL));
			return;
		}
		const code = script ? (script.grpcStatus ?? GRPC_OF_HTTP[script.status] ?? 2) : 0;
		stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
		stream.on('wantTrailers', () => {
			const trailers = { 'grpc-status': String(code), 'grpc-message': encodeURIComponent(script && script.message || '') };

			if (script && script.detailsBin !== undefined)
				trailers['grpc-status-details-bin'] = script.detailsBin;
			else if (script && script.retryInfoMs !== undefined)
				trailers['grpc-status-details-bin'] = statusDetails(code, script.message || '', script.retryInfoMs,
																	!!script.padded);
			stream.sendTrailers(trailers);
		});
		if (code === 0) {
			const msg = responseBody(signal, script, false);
			const prefix = Buffer.alloc(5);

			prefix.writeUInt32BE(msg.length, 1);
			stream.end(Buffer.concat([prefix, msg]));
		} else
			stream.end();
	});
}

/* The TLS options of the https and grpcs servers, or null without TLS */
function tlsOptions() {
	const cert = arg('--tls-cert');
	const ca = arg('--tls-client-ca');

	if (!cert)
		return null;
	return {
		cert: fs.readFileSync(cert),
		key: fs.readFileSync(arg('--tls-key')),
		...(ca ? { ca: fs.readFileSync(ca), requestCert: true, rejectUnauthorized: true } : {}),
	};
}

const httpServer = http.createServer(onHttpRequest);
const grpcServer = http2.createServer();
const tls = tlsOptions();
const httpsServer = tls && https.createServer(tls, onHttpRequest);
const grpcsServer = tls && http2.createSecureServer({ ...tls, allowHTTP1: false });

grpcServer.on('stream', onGrpcStream);
grpcServer.on('sessionError', () => {});
if (tls) {
	grpcsServer.on('stream', onGrpcStream);
	grpcsServer.on('sessionError', () => {});
	/* a refused handshake (no or wrong client certificate) is expected */
	httpsServer.on('tlsClientError', () => {});
	grpcsServer.on('tlsClientError', () => {});
	httpsServer.keepAliveTimeout = 0;
}

/* Listen on 127.0.0.1, port from the option or a free one */
function listen(server, option) {
	return new Promise((resolve) => server.listen(Number(arg(option, 0)), '127.0.0.1', () => resolve(server.address().port)));
}

// Idle keep-alive connections stay open: with node's 5 s default, a test
// that pauses longer (20 psql clicks on a loaded machine) had fetch()
// reuse a connection the server was closing ("fetch failed").
httpServer.keepAliveTimeout = 0;
(async () => {
	const ports = { http: await listen(httpServer, '--http-port'), grpc: await listen(grpcServer, '--grpc-port') };

	if (tls) {
		ports.https = await listen(httpsServer, '--https-port');
		ports.grpcs = await listen(grpcsServer, '--grpcs-port');
	}
	process.stdout.write(JSON.stringify(ports) + '\n');
})();
