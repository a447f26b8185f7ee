package transfer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/fair"
	"github.com/parley-chat/parley/transfer/pb"
	"github.com/parley-chat/parley/transfer/safename"
)

// bitmapFlushInterval is how often a receiving transfer stores its
// verified-chunk bitmap while chunks arrive; it is also stored whenever a
// batch of chunks ends or fails. Each store is an fsync of the database,
// which would slow a fast transfer if frequent, and a crash loses nothing
// by it: after a restart the part file is checked against the manifest.
const bitmapFlushInterval = 30 * time.Second

// maxChunkFrame bounds the frames read between chunks: a Chunk header or a
// Status.
const maxChunkFrame = 1024

// handleOffer records an offer from a peer, which came over conn, and
// answers it. v2 tells that the offer came on protocol ID: only then may
// it leave out the hash.
func (s *Service) handleOffer(from peer.ID, conn network.Conn, o *pb.Offer, v2 bool) *pb.Status {
	name, chunkSize, refusal := s.checkOffer(o, v2)
	if refusal != nil {
		return refusal
	}
	t := newTransfer(s.ctx, bytes.Clone(o.GetId()))
	// #nosec G115 -- checkOffer refused sizes over MaxFileSize (at most MaxSize, 64 GiB)
	t.dir, t.peer, t.name, t.size, t.state = Receive, from, name, int64(o.GetSize()), StateOffered
	copy(t.hash[:], o.GetHash())
	if chunkSize != 0 { // hash-as-you-send: the hash comes at the end
		t.man = newOpenManifest(t.size, chunkSize)
		t.man.sent = nil
	}
	if !s.known(from) {
		t.stranger, t.subnet, t.newcomer = true, fair.ConnSubnet(conn), s.newcomer(from)
	}
	if err := s.checkSpace(t); err != nil {
		return &pb.Status{Code: pb.Code_NO_SPACE, Message: "not enough free disk space"}
	}
	s.mu.Lock()
	if _, dup := s.transfers[t.id]; dup {
		s.mu.Unlock()
		return &pb.Status{Code: pb.Code_DUPLICATE}
	}
	if !s.offerRoom(t) {
		s.budget.OffersRefused++
		s.mu.Unlock()
		s.log.Debug("transfer: offer refused: budget full", "peer", from, "stranger", t.stranger, "subnet", t.subnet, "newcomer", t.newcomer)
		return &pb.Status{Code: pb.Code_BUSY, Message: "too many offers waiting for an answer"}
	}
	s.transfers[t.id] = t
	s.mu.Unlock()
	offer := events.FileOffer{TransferID: t.id, From: from, Name: t.name, Size: t.size}
	s.saveWith(t, offer)
	s.log.Debug("transfer: offer", "id", t.id, "peer", from, "size", t.size)
	s.emit.Emit(offer)
	if s.cfg.AutoAccept == nil || !s.cfg.AutoAccept(from, t.size) {
		return &pb.Status{Code: pb.Code_OK}
	}
	if err := s.accept(t); err != nil {
		s.finish(t, StateFailed, err, nil)
		return &pb.Status{Code: errorCode(err), Message: "could not accept"}
	}
	return &pb.Status{Code: pb.Code_ACCEPTED}
}

