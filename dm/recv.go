package dm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/dm/pb"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/internal/fair"
	"github.com/parley-chat/parley/internal/pbframe"
)

// inboundMemory is what one inbound stream reserves from the resource
// manager: a frame buffer and the stream's read buffer.
const (
	readBufSize   = 4 << 10
	inboundMemory = MaxFrameSize + readBufSize
)

// handle serves one inbound stream: up to MaxMessagesPerStream Message
// frames, each answered by an Ack. The sender is the stream's remote peer.
func (s *Service) handle(str network.Stream) {
	p := str.Conn().RemotePeer()
	subnet := fair.ConnSubnet(str.Conn())
	if ok, closed := s.acquire(p); !ok {
		if closed {
			_ = str.Reset()
			return
		}
		s.ctr.tooManyStreams.Add(1)
		s.log.Debug("dm: too many streams, resetting", "peer", p)
		_ = str.ResetWithError(network.StreamResourceLimitExceeded)
		return
	}
	defer s.release(p)
	if err := str.Scope().SetService(ServiceName); err != nil {
		s.ctr.streamErrors.Add(1)
		s.log.Debug("dm: attach stream to service", "peer", p, "err", err)
		_ = str.ResetWithError(network.StreamResourceLimitExceeded)
		return
	}
	if err := str.Scope().ReserveMemory(inboundMemory, network.ReservationPriorityAlways); err != nil {
		s.ctr.streamErrors.Add(1)
		s.log.Debug("dm: reserve stream memory", "peer", p, "err", err)
		_ = str.ResetWithError(network.StreamResourceLimitExceeded)
		return
	}
	defer str.Scope().ReleaseMemory(inboundMemory)
	defer context.AfterFunc(s.ctx, func() { _ = str.Reset() })()

	br := bufio.NewReaderSize(str, readBufSize)
	var busy *pb.Ack // the first busy answer on this stream
	refused := 0     // busy answers on this stream
	for range MaxMessagesPerStream {
		if err := str.SetReadDeadline(time.Now().Add(s.cfg.StreamTimeout)); err != nil {
			s.ctr.streamErrors.Add(1)
			_ = str.Reset()
			return
		}
		var m pb.Message
		err := pbframe.Read(br, MaxFrameSize, &m)
		if errors.Is(err, io.EOF) {
			_ = str.Close()
			return
		}
		if err != nil {
			s.readFailed(p, str, err)
			return
		}
		var ack *pb.Ack
		if busy != nil {
			// Once busy, stay busy on this stream: storing a later
			// message would overtake the refused one.
			ack = &pb.Ack{Id: m.Id, Status: pb.Ack_STATUS_BUSY, Reason: busy.Reason}
			s.ctr.rateLimited.Add(1)
		} else if ack, err = s.accept(p, subnet, &m); err != nil {
			s.readFailed(p, str, err)
			return
		}
		if ack.Status == pb.Ack_STATUS_BUSY {
			busy = ack
			refused++
			ack.RetryAfterMs = s.retryAfter(p, ack.Reason, refused)
		}
		if h := s.cfg.hooks; h != nil && h.dropAck != nil && h.dropAck(m.Id) {
			_ = str.Reset()
			return
		}
		if err := str.SetWriteDeadline(time.Now().Add(s.cfg.StreamTimeout)); err != nil {
			s.ctr.streamErrors.Add(1)
			_ = str.Reset()
			return
		}
		if err := pbframe.Write(str, ack); err != nil {
			s.ctr.streamErrors.Add(1)
			s.log.Debug("dm: write ack", "peer", p, "err", err)
			_ = str.Reset()
			return
		}
	}
	_ = str.Close()
}

// readFailed counts a bad or failed inbound frame and resets the stream.
func (s *Service) readFailed(p peer.ID, str network.Stream, err error) {
	code := network.StreamProtocolViolation
	switch {
	case errors.Is(err, ErrFrameTooLarge):
		s.ctr.oversize.Add(1)
	case errors.Is(err, ErrMalformed):
		s.ctr.malformed.Add(1)
	case isTimeout(err):
		s.ctr.timeouts.Add(1)
	default:
		s.ctr.streamErrors.Add(1)
		code = network.StreamNoError
	}
	s.log.Debug("dm: bad inbound stream, resetting", "peer", p, "err", err)
	_ = str.ResetWithError(code)
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// acquire admits one more inbound stream from p, within the per-peer and
// total caps. Admitted streams are counted in wg so Close waits for them.
func (s *Service) acquire(p peer.ID) (ok, closed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, true
	}
	if s.inbound[p] >= s.cfg.MaxStreamsPerPeer || s.inTotal >= s.cfg.MaxInboundStreams {
		return false, false
	}
	s.inbound[p]++
	s.inTotal++
	s.wg.Add(1)
	return true, false
}

func (s *Service) release(p peer.ID) {
	s.mu.Lock()
	if s.inbound[p]--; s.inbound[p] <= 0 {
		delete(s.inbound, p)
	}
	s.inTotal--
	s.mu.Unlock()
	s.wg.Done()
}

// inboundStreams returns how many inbound streams from p are open.
func (s *Service) inboundStreams(p peer.ID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inbound[p]
}

// allow takes one token from p's rate limiter.
func (s *Service) allow(p peer.ID) bool {
	s.mu.Lock()
	lim, ok := s.limiters[p]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(s.cfg.PeerRate), s.cfg.PeerBurst)
		s.limiters[p] = lim
	}
	s.mu.Unlock()
	return lim.Allow()
}

