// A js-libp2p peer that speaks Parley's rooms and direct-message protocols,
// written from docs/PROTOCOL.md. It is driven by internal/interop's Go
// test: commands are JSON lines on stdin, events JSON lines on stdout,
// logs on stderr. It listens on 127.0.0.1 only and dials only what it is
// told to.
//
// Commands:
//   {"cmd":"dial","addr":MULTIADDR}
//   {"cmd":"join","room":NAME}                           public room NAME
//   {"cmd":"join","invite":CODE}                         private room
//   {"cmd":"publish","room":NAME,"nick":N,"text":T}      KIND_TEXT
//   {"cmd":"presence","room":NAME,"nick":N}              KIND_PRESENCE
//   {"cmd":"dm","peer":PEER_ID,"nick":N,"text":T}        /parley/dm/1.0.0
//   {"cmd":"send_file","peer":PEER_ID,"name":N,"size":S,"chunk_size":C}
//                                  offer a file of S bytes (byte k = k mod
//                                  251) over /parley/file/2.0.0; offers
//                                  received are accepted and pulled at once
//   {"cmd":"quit"}
// Events: ready, peer_connected, subscribed, joined, published, message,
// presence, refused, dm, dm_ack, file_offered, file_served, file_offer,
// file_received, file_done, file_notice, error (see jspeer_test.go).
import './node20.mjs';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { createLibp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify } from '@libp2p/identify';
import { ping } from '@libp2p/ping';
import { gossipsub } from '@libp2p/gossipsub';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import * as w from './wire.mjs';
import { blake3, chunkHash, rootOf } from './blake3.mjs';

const emit = (type, fields = {}) => process.stdout.write(JSON.stringify({ type, ...fields }) + '\n');
const log = (...args) => console.error('[js]', ...args);

// Rooms §1: the message ID is from || seqno, the bytes of the GossipSub
// `from` field (the peer ID multihash) and of the 8-byte seqno. js
// gossipsub's default (msgIdFnStrictSign) uses the protobuf public key
// instead, which matches no Go peer's IDs.
const msgIdFn = (msg) => {
  if (msg.type !== 'signed') throw new Error('unsigned message');
  return w.concat([msg.from.toMultihash().bytes, w.seqnoBytes(msg.sequenceNumber)]);
};

const node = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: {
    identify: identify(),
    // Parley disconnects a peer that does not answer pings (4 s, twice).
    ping: ping(),
    pubsub: gossipsub({
      globalSignaturePolicy: 'StrictSign',
      msgIdFn,
      floodPublish: true,
      doPX: false,
      emitSelf: false,
      allowPublishToZeroTopicPeers: false,
      // The limit on one RPC frame (not on message data): GossipSub's 1 MiB,
      // as Parley sends (rooms §1).
      maxInboundDataLength: 1 << 20,
    }),
  },
});
const pubsub = node.services.pubsub;

const rooms = new Map(); // topic -> { name, sealKey (private rooms) }
const seen = new Set(); // "author/id" of accepted envelopes (rules 7)

node.addEventListener('peer:connect', (evt) => emit('peer_connected', { peer_id: evt.detail.toString() }));
pubsub.addEventListener('subscription-change', (evt) => {
  for (const s of evt.detail.subscriptions) {
    emit('subscribed', { peer_id: evt.detail.peerId.toString(), topic: s.topic, subscribe: s.subscribe });
  }
});

// validate is the topic validator: the GossipSub signature is checked
// again here from the spec (rooms §1: StrictSign over "libp2p-pubsub:" ||
// Message{from, data, seqno, topic}), then rooms §6.
async function validate(source, msg) {
  const refuse = (result, reason) => {
    emit('refused', { topic: msg.topic, from: msg.from?.toString(), result, reason });
    return result;
  };
  if (msg.type !== 'signed') return refuse('reject', 'unsigned');
  const from = msg.from.toMultihash().bytes;
  const signed = w.signedBytes({ from, data: msg.data, seqno: w.seqnoBytes(msg.sequenceNumber), topic: msg.topic });
  const key = msg.from.publicKey ?? msg.key;
  if (key == null || !(await key.verify(signed, msg.signature))) return refuse('reject', 'bad signature');
  if (msg.data.length > w.MAX_DATA) return refuse('reject', 'data too long');
  let data = msg.data;
  const room = rooms.get(msg.topic);
  if (room?.sealKey) {
    try {
      data = w.open(room.sealKey, msg.topic, from, msg.data);
    } catch (err) {
      return refuse('reject', `does not open: ${err.message}`);
    }
  }
  const v = w.validateEnvelope(data);
  if (v.result !== 'accept') return refuse(v.result, v.reason);
  const rec = `${msg.from}/${w.hex(v.env.id)}`;
  if (seen.has(rec)) return refuse('ignore', 'replay');
  seen.add(rec);
  msg.parley = { env: v.env, signatureVerified: true };
  return 'accept';
}

