package overlay

import (
	"fmt"
	"net"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// DefaultListenAddrs are used when no listen address is configured: TCP and
// QUIC v1 on every IPv4 and IPv6 interface, on ports the OS picks.
func DefaultListenAddrs() []ma.Multiaddr {
	return mustAddrs(
		"/ip4/0.0.0.0/tcp/0",
		"/ip4/0.0.0.0/udp/0/quic-v1",
		"/ip6/::/tcp/0",
		"/ip6/::/udp/0/quic-v1",
	)
}

func mustAddrs(ss ...string) []ma.Multiaddr {
	out := make([]ma.Multiaddr, len(ss))
	for i, s := range ss {
		out[i] = ma.StringCast(s)
	}
	return out
}

// ParseListenAddr parses a --listen value.
func ParseListenAddr(s string) (ma.Multiaddr, error) {
	a, err := ma.NewMultiaddr(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("bad listen address %q: %w; use a multiaddr like /ip4/0.0.0.0/tcp/4001", s, err)
	}
	return a, nil
}

// ParsePeerAddr parses a MULTIADDR/p2p/ID value as given to --peer or
// /connect.
func ParsePeerAddr(s string) (peer.AddrInfo, error) {
	a, err := ma.NewMultiaddr(strings.TrimSpace(s))
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("bad peer address %q: %w; use a multiaddr like /ip4/192.0.2.1/tcp/4001/p2p/<peer-id>", s, err)
	}
	if _, err := a.ValueForProtocol(ma.P_P2P); err != nil {
		return peer.AddrInfo{}, fmt.Errorf("bad peer address %q: %w", s, ErrNoPeerID)
	}
	ai, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("bad peer address %q: %w", s, err)
	}
	return *ai, nil
}

// ParseCIDR parses a deny-list entry: a CIDR, or a bare IP meaning just
// that address.
func ParseCIDR(s string) (*net.IPNet, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, fmt.Errorf("bad deny CIDR %q: not an IP address or CIDR like 203.0.113.0/24", s)
		}
		bits := 128
		if ip4 := ip.To4(); ip4 != nil {
			ip, bits = ip4, 32
		}
		return &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)}, nil
	}
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		return nil, fmt.Errorf("bad deny CIDR %q: %w", s, err)
	}
	return n, nil
}

// P2PAddrs returns the host's listen addresses as full multiaddrs ending in
// /p2p/<id>, ready to hand to another peer.
func P2PAddrs(info peer.AddrInfo) []string {
	addrs, err := peer.AddrInfoToP2pAddrs(&info)
	if err != nil {
		return nil
	}
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}
