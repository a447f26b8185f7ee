package overlay

import (
	"fmt"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

func addrs(ss ...string) []ma.Multiaddr {
	out := make([]ma.Multiaddr, len(ss))
	for i, s := range ss {
		out[i] = ma.StringCast(s)
	}
	return out
}

// TestPlausibleAddrs: a stranger's announced addresses are kept only in
// the scope of its connection, a few ports per IP, a few in all.
func TestPlausibleAddrs(t *testing.T) {
	var scan []string
	for port := 1000; port < 1016; port++ {
		scan = append(scan, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port))
	}
	var many []string
	for i := 1; i <= 12; i++ {
		many = append(many, fmt.Sprintf("/ip4/198.51.%d.1/tcp/4001", i))
	}
	tests := []struct {
		name     string
		remote   string
		announce []string
		keep     int
	}{
		{"loopback peer, loopback addrs", "/ip4/127.0.0.1/tcp/5000", []string{"/ip4/127.0.0.1/tcp/4001", "/ip6/::1/tcp/4001", "/ip4/127.0.0.1/udp/4001/quic-v1"}, 3},
		{"loopback peer, LAN and public addrs", "/ip4/127.0.0.1/tcp/5000", []string{"/ip4/192.168.1.5/tcp/4001", "/ip4/198.51.100.1/tcp/4001"}, 0},
		{"loopback port scan", "/ip4/127.0.0.1/tcp/5000", scan, 2},
		{"LAN peer, LAN and public", "/ip4/192.168.1.9/tcp/5000", []string{"/ip4/192.168.1.9/tcp/4001", "/ip6/2606:4700::1111/tcp/4001", "/ip4/93.184.216.34/tcp/4001"}, 3},
		{"LAN peer, loopback", "/ip4/192.168.1.9/tcp/5000", []string{"/ip4/127.0.0.1/tcp/4001"}, 0},
		{"public peer, private ranges", "/ip4/93.184.216.34/tcp/5000", []string{"/ip4/10.0.0.1/tcp/22", "/ip4/192.168.0.1/tcp/80", "/ip4/127.0.0.1/tcp/4001", "/ip4/169.254.169.254/tcp/80", "/ip6/fe80::1/tcp/4001"}, 0},
		{"public peer, public addrs", "/ip4/93.184.216.34/tcp/5000", []string{"/ip4/93.184.216.34/tcp/4001", "/ip4/93.184.216.34/udp/4001/quic-v1"}, 2},
		{"public peer, DNS name", "/ip4/93.184.216.34/tcp/5000", []string{"/dns4/intranet.example/tcp/80"}, 0},
		{"public peer, too many", "/ip4/93.184.216.34/tcp/5000", many, maxPlausibleAddrs},
		{"relayed via public relay, loopback", "/ip4/93.184.216.35/tcp/4001/p2p/12D3KooWJEd9vsRU5PuCeCoFbG8fCBZAgHFAhHR8taS27HTXwFeA/p2p-circuit", []string{"/ip4/127.0.0.1/tcp/4001"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keep, drop := plausibleAddrs(addrs(tt.announce...), ma.StringCast(tt.remote))
			if len(keep) != tt.keep || len(keep)+len(drop) != len(tt.announce) {
				t.Fatalf("kept %v, dropped %v; want %d kept", keep, drop, tt.keep)
			}
		})
	}
}

// TestPortScanAcrossStrangers: identities taking turns, each announcing
// a plausible 2 ports of one public IP, make this node dial at most
// maxStrangerPortsPerHost ports of it within refusedFor; ports already
// counted stay dialable for others, loopback is not counted, and an
// hour later the count starts again.
func TestPortScanAcrossStrangers(t *testing.T) {
	g := newAddrGuard(nil)
	now := time.Now()
	remote := ma.StringCast("/ip4/93.184.216.40/tcp/5000")
	ports := make(map[string]bool)
	for i := range 8 {
		announced := addrs(fmt.Sprintf("/ip4/93.184.216.40/tcp/%d", 2000+2*i), fmt.Sprintf("/ip4/93.184.216.40/tcp/%d", 2001+2*i),
			"/ip4/93.184.216.40/udp/4001/quic-v1")
		keep, _ := plausibleAddrs(announced, remote)
		kept, _ := g.acrossStrangers(keep, now)
		for _, a := range kept {
			if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
				ports[a.String()] = true
			}
		}
	}
	if len(ports) != maxStrangerPortsPerHost {
		t.Fatalf("8 strangers had %d TCP ports of one IP kept: %v; want %d", len(ports), ports, maxStrangerPortsPerHost)
	}
	// A port already counted (the shared QUIC one, a TCP one) stays.
	again := addrs("/ip4/93.184.216.40/tcp/2000", "/ip4/93.184.216.40/udp/4001/quic-v1")
	if kept, drop := g.acrossStrangers(again, now); len(kept) != 2 || len(drop) != 0 {
		t.Fatalf("counted ports: kept %v, dropped %v", kept, drop)
	}
	// Loopback is not counted.
	var loop []ma.Multiaddr
	for i := range 8 {
		loop = append(loop, ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 3000+i)))
	}
	if kept, _ := g.acrossStrangers(loop, now); len(kept) != len(loop) {
		t.Fatalf("loopback ports kept %d of %d", len(kept), len(loop))
	}
	// After refusedFor the ports are counted afresh.
	later := addrs("/ip4/93.184.216.40/tcp/2100", "/ip4/93.184.216.40/tcp/2101")
	if kept, _ := g.acrossStrangers(later, now); len(kept) != 0 {
		t.Fatalf("a fifth port kept: %v", kept)
	}
	if kept, _ := g.acrossStrangers(later, now.Add(refusedFor+time.Second)); len(kept) != 2 {
		t.Fatalf("after refusedFor kept %v", kept)
	}
}
