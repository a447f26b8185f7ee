package node

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/internal/testnet"
)

// TestCheckOwner: the store names the identity that used it; another
// identity is reported once, and is the owner after that.
func TestCheckOwner(t *testing.T) {
	db := testnet.TempDB(t)
	old, other := peer.ID("old-identity"), peer.ID("new-identity")
	for i, tc := range []struct {
		self, want peer.ID
	}{
		{old, ""},    // first use: recorded
		{old, ""},    // the same identity again
		{other, old}, // a new key next to the used store
		{other, ""},  // said once
		{old, other}, // the old key restored: said too
	} {
		got, err := checkOwner(db, tc.self)
		if err != nil || got != tc.want {
			t.Fatalf("step %d: checkOwner(%s) = %q, %v; want %q", i, tc.self, got, err, tc.want)
		}
	}
}
