package overlay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	noise "github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/events"
)

// Config configures a Host. The zero value of every field but PrivKey has
// a sensible default.
type Config struct {
	// PrivKey is the node's identity key (required).
	PrivKey crypto.PrivKey
	// ListenAddrs replace DefaultListenAddrs when not empty.
	ListenAddrs []ma.Multiaddr
	// Peers are dialled at start and kept connected, redialled with
	// backoff when the connection drops.
	Peers []peer.AddrInfo
	// DenyPeers and DenyCIDRs are refused by the connection gater, both
	// for inbound and outbound connections.
	DenyPeers []peer.ID
	DenyCIDRs []*net.IPNet
	// AllowPeers, when not empty, turns on allow-list mode: the gater
	// refuses every other peer, inbound and outbound. The peers the node
	// is told to dial (Peers, Bootstrap, Relays) are allowed too. Denied
	// peers stay denied.
	AllowPeers []peer.ID
	// SwarmKey, when set, makes the node a member of a private network
	// (libp2p pnet, see swarmkey.go): only peers holding the same key can
	// connect. go-libp2p's QUIC cannot carry a private network, so with a
	// swarm key the node speaks TCP only; a QUIC listen address is an
	// error, and so is PublicDHT.
	SwarmKey pnet.PSK
	// UPnP enables NAT port mapping (UPnP / NAT-PMP). Off by default:
	// it asks the router to open a port to this machine.
	UPnP bool
	// ConnLow and ConnHigh are the connection manager's water marks
	// (defaults 64 and 192): above ConnHigh it trims to ConnLow, sparing
	// kept peers.
	ConnLow, ConnHigh int
	// Limits are the resource manager limits (default DefaultLimits).
	Limits *Limits
	// Liveness configures the ping-based liveness check.
	Liveness Liveness
	// Redial configures the backoff of kept peers.
	Redial Backoff
	// UserAgent is announced by identify.
	UserAgent string
	// Emitter receives peer_connected and peer_disconnected events.
	Emitter events.Emitter
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Options are appended to the libp2p options (later features:
	// discovery, relay, private networks).
	Options []libp2p.Option

	// Discovery and connectivity (docs/OVERLAY.md). The zero value of
	// each contacts nobody: no mDNS, no DHT peers, no relays.

	// MDNS announces the node on the LAN with mDNS and connects to the
	// Parley nodes found there. Off in the zero Config, so that tests
	// never multicast; `parley chat` turns it on unless --no-mdns. It
	// never starts when every listen address is loopback.
	MDNS bool
	// DHTMode is the node's role in the Kademlia DHT: DHTClient (default),
	// DHTServer (parley serve) or DHTOff.
	DHTMode DHTMode
	// Bootstrap peers seed the DHT (normally `parley serve` nodes). They
	// are kept connected like Peers.
	Bootstrap []peer.AddrInfo
	// PublicDHT joins the public IPFS (Amino) DHT and its bootstrap
	// peers instead of Parley's own DHT. Off by default: see
	// docs/OVERLAY.md for what it reveals.
	PublicDHT bool
	// Namespaces are rendezvous namespaces joined at start (see Join).
	Namespaces []string
	// Rendezvous tunes advertising and searching namespaces.
	Rendezvous Rendezvous
	// MateRelays is how many connected peers offering circuit relay v2
	// (room-mates' chat nodes) a node without Relays reserves a slot at
	// while it is not known to be public (default 2; negative: none).
	// Peers met over loopback are never asked (materelay.go).
	MateRelays int
	// Relays are static circuit relays (normally the serve nodes): the
	// node holds a reservation on each while it is not known to be
	// publicly reachable, and advertises its /p2p-circuit addresses.
	Relays []peer.AddrInfo
	// RelayService, when not nil, runs a circuit relay v2 service with
	// these resources for other peers (parley serve:
	// ServeRelayResources()).
	RelayService *relay.Resources
	// RelayFor, when not nil, restricts the relay service to the peers it
	// accepts: a peer may reserve a slot only if RelayFor(peer), and a
	// circuit opens only if RelayFor holds for both its source and its
	// destination (docs/OVERLAY.md, "Relaying for your own people"). Nil
	// relays for every peer that may connect (parley serve). It is called
	// on the relay service's stream handlers, concurrently, and must be
	// quick. Chat nodes pass their room members and trusted peers here,
	// with ChatRelayResources.
	RelayFor func(peer.ID) bool
	// Known reports whether a peer is known to the user (node: trusted,
	// written to, or in a private room). The addresses other peers,
	// strangers, announce are dialled back only when plausible, and
	// strangers are remembered for PeerMemory.StrangerMaxAge only
	// (plausible.go, docs/SECURITY.md "Budgets"). Nil knows nobody. It is
	// called concurrently and must be quick.
	Known func(peer.ID) bool
	// Newcomer reports whether a peer is an identity first seen less
	// than an hour ago (fair.Ages.Newcomer). A relay service open to
	// every peer (RelayFor nil) gives newcomers together half of the
	// strangers' reservations (RelaySharesOf). Nil: nobody is one.
	Newcomer func(peer.ID) bool
	// NoHolePunching turns off DCUtR hole punching, which otherwise
	// upgrades relayed connections to direct ones where NATs allow.
	NoHolePunching bool
	// AutoNATService answers other peers' AutoNAT dial-back requests so
	// that they learn their reachability (parley serve).
	AutoNATService bool
	// ForceReachability overrides AutoNAT: ReachabilityPublic or
	// ReachabilityPrivate. ReachabilityUnknown (the default) lets AutoNAT
	// decide.
	ForceReachability network.Reachability
	// AnnounceAddrs, when not empty, replace the listen addresses in what
	// the node advertises (relay addresses are still added), e.g. the
	// public address of a serve node behind 1:1 NAT.
	AnnounceAddrs []ma.Multiaddr
	// Store keeps remembered peers (bucket "overlay/peers"); nil
	// remembers nothing.
	Store *bolt.DB
	// PeerMemory tunes remembering and redialling peers.
	PeerMemory PeerMemory
	// Metrics, when not nil, receives libp2p's Prometheus metrics (and
	// the relay service's). Nil disables metrics.
	Metrics prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.ConnLow == 0 {
		c.ConnLow = 64
	}
	if c.ConnHigh == 0 {
		c.ConnHigh = 192
	}
	if c.Limits == nil {
		l := DefaultLimits()
		c.Limits = &l
	}
	c.Liveness.setDefaults()
	c.Redial.setDefaults()
	c.Rendezvous.setDefaults()
	c.PeerMemory.setDefaults()
	if c.Emitter == nil {
		c.Emitter = events.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.UserAgent == "" {
		c.UserAgent = "parley"
	}
}

// Host is a Parley node's libp2p host with its keeper and liveness check.
type Host struct {
	host.Host
	gater *gater
	guard *addrGuard
	log   *slog.Logger
	emit  events.Emitter

	peers  *peerTable
	keeper *keeper

	dht      *dht.IpfsDHT // nil with DHTOff
	relaySvc *relay.Relay // nil without RelayService
	// relayShares is relaySvc's ACL (RelayFor and the strangers'
	// shares of its reservations); nil without RelayService.
	relayShares *relayShares
	relays      *relayKeeper // nil without Relays
	mates       *mateRelays  // nil with Relays, MateRelays < 0 or public
	reach       *reachTracker
	conns       *connWatcher
	netw        *netWatcher
	lan         *lanDiscovery // nil without MDNS
	memory      *memory       // nil without Store
	rv          *rendezvous
	flight      reachFlight
	// bootstrap: Config.Bootstrap named DHT peers (Reach may wait for
	// them to fill the routing table).
	bootstrap bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// New builds and starts the host: it listens, starts watching connections
// and dials the configured peers in the background.
//
// Lifecycle (the same for every Parley service): ctx bounds construction
// only, and New fails if it has ended; the host and its loops (keeper,
// liveness, discovery, DHT) run on a context of their own until Close.
// Services built on the host are closed before it, so that they can still
// say goodbye on its connections.
func New(ctx context.Context, cfg Config) (*Host, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start host: %w", err)
	}
	if cfg.PrivKey == nil {
		return nil, errors.New("overlay: config has no private key")
	}
	cfg.setDefaults()
	if cfg.ConnLow > cfg.ConnHigh {
		return nil, fmt.Errorf("connection low water mark %d is above high water mark %d", cfg.ConnLow, cfg.ConnHigh)
	}
	gater, err := newGater(allowList(&cfg))
	if err != nil {
		return nil, fmt.Errorf("connection gater: %w", err)
	}
	gater.guard = newAddrGuard(cfg.Known)
	for _, p := range cfg.DenyPeers {
		if err := gater.BlockPeer(p); err != nil {
			return nil, fmt.Errorf("deny peer %s: %w", p, err)
		}
	}
	for _, n := range cfg.DenyCIDRs {
		if err := gater.BlockSubnet(n); err != nil {
			return nil, fmt.Errorf("deny CIDR %s: %w", n, err)
		}
	}
	cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	rm, err := cfg.Limits.resourceManager()
	if err != nil {
		return nil, err
	}
	listen := cfg.ListenAddrs
	if len(listen) == 0 {
		listen = DefaultListenAddrs()
		if cfg.SwarmKey != nil {
			listen = tcpOnly(listen)
		}
	}
	transports, err := transportOptions(&cfg, listen)
	if err != nil {
		_ = rm.Close()
		_ = cm.Close()
		return nil, err
	}
	opts := []libp2p.Option{
		libp2p.Identity(cfg.PrivKey),
		libp2p.ListenAddrs(listen...),
		transports,
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(tls.ID, tls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.ConnectionGater(gater),
		libp2p.Ping(true),
		libp2p.UserAgent(cfg.UserAgent),
	}
	if cfg.UPnP {
		opts = append(opts, libp2p.NATPortMap())
	}
	var relayAddrs lateHooks
	opts = append(opts, connectivityOptions(&cfg, &relayAddrs)...)
	opts = append(opts, cfg.Options...)
	h, err := libp2p.New(opts...)
	if err != nil {
		_ = rm.Close()
		_ = cm.Close()
		return nil, fmt.Errorf("cannot listen on %v: %w; choose a free port or port 0 with --listen", listen, err)
	}
	hctx, cancel := context.WithCancel(context.Background())
	o := &Host{
		Host:   h,
		gater:  gater,
		guard:  gater.guard,
		log:    cfg.Logger,
		emit:   cfg.Emitter,
		ctx:    hctx,
		cancel: cancel,
	}
	o.bootstrap = len(others(cfg.Bootstrap, h.ID())) > 0
	o.peers = newPeerTable(o, cfg.Liveness)
	o.keeper = newKeeper(o, cfg.Redial)
	if err := o.startConnectivity(&cfg, &relayAddrs); err != nil {
		return nil, errors.Join(err, o.Close())
	}
	if err := o.peers.start(); err != nil {
		return nil, errors.Join(err, o.Close())
	}
	for _, ai := range append(others(cfg.Bootstrap, o.ID()), cfg.Peers...) {
		if err := o.Keep(ai); err != nil {
			return nil, errors.Join(err, o.Close())
		}
	}
	if err := o.startDiscovery(&cfg, listen); err != nil {
		return nil, errors.Join(err, o.Close())
	}
	return o, nil
}

// AddrInfo returns the host's peer ID and listen addresses.
func (o *Host) AddrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: o.ID(), Addrs: o.Addrs()}
}

// Keep dials ai in the background and keeps it connected, redialling with
// backoff whenever the connection drops, until Close.
func (o *Host) Keep(ai peer.AddrInfo) error {
	if ai.ID == o.ID() {
		return fmt.Errorf("keep %s: %w", ai.ID, ErrSelfDial)
	}
	o.keeper.add(ai)
	return nil
}

// DenyPeer adds p to the deny list for the life of the host and closes
// its connections.
func (o *Host) DenyPeer(p peer.ID) error {
	if err := o.gater.BlockPeer(p); err != nil {
		return fmt.Errorf("deny peer %s: %w", p, err)
	}
	if err := o.Network().ClosePeer(p); err != nil {
		return fmt.Errorf("close denied peer %s: %w", p, err)
	}
	return nil
}

// Close cancels the host's context, stops the keeper, the liveness checks
// and discovery, waits for their goroutines and closes the libp2p host
// (and with it every connection). There is nothing to drain: the services
// on the host do their own draining in their Close, which runs first.
// Calling Close again does nothing.
func (o *Host) Close() error {
	var err error
	o.once.Do(func() {
		o.cancel()
		o.peers.stop()
		errs := o.stopConnectivity()
		o.wg.Wait()
		errs = append(errs, o.closeConnectivity()...)
		err = o.Host.Close()
		if err == nil && len(errs) > 0 {
			err = errors.Join(errs...)
		}
		if err != nil {
			err = fmt.Errorf("close host: %w", err)
		}
	})
	return err
}

// go runs f in a goroutine owned by the host.
func (o *Host) goroutine(f func()) {
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		f()
	}()
}
