package transfer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/fair"
	"github.com/parley-chat/parley/transfer/pb"
)

// sameFile fails with ErrFileChanged when the open file's size or
// modification time differ from what was hashed.
func sameFile(f *os.File, size, modTime int64) error {
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat source: %w", err)
	}
	if st.Size() != size || st.ModTime().UnixNano() != modTime {
		return fmt.Errorf("%w: %s", ErrFileChanged, f.Name())
	}
	return nil
}

// drop forgets a transfer that never started.
func (s *Service) drop(t *transfer) {
	s.mu.Lock()
	delete(s.transfers, t.id)
	if !t.state.Terminal() {
		t.state, t.err = StateFailed, errors.New("never started")
		close(t.done)
	}
	s.mu.Unlock()
	t.cancel()
	s.save(t)
}

// AddRemoteShare remembers a share announced by from in room, so that
// Fetch can pull it (also after a restart: announcements are stored), and
// reports it as a file_offer with the room. Shares that are malformed or
// over MaxFileSize are refused with an error. The most recent 1024
// announcements are kept.
//
// The same share announced again in the same room by another member (a
// member that fetched it and now serves it too; see swarm.go) adds that
// member to the share's holders, at most maxHolders, without another
// file_offer. An announcement of a known share id with another name,
// size or hash, or in another room, is refused (ErrConflict): the first
// announcement stands. Announcements of this node's own shares are
// ignored.
func (s *Service) AddRemoteShare(room string, from peer.ID, sh Share) error {
	rs, err := remoteRecord{ID: sh.ID, Name: sh.Name, Size: sh.Size, Hash: sh.Hash, From: from.String(), Room: room}.share(s.cfg.MaxFileSize)
	if err != nil {
		return err
	}
	rs.holders = []peer.ID{from}
	var dropped []string
	s.mu.Lock()
	if t, ok := s.transfers[rs.ID]; ok && t.dir == Send {
		s.mu.Unlock()
		return nil // our own share, announced again by a member that holds it
	}
	old, known := s.remote[rs.ID]
	if known {
		if old.Share != rs.Share || old.room != rs.room {
			s.mu.Unlock()
			return fmt.Errorf("%w: share %s announced again with other contents", ErrConflict, rs.ID)
		}
		added := addHolder(&old, from)
		s.remote[rs.ID] = old
		s.mu.Unlock()
		if added {
			s.saveRemote(old, nil, nil) // a new holder: no new offer
			s.log.Debug("transfer: share holder", "id", rs.ID, "peer", from, "holders", len(old.holders))
		}
		return nil
	}
	s.remoteOrder = append(s.remoteOrder, rs.ID)
	s.remote[rs.ID] = rs
	for len(s.remoteOrder) > maxRemoteShares {
		dropped = append(dropped, s.remoteOrder[0])
		delete(s.remote, s.remoteOrder[0])
		s.remoteOrder = s.remoteOrder[1:]
	}
	s.mu.Unlock()
	offer := events.FileOffer{TransferID: rs.ID, From: from, Name: rs.Name, Size: sh.Size, Room: room}
	s.saveRemote(rs, dropped, offer)
	s.emit.Emit(offer)
	return nil
}

// Fetch starts pulling a share announced with AddRemoteShare (by id or a
// unique prefix) from the peer that announced it. It returns once the
// transfer is set up; use Wait for the outcome. Fetching a share that is
// already being received resumes it.
func (s *Service) Fetch(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	rs, err := s.findRemote(id)
	if err != nil {
		return err
	}
	raw, _ := hex.DecodeString(rs.ID) // checked by AddRemoteShare
	t := newTransfer(s.ctx, raw)
	t.dir, t.peer, t.name, t.size, t.hash = Receive, rs.from, rs.Name, rs.Size, rs.hash
	t.room, t.share, t.state = rs.room, true, StateOffered
	s.mu.Lock()
	if old, ok := s.transfers[t.id]; ok {
		s.mu.Unlock()
		if old.dir == Receive && old.share {
			return s.Resume(old.id)
		}
		return fmt.Errorf("%w: %s", ErrDuplicate, t.id)
	}
	s.transfers[t.id] = t
	s.mu.Unlock()
	if err := s.accept(t); err != nil {
		s.drop(t)
		return fmt.Errorf("fetch %s: %w", t.id, err)
	}
	return nil
}

