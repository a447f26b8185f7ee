package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The targets for rooms of RoomTargetN members: every message
// delivered to every member, at the 99th percentile within RoomTargetP99.
const (
	RoomTargetN   = 50
	RoomTargetP99 = 50 * time.Millisecond
)

// swarmStats summarises a measured run of a swarm.
type swarmStats struct {
	published, failed, cut int // cut: publisher restarted right after
	expected, got          int
	stableExpected         int // to members that never restarted
	stableGot              int
	lat                    []time.Duration // per delivery, sorted
	last                   []time.Duration // per fully delivered message: to the last member, sorted
	pubsubBytes            int64
	cpu                    time.Duration
	rejoin                 []time.Duration // restart to being in the mesh for good, sorted
	notRejoined            int             // restarted members with an empty mesh at the end
	dropped                int64           // RPCs GossipSub dropped during the run
	join                   joinCost
}

func (st swarmStats) ratio() float64 {
	if st.expected == 0 {
		return 0
	}
	return float64(st.got) / float64(st.expected)
}

func (st swarmStats) stableRatio() float64 {
	if st.stableExpected == 0 {
		return 0
	}
	return float64(st.stableGot) / float64(st.stableExpected)
}

// amplification is GossipSub bytes sent (by all members) per payload byte
// delivered.
func (st swarmStats) amplification(payload int) float64 {
	if st.got == 0 {
		return 0
	}
	return float64(st.pubsubBytes) / float64(st.got*payload)
}

func (st swarmStats) cpuPerMsg() float64 {
	if st.published == 0 {
		return 0
	}
	return ms(st.cpu) / float64(st.published)
}

// stats counts, for each message that was published, the members that
// were up from its publication until grace later (all of them, without
// churn), and how many of those delivered it.
func (s *swarm) stats(grace time.Duration) swarmStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st swarmStats
	upThrough := func(i int, from, to time.Time) bool {
		for _, d := range s.state[i].downs {
			end := d.to
			if end.IsZero() {
				end = to.Add(time.Hour)
			}
			if d.from.Before(to) && end.After(from) {
				return false
			}
		}
		return true
	}
	for _, r := range s.msgs {
		if r.err != nil {
			st.failed++
			continue
		}
		st.published++
		end := r.pubAt.Add(grace)
		if !upThrough(r.from, r.pubAt, end) {
			st.cut++
			continue
		}
		var lastAt time.Time
		complete := true
		for i, at := range r.at {
			if i == r.from || !upThrough(i, r.pubAt, end) {
				continue
			}
			stable := len(s.state[i].downs) == 0
			st.expected++
			if stable {
				st.stableExpected++
			}
			if at.IsZero() {
				complete = false
				continue
			}
			st.got++
			if stable {
				st.stableGot++
			}
			st.lat = append(st.lat, at.Sub(r.pubAt))
			if at.After(lastAt) {
				lastAt = at
			}
		}
		if complete && !lastAt.IsZero() {
			st.last = append(st.last, lastAt.Sub(r.pubAt))
		}
	}
	// Each member restarts at most once: a restarted member is in its
	// second incarnation, back in the mesh since meshAt (the mesh may have
	// emptied again after its first GRAFT, when peers PRUNEd it).
	for _, m := range s.state {
		switch {
		case m.gen < 2:
		case m.meshAt.IsZero():
			st.notRejoined++
		default:
			st.rejoin = append(st.rejoin, m.meshAt.Sub(m.upAt))
		}
	}
	slices.Sort(st.lat)
	slices.Sort(st.last)
	slices.Sort(st.rejoin)
	return st
}

// measureSwarm starts a swarm of n members of kind, lets it settle, runs
// the publishing schedule (with churn: restarts members meanwhile) and
// returns the statistics.
func measureSwarm(ctx context.Context, cfg *Config, dir string, kind swarmKind, n int, churn bool) (swarmStats, error) {
	s, err := newSwarm(ctx, cfg, kind, n, dir)
	if err != nil {
		return swarmStats{}, err
	}
	defer s.close()
	join, err := s.settle(ctx, cfg.settleOr(settleTime))
	if err != nil {
		return swarmStats{}, err
	}
	count := max(1, int(cfg.Rate*cfg.Duration.Seconds()))
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	bytes0, drops0, cpu0 := s.counter.pubsubOut.Load(), s.dropped.Load(), cpuTime()
	var restarts sync.WaitGroup
	var restartErr atomic.Pointer[error]
	busy := func(int) bool { return false }
	if churn {
		busy = s.scheduleRestarts(ctx, cfg, &restarts, &restartErr)
	}
	s.run(ctx, count, interval, busy)
	restarts.Wait()
	if p := restartErr.Load(); p != nil {
		return swarmStats{}, *p
	}
	grace := time.Duration(0)
	if churn {
		grace = time.Second
	}
	st := s.stats(grace)
	st.join = join
	st.pubsubBytes = s.counter.pubsubOut.Load() - bytes0
	st.dropped = s.dropped.Load() - drops0
	st.cpu = cpuTime() - cpu0
	return st, ctx.Err()
}

