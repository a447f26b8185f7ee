// Room sync (docs/PROTOCOL.md, rooms §13: /parley/rooms/sync/1.0.0),
// written from the document: signed items, item IDs, fingerprints, the
// key proofs of private rooms, and a reconciler that plays either side.
// The js peer uses it for the member set (presence both ways) and answers
// the history and shares sets from what it holds.
import { createHash, createHmac, hkdfSync } from 'node:crypto';
import * as w from './wire.mjs';

export const SYNC_PROTOCOL = '/parley/rooms/sync/1.0.0';
export const SyncSet = { HISTORY: 1, MEMBERS: 2, SHARES: 3 };
export const Mode = { SKIP: 0, FINGERPRINT: 1, IDS: 2 };
export const MAX_HELLO = 1024;
export const MAX_FRAME = 1 << 20;
export const MAX_ROUNDS = 24;
const MAX = (1n << 64n) - 1n;
const INFINITY = { ms: MAX, prefix: new Uint8Array(0) };
const IDS_BELOW = 32; // a range of fewer items is answered with its IDs
const BUCKETS = 16; // else split into this many fingerprints
const MAX_IDS_REPLY = 1024; // the responder answers IDS with IDS up to this

const utf8 = new TextEncoder();
const sha256 = (...parts) => new Uint8Array(createHash('sha256').update(w.concat(parts)).digest());
const lp = (b) => w.concat([w.varint(b.length), b]);
const be64 = (n) => { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(n)); return b; };
const cmpBytes = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b));

// itemId is the first 16 bytes of SHA-256("parley/rooms/sync/1 item\0" ||
// uvarint(len(author)) || author || envelope id).
export const itemId = (author, envId) => sha256(utf8.encode('parley/rooms/sync/1 item\0'), lp(author), envId).subarray(0, 16);

// fingerprint of items ({ms: BigInt, id}): SHA-256(sum || uvarint(count))
// [0:16], sum the 32-byte little-endian sum modulo 2^256 of
// SHA-256(ms as 8 bytes big-endian || id), each read little-endian.
export function fingerprint(items) {
  let sum = 0n;
  for (const it of items) {
    const d = sha256(be64(it.ms), it.id);
    sum = (sum + BigInt('0x' + w.hex(Uint8Array.from(d).reverse()))) % (1n << 256n);
  }
  const le = w.unhex(sum.toString(16).padStart(64, '0')).reverse();
  return sha256(le, w.varint(items.length)).subarray(0, 16);
}

// syncKey and proofMac: a private room's key proofs.
export const syncKey = (roomKey) => new Uint8Array(hkdfSync('sha256', roomKey, utf8.encode('parley/room/1'), utf8.encode('parley/room/1 sync'), 32));
export function proofMac(key, role, { topic, set, nonceI, nonceR, initiator, responder }) {
  const label = `parley/rooms/sync/1 ${role}\0`;
  const msg = w.concat([lp(utf8.encode(label)), lp(nonceI), lp(nonceR), lp(initiator), lp(responder), lp(utf8.encode(topic)), lp(be64(set))]);
  return new Uint8Array(createHmac('sha256', key).update(msg).digest());
}

// ---- messages (rooms/pb/sync.proto) --------------------------------------

export const encodeHello = ({ topic, set, nonce, sinceMs }) =>
  w.concat([w.pbString(1, topic), w.pbVarint(2, set), w.pbBytes(3, nonce), w.pbVarint(4, sinceMs)]);
export function decodeHello(b) {
  const f = w.decode(b);
  const one = (n) => f.get(n)?.at(-1).val;
  return { topic: new TextDecoder('utf-8', { fatal: true }).decode(one(1) ?? new Uint8Array(0)), set: Number(one(2) ?? 0n), nonce: one(3) ?? new Uint8Array(0), sinceMs: BigInt.asIntN(64, one(4) ?? 0n) };
}
export const encodeChallenge = ({ nonce, mac }) => w.concat([w.pbBytes(1, nonce), ...(mac?.length ? [w.pbBytes(2, mac)] : [])]);
export function decodeChallenge(b) {
  const f = w.decode(b);
  return { nonce: f.get(1)?.at(-1).val ?? new Uint8Array(0), mac: f.get(2)?.at(-1).val ?? new Uint8Array(0) };
}

