package transfer

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestAbandonedUploadsExpire: a share upload that no stream served for
// IdleTimeout is forgotten (its slot freed, counted); one being served,
// or idle for less, is kept.
func TestAbandonedUploadsExpire(t *testing.T) {
	s := &Service{cfg: Config{IdleTimeout: time.Second}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		uploads: make(map[uploadKey]*transfer)}
	now := time.Now()
	add := func(p peer.ID, serving int, idle time.Duration) *transfer {
		u := newTransfer(t.Context(), make([]byte, idLen))
		u.dir, u.share, u.peer, u.state, u.serving, u.idleSince = Send, true, p, StateWaiting, serving, now.Add(-idle)
		u.stranger = true
		s.uploads[uploadKey{u.id, p}] = u
		return u
	}
	gone := add("gone", 0, 2*time.Second)
	streaming := add("streaming", 1, time.Hour)
	recent := add("recent", 0, 100*time.Millisecond)
	s.mu.Lock()
	s.pruneUploadsAt(now)
	s.mu.Unlock()
	if _, ok := s.uploads[uploadKey{gone.id, "gone"}]; ok {
		t.Fatal("abandoned upload kept")
	}
	select {
	case <-gone.done:
	default:
		t.Fatal("abandoned upload not ended")
	}
	for _, u := range []*transfer{streaming, recent} {
		if _, ok := s.uploads[uploadKey{u.id, u.peer}]; !ok {
			t.Fatalf("upload of %s forgotten", u.peer)
		}
	}
	if got := s.budget.UploadsExpired; got != 1 {
		t.Fatalf("UploadsExpired = %d, want 1", got)
	}
}
