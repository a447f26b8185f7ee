package events

import (
	"encoding/json"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Reachability is reported when what the node knows about its own
// reachability changes: the verdict of AutoNAT, or the set of relays it
// holds a reservation on (and so the relayed addresses others can reach it
// by).
type Reachability struct {
	// Reachability is "unknown", "public" or "private".
	Reachability string `json:"reachability"`
	// Relays are the peer IDs of the relays that hold a reservation for
	// this node, sorted.
	Relays []peer.ID `json:"relays"`
	// RelayAddrs are the relayed addresses, ending in /p2p/<own peer ID>,
	// that peers who cannot dial this node directly can use.
	RelayAddrs []string `json:"relay_addrs"`
}

// PeerPath is reported when the best connection path to a connected peer
// changes, for example when hole punching replaces a relayed connection by
// a direct one, or the relay that carries it changes. Path is "lan",
// "direct" or "relayed"; Addr is the remote address of the connection that
// now carries the peer.
type PeerPath struct {
	PeerID peer.ID `json:"peer_id"`
	Path   string  `json:"path"`
	Addr   string  `json:"addr"`
	// Previous is the path before the change.
	Previous string `json:"previous"`
	// Via is the relay's peer ID when Path is "relayed" and the
	// connection's address names it; omitted otherwise.
	Via peer.ID `json:"via,omitempty"`
	// HolePunched: the direct connection was opened by hole punching
	// (DCUtR); omitted when false.
	HolePunched bool `json:"hole_punched,omitempty"`
}

func (Reachability) Type() string { return "reachability" }
func (PeerPath) Type() string     { return "peer_path" }

// PeerDialFailed is reported for every failed attempt to connect to a
// kept peer (--peer, /connect): Reason is the kind of failure
// (overlay.DialRefused, …), Error says it in one line, and RetryIn is
// how long until the next attempt.
type PeerDialFailed struct {
	PeerID  peer.ID       `json:"peer_id"`
	Addr    string        `json:"addr"`
	Reason  string        `json:"reason"`
	Error   string        `json:"error"`
	RetryIn time.Duration `json:"-"`
}

func (PeerDialFailed) Type() string { return "peer_dial_failed" }

// MarshalJSON writes retry_in_ms in whole milliseconds.
func (e PeerDialFailed) MarshalJSON() ([]byte, error) {
	type plain PeerDialFailed
	return json.Marshal(struct {
		plain
		RetryInMillis int64 `json:"retry_in_ms"`
	}{plain(e), e.RetryIn.Milliseconds()})
}
