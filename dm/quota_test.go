package dm

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/dm/pb"
)

// TestInboxSharesBySubnetAndAge: the strangers' stored-message quota seen
// from synthetic subnets and ages (loopback cannot tell subnets apart): a
// crowd of fresh identities, or of one subnet, stores only its share;
// strangers seen before and strangers of other subnets keep room.
func TestInboxSharesBySubnetAndAge(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "q.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte(bucketInbox))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	newService := func() *Service {
		cfg := Config{StrangerInboxBytes: 64 << 10, StrangerInboxPerPeer: 8 << 10,
			StrangerInboxPerSubnet: 16 << 10, StrangerInboxNewcomers: 16 << 10, PruneInterval: time.Hour,
			Newcomer: func(p peer.ID) bool { return strings.HasPrefix(string(p), "new") }}
		return &Service{cfg: cfg, db: db, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	}
	msg := &pb.Message{Text: strings.Repeat("x", 1024-recordOverhead)} // costs 1 KiB
	// fill stores messages of 1 KiB from n identities named prefix0...,
	// 8 each, as far as they fit, and returns how many were taken.
	fill := func(s *Service, prefix, subnet string, n int) int {
		took := 0
		for i := range n {
			for range 8 {
				if _, ok := s.reserveInbox(peer.ID(fmt.Sprint(prefix, i)), subnet, msg, time.Now()); ok {
					took++
				}
			}
		}
		return took
	}
	tests := []struct {
		name            string
		crowd, crowdNet string
		try, tryNet     string
		crowdMax        int // KiB the crowd may store: the share that binds
		tryFits         bool
	}{
		{"fresh crowd of one subnet, then an old stranger of another", "new", "10.0.0.0/24", "old", "10.0.1.0/24", 16, true},
		{"fresh crowd of one subnet fills the newcomers' pool too", "new", "10.0.0.0/24", "newer", "10.0.1.0/24", 16, false},
		{"old crowd of one subnet, then one more of it", "old", "10.0.0.0/24", "older", "10.0.0.0/24", 16, false},
		{"fresh crowd of many subnets (unknown), then a newcomer", "new", "", "newer", "10.0.1.0/24", 16, false},
		{"fresh crowd of many subnets (unknown), then an old stranger", "new", "", "old", "10.0.1.0/24", 16, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newService()
			if took := fill(s, tt.crowd, tt.crowdNet, 32); took != tt.crowdMax {
				t.Fatalf("crowd stored %d KiB, want %d", took, tt.crowdMax)
			}
			release, ok := s.reserveInbox(peer.ID(tt.try), tt.tryNet, msg, time.Now())
			if ok != tt.tryFits {
				t.Fatalf("%s after the crowd: fits = %v, want %v", tt.try, ok, tt.tryFits)
			}
			if ok {
				release()
			}
		})
	}
}
