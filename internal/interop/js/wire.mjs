// Parley's wire formats, written from docs/PROTOCOL.md: a minimal proto3
// reader and writer, the name key, Envelope (rooms §3) with its validation
// (rooms §6), the DM Message and Ack (direct messages), and the signed
// bytes of a GossipSub message. No packages: the same code could serve
// another runtime.
import { readFileSync } from 'node:fs';
import { createHash, hkdfSync } from 'node:crypto';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';

// ---- protobuf (proto3) -------------------------------------------------

export function varint(n) {
  const out = [];
  let v = BigInt(n);
  if (v < 0n) v += 1n << 64n; // int64: two's complement, 10 bytes
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return Uint8Array.from(out);
}

export function concat(parts) {
  const len = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(len);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

const utf8 = new TextEncoder();
const strictUTF8 = new TextDecoder('utf-8', { fatal: true });

export const pbVarint = (num, v) => concat([varint(num << 3), varint(v)]);
export const pbBytes = (num, b) => concat([varint((num << 3) | 2), varint(b.length), b]);
export const pbString = (num, s) => pbBytes(num, utf8.encode(s));

// readVarint returns [value as BigInt, next offset]; it throws on a
// truncated or over-long varint.
export function readVarint(buf, off) {
  let v = 0n;
  for (let shift = 0n, i = 0; i < 10; i++, shift += 7n) {
    if (off >= buf.length) throw new Error('truncated varint');
    const b = buf[off++];
    v |= BigInt(b & 0x7f) << shift;
    if (!(b & 0x80)) return [v, off];
  }
  throw new Error('varint too long');
}

// decode splits a message into fields: Map(number -> [values]); varints as
// BigInt, length-delimited as Uint8Array. Fixed32/64 are skipped (unknown
// fields); groups are refused.
export function decode(buf) {
  const fields = new Map();
  let off = 0;
  while (off < buf.length) {
    let key;
    [key, off] = readVarint(buf, off);
    const num = Number(key >> 3n), wt = Number(key & 7n);
    if (num === 0) throw new Error('field number 0');
    let val;
    switch (wt) {
      case 0: [val, off] = readVarint(buf, off); break;
      case 1: off += 8; if (off > buf.length) throw new Error('truncated fixed64'); continue;
      case 5: off += 4; if (off > buf.length) throw new Error('truncated fixed32'); continue;
      case 2: {
        let len;
        [len, off] = readVarint(buf, off);
        if (len > BigInt(buf.length - off)) throw new Error('truncated field');
        val = buf.subarray(off, off + Number(len));
        off += Number(len);
        break;
      }
      default: throw new Error(`wire type ${wt}`);
    }
    if (!fields.has(num)) fields.set(num, []);
    fields.get(num).push({ wt, val, pos: off });
  }
  return fields;
}

// Proto3 scalar accessors: the last value wins; a wrong wire type is an error.
function last(fields, num, wt) {
  const vs = fields.get(num);
  if (!vs) return undefined;
  const v = vs[vs.length - 1];
  if (v.wt !== wt) throw new Error(`field ${num}: wire type ${v.wt}, want ${wt}`);
  return v.val;
}
const getU64 = (f, n) => last(f, n, 0) ?? 0n;
const getI64 = (f, n) => BigInt.asIntN(64, getU64(f, n));
const getBytes = (f, n) => last(f, n, 2) ?? new Uint8Array(0);
const getString = (f, n) => strictUTF8.decode(getBytes(f, n));
const getMsg = (f, n) => { const b = last(f, n, 2); return b === undefined ? undefined : decode(b); };

// ---- names (rooms §2, §3) ----------------------------------------------

const casefold = JSON.parse(readFileSync(new URL('../../../docs/vectors/casefold.json', import.meta.url), 'utf8'));
const fold = new Map(Object.entries(casefold.mappings).map(([k, v]) =>
  [parseInt(k, 16), String.fromCodePoint(...v.split(' ').map((h) => parseInt(h, 16)))]));
const toCasefold = (s) => Array.from(s, (c) => fold.get(c.codePointAt(0)) ?? c).join('');
export const nameKey = (s) => toCasefold(s.normalize('NFKC')).normalize('NFC');

const nameRe = /^[\p{L}\p{Nd}][\p{L}\p{Nd}\p{Mn}\p{Mc}\-_.]*$/u;
const ignorable = /\p{Default_Ignorable_Code_Point}/u;
export function canonicalName(s) {
  const n = nameKey(s);
  const chars = Array.from(n).length;
  if (chars < 1 || chars > 32 || utf8.encode(n).length > 128 || !nameRe.test(n) || ignorable.test(n)) {
    throw new Error(`invalid room name ${JSON.stringify(s)}`);
  }
  return n;
}
export const publicTopic = (name) => 'parley/room/1/public/' + canonicalName(name);

const nickRe = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]+$/u;
export const validNick = (s) => {
  const n = Array.from(s).length;
  return n >= 1 && n <= 32 && nickRe.test(s) && !s.startsWith(' ') && !s.endsWith(' ');
};

