// A second implementation of Parley's name rule and room derivations,
// written from docs/PROTOCOL.md in plain Node.js (no packages), checked
// against docs/vectors. Run: node vectors.mjs DIR. It prints one line per
// group and a closing "N passed, N failed" line; it exits 1 on a failure.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash, hkdfSync } from 'node:crypto';

const dir = process.argv[2];
const load = (name) => JSON.parse(readFileSync(join(dir, name), 'utf8'));
const casefold = load('casefold.json');
const names = load('names.json');
const rooms = load('rooms.json');

// toCasefold: the full mappings of CaseFolding.txt, from the vector table
// (JavaScript has no case folding of its own; toLowerCase is not it).
const fold = new Map(Object.entries(casefold.mappings).map(([k, v]) =>
  [parseInt(k, 16), String.fromCodePoint(...v.split(' ').map((h) => parseInt(h, 16)))]));
const toCasefold = (s) => Array.from(s, (c) => fold.get(c.codePointAt(0)) ?? c).join('');
const nameKey = (s) => toCasefold(s.normalize('NFKC')).normalize('NFC');
const nickKey = (s) => nameKey(s).split(' ').filter((w) => w !== '').join(' ');

// Room name validity (rooms §2), with this runtime's Unicode data.
const nameRe = /^[\p{L}\p{Nd}][\p{L}\p{Nd}\p{Mn}\p{Mc}\-_.]*$/u;
const refused = /\p{Default_Ignorable_Code_Point}/u;
function canonicalName(s) {
  const n = nameKey(s);
  const chars = Array.from(n).length;
  if (chars < 1 || chars > 32 || Buffer.byteLength(n) > 128 || !nameRe.test(n) || refused.test(n)) return null;
  return n;
}
// Nick validity (rooms §3): General_Category L, M, N, P, S or U+0020.
const nickRe = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]+$/u;
const validNick = (s) => s.length > 0 && Array.from(s).length <= 32 && nickRe.test(s) && s.trim() === s && !s.startsWith(' ') && !s.endsWith(' ');

const hkdf = (key, info, len) => Buffer.from(hkdfSync('sha256', key, Buffer.from('parley/room/1'), info, len)).toString('hex');
const nul = Buffer.from([0]);

function invite(key, name) {
  const n = Buffer.from(name);
  const body = Buffer.concat([Buffer.from([1]), key, Buffer.from([n.length]), n]);
  const check = createHash('sha256').update(Buffer.concat([Buffer.from('parley-invite-v1'), nul, body])).digest().subarray(0, 4);
  return 'parley-invite:' + Buffer.concat([body, check]).toString('base64url');
}

// Minimal protobuf writer for Envelope (rooms §3).
const varint = (n) => { const out = []; let v = BigInt(n); do { let b = Number(v & 0x7fn); v >>= 7n; if (v) b |= 0x80; out.push(b); } while (v); return Buffer.from(out); };
const field = (num, wt, payload) => Buffer.concat([varint((num << 3) | wt), payload]);
const lenField = (num, b) => field(num, 2, Buffer.concat([varint(b.length), b]));
function envelope(v) {
  const parts = [field(1, 0, varint(v.kind)), lenField(2, Buffer.from(v.id_hex, 'hex'))];
  if (v.nick) parts.push(lenField(3, Buffer.from(v.nick)));
  if (v.sent_at_ms) parts.push(field(4, 0, varint(v.sent_at_ms)));
  if (v.text) parts.push(lenField(5, Buffer.from(v.text)));
  if (v.leaving) parts.push(lenField(6, field(1, 0, varint(1))));
  return Buffer.concat(parts).toString('hex');
}

let passed = 0, failed = 0;
function check(group, what, got, want) {
  if (got === want) { passed++; return; }
  failed++;
  console.log(`FAIL ${group}: ${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

for (const v of names.name_keys) check('name_keys', v.input, nameKey(v.input), v.key);
for (const v of names.nicks) {
  check('nicks', `valid ${JSON.stringify(v.nick)}`, validNick(v.nick), v.valid);
  if (v.valid) check('nicks', `key ${JSON.stringify(v.nick)}`, nickKey(v.nick), v.key);
}
for (const v of rooms.room_names) {
  const n = canonicalName(v.input);
  check('room_names', v.input, n, v.invalid ? null : v.canonical);
  if (n !== null) check('room_names', `topic ${v.input}`, 'parley/room/1/public/' + n, v.public_topic);
}
for (const v of rooms.private_rooms) {
  const k = Buffer.from(v.key_hex, 'hex');
  const name = Buffer.from(v.name);
  check('private_rooms', `topic ${v.name}`, 'parley/room/1/private/' + hkdf(k, Buffer.concat([Buffer.from('parley/room/1 topic'), nul, name]), 16), v.topic);
  check('private_rooms', `rendezvous ${v.name}`, 'parley/room/1/private/rendezvous/' + hkdf(k, Buffer.concat([Buffer.from('parley/room/1 rendezvous'), nul, name]), 16), v.rendezvous);
  check('private_rooms', `seal key ${v.name}`, hkdf(k, Buffer.from('parley/room/1 seal'), 32), v.seal_key_hex);
}
for (const v of rooms.invites) check('invites', v.name, invite(Buffer.from(v.key_hex, 'hex'), v.name), v.invite);
for (const v of rooms.envelopes) check('envelopes', JSON.stringify(v.text ?? v.kind), envelope(v), v.protobuf_hex);
for (const v of rooms.seals) {
  const t = Buffer.from(v.topic), f = Buffer.from(v.from_hex, 'hex');
  check('seals', `AD ${v.name}`, Buffer.concat([varint(t.length), t, varint(f.length), f]).toString('hex'), v.ad_hex);
}
console.log(`node ${process.version}, Unicode ${process.versions.unicode}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
