// A js-libp2p peer that speaks Parley's rooms and direct-message protocols,
// written from docs/PROTOCOL.md. It is driven by internal/interop's Go
// test: commands are JSON lines on stdin, events JSON lines on stdout,
// logs on stderr. It listens on 127.0.0.1 only and dials only what it is
// told to.
//
// Commands:
//   {"cmd":"dial","addr":MULTIADDR}
//   {"cmd":"join","room":NAME,"nick":N}                  public room NAME
//   {"cmd":"join","invite":CODE,"nick":N}                private room
//                                  with a nick, the peer is a member: it
//                                  signs its presence (KIND_PRESENCE) at
//                                  once and every 30 s, and the member set
//                                  of the room sync spreads it (rooms §7,
//                                  §13)
//   {"cmd":"publish","room":NAME,"nick":N,"text":T}      KIND_TEXT
//   {"cmd":"presence","room":NAME,"nick":N}              a new presence,
//                                  synced with up to 3 topic peers
//   {"cmd":"leave","room":NAME}                          PRESENCE leaving
//                                  on the topic, then unsubscribe
//   {"cmd":"dm","peer":PEER_ID,"nick":N,"text":T}        /parley/dm/1.0.0
//   {"cmd":"send_file","peer":PEER_ID,"name":N,"size":S,"chunk_size":C}
//                                  offer a file of S bytes (byte k = k mod
//                                  251) over /parley/file/2.0.0; offers
//                                  received are accepted and pulled at once
//   {"cmd":"quit"}
// Events: ready, peer_connected, subscribed, joined, published, message,
// presence (via "topic" or "sync"), synced_message, sync (one per
// session), sync_refused, sync_aborted, gossip_stream_closed, refused, dm, dm_ack, file_offered, file_served, file_offer,
// file_received, file_done, file_notice, left, error (see jspeer_test.go).
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
import * as sy from './sync.mjs';

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
    // The node's identity key, to sign the presence items of the room
    // sync as GossipSub would sign them (a service sees the components).
    keys: (components) => ({ privateKey: components.privateKey }),
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

// js gossipsub reads an inbound stream to its end but never closes its own
// (write) side, so a go-libp2p-pubsub peer that half-closes its outbound
// stream at shutdown and waits for the other side's close (Parley does, at
// most 1 s: rooms §7) waits the whole time. Close it when the remote's end
// is read.
const createInbound = pubsub.createInboundStream.bind(pubsub);
pubsub.createInboundStream = (peerId, stream) => {
  stream.addEventListener('remoteCloseWrite', () => {
    stream.close().then(() => emit('gossip_stream_closed', { peer_id: peerId.toString() }), (err) => stream.abort(err));
  }, { once: true });
  createInbound(peerId, stream);
};
const self = node.peerId.toMultihash().bytes;

// topic -> { name, key and sealKey (private rooms), nick (a member),
// members: Map(author hex -> {it, raw}) the member set, history and shares:
// Map(item ID hex -> {it, raw}) what sync sessions brought }
const rooms = new Map();
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
  else if (env.kind === w.Kind.PRESENCE) emit('presence', { ...common, via: 'topic', leaving: env.leaving === true, peer_record: env.peerRecord?.length > 0 });
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

// ---- room sync (/parley/rooms/sync/1.0.0, rooms §13) --------------------
//
// Periodic presence travels on the sync's member set (rooms §7): a member
// signs a PRESENCE envelope as GossipSub would sign it, without publishing
// it, and sessions hand it on. Parley opens a member-set session with
// every new topic peer (and history and shares sessions with its first
// two), so answering as the responder is enough for presence both ways;
// the peer also initiates after its own presence changed, as a member must.

const MEMBER_WINDOW_MS = 90_000;
const SKEW_MS = 5 * 60_000;
const HISTORY_WINDOW_MS = 7 * 86_400_000;
const MAX_ITEM = 65536 + 2048;

const b58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
function base58(b) {
  let n = BigInt('0x' + (w.hex(b) || '0'));
  let s = '';
  while (n > 0n) { s = b58[Number(n % 58n)] + s; n /= 58n; }
  for (const x of b) { if (x !== 0) break; s = '1' + s; }
  return s;
}

