// Package interop checks Parley against a second implementation written
// from docs/PROTOCOL.md alone, in JavaScript (Node.js).
//
// vectors.mjs re-implements, with Node's own Unicode normalization and no
// packages, the name key (room names and nicks), room name and nick
// validity, public and private room topics, rendezvous namespaces, seal
// keys, invite codes, Envelope encoding and the seal associated data, and
// checks them against docs/vectors (TestVectorsInNode).
//
// js/ is a js-libp2p peer (peer.mjs, wire.mjs, sync.mjs, blake3.mjs;
// packages pinned by package-lock.json). TestJSLibp2pPeer runs it against
// a real parley process on 127.0.0.1: connection, public and private room
// messages both ways, presence both ways over the room sync's member set
// (/parley/rooms/sync/1.0.0, the js peer as responder and as initiator),
// one room name rule across stacks (ΣΑΣ/σας, İstanbul/İSTANBUL, full-width
// ＬＯＢＢＹ２/lobby2), leaving both ways, a direct message each way with its
// ack, a file each way over /parley/file/2.0.0 (manifest first one way,
// hash-as-you-send the other, chunk and file hashes checked on both
// sides), and parley shutting down with the js peer connected.
// TestSealVectorsInJS checks its sealing against docs/vectors,
// TestVectorsInJS (conformance.mjs) the transfer, dm, identity, sync (also
// with sync.mjs), members and mailbox vectors. docs/PROTOCOL.md ("Interop
// test against js-libp2p") lists what it covers and what js-libp2p needed.
//
// TestProtocolDocMatchesProtos checks that docs/PROTOCOL.md gives every
// wire message and enum of every .proto, field by field, in a proto block.
//
// The tests skip, saying so, when node is not installed, or when the js
// packages are not (run `npm ci` in internal/interop/js); under CI
// (CI set), where .ci/run installs both, a missing package fails instead.
package interop
