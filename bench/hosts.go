package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/overlay"
)

// Loopback listen addresses: the suite never listens anywhere else.
const (
	loopTCP  = "/ip4/127.0.0.1/tcp/0"
	loopQUIC = "/ip4/127.0.0.1/udp/0/quic-v1"
)

// connectTimeout bounds every dial of the suite.
const connectTimeout = 20 * time.Second

var discard = slog.New(slog.DiscardHandler)

// hostSpec describes a host of the suite: Parley's overlay host (the
// transports, security, muxer and resource limits the product uses) on
// loopback, with no DHT, no mDNS, no relays and no port mapping.
type hostSpec struct {
	key    crypto.PrivKey   // nil: a new Ed25519 key
	listen []string         // default loopTCP
	bw     metrics.Reporter // nil: none
}

func newKey() (crypto.PrivKey, error) {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return k, nil
}

func newHost(ctx context.Context, spec hostSpec) (*overlay.Host, error) {
	key := spec.key
	if key == nil {
		var err error
		if key, err = newKey(); err != nil {
			return nil, err
		}
	}
	listen := spec.listen
	if len(listen) == 0 {
		listen = []string{loopTCP}
	}
	cfg := overlay.Config{PrivKey: key, DHTMode: overlay.DHTOff, Logger: discard, UserAgent: "parley-bench"}
	for _, l := range listen {
		a, err := ma.NewMultiaddr(l)
		if err != nil {
			return nil, fmt.Errorf("listen address %s: %w", l, err)
		}
		cfg.ListenAddrs = append(cfg.ListenAddrs, a)
	}
	if spec.bw != nil {
		cfg.Options = append(cfg.Options, libp2p.BandwidthReporter(spec.bw))
	}
	h, err := overlay.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start host: %w", err)
	}
	return h, nil
}

// bareHost is a plain libp2p host with libp2p's defaults on loopback: the
// baseline for a node's cost.
func bareHost(listen ...string) (host.Host, error) {
	if len(listen) == 0 {
		listen = []string{loopTCP}
	}
	h, err := libp2p.New(libp2p.ListenAddrStrings(listen...), libp2p.DisableRelay(), libp2p.DisableMetrics())
	if err != nil {
		return nil, fmt.Errorf("start bare host: %w", err)
	}
	return h, nil
}

// connect dials b from a using only b's addresses of protocol proto (0:
// any), and checks that the connection uses it.
func connect(ctx context.Context, a, b host.Host, proto int) error {
	var addrs []ma.Multiaddr
	for _, addr := range b.Addrs() {
		if _, err := addr.ValueForProtocol(proto); proto == 0 || err == nil {
			addrs = append(addrs, addr)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := a.Connect(cctx, peer.AddrInfo{ID: b.ID(), Addrs: addrs}); err != nil {
		return fmt.Errorf("connect %s to %s: %w", a.ID().ShortString(), b.ID().ShortString(), err)
	}
	if proto == 0 {
		return nil
	}
	for _, c := range a.Network().ConnsToPeer(b.ID()) {
		if _, err := c.RemoteMultiaddr().ValueForProtocol(proto); err != nil {
			return fmt.Errorf("connection over %s, want protocol %d", c.RemoteMultiaddr(), proto)
		}
	}
	return nil
}

// connectEdges dials every edge [i, j] (i dials j) with a few dials at a
// time.
func connectEdges(ctx context.Context, hs []host.Host, edges [][2]int) error {
	const parallel = 8
	sem := make(chan struct{}, parallel)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, e := range edges {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := connect(ctx, hs[e[0]], hs[e[1]], 0); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}