// ---- private rooms (rooms §2, §5, §9) ----------------------------------

const INVITE_PREFIX = 'parley-invite:';
const hkdf = (key, info, len) => new Uint8Array(hkdfSync('sha256', key, utf8.encode('parley/room/1'), info, len));

// decodeInvite returns { key, name } of an invite code (rooms §9), strictly.
export function decodeInvite(code) {
  if (!code.startsWith(INVITE_PREFIX)) throw new Error('not an invite');
  const b64 = code.slice(INVITE_PREFIX.length);
  if (!/^[A-Za-z0-9_-]*$/.test(b64)) throw new Error('invite: not base64url without padding');
  const payload = new Uint8Array(Buffer.from(b64, 'base64url'));
  if (Buffer.from(payload).toString('base64url') !== b64) throw new Error('invite: non-canonical base64url');
  if (payload.length < 1 + 32 + 1 + 4 || payload[0] !== 1) throw new Error('invite: bad version or length');
  const n = payload[33];
  if (payload.length !== 34 + n + 4) throw new Error('invite: bad length');
  const body = payload.subarray(0, 34 + n);
  const check = createHash('sha256').update(concat([utf8.encode('parley-invite-v1'), Uint8Array.of(0), body])).digest().subarray(0, 4);
  if (Buffer.compare(check, payload.subarray(34 + n)) !== 0) throw new Error('invite: check does not match');
  const name = strictUTF8.decode(payload.subarray(34, 34 + n));
  if (canonicalName(name) !== name) throw new Error('invite: name not canonical');
  return { key: payload.slice(1, 33), name };
}

// privateRoom derives a private room's topic and seal key (rooms §2).
export function privateRoom(key, name) {
  const n = utf8.encode(name);
  const topicId = hkdf(key, concat([utf8.encode('parley/room/1 topic'), Uint8Array.of(0), n]), 16);
  return { topic: 'parley/room/1/private/' + hex(topicId), sealKey: hkdf(key, utf8.encode('parley/room/1 seal'), 32) };
}

const sealAD = (topic, from) => {
  const t = utf8.encode(topic);
  return concat([varint(t.length), t, varint(from.length), from]);
};

// seal makes a private room's message data (rooms §5): Sealed{nonce,
// ciphertext} with a fresh 24-byte nonce.
export function seal(sealKey, topic, from, envelope, nonce) {
  const ct = xchacha20poly1305(sealKey, nonce, sealAD(topic, from)).encrypt(envelope);
  return concat([pbBytes(1, nonce), pbBytes(2, ct)]);
}

// open returns the Envelope bytes inside a Sealed, or throws (rule 2).
export function open(sealKey, topic, from, data) {
  const f = decode(data);
  const nonce = getBytes(f, 1);
  if (nonce.length !== 24) throw new Error(`nonce of ${nonce.length} bytes`);
  return xchacha20poly1305(sealKey, nonce, sealAD(topic, from)).decrypt(getBytes(f, 2));
}

// ---- Envelope (rooms §3) -----------------------------------------------

export const Kind = { UNSPECIFIED: 0, TEXT: 1, PRESENCE: 2, FILE_SHARE: 3 };