pubsub.addEventListener('message', (evt) => {
  const msg = evt.detail;
  const room = rooms.get(msg.topic);
  // The validator left its result on the message object; decode again if
  // this gossipsub version copied it.
  const env = msg.parley?.env;
  if (room === undefined || env === undefined) return;
  const common = {
    room: room.name,
    private: room.sealKey !== undefined,
    topic: msg.topic,
    from: msg.from.toString(),
    nick: env.nick,
    id: w.hex(env.id),
    sent_at_ms: env.sentAtMs,
    msg_id: w.hex(msgIdFn(msg)),
    signature_verified: msg.parley?.signatureVerified === true,
  };
  if (env.kind === w.Kind.TEXT) emit('message', { ...common, text: env.text });
  else if (env.kind === w.Kind.PRESENCE) emit('presence', { ...common, leaving: env.leaving === true, peer_record: env.peerRecord?.length > 0 });
  else emit('file_share', { ...common, share: { ...env.share, size: String(env.share.size) } });
});

// Direct messages, recipient side: every Message gets one Ack, in order.
await node.handle(w.DM_PROTOCOL, async (stream, connection) => {
  const from = connection.remotePeer.toString();
  try {
    const r = new w.FrameReader(stream, w.DM_MAX_FRAME);
    for (let n = 0; n < 64; n++) {
      const f = await r.next();
      if (f === null) break;
      const m = w.decodeDM(f);
      const c = w.checkDMText(m);
      const ack = c.reason
        ? { id: m.id, status: w.AckStatus.REJECTED, reason: c.reason }
        : { id: m.id, status: w.AckStatus.STORED };
      if (!c.reason) emit('dm', { from, id: w.hex(m.id), nick: m.nick, text: c.text, sent_at_ms: m.sentAtMs });
      stream.send(w.frame(w.encodeAck(ack)));
    }
    await stream.close();
  } catch (err) {
    emit('error', { cmd: 'dm-recv', error: String(err?.message ?? err) });
    stream.abort(err);
  }
}, { runOnLimitedConnection: true });

// ---- file transfer (/parley/file/2.0.0) --------------------------------

const outgoing = new Map(); // hex id -> { peer, data, chunkSize, hashes, hash }
const incoming = new Map(); // hex id -> { peer, offer }

// fileData is the content of a test file: byte k is k mod 251, as in
// docs/vectors/transfer.json.
const fileData = (size) => Uint8Array.from({ length: size }, (_, k) => k % 251);

await node.handle(w.FILE_PROTOCOL, async (stream, connection) => {
  const peer = connection.remotePeer.toString();
  try {
    const r = new w.FrameReader(stream, w.FILE_MAX_FRAME);
    const first = await r.next();
    if (first === null) throw new Error('stream closed before its first frame');
    const { kind, msg } = w.decodeFrame(first);
    if (kind === 'offer') await onOffer(stream, peer, msg);
    else if (kind === 'notice') await onNotice(stream, peer, msg);
    else if (kind === 'get') await serveGet(stream, r, peer, msg);
    else throw new Error(`first frame ${kind}`);
  } catch (err) {
    emit('error', { cmd: 'file-recv', error: String(err?.message ?? err) });
    stream.abort(err);
  }
}, { runOnLimitedConnection: true });

const status = async (stream, code, message) => {
  await w.send(stream, w.frame(w.encodeFrame('status', { code, message })));
  await stream.close();
};

