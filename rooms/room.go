package rooms

import (
	"bytes"
	"cmp"
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
)

// subBufferSize is the subscription buffer of a room: messages accepted
// while the delivery goroutine is busy wait here (pubsub drops messages for
// a full subscription).
const subBufferSize = 1024

// memberRetention is how long a member that went offline stays listed.
const memberRetention = time.Hour

// maxMembers bounds the member list of a room. Past it, messages from
// members not yet listed are still delivered but the members are not
// tracked (no presence events, not in /who).
const maxMembers = 10000

// room is one joined room: its topic, subscription and goroutines, and the
// members heard from.
type room struct {
	name      string
	private   bool
	key       []byte   // private rooms: the room key
	keys      roomKeys // private rooms: derived topic and seal key
	topicName string
	// rendezvous is the DHT rendezvous namespace: the topic for public
	// rooms, a separate key derivation for private ones.
	rendezvous string
	joinedAt   time.Time

	topic *pubsub.Topic
	sub   *pubsub.Subscription
	evh   *pubsub.TopicEventHandler

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	syncKey []byte // private rooms: the key of the sync's proofs
	// membership is a private room's membership log and epoch keys
	// (members.go); nil for public rooms.
	membership *roomMembers

	dirty  chan struct{} // capacity 1: this node's presence changed, spread it
	news   chan struct{} // capacity 1: another member's newer presence came in, pass it on
	caught chan struct{} // capacity 1: the sync stored messages (caughtTotal grew)
	// caughtTotal counts the messages the sync stored, either way.
	caughtTotal atomic.Int64
	newPeers    chan peer.ID // topic peers to sync with; a full queue drops
	// shedAt is when this node last shed a stranger's message of the
	// room (unix nanoseconds; 0: none since the last recovery), and
	// shedWake (capacity 1) tells syncLoop of the first one.
	shedAt   atomic.Int64
	shedWake chan struct{}
	// inbox holds accepted messages from readLoop to storeLoop
	// (capacity inboxSize); its length is the room's delivery backlog.
	inbox chan *incoming

	mu      sync.Mutex
	members map[peer.ID]*member // guarded by mu
	own     beacon              // guarded by mu; this node's latest signed presence
	ownNick string              // guarded by mu; the nick in own
	// ownRecord is this node's signed peer record of the addresses in
	// ownRecordFor (ownPeerRecord); guarded by mu.
	ownRecord    []byte
	ownRecordFor string
	peerSignal   chan struct{}   // guarded by mu; closed when a peer joins the topic
	syncState    events.RoomSync // guarded by mu; the history sync's state last reported
	// superseded holds the sync items of members' signed presences this
	// node held and replaced with a newer one, by item ID, with their sent
	// time (guarded by mu): a session need not fetch them again from a
	// peer that still has one (wantMembers). Only verified presences go
	// in; at most maxSuperseded, pruned by sweep.
	superseded map[[itemIDSize]byte]uint64
	// nickKeys counts the members by nickKey (guarded by mu), so that
	// nickShared, asked for every delivery, need not scan the members.
	nickKeys map[string]int
	// nickPinned is Config.NickPinned (nil: none); set at creation.
	nickPinned func(author peer.ID, nick string) bool
	// checking holds the member-set items that a session is checking
	// and taking in now (guarded by mu; claimCheck).
	checking map[[itemIDSize]byte]struct{}
}

// beacon is a member's signed presence (a signed message, see signed.go)
// and its sync item.
type beacon struct {
	it  item
	raw []byte
}

// member is what a room knows about another member.
type member struct {
	nick     string
	nickKey  string // identity.NickKey(nick), kept so nickShared need not recompute it per member
	lastSeen time.Time
	online   bool
	beacon   beacon // the latest signed presence, if any
	// record is the signed peer record last verified and learned from
	// the member's presence, at recordAt (recordKnown).
	record   []byte
	recordAt time.Time
}

// Member describes a member of a room for /who.
type Member struct {
	PeerID      peer.ID
	Nick        string
	Fingerprint string // identity.ShortFingerprint(PeerID)
	LastSeen    time.Time
	Online      bool
	Self        bool
}

