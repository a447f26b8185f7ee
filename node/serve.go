package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/internal/fair"
	"github.com/parley-chat/parley/mailbox"
	"github.com/parley-chat/parley/overlay"
	"github.com/parley-chat/parley/store"
)

// ServePort is the default port of a serve node, TCP and QUIC, so that
// the addresses handed out stay the same across restarts.
const ServePort = 4747

// ServeNick is the nick a serve node reports in its ready event.
const ServeNick = "serve"

// ServeConfig configures a serve node: an always-on DHT server, circuit
// relay and AutoNAT server with no chat services (docs/SERVE.md).
type ServeConfig struct {
	// DataDir holds the key and the store. The store is kept open as a
	// lock, so that two serve nodes never share a key; a serve node
	// remembers no peers (it is dialled, it does not redial its clients,
	// most of whom are reachable only through it).
	DataDir string
	// Identity is the node's loaded key (required).
	Identity *identity.Identity
	// Overlay holds the network settings: listen addresses (default
	// ServeListenAddrs), announce addresses, deny and allow lists,
	// connection limits, bootstrap nodes, rendezvous namespaces, public
	// DHT and swarm key. NewServe gives it the serve role
	// (overlay.Config.ServeRole), turns mDNS off and sets PrivKey,
	// Emitter, Logger, UserAgent and Metrics.
	Overlay overlay.Config
	// Metrics, when not nil, receives libp2p's metrics and
	// parley_serve_connected_peers.
	Metrics prometheus.Registerer
	// Emitter receives the host's events (required).
	Emitter events.Emitter
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Version is announced in the user agent.
	Version string
	// NoMailboxHolder turns off the mailbox holder (package mailbox),
	// which a serve node runs by default with the quotas and expiry of
	// Holder (Host, DB and Logger set by the node). Unless Holder sets
	// them, its known depositors (mailbox.HolderConfig.Known) are the
	// peers of the allow list (Overlay.AllowPeers, with the peers the
	// node dials), and none without one: a serve node relays for every
	// peer and remembers none, so it has no people of its own, and no
	// share is reserved. Its newcomers (Holder.Newcomer) are the
	// identities it first saw less than an hour ago, remembered in memory
	// only (the store keeps no depositor's peer ID): after a restart
	// every depositor is a newcomer for an hour.
	NoMailboxHolder bool
	Holder          mailbox.HolderConfig
}

// Serve is a running serve node.
type Serve struct {
	id     *identity.Identity
	store  *store.Store
	host   *overlay.Host
	holder *mailbox.Holder // nil with NoMailboxHolder
	ages   *fair.Ages      // newcomers of the relay's and the holder's shares

	closeOnce sync.Once
	closeErr  error
}

// ServeListenAddrs are the default listen addresses of a serve node: TCP
// and QUIC on ServePort on every interface, TCP only in a private
// network (which QUIC cannot carry).
func ServeListenAddrs(tcpOnly bool) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, ip := range []string{"/ip4/0.0.0.0", "/ip6/::"} {
		out = append(out, ma.StringCast(fmt.Sprintf("%s/tcp/%d", ip, ServePort)))
		if !tcpOnly {
			out = append(out, ma.StringCast(fmt.Sprintf("%s/udp/%d/quic-v1", ip, ServePort)))
		}
	}
	return out
}

