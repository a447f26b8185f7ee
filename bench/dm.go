package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/dm"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/overlay"
)

// echoProto is the DM baseline: frames echoed back on a plain stream.
const echoProto = protocol.ID("/parley/bench-echo/1.0.0")

// dmTimeout bounds each DM measurement.
const dmTimeout = 2 * time.Minute

// dmText is the text of every benchmark message (a short chat line).
const dmText = "hello, this is a direct message of about sixty bytes."

// maxEchoFrame bounds the baseline's frames.
const maxEchoFrame = 4096

// dmPair is two hosts with a dm service each; delivered gets a token for
// every message of a's that b acknowledged.
type dmPair struct {
	a, b      *overlay.Host
	dbs       []*bolt.DB
	sa, sb    *dm.Service
	delivered chan struct{}
}

func newDMPair(ctx context.Context, dir string, noSync bool, capacity int) (*dmPair, error) {
	p := &dmPair{delivered: make(chan struct{}, capacity)}
	var err error
	if p.a, err = newHost(ctx, hostSpec{}); err != nil {
		return nil, err
	}
	if p.b, err = newHost(ctx, hostSpec{}); err != nil {
		p.close()
		return nil, err
	}
	if err := connect(ctx, p.a, p.b, 0); err != nil {
		p.close()
		return nil, err
	}
	emit := events.EmitterFunc(func(e events.Event) {
		if s, ok := e.(events.DMStatus); ok && s.State == events.DMDelivered {
			select {
			case p.delivered <- struct{}{}:
			default: // more deliveries than messages sent: not ours
			}
		}
	})
	svc := func(h *overlay.Host, name string, em events.Emitter) (*dm.Service, error) {
		db, err := bolt.Open(filepath.Join(dir, name+".db"), 0o600, &bolt.Options{Timeout: 5 * time.Second, NoSync: noSync})
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		p.dbs = append(p.dbs, db)
		// The throughput run queues more than a peer may send at once by
		// default (dm.DefaultPeerRate): the limits are lifted, the
		// protocol is not.
		s, err := dm.New(ctx, dm.Config{
			Host: h, DB: db, Emitter: em, Logger: discard, Nick: func() string { return name },
			MaxPending: capacity + 1, PeerRate: 1e9, PeerBurst: 1 << 30,
		})
		if err != nil {
			return nil, fmt.Errorf("start dm: %w", err)
		}
		return s, nil
	}
	if p.sa, err = svc(p.a, "alice", emit); err != nil {
		p.close()
		return nil, err
	}
	if p.sb, err = svc(p.b, "bob", events.Discard); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

func (p *dmPair) close() {
	for _, s := range []*dm.Service{p.sa, p.sb} {
		if s != nil {
			_ = s.Close()
		}
	}
	for _, h := range []*overlay.Host{p.a, p.b} {
		if h != nil {
			_ = h.Close()
		}
	}
	for _, db := range p.dbs {
		_ = db.Close()
	}
}

// roundTrip sends one message and waits for its delivery ack.
func (p *dmPair) roundTrip(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	if _, err := p.sa.Send(ctx, p.b.ID(), dmText); err != nil {
		return 0, fmt.Errorf("send: %w", err)
	}
	select {
	case <-p.delivered:
		return time.Since(t0), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("waiting for delivery: %w", ctx.Err())
	}
}

// throughput queues n messages at once and waits for every delivery.
func (p *dmPair) throughput(ctx context.Context, n int) (time.Duration, error) {
	t0 := time.Now()
	for i := range n {
		if _, err := p.sa.Send(ctx, p.b.ID(), dmText); err != nil {
			return 0, fmt.Errorf("send %d: %w", i, err)
		}
	}
	for i := range n {
		select {
		case <-p.delivered:
		case <-ctx.Done():
			return 0, fmt.Errorf("waiting for delivery %d of %d: %w", i, n, ctx.Err())
		}
	}
	return time.Since(t0), nil
}

// echo is the baseline: a handler that echoes length-prefixed frames
// until the stream ends.
func echo(s network.Stream) {
	defer func() { _ = s.Close() }()
	br := bufio.NewReader(s)
	for {
		frame, err := readEcho(br)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				_ = s.Reset()
			}
			return
		}
		if _, err := s.Write(frame); err != nil {
			_ = s.Reset()
			return
		}
	}
}

