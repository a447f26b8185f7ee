// Package interop checks Parley against a second implementation written
// from docs/PROTOCOL.md alone, in JavaScript (Node.js).
//
// What it covers now: vectors.mjs re-implements, with Node's own Unicode
// normalization and no packages, the name key (room names and nicks),
// room name and nick validity, public and private room topics, rendezvous
// namespaces, seal keys, invite codes, Envelope encoding and the seal
// associated data, and checks them against docs/vectors. It does not yet
// run a js-libp2p peer against a parley process (see issue 23).
//
// The tests skip, saying so, when node is not installed; .ci/run installs
// it.
package interop
