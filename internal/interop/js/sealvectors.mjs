// Checks wire.mjs's private-room code (invite decoding, topic and seal key
// derivation, XChaCha20-Poly1305 sealing and opening) against
// docs/vectors/rooms.json: the seal vectors vectors.mjs cannot check
// without a cipher package. Prints "N passed, N failed"; exits 1 on a
// failure.
import './node20.mjs';
import { readFileSync } from 'node:fs';
import * as w from './wire.mjs';

const rooms = JSON.parse(readFileSync(new URL('../../../docs/vectors/rooms.json', import.meta.url), 'utf8'));
const h = (s) => new Uint8Array(Buffer.from(s, 'hex'));
let passed = 0, failed = 0;
const check = (what, got, want) => {
  if (got === want) { passed++; return; }
  failed++;
  console.log(`FAIL ${what}: got ${got}, want ${want}`);
};
for (const v of rooms.seals) {
  const r = w.privateRoom(h(v.room_key_hex), v.name);
  check(`topic ${v.name}`, r.topic, v.topic);
  const sealed = w.seal(r.sealKey, v.topic, h(v.from_hex), h(v.envelope_hex), h(v.nonce_hex));
  check(`sealed ${v.name}`, w.hex(sealed), v.sealed_protobuf_hex);
  check(`opened ${v.name}`, w.hex(w.open(r.sealKey, v.topic, h(v.from_hex), sealed)), v.envelope_hex);
  let moved = 'opened';
  try { w.open(r.sealKey, v.topic + '0', h(v.from_hex), sealed); } catch { moved = 'refused'; }
  check(`moved to another topic ${v.name}`, moved, 'refused');
}
for (const v of rooms.invites) {
  const { key, name } = w.decodeInvite(v.invite);
  check(`invite ${v.name}`, `${w.hex(key)} ${name}`, `${v.key_hex} ${v.name}`);
}
for (const code of rooms.invalid_invites) {
  let got = 'accepted';
  try { w.decodeInvite(code); } catch { got = 'refused'; }
  check(`invalid invite ${JSON.stringify(code)}`, got, 'refused');
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
