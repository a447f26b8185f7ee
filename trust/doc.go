// Package trust remembers the peers a node has seen and what the user knows
// about their keys.
//
// Three kinds of facts are kept in bbolt buckets named "trust/...":
//
//   - Known peers ("trust/peers"): for every peer ID seen claiming a nick,
//     the last nick it claimed and when it was first and last seen.
//   - Nick pins ("trust/pins"): trust on first use. The first peer seen with
//     a nick holds that nick's pin for good. When another key later claims
//     a pinned nick, Observe reports a PinConflict (the node shows it as a
//     loud trust_warning) and the pin stays where it is. Nicks are compared
//     by their RFC 8266 (PRECIS Nickname) comparison key, so "Alice",
//     "alice" and the full-width "Ａlice" are the same nick.
//   - Trust marks: Trust records that the user compared the pair's safety
//     number (identity.SafetyNumber) with the peer out of band. It is the
//     one way to move a pin: trusting a peer that claims a nick pinned to
//     another key moves the pin to the trusted peer.
//
// Resolve turns what a user typed into a peer ID: a peer ID, a nick that
// only one known peer uses (counting the pin holder), a nick with a
// fingerprint prefix ("alice#ABCD"), or a full fingerprint. An ambiguous
// name is an *AmbiguousError listing the candidates with their
// fingerprints; the node never guesses.
//
// Whois gathers what /whois shows: the stored facts plus the live
// connections (direct or relayed) and known addresses from the host.
//
// The store keeps every record in memory as well (writes go to bbolt first),
// so Observe, which the node calls for every message, costs a write only
// when something changed or the last-seen time is more than a minute old.
package trust
