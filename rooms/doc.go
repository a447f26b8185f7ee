// Package rooms runs Parley's chat rooms over GossipSub: public rooms
// anyone can join by name, and private rooms whose messages only holders of
// the room key can read or write. The wire protocol is specified in
// docs/PROTOCOL.md and the events in docs/EVENTS.md.
//
// # Topics
//
// One GossipSub topic per room, versioned: a public room "lobby" is
// "parley/room/1/public/lobby"; a private room is
// "parley/room/1/private/<32 hex digits>", derived with HKDF-SHA256 from its
// 256-bit key and its name, so the topic reveals neither. Keys come from
// crypto/rand (Create), from an invite code (JoinInvite), or from Argon2id
// over a passphrase and the room name (JoinPassphrase).
//
// # Messages
//
// Every message is a protobuf Envelope (pb.Envelope: kind, random 16-byte
// id, nick, sent_at, text / presence / file share). In a private room the
// Envelope is sealed with XChaCha20-Poly1305 under a fresh random nonce,
// with the topic and the publisher's peer ID as associated data. GossipSub
// signs every message (StrictSign); the author shown is always the signed
// `from` peer ID, and the nick is display only.
//
// # Addresses
//
// Presence announcements carry the author's libp2p signed peer record
// (peerrecord.go): the validator rejects one not signed by the author's
// key or not naming the author, over MaxPeerRecordSize bytes or
// MaxPeerRecordAddrs addresses. A node shares only addresses the room can
// use (public ones; private-range ones in private rooms; loopback ones
// when it has nothing else), and a receiver keeps only those it could use
// in the host's peerstore for PeerRecordTTL, so that direct messages and
// transfers can dial members it is not connected to.
//
// # Validation
//
// A ValidatorEx per room topic runs before delivery and forwarding, for
// received and for own messages: size, protobuf, kind, id, nick, text and
// file share rules, opening the seal, clock skew, replays (a per-author
// record of message IDs that is stored and outlives restarts), and a
// per-author token bucket. Deterministic failures are rejected (and cost
// the forwarding peer its GossipSub score); time-, state- and
// version-dependent ones are ignored. A subscription filter admits only
// room topics, at most MaxPeerTopics per peer, so that no peer can make the
// node remember an unbounded number of topics.
//
// # Flow
//
// New starts GossipSub on the host and rejoins the rooms stored in the
// database. Join, Create, JoinInvite and JoinPassphrase subscribe to a
// room's topic and start three goroutines for it: delivery (store, then
// emit), topic peer events (to release publishers waiting for the mesh),
// and presence (announce at an interval, reply to newcomers, mark silent
// members gone). Leave and Close stop them; Close also stops GossipSub.
//
// # Lifecycle
//
// The ctx given to New bounds construction only: the service runs until
// Close, on a context of its own. Leave and Close first announce leaving
// and wait, at most a second, until GossipSub has written the
// announcement to every peer on the room's topic; only then do they stop
// the room (and Close stops GossipSub). Close, after which the host
// closes and drops whatever its stream muxer has not sent yet, also waits
// (within the same second) until those peers have read the announcement:
// it half-closes its outbound GossipSub streams to them and waits until
// each peer closes its end in turn. So a node that quits, however it is
// stopped, is shown gone on the others at once rather than after
// PresenceTimeout.
package rooms
