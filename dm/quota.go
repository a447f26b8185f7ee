package dm

import (
	"bytes"
	"errors"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/dm/pb"
)

// ErrInboxQuota: a stranger's stored messages are at their quota
// (Config.StrangerInboxBytes, StrangerInboxPerPeer); the message was not
// stored, and may be offered again later.
var ErrInboxQuota = errors.New("the stored messages of this stranger are at their quota")

// Defaults of the stored-message quota of strangers (Config.Known).
const (
	DefaultStrangerInboxBytes   = 4 << 20
	DefaultStrangerInboxPerPeer = 256 << 10
)

const (
	// recordOverhead is what a stored message costs besides its text and
	// nick: key, id, timestamps, encoding.
	recordOverhead = 64
	// quotaRecount is how often, at most, a full quota is counted again
	// from the store, to see what pruning freed and which senders became
	// contacts.
	quotaRecount = time.Minute
)

// inboxQuota tallies the bytes of received messages stored from strangers
// (peers Config.Known does not know): in total, per sender, per subnet
// and of newcomers (Config.Newcomer). It is counted from the store at
// first use and again at most every quotaRecount while full, or every
// PruneInterval; in between, stored messages are added. The store does
// not keep the subnet a message came from: subnets are remembered per
// sender in memory (a restart forgets them, and the subnets start empty).
type inboxQuota struct {
	mu        sync.Mutex
	counted   time.Time          // last count from the store; zero: never
	total     int64              // guarded by mu
	per       map[peer.ID]int64  // guarded by mu
	subnetOf  map[peer.ID]string // the last subnet of each sender in per; guarded by mu
	bySubnet  map[string]int64   // guarded by mu
	newcomers int64              // guarded by mu
}

// cost is what storing m counts against the quota.
func cost(m *pb.Message) int64 {
	return int64(len(m.Text) + len(m.Nick) + recordOverhead)
}

// known reports whether p is a contact (Config.Known).
func (s *Service) known(p peer.ID) bool { return s.cfg.Known != nil && s.cfg.Known(p) }

// newcomer reports whether p's identity was first seen less than an hour
// ago (Config.Newcomer).
func (s *Service) newcomer(p peer.ID) bool { return s.cfg.Newcomer != nil && s.cfg.Newcomer(p) }

// reserveInbox takes the cost of storing m from p, which came from subnet
// ("": not known, e.g. through a mailbox), out of the strangers' quota
// and returns a release for when it was not stored after all; ok is false
// when the quota has no room for it. Contacts are not counted.
func (s *Service) reserveInbox(p peer.ID, subnet string, m *pb.Message, now time.Time) (release func(), ok bool) {
	if s.known(p) {
		return func() {}, true
	}
	nc := s.newcomer(p)
	q := &s.quota
	c := cost(m)
	q.mu.Lock()
	defer q.mu.Unlock()
	full := func() bool {
		return q.total+c > int64(s.cfg.StrangerInboxBytes) || q.per[p]+c > int64(s.cfg.StrangerInboxPerPeer) ||
			(subnet != "" && q.bySubnet[subnet]+c > int64(s.cfg.StrangerInboxPerSubnet)) ||
			(nc && q.newcomers+c > int64(s.cfg.StrangerInboxNewcomers))
	}
	if q.per == nil || now.Sub(q.counted) > s.cfg.PruneInterval || (full() && now.Sub(q.counted) > quotaRecount) {
		if err := s.countInbox(now); err != nil {
			s.log.Warn("dm: count stored messages of strangers", "err", err)
		}
	}
	if full() {
		return nil, false
	}
	q.add(p, subnet, nc, c)
	return func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		q.add(p, subnet, nc, -c)
	}, true
}

// add counts c bytes (negative: uncounts) of p, from subnet, a newcomer
// or not. q.mu must be held.
func (q *inboxQuota) add(p peer.ID, subnet string, newcomer bool, c int64) {
	if q.per == nil { // never counted: the count failed
		q.per, q.subnetOf, q.bySubnet = make(map[peer.ID]int64), make(map[peer.ID]string), make(map[string]int64)
	}
	q.total += c
	if q.per[p] += c; q.per[p] <= 0 {
		delete(q.per, p)
		delete(q.subnetOf, p)
	}
	if subnet != "" {
		if c > 0 {
			q.subnetOf[p] = subnet
		}
		if q.bySubnet[subnet] += c; q.bySubnet[subnet] <= 0 {
			delete(q.bySubnet, subnet)
		}
	}
	if newcomer {
		q.newcomers += c
	}
}

// countInbox counts the stored messages of strangers from the store.
// s.quota.mu must be held.
func (s *Service) countInbox(now time.Time) error {
	per := make(map[peer.ID]int64)
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketInbox)).ForEach(func(_, v []byte) error {
			var r pb.InboxRecord
			if decodeRecord(v, &r) != nil {
				return nil
			}
			per[peer.ID(r.From)] += int64(len(r.Text) + len(r.Nick) + recordOverhead)
			return nil
		})
	})
	if err != nil {
		return err
	}
	// Known is asked outside the transaction: it may read the store.
	q := &s.quota
	var total, newcomers int64
	subnetOf := make(map[peer.ID]string)
	bySubnet := make(map[string]int64)
	for p, n := range per {
		if s.known(p) {
			delete(per, p)
			continue
		}
		total += n
		if s.newcomer(p) {
			newcomers += n
		}
		if sn, ok := q.subnetOf[p]; ok {
			subnetOf[p] = sn
			bySubnet[sn] += n
		}
	}
	q.per, q.total, q.counted = per, total, now
	q.subnetOf, q.bySubnet, q.newcomers = subnetOf, bySubnet, newcomers
	return nil
}

// overQuota reports whether p, a stranger, has no room left for a
// message of the largest size.
func (s *Service) overQuota(p peer.ID) bool {
	q := &s.quota
	q.mu.Lock()
	defer q.mu.Unlock()
	c := int64(MaxTextBytes + recordOverhead)
	return q.per != nil && (q.total+c > int64(s.cfg.StrangerInboxBytes) || q.per[p]+c > int64(s.cfg.StrangerInboxPerPeer))
}

// stored reports whether the message (p, id) is in the inbox already.
func (s *Service) stored(p peer.ID, id []byte) bool {
	found := false
	_ = s.db.View(func(tx *bolt.Tx) error {
		found = tx.Bucket([]byte(bucketInbox)).Get(recordKey(p, id)) != nil
		return nil
	})
	return found
}

// Wrote reports whether this node has written to p: a message to p is
// queued, delivered or failed in the store (kept for MaxMessageAge). It is
// one read transaction, for a policy to ask (node's known peers): a peer
// that only wrote to this node is not counted, or anyone could make
// itself a contact by sending a message.
func (s *Service) Wrote(p peer.ID) bool {
	if len(p) > maxPeerIDLen {
		return false
	}
	prefix := peerPrefix(p)
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, b := range []string{bucketSent, bucketOutbox} {
			if k, _ := tx.Bucket([]byte(b)).Cursor().Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) {
				found = true
				return nil
			}
		}
		return nil
	})
	return err == nil && found
}