func (s *Service) findRemote(id string) (remoteShare, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rs, ok := s.remote[id]; ok {
		return rs, nil
	}
	var found []remoteShare
	if len(id) >= 4 {
		for k, rs := range s.remote {
			if len(k) >= len(id) && k[:len(id)] == id {
				found = append(found, rs)
			}
		}
	}
	switch len(found) {
	case 0:
		return remoteShare{}, fmt.Errorf("%w: no share %q", ErrNotFound, id)
	case 1:
		return found[0], nil
	}
	return remoteShare{}, fmt.Errorf("%w: %q", ErrAmbiguous, id)
}

// servable finds what a Get from peer, over conn, asks for: a transfer
// offered to that peer, or an upload of a share (created on first use,
// within the budgets of budget.go).
func (s *Service) servable(from peer.ID, conn network.Conn, raw []byte) (*transfer, *manifest, *pb.Status) {
	t := s.byRawID(raw)
	if t == nil || t.dir != Send {
		t = s.heldShare(raw) // a share this node fetched (swarm.go)
	}
	if t == nil || t.dir != Send {
		return nil, nil, &pb.Status{Code: pb.Code_NOT_FOUND}
	}
	known := !t.share || s.known(from)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case t.share && t.state == StateShared:
		key := uploadKey{t.id, from}
		if u, ok := s.uploads[key]; ok && !u.state.Terminal() {
			return u, t.man, nil
		}
		u := newTransfer(t.ctx, t.rawID)
		u.dir, u.share, u.peer, u.name, u.size, u.hash = Send, true, from, t.name, t.size, t.hash
		u.src, u.modTime, u.state = t.src, t.modTime, StateActive
		now := time.Now()
		u.stranger, u.idleSince = !known, now
		if !known {
			u.subnet, u.newcomer = fair.ConnSubnet(conn), s.newcomer(from)
		}
		if !s.uploadRoom(u, now) {
			u.cancel()
			s.budget.UploadsRefused++
			s.log.Debug("transfer: upload refused: budget full", "peer", from, "stranger", !known, "subnet", u.subnet, "newcomer", u.newcomer)
			return nil, nil, &pb.Status{Code: pb.Code_BUSY, Message: "too many uploads"}
		}
		s.uploads[key] = u
		return u, t.man, nil
	case t.share || t.peer != from:
		return nil, nil, &pb.Status{Code: pb.Code_NOT_FOUND}
	case t.state == StateCancelled:
		return nil, nil, &pb.Status{Code: pb.Code_CANCELLED}
	case t.state.Terminal() || t.man == nil:
		return nil, nil, &pb.Status{Code: pb.Code_NOT_FOUND, Message: string(t.state)}
	}
	return t, t.man, nil
}

// pruneUploads forgets finished uploads. s.mu must be held.
func (s *Service) pruneUploads() {
	for k, u := range s.uploads {
		if u.state.Terminal() {
			delete(s.uploads, k)
		}
	}
}

// serveSlot counts a Get stream served to p; false when p already has
// MaxPerPeer streams (plus one, for a reconnecting peer whose old stream
// has not timed out yet).
func (s *Service) serveSlot(p peer.ID) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.serving[p] > s.cfg.MaxPerPeer {
		return nil, false
	}
	s.serving[p]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.serving[p]--; s.serving[p] <= 0 {
			delete(s.serving, p)
		}
	}, true
}

// serve answers a pull stream: the manifest and chunks of each Get, until
// the recipient closes its side.
func (s *Service) serve(str network.Stream, br *bufio.Reader, from peer.ID, g *pb.Get) {
	t, man, status := s.servable(from, str.Conn(), g.GetId())
	if status != nil {
		s.reply(str, status)
		return
	}
	release, ok := s.serveSlot(from)
	if !ok {
		s.reply(str, &pb.Status{Code: pb.Code_BUSY, Message: "too many transfers at once"})
		return
	}
	defer release()
	stop := context.AfterFunc(t.ctx, func() { _ = str.Reset() })
	defer stop()
	s.mu.Lock()
	if t.state == StateOffered || t.state == StateQueued || t.state == StateWaiting {
		t.state = StateActive
	}
	t.serving++
	s.mu.Unlock()
	defer s.serveEnd(t)
	err := s.serveGets(str, br, t, man, g)
	if err != nil {
		s.log.Debug("transfer: serve", "id", t.id, "peer", from, "err", err)
		_ = str.Reset()
		return
	}
	_ = str.Close()
}

// sourceChanged answers a Get for t with FILE_CHANGED (with msg, when not
// empty) and fails t, unless it is an upload of a share; it returns err.
func (s *Service) sourceChanged(str network.Stream, t *transfer, err error, msg string) error {
	s.reply(str, &pb.Status{Code: pb.Code_FILE_CHANGED, Message: msg})
	if t.share {
		s.unhold(t.id, t.src)
	}
	if t.persistent() {
		s.finish(t, StateFailed, err, nil)
	}
	return err
}

