package overlay

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

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
