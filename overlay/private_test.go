package overlay

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/internal/testnet"
)

func newSwarmKey(t testing.TB) pnet.PSK {
	t.Helper()
	raw, err := NewSwarmKey()
	if err != nil {
		t.Fatal(err)
	}
	psk, err := DecodeSwarmKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return psk
}

func tcpLoopback() []ma.Multiaddr { return mustAddrs("/ip4/127.0.0.1/tcp/0") }

// refused asserts that a cannot keep a connection to b: the dial fails, or
// the connection is closed right after it (the remote side may accept the
// TCP connection before its gater or handshake refuses it).
func refused(t *testing.T, a, b *Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The dial may fail, or succeed on the dialer's side for a moment
	// before the remote closes it; either way no connection may last.
	_ = a.Connect(ctx, b.AddrInfo())
	waitFor(t, 5*time.Second, "refused connection closed", func() bool {
		return len(a.Network().ConnsToPeer(b.ID())) == 0 && len(b.Network().ConnsToPeer(a.ID())) == 0
	})
}

func connects(t *testing.T, a, b *Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.AddrInfo()); err != nil {
		t.Fatalf("connect: %v", err)
	}
}

func TestSwarmKey(t *testing.T) {
	key := newSwarmKey(t)
	a := newHost(t, Config{SwarmKey: key, ListenAddrs: tcpLoopback()})
	b := newHost(t, Config{SwarmKey: key, ListenAddrs: tcpLoopback()})
	outsider := newHost(t, Config{ListenAddrs: tcpLoopback()})
	otherSwarm := newHost(t, Config{SwarmKey: newSwarmKey(t), ListenAddrs: tcpLoopback()})

	connects(t, a, b)
	for _, c := range a.Network().ConnsToPeer(b.ID()) {
		if !isTCP(c.RemoteMultiaddr()) {
			t.Fatalf("private network connection over %s", c.RemoteMultiaddr())
		}
	}
	refused(t, outsider, a)
	refused(t, a, outsider)
	refused(t, otherSwarm, a)
	refused(t, a, otherSwarm)
	// a still serves its swarm.
	connects(t, b, a)
}

func TestSwarmKeyListensOnTCPOnly(t *testing.T) {
	key := newSwarmKey(t)
	_, err := New(context.Background(), Config{
		PrivKey:     testnet.NewKey(t),
		SwarmKey:    key,
		ListenAddrs: mustAddrs("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"),
	})
	if !errors.Is(err, ErrQUICInPrivateNetwork) {
		t.Fatalf("QUIC listen address with a swarm key: %v, want ErrQUICInPrivateNetwork", err)
	}
	if _, err := New(context.Background(), Config{PrivKey: testnet.NewKey(t), SwarmKey: key, PublicDHT: true, ListenAddrs: tcpLoopback()}); err == nil {
		t.Fatal("public DHT accepted in a private network")
	}
	if got := tcpOnly(DefaultListenAddrs()); len(got) != 2 {
		t.Fatalf("TCP defaults %v", got)
	}
	for _, tc := range []struct {
		addr string
		tcp  bool
	}{
		{"/ip4/0.0.0.0/tcp/1", true},
		{"/ip6/::/tcp/1", true},
		{"/dns4/example.com/tcp/1/p2p/12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE", true},
		{"/ip4/0.0.0.0/udp/1/quic-v1", false},
		{"/ip4/0.0.0.0/tcp/1/ws", false},
		{"/ip4/0.0.0.0", false},
	} {
		if got := isTCP(ma.StringCast(tc.addr)); got != tc.tcp {
			t.Errorf("isTCP(%s) = %v", tc.addr, got)
		}
	}
}

func TestAllowList(t *testing.T) {
	friend := newHost(t, Config{})
	stranger := newHost(t, Config{})
	kept := newHost(t, Config{})
	a := newHost(t, Config{
		AllowPeers: []peer.ID{friend.ID()},
		Peers:      []peer.AddrInfo{kept.AddrInfo()},
	})
	connects(t, friend, a)
	connects(t, a, friend)
	refused(t, stranger, a) // inbound: closed after the handshake
	refused(t, a, stranger) // outbound: never dialled
	// A --peer is allowed without being listed, and kept connected.
	waitFor(t, 10*time.Second, "kept peer connected", func() bool {
		return a.Network().Connectedness(kept.ID()) == network.Connected
	})
	// Deny wins over allow.
	if err := a.DenyPeer(friend.ID()); err != nil {
		t.Fatal(err)
	}
	refused(t, friend, a)
}