// checkOffer validates an offer's fields and returns the safe file name
// and, for an offer without a hash (only valid when v2), its chunk size;
// or the refusal to send back.
func (s *Service) checkOffer(o *pb.Offer, v2 bool) (string, int64, *pb.Status) {
	hashed := len(o.GetHash()) == HashSize
	if len(o.GetId()) != idLen || len(o.GetName()) > maxNameLen || (!hashed && (!v2 || len(o.GetHash()) != 0)) {
		return "", 0, &pb.Status{Code: pb.Code_BAD_REQUEST, Message: "malformed offer"}
	}
	if o.GetSize() > uint64(s.cfg.MaxFileSize) { // #nosec G115 -- MaxFileSize is positive (Config defaults)
		return "", 0, &pb.Status{Code: pb.Code_TOO_LARGE, Message: fmt.Sprintf("limit is %d bytes", s.cfg.MaxFileSize)}
	}
	var chunkSize int64
	if !hashed {
		// #nosec G115 -- size is at most MaxFileSize (checked above)
		if chunkSize = int64(o.GetChunkSize()); !validLayout(int64(o.GetSize()), chunkSize) {
			return "", 0, &pb.Status{Code: pb.Code_BAD_REQUEST, Message: "bad chunk size"}
		}
	}
	name, err := safename.Sanitize(o.GetName())
	if err != nil {
		return "", 0, &pb.Status{Code: pb.Code_BAD_NAME, Message: "unusable file name"}
	}
	return name, chunkSize, nil
}

// Accept accepts an offer: the file starts moving into the downloads dir.
// It fails with ErrNoSpace when the file no longer fits.
func (s *Service) Accept(id string) error {
	t, err := s.resolve(id)
	if err != nil {
		return err
	}
	if t.dir != Receive {
		return fmt.Errorf("%w: transfer %s is not incoming", ErrState, t.id)
	}
	return s.accept(t)
}

