package events

import "github.com/libp2p/go-libp2p/core/peer"

// Ready is reported once the node listens and is ready for commands.
type Ready struct {
	PeerID      peer.ID `json:"peer_id"`
	Nick        string  `json:"nick"`
	Fingerprint string  `json:"fingerprint"`
	// Addrs are full multiaddrs ending in /p2p/<peer_id> that other peers
	// can dial.
	Addrs []string `json:"addrs"`
}

// PeerConnected is reported when the first connection to a peer opens.
type PeerConnected struct {
	PeerID peer.ID `json:"peer_id"`
	Addr   string  `json:"addr"`
}

// PeerDisconnected is reported when the last connection to a peer closes,
// including when the liveness check gives up on a peer that stopped
// answering. Reason is "closed" or "liveness".
type PeerDisconnected struct {
	PeerID peer.ID `json:"peer_id"`
	Addr   string  `json:"addr"`
	Reason string  `json:"reason,omitempty"`
}

// Error reports a failed command or a runtime problem the user should see.
// Command is the command line that failed, empty for runtime problems.
type Error struct {
	Error   string `json:"error"`
	Command string `json:"command"`
	// Code, on some runtime problems, names the problem for scripts (one
	// of the Err* codes); omitted otherwise.
	Code string `json:"code,omitempty"`
}

// Codes of runtime Error events (Error.Code).
const (
	// ErrClockSkew: peers' sent times show that this node's clock is off.
	ErrClockSkew = "clock_skew"
)

// Info is a human-readable answer to a command (for example /help or
// /peers); Data, when set, carries the same answer as structured fields.
type Info struct {
	Text string `json:"text"`
	Data any    `json:"data,omitempty"`
}

func (Ready) Type() string            { return "ready" }
func (PeerConnected) Type() string    { return "peer_connected" }
func (PeerDisconnected) Type() string { return "peer_disconnected" }
func (Error) Type() string            { return "error" }
func (Info) Type() string             { return "info" }
