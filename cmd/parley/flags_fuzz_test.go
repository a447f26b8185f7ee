package main

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzChatFlags feeds arbitrary command lines (arguments separated by
// NUL) to the flag parser and the validation of `parley chat` and `parley
// serve`: no panic, and every refusal is a usage error (exit code 2) that
// fits on one line.
func FuzzChatFlags(f *testing.F) {
	for _, seed := range []string{
		"--nick\x00ann",
		"--listen\x00/ip4/127.0.0.1/tcp/0\x00--no-mdns",
		"--peer\x00/ip4/127.0.0.1/tcp/1/p2p/12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE",
		"--deny-cidr\x0010.0.0.0/8\x00--deny-peer\x00x",
		"--allow-peer\x0012D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE",
		"--conn-low\x00100\x00--conn-high\x0010",
		"--bootstrap\x00/dns4/serve.example/tcp/4747/p2p/12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE",
		"--rendezvous\x00",
		"-h",
		"--json\x00extra",
		"--listen=/ip4/0.0.0.0/udp/0/quic-v1",
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, raw string, serve bool) {
		args := strings.Split(raw, "\x00")
		var err error
		if serve {
			err = fuzzServeFlags(args)
		} else {
			err = fuzzChatFlags(args)
		}
		if err == nil || errors.Is(err, errHelp) {
			return
		}
		var ue usageError
		if !errors.As(err, &ue) {
			t.Fatalf("%q: %v is not a usage error", args, err)
		}
	})
}

func fuzzChatFlags(args []string) error {
	var s chatSettings
	fs := newFlagSet("chat")
	s.register(fs)
	if err := fs.parse(args, io.Discard); err != nil {
		return err
	}
	// Reading files is not the parser's business (FuzzDecodeSwarmKey
	// covers the swarm key format).
	s.private.swarmKey = ""
	_, err := s.overlayConfig()
	return err
}

func fuzzServeFlags(args []string) error {
	var s serveSettings
	fs := newFlagSet("serve")
	s.register(fs)
	if err := fs.parse(args, io.Discard); err != nil {
		return err
	}
	s.private.swarmKey = ""
	if _, err := s.overlayConfig(); err != nil {
		return err
	}
	if s.metrics != "" {
		return checkMetricsAddr(s.metrics, s.metricsPublic)
	}
	return nil
}
