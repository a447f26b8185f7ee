package dm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/dm/pb"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/internal/pbframe"
	"github.com/parley-chat/parley/overlay"
)

const (
	// maxStoredAddrs bounds the recipient addresses kept with a message.
	maxStoredAddrs = 16
	// maxBatchBytes bounds the text written at once on a stream, so a
	// batch crosses a slow link within StreamTimeout (6.4 kB/s at the
	// default) and stays well under a relay's data limit.
	maxBatchBytes = 32 << 10
)

// batchOf returns the oldest pending messages that go on one stream: at
// most MaxMessagesPerStream, and at most maxBatchBytes of text (but at
// least one message).
func batchOf(pending []*pb.OutboxRecord) []*pb.OutboxRecord {
	size := 0
	for i, rec := range pending {
		size += len(rec.Text)
		if i == MaxMessagesPerStream || (i > 0 && size > maxBatchBytes) {
			return pending[:i]
		}
	}
	return pending
}

// Send queues a direct message to peer to and returns its id (32 hex
// digits). The message is stored in the outbox before Send returns (a
// dm_status "queued" event is emitted) and delivered in the background:
// at once when the peer is reachable, otherwise when it connects or on the
// next retry, also after a restart, until Config.TTL passes. Its progress
// is reported as dm_status events: sent, delivered, or failed.
func (s *Service) Send(ctx context.Context, to peer.ID, text string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("send: %w", err)
	}
	if _, err := peer.IDFromBytes([]byte(to)); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidPeer, err)
	}
	if len(to) > maxPeerIDLen {
		return "", fmt.Errorf("%w: %d bytes long", ErrInvalidPeer, len(to))
	}
	if to == s.h.ID() {
		return "", ErrSelf
	}
	if err := checkText(text); err != nil {
		return "", err
	}
	id := make([]byte, IDLen)
	if _, err := rand.Read(id); err != nil {
		return "", fmt.Errorf("make message id: %w", err)
	}
	now := time.Now()
	rec := &pb.OutboxRecord{
		Id: id, To: []byte(to), Text: text,
		CreatedMs: now.UnixMilli(), ExpiresMs: now.Add(s.cfg.TTL).UnixMilli(), UpdatedMs: now.UnixMilli(),
		State: pb.State_STATE_QUEUED, Addrs: s.addrsOf(to),
	}
	s.mu.Lock()
	switch {
	case s.closed || s.ctx.Err() != nil:
		s.mu.Unlock()
		return "", ErrClosed
	case s.pending >= s.cfg.MaxPending:
		s.mu.Unlock()
		return "", fmt.Errorf("%w: %d messages wait for delivery", ErrOutboxFull, s.cfg.MaxPending)
	}
	s.pending++
	s.seq++
	rec.Seq = s.seq
	s.mu.Unlock()
	if err := s.putOutbox(rec); err != nil {
		s.mu.Lock()
		s.pending--
		s.mu.Unlock()
		return "", fmt.Errorf("queue message: %w", err)
	}
	s.emitStatus(rec, events.DMQueued, "")
	s.kick(to, false)
	return msgID(id), nil
}

// checkText applies the recipient's text rules, so a message that would
// be rejected is refused before it is queued.
func checkText(text string) error {
	switch {
	case text == "":
		return ErrEmptyText
	case len(text) > MaxTextBytes:
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTextTooLong, len(text), MaxTextBytes)
	case !utf8.ValidString(text):
		return ErrInvalidUTF8
	}
	return nil
}

// addrsOf returns up to maxStoredAddrs known addresses of p, encoded.
func (s *Service) addrsOf(p peer.ID) [][]byte {
	var out [][]byte
	for _, a := range s.h.Peerstore().Addrs(p) {
		if len(out) == maxStoredAddrs {
			break
		}
		out = append(out, a.Bytes())
	}
	return out
}

// restoreAddrs puts the addresses stored with rec back into the peerstore
// when it knows none for p (after a restart, or when they expired).
func (s *Service) restoreAddrs(p peer.ID, rec *pb.OutboxRecord) {
	if len(rec.Addrs) == 0 || len(s.h.Peerstore().Addrs(p)) > 0 {
		return
	}
	addrs := make([]ma.Multiaddr, 0, len(rec.Addrs))
	for _, b := range rec.Addrs {
		a, err := ma.NewMultiaddrBytes(b)
		if err != nil {
			s.log.Debug("dm: skipping unreadable stored address", "peer", p, "err", err)
			continue
		}
		addrs = append(addrs, a)
	}
	s.h.Peerstore().AddAddrs(p, addrs, s.cfg.AddrTTL)
}