const setName = (set) => ({ 1: 'history', 2: 'members', 3: 'shares' })[set];
const sinceFor = (set, now = Date.now()) => now - (set === sy.SyncSet.MEMBERS ? MEMBER_WINDOW_MS : HISTORY_WINDOW_MS);

// localItems is this peer's side of a set, items sent at or after since.
function localItems(room, set, since) {
  const m = set === sy.SyncSet.MEMBERS ? room.members : set === sy.SyncSet.HISTORY ? room.history : room.shares;
  return [...m.values()].filter((x) => x.it.ms >= BigInt(since));
}

// checkItem verifies an item as a live message (rooms §13, Verification):
// size, the author's GossipSub signature, the topic, the seal, the
// envelope rules, the set's kind and window. It returns the item or throws.
async function checkItem(topic, room, set, raw, now = Date.now()) {
  if (raw.length > MAX_ITEM) throw new Error('item too large');
  const m = sy.decodeItem(raw);
  if (m.topic !== topic) throw new Error('item of another topic');
  const author = peerIdFromString(base58(m.from));
  const key = author.publicKey;
  if (key == null || !(await key.verify(w.signedBytes(m), m.signature))) throw new Error('bad item signature');
  const data = room.sealKey ? w.open(room.sealKey, topic, m.from, m.data) : m.data;
  const v = w.validateEnvelope(data, null); // the set's window below, not the live ±5 min
  if (v.result !== 'accept') throw new Error(`envelope: ${v.reason}`);
  const env = v.env;
  const kind = { [sy.SyncSet.HISTORY]: w.Kind.TEXT, [sy.SyncSet.MEMBERS]: w.Kind.PRESENCE, [sy.SyncSet.SHARES]: w.Kind.FILE_SHARE }[set];
  if (env.kind !== kind) throw new Error(`kind ${env.kind} in the ${setName(set)} set`);
  const window = set === sy.SyncSet.MEMBERS ? MEMBER_WINDOW_MS + SKEW_MS : HISTORY_WINDOW_MS;
  if (env.sentAtMs > now + SKEW_MS || env.sentAtMs < now - window) throw new Error('sent time out of the window');
  return { author, env, raw, it: { ms: BigInt(env.sentAtMs), id: sy.itemId(m.from, env.id) } };
}

// takeItems verifies the items a session brought and takes in the new
// ones; want (initiator) names the IDs asked for, each once.
async function takeItems(topic, room, set, raws, want) {
  let got = 0;
  for (const raw of raws) {
    const x = await checkItem(topic, room, set, raw);
    const id = w.hex(x.it.id);
    if (want !== null) {
      if (!want.has(id)) throw new Error('an item not wanted, or twice');
      want.delete(id);
    }
    if (w.equal(x.author.toMultihash().bytes, self)) continue;
    got++;
    const common = { room: room.name, private: room.sealKey !== undefined, topic, from: x.author.toString(), nick: x.env.nick, id: w.hex(x.env.id), sent_at_ms: x.env.sentAtMs, signature_verified: true, via: 'sync' };
    if (set === sy.SyncSet.MEMBERS) {
      const held = room.members.get(x.author.toString());
      if (held && sy.compareItems(held.it, x.it) >= 0) continue;
      if (held) room.superseded.add(w.hex(held.it.id));
      room.members.set(x.author.toString(), { it: x.it, raw });
      emit('presence', { ...common, leaving: x.env.leaving === true });
    } else if (!(set === sy.SyncSet.HISTORY ? room.history : room.shares).has(id)) {
      (set === sy.SyncSet.HISTORY ? room.history : room.shares).set(id, { it: x.it, raw });
      emit('synced_message', { ...common, set: setName(set), text: x.env.text });
    }
  }
  return got;
}

