package rooms

import (
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// Load shedding (docs/SECURITY.md, "Budgets: room messages"). Every
// message GossipSub accepts is stored and shown: readLoop hands it at
// once to storeLoop, which writes up to storeBatch of them in one store
// transaction. What the node cannot take is dropped before validation,
// strangers' messages first: the authors this node knows (Config.Known)
// and the node itself are never shed here. A stranger's message is shed
//   - while the room's delivery is behind (shedBacklog messages waiting
//     for the store), and
//   - past the strangers' budget of all rooms together (strangerRate a
//     second, strangerBurst at once), which keeps a crowd of fresh
//     identities, each within its own rate limit, from filling
//     GossipSub's validation queue (where a drop hits known and unknown
//     alike) with signatures to check.
//
// The author of a message is its claimed From, read before GossipSub
// checks the signature: a sender that claims a known author to pass gets
// the message checked, and a forged one rejected (a score penalty for
// the sender). A shed message is not attributable to the peer that
// relayed it (the load is this node's own), so it is dropped without
// penalty; a peer that floods the topic with its own messages beyond its
// rate limit is penalised (reasonFlood, validator.go).
const (
	// inboxSize bounds a room's accepted messages waiting for the store.
	inboxSize = 4096
	// shedBacklog is the delivery backlog from which strangers' messages
	// are shed.
	shedBacklog = inboxSize / 8
	// storeBatch bounds the messages stored in one transaction.
	storeBatch = 256
	// strangerRate and strangerBurst are the strangers' budget, in
	// messages admitted to validation, for all rooms together.
	strangerRate  = rate.Limit(500)
	strangerBurst = pubsubValidateQueue / 2
	// shedLogEvery bounds the warnings about shedding.
	shedLogEvery = 10 * time.Second
)

// Shed reasons, counted (Service.Shed) and logged.
const (
	shedBehind = "behind"          // the room's delivery is behind
	shedBudget = "stranger-budget" // the strangers' budget is spent
)

// ShedCounts counts the room messages shed before validation, by reason.
type ShedCounts struct {
	// Behind counts strangers' messages shed while a room's delivery was
	// behind.
	Behind uint64
	// Budget counts strangers' messages past the strangers' budget.
	Budget uint64
}

// shedder holds the shedding state of a service.
type shedder struct {
	known     func(peer.ID) bool
	strangers *rate.Limiter // safe for concurrent use
	behind    atomic.Uint64
	budget    atomic.Uint64

	mu      sync.Mutex
	lastLog time.Time  // guarded by mu
	logged  ShedCounts // counts at lastLog; guarded by mu
}

func newShedder(known func(peer.ID) bool) *shedder {
	if known == nil {
		known = func(peer.ID) bool { return false }
	}
	return &shedder{known: known, strangers: rate.NewLimiter(strangerRate, strangerBurst)}
}

// Shed returns the room messages shed before validation so far.
func (s *Service) Shed() ShedCounts {
	return ShedCounts{Behind: s.shed.behind.Load(), Budget: s.shed.budget.Load()}
}

// inspectRPC is GossipSub's RPC inspector: it runs on every incoming RPC
// before its messages enter the validation queue, and drops from it the
// strangers' room messages the node sheds (shedFront). It never refuses
// the whole RPC: control messages and known authors' messages go on.
func (s *Service) inspectRPC(from peer.ID, rpc *pubsub.RPC) error {
	if len(rpc.Publish) == 0 {
		return nil
	}
	kept := rpc.Publish[:0]
	shed := 0
	var last *room
	for _, m := range rpc.Publish {
		r := last
		if r == nil || r.topicName != m.GetTopic() {
			r = s.roomOfTopic(m.GetTopic())
		}
		if r != nil {
			last = r
			if reason := s.shedFront(r, peer.ID(m.GetFrom()), time.Now()); reason != "" {
				shed++
				continue
			}
		}
		kept = append(kept, m)
	}
	clear(rpc.Publish[len(kept):])
	rpc.Publish = kept
	if shed > 0 {
		s.logShed(from)
	}
	return nil
}

// shedFront decides whether a message of author in r is shed before
// validation, and why ("" to keep it). It takes no allocation.
func (s *Service) shedFront(r *room, author peer.ID, now time.Time) string {
	if author == s.self || s.shed.known(author) {
		return ""
	}
	if len(r.inbox) >= shedBacklog {
		s.shed.behind.Add(1)
		return shedBehind
	}
	if !s.shed.strangers.AllowN(now, 1) {
		s.shed.budget.Add(1)
		return shedBudget
	}
	return ""
}

// shedBehindNow is the validator's second look, after the signature
// check: a stranger's message is ignored while r's delivery is behind.
func (s *Service) shedBehindNow(r *room, author peer.ID) bool {
	if author == s.self || len(r.inbox) < shedBacklog || s.shed.known(author) {
		return false
	}
	s.shed.behind.Add(1)
	return true
}

// logShed warns about shedding at most every shedLogEvery, with the
// counts since the last warning.
func (s *Service) logShed(from peer.ID) {
	now := time.Now()
	s.shed.mu.Lock()
	if now.Sub(s.shed.lastLog) < shedLogEvery {
		s.shed.mu.Unlock()
		return
	}
	c := s.Shed()
	prev := s.shed.logged
	s.shed.lastLog, s.shed.logged = now, c
	s.shed.mu.Unlock()
	s.log.Warn("shedding strangers' room messages before validation",
		shedBehind, c.Behind-prev.Behind, shedBudget, c.Budget-prev.Budget, "via", from)
}

// roomOfTopic returns the joined room of topic, or nil.
func (s *Service) roomOfTopic(topic string) *room {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, r := range s.rooms {
		if r.topicName == topic {
			return r
		}
	}
	return nil
}
