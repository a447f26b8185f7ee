package mailbox

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// Holder health: a holder named in the node's record that every attempt
// to reach has failed for Config.HolderStaleAfter (default 3 days) is
// dropped from the record, so senders stop trying it. The time counts
// from the first failure after the last success; failures more than
// staleGap apart (the node itself was off) start it again, so a node
// that was away for a week does not drop its holders on its first
// failed dial. A dropped holder that connects again is named again
// (while it is eligible).
const (
	DefaultHolderStaleAfter = 72 * time.Hour
	// staleGap: failures further apart than this do not add up.
	staleGap = 24 * time.Hour
	// healthPrefix keys a holder's failures in bucketSelf: prefix || peer
	// -> first failure (ms, 8 bytes) || last failure (ms, 8 bytes).
	healthPrefix = "failing/"
)

// failing is how long a holder has been failing.
type failing struct{ first, last time.Time }

func healthKey(p peer.ID) []byte { return append([]byte(healthPrefix), p...) }

// holderFailing reads p's failures; zero when none.
func (c *Courier) holderFailing(p peer.ID) failing {
	var f failing
	_ = c.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket([]byte(bucketSelf)).Get(healthKey(p)); len(v) == 16 {
			f.first = time.UnixMilli(int64(binary.BigEndian.Uint64(v[:8]))) // #nosec G115 -- written from a time
			f.last = time.UnixMilli(int64(binary.BigEndian.Uint64(v[8:])))  // #nosec G115 -- written from a time
		}
		return nil
	})
	return f
}

// holderOK records that p answered: it is not failing.
func (c *Courier) holderOK(p peer.ID) {
	if c.holderFailing(p).first.IsZero() {
		return
	}
	err := c.db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucketSelf)).Delete(healthKey(p)) })
	if err != nil {
		c.log.Warn("mailbox: recording a holder's health failed", "err", err)
	}
}

// holderFailed records a failed attempt to reach holder p at now, and
// drops p from the record when it has failed for HolderStaleAfter.
func (c *Courier) holderFailed(p peer.ID, now time.Time) {
	f := c.holderFailing(p)
	if f.first.IsZero() || now.Sub(f.last) > staleGap {
		f.first = now
	}
	f.last = now
	if now.Sub(f.first) >= c.cfg.HolderStaleAfter {
		if err := c.dropHolder(p); err != nil {
			c.log.Warn("mailbox: dropping an unreachable holder failed", "holder", p, "err", err)
		}
		return
	}
	v := binary.BigEndian.AppendUint64(nil, uint64(f.first.UnixMilli())) // #nosec G115 -- a time after 1970
	v = binary.BigEndian.AppendUint64(v, uint64(f.last.UnixMilli()))     // #nosec G115 -- a time after 1970
	err := c.db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucketSelf)).Put(healthKey(p), v) })
	if err != nil {
		c.log.Warn("mailbox: recording a holder's health failed", "err", err)
	}
}

// dropHolder re-signs the node's record without p and forgets p's
// failures.
func (c *Courier) dropHolder(p peer.ID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.IndexFunc(c.own.Holders, func(ai peer.AddrInfo) bool { return ai.ID == p })
	if i < 0 {
		return nil
	}
	if err := c.resign(slices.Delete(slices.Clone(c.own.Holders), i, i+1)); err != nil {
		return err
	}
	delete(c.picked, p)
	err := c.db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucketSelf)).Delete(healthKey(p)) })
	if err != nil {
		return fmt.Errorf("forget holder health: %w", err)
	}
	c.log.Info("mailbox: holder dropped, unreachable", "holder", p, "for", c.cfg.HolderStaleAfter)
	return nil
}
