package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/rooms"
)

// Bounds of the room scenarios.
const (
	// meshTimeout bounds the wait for the mesh to form.
	meshTimeout = 60 * time.Second
	// settleTime lets the join announcements (presence, and the replies
	// they trigger) pass before measuring.
	settleTime = 2 * time.Second
	// drainTimeout bounds the wait for the last deliveries after the last
	// publish.
	drainTimeout = 5 * time.Second
	// publishTimeout bounds one publish (a room waits up to
	// rooms.DefaultMeshWait for a first peer).
	publishTimeout = 10 * time.Second
	// meshWant is how many mesh peers each member must have (at most its
	// neighbour count) before measuring.
	meshWant = 4
	// benchRoom is the room's name; gossipTopic the baseline's topic.
	benchRoom   = "bench"
	gossipTopic = "/parley/bench/gossip"
	// seqDigits is the width of the sequence number that starts every
	// message.
	seqDigits = 8
)

// swarmKind selects what the members run.
type swarmKind int

const (
	kindGossipSub swarmKind = iota // plain GossipSub: the baseline
	kindRooms                      // Parley rooms
)

func (k swarmKind) String() string {
	if k == kindRooms {
		return "rooms"
	}
	return "gossipsub"
}

// member is one node of a swarm. Its fields other than idx, key and dir
// belong to the current incarnation (a restart makes a new one): start and
// stop hold life, publishers read them under life's read lock.
type member struct {
	idx int
	key crypto.PrivKey
	dir string

	life   sync.RWMutex
	h      host.Host
	db     *bolt.DB             // rooms
	svc    *rooms.Service       // rooms
	sub    *pubsub.Subscription // gossipsub
	topic  *pubsub.Topic        // gossipsub
	cancel context.CancelFunc   // gossipsub: stops the router
	reader sync.WaitGroup       // gossipsub: the subscription reader
}

// memberState is what the swarm knows about a member; guarded by
// swarm.mu.
type memberState struct {
	up     bool
	gen    int              // incarnation, counted from 1
	mesh   map[peer.ID]bool // the current incarnation's mesh peers
	upAt   time.Time        // when the current incarnation started
	meshAt time.Time        // since when its mesh is not empty; zero while empty
	downs  []interval       // every time it was down
}

type interval struct{ from, to time.Time }

// msgRec is one published message; guarded by swarm.mu.
type msgRec struct {
	from  int
	pubAt time.Time
	at    []time.Time // delivery time per member; zero: not delivered
	err   error       // the publish failed
}

// swarm is n members joined to one room (or GossipSub topic), connected
// along a fixed random topology, on loopback in this process.
type swarm struct {
	kind    swarmKind
	cfg     *Config
	ctx     context.Context
	dir     string
	counter *byteCounter
	members []*member
	adj     [][]int
	dropped atomic.Int64 // RPCs GossipSub dropped (full peer queues)
	meshAt  time.Time    // when every member first had a mesh
	// mock, when set, carries the members' connections in memory
	// (Config.MocknetFrom); nil: real TCP hosts on loopback.
	mock mocknet.Mocknet

	mu      sync.Mutex
	state   []*memberState  // guarded by mu
	msgs    map[int]*msgRec // by sequence number; guarded by mu
	changed chan struct{}   // closed and replaced on mesh changes; guarded by mu
}

// topology returns the neighbour lists of n nodes: a ring, plus extra
// random links from each node (fixed seed: every run and both kinds see
// the same graph).
func topology(n, extra int) (adj [][]int, edges [][2]int) {
	adj = make([][]int, n)
	linked := func(a, b int) bool { return slices.Contains(adj[a], b) }
	add := func(a, b int) {
		if a == b || linked(a, b) {
			return
		}
		adj[a] = append(adj[a], b)
		adj[b] = append(adj[b], a)
		edges = append(edges, [2]int{a, b})
	}
	for i := range n {
		add(i, (i+1)%n)
	}
	rng := rand.New(rand.NewPCG(uint64(n), 0x5eed)) // #nosec G404 G115 -- a reproducible benchmark topology, not a secret; n >= 0
	for i := range n {
		for k := 0; k < extra && len(adj[i]) < n-1; {
			j := rng.IntN(n)
			if j != i && !linked(i, j) {
				add(i, j)
				k++
			}
		}
	}
	return adj, edges
}