// RoomInfo describes a joined room for /rooms.
type RoomInfo struct {
	Name    string
	Private bool
	// Members is the number of members online, this node included.
	Members int
	// Rendezvous is the namespace under which members find each other in
	// the DHT (overlay.Host.Join). For private rooms it is derived from
	// the key, apart from the topic, so outsiders cannot look members up.
	Rendezvous string
}

func newRoom(name string) *room {
	return &room{
		name:       name,
		joinedAt:   time.Now(),
		dirty:      make(chan struct{}, 1),
		caught:     make(chan struct{}, 1),
		shedWake:   make(chan struct{}, 1),
		news:       make(chan struct{}, 1),
		newPeers:   make(chan peer.ID, newPeersQueue),
		inbox:      make(chan *incoming, inboxSize),
		members:    make(map[peer.ID]*member),
		peerSignal: make(chan struct{}),
	}
}

// caughtUp counts n messages stored by the sync and wakes the sync loop
// to report them.
func (r *room) caughtUp(n int) {
	r.caughtTotal.Add(int64(n))
	select {
	case r.caught <- struct{}{}:
	default:
	}
}

// setSyncState records the sync state reported.
func (r *room) setSyncState(ev events.RoomSync) {
	r.mu.Lock()
	r.syncState = ev
	r.mu.Unlock()
}

func (r *room) syncStateNow() events.RoomSync {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.syncState
}

// signalPeers wakes publishers waiting for a peer on the topic.
func (r *room) signalPeers() {
	r.mu.Lock()
	close(r.peerSignal)
	r.peerSignal = make(chan struct{})
	r.mu.Unlock()
}

func (r *room) peerWait() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peerSignal
}

// observe records a message from author (not this node) and returns the
// presence event to emit, if any, and whether the author is newly online.
func (r *room) observe(author peer.ID, nick string, leaving bool, now time.Time) (ev *events.Presence, newcomer bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, known := r.member(author)
	if m == nil {
		return nil, false
	}
	return r.updateLocked(author, m, known, nick, leaving, now)
}

// member returns author's entry, creating it (known false) unless the
// room is full (nil). r.mu is held.
func (r *room) member(author peer.ID) (m *member, known bool) {
	m, known = r.members[author]
	if !known {
		if len(r.members) >= maxMembers {
			return nil, false
		}
		m = &member{}
		r.members[author] = m
		r.countNickKey("", 1)
	}
	return m, known
}

// updateLocked records that author, as nick, was seen at seen (online
// unless leaving). r.mu is held.
func (r *room) updateLocked(author peer.ID, m *member, known bool, nick string, leaving bool, seen time.Time) (ev *events.Presence, newcomer bool) {
	wasOnline, oldNick := m.online, m.nick
	if !known || nick != oldNick {
		r.setNickKey(m, identity.NickKey(nick))
	}
	m.nick, m.online = nick, !leaving
	if seen.After(m.lastSeen) {
		m.lastSeen = seen
	}
	switch {
	case leaving && wasOnline:
		return r.presence(author, m), false
	case leaving:
		return nil, false
	case !wasOnline:
		return r.presence(author, m), true
	case oldNick != nick:
		return r.presence(author, m), false
	}
	return nil, false
}

// offerBeacon records author's signed presence b (its envelope env) if it
// is newer than the one known. A presence older than timeout is kept to
// pass on but does not show the author online. It returns the presence
// event to emit, if any, and whether b was newer.
func (r *room) offerBeacon(author peer.ID, env *envelope, b beacon, now time.Time, timeout time.Duration) (*events.Presence, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, known := r.member(author)
	if m == nil {
		return nil, false
	}
	if m.beacon.raw != nil && compareItems(b.it, m.beacon.it) <= 0 {
		return nil, false
	}
	if m.beacon.raw != nil {
		r.supersede(m.beacon.it)
	}
	m.beacon = b
	seen := env.sentAt
	if seen.After(now) {
		seen = now
	}
	if !env.leaving && now.Sub(seen) > timeout {
		if !known {
			m.nick, m.lastSeen = env.nick, seen
			r.setNickKey(m, identity.NickKey(env.nick))
		}
		return nil, true
	}
	ev, _ := r.updateLocked(author, m, known, env.nick, env.leaving, seen)
	return ev, true
}

