package rooms

import (
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/internal/fair"
)

// Load shedding (docs/SECURITY.md, "Budgets: room messages"). Every
// message GossipSub accepts is stored and shown: readLoop hands it at
// once to storeLoop, which writes up to storeBatch of them in one store
// transaction. What the node cannot take is dropped before validation,
// strangers' messages first: the authors this node knows (Config.Known)
// and the node itself are never shed here. A stranger's message is shed
//   - while the room's delivery is behind (shedBacklog messages waiting
//     for the store), and
//   - while strangerQueue of the strangers' messages wait in GossipSub's
//     validation queue (strangerQueuePerVia of them relayed from one
//     subnet), so that a known author's message never waits behind more
//     than strangerQueue strangers' messages for its turn;
//   - past the newcomers' budget (authors first seen less than an hour
//     ago, Config.Newcomer: newcomerRate a second, newcomerBurst at once,
//     all together), so a crowd of fresh identities leaves most of the
//     strangers' budget to authors seen before;
//   - past the strangers' budget of all rooms together (strangerRate a
//     second, strangerBurst at once), which keeps a crowd of
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
//
// The strangers' budget adapts to what this machine validates: when
// GossipSub's validation queue overflowed (a drop that may hit a known
// author's message), every stranger's message is shed for shedCool and
// the budget is halved (at least strangerFloor); it grows back by a
// quarter each shedCool without overflow (AIMD).
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
	// strangerFloor is the least the strangers' budget falls to.
	strangerFloor = rate.Limit(20)
	// newcomerRate and newcomerBurst are the newcomers' part of it.
	newcomerRate  = strangerRate / 4
	newcomerBurst = strangerBurst / 4
	// strangerQueue bounds the strangers' messages waiting in GossipSub's
	// validation queue (of pubsubValidateQueue), and strangerQueuePerVia
	// those relayed by the peers of one subnet (fair.Subnet; on loopback
	// every peer is of one subnet). queuedTTL forgets a message GossipSub
	// dropped without telling the tracer.
	strangerQueue       = 32
	strangerQueuePerVia = strangerQueue / 2
	queuedTTL           = 5 * time.Second
	// shedCool is how long strangers are shed after the validation queue
	// overflowed, and how often their budget grows back.
	shedCool = time.Second
	// knownTTL is how long an author's known-ness is cached, and
	// knownCache how many authors at most (past it the cache restarts):
	// Config.Known may read the store (dm.Wrote), and the inspector runs
	// on GossipSub's event loop for every message.
	knownTTL   = 2 * time.Second
	knownCache = 4096
	// shedLogEvery bounds the warnings about shedding.
	shedLogEvery = 10 * time.Second
)

// Shed reasons, counted (Service.Shed) and logged.
const (
	shedBehind = "behind"          // the room's delivery is behind
	shedBudget = "stranger-budget" // the strangers' budget is spent
	shedFull   = "validation-full" // the validation queue overflowed just now
	shedQueue  = "stranger-queue"  // strangerQueue strangers' messages wait for validation
	shedNew    = "newcomer-budget" // the newcomers' budget is spent
	shedAuthor = "author-rate"     // the author is far past its own rate
)

// floodMark is how long an author that flooded this node directly (past
// its front bucket, frontRateFactor times its room rate) stays marked, so
// that the validator rejects (not just ignores) its over-rate messages and
// GossipSub's score falls, although the front bucket sheds most of them
// before the validator sees them.
const (
	frontRateFactor = 2
	floodMark       = time.Minute
	// A message's copies (GossipSub brings one from each mesh peer, and
	// the inspector sees them before GossipSub's duplicate check) pay the
	// budgets once: the verdict on a message ID (admitted, or shed for its
	// author's rate) is remembered for chargedTTL, at most chargedMax of
	// them, and its copies get the same verdict without taking tokens.
	chargedTTL = 2 * time.Minute
	chargedMax = 1 << 15
)

// ShedCounts counts the room messages shed before validation, by reason.
type ShedCounts struct {
	// Behind counts strangers' messages shed while a room's delivery was
	// behind.
	Behind uint64
	// Budget counts strangers' messages past the strangers' budget.
	Budget uint64
	// Full counts strangers' messages shed for shedCool after the
	// validation queue overflowed.
	Full uint64
	// Queue counts strangers' messages shed while strangerQueue (or, from
	// one subnet, strangerQueuePerVia) of them waited for validation.
	Queue uint64
	// Newcomers counts newcomers' messages past the newcomers' budget.
	Newcomers uint64
	// Author counts strangers' messages shed because their author was
	// far past its own rate (twice the room's per-author bucket): one
	// flooding identity cannot take the shared budgets and the queue
	// from the other strangers.
	Author uint64
	// Overflows counts GossipSub's validation queue overflows (messages
	// it dropped unvalidated, whoever their author).
	Overflows uint64
}