// syncStream runs one session on a stream, as either side, and reports it.
async function syncStream(stream, remote, initiator, start) {
  const r = new w.FrameReader(stream, sy.MAX_HELLO);
  const next = async () => {
    const f = await r.next();
    if (f === null) throw Object.assign(new Error('sync stream ended early'), { name: 'StreamEndedError' });
    return f;
  };
  const remoteBytes = remote.toMultihash().bytes;
  let topic, set, room, rc, sent = 0, got = 0;
  if (initiator) {
    ({ topic, set } = start);
    room = rooms.get(topic);
    const hello = { topic, set, nonce: randomBytes(32), sinceMs: sinceFor(set) };
    await w.send(stream, w.frame(sy.encodeHello(hello)));
    const ch = sy.decodeChallenge(await next());
    if (ch.nonce.length !== 32) throw new Error('challenge nonce not of 32 bytes');
    const first = {};
    if (room.key) {
      const k = sy.syncKey(room.key);
      const proof = { topic, set, nonceI: hello.nonce, nonceR: ch.nonce, initiator: self, responder: remoteBytes };
      if (!w.equal(ch.mac, sy.proofMac(k, 'responder', proof))) throw new Error("responder's key proof");
      first.mac = sy.proofMac(k, 'initiator', proof);
    }
    r.max = sy.MAX_FRAME;
    rc = new sy.Reconciler(localItems(room, set, hello.sinceMs).map((x) => x.it), true);
    await w.send(stream, w.frame(sy.encodeFrame({ ...first, ranges: rc.initial() })));
    for (let round = 0; ; round++) {
      if (round >= sy.MAX_ROUNDS) throw new Error('over 24 rounds');
      const f = sy.decodeFrame(await next());
      const { out, settled } = rc.process(f.ranges);
      if (settled) break;
      await w.send(stream, w.frame(sy.encodeFrame({ ranges: out })));
    }
    // The member set: the presences this peer replaced (its own earlier
    // ones, which a lagging responder still lists) are not asked for.
    if (set === sy.SyncSet.MEMBERS) rc.need = rc.need.filter((id) => !room.superseded.has(w.hex(id)));
    const have = new Set(rc.have.map(w.hex));
    const raws = localItems(room, set, 0).filter((x) => have.has(w.hex(x.it.id))).map((x) => x.raw);
    await w.send(stream, w.frame(sy.encodeFrame({ want: rc.need, items: raws, done: true })));
    sent = raws.length;
    const want = new Set(rc.need.map(w.hex));
    for (let frames = 0; ; frames++) {
      if (frames > rc.need.length + 1) throw new Error('too many item frames');
      const f = sy.decodeFrame(await next());
      if (f.ranges.length || f.want.length) throw new Error('ranges among items');
      got += await takeItems(topic, room, set, f.items, want);
      if (f.done) break;
    }
  } else {
    const hello = sy.decodeHello(await next());
    ({ topic, set } = hello);
    room = rooms.get(topic);
    if (room === undefined || hello.nonce.length !== 32 || !setName(set)) throw new Error(`hello for ${topic}, set ${set}: refused`);
    const nonceR = randomBytes(32);
    const proof = { topic, set, nonceI: hello.nonce, nonceR, initiator: remoteBytes, responder: self };
    const k = room.key ? sy.syncKey(room.key) : undefined;
    await w.send(stream, w.frame(sy.encodeChallenge({ nonce: nonceR, mac: k && sy.proofMac(k, 'responder', proof) })));
    r.max = sy.MAX_FRAME;
    let f = sy.decodeFrame(await next());
    if (k && !w.equal(f.mac, sy.proofMac(k, 'initiator', proof))) throw new Error("initiator's key proof");
    rc = new sy.Reconciler(localItems(room, set, Number(hello.sinceMs)).map((x) => x.it), false);
    for (let round = 0; !f.done; round++) {
      if (round >= sy.MAX_ROUNDS) throw new Error('over 24 rounds');
      const { out } = rc.process(f.ranges);
      await w.send(stream, w.frame(sy.encodeFrame({ ranges: out })));
      f = sy.decodeFrame(await next());
    }
    got = await takeItems(topic, room, set, f.items, null);
    const want = new Set(f.want.map(w.hex));
    const raws = localItems(room, set, Number(hello.sinceMs)).filter((x) => want.has(w.hex(x.it.id))).map((x) => x.raw);
    await w.send(stream, w.frame(sy.encodeFrame({ items: raws, done: true })));
    sent = raws.length;
  }
  await stream.close();
  emit('sync', { role: initiator ? 'initiator' : 'responder', peer: remote.toString(), room: room.name, set: setName(set), sent, got });
}

