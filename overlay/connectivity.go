package overlay

import (
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	routedhost "github.com/libp2p/go-libp2p/p2p/host/routed"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
)

// lateHooks let options libp2p needs before the host exists reach what is
// made after it: the address factory reads the relay keeper, the hole
// punching tracer tells the connection watcher.
type lateHooks struct {
	k     atomic.Pointer[relayKeeper]
	m     atomic.Pointer[mateRelays]
	punch punchTracer
}

// connectivityOptions are the libp2p options for NAT traversal, relays,
// announced addresses and metrics.
func connectivityOptions(cfg *Config, relays *lateHooks) []libp2p.Option {
	announce := slices.Clone(cfg.AnnounceAddrs)
	opts := []libp2p.Option{
		libp2p.SwarmOpts(swarm.WithDialRanker(dialRanker)),
		libp2p.AddrsFactory(func(addrs []ma.Multiaddr) []ma.Multiaddr {
			if len(announce) > 0 {
				addrs = slices.Clone(announce)
			}
			addrs = append(addrs, relays.k.Load().addrs()...)
			return append(addrs, relays.m.Load().addrs()...)
		}),
	}
	if !cfg.NoHolePunching {
		// One tracer per service: WithTracer alone would replace the
		// metrics tracer libp2p installs when metrics are on.
		trace := holepunch.WithTracer(&relays.punch)
		if cfg.Metrics != nil {
			trace = holepunch.WithMetricsAndEventTracer(
				holepunch.NewMetricsTracer(holepunch.WithRegisterer(cfg.Metrics)), &relays.punch)
		}
		opts = append(opts, libp2p.EnableHolePunching(trace))
	}
	if cfg.AutoNATService {
		opts = append(opts, libp2p.EnableNATService())
	}
	switch cfg.ForceReachability {
	case network.ReachabilityPublic:
		opts = append(opts, libp2p.ForceReachabilityPublic())
	case network.ReachabilityPrivate:
		opts = append(opts, libp2p.ForceReachabilityPrivate())
	}
	if cfg.Metrics != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(cfg.Metrics))
	} else {
		opts = append(opts, libp2p.DisableMetrics())
	}
	return opts
}

// others returns ais without self.
func others(ais []peer.AddrInfo, self peer.ID) []peer.AddrInfo {
	return slices.DeleteFunc(slices.Clone(ais), func(ai peer.AddrInfo) bool { return ai.ID == self })
}

