package node

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/overlay"
)

type sink struct {
	mu  sync.Mutex
	evs []events.Event
}

func (s *sink) Emit(e events.Event) {
	s.mu.Lock()
	s.evs = append(s.evs, e)
	s.mu.Unlock()
}

// take returns and forgets the events so far.
func (s *sink) take() []events.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.evs
	s.evs = nil
	return out
}

func newNode(t *testing.T) (*Node, *sink) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	id, _, err := identity.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{}
	n, err := New(context.Background(), Config{
		DataDir:  dir,
		Identity: id,
		Nick:     "tester",
		Overlay: overlay.Config{
			ListenAddrs: []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/0")},
			DHTMode:     overlay.DHTOff,
		},
		Emitter: s,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return n, s
}