// syncFailed reports a session that failed: sync_aborted when the stream
// or connection went away (the other side left the room, reset, timed
// out), sync_refused when this peer refused what it was sent.
const aborts = new Set(['StreamEndedError', 'StreamResetError', 'StreamAbortedError', 'StreamStateError', 'ConnectionClosedError',
  'ConnectionClosingError', 'MuxerClosedError', 'AbortError', 'TimeoutError', 'UnsupportedProtocolError']);
function syncFailed(role, peer, err) {
  emit(aborts.has(err?.name) ? 'sync_aborted' : 'sync_refused', { role, peer: peer.toString(), error: `${err?.name}: ${err?.message ?? err}` });
}

await node.handle(sy.SYNC_PROTOCOL, async (stream, connection) => {
  const timer = setTimeout(() => stream.abort(new Error('sync session over 20 s')), 20000);
  try {
    await syncStream(stream, connection.remotePeer, false);
  } catch (err) {
    syncFailed('responder', connection.remotePeer, err);
    stream.abort(err);
  } finally {
    clearTimeout(timer);
  }
}, { runOnLimitedConnection: true });

// syncWith runs a session of set in the room of topic with peer, as the
// initiator, over an existing connection.
async function syncWith(peer, topic, set) {
  const stream = await node.dialProtocol(peer, sy.SYNC_PROTOCOL, { signal: AbortSignal.timeout(20000) });
  try {
    await syncStream(stream, peer, true, { topic, set });
  } catch (err) {
    stream.abort(err);
    throw err;
  }
}

// signPresence makes this member's current presence in the room of topic
// and syncs the member set with up to 3 random topic peers.
async function signPresence(topic) {
  const room = rooms.get(topic);
  const env = w.encodeEnvelope({ kind: w.Kind.PRESENCE, id: randomBytes(16), nick: room.nick, sentAtMs: Date.now() });
  const v = w.validateEnvelope(env);
  if (v.result !== 'accept') throw new Error(`own presence refused: ${v.reason}`);
  const data = room.sealKey ? w.seal(room.sealKey, topic, self, env, randomBytes(24)) : env;
  const raw = await sy.signItem(node.services.keys.privateKey, self, topic, data, randomBytes(8));
  const old = room.members.get(node.peerId.toString());
  if (old) room.superseded.add(w.hex(old.it.id));
  room.members.set(node.peerId.toString(), { it: { ms: BigInt(v.env.sentAtMs), id: sy.itemId(self, v.env.id) }, raw });
  const peers = pubsub.getSubscribers(topic).sort(() => Math.random() - 0.5).slice(0, 3);
  await Promise.all(peers.map((p) => syncWith(p, topic, sy.SyncSet.MEMBERS).catch((err) => syncFailed('initiator', p, err))));
}

// Every 30 s ±10%, a member signs its presence again (rooms §7).
(function refresh() {
  setTimeout(async () => {
    for (const [topic, room] of rooms) if (room.nick) await signPresence(topic).catch(() => {});
    refresh();
  }, 27000 + Math.random() * 6000).unref();
})();

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
        room = { name, key, sealKey: r.sealKey };
      } else {
        topic = w.publicTopic(cmd.room);
        room = { name: w.canonicalName(cmd.room) };
      }
      Object.assign(room, { nick: cmd.nick, members: new Map(), history: new Map(), shares: new Map(), superseded: new Set() });
      rooms.set(topic, room);
      // The presence is signed before the subscription goes out, so the
      // first session a topic peer opens brings it.
      if (room.nick) await signPresence(topic);
      pubsub.topicValidators.set(topic, validate);
      pubsub.subscribe(topic);
      emit('joined', { room: room.name, topic, private: room.sealKey !== undefined });
      return;
    }
    case 'publish': return publish(w.Kind.TEXT, cmd);
    case 'presence': {
      const topic = topicOf(cmd.room);
      rooms.get(topic).nick = cmd.nick;
      await signPresence(topic);
      emit('presence_signed', { room: rooms.get(topic).name, nick: cmd.nick });
      return;
    }
    case 'leave': {
      const topic = topicOf(cmd.room);
      const room = rooms.get(topic);
      await publish(w.Kind.PRESENCE, { room: cmd.room, nick: room.nick ?? 'js', leaving: true });
      pubsub.unsubscribe(topic);
      rooms.delete(topic);
      emit('left', { room: room.name, topic });
      return;
    }
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