function encodeRange(r) {
  const parts = [w.pbVarint(1, r.upper.ms)];
  if (r.upper.prefix.length) parts.push(w.pbBytes(2, r.upper.prefix));
  if (r.mode) parts.push(w.pbVarint(3, r.mode));
  if (r.mode === Mode.FINGERPRINT) parts.push(w.pbBytes(4, r.fp));
  if (r.mode === Mode.IDS) for (const id of r.ids) parts.push(w.pbBytes(5, id));
  return w.concat(parts);
}
export function encodeFrame({ mac, ranges = [], want = [], items = [], done = false }) {
  return w.concat([
    ...(mac?.length ? [w.pbBytes(1, mac)] : []),
    ...ranges.map((r) => w.pbBytes(2, encodeRange(r))),
    ...want.map((id) => w.pbBytes(3, id)),
    ...items.map((it) => w.pbBytes(4, it)),
    ...(done ? [w.pbVarint(5, 1)] : []),
  ]);
}

// decodeFrame decodes a SyncFrame and checks its ranges as a conforming
// peer must (rooms §13, "What a conforming peer must reject").
export function decodeFrame(b) {
  const f = w.decode(b);
  const all = (n) => (f.get(n) ?? []).map((x) => x.val);
  const ranges = all(2).map((rb) => {
    const g = w.decode(rb);
    const one = (n) => g.get(n)?.at(-1).val;
    const r = { upper: { ms: one(1) ?? 0n, prefix: one(2) ?? new Uint8Array(0) }, mode: Number(one(3) ?? 0n), fp: one(4), ids: (g.get(5) ?? []).map((x) => x.val) };
    if (r.upper.prefix.length > 16) throw new Error('bound ID over 16 bytes');
    if (r.mode > Mode.IDS) throw new Error(`mode ${r.mode}`);
    if (r.mode === Mode.FINGERPRINT && r.fp?.length !== 16) throw new Error('fingerprint not of 16 bytes');
    if (r.ids.some((id) => id.length !== 16)) throw new Error('ID not of 16 bytes');
    return r;
  });
  if (ranges.length > 4096) throw new Error('over 4096 ranges');
  if (ranges.reduce((n, r) => n + r.ids.length, 0) > 20000) throw new Error('over 20000 IDs');
  for (let i = 1; i < ranges.length; i++) {
    if (compareBounds(ranges[i - 1].upper, ranges[i].upper) >= 0) throw new Error('ranges not ascending');
  }
  if (ranges.length && compareBounds(ranges.at(-1).upper, INFINITY) !== 0) throw new Error('last bound is not (2^64-1, empty)');
  const want = all(3);
  if (want.length > 10000 || want.some((id) => id.length !== 16)) throw new Error('bad want');
  return { mac: f.get(1)?.at(-1).val ?? new Uint8Array(0), ranges, want, items: all(4), done: (f.get(5)?.at(-1).val ?? 0n) !== 0n };
}

// ---- signed items ---------------------------------------------------------

// signItem builds a GossipSub Message for data on topic, signed as
// GossipSub signs (rooms §1), without publishing it: the item of a set.
export async function signItem(privateKey, from, topic, data, seqno) {
  const signature = await privateKey.sign(w.signedBytes({ from, data, seqno, topic }));
  return w.concat([w.pbBytes(1, from), w.pbBytes(2, data), w.pbBytes(3, seqno), w.pbString(4, topic), w.pbBytes(5, signature)]);
}

// decodeItem splits a GossipSub Message {from 1, data 2, seqno 3, topic 4,
// signature 5, key 6}.
export function decodeItem(b) {
  const f = w.decode(b);
  const one = (n) => f.get(n)?.at(-1).val ?? new Uint8Array(0);
  return { from: one(1), data: one(2), seqno: one(3), topic: new TextDecoder('utf-8', { fatal: true }).decode(one(4)), signature: one(5), key: one(6) };
}