// startConnectivity starts what must run before any connection opens: the
// connection watcher, the DHT, the relay service and relay reservations,
// and the reachability tracker.
func (o *Host) startConnectivity(cfg *Config, relays *lateHooks) error {
	idSub, err := o.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		return fmt.Errorf("subscribe to identify events: %w", err)
	}
	o.goroutine(func() { o.guard.watch(o, idSub) })
	o.conns = newConnWatcher(o)
	relays.punch.w.Store(o.conns)
	o.reach = newReachTracker(o, cfg.ForceReachability)
	o.rv = newRendezvous(o, cfg.Rendezvous)
	o.netw = newNetWatcher(o)
	if cfg.Store != nil {
		o.memory = newMemory(o, cfg.Store, cfg.PeerMemory, cfg.Redial)
	}
	if rs := others(cfg.Relays, o.ID()); len(rs) > 0 {
		o.relays = newRelayKeeper(o, rs, cfg.Redial, o.reach.report)
		o.relays.public = cfg.ForceReachability == network.ReachabilityPublic
		relays.k.Store(o.relays)
	}
	if len(others(cfg.Relays, o.ID())) == 0 && cfg.MateRelays >= 0 && cfg.ForceReachability != network.ReachabilityPublic {
		n := cfg.MateRelays
		if n == 0 {
			n = defaultMateRelays
		}
		o.mates = newMateRelays(o, n, o.reach.report)
		relays.m.Store(o.mates)
	}
	bootstrap := make(map[peer.ID]bool)
	for _, ai := range cfg.Bootstrap {
		bootstrap[ai.ID] = true
	}
	o.conns.onConnect = append(o.conns.onConnect, func(p peer.ID) {
		if o.relays != nil {
			o.relays.connected(p)
		}
		if o.memory != nil {
			o.memory.connected(p)
		}
		if bootstrap[p] {
			// A DHT server (re)connected: it may have restarted and
			// lost our advertisements.
			o.rv.again()
		}
	})
	o.conns.onDisconnect = append(o.conns.onDisconnect, func(p peer.ID) {
		if o.relays != nil {
			o.relays.disconnected(p)
		}
		if o.mates != nil {
			o.mates.disconnected(p)
		}
		if o.memory != nil {
			o.memory.disconnected(p)
		}
	})
	o.netw.onChange = append(o.netw.onChange, o.rv.again)
	o.Network().Notify(o.conns)

	if cfg.RelayService != nil {
		ropts := []relay.Option{relay.WithResources(*cfg.RelayService)}
		o.relayShares = newRelayShares(o, cfg)
		ropts = append(ropts, relay.WithACL(o.relayShares))
		if cfg.Metrics != nil {
			ropts = append(ropts, relay.WithMetricsTracer(relay.NewMetricsTracer(relay.WithRegisterer(cfg.Metrics))))
		}
		svc, err := relay.New(o.Host, ropts...)
		if err != nil {
			return fmt.Errorf("start relay service: %w", err)
		}
		o.relaySvc = svc
	}
	if cfg.DHTMode != DHTOff {
		d, err := newDHT(o.ctx, o.Host, cfg)
		if err != nil {
			return err
		}
		o.dht = d
		// Dials by peer ID alone look the peer up in the DHT.
		o.Host = routedhost.Wrap(o.Host, d)
	}
	if err := o.reach.start(); err != nil {
		return err
	}
	if o.relays != nil {
		o.relays.start()
	}
	if o.mates != nil {
		if err := o.mates.start(); err != nil {
			return fmt.Errorf("relay reservations at connected peers: %w", err)
		}
	}
	return nil
}

// startDiscovery starts what finds peers: remembered peers, mDNS, the
// network watcher and the configured rendezvous namespaces.
func (o *Host) startDiscovery(cfg *Config, listen []ma.Multiaddr) error {
	if o.memory != nil {
		o.netw.onChange = append(o.netw.onChange, o.memory.networkChanged)
		if err := o.memory.start(); err != nil {
			return err
		}
	}
	if cfg.MDNS {
		if mdnsUsable(listen) {
			o.lan = newLANDiscovery(o)
			if err := o.lan.start(); err != nil {
				return err
			}
			o.netw.onChange = append(o.netw.onChange, o.lan.networkChanged)
		} else {
			o.log.Info("mDNS off: every listen address is loopback")
		}
	}
	if err := o.netw.start(); err != nil {
		return err
	}
	for _, ns := range cfg.Namespaces {
		if err := o.Join(ns); err != nil {
			return fmt.Errorf("join rendezvous namespace %q: %w", ns, err)
		}
	}
	return nil
}

// stopConnectivity stops event subscriptions and mDNS; the host's context
// is already cancelled.
func (o *Host) stopConnectivity() []error {
	if o.lan != nil {
		o.lan.close()
	}
	if o.reach != nil {
		o.reach.stop()
	}
	if o.netw != nil {
		o.netw.stop()
	}
	if o.memory != nil {
		o.memory.stop()
	}
	return nil
}

// closeConnectivity closes the DHT and the relay service once the host's
// goroutines have ended.
func (o *Host) closeConnectivity() []error {
	var errs []error
	if o.conns != nil {
		o.Network().StopNotify(o.conns)
	}
	if o.dht != nil {
		if err := o.dht.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close DHT: %w", err))
		}
	}
	if o.relaySvc != nil {
		if err := o.relaySvc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close relay service: %w", err))
		}
	}
	return errs
}