// maxSuperseded bounds room.superseded: a few presences per member and
// PresenceTimeout in a room of a thousand.
const maxSuperseded = 4096

// supersede remembers it, a member's signed presence replaced by a newer
// one. r.mu is held.
func (r *room) supersede(it item) {
	if r.superseded == nil {
		r.superseded = make(map[[itemIDSize]byte]uint64)
	}
	if len(r.superseded) < maxSuperseded {
		r.superseded[it.id] = it.ts
	}
}

// wantMembers returns the member-set items of need that this node should
// fetch, with their spans: all but the presences it held and replaced
// with newer ones (a peer that lags behind still lists them).
func (r *room) wantMembers(need [][itemIDSize]byte, spans []span) ([][itemIDSize]byte, []span) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.superseded) == 0 {
		return need, spans
	}
	var ids [][itemIDSize]byte
	var sps []span
	for i, id := range need {
		if _, old := r.superseded[id]; !old {
			ids, sps = append(ids, id), append(sps, spans[i])
		}
	}
	return ids, sps
}

// claimCheck reports whether the caller may check the presence item id,
// no other session checking it now; the caller releases it with
// releaseChecks once the item is taken in or refused.
func (r *room) claimCheck(id [itemIDSize]byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, busy := r.checking[id]; busy {
		return false
	}
	if r.checking == nil {
		r.checking = make(map[[itemIDSize]byte]struct{})
	}
	r.checking[id] = struct{}{}
	return true
}

func (r *room) releaseChecks(ids [][itemIDSize]byte) {
	if len(ids) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		delete(r.checking, id)
	}
}

// holdsBeacon reports whether r holds a signed presence of author that
// is it or newer.
func (r *room) holdsBeacon(author peer.ID, it item) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.members[author]
	return m != nil && m.beacon.raw != nil && compareItems(it, m.beacon.it) <= 0
}

// recordKnown reports whether rec is the peer record of author verified
// and learned less than PeerRecordTTL/2 ago: its addresses are in the
// peerstore for a while yet, so neither its signature nor the addresses
// need another look. Every presence carries its author's record, which
// changes only with the author's addresses.
func (r *room) recordKnown(author peer.ID, rec []byte, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.members[author]
	return m != nil && now.Sub(m.recordAt) < PeerRecordTTL/2 && bytes.Equal(m.record, rec)
}

// recordLearned notes that rec, author's peer record, was verified and
// its addresses learned at now.
func (r *room) recordLearned(author peer.ID, rec []byte, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.members[author]; m != nil {
		m.record, m.recordAt = slices.Clone(rec), now
	}
}

// setOwn records this node's latest signed presence, made with nick.
func (r *room) setOwn(b beacon, nick string) {
	r.mu.Lock()
	r.own, r.ownNick = b, nick
	r.mu.Unlock()
}

// ownIsFor reports whether this node's signed presence carries nick.
func (r *room) ownIsFor(nick string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.own.raw != nil && r.ownNick == nick
}

// beacons returns the signed presences sent at or after sinceMs: this
// node's and the members'.
func (r *room) beacons(sinceMs int64) []beacon {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]beacon, 0, len(r.members)+1)
	keep := func(b beacon) {
		if b.raw != nil && int64(b.it.ts) >= sinceMs { // #nosec G115 -- a time in ms
			out = append(out, b)
		}
	}
	keep(r.own)
	for _, m := range r.members {
		keep(m.beacon)
	}
	return out
}

// markDirty asks the sync loop to spread this node's presence soon.
func (r *room) markDirty() {
	select {
	case r.dirty <- struct{}{}:
	default:
	}
}

