package trust

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// storedPins counts the nick pins in the database.
func storedPins(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	if err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket([]byte(bucketPins)).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCrowdCannotPushOutEarlierPeers: past the record limit, a crowd of
// new keys churns among itself; the peers seen before it keep their
// records and pins (so an impostor still gets the warning), trusted peers
// do not count, and the database holds what memory holds — with and
// without write-behind.
func TestCrowdCannotPushOutEarlierPeers(t *testing.T) {
	for _, behind := range []time.Duration{0, time.Second} {
		t.Run(fmt.Sprint("behind=", behind), func(t *testing.T) {
			s, _ := openStore(t)
			clock := time.Unix(1_800_000_000, 0)
			s.now = func() time.Time { clock = clock.Add(time.Millisecond); return clock }
			s.SetMaxPeers(32)
			if behind > 0 {
				s.WriteBehind(behind)
			}
			early := make([]peer.ID, 8)
			for i := range early {
				early[i] = newID(t)
				observe(t, s, early[i], fmt.Sprint("early", i))
			}
			friend := newID(t)
			if err := s.Trust(friend); err != nil {
				t.Fatal(err)
			}
			for i := range 500 {
				observe(t, s, newID(t), fmt.Sprint("sybil", i))
			}
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			for i, p := range early {
				info, ok := s.Get(p)
				if !ok || !info.Pinned {
					t.Fatalf("early peer %d: known %v, pinned %v after the crowd", i, ok, info.Pinned)
				}
			}
			if c := observe(t, s, newID(t), "early0"); c == nil || c.Pinned != early[0] {
				t.Fatalf("impostor of early0: conflict %+v, want early0's pin kept", c)
			}
			if !s.Trusted(friend) {
				t.Fatal("trusted peer dropped")
			}
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			// 32 untrusted plus the trusted friend, at most.
			if n := storedPeers(t, s); n > 33 {
				t.Fatalf("%d records stored, want at most 33", n)
			}
			s.mu.Lock()
			mem, pins := len(s.peers), len(s.pins)
			s.mu.Unlock()
			if n := storedPeers(t, s); n != mem {
				t.Fatalf("%d records stored, %d in memory", n, mem)
			}
			if n := storedPins(t, s); n != pins || pins > mem {
				t.Fatalf("%d pins stored, %d in memory, %d records", n, pins, mem)
			}
		})
	}
}

// TestOneKeyPinsFewNicks: a key that keeps changing its nick pins its
// first maxPinsPerPeer nicks only; its later nicks are not pinned and
// raise no conflict; another key can pin them.
func TestOneKeyPinsFewNicks(t *testing.T) {
	s, _ := openStore(t)
	p := newID(t)
	for i := range 100 {
		if c := observe(t, s, p, fmt.Sprint("nick", i)); c != nil {
			t.Fatalf("nick%d: conflict %+v for an unpinned nick", i, c)
		}
	}
	if n := storedPins(t, s); n != maxPinsPerPeer {
		t.Fatalf("%d pins stored, want %d", n, maxPinsPerPeer)
	}
	if info, _ := s.Get(p); info.Pinned {
		t.Fatal("the 100th nick is shown pinned")
	}
	q := newID(t)
	if c := observe(t, s, q, "nick99"); c != nil {
		t.Fatalf("conflict %+v: nick99 was never pinned", c)
	}
	if c := observe(t, s, q, "nick0"); c == nil || c.Pinned != p {
		t.Fatalf("conflict %+v, want nick0 pinned to the first key", c)
	}
}