export function encodeEnvelope({ kind, id, nick, sentAtMs, text, leaving }) {
  const parts = [pbVarint(1, kind), pbBytes(2, id), pbString(3, nick), pbVarint(4, sentAtMs)];
  if (text) parts.push(pbString(5, text));
  if (kind === Kind.PRESENCE && leaving) parts.push(pbBytes(6, pbVarint(1, 1)));
  return concat(parts);
}

export const MAX_DATA = 65536;
const SKEW_MS = 5 * 60 * 1000;

// validateEnvelope applies rules 1 and 3-6 of rooms §6 to a public room's
// message data (rule 6, the clock, only when nowMs is not null: the room
// sync applies its own windows). It returns { result: 'accept' | 'reject'
// | 'ignore', reason, env }.
export function validateEnvelope(data, nowMs = Date.now()) {
  if (data.length > MAX_DATA) return { result: 'reject', reason: 'data too long' };
  let f;
  const env = {};
  try {
    f = decode(data);
    env.kind = Number(getU64(f, 1));
    env.id = getBytes(f, 2);
    env.nick = getString(f, 3);
    env.sentAtMs = Number(getI64(f, 4));
    env.text = getString(f, 5);
    env.presence = getMsg(f, 6);
    env.fileShare = getMsg(f, 7);
    if (env.presence) {
      env.leaving = getU64(env.presence, 1) !== 0n;
      env.peerRecord = getBytes(env.presence, 2);
    }
    if (env.fileShare) {
      env.share = { id: getString(env.fileShare, 1), name: getString(env.fileShare, 2), size: getU64(env.fileShare, 3), hash: getString(env.fileShare, 4) };
    }
  } catch (err) {
    return { result: 'reject', reason: `not an Envelope: ${err.message}` };
  }
  if (env.kind > Kind.FILE_SHARE) return { result: 'ignore', reason: `unknown kind ${env.kind}` };
  const bad = (reason) => ({ result: 'reject', reason });
  if (env.kind === Kind.UNSPECIFIED) return bad('kind unspecified');
  if (env.id.length !== 16) return bad(`id of ${env.id.length} bytes`);
  if (!validNick(env.nick)) return bad('invalid nick');
  const textChars = Array.from(env.text).length;
  if (env.kind === Kind.TEXT && (textChars < 1 || textChars > 4096)) return bad('text length');
  if (env.kind !== Kind.TEXT && textChars !== 0) return bad('text on a non-text kind');
  if (env.kind !== Kind.PRESENCE && env.presence !== undefined) return bad('presence on another kind');
  if ((env.kind === Kind.FILE_SHARE) !== (env.fileShare !== undefined)) return bad('file share field does not match the kind');
  if (env.peerRecord && env.peerRecord.length > 1024) return bad('peer record too long');
  if (nowMs !== null && Math.abs(env.sentAtMs - nowMs) > SKEW_MS) return { result: 'ignore', reason: 'clock skew' };
  return { result: 'accept', env };
}

// ---- GossipSub signature (rooms §1, StrictSign) ------------------------

// signedBytes are the bytes a GossipSub author signs: "libp2p-pubsub:"
// followed by the protobuf Message {from = 1, data = 2, seqno = 3,
// topic = 4} without signature (5) and key (6).
export function signedBytes({ from, data, seqno, topic }) {
  return concat([utf8.encode('libp2p-pubsub:'), pbBytes(1, from), pbBytes(2, data), pbBytes(3, seqno), pbString(4, topic)]);
}

// seqnoBytes is the 8-byte big-endian seqno of a GossipSub message.
export function seqnoBytes(n) {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
}

// ---- direct messages ----------------------------------------------------

export const DM_PROTOCOL = '/parley/dm/1.0.0';
export const DM_MAX_FRAME = 16384;
export const DM_MAX_ACK = 64;
export const AckStatus = { STORED: 1, REJECTED: 2, BUSY: 3 };
export const AckReason = { EMPTY_TEXT: 1, TEXT_TOO_LONG: 2, INVALID_UTF8: 3, INVALID_NICK: 4, BAD_TIMESTAMP: 5 };

