package trust_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/trust"
)

func newPeer() peer.ID {
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		log.Fatal(err)
	}
	return id
}

// The first key seen with a nick keeps it; another key claiming it is a
// conflict, and the nick becomes ambiguous until the user decides.
func ExampleStore_Observe() {
	dir, err := os.MkdirTemp("", "trust-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := bolt.Open(filepath.Join(dir, "parley.db"), 0o600, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	store, err := trust.Open(db)
	if err != nil {
		log.Fatal(err)
	}

	alice, mallory := newPeer(), newPeer()
	c, _ := store.Observe(alice, "alice")
	fmt.Println("first sight, conflict:", c != nil)
	c, _ = store.Observe(mallory, "Alice")
	fmt.Println("other key, conflict:", c != nil, "pinned to alice:", c.Pinned == alice)

	_, err = store.Resolve("alice")
	var amb *trust.AmbiguousError
	fmt.Println("ambiguous:", errors.As(err, &amb), len(amb.Candidates), "candidates")

	// After comparing safety numbers the user trusts the new key.
	if err := store.Trust(mallory); err != nil {
		log.Fatal(err)
	}
	c, _ = store.Observe(alice, "alice")
	fmt.Println("old key now conflicts:", c != nil)
	// Output:
	// first sight, conflict: false
	// other key, conflict: true pinned to alice: true
	// ambiguous: true 2 candidates
	// old key now conflicts: true
}