// shedder holds the shedding state of a service.
type shedder struct {
	known    func(peer.ID) bool
	newcomer func(peer.ID) bool
	// authors are the front buckets, per room and author, at
	// frontRateFactor times the room's rate limit and burst.
	authors   *limiters
	strangers *rate.Limiter // safe for concurrent use
	newcomers *rate.Limiter // safe for concurrent use
	behind    atomic.Uint64
	budget    atomic.Uint64
	full      atomic.Uint64
	queue     atomic.Uint64
	fresh     atomic.Uint64
	author    atomic.Uint64
	overflows atomic.Uint64
	hotUntil  atomic.Int64 // unix nanoseconds: strangers are shed until then
	lastCut   atomic.Int64 // unix nanoseconds of the last change of the budget

	mu      sync.Mutex
	lastLog time.Time  // guarded by mu
	logged  ShedCounts // counts at lastLog; guarded by mu

	cacheMu sync.Mutex
	cache   map[peer.ID]knownEntry // guarded by cacheMu

	// queued are the strangers' messages admitted to the validation
	// queue and not out of it yet (by GossipSub message ID: From and
	// Seqno), with the subnet that relayed them; perVia counts them by
	// that subnet. Guarded by qMu.
	qMu    sync.Mutex
	queued map[string]queuedMsg
	perVia map[string]int

	// flooders are the authors that flooded this node directly, with when
	// they were last seen doing it (floodMark). Guarded by fMu.
	fMu      sync.Mutex
	flooders map[peer.ID]time.Time
	charged  map[string]verdictAt // message IDs charged, with their verdict
}

type queuedMsg struct {
	via string
	at  time.Time
}

type knownEntry struct {
	known bool
	at    time.Time
}

// isKnown is known(p), cached for knownTTL.
func (sh *shedder) isKnown(p peer.ID, now time.Time) bool {
	sh.cacheMu.Lock()
	e, ok := sh.cache[p]
	sh.cacheMu.Unlock()
	if ok && now.Sub(e.at) < knownTTL {
		return e.known
	}
	k := sh.known(p)
	sh.cacheMu.Lock()
	if len(sh.cache) >= knownCache {
		clear(sh.cache)
	}
	sh.cache[p] = knownEntry{known: k, at: now}
	sh.cacheMu.Unlock()
	return k
}

func newShedder(known, newcomer func(peer.ID) bool, authors *limiters) *shedder {
	if known == nil {
		known = func(peer.ID) bool { return false }
	}
	if newcomer == nil {
		newcomer = func(peer.ID) bool { return false }
	}
	return &shedder{known: known, newcomer: newcomer, authors: authors, flooders: make(map[peer.ID]time.Time), charged: make(map[string]verdictAt),
		strangers: rate.NewLimiter(strangerRate, strangerBurst), newcomers: rate.NewLimiter(newcomerRate, newcomerBurst),
		cache: make(map[peer.ID]knownEntry), queued: make(map[string]queuedMsg), perVia: make(map[string]int)}
}

// Shed returns the room messages shed before validation so far.
func (s *Service) Shed() ShedCounts {
	return ShedCounts{Behind: s.shed.behind.Load(), Budget: s.shed.budget.Load(),
		Full: s.shed.full.Load(), Queue: s.shed.queue.Load(), Newcomers: s.shed.fresh.Load(), Author: s.shed.author.Load(),
		Overflows: s.shed.overflows.Load()}
}

// queueRoom reports whether one more stranger's message relayed from the
// subnet via fits in the strangers' part of the validation queue, after
// forgetting the entries older than queuedTTL when it looks full.
func (sh *shedder) queueRoom(via string, now time.Time) bool {
	sh.qMu.Lock()
	defer sh.qMu.Unlock()
	fits := func() bool { return len(sh.queued) < strangerQueue && sh.perVia[via] < strangerQueuePerVia }
	if fits() {
		return true
	}
	for k, q := range sh.queued {
		if now.Sub(q.at) > queuedTTL {
			sh.dropQueued(k, q)
		}
	}
	return fits()
}

// enqueued notes a stranger's message (GossipSub ID id) admitted to the
// validation queue, relayed from the subnet via.
func (sh *shedder) enqueued(id, via string, now time.Time) {
	sh.qMu.Lock()
	defer sh.qMu.Unlock()
	if _, dup := sh.queued[id]; dup {
		return
	}
	sh.queued[id] = queuedMsg{via: via, at: now}
	sh.perVia[via]++
}

