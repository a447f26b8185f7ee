package rooms

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/pbframe"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/rooms/pb"
)

// roomSync waits for n's room_sync event of room matching pred.
func (n *tnode) roomSync(t testing.TB, room, what string, pred func(events.RoomSync) bool) events.RoomSync {
	t.Helper()
	e := n.events.wait(t, what, func(e events.Event) bool {
		s, ok := e.(events.RoomSync)
		return ok && s.Room == room && pred(s)
	})
	return e.(events.RoomSync)
}

// TestSyncStateReported: a member that joins reports waiting until it
// has a member to sync with, then complete with what it caught up; cut
// off, waiting again; the state is in the room's snapshot too.
func TestSyncStateReported(t *testing.T) {
	ctx := ctxT(t)
	a, b := newNode(t, "ann", fastRate), newNode(t, "bo", fastRate)
	for _, n := range []*tnode{a, b} {
		if err := n.svc.Join(ctx, "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	b.roomSync(t, "lobby", "waiting", func(s events.RoomSync) bool { return s.State == events.SyncWaiting })
	const lines = 5
	for i := range lines {
		if _, err := a.svc.Send(ctx, "lobby", fmt.Sprintf("before %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	a.events.waitCount(t, "ann's lines", lines, func(e events.Event) bool {
		m, ok := e.(events.Message)
		return ok && strings.HasPrefix(m.Text, "before ")
	})
	start := time.Now()
	connect(t, a, b)
	// Each line comes once, by the sync or (recent enough for
	// GossipSub's gossip) live; the state counts those caught up.
	b.events.waitCount(t, "bo's lines", lines, func(e events.Event) bool {
		m, ok := e.(events.Message)
		return ok && strings.HasPrefix(m.Text, "before ")
	})
	caught := 0
	for _, m := range b.roomMessages("lobby", "before ") {
		if m.CaughtUp {
			caught++
		}
	}
	done := b.roomSync(t, "lobby", "complete", func(s events.RoomSync) bool {
		return s.State == events.SyncComplete && s.CaughtUp == caught
	})
	if done.Peers < 1 || len(done.Gaps) != 0 {
		t.Fatalf("complete: %+v", done)
	}
	t.Logf("%d of %d lines caught up by the sync", caught, lines)
	if w := start.Add(-DefaultSyncWindow); done.Since.Before(w.Add(-time.Minute)) || done.Since.After(time.Now().Add(-DefaultSyncWindow)) {
		t.Fatalf("since %v, want about %v", done.Since, w)
	}
	if st, err := b.svc.SyncState("lobby"); err != nil || st.State != events.SyncComplete {
		t.Fatalf("SyncState = %+v, %v", st, err)
	}
	// Cut off: ann leaves the room.
	if err := a.svc.Leave("lobby"); err != nil {
		t.Fatal(err)
	}
	b.roomSync(t, "lobby", "waiting after cut off", func(s events.RoomSync) bool {
		return s.State == events.SyncWaiting && s.Peers == 0
	})
}

// fakeSync is a sync peer written from the protocol, to lie: it serves
// sessions with answer (each round) and final (the frames after the
// initiator's last), or opens them as an initiator.
type fakeSync struct {
	h        host.Host
	sessions atomic.Int32 // sessions served
	rounds   atomic.Int32 // rounds answered or sent, all sessions
}

func newFakeSync(t testing.TB, answer func(in *pb.SyncFrame) *pb.SyncFrame, final func(in *pb.SyncFrame) []*pb.SyncFrame) *fakeSync {
	t.Helper()
	f := &fakeSync{h: testnet.NewHost(t)}
	f.h.SetStreamHandler(SyncProtocol, func(s network.Stream) {
		defer func() { _ = s.Close() }()
		_ = s.SetDeadline(time.Now().Add(waitTimeout))
		f.sessions.Add(1)
		br := bufio.NewReader(s)
		var hello pb.SyncHello
		if pbframe.Read(br, MaxSyncHello, &hello) != nil {
			return
		}
		if pbframe.Write(s, &pb.SyncChallenge{Nonce: make([]byte, syncNonceSize)}) != nil {
			return
		}
		for range 4 * MaxSyncRounds {
			var in pb.SyncFrame
			if pbframe.Read(br, MaxSyncFrame, &in) != nil {
				return
			}
			if in.Done {
				for _, out := range final(&in) {
					if pbframe.Write(s, out) != nil {
						return
					}
				}
				return
			}
			f.rounds.Add(1)
			if pbframe.Write(s, answer(&in)) != nil {
				return
			}
		}
	})
	return f
}

func (f *fakeSync) id() peer.ID { return f.h.ID() }

func randomID(t testing.TB) []byte {
	id := make([]byte, itemIDSize)
	if _, err := rand.Read(id); err != nil {
		t.Fatal(err)
	}
	return id
}

// neverSettles answers every round with one fingerprint that matches
// nothing.
func neverSettles(t testing.TB) func(*pb.SyncFrame) *pb.SyncFrame {
	return func(*pb.SyncFrame) *pb.SyncFrame {
		return &pb.SyncFrame{Ranges: []*pb.SyncRange{{UpperMs: math.MaxUint64, Mode: pb.SyncMode_SYNC_MODE_FINGERPRINT, Fingerprint: randomID(t)}}}
	}
}

func noItems(*pb.SyncFrame) []*pb.SyncFrame { return []*pb.SyncFrame{{Done: true}} }

// TestSyncStateGaps: a member that lists messages and does not hand them
// over leaves gaps, reported with where they are and how many.
func TestSyncStateGaps(t *testing.T) {
	ctx := ctxT(t)
	n := newNode(t, "ann", nil)
	if err := n.svc.Join(ctx, "lobby"); err != nil {
		t.Fatal(err)
	}
	hourAgo := time.Now().Add(-time.Hour)
	f := newFakeSync(t, func(*pb.SyncFrame) *pb.SyncFrame {
		// Two items sent over an hour ago, one since.
		return &pb.SyncFrame{Ranges: []*pb.SyncRange{
			{UpperMs: uint64(hourAgo.UnixMilli()), Mode: pb.SyncMode_SYNC_MODE_IDS, Ids: [][]byte{randomID(t), randomID(t)}},
			{UpperMs: math.MaxUint64, Mode: pb.SyncMode_SYNC_MODE_IDS, Ids: [][]byte{randomID(t)}},
		}}
	}, noItems)
	testnet.Connect(t, n.h, f.h)
	r, err := n.svc.joined("lobby")
	if err != nil {
		t.Fatal(err)
	}
	tr := newSyncTracker("lobby", n.svc.cfg.SyncWindow)
	n.svc.historySession(r, tr, f.id())
	got := n.roomSync(t, "lobby", "gaps", func(s events.RoomSync) bool { return s.State == events.SyncGaps })
	if len(got.Gaps) != 2 || got.Gaps[0].Missing != 2 || got.Gaps[1].Missing != 1 || got.Peers != 1 {
		t.Fatalf("gaps: %+v", got)
	}
	if !got.Gaps[0].From.Equal(got.Since) || !got.Gaps[0].To.Equal(time.UnixMilli(hourAgo.UnixMilli())) ||
		!got.Gaps[1].From.Equal(got.Gaps[0].To) || got.Gaps[1].To.Before(hourAgo) {
		t.Fatalf("gap spans: %+v", got)
	}
	if !tr.needsRetry() {
		t.Fatal("gaps without a retry due")
	}
	// A member that cannot be synced with at all: the whole window may
	// lack messages.
	tr = newSyncTracker("lobby", n.svc.cfg.SyncWindow)
	tr.done(syncStats{}, errSyncLie)
	st := tr.state(time.Now(), true, 0)
	if st.State != events.SyncGaps || len(st.Gaps) != 1 || st.Gaps[0].Missing != 0 || !st.Gaps[0].From.Equal(st.Since) {
		t.Fatalf("failed sync: %+v", st)
	}
}

// TestSyncLiarPenalisedTenMinutes: a member whose session breaks the
// rules is neither asked nor answered for 10 minutes, then again.
func TestSyncLiarPenalisedTenMinutes(t *testing.T) {
	ctx := ctxT(t)
	n := newNode(t, "ann", nil)
	if err := n.svc.Join(ctx, "lobby"); err != nil {
		t.Fatal(err)
	}
	r, err := n.svc.joined("lobby")
	if err != nil {
		t.Fatal(err)
	}
	// As responder, the liar hands over an item not asked for.
	f := newFakeSync(t, func(*pb.SyncFrame) *pb.SyncFrame {
		return &pb.SyncFrame{Ranges: []*pb.SyncRange{{UpperMs: math.MaxUint64, Mode: pb.SyncMode_SYNC_MODE_IDS}}}
	}, func(*pb.SyncFrame) []*pb.SyncFrame {
		return []*pb.SyncFrame{{Items: [][]byte{{0xff, 0x01}}, Done: true}}
	})
	testnet.Connect(t, n.h, f.h)
	if _, err := n.svc.syncWith(ctx, r, f.id(), pb.SyncSet_SYNC_SET_HISTORY); !errors.Is(err, errSyncLie) {
		t.Fatalf("lying responder: %v", err)
	}
	if !n.svc.penalised(f.id()) {
		t.Fatal("liar not penalised")
	}
	until := n.svc.penaltyUntil(f.id())
	if d := time.Until(until); d < syncPenalty-time.Minute || d > syncPenalty {
		t.Fatalf("penalty for %v", d)
	}
	if syncPenalty != 10*time.Minute {
		t.Fatalf("syncPenalty = %v, documented 10 minutes", syncPenalty)
	}
	// Not asked again: no stream is opened.
	before := f.sessions.Load()
	if _, err := n.svc.syncWith(ctx, r, f.id(), pb.SyncSet_SYNC_SET_HISTORY); !errors.Is(err, errSyncRefused) {
		t.Fatalf("penalised peer asked: %v", err)
	}
	if f.sessions.Load() != before {
		t.Fatal("a stream was opened to a penalised peer")
	}
	// Not answered either: its sessions are reset before the challenge.
	if _, _, err := openRaw(ctx, f.h, n, r); err == nil {
		t.Fatal("penalised peer answered")
	}
	// Ten minutes later (the penalty moved back), asked again.
	n.svc.setPenaltyUntil(f.id(), time.Now().Add(-time.Millisecond))
	if n.svc.penalised(f.id()) {
		t.Fatal("still penalised after the penalty")
	}
	if _, err := n.svc.syncWith(ctx, r, f.id(), pb.SyncSet_SYNC_SET_HISTORY); !errors.Is(err, errSyncLie) || f.sessions.Load() != before+1 {
		t.Fatalf("after the penalty: %v, %d sessions", err, f.sessions.Load()-before)
	}

	// As initiator, a liar sending bad ranges is penalised by the
	// responder, which then resets its sessions at once.
	liar := testnet.NewHost(t)
	testnet.Connect(t, n.h, liar)
	s, br, err := openRaw(ctx, liar, n, r)
	if err != nil {
		t.Fatal(err)
	}
	bad := &pb.SyncFrame{Ranges: []*pb.SyncRange{{UpperMs: 5, Mode: pb.SyncMode_SYNC_MODE_SKIP}}} // does not cover everything
	if err := pbframe.Write(s, bad); err != nil {
		t.Fatal(err)
	}
	var in pb.SyncFrame
	if err := pbframe.Read(br, MaxSyncFrame, &in); err == nil {
		t.Fatalf("bad ranges answered: %v", &in)
	}
	waitPenalised(t, n, liar.ID())
	if _, _, err := openRaw(ctx, liar, n, r); err == nil {
		t.Fatal("penalised initiator answered")
	}
}

// openRaw opens a sync session from h to n's room r and reads the
// challenge; it fails when n resets the stream.
func openRaw(ctx context.Context, h host.Host, n *tnode, r *room) (network.Stream, *bufio.Reader, error) {
	s, err := h.NewStream(ctx, n.id(), SyncProtocol)
	if err != nil {
		return nil, nil, err
	}
	_ = s.SetDeadline(time.Now().Add(waitTimeout))
	hello := &pb.SyncHello{Topic: r.topicName, Set: pb.SyncSet_SYNC_SET_HISTORY, Nonce: make([]byte, syncNonceSize)}
	if err := pbframe.Write(s, hello); err != nil {
		_ = s.Reset()
		return nil, nil, err
	}
	br := bufio.NewReader(s)
	var ch pb.SyncChallenge
	if err := pbframe.Read(br, MaxSyncHello, &ch); err != nil {
		_ = s.Reset()
		return nil, nil, err
	}
	return s, br, nil
}

func waitPenalised(t testing.TB, n *tnode, p peer.ID) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !n.svc.penalised(p) {
		if time.Now().After(deadline) {
			t.Fatalf("%s not penalised", p)
		}
		time.Sleep(10 * time.Millisecond) // the handler's goroutine sets it after the reset
	}
}

// TestSyncRoundLimit: a session that does not settle ends after
// MaxSyncRounds rounds on either side, and the peer is penalised.
func TestSyncRoundLimit(t *testing.T) {
	ctx := ctxT(t)
	n := newNode(t, "ann", nil)
	if err := n.svc.Join(ctx, "lobby"); err != nil {
		t.Fatal(err)
	}
	r, err := n.svc.joined("lobby")
	if err != nil {
		t.Fatal(err)
	}
	// The node as initiator, against a responder that never settles.
	f := newFakeSync(t, neverSettles(t), noItems)
	testnet.Connect(t, n.h, f.h)
	_, err = n.svc.syncWith(ctx, r, f.id(), pb.SyncSet_SYNC_SET_HISTORY)
	if !errors.Is(err, errSyncLie) || !strings.Contains(err.Error(), "rounds") {
		t.Fatalf("endless responder: %v", err)
	}
	// The initiator reads MaxSyncRounds answers; the frame it wrote
	// after the last may have been read too.
	if got := f.rounds.Load(); got < MaxSyncRounds || got > MaxSyncRounds+1 {
		t.Fatalf("responder answered %d rounds, want %d", got, MaxSyncRounds)
	}
	if !n.svc.penalised(f.id()) {
		t.Fatal("endless responder not penalised")
	}

	// The node as responder, against an initiator that never settles.
	liar := testnet.NewHost(t)
	testnet.Connect(t, n.h, liar)
	s, br, err := openRaw(ctx, liar, n, r)
	if err != nil {
		t.Fatal(err)
	}
	next := neverSettles(t)
	answered := 0
	for range 2 * MaxSyncRounds {
		if pbframe.Write(s, next(nil)) != nil {
			break
		}
		var in pb.SyncFrame
		if pbframe.Read(br, MaxSyncFrame, &in) != nil {
			break
		}
		answered++
	}
	if answered != MaxSyncRounds {
		t.Fatalf("responder answered %d rounds, want %d", answered, MaxSyncRounds)
	}
	waitPenalised(t, n, liar.ID())
}

// penaltyUntil and setPenaltyUntil read and move a peer's penalty.
func (s *Service) penaltyUntil(p peer.ID) time.Time {
	s.penalties.mu.Lock()
	defer s.penalties.mu.Unlock()
	return s.penalties.until[p]
}

func (s *Service) setPenaltyUntil(p peer.ID, t time.Time) {
	s.penalties.mu.Lock()
	defer s.penalties.mu.Unlock()
	s.penalties.until[p] = t
}