// state returns p's delivery state, creating it. Callers hold mu.
func (s *Service) state(p peer.ID) *sendState {
	st, ok := s.peers[p]
	if !ok {
		st = &sendState{}
		s.peers[p] = st
	}
	return st
}

// kick asks for a delivery attempt to p: resetBackoff (the peer just
// connected, or started to speak the protocol) forgets earlier failures,
// so the attempt is due at once, also when the attempt running now fails
// (it may have begun before the peer was reachable); otherwise (a new
// message) an attempt is due at once when no failure is being backed off
// from, or else early, at most one per RetryMin. Neither overrides the
// wait a busy recipient asked for.
func (s *Service) kick(p peer.ID, resetBackoff bool) {
	s.mu.Lock()
	st := s.state(p)
	switch {
	case resetBackoff:
		st.backoff, st.retryAt, st.early = 0, time.Time{}, false
		st.reached = st.running
	case time.Now().Before(st.retryAt):
		st.early = true
	}
	if st.running {
		st.dirty = true
	}
	s.mu.Unlock()
	s.poke()
}

// due returns when st's next attempt is due. Callers hold mu.
func (s *Service) due(st *sendState) time.Time {
	t := st.retryAt
	if st.early {
		if e := st.lastTry.Add(s.cfg.RetryMin); e.Before(t) {
			t = e
		}
	}
	if st.busyUntil.After(t) {
		t = st.busyUntil
	}
	return t
}

// kickIfPending retries delivery to p at once, from a fresh backoff, if
// messages to p are pending; why is logged.
func (s *Service) kickIfPending(p peer.ID, why string) {
	s.mu.Lock()
	_, ok := s.peers[p]
	s.mu.Unlock()
	if ok {
		s.log.Debug("dm: retrying delivery", "peer", p, "why", why)
		s.kick(p, true)
	}
}

func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// loop is the scheduler: it starts a worker for every peer whose retry or
// earliest expiry is due, and prunes old records.
func (s *Service) loop() {
	defer s.wg.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	prune := time.NewTicker(s.cfg.PruneInterval)
	defer prune.Stop()
	s.pruneNow()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		case <-prune.C:
			s.pruneNow()
		}
		timer.Reset(time.Until(s.startDue(time.Now())))
	}
}

func (s *Service) pruneNow() {
	n, err := s.prune(time.Now())
	if err != nil {
		s.log.Warn("dm: pruning old messages failed", "err", err)
		return
	}
	if n > 0 {
		s.log.Debug("dm: pruned old messages", "records", n)
	}
	s.pruneLimiters()
}

// startDue starts the due workers and returns when the next one is due.
func (s *Service) startDue(now time.Time) time.Time {
	next := now.Add(s.cfg.PruneInterval)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return next
	}
	for p, st := range s.peers {
		if st.running {
			continue
		}
		due := s.due(st)
		if !st.expiry.IsZero() && st.expiry.Before(due) {
			due = st.expiry
		}
		if due.After(now) {
			if due.Before(next) {
				next = due
			}
			continue
		}
		if s.workers >= s.cfg.MaxDeliveries {
			// A finishing worker pokes the scheduler.
			continue
		}
		st.running = true
		s.workers++
		s.wg.Add(1)
		go s.work(p)
	}
	return next
}

// work delivers p's pending messages until none is left or an attempt
// fails, then schedules the retry.
func (s *Service) work(p peer.ID) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		s.workers--
		s.mu.Unlock()
		s.poke()
	}()
	for s.ctx.Err() == nil {
		pending, expired, err := s.expireAndLoad(p, time.Now())
		s.finished(expired)
		if err != nil {
			s.log.Warn("dm: reading outbox failed", "peer", p, "err", err)
			s.park(p)
			return
		}
		switch s.decide(p, pending) {
		case stop:
			return
		case reload:
			continue
		}
		early := s.begin(p)
		err = s.deliver(p, pending)
		if err == nil {
			s.mu.Lock()
			st := s.peers[p]
			st.backoff, st.retryAt = 0, time.Time{}
			s.mu.Unlock()
			continue
		}
		if s.ctx.Err() != nil {
			return
		}
		s.log.Debug("dm: delivery attempt failed", "peer", p, "err", err)
		s.explain(p, pending, err)
		s.retryLater(p, err, early)
		return
	}
}