// onOffer answers an Offer: ACCEPTED (this peer accepts every valid offer
// at once), then pulls the file on a stream of its own.
async function onOffer(stream, peer, offer) {
  const id = w.hex(offer.id);
  let bad = '';
  if (offer.id.length !== 16) bad = 'id';
  else if (w.utf8Length(offer.name) > 1024) bad = 'name';
  else if (offer.hash.length !== 0 && offer.hash.length !== 32) bad = 'hash';
  else if (offer.hash.length === 0) {
    try { w.chunkLayout(offer.size, offer.chunkSize); } catch { bad = 'layout'; }
  }
  if (bad) return status(stream, w.Code.BAD_REQUEST, `bad ${bad}`);
  if (incoming.has(id)) return status(stream, w.Code.DUPLICATE, '');
  incoming.set(id, { peer, offer });
  emit('file_offer', { transfer_id: id, from: peer, name: offer.name, size: Number(offer.size), hash_offered: offer.hash.length === 32 });
  await status(stream, w.Code.ACCEPTED, '');
  pull(id).catch((err) => emit('error', { cmd: 'file-pull', transfer_id: id, error: String(err?.message ?? err) }));
}

// pull fetches an accepted offer on one Get stream: with an offered hash,
// the Manifest first, then every chunk checked against it; without one
// (v2 hash-as-you-send), every chunk checked against the hash it carries,
// then the Manifest as the sender's commitment. Then the DONE notice.
async function pull(id) {
  const { peer, offer } = incoming.get(id);
  const pid = peerIdFromString(peer);
  const stream = await node.dialProtocol(pid, w.FILE_PROTOCOL, { signal: AbortSignal.timeout(10000) });
  const r = new w.FrameReader(stream, w.FILE_MAX_FRAME);
  const expect = async (kind) => {
    const f = await r.next();
    if (f === null) throw new Error(`stream ended, want ${kind}`);
    const got = w.decodeFrame(f);
    if (got.kind === 'status') throw new Error(`sender answered status ${got.msg.code} ${got.msg.message}`);
    if (got.kind !== kind) throw new Error(`got ${got.kind}, want ${kind}`);
    return got.msg;
  };
  const getManifest = async () => {
    await w.send(stream, w.frame(w.encodeFrame('get', { id: offer.id, manifest: true })));
    const m = await expect('manifest');
    const why = w.checkManifest(m, offer, rootOf);
    if (why) throw new Error(`bad manifest: ${why}`);
    return m;
  };
  const withHash = offer.hash.length === 32;
  let manifest, chunkSize;
  if (withHash) {
    manifest = await getManifest();
    chunkSize = manifest.chunkSize;
  } else {
    chunkSize = offer.chunkSize;
  }
  const size = Number(offer.size);
  const n = w.chunkLayout(size, chunkSize);
  const data = new Uint8Array(size);
  const hashes = [];
  if (n > 0) {
    await w.send(stream, w.frame(w.encodeFrame('get', { id: offer.id, ranges: [[0, n]] })));
    for (let i = 0; i < n; i++) {
      const c = await expect('chunk');
      const want = Math.min(chunkSize, size - i * chunkSize);
      if (c.index !== i || c.length !== want) throw new Error(`chunk ${c.index} of ${c.length} bytes, want ${i} of ${want}`);
      const bytes = await r.bytes(c.length);
      const h = chunkHash(bytes, i, chunkSize, n);
      const expected = withHash ? manifest.chunkHashes.subarray(32 * i, 32 * i + 32) : c.hash;
      if (!withHash && c.hash.length !== 32) throw new Error(`chunk ${i} without its hash`);
      if (!w.equal(h, expected)) throw new Error(`chunk ${i} fails verification`);
      data.set(bytes, i * chunkSize);
      hashes.push(h);
    }
  }
  if (!withHash) {
    // The commitment: the same chunk hashes, combining into its hash.
    manifest = await getManifest();
    for (let i = 0; i < n; i++) {
      if (!w.equal(manifest.chunkHashes.subarray(32 * i, 32 * i + 32), hashes[i])) throw new Error(`commitment names another hash for chunk ${i}`);
    }
  }
  await stream.close();
  const whole = blake3(data);
  if (!w.equal(whole, manifest.hash)) throw new Error('the received bytes do not hash to the manifest hash');
  emit('file_received', {
    transfer_id: id, from: peer, name: offer.name, size, chunk_size: chunkSize, chunks: n,
    chunks_verified: hashes.length, hash: w.hex(whole), flow: withHash ? 'manifest first' : 'hash-as-you-send',
    content_matches: w.equal(data, fileData(size)),
  });
  const done = await node.dialProtocol(pid, w.FILE_PROTOCOL, { signal: AbortSignal.timeout(10000) });
  await w.send(done, w.frame(w.encodeFrame('notice', { id: offer.id, kind: w.NoticeKind.DONE, hash: whole })));
  const st = await readFrame(done, w.FILE_MAX_FRAME);
  await done.close();
  const { kind, msg } = w.decodeFrame(st);
  emit('file_done', { transfer_id: id, direction: 'receive', peer, hash: w.hex(whole), status: kind === 'status' ? msg.code : -1 });
}

