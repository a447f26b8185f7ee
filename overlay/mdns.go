package overlay

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// MDNSServiceName is the DNS-SD service Parley nodes announce and browse
// on the LAN. It differs from libp2p's usual _p2p._udp so that Parley only
// finds Parley nodes, not every libp2p program on the network.
const MDNSServiceName = "_parley._udp"

const (
	// mdnsDialTimeout bounds one dial to a peer found on the LAN.
	mdnsDialTimeout = 10 * time.Second
	// mdnsMaxDials bounds concurrent dials to found peers.
	mdnsMaxDials = 8
)

// lanDiscovery announces the node with mDNS and connects to the Parley
// nodes it finds on the LAN. The network watcher restarts it when the
// node's interface addresses change (a new network), because mDNS
// announces the addresses it had at start.
type lanDiscovery struct {
	o    *Host
	sema chan struct{} // bounds concurrent dials

	mu      sync.Mutex
	svc     mdns.Service // guarded by mu
	closed  bool         // guarded by mu
	handles sync.WaitGroup
}

// mdnsUsable reports whether mDNS makes sense for these listen addresses:
// not when every one of them is loopback (nobody on the LAN could dial
// us, and announcing would still send packets on every interface).
func mdnsUsable(listen []ma.Multiaddr) bool {
	return slices.ContainsFunc(listen, func(a ma.Multiaddr) bool { return !manet.IsIPLoopback(a) })
}

func newLANDiscovery(o *Host) *lanDiscovery {
	return &lanDiscovery{o: o, sema: make(chan struct{}, mdnsMaxDials)}
}

func (d *lanDiscovery) start() error { return d.restart() }

// restart (re)starts the mDNS service with the current addresses.
func (d *lanDiscovery) restart() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	if d.svc != nil {
		if err := d.svc.Close(); err != nil {
			d.o.log.Debug("mdns: close", "err", err)
		}
		d.svc = nil
	}
	svc := mdns.NewMdnsService(d.o.Host, MDNSServiceName, d)
	if err := svc.Start(); err != nil {
		return fmt.Errorf("start mDNS: %w", err)
	}
	d.svc = svc
	return nil
}

// networkChanged re-announces with the new addresses.
func (d *lanDiscovery) networkChanged() {
	if err := d.restart(); err != nil {
		d.o.log.Warn("restart mDNS", "err", err)
	}
}

// HandlePeerFound is called by the mDNS service, each time in a goroutine
// of its own, possibly after Close.
func (d *lanDiscovery) HandlePeerFound(ai peer.AddrInfo) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.handles.Add(1)
	d.mu.Unlock()
	defer d.handles.Done()
	d.connect(d.o.ctx, ai)
}

// connect dials a peer found on the LAN unless it is us, already
// connected, or denied.
func (d *lanDiscovery) connect(ctx context.Context, ai peer.AddrInfo) {
	if ai.ID == d.o.ID() || len(ai.Addrs) == 0 || d.o.Network().Connectedness(ai.ID) == network.Connected {
		return
	}
	select {
	case d.sema <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-d.sema }()
	dctx, cancel := context.WithTimeout(ctx, mdnsDialTimeout)
	defer cancel()
	if err := d.o.Connect(dctx, ai); err != nil {
		d.o.log.Debug("mdns: dial found peer", "peer", ai.ID, "err", err)
		return
	}
	d.o.log.Debug("mdns: connected to LAN peer", "peer", ai.ID)
}

// close stops the mDNS service and waits for found-peer handlers.
func (d *lanDiscovery) close() {
	d.mu.Lock()
	d.closed = true
	svc := d.svc
	d.svc = nil
	d.mu.Unlock()
	if svc != nil {
		_ = svc.Close()
	}
	d.handles.Wait()
}