// serveEnd marks a sending transfer waiting when its last stream ends
// before the recipient reported success.
func (s *Service) serveEnd(t *transfer) {
	s.mu.Lock()
	t.serving--
	if t.serving == 0 {
		t.idleSince = time.Now()
	}
	waiting := t.serving == 0 && t.state == StateActive
	if waiting {
		t.state = StateWaiting
		t.rate.reset()
	}
	s.mu.Unlock()
	if waiting {
		s.emitWaiting(t, nil)
	}
}

// serveGets sends what each Get asks for.
func (s *Service) serveGets(str network.Stream, br *bufio.Reader, t *transfer, man *manifest, g *pb.Get) error {
	f, err := os.Open(t.src)
	if errors.Is(err, fs.ErrNotExist) { // deleted since it was offered
		return s.sourceChanged(str, t, fmt.Errorf("%w: %s was deleted", ErrFileChanged, t.src), "the file was deleted")
	}
	if err != nil {
		s.reply(str, &pb.Status{Code: pb.Code_INTERNAL, Message: "cannot read the file"})
		return fmt.Errorf("open source: %w", err)
	}
	defer func() { _ = f.Close() }() // read only
	if err := sameFile(f, t.size, t.modTime); err != nil {
		return s.sourceChanged(str, t, err, "")
	}
	bufSize := chunkHeaderRoom + int(min(man.chunkSize, man.size))
	if err := str.Scope().ReserveMemory(sendDepth*bufSize, network.ReservationPriorityMedium); err != nil {
		s.reply(str, &pb.Status{Code: pb.Code_BUSY, Message: "out of memory for transfers"})
		return fmt.Errorf("reserve chunk buffers: %w", err)
	}
	defer str.Scope().ReleaseMemory(sendDepth * bufSize)
	bufs := make([][]byte, sendDepth)
	for i := range bufs {
		bufs[i] = make([]byte, bufSize)
	}
	var lastProgress time.Time
	for first := true; ; first = false {
		// A later Get on the same stream is mostly a recipient asking
		// again for chunks that failed verification: most likely the file
		// was written to meanwhile, which is said as such, not left to
		// end in VERIFY_FAILED. One fstat per Get.
		if !first {
			if err := sameFile(f, t.size, t.modTime); err != nil {
				return s.sourceChanged(str, t, err, "")
			}
		}
		ranges, err := validateGet(g, man.numChunks())
		if err != nil {
			s.reply(str, &pb.Status{Code: pb.Code_BAD_REQUEST})
			return err
		}
		if g.GetManifest() {
			if man.open {
				if man, err = s.commit(str, f, t, man); err != nil {
					return err
				}
			}
			_ = str.SetWriteDeadline(time.Now().Add(s.cfg.IdleTimeout))
			if err := writeFrame(str, &pb.Frame{Msg: &pb.Frame_Manifest{Manifest: man.toWire()}}); err != nil {
				return err
			}
		}
		// The recipient has every chunk it does not ask for.
		have := t.size
		for _, r := range ranges {
			for i := r.start; i < r.start+r.count; i++ {
				have -= man.chunkLen(i)
			}
		}
		sent := func(i int) {
			have += man.chunkLen(i)
			s.progress(t, have, &lastProgress, false)
		}
		if t.share {
			// An upload of a share: the fetcher pulls from every holder
			// (swarm.go) and asks each for a few chunks at a time, so what
			// one Get leaves out says nothing of what it has. Count what
			// this holder sent to it, over all its streams.
			sent = func(i int) { s.progressAdd(t, man.chunkLen(i), &lastProgress) }
		}
		if err := s.sendChunks(str, f, t, man, ranges, bufs, sent); err != nil {
			if errors.Is(err, ErrFileChanged) {
				return s.sourceChanged(str, t, err, "")
			}
			return err
		}
		_ = str.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		next, err := readFrame(br, s.cfg.MaxFrameSize)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if g = next.GetGet(); g == nil || !bytes.Equal(g.GetId(), t.rawID) {
			return fmt.Errorf("%w: expected a Get for the same transfer", ErrProtocol)
		}
	}
}

