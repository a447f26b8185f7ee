package overlay

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
)

// closedTCPAddr returns a loopback TCP address nothing listens on.
func closedTCPAddr(t *testing.T) ma.Multiaddr {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	a, err := ma.NewMultiaddr("/ip4/127.0.0.1/tcp/" + strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestClassifyDial(t *testing.T) {
	a := newHost(t, Config{})
	b := newHost(t, Config{})
	stranger, err := peer.IDFromPrivateKey(testnet.NewKey(t))
	if err != nil {
		t.Fatal(err)
	}
	closed := closedTCPAddr(t)
	cases := []struct {
		name       string
		ai         peer.AddrInfo
		kind       string
		actual     peer.ID
		wantInLine string
	}{
		{"closed tcp port", peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{closed}}, DialRefused, "", "refused"},
		{"wrong peer over tcp", peer.AddrInfo{ID: stranger, Addrs: addrOf(t, b, ma.P_TCP).Addrs}, DialWrongPeer, b.ID(), ShortPeer(b.ID()) + ", not " + ShortPeer(stranger)},
		{"wrong peer over quic", peer.AddrInfo{ID: stranger, Addrs: addrOf(t, b, ma.P_QUIC_V1).Addrs}, DialWrongPeer, b.ID(), "not " + ShortPeer(stranger)},
		{"no address", peer.AddrInfo{ID: stranger}, DialNoAddress, "", "no address"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a.Network().Peerstore().ClearAddrs(tc.ai.ID)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			err := a.Connect(ctx, tc.ai)
			if err == nil {
				t.Fatal("connect succeeded")
			}
			de := ClassifyDial(tc.ai.ID, err)
			line := de.Error()
			t.Logf("%s in %v: %s", tc.name, time.Since(start).Round(time.Millisecond), line)
			if de.Kind != tc.kind {
				t.Errorf("kind %q, want %q (libp2p said %q)", de.Kind, tc.kind, err)
			}
			if de.Actual != tc.actual {
				t.Errorf("actual peer %s, want %s", de.Actual, tc.actual)
			}
			if strings.ContainsAny(line, "\n\r") || !strings.Contains(line, tc.wantInLine) {
				t.Errorf("line %q: want one line with %q", line, tc.wantInLine)
			}
			if len(tc.ai.Addrs) > 0 && !strings.Contains(line, "127.0.0.1:") {
				t.Errorf("line %q does not name the address", line)
			}
			if !errors.Is(de, err) && !errors.Is(de, de.Cause) {
				t.Error("the libp2p error is not kept")
			}
		})
	}
}

func TestClassifyDialNil(t *testing.T) {
	if ClassifyDial("", nil) != nil {
		t.Fatal("nil error classified")
	}
}

// TestKeptPeerFailuresReported: a kept peer behind a closed port or with
// the wrong peer ID is reported at once, and again on each retry.
func TestKeptPeerFailuresReported(t *testing.T) {
	b := newHost(t, Config{})
	stranger, err := peer.IDFromPrivateKey(testnet.NewKey(t))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, reason string
		ai           peer.AddrInfo
	}{
		{"closed port", DialRefused, peer.AddrInfo{ID: stranger, Addrs: []ma.Multiaddr{closedTCPAddr(t)}}},
		{"wrong peer id", DialWrongPeer, peer.AddrInfo{ID: stranger, Addrs: addrOf(t, b, ma.P_TCP).Addrs}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			start := time.Now()
			newHost(t, Config{
				Peers: []peer.AddrInfo{tc.ai}, Emitter: rec,
				Redial: Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond},
			})
			rec.WaitCount(t, "two peer_dial_failed", 2, func(e events.Event) bool {
				f, ok := e.(events.PeerDialFailed)
				return ok && f.PeerID == tc.ai.ID
			})
			fails := testnet.Events(rec.Recorder, func(f events.PeerDialFailed) bool { return true })
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("two failures took %v", d)
			}
			for _, f := range fails {
				if f.Reason != tc.reason {
					t.Errorf("retry reported %+v, want reason %s", f, tc.reason)
				}
			}
			f := fails[0]
			if f.Reason != tc.reason || f.RetryIn <= 0 || strings.Contains(f.Error, "\n") || !strings.Contains(f.Addr, "127.0.0.1:") {
				t.Errorf("event %+v: want reason %s, a retry, one line, the address", f, tc.reason)
			}
		})
	}
}
