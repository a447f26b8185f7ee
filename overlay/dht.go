package overlay

import (
	"context"
	"fmt"
	"slices"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// DHTProtocolPrefix is the protocol prefix of Parley's own Kademlia DHT:
// its protocol is /parley/kad/1.0.0, so Parley nodes never join, query or
// answer the public IPFS (Amino) DHT unless asked to with PublicDHT.
const DHTProtocolPrefix = "/parley"

// DHTMode selects the role of the node in the DHT.
type DHTMode int

const (
	// DHTClient queries the DHT and advertises into it but does not answer
	// queries or store records (the default, for chat peers).
	DHTClient DHTMode = iota
	// DHTServer also answers queries and stores provider records (for
	// `parley serve`).
	DHTServer
	// DHTOff runs no DHT: no rendezvous across networks.
	DHTOff
)

func (m DHTMode) String() string {
	switch m {
	case DHTClient:
		return "client"
	case DHTServer:
		return "server"
	case DHTOff:
		return "off"
	}
	return fmt.Sprintf("DHTMode(%d)", int(m))
}

// PublicDHTBootstrap returns the public Amino DHT bootstrap peers used with
// PublicDHT. They are DNS names resolved when dialled.
func PublicDHTBootstrap() []peer.AddrInfo {
	return dht.GetDefaultBootstrapPeerAddrInfos()
}

// newDHT starts the Kademlia DHT on h. Bootstrap peers seed its routing
// table; the host keeps them connected separately.
func newDHT(ctx context.Context, h host.Host, cfg *Config) (*dht.IpfsDHT, error) {
	mode := dht.ModeClient
	if cfg.DHTMode == DHTServer {
		mode = dht.ModeServer
	}
	boot := slices.Clone(cfg.Bootstrap)
	opts := []dht.Option{dht.Mode(mode)}
	if cfg.PublicDHT {
		// The public DHT: its protocol, its bootstrap peers, and its
		// filters, which keep private and loopback addresses out of
		// queries, the routing table and our own provider records.
		boot = append(boot, PublicDHTBootstrap()...)
		opts = append(opts,
			dht.QueryFilter(dht.PublicQueryFilter),
			dht.RoutingTableFilter(dht.PublicRoutingTableFilter),
			dht.AddressFilter(publicAddrs),
		)
	} else {
		// Parley's own DHT holds only provider records (rendezvous):
		// no values, so a server stores nothing else for strangers.
		opts = append(opts, dht.ProtocolPrefix(DHTProtocolPrefix), dht.DisableValues())
	}
	if len(boot) > 0 {
		opts = append(opts, dht.BootstrapPeers(boot...))
	}
	// dhtGuard bounds the requests the DHT's stream handlers read.
	d, err := dht.New(ctx, dhtGuard{h}, opts...)
	if err != nil {
		return nil, fmt.Errorf("start DHT (%s mode): %w", cfg.DHTMode, err)
	}
	return d, nil
}

// publicAddrs keeps public and relayed addresses: what a node on the
// public DHT publishes about itself.
func publicAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	return slices.DeleteFunc(slices.Clone(addrs), func(a ma.Multiaddr) bool {
		return ClassifyAddr(a) != PathRelayed && !manet.IsPublicAddr(a)
	})
}