// scheduleRestarts restarts ChurnFraction of the members, one after
// another at even intervals over the first 60% of the run (after the
// first 10%), each down for Downtime. It returns which members are being
// restarted (never picked to publish meanwhile).
func (s *swarm) scheduleRestarts(ctx context.Context, cfg *Config, wg *sync.WaitGroup, firstErr *atomic.Pointer[error]) func(int) bool {
	n := len(s.members)
	k := max(1, int(cfg.ChurnFraction*float64(n)+0.5))
	rng := rand.New(rand.NewPCG(uint64(n), 0xc4a2)) // #nosec G404 G115 -- reproducible choice of members to restart, not a secret; n >= 2
	order := rng.Perm(n)[:k]
	busy := make([]atomic.Bool, n)
	start := time.Now()
	for j, i := range order {
		at := cfg.Duration/10 + time.Duration(float64(cfg.Duration)*0.6*float64(j)/float64(k))
		wg.Go(func() {
			t := time.NewTimer(time.Until(start.Add(at)))
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
			busy[i].Store(true)
			defer busy[i].Store(false)
			if err := s.restart(s.members[i], cfg.Downtime); err != nil {
				firstErr.CompareAndSwap(nil, &err)
			}
		})
	}
	return func(i int) bool { return busy[i].Load() }
}

// Rooms measures delivery in rooms of each of cfg.RoomSizes members, next
// to plain GossipSub on the same kind of hosts and the same topology.
func Rooms(ctx context.Context, c Config) ([]Result, error) {
	cfg := c.withDefaults()
	dir, cleanup, err := scenarioDir(&cfg, "rooms")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	var out []Result
	for _, n := range cfg.RoomSizes {
		if n < 2 {
			return out, fmt.Errorf("room of %d members: need at least 2", n)
		}
		runs := make(map[swarmKind]swarmStats)
		for _, kind := range []swarmKind{kindGossipSub, kindRooms} {
			st, err := measureSwarm(ctx, &cfg, dir, kind, n, false)
			if err != nil {
				return out, fmt.Errorf("%s with %d members: %w", kind, n, err)
			}
			logf(cfg.Log, "rooms N=%d %s: joining %.2f MB (%.2f MB all protocols), %d dropped RPCs, quiet after %.1f s; then %d/%d delivered, p50 %.1f ms, p99 %.1f ms, %.1f bytes/byte, %.2f CPU-ms/msg, %d dropped RPCs",
				n, kind, float64(st.join.bytes)/1e6, float64(st.join.all)/1e6, st.join.dropped, st.join.quietAfter.Seconds(), st.got, st.expected,
				ms(percentile(st.lat, 0.5)), ms(percentile(st.lat, 0.99)), st.amplification(cfg.PayloadSize), st.cpuPerMsg(), st.dropped)
			runs[kind] = st
		}
		out = append(out, roomResults(&cfg, n, runs[kindRooms], runs[kindGossipSub])...)
	}
	return out, nil
}

const baselineGossip = "plain GossipSub"

// RoomFormTargetN is the target of size: a room of this many
// members forms and delivers every message.
const RoomFormTargetN = 500

func roomResults(cfg *Config, n int, r, g swarmStats) []Result {
	sc := fmt.Sprintf("rooms/N=%d", n)
	if n >= cfg.MocknetFrom {
		sc += "/mocknet"
	}
	p99 := row(sc, "delivery latency p99, ms", ms(percentile(r.lat, 0.99)), baselineGossip, ms(percentile(g.lat, 0.99))).
		withNote("to the last member p99: %.1f ms (baseline %.1f ms)", ms(percentile(r.last, 0.99)), ms(percentile(g.last, 0.99)))
	ratio := row(sc, "delivery ratio", r.ratio(), baselineGossip, g.ratio()).
		withNote("%d of %d deliveries, %d messages, %d publish errors, %d RPCs dropped (baseline %d of %d)",
			r.got, r.expected, r.published, r.failed, r.dropped, g.got, g.expected)
	if n == RoomTargetN {
		p99 = p99.withTarget(fmt.Sprintf("< %d ms", RoomTargetP99.Milliseconds()), percentile(r.lat, 0.99) < RoomTargetP99)
	}
	if n == RoomTargetN || n == RoomFormTargetN {
		ratio = ratio.withTarget("every message to every member", r.got == r.expected && r.failed == 0)
	}
	return []Result{
		row(sc, "delivery latency p50, ms", ms(percentile(r.lat, 0.5)), baselineGossip, ms(percentile(g.lat, 0.5))),
		p99,
		ratio,
		row(sc, "GossipSub bytes sent per delivered payload byte", r.amplification(cfg.PayloadSize), baselineGossip, g.amplification(cfg.PayloadSize)).
			withNote("all members; %d-byte messages, %.0f/s", cfg.PayloadSize, cfg.Rate),
		row(sc, "CPU ms per message, all members", r.cpuPerMsg(), baselineGossip, g.cpuPerMsg()),
		joinRow(sc, n, r, g),
		row(sc, "all joining at once: MB sent on every protocol", float64(r.join.all)/1e6, baselineGossip, float64(g.join.all)/1e6).
			withNote("GossipSub, the room sync (presence and history) and libp2p's own protocols (identify, ...); every member saw every other online %.1f s after the mesh formed (%.0f%% seen)",
				r.join.seenAfter.Seconds(), 100*r.join.seenRatio),
	}
}