// commit answers a recipient that has every chunk of a transfer offered
// before it was hashed and asks for the sender's commitment: it completes
// t's open manifest (see manifest.commit), checks that the file is still
// the one offered, stores the complete manifest with t and returns it.
func (s *Service) commit(str network.Stream, f *os.File, t *transfer, open *manifest) (*manifest, error) {
	man, err := open.commit(t.ctx, f)
	if err == nil {
		err = sameFile(f, t.size, t.modTime)
	}
	switch {
	case errors.Is(err, ErrFileChanged):
		return nil, s.sourceChanged(str, t, err, "")
	case errors.Is(err, errDisk):
		s.reply(str, &pb.Status{Code: pb.Code_INTERNAL, Message: "cannot read the file"})
		return nil, err
	case err != nil:
		return nil, err
	}
	if h := s.cfg.hooks.commit; h != nil {
		h(t.id, man)
	}
	s.mu.Lock()
	adopted := t.man == open // else ended meanwhile, or committed by another stream
	if adopted {
		t.man, t.hash = man, man.hash
	}
	s.mu.Unlock()
	if adopted {
		if err := s.saveWithManifest(t); err != nil {
			s.log.Warn("transfer: store manifest", "id", t.id, "err", err)
		}
	}
	s.log.Debug("transfer: committed", "id", t.id, "peer", t.peer)
	return man, nil
}

// sendDepth is how many chunk buffers, and workers, a Get stream uses:
// one worker reads the next chunk from the file while another writes its
// chunk to the stream.
const sendDepth = 2

// fileChunk is a chunk read from the file, in a buffer with
// chunkHeaderRoom bytes free in front.
type fileChunk struct {
	index int
	buf   []byte
	hash  []byte // for an open manifest: the chunk's chaining value; else nil
}

