package node

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/events"
)

// The store remembers whose it is: the peer ID of the key that last
// opened it. A key file deleted (or replaced) next to a used store makes
// parley generate a new identity with nothing said, and peers know this
// node by its old ID; the store then says so, once, loudly.
var (
	bucketNodeMeta = []byte("node/meta")
	keyOwner       = []byte("owner")
)

// checkOwner records self as the store's owner and returns the earlier
// owner when it was another identity ("" otherwise).
func checkOwner(db *bolt.DB, self peer.ID) (earlier peer.ID, err error) {
	// Read first: a write transaction commits (and writes the file) even
	// when it changes nothing, and the store's backup at start is skipped
	// only for a store not written since.
	var owner []byte
	err = db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketNodeMeta); b != nil {
			owner = b.Get(keyOwner)
		}
		return nil
	})
	if err == nil && peer.ID(owner) == self {
		return "", nil
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketNodeMeta)
		if err != nil {
			return err
		}
		v := b.Get(keyOwner)
		if peer.ID(v) == self {
			return nil
		}
		if v != nil {
			earlier = peer.ID(v)
		}
		return b.Put(keyOwner, []byte(self))
	})
	if err != nil {
		return "", fmt.Errorf("record the store's owner: %w", err)
	}
	return earlier, nil
}

// warnOwner tells the user, loudly, when the store was written by another
// identity than the key loaded now.
func (n *Node) warnOwner(self peer.ID, keyPath string) {
	earlier, err := checkOwner(n.store.DB(), self)
	if err != nil {
		n.log.Warn("could not check the store's owner", "err", err)
		return
	}
	if earlier == "" {
		return
	}
	msg := fmt.Sprintf("this node's identity changed: the store %s was used by peer %s, but the key %s is peer %s "+
		"(was identity.key deleted or replaced? a new one is generated when it is missing); peers know this node by its old ID "+
		"and messages to it do not reach this one: to go back, stop parley and restore the old identity.key",
		n.store.Info().Path, earlier, keyPath, self)
	n.log.Warn(msg)
	n.internal.Emit(events.Error{Error: msg})
}
