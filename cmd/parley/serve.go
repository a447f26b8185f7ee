package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parley-chat/parley/config"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/overlay"
	"github.com/parley-chat/parley/store"
)

// ServePort is the default port of `parley serve` (TCP and QUIC), so that
// the addresses handed out stay the same across restarts.
const ServePort = 4747

// serveStoreLockWait bounds the wait for the data dir's store lock.
const serveStoreLockWait = 2 * time.Second

// serveSettings are the flags of `parley serve` (docs/SERVE.md).
type serveSettings struct {
	common
	listen        listFlag
	announce      listFlag
	denyPeers     listFlag
	denyCIDRs     listFlag
	metrics       string
	metricsPublic bool
	json          bool
	connLow       int
	connHigh      int
	discovery     discoveryFlags
	private       privateFlags
}

func (s *serveSettings) register(fs *flagSet) {
	s.common.register(fs)
	fs.Var(&s.listen, "listen", fmt.Sprintf("listen `MULTIADDR` (repeatable; default TCP and QUIC on port %d on every interface)", ServePort))
	fs.Var(&s.announce, "announce", "advertise this `MULTIADDR` instead of the listen addresses, e.g. a public address in front of a 1:1 NAT (repeatable)")
	fs.Var(&s.denyPeers, "deny-peer", "refuse connections with this `PEER_ID` (repeatable)")
	fs.Var(&s.denyCIDRs, "deny-cidr", "refuse connections with addresses in this `CIDR` (repeatable)")
	fs.StringVar(&s.metrics, "metrics", "", "serve Prometheus metrics at http://`HOST:PORT`/metrics (loopback only unless --metrics-public)")
	fs.BoolVar(&s.metricsPublic, "metrics-public", false, "allow --metrics on a non-loopback address")
	fs.BoolVar(&s.json, "json", false, "print every event as one JSON object per line (docs/EVENTS.md)")
	fs.IntVar(&s.connLow, "conn-low", 256, "connection manager low water mark")
	fs.IntVar(&s.connHigh, "conn-high", 1024, "connection manager high water mark")
	s.discovery.register(fs, false)
	s.private.register(fs)
}

// resolveServeDataDir defaults to a sibling of the chat data dir, so that
// a serve node and a chat peer on one machine do not share an identity.
func (s *serveSettings) resolveServeDataDir() error {
	if s.dataDir != "" {
		return nil
	}
	d, err := config.DefaultDataDir()
	if err != nil {
		return err
	}
	s.dataDir = filepath.Join(filepath.Dir(d), "parley-serve")
	return nil
}

func (s *serveSettings) applyFile(fs *flagSet, f config.File) {
	if !fs.given("listen") && len(f.Listen) > 0 {
		s.listen = f.Listen
	}
	if !fs.given("deny-peer") {
		s.denyPeers = append(s.denyPeers, f.DenyPeers...)
	}
	if !fs.given("deny-cidr") {
		s.denyCIDRs = append(s.denyCIDRs, f.DenyCIDRs...)
	}
	if !fs.given("log-level") && f.LogLevel != "" {
		s.logLevel = f.LogLevel
	}
	s.discovery.applyFile(fs, f)
	s.private.applyFile(fs, f, s.dataDir)
}

// defaultServeListen is TCP and QUIC on ServePort; TCP only in a private
// network, which QUIC cannot carry.
func defaultServeListen(tcpOnly bool) []string {
	if tcpOnly {
		return []string{
			fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", ServePort),
			fmt.Sprintf("/ip6/::/tcp/%d", ServePort),
		}
	}
	return []string{
		fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", ServePort),
		fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", ServePort),
		fmt.Sprintf("/ip6/::/tcp/%d", ServePort),
		fmt.Sprintf("/ip6/::/udp/%d/quic-v1", ServePort),
	}
}

// overlayConfig is a serve node: DHT server, relay service, AutoNAT
// service, publicly reachable by assumption, no mDNS.
func (s *serveSettings) overlayConfig() (overlay.Config, error) {
	chat := chatSettings{listen: s.listen, denyPeers: s.denyPeers, denyCIDRs: s.denyCIDRs, connLow: s.connLow, connHigh: s.connHigh, noMDNS: true, private: s.private}
	if len(chat.listen) == 0 {
		chat.listen = defaultServeListen(s.private.swarmKey != "")
	}
	cfg, err := chat.overlayConfig()
	if err != nil {
		return cfg, err
	}
	for _, a := range s.announce {
		m, err := overlay.ParseListenAddr(a)
		if err != nil {
			return cfg, usageError{fmt.Errorf("bad --announce: %w", err)}
		}
		cfg.AnnounceAddrs = append(cfg.AnnounceAddrs, m)
	}
	if err := s.discovery.apply(&cfg); err != nil {
		return cfg, err
	}
	cfg.ServeRole()
	return cfg, nil
}