// sendChunks writes the chunks of ranges in order, each as its header and
// data in one Write. One worker per buffer takes the next chunk, reads it
// from the file, waits for its turn and writes it: reading overlaps
// writing, and each chunk is written by the goroutine that read it, from a
// buffer still in its CPU's cache.
func (s *Service) sendChunks(str network.Stream, f *os.File, t *transfer, man *manifest, ranges []chunkRange, bufs [][]byte, sent func(int)) error {
	next := chunkIndices(ranges)
	var (
		mu       sync.Mutex // guards everything below
		turn     = sync.NewCond(&mu)
		assigned int // chunks handed to workers
		written  int // chunks written to the stream
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		turn.Broadcast()
		mu.Unlock()
	}
	for _, buf := range bufs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i, ok := next()
				seq := assigned
				assigned++
				stop := firstErr != nil
				mu.Unlock()
				if !ok || stop {
					return
				}
				n := man.chunkLen(i)
				data := buf[chunkHeaderRoom : chunkHeaderRoom+n]
				if _, err := f.ReadAt(data, int64(i)*man.chunkSize); err != nil {
					fail(fmt.Errorf("read chunk %d: %w: %w", i, errDisk, err))
					return
				}
				c := fileChunk{index: i, buf: buf}
				if man.open { // hash as we send, while data is in this CPU's cache
					cv := chunkCV(data, blake3Counter(i, man.chunkSize), man.numChunks() == 1)
					if err := man.note(i, cv); err != nil {
						fail(err)
						return
					}
					c.hash = cv[:]
				}
				mu.Lock()
				for written != seq && firstErr == nil {
					turn.Wait()
				}
				stop = firstErr != nil
				mu.Unlock()
				if stop {
					return
				}
				err := s.writeChunk(str, t, man, c)
				if err == nil {
					sent(i)
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				written++
				turn.Broadcast()
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if errors.Is(firstErr, errDisk) {
		s.reply(str, &pb.Status{Code: pb.Code_INTERNAL, Message: "cannot read the file"})
	}
	if firstErr == nil && t.ctx.Err() != nil {
		return t.ctx.Err()
	}
	return firstErr
}

// writeChunk writes chunk c's header in front of its data and both in one
// Write.
func (s *Service) writeChunk(str network.Stream, t *transfer, man *manifest, c fileChunk) error {
	n := int(man.chunkLen(c.index))
	data := c.buf[chunkHeaderRoom : chunkHeaderRoom+n]
	if h := s.cfg.hooks.beforeChunk; h != nil {
		if err := h(t.id, c.index, data); err != nil {
			return err
		}
	}
	var hdr [chunkHeaderRoom]byte
	h := appendChunkHeader(hdr[:0], uint32(c.index), uint32(n), c.hash) // #nosec G115 -- index < MaxChunks, n <= MaxChunkSize
	start := chunkHeaderRoom - len(h)
	copy(c.buf[start:], h)
	_ = str.SetWriteDeadline(time.Now().Add(s.cfg.IdleTimeout))
	if _, err := str.Write(c.buf[start : chunkHeaderRoom+n]); err != nil {
		return fmt.Errorf("write chunk %d: %w", c.index, err)
	}
	s.chunksSent.Add(1)
	return nil
}

// handleNotice applies a notice from a peer.
func (s *Service) handleNotice(from peer.ID, n *pb.Notice) *pb.Status {
	t := s.byRawID(n.GetId())
	if t == nil {
		return &pb.Status{Code: pb.Code_NOT_FOUND}
	}
	s.mu.Lock()
	hashing := t.state == StateHashing
	s.mu.Unlock()
	if hashing { // not offered yet: no peer knows it
		return &pb.Status{Code: pb.Code_NOT_FOUND}
	}
	if t.dir == Send && t.share {
		return s.uploadNotice(from, t, n)
	}
	if t.peer != from {
		return &pb.Status{Code: pb.Code_NOT_FOUND}
	}
	msg := truncate(n.GetMessage(), maxMessageLen)
	switch {
	case n.GetKind() == pb.Notice_CANCEL:
		s.finish(t, StateCancelled, fmt.Errorf("%w by peer", ErrCancelled), nil)
	case n.GetKind() == pb.Notice_RESUME && t.dir == Receive:
		s.start(t, true)
	case n.GetKind() == pb.Notice_REJECT && t.dir == Send:
		s.finish(t, StateRejected, remoteError(pb.Code_REJECTED, msg), nil)
	case n.GetKind() == pb.Notice_DONE && t.dir == Send:
		if !bytes.Equal(n.GetHash(), t.hash[:]) {
			s.finish(t, StateFailed, fmt.Errorf("%w: recipient verified a different hash", ErrProtocol), nil)
			return &pb.Status{Code: pb.Code_BAD_REQUEST}
		}
		s.finish(t, StateDone, nil, nil)
	case n.GetKind() == pb.Notice_FAILED && t.dir == Send:
		s.finish(t, StateFailed, remoteError(n.GetCode(), msg), nil)
	default:
		return &pb.Status{Code: pb.Code_BAD_REQUEST}
	}
	return &pb.Status{Code: pb.Code_OK}
}

// uploadNotice applies DONE or FAILED from a peer that fetched a share.
func (s *Service) uploadNotice(from peer.ID, share *transfer, n *pb.Notice) *pb.Status {
	s.mu.Lock()
	u := s.uploads[uploadKey{share.id, from}]
	s.mu.Unlock()
	if u == nil {
		return &pb.Status{Code: pb.Code_NOT_FOUND}
	}
	switch n.GetKind() {
	case pb.Notice_DONE:
		if !bytes.Equal(n.GetHash(), u.hash[:]) {
			return &pb.Status{Code: pb.Code_BAD_REQUEST}
		}
		s.finish(u, StateDone, nil, nil)
	case pb.Notice_FAILED:
		s.finish(u, StateFailed, remoteError(n.GetCode(), truncate(n.GetMessage(), maxMessageLen)), nil)
	case pb.Notice_CANCEL:
		s.finish(u, StateCancelled, fmt.Errorf("%w by peer", ErrCancelled), nil)
	default:
		return &pb.Status{Code: pb.Code_BAD_REQUEST}
	}
	return &pb.Status{Code: pb.Code_OK}
}

// cancelUploads ends the uploads of a share.
func (s *Service) cancelUploads(id string) {
	s.mu.Lock()
	var us []*transfer
	for k, u := range s.uploads {
		if k.id == id {
			us = append(us, u)
		}
	}
	s.mu.Unlock()
	for _, u := range us {
		s.finish(u, StateCancelled, fmt.Errorf("%w by this node", ErrCancelled), nil)
	}
}

// deliver sends t's pending notice. Any answer means the peer has it; the
// notice stays pending (for the next connection) only when the exchange
// fails.
func (s *Service) deliver(t *transfer) error {
	s.mu.Lock()
	n := t.notice
	s.mu.Unlock()
	if n == nil {
		return nil
	}
	st, err := s.exchange(s.ctx, t.peer, &pb.Frame{Msg: &pb.Frame_Notice{Notice: n}})
	if err != nil {
		return fmt.Errorf("deliver %s notice: %w", n.GetKind(), err)
	}
	if st.GetCode() != pb.Code_OK {
		s.log.Debug("transfer: notice answered", "id", t.id, "kind", n.GetKind(), "code", st.GetCode())
	}
	s.mu.Lock()
	if t.notice == n {
		t.notice = nil
	}
	s.mu.Unlock()
	s.save(t)
	return nil
}

func (s *Service) deliverAsync(t *transfer) {
	if t.peer == "" {
		return
	}
	s.goSafe(func() {
		if err := s.deliver(t); err != nil {
			s.log.Debug("transfer: notice will be retried on reconnect", "id", t.id, "err", err)
		}
	})
}