export const encodeDM = ({ id, text, nick, sentAtMs }) =>
  concat([pbBytes(1, id), pbString(2, text), ...(nick ? [pbString(3, nick)] : []), pbVarint(4, sentAtMs)]);

// decodeDM decodes a Message; like any proto3 decoder it refuses a string
// field that is not UTF-8 (the recipient resets the stream: dm.json "text
// not UTF-8"), so REASON_INVALID_UTF8 is never sent.
export function decodeDM(buf) {
  const f = decode(buf);
  const id = getBytes(f, 1);
  if (id.length !== 16) throw new Error(`id of ${id.length} bytes`);
  return { id, text: getString(f, 2), nick: getString(f, 3), sentAtMs: Number(getI64(f, 4)) };
}

export const encodeAck = ({ id, status, reason, retryAfterMs }) =>
  concat([pbBytes(1, id), pbVarint(2, status), ...(reason ? [pbVarint(3, reason)] : []), ...(retryAfterMs ? [pbVarint(4, retryAfterMs)] : [])]);

export function decodeAck(buf) {
  const f = decode(buf);
  return { id: getBytes(f, 1), status: Number(getU64(f, 2)), reason: Number(getU64(f, 3)), retryAfterMs: Number(getU64(f, 4)) };
}

// checkDMText returns { reason } for a message to reject (the first
// failing rule, in the order of docs/PROTOCOL.md), else { text }.
export function checkDMText(m, nowMs = Date.now()) {
  const bytes = utf8.encode(m.text).length;
  if (bytes === 0) return { reason: AckReason.EMPTY_TEXT };
  if (bytes > 8192) return { reason: AckReason.TEXT_TOO_LONG };
  if (m.nick !== '' && !validNick(m.nick)) return { reason: AckReason.INVALID_NICK };
  if (m.sentAtMs <= 0 || m.sentAtMs > nowMs + 3600e3 || m.sentAtMs < nowMs - 30 * 86400e3) return { reason: AckReason.BAD_TIMESTAMP };
  return { text: m.text };
}

// frame prefixes msg with its length (unsigned varint).
export const frame = (msg) => concat([varint(msg.length), msg]);

// FrameReader reads varint-length-prefixed frames from a libp2p stream
// (an async iterable of Uint8Array or Uint8ArrayList chunks), refusing a
// length above max before reading the frame.
export class FrameReader {
  constructor(stream, max) {
    this.it = stream[Symbol.asyncIterator]();
    this.buf = new Uint8Array(0);
    this.max = max;
  }

  async fill() {
    const { value, done } = await this.it.next();
    if (done) return false;
    this.buf = concat([this.buf, value.subarray()]);
    return true;
  }

  // next returns the next frame, or null at a clean end of stream.
  async next() {
    for (;;) {
      let len, off;
      try {
        [len, off] = readVarint(this.buf, 0);
      } catch (err) {
        if (this.buf.length >= 10 || !/truncated/.test(err.message)) throw err;
        if (!(await this.fill())) {
          if (this.buf.length === 0) return null;
          throw new Error('stream ended inside a length prefix');
        }
        continue;
      }
      if (off !== varint(len).length) throw new Error('non-minimal length prefix');
      if (len > BigInt(this.max)) throw new Error(`frame of ${len} bytes over the limit ${this.max}`);
      const end = off + Number(len);
      if (this.buf.length >= end) {
        const f = this.buf.slice(off, end);
        this.buf = this.buf.slice(end);
        return f;
      }
      if (!(await this.fill())) throw new Error('stream ended inside a frame');
    }
  }

  // bytes returns the next n bytes of the stream (file data after a
  // Chunk frame), or throws if the stream ends first.
  async bytes(n) {
    const out = new Uint8Array(n);
    let got = 0;
    for (;;) {
      const take = Math.min(n - got, this.buf.length);
      out.set(this.buf.subarray(0, take), got);
      got += take;
      this.buf = this.buf.slice(take);
      if (got === n) return out;
      const { value, done } = await this.it.next();
      if (done) throw new Error(`stream ended after ${got} of ${n} bytes`);
      this.buf = value.subarray();
    }
  }
}

