// Verify an fp_attribution receipt export without PostgreSQL.
//
//   node verify.mjs receipts.jsonl trusted_keys_dir [--require-signatures]
//
// receipts.jsonl: one attribution.receipt_export line per receipt.
// trusted_keys_dir: <key_id>.pem public keys the auditor trusts (exported
// from attribution.signing_keys and pinned out of band).
//
// Checks, per receipt: payload_hash = SHA-256(JCS(payload)); receipt_hash =
// SHA-256(JCS(envelope)); sequence contiguous from 1 per chain, that is
// per (advertiser_id, aggregate_type, aggregate_id);
// prev_hash = previous receipt_hash (64 zeros first); Ed25519 signature of
// the 32 receipt_hash bytes by the trusted key named by key_id.  Prints one
// FAIL line per bad receipt and exits 1 if there is any.
import { createHash, createPublicKey, verify } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import canonicalize from 'canonicalize';

const [file, keysDir, flag] = process.argv.slice(2);
if (!file || !keysDir) {
	console.error('usage: node verify.mjs receipts.jsonl trusted_keys_dir [--require-signatures]');
	process.exit(2);
}
const requireSignatures = flag === '--require-signatures';
const sha256 = (text) => createHash('sha256').update(text, 'utf8').digest('hex');
const ZERO = '0'.repeat(64);

// JSON.parse turns numbers into doubles, exactly as JCS expects; the
// database refuses numbers that would not survive that.
const chains = new Map();
for (const line of readFileSync(file, 'utf8').split('\n')) {
	if (line.trim() === '') continue;
	const r = JSON.parse(line);
	const key = JSON.stringify([r.advertiser_id, r.aggregate_type, r.aggregate_id]);
	if (!chains.has(key)) chains.set(key, []);
	chains.get(key).push(r);
}

function check(r, expectedSequence, expectedPrev) {
	if (sha256(canonicalize(r.payload)) !== r.payload_hash) return 'payload_hash';
	const envelope = {
		advertiser_id: r.advertiser_id, aggregate_id: r.aggregate_id, aggregate_type: r.aggregate_type,
		causation_id: r.causation_id, correlation_id: r.correlation_id,
		key_id: r.key_id, payload_hash: r.payload_hash, prev_hash: r.prev_hash,
		receipt_id: r.receipt_id, sequence: r.sequence, span_id: r.span_id,
		timestamp: r.timestamp, trace_id: r.trace_id, version: 1,
	};
	if (sha256(canonicalize(envelope)) !== r.receipt_hash) return 'receipt_hash';
	if (r.sequence !== expectedSequence) return 'sequence';
	if (r.prev_hash !== expectedPrev) return 'prev_hash';
	if (r.key_id === null) return r.signature === null && !requireSignatures ? null : 'signature';
	const pem = join(keysDir, `${r.key_id}.pem`);
	if (!/^[0-9a-f]{16}$/.test(r.key_id) || !existsSync(pem)) return 'unknown_key';
	const ok = r.signature !== null && verify(null, Buffer.from(r.receipt_hash, 'hex'),
		createPublicKey(readFileSync(pem)), Buffer.from(r.signature, 'hex'));
	return ok ? null : 'signature';
}

let receipts = 0;
let failures = 0;
for (const chain of chains.values()) {
	chain.sort((a, b) => a.sequence - b.sequence);
	let sequence = 1;
	let prev = ZERO;
	for (const r of chain) {
		receipts++;
		const failed = check(r, sequence, prev);
		if (failed) {
			failures++;
			console.log(`FAIL ${r.advertiser_id} ${r.aggregate_type} ${r.aggregate_id} sequence ${r.sequence} receipt ${r.receipt_id}: ${failed}`);
		}
		sequence = r.sequence + 1;
		prev = r.receipt_hash;
	}
}
console.log(`${receipts} receipts in ${chains.size} chains, ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);