// newSwarm starts n members, connects them and waits until each has a
// mesh (meshWant peers, or all its neighbours).
func newSwarm(ctx context.Context, cfg *Config, kind swarmKind, n int, dir string) (*swarm, error) {
	s := &swarm{
		kind: kind, cfg: cfg, ctx: ctx, dir: dir, counter: &byteCounter{},
		msgs: make(map[int]*msgRec), changed: make(chan struct{}),
	}
	var edges [][2]int
	s.adj, edges = topology(n, cfg.ExtraLinks)
	if n >= cfg.MocknetFrom {
		s.mock = mocknet.New()
	}
	for i := range n {
		key, err := newKey()
		if err != nil {
			return nil, err
		}
		s.members = append(s.members, &member{idx: i, key: key, dir: filepath.Join(dir, fmt.Sprintf("%s-%d", kind, i))})
		s.state = append(s.state, &memberState{})
	}
	for _, m := range s.members {
		if err := s.start(m, true); err != nil {
			s.close()
			return nil, err
		}
	}
	hs := make([]host.Host, n)
	for i, m := range s.members {
		hs[i] = m.h
	}
	if s.mock != nil {
		for _, e := range edges {
			if _, err := s.mock.LinkPeers(hs[e[0]].ID(), hs[e[1]].ID()); err != nil {
				s.close()
				return nil, fmt.Errorf("link members %d and %d: %w", e[0], e[1], err)
			}
		}
	}
	if err := connectEdges(ctx, hs, edges); err != nil {
		s.close()
		return nil, err
	}
	if err := s.waitMesh(ctx, meshTimeout); err != nil {
		s.close()
		return nil, err
	}
	s.meshAt = time.Now()
	return s, nil
}

// Settling after the members joined all at once.
const (
	quietWindow    = 500 * time.Millisecond
	quietPerMember = 2000 // bytes per member per quietWindow
	settleMax      = 30 * time.Second
)

// joinCost is what joining all at once cost the swarm: GossipSub bytes
// sent and RPCs dropped from the start until it was quiet, and how long
// after the mesh formed that was.
type joinCost struct {
	bytes, dropped int64
	all            int64 // bytes sent on every protocol (the room sync too)
	// seenAfter: rooms, when every member first saw every other one
	// online, after the mesh formed; zero if not within settleMax.
	seenAfter  time.Duration
	seenRatio  float64 // rooms: members seen online / (N-1), averaged, at the end
	quietAfter time.Duration
}

// settle waits at least least, then until the members sent less than
// quietPerMember GossipSub bytes each in a quietWindow (the announcements
// of joining members, and the replies to them, are over), at most
// settleMax.
func (s *swarm) settle(ctx context.Context, least time.Duration) (joinCost, error) {
	if err := sleepCtx(ctx, least); err != nil {
		return joinCost{}, err
	}
	quiet := int64(quietPerMember * len(s.members))
	deadline := time.Now().Add(settleMax)
	last := s.counter.pubsubOut.Load()
	for time.Now().Before(deadline) {
		if err := sleepCtx(ctx, quietWindow); err != nil {
			return joinCost{}, err
		}
		now := s.counter.pubsubOut.Load()
		if now-last < quiet {
			break
		}
		last = now
	}
	jc := joinCost{bytes: s.counter.pubsubOut.Load(), all: s.counter.out.Load(), dropped: s.dropped.Load(), quietAfter: time.Since(s.meshAt)}
	if s.kind == kindRooms {
		for time.Now().Before(deadline) {
			ratio := s.seenRatio()
			jc.seenRatio = ratio
			if ratio == 1 {
				jc.seenAfter = time.Since(s.meshAt)
				break
			}
			if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
				return jc, err
			}
		}
	}
	return jc, nil
}