// readEcho reads one varint-length-prefixed frame (at most maxEchoFrame
// bytes) and returns it with its prefix.
func readEcho(br *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, err
	}
	if n > maxEchoFrame {
		return nil, fmt.Errorf("echo frame of %d bytes", n)
	}
	frame := binary.AppendUvarint(nil, n)
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil, fmt.Errorf("read echo frame: %w", err)
	}
	return append(frame, body...), nil
}

// echoStream opens a stream, writes k frames of the message and reads
// the k echoes: one stream per batch, as dm opens one per batch.
func echoStream(ctx context.Context, p *dmPair, k int) error {
	s, err := p.a.NewStream(ctx, p.b.ID(), echoProto)
	if err != nil {
		return fmt.Errorf("open echo stream: %w", err)
	}
	defer context.AfterFunc(ctx, func() { _ = s.Reset() })()
	frame := binary.AppendUvarint(nil, uint64(len(dmText)))
	frame = append(frame, dmText...)
	if _, err := s.Write([]byte(strings.Repeat(string(frame), k))); err != nil {
		return fmt.Errorf("write echo frames: %w", err)
	}
	br := bufio.NewReader(s)
	for range k {
		if _, err := readEcho(br); err != nil {
			return err
		}
	}
	return s.Close()
}

// DM measures direct messages between two hosts: the round trip from Send
// to the delivery ack, one message at a time, and messages per second with
// DMMessages queued at once; with the store synced (the product) and not
// (the protocol alone). The baseline echoes frames of the same size on a
// plain stream, a fresh stream per message for the round trip and per 64
// messages (dm.MaxMessagesPerStream) for throughput.
func DM(ctx context.Context, c Config) ([]Result, error) {
	cfg := c.withDefaults()
	dir, cleanup, err := scenarioDir(&cfg, "dm")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	ctx, cancel := context.WithTimeout(ctx, dmTimeout)
	defer cancel()
	var out []Result
	for _, mode := range []struct {
		name   string
		noSync bool
	}{{"fsync", false}, {"nosync", true}} {
		d := filepath.Join(dir, mode.name)
		rs, err := dmMode(ctx, &cfg, d, mode.name, mode.noSync)
		out = append(out, rs...)
		if err != nil {
			return out, fmt.Errorf("dm %s: %w", mode.name, err)
		}
	}
	return out, nil
}

func dmMode(ctx context.Context, cfg *Config, dir, name string, noSync bool) ([]Result, error) {
	if err := mkdir(dir); err != nil {
		return nil, err
	}
	p, err := newDMPair(ctx, dir, noSync, cfg.DMMessages+cfg.DMRoundTrips)
	if err != nil {
		return nil, err
	}
	defer p.close()
	p.b.SetStreamHandler(echoProto, echo)
	defer p.b.RemoveStreamHandler(echoProto)
	// Alternate message and echo, so both see the same background load.
	var rtt, base []time.Duration
	for range cfg.DMRoundTrips {
		d, err := p.roundTrip(ctx)
		if err != nil {
			return nil, err
		}
		rtt = append(rtt, d)
		t0 := time.Now()
		if err := echoStream(ctx, p, 1); err != nil {
			return nil, err
		}
		base = append(base, time.Since(t0))
	}
	slices.Sort(rtt)
	slices.Sort(base)
	total, err := p.throughput(ctx, cfg.DMMessages)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	for left := cfg.DMMessages; left > 0; left -= dm.MaxMessagesPerStream {
		if err := echoStream(ctx, p, min(left, dm.MaxMessagesPerStream)); err != nil {
			return nil, err
		}
	}
	baseTotal := time.Since(t0)
	sc := "dm/" + name
	rate := float64(cfg.DMMessages) / total.Seconds()
	baseRate := float64(cfg.DMMessages) / baseTotal.Seconds()
	note := "store synced on every commit (the product)"
	if noSync {
		note = "store not synced: the protocol's own cost"
	}
	logf(cfg.Log, "%s: round trip p50 %.2f ms (echo %.2f ms), %.0f msgs/s (echo %.0f)", sc,
		ms(percentile(rtt, 0.5)), ms(percentile(base, 0.5)), rate, baseRate)
	return []Result{
		row(sc, "round trip p50, ms", ms(percentile(rtt, 0.5)), "raw stream echo", ms(percentile(base, 0.5))).
			withNote("%d round trips; %s", len(rtt), note),
		row(sc, "round trip p99, ms", ms(percentile(rtt, 0.99)), "raw stream echo", ms(percentile(base, 0.99))),
		row(sc, "messages per second", rate, "raw stream echo", baseRate).
			withNote("%d messages queued at once", cfg.DMMessages),
	}, nil
}
