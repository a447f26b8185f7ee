package overlay

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// Limits are the resource manager limits of a Parley node. They are
// written down in docs/OVERLAY.md; change both together.
type Limits struct {
	// Memory is the total memory the resource manager may hand out for
	// connections and streams.
	Memory int64
	// FD is the number of file descriptors connections may use.
	FD int
	// Conns, ConnsInbound: total connections and inbound connections.
	Conns, ConnsInbound int
	// Streams, StreamsInbound: total streams and inbound streams.
	Streams, StreamsInbound int
	// PeerConns, PeerStreams, PeerMemory bound what one peer may hold.
	PeerConns, PeerStreams int
	PeerMemory             int64
	// ConnsPerIP bounds the connections one IPv4 address, or one IPv6
	// /56, may hold at a time, counted from the first byte, before the
	// handshake (an IPv6 /48 may hold 8 x ConnsPerIP). Zero means 8, the
	// libp2p default.
	ConnsPerIP int
	// LimitLoopback applies ConnsPerIP to loopback addresses too. Off by
	// default, as in libp2p: local processes (and port forwarders such as
	// a Tor onion service) share the loopback address.
	LimitLoopback bool
}

// defaultConnsPerIP is libp2p's own default per-address limit.
const defaultConnsPerIP = 8

// DefaultLimits suit a chat peer on a laptop: a few hundred peers at most.
func DefaultLimits() Limits {
	return Limits{
		Memory:         512 << 20,
		FD:             512,
		Conns:          512,
		ConnsInbound:   256,
		Streams:        4096,
		StreamsInbound: 2048,
		PeerConns:      8,
		PeerStreams:    512,
		PeerMemory:     64 << 20,
	}
}

func (l Limits) resourceManager() (network.ResourceManager, error) {
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	concrete := scaling.Scale(l.Memory, l.FD)
	override := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns:           rcmgr.LimitVal(l.Conns),
			ConnsInbound:    rcmgr.LimitVal(l.ConnsInbound),
			ConnsOutbound:   rcmgr.LimitVal(l.Conns),
			Streams:         rcmgr.LimitVal(l.Streams),
			StreamsInbound:  rcmgr.LimitVal(l.StreamsInbound),
			StreamsOutbound: rcmgr.LimitVal(l.Streams),
			FD:              rcmgr.LimitVal(l.FD),
			Memory:          rcmgr.LimitVal64(l.Memory),
		},
		PeerDefault: rcmgr.ResourceLimits{
			Conns:           rcmgr.LimitVal(l.PeerConns),
			ConnsInbound:    rcmgr.LimitVal(l.PeerConns),
			ConnsOutbound:   rcmgr.LimitVal(l.PeerConns),
			Streams:         rcmgr.LimitVal(l.PeerStreams),
			StreamsInbound:  rcmgr.LimitVal(l.PeerStreams / 2),
			StreamsOutbound: rcmgr.LimitVal(l.PeerStreams / 2),
			Memory:          rcmgr.LimitVal64(l.PeerMemory),
		},
	}
	perIP := l.ConnsPerIP
	if perIP <= 0 {
		perIP = defaultConnsPerIP
	}
	opts := []rcmgr.Option{rcmgr.WithLimitPerSubnet(
		[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 32, ConnCount: perIP}},
		[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 56, ConnCount: perIP}, {PrefixLength: 48, ConnCount: 8 * perIP}},
	)}
	if l.LimitLoopback {
		// No prefix is exempt: loopback falls under the per-IP limit.
		opts = append(opts, rcmgr.WithNetworkPrefixLimit([]rcmgr.NetworkPrefixLimit{}, []rcmgr.NetworkPrefixLimit{}))
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(override.Build(concrete)), opts...)
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	return rm, nil
}