// begin records the start of an attempt to p and reports whether it is
// an early one (asked for by a new message before the backoff ran out).
func (s *Service) begin(p peer.ID) (early bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.peers[p]
	now := time.Now()
	early = st.early && now.Before(st.retryAt)
	st.lastTry, st.early, st.reached = now, false, false
	return early
}

// decision is what a worker does after loading a peer's pending messages.
type decision int

const (
	stop    decision = iota // the worker has ended
	reload                  // load the outbox again
	attempt                 // deliver now
)

// decide chooses, with the freshly loaded pending messages of p, what the
// worker does. On stop the state is released (nothing pending) or parked
// until its retry is due.
func (s *Service) decide(p peer.ID, pending []*pb.OutboxRecord) decision {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.peers[p]
	if len(pending) == 0 {
		if st.dirty {
			// Send queued a message after we looked.
			st.dirty = false
			return reload
		}
		delete(s.peers, p)
		return stop
	}
	st.expiry = time.UnixMilli(pending[0].ExpiresMs)
	for _, r := range pending[1:] {
		if e := time.UnixMilli(r.ExpiresMs); e.Before(st.expiry) {
			st.expiry = e
		}
	}
	st.dirty = false
	if !time.Now().Before(s.due(st)) {
		return attempt
	}
	// Woken only to expire messages; the retry is not due yet.
	st.running = false
	s.poke()
	return stop
}

// retryLater schedules p's next attempt after a failed one and ends the
// worker; the scheduler starts another when it is due. A busy answer
// waits what the recipient asked (RetryMin if it did not say) and resets
// the backoff; when the recipient connected or began to speak the
// protocol during the attempt (reached), the next one is due at once; a
// failed early attempt leaves the schedule as it was; any other failure
// grows the backoff.
func (s *Service) retryLater(p peer.ID, err error, early bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.peers[p]
	now := time.Now()
	var be *busyError
	switch {
	case errors.As(err, &be):
		wait := be.after
		if wait <= 0 {
			wait = s.cfg.RetryMin
		}
		st.busyUntil = now.Add(min(wait, MaxRetryAfter))
		st.backoff, st.retryAt = 0, time.Time{}
	case st.reached:
		// The attempt may have begun before the recipient could take it
		// (connected, or registered its handler): kick reset the backoff.
		st.backoff, st.retryAt = 0, time.Time{}
	case early && now.Before(st.retryAt):
	default:
		st.backoff = nextBackoff(st.backoff, s.cfg.RetryMin, s.cfg.RetryMax)
		st.retryAt = now.Add(st.backoff)
	}
	st.dirty, st.reached = false, false
	st.running = false
	s.poke()
}

// park ends the worker after a local failure (reading the outbox): the
// next attempt waits for the backoff even if work arrived.
func (s *Service) park(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.peers[p]
	st.backoff = nextBackoff(st.backoff, s.cfg.RetryMin, s.cfg.RetryMax)
	st.retryAt = time.Now().Add(st.backoff)
	st.early = false
	st.dirty, st.reached = false, false
	st.running = false
	s.poke()
}

// nextBackoff doubles cur within [min, max] and adds up to 25% jitter.
func nextBackoff(cur, lo, hi time.Duration) time.Duration {
	next := cur * 2
	if next < lo {
		next = lo
	}
	if next > hi {
		next = hi
	}
	return next + mrand.N(next/4+1) // #nosec G404 -- backoff jitter, not a secret
}

// finished reports messages that reached a final state outside deliver.
func (s *Service) finished(recs []*pb.OutboxRecord) {
	for _, rec := range recs {
		s.report(update{rec: rec, state: rec.State, cause: rec.Error})
	}
}

