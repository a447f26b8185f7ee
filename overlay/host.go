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
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/conngater"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	noise "github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

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
	gater *conngater.BasicConnectionGater
	log   *slog.Logger
	emit  events.Emitter

	peers  *peerTable
	keeper *keeper

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// New builds and starts the host: it listens, starts watching connections
// and dials the configured peers in the background.
func New(ctx context.Context, cfg Config) (*Host, error) {
	if cfg.PrivKey == nil {
		return nil, errors.New("overlay: config has no private key")
	}
	cfg.setDefaults()
	if cfg.ConnLow > cfg.ConnHigh {
		return nil, fmt.Errorf("connection low water mark %d is above high water mark %d", cfg.ConnLow, cfg.ConnHigh)
	}
	gater, err := conngater.NewBasicConnectionGater(nil)
	if err != nil {
		return nil, fmt.Errorf("connection gater: %w", err)
	}
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
	}
	opts := []libp2p.Option{
		libp2p.Identity(cfg.PrivKey),
		libp2p.ListenAddrs(listen...),
		// No SO_REUSEPORT: with it a second process could bind a port
		// that is already in use and steal half of its connections.
		libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(tls.ID, tls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.ConnectionGater(gater),
		libp2p.Ping(true),
		libp2p.UserAgent(cfg.UserAgent),
		libp2p.DisableMetrics(),
	}
	if cfg.UPnP {
		opts = append(opts, libp2p.NATPortMap())
	}
	opts = append(opts, cfg.Options...)
	h, err := libp2p.New(opts...)
	if err != nil {
		_ = rm.Close()
		_ = cm.Close()
		return nil, fmt.Errorf("cannot listen on %v: %w; choose a free port or port 0 with --listen", listen, err)
	}
	hctx, cancel := context.WithCancel(ctx)
	o := &Host{
		Host:   h,
		gater:  gater,
		log:    cfg.Logger,
		emit:   cfg.Emitter,
		ctx:    hctx,
		cancel: cancel,
	}
	o.peers = newPeerTable(o, cfg.Liveness)
	o.keeper = newKeeper(o, cfg.Redial)
	if err := o.peers.start(); err != nil {
		o.Close()
		return nil, err
	}
	for _, ai := range cfg.Peers {
		if err := o.Keep(ai); err != nil {
			o.Close()
			return nil, err
		}
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

// Close stops the keeper and the liveness checks and closes the host.
func (o *Host) Close() error {
	var err error
	o.once.Do(func() {
		o.cancel()
		o.peers.stop()
		o.wg.Wait()
		err = o.Host.Close()
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
