// A collector that reads and discards, for the export benchmarks: the
// cost measured is the exporter's, not a decoder's.
// Usage: node discard_receiver.js [HTTP_PORT GRPC_PORT] (on 127.0.0.1;
// ephemeral ports when left out or 0).  The HTTP/1.1 benchmarks use the
// faster discard_receiver.c instead (see discard_receiver.sh).
//   HTTP/1.1: any POST is read and answered 200 with an empty body (a
//     valid empty Export*ServiceResponse in protobuf; "{}" for JSON);
//   HTTP/2 cleartext gRPC: answered with an empty length-prefixed message
//     and grpc-status 0.
// Prints "ready HTTP_PORT GRPC_PORT" once both listen.
'use strict';
const http = require('node:http');
const http2 = require('node:http2');

let listening = 0;
const ready = () => {
	if (++listening === 2)
		console.log(`ready ${h1.address().port} ${h2.address().port}`);
};

const h1 = http.createServer((req, res) => {
	req.resume();
	req.on('end', () => {
		const json = (req.headers['content-type'] || '').includes('json');
		res.writeHead(200, {'Content-Type': json ? 'application/json' : 'application/x-protobuf'});
		res.end(json ? '{}' : '');
	});
}).listen(Number(process.argv[2] || 0), '127.0.0.1', ready);

const h2 = http2.createServer().on('stream', (stream) => {
	stream.resume();
	stream.on('end', () => {
		stream.respond({':status': 200, 'content-type': 'application/grpc'},
			{waitForTrailers: true});
		stream.on('wantTrailers', () => stream.sendTrailers({'grpc-status': '0'}));
		stream.end(Buffer.alloc(5));
	});
}).listen(Number(process.argv[3] || 0), '127.0.0.1', ready);