// report accounts for and emits one applied state change.
func (s *Service) report(u update) {
	if u.state == pb.State_STATE_SENT {
		s.ctr.sent.Add(1)
		s.emitStatus(u.rec, events.DMSent, "")
		return
	}
	s.mu.Lock()
	s.pending--
	s.mu.Unlock()
	switch u.state {
	case pb.State_STATE_DELIVERED:
		s.ctr.delivered.Add(1)
		s.emitStatus(u.rec, events.DMDelivered, "")
	default:
		s.ctr.failed.Add(1)
		s.log.Debug("dm: message failed", "peer", peer.ID(u.rec.To), "id", msgID(u.rec.Id), "err", u.cause)
		s.emitStatus(u.rec, events.DMFailed, u.cause)
	}
}

// commit applies and reports a batch of state changes.
func (s *Service) commit(ups []update) error {
	applied, err := s.applyStates(ups)
	for _, u := range applied {
		s.report(u)
	}
	return err
}

// deliver opens one stream to p and sends the first batch of the pending
// messages (batchOf). The messages are written at once and their acks
// read in order; state changes are committed in batches (whenever no
// further ack is already buffered), so a burst costs few disk syncs.
func (s *Service) deliver(p peer.ID, pending []*pb.OutboxRecord) error {
	pending = batchOf(pending)
	s.restoreAddrs(p, pending[len(pending)-1])
	s.ctr.attempts.Add(1)
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DialTimeout)
	str, err := s.h.NewStream(network.WithAllowLimitedConn(ctx, "parley dm"), p, ProtocolID)
	cancel()
	if err != nil {
		return &openError{fmt.Errorf("open stream to %s: %w", p, err)}
	}
	defer context.AfterFunc(s.ctx, func() { _ = str.Reset() })()
	if err := str.Scope().SetService(ServiceName); err != nil {
		_ = str.Reset()
		return fmt.Errorf("attach stream to %s: %w", ServiceName, err)
	}
	if err := s.exchange(str, pending); err != nil {
		_ = str.Reset()
		return err
	}
	if err := str.Close(); err != nil {
		s.log.Debug("dm: closing stream", "peer", p, "err", err)
	}
	return nil
}

// exchange writes the messages and handles their acks. It returns an
// error when any message is left pending (busy recipient, stream failure,
// protocol violation).
func (s *Service) exchange(str network.Stream, batch []*pb.OutboxRecord) error {
	nick := s.cfg.Nick()
	if identity.ValidateNick(nick) != nil {
		nick = ""
	}
	var buf []byte
	var sent []update
	for _, rec := range batch {
		var err error
		buf, err = pbframe.Append(buf, &pb.Message{Id: rec.Id, Text: rec.Text, Nick: nick, SentAtMs: rec.CreatedMs})
		if err != nil {
			return err
		}
		if rec.State == pb.State_STATE_QUEUED {
			sent = append(sent, update{rec: rec, state: pb.State_STATE_SENT})
		}
	}
	if err := str.SetDeadline(time.Now().Add(s.cfg.StreamTimeout)); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	if _, err := str.Write(buf); err != nil {
		return fmt.Errorf("send %d messages: %w", len(batch), err)
	}
	if err := s.commit(sent); err != nil {
		return err
	}
	br := bufio.NewReaderSize(str, 512)
	var done []update
	var busy *busyError
	for _, rec := range batch {
		u, err := s.readAck(str, br, rec)
		if err != nil {
			return errors.Join(err, s.commit(done))
		}
		if u.state == pb.State_STATE_UNSPECIFIED {
			// The last busy ack covers the messages refused before it.
			busy = u.busy
		} else {
			done = append(done, u.update)
		}
		if br.Buffered() == 0 {
			if err := s.commit(done); err != nil {
				return err
			}
			done = done[:0]
		}
	}
	if err := s.commit(done); err != nil {
		return err
	}
	if busy != nil {
		return busy
	}
	return nil
}

// ackResult is what an ack means for its message: a final state, or
// (state unspecified) a busy recipient.
type ackResult struct {
	update
	busy *busyError
}

// busyError is a busy answer: why, and how long the recipient asked the
// sender to wait (0: it did not say). It matches ErrBusy.
type busyError struct {
	err   error
	after time.Duration
}