// dequeued notes that the message with GossipSub ID id left the
// validation queue (validated, a duplicate, or dropped).
func (sh *shedder) dequeued(id string) {
	sh.qMu.Lock()
	defer sh.qMu.Unlock()
	if q, ok := sh.queued[id]; ok {
		sh.dropQueued(id, q)
	}
}

// dropQueued forgets a queued entry. sh.qMu must be held.
func (sh *shedder) dropQueued(id string, q queuedMsg) {
	delete(sh.queued, id)
	if sh.perVia[q.via]--; sh.perVia[q.via] <= 0 {
		delete(sh.perVia, q.via)
	}
}

// msgID is GossipSub's default message ID (From and Seqno), which the
// service does not replace.
func msgID(from string, seqno []byte) string { return from + string(seqno) }

// overflowed notes that GossipSub's validation queue dropped a message:
// strangers are shed for shedCool and their budget is halved.
func (sh *shedder) overflowed(now time.Time) {
	sh.overflows.Add(1)
	sh.hotUntil.Store(now.Add(shedCool).UnixNano())
	sh.lastCut.Store(now.UnixNano())
	sh.strangers.SetLimitAt(now, max(sh.strangers.Limit()/2, strangerFloor))
}

// regrow raises the strangers' budget by a quarter when it was cut more
// than shedCool ago.
func (sh *shedder) regrow(now time.Time) {
	last := sh.lastCut.Load()
	lim := sh.strangers.Limit()
	if lim >= strangerRate || now.UnixNano()-last < int64(shedCool) || !sh.lastCut.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	sh.strangers.SetLimitAt(now, min(lim*5/4, strangerRate))
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
	via, viaKnown := "", false
	for _, m := range rpc.Publish {
		r := last
		if r == nil || r.topicName != m.GetTopic() {
			r = s.roomOfTopic(m.GetTopic())
		}
		if r != nil {
			last = r
			if !viaKnown {
				via, viaKnown = s.viaSubnet(from), true
			}
			if reason := s.shedFront(r, m, from, via, time.Now()); reason != "" {
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

// viaSubnet is the subnet of the connection to the peer that relayed an
// RPC (fair.Subnet), or its peer ID when it has none.
func (s *Service) viaSubnet(from peer.ID) string {
	for _, c := range s.cfg.Host.Network().ConnsToPeer(from) {
		if sn := fair.ConnSubnet(c); sn != "" {
			return sn
		}
	}
	return "peer:" + string(from)
}

// shedFront decides whether the message m in r, relayed by the peer from
// over the subnet via, is shed before validation, and why ("" to keep it).
func (s *Service) shedFront(r *room, m *pubsubpb.Message, from peer.ID, via string, now time.Time) string {
	author := peer.ID(m.GetFrom())
	if author == s.self || s.shed.isKnown(author, now) {
		return ""
	}
	sh := s.shed
	id := msgID(string(m.GetFrom()), m.GetSeqno())
	if reason, seen := sh.verdict(id, now); seen {
		if reason == shedAuthor {
			sh.author.Add(1)
		}
		return reason
	}
	if sh.authors != nil {
		if ok, flooding := sh.authors.take(r.topicName, author, false, now); !ok {
			if flooding && from == author {
				sh.markFlooder(author, now)
			}
			sh.author.Add(1)
			sh.remember(id, shedAuthor, now)
			return shedAuthor
		}
	}
	if now.UnixNano() < sh.hotUntil.Load() {
		sh.full.Add(1)
		r.shedOne(now)
		return shedFull
	}
	if len(r.inbox) >= shedBacklog {
		sh.behind.Add(1)
		r.shedOne(now)
		return shedBehind
	}
	if !sh.queueRoom(via, now) {
		sh.queue.Add(1)
		r.shedOne(now)
		return shedQueue
	}
	sh.regrow(now)
	if sh.newcomer(author) && !sh.newcomers.AllowN(now, 1) {
		sh.fresh.Add(1)
		r.shedOne(now)
		return shedNew
	}
	if !sh.strangers.AllowN(now, 1) {
		sh.budget.Add(1)
		r.shedOne(now)
		return shedBudget
	}
	sh.enqueued(id, via, now)
	sh.remember(id, "", now)
	return ""
}

// verdictAt is the verdict on a message ID and when it was given.
type verdictAt struct {
	reason string
	at     time.Time
}

// verdict returns the verdict remembered for the message id within
// chargedTTL.
func (sh *shedder) verdict(id string, now time.Time) (string, bool) {
	sh.fMu.Lock()
	defer sh.fMu.Unlock()
	v, ok := sh.charged[id]
	if !ok || now.Sub(v.at) > chargedTTL {
		return "", false
	}
	return v.reason, true
}

// remember keeps the verdict on the message id for its copies: "" (it
// was admitted and paid its tokens) or shedAuthor.
func (sh *shedder) remember(id, reason string, now time.Time) {
	sh.fMu.Lock()
	defer sh.fMu.Unlock()
	if len(sh.charged) >= chargedMax {
		for k, v := range sh.charged {
			if now.Sub(v.at) > chargedTTL {
				delete(sh.charged, k)
			}
		}
		if len(sh.charged) >= chargedMax {
			clear(sh.charged)
		}
	}
	sh.charged[id] = verdictAt{reason: reason, at: now}
}

// markFlooder notes that author flooded this node directly.
func (sh *shedder) markFlooder(author peer.ID, now time.Time) {
	sh.fMu.Lock()
	defer sh.fMu.Unlock()
	if len(sh.flooders) >= knownCache {
		for p, at := range sh.flooders {
			if now.Sub(at) > floodMark {
				delete(sh.flooders, p)
			}
		}
		if len(sh.flooders) >= knownCache {
			clear(sh.flooders)
		}
	}
	sh.flooders[author] = now
}

// flooded reports whether author flooded this node directly within
// floodMark.
func (sh *shedder) flooded(author peer.ID, now time.Time) bool {
	sh.fMu.Lock()
	defer sh.fMu.Unlock()
	at, ok := sh.flooders[author]
	return ok && now.Sub(at) <= floodMark
}

// shedBehindNow is the validator's second look, after the signature
// check: a stranger's message is ignored while r's delivery is behind.
func (s *Service) shedBehindNow(r *room, author peer.ID) bool {
	if author == s.self || len(r.inbox) < shedBacklog || s.shed.isKnown(author, time.Now()) {
		return false
	}
	s.shed.behind.Add(1)
	r.shedOne(time.Now())
	return true
}

// shedOne records that a stranger's message of r was shed for this
// node's load (not for its author's rate): once the shedding is over,
// syncLoop syncs r's history again to take in what was shed (recoverShed).
func (r *room) shedOne(now time.Time) {
	if r.shedAt.Swap(now.UnixNano()) == 0 {
		select {
		case r.shedWake <- struct{}{}:
		default:
		}
	}
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
		shedBehind, c.Behind-prev.Behind, shedBudget, c.Budget-prev.Budget, shedFull, c.Full-prev.Full,
		shedQueue, c.Queue-prev.Queue, shedNew, c.Newcomers-prev.Newcomers, shedAuthor, c.Author-prev.Author,
		"queue_overflows", c.Overflows-prev.Overflows, "budget_per_s", float64(s.shed.strangers.Limit()), "via", from)
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

// overflowWatch is a GossipSub tracer that tells the shedder about
// validation queue overflows and about the messages that left the queue
// (ValidateMessage, DuplicateMessage, RejectMessage: every message that
// entered the queue ends in one of them, or in a drop queuedTTL cleans
// up); it ignores everything else.
type overflowWatch struct{ sh *shedder }

func (w overflowWatch) RejectMessage(m *pubsub.Message, reason string) {
	if reason == pubsub.RejectValidationQueueFull {
		w.sh.overflowed(time.Now())
	}
	w.sh.dequeued(msgID(string(m.GetFrom()), m.GetSeqno()))
}

func (w overflowWatch) ValidateMessage(m *pubsub.Message) {
	w.sh.dequeued(msgID(string(m.GetFrom()), m.GetSeqno()))
}

func (w overflowWatch) DuplicateMessage(m *pubsub.Message) {
	w.sh.dequeued(msgID(string(m.GetFrom()), m.GetSeqno()))
}

func (overflowWatch) AddPeer(peer.ID, protocol.ID)                         {}
func (overflowWatch) RemovePeer(peer.ID)                                   {}
func (overflowWatch) Join(string)                                          {}
func (overflowWatch) Leave(string)                                         {}
func (overflowWatch) Graft(peer.ID, string)                                {}
func (overflowWatch) Prune(peer.ID, string)                                {}
func (overflowWatch) DeliverMessage(*pubsub.Message)                       {}
func (overflowWatch) ThrottlePeer(peer.ID)                                 {}
func (overflowWatch) RecvRPC(*pubsub.RPC)                                  {}
func (overflowWatch) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (overflowWatch) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (overflowWatch) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (overflowWatch) UndeliverableMessage(*pubsub.Message)                 {}
func (overflowWatch) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (overflowWatch) OnClosedOutboundStream(peer.ID)                       {}