// seenRatio is the share of the other members each member sees online,
// averaged over the members.
func (s *swarm) seenRatio() float64 {
	n := len(s.members)
	sum := 0.0
	for _, m := range s.members {
		m.life.RLock()
		if m.svc != nil {
			for _, ri := range m.svc.Rooms() {
				sum += float64(ri.Members-1) / float64(n-1)
			}
		}
		m.life.RUnlock()
	}
	return sum / float64(n)
}

// start starts a member's next incarnation: a host with its key, and the
// room (rejoined from its store after a restart) or the topic.
func (s *swarm) start(m *member, first bool) error {
	m.life.Lock()
	defer m.life.Unlock()
	var h host.Host
	var err error
	if s.mock != nil {
		h, err = mockHost(s.mock, m.key, m.idx, s.counter)
	} else {
		h, err = newHost(s.ctx, hostSpec{key: m.key, bw: s.counter})
	}
	if err != nil {
		return err
	}
	m.h = h
	s.mu.Lock()
	st := s.state[m.idx]
	st.gen++
	gen := st.gen
	st.mesh = make(map[peer.ID]bool)
	st.meshAt = time.Time{}
	s.mu.Unlock()
	tracer := &meshTracer{s: s, idx: m.idx, gen: gen}
	if s.kind == kindRooms {
		err = s.startRooms(m, tracer, first)
	} else {
		err = s.startGossip(m, tracer)
	}
	if err != nil {
		_ = h.Close()
		m.h = nil
		return fmt.Errorf("member %d: %w", m.idx, err)
	}
	s.mu.Lock()
	st.up, st.upAt = true, time.Now()
	if n := len(st.downs); n > 0 && st.downs[n-1].to.IsZero() {
		st.downs[n-1].to = st.upAt
	}
	s.mu.Unlock()
	return nil
}

func (s *swarm) startRooms(m *member, tracer *meshTracer, first bool) error {
	db, err := bolt.Open(m.dir+".db", 0o600, &bolt.Options{Timeout: 5 * time.Second, NoSync: true})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	nick := fmt.Sprintf("member%d", m.idx)
	svc, err := rooms.New(s.ctx, rooms.Config{
		Host: m.h, DB: db, Logger: discard,
		Nick: func() string { return nick },
		Emitter: events.EmitterFunc(func(e events.Event) {
			if msg, ok := e.(events.Message); ok {
				s.delivered(m.idx, msg.Text)
			}

		}),
		PubSubOptions: []pubsub.Option{pubsub.WithRawTracer(tracer)},
	})
	if err != nil {
		_ = db.Close()
		return fmt.Errorf("start rooms: %w", err)
	}
	if first {
		if err := svc.Join(s.ctx, benchRoom); err != nil {
			_ = svc.Close()
			_ = db.Close()
			return fmt.Errorf("join room: %w", err)
		}
	}
	m.db, m.svc = db, svc
	return nil
}

