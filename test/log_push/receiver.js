// Checkpoint receiver for test/log_push/run.sh: listens on 127.0.0.1 (an
// ephemeral port, printed on the first line of stdout), answers the first
// POST 503 with "Retry-After: 2" (so the pusher must retry, and wait), then
// checks each body as a c2sp.org/signed-note checkpoint against the
// verifier key in KEYFILE (`<name>+<hex key hash>+<base64(0x01 || Ed25519
// public key)>`, read at each request) with node's crypto: 200 when the
// signature verifies, 400 when not.  POSTs to /slow always get 503 with
// "Retry-After: 86400".  Appends one JSON line per request to OUTFILE,
// with its arrival time in ms.
// Usage: node receiver.js KEYFILE OUTFILE
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');

const [keyFile, outFile] = process.argv.slice(2);
let requests = 0;

// { ok, origin, size, why } for one note under one verifier key
function verifyNote(note, vkey) {
	// the base64 key may hold "+": split at the first two only
	const [name, hash] = vkey.trim().split('+', 2);
	const key64 = vkey.trim().slice(name.length + hash.length + 2);
	const raw = Buffer.from(key64, 'base64');
	if (raw.length !== 33 || raw[0] !== 1)
		return { ok: false, why: 'bad verifier key' };
	const expectHash = crypto.createHash('sha256')
		.update(Buffer.concat([Buffer.from(name + '\n'), raw])).digest().subarray(0, 4);
	if (expectHash.toString('hex') !== hash)
		return { ok: false, why: 'verifier key hash mismatch' };
	const split = note.lastIndexOf('\n\n');
	if (split < 0 || !note.endsWith('\n'))
		return { ok: false, why: 'not a signed note' };
	const text = note.slice(0, split + 1);
	const lines = text.split('\n');
	const result = { ok: false, origin: lines[0], size: Number(lines[1]) };
	const spki = crypto.createPublicKey({
		key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw.subarray(1)]),
		format: 'der', type: 'spki',
	});
	for (const line of note.slice(split + 2).split('\n')) {
		const m = /^\u2014 (\S+) (\S+)$/.exec(line);
		if (!m || m[1] !== name)
			continue;
		const sig = Buffer.from(m[2], 'base64');
		if (sig.length === 68 && sig.subarray(0, 4).equals(expectHash) &&
			crypto.verify(null, Buffer.from(text), spki, sig.subarray(4)))
			result.ok = true;
	}
	if (!result.ok)
		result.why = 'no valid signature by ' + name;
	return result;
}

const server = http.createServer((req, res) => {
	const chunks = [];
	req.on('data', (c) => chunks.push(c));
	req.on('end', () => {
		const note = Buffer.concat(chunks).toString('utf8');
		const line = { n: 0, method: req.method, path: req.url, t: Date.now(),
			type: req.headers['content-type'] || '',
			authorization: req.headers.authorization || '' };
		const headers = { 'content-type': 'text/plain' };
		if (req.url === '/slow') {
			line.status = 503;
			headers['retry-after'] = '86400';
		} else if (++requests === 1) {
			line.n = requests;
			line.status = 503;
			headers['retry-after'] = '2';
		} else {
			line.n = requests;
			Object.assign(line, verifyNote(note, fs.readFileSync(keyFile, 'utf8')));
			line.status = line.ok ? 200 : 400;
		}
		fs.appendFileSync(outFile, JSON.stringify(line) + '\n');
		res.writeHead(line.status, headers);
		res.end();
	});
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