// checkMetricsAddr accepts HOST:PORT where HOST is a loopback IP or
// "localhost", or any address with allowRemote.
func checkMetricsAddr(addr string, allowRemote bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return usageError{fmt.Errorf("bad --metrics %q: use HOST:PORT like 127.0.0.1:9464", addr)}
	}
	if allowRemote {
		return nil
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return usageError{fmt.Errorf("--metrics %q is not a loopback address; metrics stay on this machine unless you add --metrics-public", addr)}
	}
	return nil
}

// serveCmd is a parsed `parley serve` command line.
type serveCmd struct {
	serveSettings
	fs *flagSet
}

func parseServe(args []string, stdout io.Writer) (*serveCmd, error) {
	c := &serveCmd{fs: newFlagSet("serve")}
	c.register(c.fs)
	if err := c.fs.parse(args, stdout); err != nil {
		return nil, err
	}
	if c.metrics != "" {
		if err := checkMetricsAddr(c.metrics, c.metricsPublic); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *serveCmd) run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
	s, fs := &c.serveSettings, c.fs
	if err := s.resolveServeDataDir(); err != nil {
		return err
	}
	logger, id, err := s.prepare(fs, s.applyFile, stdin, stderr, stderr)
	if err != nil {
		return err
	}
	ocfg, err := s.overlayConfig()
	if err != nil {
		return err
	}
	st, err := store.Open(s.dataDir, serveStoreLockWait)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()

	var reg *prometheus.Registry
	var metricsLn net.Listener
	if s.metrics != "" {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		ocfg.Metrics = reg
		metricsLn, err = net.Listen("tcp", s.metrics)
		if err != nil {
			return fmt.Errorf("cannot listen for metrics on %s: %w; choose a free port", s.metrics, err)
		}
		defer func() { _ = metricsLn.Close() }()
	}

	queue := events.NewQueue(eventQueueLimit)
	ocfg.PrivKey = id.PrivKey
	ocfg.Emitter = queue
	ocfg.Logger = logger.With("component", "overlay")
	// No peer memory: a serve node is dialled, it does not redial its
	// clients (most are only reachable through itself). The store is
	// open for its lock, so two serve nodes never share a key.
	ocfg.UserAgent = "parley/" + version + " serve"
	h, err := overlay.New(ctx, ocfg)
	if err != nil {
		return err
	}
	var srv *http.Server
	if reg != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parley_serve_connected_peers",
			Help: "Peers connected to this serve node.",
		}, func() float64 { return float64(len(h.Network().Peers())) }))
		srv = serveMetrics(metricsLn, reg, logger)
	}

	out := newRenderer(stdout, s.json, nil)
	writerDone := make(chan error, 1)
	go func() { writerDone <- out.drain(queue) }()
	ready := events.Ready{
		PeerID:      id.ID,
		Nick:        "serve",
		Fingerprint: id.Fingerprint(),
		Addrs:       overlay.P2PAddrs(h.AddrInfo()),
	}
	if s.json {
		queue.Emit(ready)
	} else {
		metricsAt := ""
		if metricsLn != nil {
			metricsAt = metricsLn.Addr().String()
		}
		queue.Emit(events.Info{Text: serveBanner(ready, metricsAt)})
	}

	<-ctx.Done()
	logger.Info("shutting down")
	// ctx is done by now: the shutdown below gets a fresh, short deadline.
	return shutdown(func() error {
		var errs []error
		if srv != nil {
			sctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if err := srv.Shutdown(sctx); err != nil {
				errs = append(errs, fmt.Errorf("stop metrics: %w", err))
			}
			cancel()
		}
		if err := h.Close(); err != nil {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}, queue, writerDone)
}

// serveBanner tells the operator what to hand out.
func serveBanner(r events.Ready, metrics string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "parley serve: peer id %s (%s)\n", r.PeerID, r.Fingerprint)
	b.WriteString("DHT server, circuit relay and bootstrap node. Give peers one of these, the one they can reach:")
	for _, a := range r.Addrs {
		fmt.Fprintf(&b, "\n  --bootstrap %s", a)
	}
	if metrics != "" {
		fmt.Fprintf(&b, "\nmetrics: http://%s/metrics", metrics)
	}
	return b.String()
}

// serveMetrics serves /metrics on ln until Shutdown. Nothing else is
// served there.
func serveMetrics(ln net.Listener, reg *prometheus.Registry, logger *slog.Logger) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{MaxRequestsInFlight: 4, Timeout: 10 * time.Second}))
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server stopped", "err", err)
		}
	}()
	return srv
}