func (s *swarm) startGossip(m *member, tracer *meshTracer) error {
	ctx, cancel := context.WithCancel(s.ctx)
	ps, err := pubsub.NewGossipSub(ctx, m.h, pubsub.WithMessageSignaturePolicy(pubsub.StrictSign), pubsub.WithRawTracer(tracer))
	if err != nil {
		cancel()
		return fmt.Errorf("start gossipsub: %w", err)
	}
	topic, err := ps.Join(gossipTopic)
	if err != nil {
		cancel()
		return fmt.Errorf("join topic: %w", err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		cancel()
		return fmt.Errorf("subscribe: %w", err)
	}
	m.topic, m.sub, m.cancel = topic, sub, cancel
	m.reader.Go(func() {
		for {
			msg, err := sub.Next(ctx)
			if err != nil {
				return
			}
			s.delivered(m.idx, string(msg.Data))
		}
	})
	return nil
}

// stop ends a member's incarnation, as a process exit would.
func (s *swarm) stop(m *member) {
	m.life.Lock()
	defer m.life.Unlock()
	s.mu.Lock()
	st := s.state[m.idx]
	if st.up {
		st.up = false
		st.downs = append(st.downs, interval{from: time.Now()})
	}
	s.mu.Unlock()
	if m.svc != nil {
		_ = m.svc.Close()
		_ = m.db.Close()
		m.svc, m.db = nil, nil
	}
	if m.cancel != nil {
		m.sub.Cancel()
		m.cancel()
		m.reader.Wait()
		m.cancel, m.sub, m.topic = nil, nil, nil
	}
	if m.h != nil {
		_ = m.h.Close()
		m.h = nil
	}
}

// restart stops m, waits down, starts it again and dials its neighbours
// that are up, as a restarted node redials the peers it remembers.
func (s *swarm) restart(m *member, down time.Duration) error {
	s.stop(m)
	t := time.NewTimer(down)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
	if err := s.start(m, false); err != nil {
		return err
	}
	// Addresses first, under each neighbour's lock; then dial.
	var targets []peer.AddrInfo
	for _, j := range s.adj[m.idx] {
		n := s.members[j]
		n.life.RLock()
		if n.h != nil {
			targets = append(targets, peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()})
		}
		n.life.RUnlock()
	}
	m.life.RLock()
	defer m.life.RUnlock()
	var errs []error
	for _, ai := range targets {
		cctx, cancel := context.WithTimeout(s.ctx, connectTimeout)
		if err := m.h.Connect(cctx, ai); err != nil {
			errs = append(errs, fmt.Errorf("member %d: reconnect: %w", m.idx, err))
		}
		cancel()
	}
	return errors.Join(errs...)
}

// close stops every member, a few at a time (a room's Close announces
// leaving, which takes up to a second).
func (s *swarm) close() {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, m := range s.members {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			s.stop(m)
		})
	}
	wg.Wait()
	if s.mock != nil {
		_ = s.mock.Close()
	}
}

