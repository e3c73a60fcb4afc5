// Property test of attribution.canonical_json against canonicalize, the
// reference RFC 8785 implementation for JavaScript.
//
//   node prop.mjs gen DIR [SEED]  writes DIR/cases.txt ("id\x02json" lines)
//                                 and DIR/expected.json
//   node prop.mjs check DIR       compares DIR/actual.txt ("id\x02result")
//                                 with the expectation, prints mismatches
//
// Every case is a JSON text as an application could send it (RFC 8785 form
// or not: long integers, trailing zeros, upper-case exponents, \u escapes)
// and the expectation is canonicalize(JSON.parse(text)).  Inputs that
// jsonb cannot store by design (\u0000, lone surrogates) or that have no
// double (beyond 1.8e308) are not generated.  The generator is seeded, so
// a failure is reproducible with the seed it prints.
import { readFileSync, writeFileSync } from 'node:fs';
import canonicalize from 'canonicalize';

const SEP = '\x02';
const [mode, dir, seedArg] = process.argv.slice(2);

// xorshift128+: deterministic for a given seed
let s0 = 0x9e3779b97f4a7c15n, s1 = BigInt(seedArg ?? 1) | 1n;
const M64 = (1n << 64n) - 1n;
function next64() {
  let x = s0; const y = s1;
  s0 = y; x ^= (x << 23n) & M64; x ^= x >> 17n; x ^= y ^ (y >> 26n); s1 = x;
  return (s0 + s1) & M64;
}
const rnd = () => Number(next64() >> 11n) / 2 ** 53;
const int = (n) => Math.floor(rnd() * n);
const pick = (a) => a[int(a.length)];

const view = new DataView(new ArrayBuffer(8));
// any finite double, every exponent equally likely (subnormals included)
function anyDouble() {
  for (;;) {
    view.setBigUint64(0, next64());
    const d = view.getFloat64(0);
    if (Number.isFinite(d)) return d;
  }
}
// an integer-valued double of random magnitude up to the largest double
function anyInteger() {
  const e = int(1024);
  const x = Math.trunc(rnd() * 2 ** e);
  return rnd() < 0.5 ? -x : x;
}
const digits = (n) => Array.from({ length: n }, () => int(10)).join('');

// How a number may be written in JSON text
function anyNumberText() {
  switch (int(12)) {
    case 0: return String(anyInteger());                       // RFC 8785 form
    case 1: {                                                   // all digits
      const x = anyInteger();
      return BigInt(x).toString();
    }
    case 2: return String(anyDouble());                        // RFC 8785 form
    case 3: return String(rnd() * 10 ** (int(40) - 20));       // fractions
    case 4: {                                                   // toExponential
      const t = anyDouble().toExponential(int(20));
      return rnd() < 0.5 ? t.replace('e', 'E') : t.replace('e+', 'e');
    }
    case 5: return anyDouble().toPrecision(1 + int(21));      // trailing zeros
    case 6: {                                                   // decimal digits beyond precision
      const t = (rnd() < 0.3 ? '-' : '') + (1 + int(9)) + digits(int(30));
      return int(2) ? t : t.slice(0, 1 + int(t.length - 1)).replace(/^-$/, '-1') + '.' + digits(1 + int(20));
    }
    case 7: return `${1 + int(9)}${int(2) ? '.' + digits(1 + int(17)) : ''}e${int(2) ? '-' : '+'}${int(330)}`;
    case 8: return pick(['-0', '-0.0', '0', '0.0', '-0e5', '0E-7', '-0.000e+00']); // (negative) zero
    case 9: return pick(['5e-324', '-5e-324', '2.2250738585072014e-308', '2.225073858507201e-308',
      '1.7976931348623157e308', '-1.7976931348623157e+308', '9007199254740992', '9007199254740993',
      '9007199254740991', '1e21', '1e+21', '999999999999999900000', '9.999999999999999e20',
      '100000000000000000000', '1e-6', '0.000001', '1e-7', '0.0000001', '1.5e-7', '123e-20',
      '40407023462466896', '295147905179352825856', '0.1', '0.3', '1e308',
      '4.35', '0.000001234', '1.0000000000000002', '9.007199254740993e15']);
    case 10: return String(int(2 ** 31) * (int(2) ? 1 : -1));   // small integers
    default: return String(int(1e6) / 10 ** int(8));           // short decimals
  }
}

// ... as long as it has a double (not beyond 1.8e308)
function numberText() {
  for (;;) {
    const t = anyNumberText();
    if (Number.isFinite(JSON.parse(t))) return t;
  }
}

