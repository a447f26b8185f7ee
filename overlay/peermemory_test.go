package overlay

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/internal/testnet"
)

func TestPeerMemorySurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	other := newHost(t, Config{})
	key := testnet.NewKey(t)

	db := testnet.OpenDB(t, path)
	first, err := New(t.Context(), Config{PrivKey: key, ListenAddrs: mustAddrs("/ip4/127.0.0.1/tcp/0"), Store: db})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Connect(t.Context(), other.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "other remembered", func() bool {
		for _, r := range first.Remembered() {
			if r.ID == other.ID() && len(r.Addrs) > 0 {
				return true
			}
		}
		return false
	})
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "other sees first go", func() bool {
		return other.Network().Connectedness(first.ID()) != network.Connected
	})

	// Restart with the same key and store, and no peer given: the node
	// redials the peer it remembers.
	db = testnet.OpenDB(t, path)
	second := newHost(t, Config{PrivKey: key, Store: db})
	if got := second.Remembered(); len(got) != 1 || got[0].ID != other.ID() {
		t.Fatalf("remembered after restart: %+v", got)
	}
	waitFor(t, 10*time.Second, "redial of the remembered peer", func() bool {
		return second.Network().Connectedness(other.ID()) == network.Connected
	})
}

func TestPeerMemoryIgnoresNonParleyPeers(t *testing.T) {
	db := testnet.TempDB(t)
	h := newHost(t, Config{Store: db})
	stranger := newHost(t, Config{UserAgent: "kubo/0.30"})
	friend := newHost(t, Config{})
	for _, p := range []*Host{stranger, friend} {
		if err := h.Connect(t.Context(), p.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "friend remembered", func() bool {
		return len(h.Remembered()) > 0
	})
	for _, r := range h.Remembered() {
		if r.ID == stranger.ID() {
			t.Fatal("a non-Parley peer was remembered")
		}
	}
}

func TestRecordCodec(t *testing.T) {
	id := newHost(t, Config{DHTMode: DHTOff}).ID()
	rec := PeerRecord{ID: id, Addrs: mustAddrs("/ip4/10.0.0.1/tcp/4001", "/ip4/10.0.0.1/udp/4001/quic-v1"), LastSeen: time.Unix(1700000000, 0)}
	val, err := encodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRecord([]byte(id), val)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != id || !got.LastSeen.Equal(rec.LastSeen) || len(got.Addrs) != 2 || !got.Addrs[1].Equal(rec.Addrs[1]) {
		t.Fatalf("round trip: got %+v, want %+v", got, rec)
	}
	for _, tc := range []struct {
		name     string
		key, val string
		ok       bool
		addrs    int
	}{
		{"bad key", "nope", `{"addrs":[],"last_seen":1}`, false, 0},
		{"bad json", string(id), `{"addrs":`, false, 0},
		{"no last seen", string(id), `{"addrs":["/ip4/10.0.0.1/tcp/1"]}`, false, 0},
		{"bad addr skipped", string(id), `{"addrs":["/nope","/ip4/10.0.0.1/tcp/1"],"last_seen":5}`, true, 1},
		{"too big", string(id), `{"addrs":["` + string(make([]byte, maxRecordSize)) + `"],"last_seen":5}`, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := decodeRecord([]byte(tc.key), []byte(tc.val))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && len(r.Addrs) != tc.addrs {
				t.Fatalf("%d addrs, want %d", len(r.Addrs), tc.addrs)
			}
		})
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte{0, 36, 8, 1, 18, 32, 1, 2, 3}, []byte(`{"addrs":["/ip4/10.0.0.1/tcp/1"],"last_seen":5}`))
	f.Add([]byte("x"), []byte(`{}`))
	f.Add([]byte{}, []byte(`[`))
	f.Fuzz(func(t *testing.T, key, val []byte) {
		r, err := decodeRecord(key, val)
		if err != nil {
			return
		}
		if len(r.Addrs) > maxRecordAddrs {
			t.Fatalf("%d addrs", len(r.Addrs))
		}
		if _, err := encodeRecord(r); err != nil {
			t.Fatal(err)
		}
	})
}

// TestStrangersRememberedBriefly (issue 19, dial only what you may): a
// stranger that announced 16 ports of this machine (a port scan) is
// remembered with the 2 plausible ones only, and forgotten after
// StrangerMaxAge, across a restart, while a known peer stays remembered.
func TestStrangersRememberedBriefly(t *testing.T) {
	const strangerAge = time.Second
	path := filepath.Join(t.TempDir(), "parley.db")
	var scan []string
	for port := 1001; port <= 1016; port++ {
		scan = append(scan, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port))
	}
	stranger := newHost(t, Config{AnnounceAddrs: mustAddrs(scan...)})
	friend := newHost(t, Config{})
	key := testnet.NewKey(t)
	cfg := Config{PrivKey: key, ListenAddrs: mustAddrs("/ip4/127.0.0.1/tcp/0"),
		Known:      func(p peer.ID) bool { return p == friend.ID() },
		PeerMemory: PeerMemory{StrangerMaxAge: strangerAge}}

	db := testnet.OpenDB(t, path)
	cfg.Store = db
	first, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []*Host{stranger, friend} {
		if err := h.Connect(t.Context(), first.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	record := func(h *Host, p peer.ID) *PeerRecord {
		for _, r := range h.Remembered() {
			if r.ID == p {
				return &r
			}
		}
		return nil
	}
	waitFor(t, 10*time.Second, "both remembered", func() bool {
		return record(first, stranger.ID()) != nil && record(first, friend.ID()) != nil
	})
	if r := record(first, stranger.ID()); !r.Stranger || len(r.Addrs) > maxPortsPerHost {
		t.Fatalf("stranger remembered as %+v; want a stranger with at most %d addresses", r, maxPortsPerHost)
	}
	if r := record(first, friend.ID()); r.Stranger {
		t.Fatalf("known peer remembered as a stranger: %+v", r)
	}
	if n := first.RefusedAddrs(); n < int64(len(scan)-maxPortsPerHost) {
		t.Fatalf("%d announced addresses refused, want at least %d", n, len(scan)-maxPortsPerHost)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(strangerAge + 1100*time.Millisecond) // last seen is kept in whole seconds

	db = testnet.OpenDB(t, path)
	cfg.Store = db
	second := newHost(t, cfg)
	if record(second, stranger.ID()) != nil {
		t.Fatal("a stranger is still remembered after StrangerMaxAge")
	}
	if record(second, friend.ID()) == nil {
		t.Fatal("the known peer was forgotten")
	}
}