// retryAfter is the wait a busy ack asks for, in milliseconds: for a rate
// limit, until p's bucket holds a token for each of the refused messages
// of the stream, so a sender that waits it out gets them all accepted;
// for a storage failure, StorageRetryAfter; for a stranger whose stored
// messages are at their quota, MaxRetryAfter. At most MaxRetryAfter.
func (s *Service) retryAfter(p peer.ID, reason pb.Ack_Reason, refused int) uint32 {
	d := StorageRetryAfter
	if reason == pb.Ack_REASON_STORAGE && !s.known(p) && s.overQuota(p) {
		d = MaxRetryAfter
	}
	if reason == pb.Ack_REASON_RATE_LIMITED {
		s.mu.Lock()
		lim := s.limiters[p]
		s.mu.Unlock()
		need := float64(refused)
		if lim != nil {
			need -= lim.Tokens()
		}
		d = time.Duration(math.Ceil(need / s.cfg.PeerRate * float64(time.Second)))
	}
	d = min(max(d, time.Millisecond), MaxRetryAfter)
	return uint32(d.Milliseconds()) // #nosec G115 -- at most MaxRetryAfter (60 s)
}

// pruneLimiters forgets the limiters of peers without open streams whose
// bucket has refilled: they are equal to a new one.
func (s *Service) pruneLimiters() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, lim := range s.limiters {
		if s.inbound[p] == 0 && lim.Tokens() >= float64(s.cfg.PeerBurst) {
			delete(s.limiters, p)
		}
	}
}

// accept checks, stores and reports one received message and returns the
// ack to send. An error means the frame breaks the protocol and the
// stream must be reset.
func (s *Service) accept(p peer.ID, subnet string, m *pb.Message) (*pb.Ack, error) {
	if len(m.Id) != IDLen {
		return nil, fmt.Errorf("%w: message id of %d bytes, want %d", ErrMalformed, len(m.Id), IDLen)
	}
	ack := &pb.Ack{Id: m.Id}
	if !s.allow(p) {
		s.ctr.rateLimited.Add(1)
		ack.Status, ack.Reason = pb.Ack_STATUS_BUSY, pb.Ack_REASON_RATE_LIMITED
		return ack, nil
	}
	now := time.Now()
	if reason := s.check(m, now); reason != pb.Ack_REASON_UNSPECIFIED {
		s.ctr.rejected.Add(1)
		s.log.Debug("dm: rejecting message", "peer", p, "id", msgID(m.Id), "reason", reason)
		if sent := time.UnixMilli(m.SentAtMs); reason == pb.Ack_REASON_BAD_TIMESTAMP && sent.After(now.Add(s.cfg.MaxClockSkew)) {
			s.clockFuture(p, sent, now)
		}
		ack.Status, ack.Reason = pb.Ack_STATUS_REJECTED, reason
		return ack, nil
	}
	release, ok := s.reserveInbox(p, subnet, m, now)
	if !ok && !s.stored(p, m.Id) {
		s.ctr.overQuota.Add(1)
		s.log.Debug("dm: stranger's stored messages at quota, busy", "peer", p, "id", msgID(m.Id))
		ack.Status, ack.Reason = pb.Ack_STATUS_BUSY, pb.Ack_REASON_STORAGE
		return ack, nil
	}
	dup, err := s.storeInbox(p, m, now)
	if release != nil && (err != nil || dup) {
		release()
	}
	if err != nil {
		s.ctr.storageErrors.Add(1)
		s.log.Warn("dm: storing a received message failed", "peer", p, "err", err)
		ack.Status, ack.Reason = pb.Ack_STATUS_BUSY, pb.Ack_REASON_STORAGE
		return ack, nil
	}
	ack.Status = pb.Ack_STATUS_STORED
	if dup {
		s.ctr.duplicates.Add(1)
		s.log.Debug("dm: duplicate message acknowledged again", "peer", p, "id", msgID(m.Id))
		return ack, nil
	}
	s.ctr.received.Add(1)
	s.emit.Emit(events.DM{
		ID: msgID(m.Id), From: p, Nick: m.Nick, Text: m.Text,
		SentAt: time.UnixMilli(m.SentAtMs).UTC(),
	})
	return ack, nil
}

// check applies the recipient's rules to a decoded message and returns the
// reason to reject it, or REASON_UNSPECIFIED when it is acceptable.
func (s *Service) check(m *pb.Message, now time.Time) pb.Ack_Reason {
	switch {
	case m.Text == "":
		return pb.Ack_REASON_EMPTY_TEXT
	case len(m.Text) > MaxTextBytes:
		return pb.Ack_REASON_TEXT_TOO_LONG
	case !utf8.ValidString(m.Text) || !utf8.ValidString(m.Nick):
		// Unreachable over the wire (proto3 refuses invalid UTF-8 in a
		// string field, and the stream is reset); kept as a guard for
		// messages built in-process. PROTOCOL.md: reason 3 is reserved.
		return pb.Ack_REASON_INVALID_UTF8
	case m.Nick != "" && identity.ValidateNick(m.Nick) != nil:
		return pb.Ack_REASON_INVALID_NICK
	}
	sent := time.UnixMilli(m.SentAtMs)
	if m.SentAtMs <= 0 || sent.After(now.Add(s.cfg.MaxClockSkew)) || sent.Before(now.Add(-s.cfg.MaxMessageAge)) {
		return pb.Ack_REASON_BAD_TIMESTAMP
	}
	return pb.Ack_REASON_UNSPECIFIED
}