func (e *busyError) Error() string { return e.err.Error() }
func (e *busyError) Unwrap() error { return e.err }

// readAck reads the ack of rec. An error means the stream is unusable.
func (s *Service) readAck(str network.Stream, br *bufio.Reader, rec *pb.OutboxRecord) (ackResult, error) {
	if err := str.SetReadDeadline(time.Now().Add(s.cfg.StreamTimeout)); err != nil {
		return ackResult{}, fmt.Errorf("set deadline: %w", err)
	}
	var ack pb.Ack
	if err := pbframe.Read(br, MaxAckSize, &ack); err != nil {
		return ackResult{}, fmt.Errorf("read ack of %s: %w", msgID(rec.Id), err)
	}
	if !bytes.Equal(ack.Id, rec.Id) {
		return ackResult{}, fmt.Errorf("%w: ack for message %x while waiting for %s", ErrMalformed, ack.Id, msgID(rec.Id))
	}
	switch ack.Status {
	case pb.Ack_STATUS_STORED:
		return ackResult{update: update{rec: rec, state: pb.State_STATE_DELIVERED}}, nil
	case pb.Ack_STATUS_REJECTED:
		cause := fmt.Errorf("%w: %w", ErrRejected, reasonError(ack.Reason)).Error()
		if ack.Reason == pb.Ack_REASON_BAD_TIMESTAMP {
			s.clockRefused(str.Conn().RemotePeer(), rec)
		}
		return ackResult{update: update{rec: rec, state: pb.State_STATE_FAILED, cause: cause}}, nil
	case pb.Ack_STATUS_BUSY:
		after := min(time.Duration(ack.RetryAfterMs)*time.Millisecond, MaxRetryAfter)
		return ackResult{busy: &busyError{err: fmt.Errorf("%w: %w", ErrBusy, reasonError(ack.Reason)), after: after}}, nil
	default:
		return ackResult{}, fmt.Errorf("%w: unknown ack status %d", ErrMalformed, int32(ack.Status))
	}
}

// openError is a failure to open a stream to the recipient: no
// connection could be made (or the peer does not speak the protocol).
type openError struct{ err error }

func (e *openError) Error() string { return e.err.Error() }
func (e *openError) Unwrap() error { return e.err }

// waitReason says, from a failed delivery attempt to p, why its messages
// wait: one of the events.DMWait* reasons and a line for people.
func (s *Service) waitReason(p peer.ID, err error) (reason, detail string) {
	var oe *openError
	switch {
	case errors.Is(err, ErrBusy):
		return events.DMWaitBusy, "the recipient is busy and asked to retry later"
	case errors.As(err, &oe) && s.h.Network().Connectedness(p) == network.Connected:
		return events.DMWaitInterrupted, "the recipient is connected but did not accept direct messages; retrying"
	case errors.As(err, &oe):
		de := overlay.ClassifyDial(p, oe.err)
		if de.Kind == overlay.DialNoAddress {
			return events.DMWaitNoAddress, "no address of the recipient is known; it is sent when the recipient connects"
		}
		return events.DMWaitDialFailed, de.Error() + "; the recipient is probably offline, retrying"
	}
	return events.DMWaitInterrupted, "the connection broke before the recipient acknowledged; retrying"
}

// explain reports, after a failed attempt, why p's pending messages wait:
// a dm_status event with the message's unchanged state and the reason,
// for every pending message not yet told this reason. Messages no longer
// pending are forgotten, so the memory is bounded by the outbox.
func (s *Service) explain(p peer.ID, pending []*pb.OutboxRecord, err error) {
	reason, detail := s.waitReason(p, err)
	var tell []*pb.OutboxRecord
	s.mu.Lock()
	st := s.peers[p]
	if st == nil {
		s.mu.Unlock()
		return
	}
	told := make(map[string]string, len(pending))
	for _, rec := range pending {
		id := msgID(rec.Id)
		if st.told[id] != reason && !isFinal(rec.State) {
			tell = append(tell, rec)
		}
		told[id] = reason
	}
	st.told = told
	s.mu.Unlock()
	for _, rec := range tell {
		s.emit.Emit(events.DMStatus{ID: msgID(rec.Id), To: p, State: stateNames[rec.State], Reason: reason, Detail: detail})
	}
}