// onNotice takes DONE for a file this peer sent, checking its hash.
async function onNotice(stream, peer, n) {
  const id = w.hex(n.id);
  const t = outgoing.get(id);
  if (t === undefined || t.peer !== peer) return status(stream, w.Code.NOT_FOUND, '');
  if (n.kind < w.NoticeKind.REJECT || n.kind > w.NoticeKind.FAILED || n.kind === w.NoticeKind.RESUME) return status(stream, w.Code.BAD_REQUEST, 'kind');
  const fields = { transfer_id: id, direction: 'send', peer, kind: n.kind, code: n.code };
  if (n.kind === w.NoticeKind.DONE) {
    fields.hash = w.hex(n.hash);
    fields.hash_matches = w.equal(n.hash, t.hash);
  }
  emit(n.kind === w.NoticeKind.DONE ? 'file_done' : 'file_notice', fields);
  await status(stream, w.Code.OK, '');
}

// serveGet answers Gets on one pull stream for a file this peer offered.
async function serveGet(stream, r, peer, get) {
  let served = 0;
  for (let g = get; g !== null;) {
    const t = outgoing.get(w.hex(g.id));
    if (t === undefined || t.peer !== peer) return status(stream, w.Code.NOT_FOUND, '');
    const n = t.hashes.length;
    if (!w.validRanges(g.ranges, n)) return status(stream, w.Code.BAD_REQUEST, 'ranges');
    if (g.manifest) {
      await w.send(stream, w.frame(w.encodeFrame('manifest', { size: t.data.length, chunkSize: t.chunkSize, hash: t.hash, chunkHashes: w.concat(t.hashes) })));
    }
    for (const [start, count] of g.ranges) {
      for (let i = start; i < start + count; i++) {
        const bytes = t.data.subarray(i * t.chunkSize, (i + 1) * t.chunkSize);
        await w.send(stream, w.frame(w.encodeFrame('chunk', { index: i, length: bytes.length })));
        await w.send(stream, bytes);
        served++;
      }
    }
    const f = await r.next();
    if (f === null) break;
    const next = w.decodeFrame(f);
    if (next.kind !== 'get') throw new Error(`${next.kind} on a pull stream`);
    g = next.msg;
  }
  await stream.close();
  emit('file_served', { transfer_id: w.hex(get.id), peer, chunks: served });
}

// sendFile offers a generated file (with its hash: the manifest-first
// flow) and reports the recipient's Status.
async function sendFile(cmd) {
  const data = fileData(cmd.size);
  const chunkSize = w.chooseChunkSize(data.length, cmd.chunk_size ?? (1 << 20));
  const n = w.chunkLayout(data.length, chunkSize);
  const hashes = Array.from({ length: n }, (_, i) => chunkHash(data.subarray(i * chunkSize, (i + 1) * chunkSize), i, chunkSize, n));
  const hash = rootOf(hashes);
  if (!w.equal(hash, blake3(data))) throw new Error('chunk hashes do not combine into the file hash');
  const id = randomBytes(16);
  outgoing.set(w.hex(id), { peer: cmd.peer, data, chunkSize, hashes, hash });
  const stream = await node.dialProtocol(peerIdFromString(cmd.peer), w.FILE_PROTOCOL, { signal: AbortSignal.timeout(10000) });
  await w.send(stream, w.frame(w.encodeFrame('offer', { id, name: cmd.name, size: data.length, hash })));
  const { kind, msg } = w.decodeFrame(await readFrame(stream, w.FILE_MAX_FRAME));
  await stream.close();
  if (kind !== 'status') throw new Error(`offer answered with ${kind}`);
  emit('file_offered', { transfer_id: w.hex(id), peer: cmd.peer, size: data.length, chunk_size: chunkSize, chunks: n, hash: w.hex(hash), status: msg.code });
}

async function readFrame(stream, max) {
  const timer = setTimeout(() => stream.abort(new Error('no answer within 15 s')), 15000);
  try {
    const f = await new w.FrameReader(stream, max).next();
    if (f === null) throw new Error('stream closed before the answer');
    return f;
  } finally {
    clearTimeout(timer);
  }
}

