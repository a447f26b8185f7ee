package main

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzCommandLine feeds arbitrary command lines (arguments separated by
// NUL) to the top-level dispatch and the flag parsing of every subcommand
// (chat, serve, send, id, key, keygen, bench, version, help), without
// running the command: parseCommandLine starts no node, reads or writes no
// key and runs no benchmark. No panic; every refusal is a usage error
// (exit code 2) or -h; an accepted line gives the subcommand it names.
func FuzzCommandLine(f *testing.F) {
	// More seeds, one per subcommand and flag kind, are in
	// testdata/fuzz/FuzzCommandLine.
	for _, seed := range []string{
		"",
		"chat\x00--nick\x00ann",
		"send\x00--to\x0012D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE\x00file.txt",
		"key\x00passphrase\x00--new-key-passphrase-file\x00/tmp/p",
		"bench\x00--size\x0064MiB\x00--rooms\x0010,50",
		"keygen\x00--swarm-key\x00swarm.key",
		"id\x00--json\x00--log-level\x00debug",
		"serve\x00--metrics\x00127.0.0.1:9464",
		"-h",
		"--help",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var args []string
		if raw != "" {
			args = strings.Split(raw, "\x00")
		}
		cmd, err := parseCommandLine(args, io.Discard)
		if err != nil {
			var ue usageError
			if !errors.Is(err, errHelp) && !errors.As(err, &ue) {
				t.Fatalf("%q: %v is not a usage error", args, err)
			}
			if cmd != nil {
				t.Fatalf("%q: a command along with the error %v", args, err)
			}
			return
		}
		if cmd == nil {
			t.Fatalf("%q: no command and no error", args)
		}
		sub := "chat"
		if len(args) > 0 && !strings.HasPrefix(args[0], "-") && args[0] != "" {
			sub = args[0]
		}
		if len(args) == 1 && isHelpFlag(args[0]) {
			sub = "help" // parley --help lists the commands, as parley help does
		}
		if sub == "version" || sub == "help" {
			sub = "version or help"
		}
		if got := commandName(cmd); got != sub {
			t.Fatalf("%q: parsed as %s, not %s", args, got, sub)
		}
	})
}

// commandName is the subcommand a parsed command runs.
func commandName(c command) string {
	switch c.(type) {
	case *chatCmd:
		return "chat"
	case *serveCmd:
		return "serve"
	case *sendCmd:
		return "send"
	case *idCmd:
		return "id"
	case *keyCmd:
		return "key"
	case *keygenCmd:
		return "keygen"
	case *benchCmd:
		return "bench"
	case commandFunc:
		return "version or help"
	}
	return "unknown"
}

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
	var s settings
	fs := newCommandFlags("chat", cmdChat, &s)
	if err := fs.parse(args, io.Discard); err != nil {
		return err
	}
	// Reading files is not the parser's business (FuzzDecodeSwarmKey
	// covers the swarm key format).
	s.swarmKey = ""
	_, err := s.overlayConfig()
	return err
}

func fuzzServeFlags(args []string) error {
	var s settings
	fs := newCommandFlags("serve", cmdServe, &s)
	if err := fs.parse(args, io.Discard); err != nil {
		return err
	}
	s.swarmKey = ""
	if _, err := s.overlayConfig(); err != nil {
		return err
	}
	if s.metrics != "" {
		return checkMetricsAddr(s.metrics, s.metricsPublic)
	}
	return nil
}