// The target for joining: a room of JoinTargetN members forms for
// at most JoinTargetRatio times plain GossipSub's bytes, dropping no RPC.
const (
	JoinTargetN     = 100
	JoinTargetRatio = 5
)

func joinRow(sc string, n int, r, g swarmStats) Result {
	res := row(sc, "all joining at once: GossipSub MB sent", float64(r.join.bytes)/1e6, baselineGossip, float64(g.join.bytes)/1e6).
		withNote("%d RPCs dropped on full peer queues (baseline %d); quiet %.1f s after the mesh formed (baseline %.1f s); not part of the figures above",
			r.join.dropped, g.join.dropped, r.join.quietAfter.Seconds(), g.join.quietAfter.Seconds())
	if n == JoinTargetN {
		res = res.withTarget(fmt.Sprintf("<= %dx, no RPC dropped", JoinTargetRatio),
			r.join.dropped == 0 && float64(r.join.bytes) <= JoinTargetRatio*float64(g.join.bytes))
	}
	return res
}

// Churn measures a room of ChurnSize members while ChurnFraction of them
// restart, next to plain GossipSub under the same churn.
func Churn(ctx context.Context, c Config) ([]Result, error) {
	cfg := c.withDefaults()
	dir, cleanup, err := scenarioDir(&cfg, "churn")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	n := cfg.ChurnSize
	if n < 2 {
		return nil, fmt.Errorf("churn with %d members: need at least 2", n)
	}
	if n >= cfg.MocknetFrom {
		return nil, fmt.Errorf("churn with %d members: restarts need real hosts, at most %d members", n, cfg.MocknetFrom-1)
	}
	runs := make(map[swarmKind]swarmStats)
	for _, kind := range []swarmKind{kindGossipSub, kindRooms} {
		st, err := measureSwarm(ctx, &cfg, dir, kind, n, true)
		if err != nil {
			return nil, fmt.Errorf("%s with %d members under churn: %w", kind, n, err)
		}
		logf(cfg.Log, "churn N=%d %s: %d/%d delivered to members up, %d/%d to members never restarted, p99 %.1f ms, back in mesh p50 %.0f ms max %.0f ms (%d restarts, %d without mesh at the end), %d RPCs dropped",
			n, kind, st.got, st.expected, st.stableGot, st.stableExpected, ms(percentile(st.lat, 0.99)), ms(percentile(st.rejoin, 0.5)),
			ms(percentile(st.rejoin, 1)), len(st.rejoin)+st.notRejoined, st.notRejoined, st.dropped)
		runs[kind] = st
	}
	r, g := runs[kindRooms], runs[kindGossipSub]
	sc := fmt.Sprintf("churn/N=%d", n)
	restarts := max(1, int(cfg.ChurnFraction*float64(n)+0.5))
	return []Result{
		row(sc, "delivery ratio to members that were up", r.ratio(), baselineGossip, g.ratio()).
			withNote("%d restarts (%.0f%%), each down %v; up = up from publication until 1 s later; %d of %d deliveries",
				restarts, 100*cfg.ChurnFraction, cfg.Downtime, r.got, r.expected),
		row(sc, "delivery ratio to members never restarted", r.stableRatio(), baselineGossip, g.stableRatio()),
		row(sc, "restart to back in the mesh p50, ms", ms(percentile(r.rejoin, 0.5)), baselineGossip, ms(percentile(g.rejoin, 0.5))).
			withNote("max %.0f ms (baseline %.0f ms); %d restarted members with no mesh peer at the end (baseline %d); from the new host's start until its mesh stays non-empty",
				ms(percentile(r.rejoin, 1)), ms(percentile(g.rejoin, 1)), r.notRejoined, g.notRejoined),
		row(sc, "delivery latency p99, ms", ms(percentile(r.lat, 0.99)), baselineGossip, ms(percentile(g.lat, 0.99))).
			withNote("%d RPCs dropped on full peer queues during the run (baseline %d)", r.dropped, g.dropped),
		row(sc, "GossipSub bytes sent per delivered payload byte", r.amplification(cfg.PayloadSize), baselineGossip, g.amplification(cfg.PayloadSize)),
	}, nil
}
