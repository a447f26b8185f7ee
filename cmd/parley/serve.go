package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/node"
)

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

// serveCmd is a parsed `parley serve` command line (docs/SERVE.md).
type serveCmd struct {
	settings
	fs *flagSet
}

func parseServe(args []string, stdout io.Writer) (*serveCmd, error) {
	c := &serveCmd{}
	c.fs = newCommandFlags("serve", cmdServe, &c.settings)
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
	s := &c.settings
	logger, id, err := s.prepare(c.fs, stdin, stderr, stderr)
	if err != nil {
		return err
	}
	ocfg, err := s.overlayConfig()
	if err != nil {
		return err
	}

	var reg *prometheus.Registry
	var metricsLn net.Listener
	if s.metrics != "" {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		metricsLn, err = net.Listen("tcp", s.metrics)
		if err != nil {
			return fmt.Errorf("cannot listen for metrics on %s: %w; choose a free port", s.metrics, err)
		}
		defer func() { _ = metricsLn.Close() }()
	}

	holder, err := s.holderConfig()
	if err != nil {
		return err
	}
	queue := events.NewQueue(eventQueueLimit)
	scfg := node.ServeConfig{
		NoMailboxHolder: !s.holdMailboxes,
		Holder:          holder,
		DataDir:         s.dataDir,
		Identity:        id,
		Overlay:         ocfg,
		Emitter:         queue,
		Logger:          logger,
		Version:         version,
	}
	if reg != nil {
		scfg.Metrics = reg // not a nil *Registry in the interface
	}
	n, err := node.NewServe(ctx, scfg)
	if err != nil {
		return err
	}
	var srv *http.Server
	if reg != nil {
		srv = serveMetrics(metricsLn, reg, logger)
	}

	out := newRenderer(stdout, s.json, nil)
	writerDone := make(chan error, 1)
	go func() { writerDone <- out.drain(queue) }()
	ready := n.Ready()
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
		if err := n.Close(); err != nil {
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