func (s *Service) accept(t *transfer) error {
	s.mu.Lock()
	st := t.state
	s.mu.Unlock()
	if st != StateOffered {
		return fmt.Errorf("%w: transfer %s is %s", ErrState, t.id, st)
	}
	if err := s.checkSpace(t); err != nil {
		return err
	}
	part, final, err := s.createPart(t.name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if t.state != StateOffered {
		s.mu.Unlock()
		s.removePart(part)
		return fmt.Errorf("%w: transfer %s is %s", ErrState, t.id, t.state)
	}
	t.part, t.final, t.state = part, final, StateQueued
	s.mu.Unlock()
	s.save(t)
	s.start(t, false)
	return nil
}

// Reject declines an offer and tells the sender.
func (s *Service) Reject(id string) error {
	t, err := s.resolve(id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	st := t.state
	s.mu.Unlock()
	if t.dir != Receive || st != StateOffered {
		return fmt.Errorf("%w: transfer %s is not an offer waiting for an answer", ErrState, t.id)
	}
	n := &pb.Notice{Id: t.rawID, Kind: pb.Notice_REJECT, Code: pb.Code_REJECTED}
	if !s.finish(t, StateRejected, fmt.Errorf("%w by this node", ErrRejected), n) {
		return fmt.Errorf("%w: transfer %s already ended", ErrState, t.id)
	}
	s.deliverAsync(t)
	return nil
}

// start runs a receiving transfer unless it is running, ended or not
// accepted yet. kick wakes a running one that waits between attempts.
func (s *Service) start(t *transfer, kick bool) {
	s.mu.Lock()
	if s.closed || t.dir != Receive || t.state.Terminal() || t.state == StateOffered {
		s.mu.Unlock()
		return
	}
	if t.running {
		s.mu.Unlock()
		if kick {
			select {
			case t.kick <- struct{}{}:
			default:
			}
		}
		return
	}
	t.running = true
	s.wg.Add(1)
	s.mu.Unlock()
	go s.run(t)
}

// run owns a receiving transfer: it pulls the missing chunks, retrying with
// backoff after transient errors while the peer stays connected, and parks
// (returns, leaving the transfer waiting) when the peer is gone or
// attempts run out; onConnected and Resume start it again.
func (s *Service) run(t *transfer) {
	defer s.wg.Done()
	defer s.runExit(t)
	attempts := 0
	for {
		progressed, err := s.pull(t)
		switch {
		case err == nil, t.ctx.Err() != nil:
			return
		case errors.Is(err, ErrCancelled):
			s.finish(t, StateCancelled, err, nil)
			return
		case errors.Is(err, ErrNotFound):
			s.finish(t, StateFailed, err, nil)
			return
		case permanent(err):
			n := &pb.Notice{Id: t.rawID, Kind: pb.Notice_FAILED, Code: errorCode(err), Message: truncate(err.Error(), maxMessageLen)}
			s.finish(t, StateFailed, err, n)
			s.deliverAsync(t)
			return
		}
		if progressed {
			attempts = 0
		}
		attempts++
		s.setWaiting(t, err)
		s.log.Debug("transfer: attempt failed", "id", t.id, "peer", t.peer, "attempt", attempts, "err", err)
		if attempts >= s.cfg.MaxAttempts || errors.Is(err, errDisk) || !s.reachable(t) {
			return
		}
		delay := min(s.cfg.RetryBackoff<<min(attempts-1, 16), maxRetryBackoff)
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-t.kick:
			timer.Stop()
		case <-t.ctx.Done():
			timer.Stop()
			return
		}
	}
}

// runExit releases t from its runner; it removes the part file of a
// transfer that failed or was cancelled meanwhile, and restarts t when a
// kick arrived after the runner decided to stop.
func (s *Service) runExit(t *transfer) {
	s.mu.Lock()
	t.running = false
	part := ""
	if t.state.Terminal() && t.state != StateDone {
		part, t.part = t.part, ""
	}
	restart := false
	select {
	case <-t.kick:
		restart = !t.state.Terminal()
	default:
	}
	s.mu.Unlock()
	if part != "" {
		s.removePart(part)
	}
	if restart {
		s.start(t, false)
	}
}

// permanent reports whether err ends a receiving transfer.
func permanent(err error) bool {
	for _, e := range []error{ErrVerify, ErrBadManifest, ErrFileChanged, ErrTooLarge,
		ErrRejected, ErrBadName, ErrDuplicate} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (s *Service) setWaiting(t *transfer, err error) {
	s.mu.Lock()
	changed := !t.state.Terminal() && t.state != StateWaiting
	if !t.state.Terminal() {
		t.state = StateWaiting
		t.lastErr = err.Error()
		t.rate.reset()
	}
	s.mu.Unlock()
	if changed {
		s.emitWaiting(t, err)
	}
}

func (s *Service) setState(t *transfer, st State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !t.state.Terminal() {
		t.state = st
	}
}

// acquire takes one of the per-peer receive slots, waiting as queued.
func (s *Service) acquire(ctx context.Context, t *transfer) (release func(), err error) {
	s.mu.Lock()
	sem, ok := s.slots[t.peer]
	if !ok {
		sem = make(chan struct{}, s.cfg.MaxPerPeer)
		s.slots[t.peer] = sem
	}
	s.mu.Unlock()
	select {
	case sem <- struct{}{}:
	default:
		s.setState(t, StateQueued)
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s.setState(t, StateActive)
	return func() { <-sem }, nil
}

// puller is one attempt of a receiving transfer over one stream.
type puller struct {
	s            *Service
	t            *transfer
	str          network.Stream
	br           *bufio.Reader
	f            *os.File
	man          *manifest
	bm           bitmap
	done         int64 // verified bytes
	verified     int   // chunks verified in this attempt
	lastFlush    time.Time
	lastProgress time.Time
	// onChunk, when set, records each received chunk instead of take (a
	// swarm worker: swarm.go).
	onChunk func(i int, n int64, ok bool) error
	// guard, when set, runs each write of a piece of chunk i to the part
	// file, or skips it (a swarm worker: another holder's copy of the
	// chunk may have been verified and written meanwhile).
	guard func(i int, write func() error) error
}

// pull makes one attempt: it fetches the manifest if needed, then every
// missing chunk, and finally puts the file in place. progressed reports
// whether any chunk was verified.
func (s *Service) pull(t *transfer) (progressed bool, err error) {
	release, err := s.acquire(t.ctx, t)
	if err != nil {
		return false, err
	}
	defer release()
	if s.placedEarlier(t) {
		s.complete(t)
		return true, nil
	}
	f, err := s.openPart(t)
	if err != nil {
		return false, err
	}
	// finalize syncs the part file and checks that error; an unfinished
	// part file is checked against the manifest again on the next pull.
	defer func() { _ = f.Close() }()
	if t.share {
		return s.pullShare(t, f)
	}
	str, err := s.host.NewStream(t.ctx, t.peer, ID)
	if err != nil {
		if errors.Is(err, network.ErrLimitedConn) {
			return false, fmt.Errorf("waiting for a direct connection: %w", err)
		}
		return false, fmt.Errorf("open stream: %w", err)
	}
	stop := context.AfterFunc(t.ctx, func() { _ = str.Reset() })
	defer stop()
	if err := str.Scope().SetService(ServiceName); err != nil {
		_ = str.Reset()
		return false, fmt.Errorf("attach stream: %w", err)
	}
	p := &puller{s: s, t: t, str: str, br: bufio.NewReaderSize(str, recvBufioSize), f: f}
	err = p.run()
	if err != nil {
		_ = str.Reset()
		return p.verified > 0, err
	}
	_ = str.Close()
	return true, s.finalize(t, f)
}

func (p *puller) run() error {
	s, t := p.s, p.t
	s.mu.Lock()
	p.man = t.man
	s.mu.Unlock()
	if p.man == nil {
		if err := p.fetchManifest(); err != nil {
			return err
		}
	}
	if err := p.loadBitmap(); err != nil {
		return err
	}
	if err := p.fetchMissing(); err != nil {
		return err
	}
	if p.man.open {
		return p.commit(p.bm)
	}
	return nil
}

// fetchMissing asks for the missing chunks until every chunk is verified.
func (p *puller) fetchMissing() error {
	s, t := p.s, p.t
	n := p.man.numChunks()
	if p.bm.count() == n {
		return nil
	}
	bufSize := int(min(recvBuf, p.man.size))
	if err := p.str.Scope().ReserveMemory(bufSize, network.ReservationPriorityMedium); err != nil {
		return fmt.Errorf("reserve receive buffer: %w", err)
	}
	defer p.str.Scope().ReleaseMemory(bufSize)
	buf := make([]byte, bufSize)
	for {
		missing := p.bm.missing(n)
		if len(missing) == 0 {
			break
		}
		if err := p.send(&pb.Get{Id: t.rawID, Ranges: wireRanges(missing)}); err != nil {
			return err
		}
		if err := p.batch(missing, buf); err != nil {
			if ferr := p.flush(); ferr != nil {
				s.log.Warn("transfer: store bitmap", "id", t.id, "err", ferr)
			}
			return err
		}
	}
	return nil
}

// Receive buffer sizes. A chunk is not held whole: it streams through a
// buffer of recvBuf bytes, in which each piece read from the stream is
// hashed straight away, while it is still in the CPU's cache, and written
// to the part file writeBatch bytes at a time (still in cache: the buffer
// is small). recvBuf leaves room
// for at least minRead bytes per Read next to the up to subtreeBuf bytes
// kept back for the chunk's last hash group. The bufio.Reader in front of
// the stream is small, so that reads of chunk data bypass it: it holds
// only what arrives with a chunk header.
const (
	recvBuf       = 256 << 10
	minRead       = 64 << 10
	recvBufioSize = 4 << 10
	// writeBatch is how many bytes of a chunk the receive loop gathers in
	// its buffer before it writes them to the part file: a stream Read
	// returns what has arrived (about 70 KiB at a time over QUIC), and one
	// pwrite per Read made 15 system calls per MiB where 5 do.
	writeBatch = recvBuf - minRead
)

// batch receives the chunks of one Get, in order, on the calling
// goroutine. When reading fails, the chunks received before stay verified
// and written.
func (p *puller) batch(want []chunkRange, buf []byte) error {
	next := chunkIndices(want)
	for {
		i, ok := next()
		if !ok {
			return nil
		}
		if err := p.t.ctx.Err(); err != nil {
			return err
		}
		if err := p.recvChunk(i, buf); err != nil {
			if cerr := p.t.ctx.Err(); cerr != nil {
				return cerr // the stream was reset because t ended
			}
			return err
		}
	}
}

// chunkIndices returns an iterator over the chunk indices of rs.
func chunkIndices(rs []chunkRange) func() (int, bool) {
	r, i := 0, 0
	return func() (int, bool) {
		for r < len(rs) && i >= rs[r].count {
			r, i = r+1, 0
		}
		if r == len(rs) {
			return 0, false
		}
		i++
		return rs[r].start + i - 1, true
	}
}

// recvChunk receives chunk i: its header, then its data, which goes
// piece by piece through buf into the part file and the chunk's hash (see
// recvBuf). A header for another chunk, or for more (or fewer) bytes than
// the manifest declares, cuts the sender off, as does a stream that ends
// within the chunk.
func (p *puller) recvChunk(i int, buf []byte) error {
	off := int64(i) * p.man.chunkSize
	n, ok, err := p.readChunk(i, buf, func(piece []byte, at int64) error {
		write := func() error { return p.s.writePart(p.f, i, piece, off+at) }
		if p.guard != nil {
			return p.guard(i, write)
		}
		return write()
	})
	if err != nil {
		return err
	}
	return p.take(i, n, ok)
}

// writePart writes piece, bytes of chunk i, to the part file f at off.
func (s *Service) writePart(f *os.File, i int, piece []byte, off int64) error {
	if hook := s.cfg.hooks.writePart; hook != nil {
		if err := hook(off); err != nil {
			return fmt.Errorf("%w: write chunk %d: %w", errDisk, i, err)
		}
	}
	if _, err := f.WriteAt(piece, off); err != nil {
		return fmt.Errorf("%w: write chunk %d: %w", errDisk, i, err)
	}
	return nil
}

// readChunk reads chunk i's header and bytes from the stream through buf,
// passing the bytes to write as streamChunk does, and reports the chunk's
// length and whether it matched its expected hash.
func (p *puller) readChunk(i int, buf []byte, write func(piece []byte, at int64) error) (int64, bool, error) {
	_ = p.str.SetReadDeadline(time.Now().Add(p.s.cfg.IdleTimeout))
	f, err := readFrame(p.br, maxChunkFrame)
	if err != nil {
		return 0, false, fmt.Errorf("read chunk %d header: %w", i, err)
	}
	if st := f.GetStatus(); st != nil {
		return 0, false, remoteError(st.GetCode(), st.GetMessage())
	}
	c := f.GetChunk()
	want := p.man.chunkLen(i)
	switch {
	case c == nil:
		return 0, false, fmt.Errorf("%w: expected chunk %d", ErrProtocol, i)
	case int(c.GetIndex()) != i:
		return 0, false, fmt.Errorf("%w: got chunk %d, expected %d", ErrProtocol, c.GetIndex(), i)
	case int64(c.GetLength()) != want:
		return 0, false, fmt.Errorf("%w: chunk %d of %d bytes, expected %d", ErrProtocol, i, c.GetLength(), want)
	case p.man.open && len(c.GetHash()) != HashSize:
		return 0, false, fmt.Errorf("%w: chunk %d without its hash", ErrProtocol, i)
	}
	// The hash the chunk must match: the sender's, sent with it, until
	// the sender commits to a manifest; then the manifest's.
	expect := p.man.chunkHash(i)
	if p.man.open {
		expect = c.GetHash()
	}
	h := subtreeHasher{counter: blake3Counter(i, p.man.chunkSize)}
	tail, err := streamChunk(p.br, buf, want, &h, write)
	switch {
	case errors.Is(err, errDisk):
		return 0, false, err
	case err != nil:
		return 0, false, fmt.Errorf("read chunk %d: %w", i, err)
	}
	sum := h.sum(tail, p.man.numChunks() == 1)
	ok := bytes.Equal(sum[:], expect)
	if ok && p.man.open { // kept (and stored with the bitmap) for the commitment
		copy(p.man.cvs[i*HashSize:], sum[:])
	}
	return want, ok, nil
}

// streamChunk reads the n bytes of a chunk from r through buf: it adds
// each piece to h as it arrives, all but the chunk's last hash group,
// which it returns (a slice of buf) for h.sum, and passes the bytes to
// write, with their offset in the chunk, once writeBatch bytes are
// pending, before buf is compacted, and at the chunk's end: in order,
// each byte once. buf must hold the whole chunk or be at least
// minRead+subtreeBuf bytes. write's error is returned as it is; a stream
// that ends early gives io.ErrUnexpectedEOF (bytes read but not yet
// written are then dropped: the chunk is not verified and is fetched
// again).
func streamChunk(r io.Reader, buf []byte, n int64, h *subtreeHasher, write func(piece []byte, at int64) error) ([]byte, error) {
	// buf[start:end] has been read but not hashed yet: at most subtreeBuf
	// bytes after each step, the chunk's last group among them once all is
	// read. buf[written:end] has been read but not written yet.
	start, end, written := 0, 0, 0
	flush := func(got int64) error {
		if written == end {
			return nil
		}
		err := write(buf[written:end], got-int64(end-written))
		written = end
		return err
	}
	for got := int64(0); got < n; {
		if len(buf)-end < minRead && start > 0 {
			if err := flush(got); err != nil {
				return nil, err
			}
			end = copy(buf, buf[start:end])
			start, written = 0, end
		}
		m, err := r.Read(buf[end : end+int(min(int64(len(buf)-end), n-got))])
		if m > 0 {
			end += m
			got += int64(m)
			if end-written >= writeBatch || got == n {
				if werr := flush(got); werr != nil {
					return nil, werr
				}
			}
		}
		for end-start > subtreeBuf {
			h.group((*[subtreeBuf]byte)(buf[start:]))
			start += subtreeBuf
		}
		if err != nil && got < n {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return buf[start:end], nil
}

// take records chunk i of n bytes, now in the part file, as verified when
// it matched the manifest. A chunk that did not match stays missing (its
// bytes in the part file count for nothing), to be fetched again by the
// next Get, at most ChunkRetries times; then the transfer fails.
func (p *puller) take(i int, n int64, ok bool) error {
	if p.onChunk != nil {
		return p.onChunk(i, n, ok)
	}
	s, t := p.s, p.t
	if !ok {
		if t.bad == nil {
			t.bad = make(map[int]int)
		}
		t.bad[i]++
		s.log.Warn("transfer: chunk failed verification", "id", t.id, "peer", t.peer, "chunk", i, "times", t.bad[i])
		if t.bad[i] > s.cfg.ChunkRetries {
			return fmt.Errorf("%w: chunk %d, %d times", ErrVerify, i, t.bad[i])
		}
		return nil
	}
	p.bm.set(i)
	p.done += n
	p.verified++
	if time.Since(p.lastFlush) >= bitmapFlushInterval {
		if err := p.flush(); err != nil {
			return err
		}
	}
	s.progress(t, p.done, &p.lastProgress, false)
	return nil
}

func (p *puller) send(g *pb.Get) error {
	_ = p.str.SetWriteDeadline(time.Now().Add(p.s.cfg.IdleTimeout))
	return writeFrame(p.str, &pb.Frame{Msg: &pb.Frame_Get{Get: g}})
}

// fetchManifest asks for the manifest and checks it against the offer.
func (p *puller) fetchManifest() error {
	s, t := p.s, p.t
	if err := p.send(&pb.Get{Id: t.rawID, Manifest: true}); err != nil {
		return err
	}
	_ = p.str.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
	f, err := readFrame(p.br, s.cfg.MaxFrameSize)
	if err != nil {
		return fmt.Errorf("read manifest: %w", err)
	}
	if st := f.GetStatus(); st != nil {
		return remoteError(st.GetCode(), st.GetMessage())
	}
	w := f.GetManifest()
	if w == nil {
		return fmt.Errorf("%w: expected a manifest", ErrProtocol)
	}
	m, err := manifestFromWire(w)
	if err != nil {
		return err
	}
	if err := m.check(t.size, t.hash); err != nil {
		return err
	}
	s.mu.Lock()
	t.man = m
	s.mu.Unlock()
	if err := s.saveWithManifest(t); err != nil {
		return fmt.Errorf("%w: %w", errDisk, err)
	}
	p.man = m
	return nil
}

// commit asks the sender of a transfer offered before it was hashed for
// its commitment: the complete manifest. It must hold together (its chunk
// hashes combine into its hash) and agree with the hash every verified
// chunk came with, also those received before a restart of either side
// (stored with the bitmap); then its hash is the file's, and t's manifest
// is complete. The recipient asks once every chunk is verified, or on
// resuming after a restart that left chunks in the part file it has no
// hash for (see loadBitmap).
func (p *puller) commit(verified bitmap) error {
	s, t := p.s, p.t
	if err := p.flush(); err != nil {
		return err
	}
	if err := p.send(&pb.Get{Id: t.rawID, Manifest: true}); err != nil {
		return err
	}
	// A sender that restarted hashes the chunks it sent before it stopped
	// before it answers: allow for that at a slow 64 MiB/s.
	_ = p.str.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout + time.Duration(t.size>>26)*time.Second))
	f, err := readFrame(p.br, s.cfg.MaxFrameSize)
	if err != nil {
		return fmt.Errorf("read commitment: %w", err)
	}
	if st := f.GetStatus(); st != nil {
		return remoteError(st.GetCode(), st.GetMessage())
	}
	w := f.GetManifest()
	if w == nil {
		return fmt.Errorf("%w: expected the sender's manifest", ErrProtocol)
	}
	m, err := manifestFromWire(w)
	if err != nil {
		return err
	}
	if err := m.check(t.size, m.hash); err != nil {
		return err
	}
	if err := p.man.matchCommitment(m, verified); err != nil {
		return err
	}
	s.mu.Lock()
	ended := t.state.Terminal()
	if !ended {
		t.man, t.hash = m, m.hash
	}
	s.mu.Unlock()
	if ended {
		return fmt.Errorf("%w: transfer %s ended", ErrState, t.id)
	}
	if err := s.saveWithManifest(t); err != nil {
		return fmt.Errorf("%w: %w", errDisk, err)
	}
	p.man = m
	return nil
}

// loadBitmap takes the transfer's bitmap. The first time in this process
// it loads the stored bitmap and checks it against the part file: chunks
// whose bytes no longer verify are cleared (a crash may lose writes), and
// chunks written after the last bitmap flush that do verify are set, so a
// restart fetches again only what is really missing.
func (p *puller) loadBitmap() error {
	s, t := p.s, p.t
	n := p.man.numChunks()
	if t.bm == nil {
		bm, err := s.loadBitmap(t.id, n)
		if err != nil {
			return fmt.Errorf("%w: %w", errDisk, err)
		}
		unrecorded, err := p.unrecorded(bm)
		if err != nil {
			return err
		}
		if unrecorded {
			// Chunks were written after the last bitmap flush (a crash):
			// with no hash to check them against, ask for the sender's
			// commitment now rather than fetch them again.
			if err := p.commit(bm); err != nil {
				return err
			}
		}
		if err := p.recheck(bm); err != nil {
			return err
		}
		t.bm = bm
	}
	p.bm = t.bm
	for i := range n {
		if p.bm.has(i) {
			p.done += p.man.chunkLen(i)
		}
	}
	s.mu.Lock()
	t.bytes = p.done
	s.mu.Unlock()
	return nil
}

// unrecorded reports whether the part file of a transfer with an open
// manifest holds whole chunks that are not in bm.
func (p *puller) unrecorded(bm bitmap) (bool, error) {
	if !p.man.open {
		return false, nil
	}
	st, err := p.f.Stat()
	if err != nil {
		return false, fmt.Errorf("%w: stat part file: %w", errDisk, err)
	}
	for i := range p.man.numChunks() {
		end := int64(i)*p.man.chunkSize + p.man.chunkLen(i)
		if end > st.Size() {
			break
		}
		if !bm.has(i) {
			return true, nil
		}
	}
	return false, nil
}

// recheck verifies every chunk that lies within the part file against the
// manifest and sets bm to the result.
func (p *puller) recheck(bm bitmap) error {
	st, err := p.f.Stat()
	if err != nil {
		return fmt.Errorf("%w: stat part file: %w", errDisk, err)
	}
	if st.Size() == 0 && bm.count() == 0 {
		return nil
	}
	buf := make([]byte, p.man.chunkSize)
	lost, found := 0, 0
	for i := range p.man.numChunks() {
		off := int64(i) * p.man.chunkSize
		if p.man.open && !bm.has(i) { // no hash to check it against: fetch it again
			continue
		}
		if off+p.man.chunkLen(i) > st.Size() {
			if bm.has(i) {
				bm.clear(i)
				lost++
			}
			continue
		}
		if err := p.t.ctx.Err(); err != nil {
			return err
		}
		data := buf[:p.man.chunkLen(i)]
		if _, err := p.f.ReadAt(data, off); err != nil {
			return fmt.Errorf("%w: recheck chunk %d: %w", errDisk, i, err)
		}
		ok := p.man.verifyChunk(i, data)
		switch {
		case ok && !bm.has(i):
			bm.set(i)
			found++
		case !ok && bm.has(i):
			bm.clear(i)
			lost++
		}
	}
	if lost > 0 || found > 0 {
		p.s.log.Info("transfer: part file checked", "id", p.t.id, "lost", lost, "found", found)
	}
	return nil
}

// flush stores the bitmap.
func (p *puller) flush() error {
	p.lastFlush = time.Now()
	if p.bm == nil {
		return nil
	}
	var cvs []byte
	if p.man != nil && p.man.open {
		cvs = p.man.cvs
	}
	if err := p.s.saveBitmap(p.t.id, p.bm, cvs); err != nil {
		return fmt.Errorf("%w: %w", errDisk, err)
	}
	return nil
}

// finalize makes the verified part file durable, links it under its final
// name (never replacing a file), and reports success to both sides.
func (s *Service) finalize(t *transfer, f *os.File) error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%w: sync part file: %w", errDisk, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%w: close part file: %w", errDisk, err)
	}
	final, err := s.placeFinal(t)
	if err != nil {
		return err
	}
	s.log.Debug("transfer: file in place", "id", t.id, "name", final)
	s.hold(t, final)
	s.complete(t)
	return nil
}

// complete tells the sender that t's file is in place, then records t as
// done. A DONE notice the sender did not get is stored and delivered when
// it reconnects.
func (s *Service) complete(t *transfer) {
	n := &pb.Notice{Id: t.rawID, Kind: pb.Notice_DONE, Hash: t.hash[:]}
	if _, err := s.exchange(s.ctx, t.peer, &pb.Frame{Msg: &pb.Frame_Notice{Notice: n}}); err != nil {
		s.log.Debug("transfer: tell sender; will retry on reconnect", "id", t.id, "err", err)
		s.finish(t, StateDone, nil, n)
		return
	}
	s.finish(t, StateDone, nil, nil)
}