const envelopeFor = (kind, cmd) => w.encodeEnvelope({
  kind,
  id: randomBytes(16),
  nick: cmd.nick,
  sentAtMs: Date.now(),
  text: cmd.text ?? '',
  leaving: cmd.leaving === true,
});

async function publish(kind, cmd) {
  const topic = topicOf(cmd.room);
  const room = rooms.get(topic);
  const env = envelopeFor(kind, cmd);
  const v = w.validateEnvelope(env); // rooms §6: own messages pass the same checks
  if (v.result !== 'accept') throw new Error(`own envelope refused: ${v.reason}`);
  const data = room.sealKey ? w.seal(room.sealKey, topic, node.peerId.toMultihash().bytes, env, randomBytes(24)) : env;
  const res = await pubsub.publish(topic, data);
  emit('published', { room: room.name, kind, id: w.hex(v.env.id), recipients: res.recipients.map(String) });
}

// topicOf finds a joined room by name: a private room by its name, else
// the public room.
function topicOf(name) {
  for (const [topic, room] of rooms) if (room.sealKey && room.name === name) return topic;
  const topic = w.publicTopic(name);
  if (!rooms.has(topic)) throw new Error(`not in room ${name}`);
  return topic;
}

async function sendDM(cmd) {
  const id = randomBytes(16);
  const stream = await node.dialProtocol(peerIdFromString(cmd.peer), w.DM_PROTOCOL, { signal: AbortSignal.timeout(10000) });
  try {
    stream.send(w.frame(w.encodeDM({ id, text: cmd.text, nick: cmd.nick, sentAtMs: Date.now() })));
    const ack = w.decodeAck(await readOne(stream, w.DM_MAX_ACK));
    if (w.hex(ack.id) !== w.hex(id)) throw new Error(`ack for another id ${w.hex(ack.id)}`);
    await stream.close();
    emit('dm_ack', { peer: cmd.peer, id: w.hex(id), status: ack.status, reason: ack.reason });
  } catch (err) {
    stream.abort(err);
    throw err;
  }
}

async function readOne(stream, max) {
  const timer = setTimeout(() => stream.abort(new Error('no ack within 10 s')), 10000);
  try {
    const f = await new w.FrameReader(stream, max).next();
    if (f === null) throw new Error('stream closed before the ack');
    return f;
  } finally {
    clearTimeout(timer);
  }
}

async function run(cmd) {
  switch (cmd.cmd) {
    case 'dial': {
      const conn = await node.dial(multiaddr(cmd.addr), { signal: AbortSignal.timeout(10000) });
      emit('dialed', { peer_id: conn.remotePeer.toString(), addr: conn.remoteAddr.toString() });
      return;
    }
    case 'join': {
      let topic, room;
      if (cmd.invite !== undefined) {
        const { key, name } = w.decodeInvite(cmd.invite);
        const r = w.privateRoom(key, name);
        topic = r.topic;
        room = { name, sealKey: r.sealKey };
      } else {
        topic = w.publicTopic(cmd.room);
        room = { name: w.canonicalName(cmd.room) };
      }
      rooms.set(topic, room);
      pubsub.topicValidators.set(topic, validate);
      pubsub.subscribe(topic);
      emit('joined', { room: room.name, topic, private: room.sealKey !== undefined });
      return;
    }
    case 'publish': return publish(w.Kind.TEXT, cmd);
    case 'presence': return publish(w.Kind.PRESENCE, cmd);
    case 'dm': return sendDM(cmd);
    case 'send_file': return sendFile(cmd);
    case 'quit': return quit(0);
    default: throw new Error(`unknown command ${cmd.cmd}`);
  }
}

let quitting = false;
async function quit(code) {
  if (quitting) return;
  quitting = true;
  await node.stop();
  process.exit(code);
}

emit('ready', { peer_id: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) });
log(`node ${process.version}, libp2p peer ${node.peerId}`);

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let cmd;
  try { cmd = JSON.parse(line); } catch { emit('error', { error: `not JSON: ${line}` }); return; }
  run(cmd).catch((err) => emit('error', { cmd: cmd.cmd, error: String(err?.message ?? err) }));
});
rl.on('close', () => { quit(0); });
process.on('SIGTERM', () => { quit(0); });
