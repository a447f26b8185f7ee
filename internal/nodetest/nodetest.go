// Package nodetest starts real Parley nodes on loopback for tests of the
// packages above node (command, and node's own external tests).
package nodetest

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/overlay"
)

// Sink records the events a node emits.
type Sink struct {
	mu  sync.Mutex
	evs []events.Event
}

// Emit records e.
func (s *Sink) Emit(e events.Event) {
	s.mu.Lock()
	s.evs = append(s.evs, e)
	s.mu.Unlock()
}

// Take returns and forgets the events so far.
func (s *Sink) Take() []events.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.evs
	s.evs = nil
	return out
}

// New starts a node with a fresh identity and data dir, listening on
// 127.0.0.1 with the DHT and mDNS off, nick "tester"; mod, when set,
// changes the config first. The node closes when the test ends.
func New(tb testing.TB, mod func(*node.Config)) (*node.Node, *Sink) {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "data")
	id, _, err := identity.LoadOrCreate(dir)
	if err != nil {
		tb.Fatal(err)
	}
	s := &Sink{}
	cfg := node.Config{
		DataDir:  dir,
		Identity: id,
		Nick:     "tester",
		Overlay: overlay.Config{
			ListenAddrs: []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/0")},
			DHTMode:     overlay.DHTOff,
		},
		Emitter: s,
	}
	if mod != nil {
		mod(&cfg)
	}
	n, err := node.New(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := n.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return n, s
}