func TestAllowListOff(t *testing.T) {
	g, err := newGater(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !g.allowed("anyone") {
		t.Fatal("empty allow list refuses peers")
	}
	if got := allowList(&Config{Peers: []peer.AddrInfo{{ID: "p"}}}); got != nil {
		t.Fatalf("allow list without AllowPeers: %v", got)
	}
}

func TestSwarmKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "swarm.key")
	if err := WriteSwarmKey(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o, want 0600", st.Mode().Perm())
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteSwarmKey(path); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("overwrite: %v, want fs.ErrExist", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("existing key file changed")
	}
	psk, err := ReadSwarmKey(path)
	if err != nil || len(psk) != SwarmKeySize {
		t.Fatalf("read back: %v (%d bytes)", err, len(psk))
	}
	if runtime.GOOS != "windows" {
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadSwarmKey(path); !errors.Is(err, ErrBadSwarmKey) || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("0644 key file: %v", err)
		}
	}
	if _, err := ReadSwarmKey(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestDecodeSwarmKey(t *testing.T) {
	hex64 := strings.Repeat("ab", 32)
	b64 := "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s="
	bin := string(bytes.Repeat([]byte{0xab}, 32))
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
	}{
		{"base16", swarmKeyHeader + "\n/base16/\n" + hex64 + "\n", true},
		{"base16 no final newline", swarmKeyHeader + "\n/base16/\n" + hex64, true},
		{"crlf", swarmKeyHeader + "\r\n/base16/\r\n" + hex64 + "\r\n", true},
		{"base64", swarmKeyHeader + "\n/base64/\n" + b64 + "\n", true},
		{"bin", swarmKeyHeader + "\n/bin/\n" + bin, true},
		{"bin with newline", swarmKeyHeader + "\n/bin/\n" + bin + "\n", true},
		{"empty", "", false},
		{"no header", "/base16/\n" + hex64, false},
		{"wrong header", "/key/swarm/psk/2.0.0/\n/base16/\n" + hex64, false},
		{"unknown encoding", swarmKeyHeader + "\n/base58/\n" + hex64, false},
		{"short", swarmKeyHeader + "\n/base16/\n" + hex64[:62], false},
		{"long", swarmKeyHeader + "\n/base16/\n" + hex64 + "00", false},
		{"trailing junk", swarmKeyHeader + "\n/base16/\n" + hex64 + "\nmore", false},
		{"not hex", swarmKeyHeader + "\n/base16/\n" + strings.Repeat("zz", 32), false},
		{"zero key", swarmKeyHeader + "\n/base16/\n" + strings.Repeat("00", 32), false},
		{"oversize", swarmKeyHeader + "\n/base16/\n" + strings.Repeat("a", 300), false},
	} {
		psk, err := DecodeSwarmKey([]byte(tc.in))
		if tc.ok != (err == nil) {
			t.Errorf("%s: err %v", tc.name, err)
			continue
		}
		if err != nil && !errors.Is(err, ErrBadSwarmKey) {
			t.Errorf("%s: error %v does not wrap ErrBadSwarmKey", tc.name, err)
		}
		if tc.ok && !bytes.Equal(psk, bytes.Repeat([]byte{0xab}, 32)) {
			t.Errorf("%s: key %x", tc.name, psk)
		}
	}
}

// FuzzDecodeSwarmKey: the decoder never panics, and whatever it accepts is
// a 32-byte key that round-trips through the base16 format.
func FuzzDecodeSwarmKey(f *testing.F) {
	raw, err := NewSwarmKey()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte(swarmKeyHeader + "\n/base64/\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n"))
	f.Add([]byte(swarmKeyHeader + "\n/bin/\n" + strings.Repeat("\xab", 32)))
	f.Add([]byte(swarmKeyHeader + "\r\n/base16/\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		psk, err := DecodeSwarmKey(in)
		if err != nil {
			if !errors.Is(err, ErrBadSwarmKey) {
				t.Fatalf("error %v does not wrap ErrBadSwarmKey", err)
			}
			return
		}
		if len(psk) != SwarmKeySize {
			t.Fatalf("accepted a %d-byte key", len(psk))
		}
		if len(in) > maxSwarmKeyFile {
			t.Fatal("accepted an oversize file")
		}
	})
}