// A code point from every plane, escapes and control characters included;
// never U+0000 or a lone surrogate (jsonb refuses both)
function codePoint() {
  switch (int(10)) {
    case 0: return 1 + int(0x1f);                               // control
    case 1: return pick([0x22, 0x5c, 0x2f, 0x7f, 0x2028, 0x2029, 0xfeff, 0xfffe, 0xffff, 0x10ffff, 0xe000]);
    case 2: case 3: return 0x20 + int(0x5f);                    // ASCII
    case 4: return 0x80 + int(0x780);                           // 2-byte UTF-8
    case 5: { const c = 0x800 + int(0xf800); return c >= 0xd800 && c <= 0xdfff ? c + 0x800 : c; }
    case 6: return 0x10000 + int(0x10000);                      // plane 1
    case 7: return 0x20000 + int(0xe0000);                      // planes 2-15
    case 8: return 0x100000 + int(0x10000);                     // plane 16
    default: return 0xe000 + int(0x2000);                       // sorts above astral in UTF-8, below in UTF-16
  }
}
function randomString(max) {
  let s = '';
  for (let n = int(max + 1); n > 0; n--) s += String.fromCodePoint(codePoint());
  return s;
}
const hex4 = (u) => { const h = u.toString(16).padStart(4, '0'); return int(2) ? h : h.toUpperCase(); };
// JSON text of a string, each character literal or escaped at random
function stringText(s) {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0);
    const must = cp < 0x20 || ch === '"' || ch === '\\';
    if (!must && int(4)) { out += ch; continue; }
    if (int(2)) {
      const short = { '"': '\\"', '\\': '\\\\', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t', '/': '\\/' }[ch];
      if (short) { out += short; continue; }
      if (!must && int(2)) { out += ch; continue; }
    }
    for (let i = 0; i < ch.length; i++) out += '\\u' + hex4(ch.charCodeAt(i));
  }
  return out + '"';
}
function valueText(depth) {
  const k = depth > 0 ? int(10) : 4 + int(6);
  if (k < 2) {
    const n = int(7), keys = new Set();
    const members = [];
    while (members.length < n) {
      const key = randomString(4);
      if (keys.has(key)) continue;
      keys.add(key);
      members.push(stringText(key) + ':' + valueText(depth - 1));
    }
    return '{' + members.join(pick([',', ' , ', ',  '])) + '}';
  }
  if (k < 4) return '[' + Array.from({ length: int(7) }, () => valueText(depth - 1)).join(',') + ']';
  if (k < 6) return numberText();
  if (k < 8) return stringText(randomString(8));
  return pick(['true', 'false', 'null']);
}

function generate() {
  const cases = [];
  for (let i = 0; i < 110000; i++) cases.push(numberText());
  for (let i = 0; i < 30000; i++) cases.push(stringText(randomString(40)));
  for (let i = 0; i < 10000; i++) cases.push(valueText(1 + int(6)));
  const lines = [], expected = [];
  let numbers = 0;
  for (const text of cases) {
    const v = JSON.parse(text);
    if (typeof v === 'number') numbers++;
    lines.push(lines.length + SEP + text);
    expected.push(canonicalize(v));
  }
  writeFileSync(`${dir}/cases.txt`, lines.join('\n') + '\n');
  writeFileSync(`${dir}/expected.json`, JSON.stringify(expected));
  console.log(`generated ${lines.length} documents (${numbers} bare numbers), seed ${seedArg ?? 1}`);
}

function check() {
  const expected = JSON.parse(readFileSync(`${dir}/expected.json`, 'utf8'));
  const inputs = readFileSync(`${dir}/cases.txt`, 'utf8').split('\n');
  const actual = new Map();
  for (const line of readFileSync(`${dir}/actual.txt`, 'utf8').split('\n')) {
    if (line === '') continue;
    const at = line.indexOf(SEP);
    actual.set(Number(line.slice(0, at)), line.slice(at + 1));
  }
  let bad = 0;
  expected.forEach((want, id) => {
    const got = actual.get(id);
    if (got === want) return;
    if (bad++ < 20) {
      const input = inputs[id].slice(inputs[id].indexOf(SEP) + 1);
      console.log(`mismatch ${id}: input ${JSON.stringify(input).slice(0, 200)}\n  expected ${JSON.stringify(want).slice(0, 200)}\n  got      ${JSON.stringify(got).slice(0, 200)}`);
    }
  });
  console.log(`${expected.length} documents, ${bad} mismatches`);
  process.exit(bad === 0 ? 0 : 1);
}

if (mode === 'gen') generate(); else if (mode === 'check') check();
else { console.error('usage: node prop.mjs gen|check DIR [SEED]'); process.exit(2); }