// NewServe locks the store and starts the host in the serve role. It
// returns once the node listens; Ready describes it.
func NewServe(ctx context.Context, cfg ServeConfig) (*Serve, error) {
	if cfg.Identity == nil {
		return nil, errors.New("node: serve config has no identity")
	}
	if cfg.Emitter == nil {
		return nil, errors.New("node: serve config has no emitter")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ocfg := cfg.Overlay
	if len(ocfg.ListenAddrs) == 0 {
		ocfg.ListenAddrs = ServeListenAddrs(ocfg.SwarmKey != nil)
	}
	ocfg.ServeRole()
	ocfg.MDNS = false
	ocfg.PrivKey = cfg.Identity.PrivKey
	ocfg.Emitter = cfg.Emitter
	ocfg.Logger = cfg.Logger.With("component", "overlay")
	ocfg.UserAgent = "parley/" + cfg.Version + " serve"
	ocfg.Metrics = cfg.Metrics
	ocfg.Store = nil // no peer memory

	// The relay's reservations and the mailbox holder are split by the
	// same known peers (the allow list) and identity ages (in memory).
	if ocfg.Known == nil {
		ocfg.Known = serveKnown(&ocfg)
	}
	ages, err := fair.NewAges(nil, fair.AgesConfig{Logger: cfg.Logger.With("component", "fair")})
	if err != nil {
		return nil, fmt.Errorf("start identity ages: %w", err)
	}
	if ocfg.Newcomer == nil {
		ocfg.Newcomer = ages.Newcomer
	}
	st, err := store.Open(cfg.DataDir, storeLockWait)
	if err != nil {
		return nil, errors.Join(err, ages.Close())
	}
	h, err := overlay.New(ctx, ocfg)
	if err != nil {
		return nil, errors.Join(err, st.Close(), ages.Close())
	}
	s := &Serve{id: cfg.Identity, store: st, host: h, ages: ages}
	if !cfg.NoMailboxHolder {
		hc := cfg.Holder
		hc.Host, hc.DB, hc.Logger = h, st.DB(), cfg.Logger.With("component", "mailbox-holder")
		if hc.Known == nil {
			hc.Known = ocfg.Known
		}
		if hc.Newcomer == nil {
			hc.Newcomer = ages.Newcomer
		}
		if s.holder, err = mailbox.NewHolder(ctx, hc); err != nil {
			return nil, errors.Join(fmt.Errorf("start mailbox holder: %w", err), s.Close())
		}
	}
	if cfg.Metrics != nil {
		peers := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parley_serve_connected_peers",
			Help: "Peers connected to this serve node.",
		}, func() float64 { return float64(len(h.Network().Peers())) })
		if err := cfg.Metrics.Register(peers); err != nil {
			return nil, errors.Join(fmt.Errorf("register serve metrics: %w", err), s.Close())
		}
	}
	return s, nil
}

// serveKnown is a serve node's known-peer predicate for the mailbox
// holder: the peers of its allow list, with the peers it dials (the
// overlay admits those too); nil (nobody) without an allow list.
func serveKnown(c *overlay.Config) func(peer.ID) bool {
	if len(c.AllowPeers) == 0 {
		return nil
	}
	set := make(map[peer.ID]struct{}, len(c.AllowPeers))
	for _, p := range c.AllowPeers {
		set[p] = struct{}{}
	}
	for _, list := range [][]peer.AddrInfo{c.Peers, c.Bootstrap, c.Relays} {
		for _, ai := range list {
			set[ai.ID] = struct{}{}
		}
	}
	return func(p peer.ID) bool {
		_, ok := set[p]
		return ok
	}
}

// Host returns the serve node's overlay host.
func (s *Serve) Host() *overlay.Host { return s.host }

// Ready describes the running serve node as a ready event.
func (s *Serve) Ready() events.Ready {
	return events.Ready{
		PeerID:      s.host.ID(),
		Nick:        ServeNick,
		Fingerprint: s.id.Fingerprint(),
		Addrs:       overlay.P2PAddrs(s.host.AddrInfo()),
	}
}

// Holder returns the mailbox holder, nil when it is off.
func (s *Serve) Holder() *mailbox.Holder { return s.holder }

// Close stops the mailbox holder and the host, then releases the store.
// It is safe to call more than once.
func (s *Serve) Close() error {
	s.closeOnce.Do(func() {
		var herr, aerr error
		if s.holder != nil {
			herr = s.holder.Close()
		}
		if s.ages != nil {
			aerr = s.ages.Close()
		}
		s.closeErr = errors.Join(herr, aerr, s.host.Close(), s.store.Close())
	})
	return s.closeErr
}
