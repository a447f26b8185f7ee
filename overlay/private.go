package overlay

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// ErrQUICInPrivateNetwork is returned for a QUIC (or other non-TCP) listen
// address on a host with a swarm key: go-libp2p's QUIC transport cannot
// carry a private network.
var ErrQUICInPrivateNetwork = errors.New("a private network (swarm key) runs over TCP only; QUIC cannot carry it")

// transportOptions returns the transports of the host: TCP and QUIC, or,
// with a swarm key, the private network over TCP alone.
func transportOptions(cfg *Config, listen []ma.Multiaddr) (libp2p.Option, error) {
	// No SO_REUSEPORT: with it a second process could bind a port that
	// is already in use and steal half of its connections.
	tcpTransport := libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport())
	if cfg.SwarmKey == nil {
		return libp2p.ChainOptions(tcpTransport, libp2p.Transport(quic.NewTransport)), nil
	}
	if len(cfg.SwarmKey) != SwarmKeySize {
		return nil, fmt.Errorf("%w: key is %d bytes, want %d", ErrBadSwarmKey, len(cfg.SwarmKey), SwarmKeySize)
	}
	if cfg.PublicDHT {
		return nil, errors.New("the public DHT cannot be used in a private network (swarm key): its peers do not have the key")
	}
	for _, a := range listen {
		if !isTCP(a) {
			return nil, fmt.Errorf("listen address %s: %w; use a /tcp/ address", a, ErrQUICInPrivateNetwork)
		}
	}
	return libp2p.ChainOptions(tcpTransport, libp2p.PrivateNetwork(cfg.SwarmKey)), nil
}

// isTCP reports whether a is a plain TCP address (no UDP, QUIC, WebSocket
// or other transport on top).
func isTCP(a ma.Multiaddr) bool {
	hasTCP := false
	for _, c := range a {
		switch c.Protocol().Code {
		case ma.P_TCP:
			hasTCP = true
		case ma.P_IP4, ma.P_IP6, ma.P_DNS, ma.P_DNS4, ma.P_DNS6, ma.P_IP6ZONE, ma.P_P2P:
		default:
			return false
		}
	}
	return hasTCP
}

// tcpOnly returns the TCP addresses of addrs.
func tcpOnly(addrs []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range addrs {
		if isTCP(a) {
			out = append(out, a)
		}
	}
	return out
}

// allowList returns the peers the gater admits in allow-list mode, nil
// when allow-list mode is off. The peers the node is configured to dial
// are on it: refusing them would only break the configuration.
func allowList(cfg *Config) []peer.ID {
	if len(cfg.AllowPeers) == 0 {
		return nil
	}
	out := append([]peer.ID(nil), cfg.AllowPeers...)
	for _, list := range [][]peer.AddrInfo{cfg.Peers, cfg.Bootstrap, cfg.Relays} {
		for _, ai := range list {
			out = append(out, ai.ID)
		}
	}
	return out
}