// send writes b to a libp2p 3 stream, waiting for 'drain' when its buffer
// is full.
export async function send(stream, b) {
  if (!stream.send(b)) await stream.onDrain();
}

export const hex = (b) => Buffer.from(b).toString('hex');
export const unhex = (s) => new Uint8Array(Buffer.from(s, 'hex'));
const equal = (a, b) => a.length === b.length && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

// ---- file transfer (/parley/file/2.0.0) ---------------------------------

export const FILE_PROTOCOL = '/parley/file/2.0.0';
export const FILE_MAX_FRAME = 1 << 20;
export const Code = {
  UNSPECIFIED: 0, OK: 1, ACCEPTED: 2, REJECTED: 3, TOO_LARGE: 4, NO_SPACE: 5, BUSY: 6, NOT_FOUND: 7,
  CANCELLED: 8, BAD_NAME: 9, FILE_CHANGED: 10, BAD_REQUEST: 11, VERIFY_FAILED: 12, DUPLICATE: 13, INTERNAL: 14, EXPIRED: 15,
};
export const NoticeKind = { UNSPECIFIED: 0, REJECT: 1, CANCEL: 2, RESUME: 3, DONE: 4, FAILED: 5 };
const FRAME_FIELDS = { offer: 1, status: 2, notice: 3, get: 4, manifest: 5, chunk: 6 };
const MIN_CHUNK = 16 << 10, MAX_CHUNK = 4 << 20, MAX_CHUNKS = 16384;

const opt = (cond, part) => (cond ? [part] : []);
const encoders = {
  offer: (m) => concat([pbBytes(1, m.id), ...opt(m.name, pbString(2, m.name ?? '')), ...opt(m.size, pbVarint(3, m.size ?? 0)),
    ...opt(m.hash?.length, pbBytes(4, m.hash ?? new Uint8Array(0))), ...opt(m.chunkSize, pbVarint(5, m.chunkSize ?? 0))]),
  status: (m) => concat([pbVarint(1, m.code), ...opt(m.message, pbString(2, m.message ?? ''))]),
  notice: (m) => concat([pbBytes(1, m.id), pbVarint(2, m.kind), ...opt(m.code, pbVarint(3, m.code ?? 0)),
    ...opt(m.message, pbString(4, m.message ?? '')), ...opt(m.hash?.length, pbBytes(5, m.hash ?? new Uint8Array(0)))]),
  get: (m) => concat([pbBytes(1, m.id), ...opt(m.manifest, pbVarint(2, 1)),
    ...(m.ranges ?? []).map(([start, count]) => pbBytes(3, concat([...opt(start, pbVarint(1, start)), pbVarint(2, count)])))]),
  manifest: (m) => concat([...opt(m.size, pbVarint(1, m.size)), pbVarint(2, m.chunkSize), pbBytes(3, m.hash),
    ...opt(m.chunkHashes.length, pbBytes(4, m.chunkHashes))]),
  chunk: (m) => concat([...opt(m.index, pbVarint(1, m.index)), ...opt(m.length, pbVarint(2, m.length)), ...opt(m.hash?.length, pbBytes(3, m.hash ?? new Uint8Array(0)))]),
};

// encodeFrame returns the protobuf Frame holding one message of the given
// kind (offer, status, notice, get, manifest, chunk).
export const encodeFrame = (kind, m) => pbBytes(FRAME_FIELDS[kind], encoders[kind](m));

