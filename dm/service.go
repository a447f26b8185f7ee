package dm

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/dm/pb"
	"github.com/parley-chat/parley/events"
)

// Service sends and receives direct messages. Create it with New; Close
// stops it. Its methods are safe for concurrent use.
type Service struct {
	cfg  Config
	h    host.Host
	db   *bolt.DB
	log  *slog.Logger
	emit events.Emitter

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// wake (capacity 1) tells the scheduler to look at s.peers again.
	wake chan struct{}

	mu sync.Mutex
	// closed is set by Close; no goroutine starts after it.
	closed bool // guarded by mu
	// peers holds the delivery state of every peer with pending
	// messages.
	peers map[peer.ID]*sendState // guarded by mu
	// workers counts running delivery workers.
	workers int // guarded by mu
	// pending counts queued and sent messages in the outbox.
	pending int // guarded by mu
	// seq numbers the messages Send queues (OutboxRecord.seq).
	seq int64 // guarded by mu
	// inbound counts open inbound streams per peer; inTotal in all.
	inbound map[peer.ID]int // guarded by mu
	inTotal int             // guarded by mu
	// limiters rate-limit each peer's inbound messages.
	limiters map[peer.ID]*rate.Limiter // guarded by mu
	// quota tallies what strangers' stored messages take (quota.go).
	quota inboxQuota
	// clockWarned is when a refused timestamp last warned (UnixNano;
	// clock.go).
	clockWarned atomic.Int64

	ctr counters
}

// sendState is the delivery state of one recipient. At most one worker
// runs per recipient; it owns the recipient's pending outbox records.
//
// When the next attempt is due (see due): after a failed attempt, at
// retryAt, which the backoff sets; a new message asks for one early
// attempt, at most one per RetryMin after the last (early), whose failure
// leaves the backoff as it was; and never before busyUntil, the time the
// recipient asked for in a busy ack, which nothing overrides. A busy
// answer does not grow the backoff: the recipient was reached. Nor does
// the failure of an attempt during which the recipient connected or began
// to speak the protocol (reached): the next attempt is due at once.
type sendState struct {
	running   bool          // a worker is delivering
	dirty     bool          // work arrived while running: look again
	reached   bool          // the peer connected or began to speak the protocol during the attempt
	retryAt   time.Time     // backoff schedule after a failure (zero: none)
	backoff   time.Duration // current retry interval, 0 after success
	early     bool          // a new message asks for an attempt before retryAt
	lastTry   time.Time     // start of the last attempt
	busyUntil time.Time     // the recipient asked not to be sent to before this
	expiry    time.Time     // earliest expiry among pending messages
	// told maps the id of each pending message to the wait reason last
	// reported for it (explain), so a reason is reported once per message.
	told map[string]string
}

// counters are updated atomically; Counters returns a snapshot.
type counters struct {
	received, duplicates, rejected, rateLimited, storageErrors  atomic.Uint64
	malformed, oversize, timeouts, tooManyStreams, streamErrors atomic.Uint64
	attempts, sent, delivered, failed                           atomic.Uint64
	overQuota                                                   atomic.Uint64
}

// Counters counts what the service did since New. The inbound protocol
// violations (Malformed, Oversize, Timeouts, TooManyStreams) each reset
// the offending stream.
type Counters struct {
	Received       uint64 // new messages stored and reported
	Duplicates     uint64 // retransmissions of stored messages, acked again
	Rejected       uint64 // messages refused for good (bad text, nick, time)
	RateLimited    uint64 // messages answered "busy" by the rate limit
	StorageErrors  uint64 // messages answered "busy" because storing failed
	Malformed      uint64 // undecodable or truncated frames, bad ids
	Oversize       uint64 // length prefixes above MaxFrameSize
	Timeouts       uint64 // frames not complete within StreamTimeout
	TooManyStreams uint64 // streams refused by the per-peer or total cap
	StreamErrors   uint64 // other inbound stream failures
	Attempts       uint64 // outbound streams tried
	Sent           uint64 // messages written (first time)
	Delivered      uint64 // messages acknowledged
	Failed         uint64 // messages expired or rejected
	OverQuota      uint64 // strangers' messages answered "busy": their stored messages are at the quota
}

// Counters returns a snapshot of the counters.
func (s *Service) Counters() Counters {
	c := &s.ctr
	return Counters{
		Received: c.received.Load(), Duplicates: c.duplicates.Load(), Rejected: c.rejected.Load(),
		RateLimited: c.rateLimited.Load(), StorageErrors: c.storageErrors.Load(),
		Malformed: c.malformed.Load(), Oversize: c.oversize.Load(), Timeouts: c.timeouts.Load(),
		TooManyStreams: c.tooManyStreams.Load(), StreamErrors: c.streamErrors.Load(),
		Attempts: c.attempts.Load(), Sent: c.sent.Load(), Delivered: c.delivered.Load(), Failed: c.failed.Load(),
		OverQuota: c.overQuota.Load(),
	}
}

