// Package adversarial holds Parley's adversarial test suite: whole nodes
// (node.Node: overlay host, rooms, direct messages, trust) on loopback,
// attacked by raw libp2p hosts that speak the wire protocols the way a
// malicious peer would. Every case asserts three things: the attack is
// refused with a clear outcome (a reset, a refusal, an error event),
// nothing honest is lost, and the node still serves honest peers
// afterwards. docs/SECURITY.md lists each case and where the cases that
// need a package's internals live (rooms, dm, overlay, identity, trust,
// cmd/parley).
//
// The package has no non-test code.
package adversarial