const u32 = (f, n) => {
  const v = getU64(f, n);
  if (v > 0xffffffffn) throw new Error(`field ${n}: not a uint32`);
  return Number(v);
};
const decoders = {
  offer: (f) => ({ id: getBytes(f, 1), name: getString(f, 2), size: getU64(f, 3), hash: getBytes(f, 4), chunkSize: u32(f, 5) }),
  status: (f) => ({ code: Number(getU64(f, 1)), message: getString(f, 2) }),
  notice: (f) => ({ id: getBytes(f, 1), kind: Number(getU64(f, 2)), code: Number(getU64(f, 3)), message: getString(f, 4), hash: getBytes(f, 5) }),
  get: (f) => ({
    id: getBytes(f, 1), manifest: getU64(f, 2) !== 0n,
    ranges: (f.get(3) ?? []).map((v) => {
      if (v.wt !== 2) throw new Error('field 3: wire type');
      const r = decode(v.val);
      return [u32(r, 1), u32(r, 2)];
    }),
  }),
  manifest: (f) => ({ size: getU64(f, 1), chunkSize: u32(f, 2), hash: getBytes(f, 3), chunkHashes: getBytes(f, 4) }),
  chunk: (f) => ({ index: u32(f, 1), length: u32(f, 2), hash: getBytes(f, 3) }),
};

// decodeFrame returns { kind, msg } of a Frame; the oneof's last field
// wins (proto3); a Frame with none is a protocol error.
export function decodeFrame(buf) {
  const f = decode(buf);
  let kind, val;
  for (const [k, num] of Object.entries(FRAME_FIELDS)) {
    const vs = f.get(num);
    if (!vs) continue;
    if (vs[vs.length - 1].wt !== 2) throw new Error(`frame field ${num}: wire type`);
    // Across different oneof members the last one on the wire wins.
    const at = vs[vs.length - 1];
    if (val === undefined || at.pos > val.pos) { kind = k; val = at; }
  }
  if (kind === undefined) throw new Error('frame without a message');
  return { kind, msg: decoders[kind](decode(val.val)) };
}

// chunkLayout returns the chunk count of a file, or throws when chunkSize
// is not a valid chunk size for size (a power of two, 16 KiB … 4 MiB, at
// most 16384 chunks).
export function chunkLayout(size, chunkSize) {
  if (chunkSize < MIN_CHUNK || chunkSize > MAX_CHUNK || (chunkSize & (chunkSize - 1)) !== 0) throw new Error(`chunk size ${chunkSize}`);
  const n = Number((BigInt(size) + BigInt(chunkSize) - 1n) / BigInt(chunkSize));
  if (n > MAX_CHUNKS) throw new Error(`${n} chunks`);
  return n;
}

// chooseChunkSize is the sender's choice: the smallest power of two ≥
// the configured size (at least 16 KiB) that keeps the chunk count ≤ 16384.
export function chooseChunkSize(size, configured) {
  let cs = MIN_CHUNK;
  while (cs < configured && cs < MAX_CHUNK) cs *= 2;
  while (cs < MAX_CHUNK && BigInt(size) > BigInt(cs) * BigInt(MAX_CHUNKS)) cs *= 2;
  return cs;
}

// validRanges applies the Get rules to ranges of a file of n chunks.
export function validRanges(ranges, n) {
  if (ranges.length > n) return false;
  let next = 0;
  for (const [start, count] of ranges) {
    if (count < 1 || start < next || start + count > n) return false;
    next = start + count;
  }
  return true;
}

// checkManifest returns why a manifest does not match an offer (size, and
// hash when the offer had one), or does not hold together; '' when it is
// good. rootOf merges chunk hashes (blake3.mjs).
export function checkManifest(m, offer, rootOf) {
  let n;
  try { n = chunkLayout(m.size, m.chunkSize); } catch (err) { return `layout: ${err.message}`; }
  if (m.size !== BigInt(offer.size)) return 'size differs from the offer';
  if (offer.hash?.length && !equal(m.hash, offer.hash)) return 'hash differs from the offer';
  if (offer.chunkSize && m.chunkSize !== offer.chunkSize) return 'chunk size differs from the offer';
  if (m.hash.length !== 32 || m.chunkHashes.length !== 32 * n) return 'hash lengths';
  const hs = Array.from({ length: n }, (_, i) => m.chunkHashes.subarray(32 * i, 32 * i + 32));
  if (!equal(rootOf(hs), m.hash)) return 'chunk hashes do not combine into the hash';
  return '';
}

export { equal };

export const utf8Length = (s) => utf8.encode(s).length;