// markNews asks the sync loop to pass on another member's newer
// presence, at its pace.
func (r *room) markNews() {
	select {
	case r.news <- struct{}{}:
	default:
	}
}

// peerJoined queues a topic peer for the sync loop.
func (r *room) peerJoined(p peer.ID) {
	select {
	case r.newPeers <- p:
	default:
	}
}

// sweep marks members silent for longer than timeout as offline and forgets
// long-gone ones. It returns the presence events to emit.
func (r *room) sweep(now time.Time, timeout time.Duration) []events.Presence {
	r.mu.Lock()
	defer r.mu.Unlock()
	var evs []events.Presence
	for id, m := range r.members {
		gone := now.Sub(m.lastSeen)
		if m.online && gone > timeout {
			m.online = false
			evs = append(evs, *r.presence(id, m))
		}
		if !m.online && gone > max(memberRetention, timeout) {
			delete(r.members, id)
			r.countNickKey(m.nickKey, -1)
		}
	}
	// A session fetches presences sent within timeout (and the clock skew
	// allowed): older superseded ones are not listed any more.
	oldest := uint64(max(now.Add(-2*timeout).UnixMilli(), 0)) // #nosec G115 -- not negative
	for id, ts := range r.superseded {
		if ts < oldest {
			delete(r.superseded, id)
		}
	}
	return evs
}

func (r *room) presence(id peer.ID, m *member) *events.Presence {
	return &events.Presence{Room: r.name, PeerID: id, Nick: m.nick, Online: m.online}
}

// nickShared reports whether a member other than author uses nick (the
// same nick under identity.NickKey, the rule trust pins by): one online,
// or one gone less than memberRetention ago, so that a newcomer taking
// the nick of a member who just left is told apart too. selfNick is this node's nick, counted when
// author is not this node. A nick another identity holds the trust pin
// of (Config.NickPinned) counts as shared too.
func (r *room) nickShared(author, self peer.ID, nick, selfNick string) bool {
	key := identity.NickKey(nick)
	if author != self && identity.NickKey(selfNick) == key {
		return true
	}
	if author != self && r.nickPinned != nil && r.nickPinned(author, nick) {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.nickKeys[key]
	if m := r.members[author]; m != nil && m.nickKey == key {
		n-- // the author's own
	}
	return n > 0
}

// setNickKey sets m's nickKey, counted in r.nickKeys. r.mu is held.
func (r *room) setNickKey(m *member, key string) {
	r.countNickKey(m.nickKey, -1)
	m.nickKey = key
	r.countNickKey(key, 1)
}

func (r *room) countNickKey(key string, d int) {
	if r.nickKeys == nil {
		r.nickKeys = make(map[string]int)
	}
	if r.nickKeys[key] += d; r.nickKeys[key] <= 0 {
		delete(r.nickKeys, key)
	}
}

// who lists the members, this node first, then online members, then by
// nick.
func (r *room) who(self peer.ID, selfNick string) []Member {
	r.mu.Lock()
	out := make([]Member, 0, len(r.members)+1)
	for id, m := range r.members {
		if id == self {
			continue
		}
		out = append(out, Member{PeerID: id, Nick: m.nick, LastSeen: m.lastSeen, Online: m.online})
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int {
		if a.Online != b.Online {
			if a.Online {
				return -1
			}
			return 1
		}
		return cmp.Or(strings.Compare(a.Nick, b.Nick), strings.Compare(string(a.PeerID), string(b.PeerID)))
	})
	out = slices.Insert(out, 0, Member{PeerID: self, Nick: selfNick, LastSeen: time.Now(), Online: true, Self: true})
	for i := range out {
		out[i].Fingerprint = identity.ShortFingerprint(out[i].PeerID)
	}
	return out
}

// isOnline reports whether p is an online member.
func (r *room) isOnline(p peer.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.members[p]
	return ok && m.online
}

// onlineCount counts online members, this node included.
func (r *room) onlineCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 1
	for _, m := range r.members {
		if m.online {
			n++
		}
	}
	return n
}

// jitter returns d +/- 10%.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1) // #nosec G404 -- timer jitter, not a secret
}
