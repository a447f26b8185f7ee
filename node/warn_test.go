package node

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/overlay"

	"github.com/libp2p/go-libp2p/core/peer"
)

// An impostor's nick conflict, recorded in an earlier run, is warned
// about again in a new session, once.
func TestImpostorWarnedAgainAfterRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	id, _, err := identity.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := peer.IDFromPrivateKey(testnet.NewKey(t))
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := peer.IDFromPrivateKey(testnet.NewKey(t))
	if err != nil {
		t.Fatal(err)
	}
	session := func() int {
		rec := testnet.NewRecorder(0)
		n, err := New(context.Background(), Config{
			DataDir: dir, Identity: id, Nick: "me", Emitter: rec,
			Overlay: overlay.Config{
				ListenAddrs: []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/0")},
				DHTMode:     overlay.DHTOff,
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		// observeNick runs on the event loop in the product; here the
		// loop is idle, so calling it from the test is the same.
		n.observeNick(bob, "bob")
		n.observeNick(impostor, "bob")
		n.observeNick(impostor, "bob")
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		warnings := 0
		for _, e := range rec.All() {
			if w, ok := e.(events.TrustWarning); ok && w.PeerID == impostor {
				warnings++
			}
		}
		return warnings
	}
	if got := session(); got != 1 {
		t.Fatalf("first session: %d warnings, want 1", got)
	}
	if got := session(); got != 1 {
		t.Fatalf("after a restart: %d warnings, want 1 (the impostor came back)", got)
	}
}