// New starts the direct-message service: it creates its buckets, registers
// the stream handler, and resumes delivery of messages left in the outbox
// by a previous run (restoring the recipients' stored addresses).
//
// Lifecycle (the same for every Parley service): ctx bounds construction
// only, and New fails if it has ended; the service runs on a context of
// its own until Close.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dm: start: %w", err)
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := createBuckets(cfg.DB); err != nil {
		return nil, fmt.Errorf("dm: %w", err)
	}
	s := &Service{
		cfg: cfg, h: cfg.Host, db: cfg.DB, log: cfg.Logger, emit: cfg.Emitter,
		wake:     make(chan struct{}, 1),
		peers:    map[peer.ID]*sendState{},
		inbound:  map[peer.ID]int{},
		limiters: map[peer.ID]*rate.Limiter{},
	}
	// Subscribe before loading the outbox, so no connection is missed.
	sub, err := s.h.EventBus().Subscribe([]any{new(event.EvtPeerConnectednessChanged), new(event.EvtPeerProtocolsUpdated)})
	if err != nil {
		return nil, fmt.Errorf("dm: subscribe to connectedness and protocol events: %w", err)
	}
	recs, err := s.loadPending()
	if err != nil {
		_ = sub.Close()
		return nil, fmt.Errorf("dm: %w", err)
	}
	for _, rec := range recs {
		p := peer.ID(rec.To)
		st := s.state(p)
		exp := time.UnixMilli(rec.ExpiresMs)
		if st.expiry.IsZero() || exp.Before(st.expiry) {
			st.expiry = exp
		}
		s.restoreAddrs(p, rec)
		s.seq = max(s.seq, rec.Seq)
	}
	s.pending = len(recs)
	// Before any new event: what an earlier run never showed.
	missed, err := s.unshown()
	if err != nil {
		_ = sub.Close()
		return nil, fmt.Errorf("dm: %w", err)
	}
	for _, e := range missed {
		s.emit.Emit(e)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.h.SetStreamHandler(ProtocolID, s.handle)
	s.wg.Add(2)
	go s.watch(sub)
	go s.loop()
	if len(recs) > 0 {
		s.log.Info("dm: resuming delivery", "pending", len(recs), "peers", len(s.peers))
	}
	if len(missed) > 0 {
		s.log.Info("dm: showing events an earlier run did not show", "events", len(missed))
	}
	return s, nil
}

// Close stops the service: it removes the stream handler, cancels the
// service's context, which aborts the streams in flight, and waits for
// every goroutine. There is nothing to drain first: a message whose
// delivery is cut short stays in the outbox and is sent again by the next
// New. Close does not close the host or the database. Calling Close again
// does nothing.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.h.RemoveStreamHandler(ProtocolID)
	s.cancel()
	s.wg.Wait()
	return nil
}

// Pending returns how many messages wait for delivery.
func (s *Service) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending
}

// watch retries delivery as soon as a peer with pending messages connects,
// and again when a connected peer starts to speak the protocol: a peer
// that is starting up may connect before its dm handler is registered
// (the attempt made on connecting is then refused), and announces the
// handler in an identify push once it is.
func (s *Service) watch(sub event.Subscription) {
	defer s.wg.Done()
	defer func() { _ = sub.Close() }() // an event bus subscription: Close only unsubscribes
	for {
		select {
		case <-s.ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			switch ev := e.(type) {
			case event.EvtPeerConnectednessChanged:
				if ev.Connectedness == network.Connected || ev.Connectedness == network.Limited {
					s.kickIfPending(ev.Peer, "peer connected")
				}
			case event.EvtPeerProtocolsUpdated:
				if slices.Contains(ev.Added, ProtocolID) {
					s.kickIfPending(ev.Peer, "peer now speaks the protocol")
				}
			}
		}
	}
}

func (s *Service) emitStatus(rec *pb.OutboxRecord, state, cause string) {
	via := ""
	if state == events.DMDelivered {
		via = events.DMViaDirect // a stream's ack; other paths report their own (ConfirmDelivered)
	}
	s.emit.Emit(events.DMStatus{ID: msgID(rec.Id), To: peer.ID(rec.To), State: state, Error: cause, Via: via})
}

func msgID(id []byte) string { return hex.EncodeToString(id) }