// waitMesh waits until every member that is up has a mesh.
func (s *swarm) waitMesh(ctx context.Context, d time.Duration) error {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ready, up := 0, 0
		for i, st := range s.state {
			if !st.up {
				continue
			}
			up++
			if meshSize(st.mesh) >= min(meshWant, len(s.adj[i])) {
				ready++
			}
		}
		ch := s.changed
		s.mu.Unlock()
		if ready == up {
			return nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return fmt.Errorf("%s mesh not formed within %v: %d of %d members have %d mesh peers", s.kind, d, ready, up, meshWant)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func meshSize(mesh map[peer.ID]bool) int {
	n := 0
	for _, in := range mesh {
		if in {
			n++
		}
	}
	return n
}

// meshChanged records a GRAFT or PRUNE of member idx's incarnation gen.
func (s *swarm) meshChanged(idx, gen int, p peer.ID, in bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state[idx]
	if st.gen != gen {
		return // an earlier incarnation, shutting down
	}
	st.mesh[p] = in
	switch size := meshSize(st.mesh); {
	case size == 0:
		st.meshAt = time.Time{}
	case st.meshAt.IsZero():
		st.meshAt = time.Now()
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// delivered records that member idx delivered the message text.
func (s *swarm) delivered(idx int, text string) {
	now := time.Now()
	if len(text) < seqDigits {
		return
	}
	seq, err := strconv.Atoi(text[:seqDigits])
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.msgs[seq]; r != nil && r.at[idx].IsZero() {
		r.at[idx] = now
	}
}

// text returns message seq's text: its sequence number, padded to the
// configured payload size.
func (s *swarm) text(seq int) string {
	head := fmt.Sprintf("%0*d ", seqDigits, seq)
	return head + strings.Repeat("x", max(0, s.cfg.PayloadSize-len(head)))
}

// publish publishes message seq from member i, recording it first.
func (s *swarm) publish(i, seq int) {
	m := s.members[i]
	m.life.RLock()
	defer m.life.RUnlock()
	if m.h == nil {
		return // stopped after it was picked
	}
	text := s.text(seq)
	rec := &msgRec{from: i, at: make([]time.Time, len(s.members))}
	s.mu.Lock()
	s.msgs[seq] = rec
	rec.pubAt = time.Now()
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(s.ctx, publishTimeout)
	defer cancel()
	var err error
	if s.kind == kindRooms {
		_, err = m.svc.Send(ctx, benchRoom, text)
	} else {
		err = m.topic.Publish(ctx, []byte(text))
	}
	if err != nil {
		s.mu.Lock()
		rec.err = err
		s.mu.Unlock()
	}
}

// run publishes count messages, one every interval, each from a random
// member that is up (never from one being restarted: a stopped member's
// services are gone), then waits for the last deliveries. busy marks the
// members being restarted.
func (s *swarm) run(ctx context.Context, count int, interval time.Duration, busy func(int) bool) {
	rng := rand.New(rand.NewPCG(uint64(len(s.members)), uint64(count))) // #nosec G404 G115 -- reproducible choice of publishers, not a secret; counts >= 0
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for seq := 0; seq < count; seq++ {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		i := s.pickPublisher(rng, busy)
		if i < 0 {
			continue
		}
		wg.Go(func() { s.publish(i, seq) })
	}
	wg.Wait()
	s.drain(ctx)
}

func (s *swarm) pickPublisher(rng *rand.Rand, busy func(int) bool) int {
	n := len(s.members)
	start := rng.IntN(n)
	for k := range n {
		i := (start + k) % n
		if busy == nil || !busy(i) {
			return i
		}
	}
	return -1
}

// drain waits until every member that is up delivered every message, at
// most drainTimeout. Nothing announces that, so it polls.
func (s *swarm) drain(ctx context.Context) {
	deadline := time.Now().Add(drainTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if s.missing() == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *swarm) missing() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.msgs {
		if r.err != nil {
			continue
		}
		for i, at := range r.at {
			if i != r.from && at.IsZero() && s.upSince(i, r.pubAt) {
				n++
			}
		}
	}
	return n
}

// upSince reports whether member i is up and has been since t. s.mu must
// be held.
func (s *swarm) upSince(i int, t time.Time) bool {
	st := s.state[i]
	if !st.up {
		return false
	}
	for _, d := range st.downs {
		if d.to.After(t) {
			return false
		}
	}
	return true
}

// meshTracer is a pubsub.RawTracer that reports one incarnation's mesh
// changes on the bench topic, and counts dropped RPCs.
type meshTracer struct {
	s        *swarm
	idx, gen int
}

func (t *meshTracer) Graft(p peer.ID, _ string) { t.s.meshChanged(t.idx, t.gen, p, true) }
func (t *meshTracer) Prune(p peer.ID, _ string) { t.s.meshChanged(t.idx, t.gen, p, false) }
func (t *meshTracer) DropRPC(*pubsub.RPC, peer.ID) {
	t.s.dropped.Add(1)
}
func (*meshTracer) AddPeer(peer.ID, protocol.ID)                         {}
func (*meshTracer) RemovePeer(peer.ID)                                   {}
func (*meshTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (*meshTracer) OnClosedOutboundStream(peer.ID)                       {}
func (*meshTracer) Join(string)                                          {}
func (*meshTracer) Leave(string)                                         {}
func (*meshTracer) ValidateMessage(*pubsub.Message)                      {}
func (*meshTracer) DeliverMessage(*pubsub.Message)                       {}
func (*meshTracer) RejectMessage(*pubsub.Message, string)                {}
func (*meshTracer) DuplicateMessage(*pubsub.Message)                     {}
func (*meshTracer) ThrottlePeer(peer.ID)                                 {}
func (*meshTracer) RecvRPC(*pubsub.RPC)                                  {}
func (*meshTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (*meshTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (*meshTracer) UndeliverableMessage(*pubsub.Message)                 {}
