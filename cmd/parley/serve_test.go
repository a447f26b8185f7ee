package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/config"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/overlay"
)

func TestCheckMetricsAddr(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		remote bool
		ok     bool
	}{
		{"127.0.0.1:9464", false, true},
		{"[::1]:9464", false, true},
		{"localhost:9464", false, true},
		{"0.0.0.0:9464", false, false},
		{":9464", false, false},
		{"192.168.1.5:9464", false, false},
		{"192.168.1.5:9464", true, true},
		{"127.0.0.1", false, false},
		{"nonsense", true, false},
	} {
		err := checkMetricsAddr(tc.addr, tc.remote)
		if (err == nil) != tc.ok {
			t.Errorf("checkMetricsAddr(%q, %v) = %v, want ok=%v", tc.addr, tc.remote, err, tc.ok)
		}
		var ue usageError
		if err != nil && !errors.As(err, &ue) {
			t.Errorf("checkMetricsAddr(%q): %v is not a usage error", tc.addr, err)
		}
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func chatHost(t *testing.T, boot peer.AddrInfo) *overlay.Host {
	t.Helper()
	h, err := overlay.New(context.Background(), overlay.Config{
		PrivKey:     testnet.NewKey(t),
		ListenAddrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")},
		Bootstrap:   []peer.AddrInfo{boot},
		Relays:      []peer.AddrInfo{boot},
		Rendezvous:  overlay.Rendezvous{FindMin: 200 * time.Millisecond, FindMax: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// TestServe runs `parley serve` in-process on loopback: it prints a ready
// event, peers that only know its address meet by rendezvous through it,
// /metrics answers, and it stops cleanly when signalled.
func TestServe(t *testing.T) {
	metrics := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outR, outW := io.Pipe()
	var stderr strings.Builder
	done := make(chan error, 1)
	go func() {
		done <- runArgs(ctx, []string{"serve", "--data-dir", t.TempDir(), "--listen", "/ip4/127.0.0.1/tcp/0", "--json", "--metrics", metrics}, nil, outW, &stderr)
		_ = outW.Close()
	}()
	lines := make(chan map[string]any, 64)
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			var e map[string]any
			if err := json.Unmarshal(sc.Bytes(), &e); err == nil {
				lines <- e
			}
		}
		close(lines)
	}()
	var ready map[string]any
	deadline := time.After(20 * time.Second)
	for ready == nil {
		select {
		case e, ok := <-lines:
			if !ok {
				t.Fatalf("serve exited before ready: %v; stderr: %s", <-done, stderr.String())
			}
			if e["type"] == "ready" {
				ready = e
			}
		case <-deadline:
			t.Fatal("no ready event")
		}
	}
	addrs, _ := ready["addrs"].([]any)
	if len(addrs) == 0 {
		t.Fatalf("ready without addrs: %v", ready)
	}
	boot, err := overlay.ParsePeerAddr(addrs[0].(string))
	if err != nil {
		t.Fatal(err)
	}
	a, b := chatHost(t, boot), chatHost(t, boot)
	for _, h := range []*overlay.Host{a, b} {
		if err := h.Join("serve-test"); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 20*time.Second, "peers meet through serve", func() bool {
		return a.Network().Connectedness(b.ID()) == network.Connected
	})
	waitUntil(t, 10*time.Second, "relay reservation on serve", func() bool {
		return len(a.Reachability().Relays) == 1
	})

	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	for _, want := range []string{"parley_serve_connected_peers", "libp2p_relaysvc"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(shutdownTimeout + 2*time.Second):
		t.Fatal("serve did not stop after the signal")
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDiscoveryFlags(t *testing.T) {
	good := "/ip4/10.0.0.1/tcp/4747/p2p/12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE"
	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"bootstrap", []string{"--bootstrap", good}, true},
		{"bootstrap without id", []string{"--bootstrap", "/ip4/10.0.0.1/tcp/4747"}, false},
		{"bad relay", []string{"--relay", "nonsense"}, false},
		{"empty namespace", []string{"--rendezvous", ""}, false},
		{"long namespace", []string{"--rendezvous", strings.Repeat("n", overlay.MaxNamespaceLen+1)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s settings
			err := newCommandFlags("chat", cmdChat, &s).parse(tc.args, io.Discard)
			var cfg overlay.Config
			if err == nil {
				cfg, err = s.overlayConfig()
			}
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			var ue usageError
			if err != nil && !errors.As(err, &ue) {
				t.Fatalf("%v is not a usage error", err)
			}
			if tc.ok && (len(cfg.Bootstrap) != 1 || len(cfg.Relays) != 1) {
				t.Fatalf("bootstrap %v relays %v: a bootstrap node is also a relay", cfg.Bootstrap, cfg.Relays)
			}
		})
	}
	// mDNS follows --no-mdns.
	s := settings{connLow: 1, connHigh: 2}
	cfg, err := s.overlayConfig()
	if err != nil || !cfg.MDNS {
		t.Fatalf("chat without --no-mdns: MDNS=%v err=%v", cfg.MDNS, err)
	}
	s.noMDNS = true
	if cfg, _ := s.overlayConfig(); cfg.MDNS {
		t.Fatal("--no-mdns left mDNS on")
	}
}

// bootstrap, relays and public_dht come from config.toml for chat and
// serve alike, unless a flag (or its environment variable) was given.
func TestDiscoveryFromConfigFile(t *testing.T) {
	fromFile := "/ip4/10.0.0.1/tcp/4747/p2p/12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE"
	fromFlag := "/ip4/10.0.0.2/tcp/4747/p2p/12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE"
	yes := true
	file := config.File{Bootstrap: []string{fromFile}, Relays: []string{fromFile}, PublicDHT: &yes}
	for _, tc := range []struct {
		name      string
		cmd       cmdSet
		args      []string
		bootstrap string
		relays    int
		publicDHT bool
	}{
		{"chat, file only", cmdChat, nil, fromFile, 1, true},
		{"chat, flags win", cmdChat, []string{"--bootstrap", fromFlag, "--relay", fromFlag, "--public-dht=false"}, fromFlag, 1, false},
		{"serve, file only", cmdServe, nil, fromFile, 0, true},
		{"serve, flag wins", cmdServe, []string{"--bootstrap", fromFlag}, fromFlag, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s settings
			fs := newCommandFlags("test", tc.cmd, &s)
			if err := fs.parse(tc.args, io.Discard); err != nil {
				t.Fatal(err)
			}
			if err := fs.applyFile(file, t.TempDir()); err != nil {
				t.Fatal(err)
			}
			if len(s.bootstrap) != 1 || overlay.P2PAddrs(s.bootstrap[0])[0] != tc.bootstrap || len(s.relays) != tc.relays || s.publicDHT != tc.publicDHT {
				t.Fatalf("bootstrap %v relays %v public-dht %v", s.bootstrap, s.relays, s.publicDHT)
			}
		})
	}
}