// ---- reconciliation -------------------------------------------------------

// Items are {ms: BigInt, id: Uint8Array(16)}, sorted by (ms, id). A bound
// {ms, prefix} has an item below it when the item's ms is smaller, or
// equal and its ID sorts before the prefix (byte-wise).
const below = (it, b) => it.ms < b.ms || (it.ms === b.ms && cmpBytes(it.id, b.prefix) < 0);
const compareBounds = (a, b) => (a.ms < b.ms ? -1 : a.ms > b.ms ? 1 : cmpBytes(a.prefix, b.prefix));
export const compareItems = (a, b) => (a.ms < b.ms ? -1 : a.ms > b.ms ? 1 : cmpBytes(a.id, b.id));

function boundBetween(prev, next) {
  if (prev.ms !== next.ms) return { ms: next.ms, prefix: new Uint8Array(0) };
  let n = 0;
  while (n < 16 && prev.id[n] === next.id[n]) n++;
  return { ms: next.ms, prefix: next.id.slice(0, Math.min(n + 1, 16)) };
}

export class Reconciler {
  constructor(items, initiator) {
    this.items = [...items].sort(compareItems);
    this.initiator = initiator;
    this.need = []; // initiator: IDs the other side has and this one lacks
    this.have = []; // initiator: IDs this side has and the other lacks
  }

  // initial is the initiator's first round: the whole set as IDs when
  // small, else one fingerprint.
  initial() {
    if (this.items.length < IDS_BELOW) return [{ upper: INFINITY, mode: Mode.IDS, ids: this.items.map((it) => it.id) }];
    return [{ upper: INFINITY, mode: Mode.FINGERPRINT, fp: fingerprint(this.items) }];
  }

  // process answers a round; settled is true when the answer is only
  // SKIP (for the initiator: the reconciliation is over).
  process(ranges) {
    const out = [];
    let settled = true;
    const emit = (r) => {
      if (r.mode !== Mode.SKIP) settled = false;
      else if (out.length && out.at(-1).mode === Mode.SKIP) { out.at(-1).upper = r.upper; return; }
      out.push(r);
    };
    let lo = 0;
    for (const rg of ranges) {
      let hi = lo;
      while (hi < this.items.length && below(this.items[hi], rg.upper)) hi++;
      const mine = this.items.slice(lo, hi);
      if (rg.mode === Mode.SKIP) emit({ upper: rg.upper, mode: Mode.SKIP });
      else if (rg.mode === Mode.FINGERPRINT) {
        if (w.hex(fingerprint(mine)) === w.hex(rg.fp)) emit({ upper: rg.upper, mode: Mode.SKIP });
        else this.split(mine, rg.upper, emit);
      } else if (this.initiator) {
        const theirs = new Set(rg.ids.map(w.hex));
        const ours = new Set(mine.map((it) => w.hex(it.id)));
        for (const id of rg.ids) if (!ours.has(w.hex(id))) this.need.push(id);
        for (const it of mine) if (!theirs.has(w.hex(it.id))) this.have.push(it.id);
        emit({ upper: rg.upper, mode: Mode.SKIP });
      } else if (mine.length > MAX_IDS_REPLY) this.split(mine, rg.upper, emit);
      else emit({ upper: rg.upper, mode: Mode.IDS, ids: mine.map((it) => it.id) });
      lo = hi;
    }
    return { out, settled };
  }

  split(mine, upper, emit) {
    if (mine.length < IDS_BELOW) { emit({ upper, mode: Mode.IDS, ids: mine.map((it) => it.id) }); return; }
    const per = Math.floor(mine.length / BUCKETS), extra = mine.length % BUCKETS;
    let start = 0;
    for (let i = 0; i < BUCKETS; i++) {
      const end = start + per + (i < extra ? 1 : 0);
      const ub = i < BUCKETS - 1 ? boundBetween(mine[end - 1], mine[end]) : upper;
      emit({ upper: ub, mode: Mode.FINGERPRINT, fp: fingerprint(mine.slice(start, end)) });
      start = end;
    }
  }
}
