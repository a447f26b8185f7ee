package transfer

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/transfer/pb"
)

// Swarming. A share fetched from a room (Fetch) is pulled from every
// member that holds it, in parallel, chunk by chunk. Any holder is safe:
// a share's manifest must combine into the hash of the signed
// announcement, and every chunk must match its manifest hash before it
// counts.
//
// Holders are the sharer and the members that announced the same share
// (same id, name, size and hash) again in the same room: a member whose
// fetch is in place serves the file from its downloads dir while the file
// stays as it was (size and modification time; a changed or deleted file
// is answered FILE_CHANGED and no longer served), also after a restart
// (held.go), and Config.Held asks the node to announce it. The wire protocol is unchanged: a holder
// answers Gets for the share id exactly as the sharer does.
//
// One attempt (pullShare) asks the first holder that answers for the
// manifest, then runs one worker per holder, at most maxSwarm, each on a
// pull stream of its own. A worker takes the next batch of chunks that
// nobody has verified or asked for, up to swarmDepth Gets ahead, so its
// holder's uplink never idles. A worker whose holder goes away releases
// its outstanding chunks, which the others take: a holder leaving costs
// only its share of the speed. A holder that sends a chunk that does not
// match is a liar: it is cut off and dropped for the rest of the
// transfer, and its chunks are fetched from the others; once every holder
// is dropped the transfer fails with ErrVerify.
//
// Endgame: once every missing chunk is asked for, a worker with nothing
// left to do asks its holder for a chunk that a slow holder still owes (one
// that has verified no chunk for endgameAfter; each chunk once more at
// most, one at a time per worker), so that a slow, trickling or stalled
// holder cannot hold up the end of the fetch. That copy is read
// into memory and verified before it is written; the first verified copy
// of a chunk is the one in the part file: pieces of the other copy that
// arrive later are not written (swarm.wmu orders the writes).

// Swarm limits.
const (
	// maxHolders bounds the holders remembered per announced share: the
	// sharer and the most recent others.
	maxHolders = 16
	// maxSwarm bounds the holders one fetch pulls from at once.
	maxSwarm = 8
	// swarmDepth is how many Gets a worker keeps in flight.
	swarmDepth = 2
	// maxBatch bounds the chunks of one Get of a worker.
	maxBatch = 8
	// endgameSlow: in the endgame a holder counts as slow once it has
	// verified no chunk for endgameSlow times the swarm's time per chunk
	// and holder so far, and at least endgameMin (endgameFirst before
	// any chunk was verified).
	endgameSlow  = 4
	endgameMin   = 500 * time.Millisecond
	endgameFirst = 2 * time.Second
)

// errLiar marks a holder that sent a chunk that failed verification.
var errLiar = fmt.Errorf("%w: holder sent a chunk that does not match the manifest", ErrVerify)

// addHolder adds p to rs's holders, keeping the sharer and the most
// recent others; false when p was there already.
func addHolder(rs *remoteShare, p peer.ID) bool {
	if slices.Contains(rs.holders, p) {
		return false
	}
	if len(rs.holders) >= maxHolders {
		rs.holders = slices.Delete(rs.holders, 1, 2)
	}
	rs.holders = append(rs.holders, p)
	return true
}

// holdersOf returns the holders to pull share fetch t from, the sharer
// first: the announced ones, except this node and the liars t dropped.
func (s *Service) holdersOf(t *transfer) []peer.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := []peer.ID{t.peer}
	if rs, ok := s.remote[t.id]; ok {
		all = append(all, rs.holders...)
	}
	out := make([]peer.ID, 0, len(all))
	for _, p := range all {
		if p != s.host.ID() && !t.liars[p] && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// ShareHolders returns the peers announced to hold the share id (an id
// or a unique prefix, as for Fetch), the sharer first; a fetch pulls from
// each of them that is connected.
func (s *Service) ShareHolders(id string) ([]peer.ID, error) {
	rs, err := s.findRemote(id)
	if err != nil {
		return nil, err
	}
	return slices.Clone(rs.holders), nil
}

// holds reports whether p is an announced holder of share fetch t. s.mu
// must be held.
func (s *Service) holds(t *transfer, p peer.ID) bool {
	rs, ok := s.remote[t.id]
	return ok && t.share && t.dir == Receive && slices.Contains(rs.holders, p) && !t.liars[p]
}

// reachable reports whether a receiving transfer has a peer to pull from
// that is connected: its sender, or for a share any holder.
func (s *Service) reachable(t *transfer) bool {
	hs := []peer.ID{t.peer}
	if t.share {
		hs = s.holdersOf(t)
	}
	for _, p := range hs {
		if s.host.Network().Connectedness(p) == network.Connected {
			return true
		}
	}
	return false
}

// dropLiar drops holder p from share fetch t for good.
func (s *Service) dropLiar(t *transfer, p peer.ID) {
	s.mu.Lock()
	if t.liars == nil {
		t.liars = make(map[peer.ID]bool)
	}
	t.liars[p] = true
	s.mu.Unlock()
	s.log.Warn("transfer: holder dropped: it sent a chunk that failed verification", "id", t.id, "peer", p)
}

// hold starts serving share fetch t, now in place as final in the
// downloads dir, and tells Config.Held.
func (s *Service) hold(t *transfer, final string) {
	if !t.share || t.dir != Receive {
		return
	}
	s.mu.Lock()
	man := t.man
	s.mu.Unlock()
	fi, err := s.root.Stat(final)
	if err != nil || man == nil || man.open {
		s.log.Debug("transfer: fetched share not served", "id", t.id, "err", err)
		return
	}
	h := newTransfer(s.ctx, t.rawID)
	h.dir, h.share, h.name, h.size, h.hash, h.room = Send, true, t.name, t.size, t.hash, t.room
	h.src, h.modTime, h.man, h.state = filepath.Join(s.dir, final), fi.ModTime().UnixNano(), man, StateShared
	close(h.ready)
	s.addHeld(h, final)
	s.log.Debug("transfer: serving a fetched share", "id", h.id, "room", h.room)
	if s.cfg.Held != nil {
		s.cfg.Held(h.room, Share{ID: h.id, Name: h.name, Size: h.size, Hash: hex.EncodeToString(h.hash[:])})
	}
}

// heldShare returns the fetched share this node serves under wire id raw,
// or nil.
func (s *Service) heldShare(raw []byte) *transfer {
	if len(raw) != idLen {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held[hex.EncodeToString(raw)]
}

// unhold stops serving a fetched share whose file at src changed or went.
func (s *Service) unhold(id, src string) {
	s.mu.Lock()
	h := s.held[id]
	if h != nil && h.src == src {
		delete(s.held, id)
	} else {
		h = nil
	}
	s.mu.Unlock()
	if h != nil {
		h.cancel()
		s.deleteHeld(id)
		s.log.Info("transfer: fetched share no longer served: the file changed", "id", id)
	}
}

// swarm is one attempt of a share fetch: the state its workers share.
type swarm struct {
	s   *Service
	t   *transfer
	f   *os.File
	man *manifest
	// dialCtx bounds opening streams to holders; allIn ends it once every
	// chunk is verified.
	dialCtx context.Context
	allIn   context.CancelFunc

	// wmu orders the writes to the part file: a worker streaming a chunk
	// holds it shared for each piece (and writes only while the chunk is
	// not verified), an endgame copy holds it alone.
	wmu sync.RWMutex

	mu       sync.Mutex            // guards everything below
	bm       bitmap                // verified chunks (t.bm)
	taken    []bool                // asked for from some holder, not verified yet
	owner    []peer.ID             // the holder each taken chunk was asked of
	dup      []bool                // asked for again, in the endgame
	started  time.Time             // the workers' start
	lastFrom map[peer.ID]time.Time // per holder: its start, then its last verified chunk
	// owed counts per holder the chunks its worker asked for and still
	// reads (queued Gets, an endgame copy), and conns are the workers'
	// streams: once every chunk is in, the streams of workers still
	// reading (copies of chunks verified from another holder) are reset.
	owed         map[peer.ID]int
	conns        map[peer.ID]*holderConn
	missing      int             // chunks not verified
	asked        int             // chunks taken
	next         int             // where take looks first
	done         int64           // verified bytes
	verified     int             // chunks verified in this attempt
	active       int             // workers with an open stream
	workers      int             // workers not ended
	served       map[peer.ID]int // chunks verified per holder
	changed      chan struct{}   // closed when chunks are released or all are in
	lastFlush    time.Time
	lastProgress time.Time
}

// holderConn is a pull stream to one holder.
type holderConn struct {
	p    peer.ID
	pul  *puller
	stop func() bool // undoes the reset at the transfer's end
}

// close ends hc's stream: reset, unless it ended cleanly.
func (hc *holderConn) close(clean bool) {
	hc.stop()
	if clean {
		_ = hc.pul.str.Close()
		return
	}
	_ = hc.pul.str.Reset()
}

// pullShare is pull's attempt for a share fetch, with the part file f
// open: the manifest from the first holder that answers, then the missing
// chunks from every holder at once.
func (s *Service) pullShare(t *transfer, f *os.File) (progressed bool, err error) {
	holders := s.holdersOf(t)
	if len(holders) == 0 {
		return false, fmt.Errorf("share %s: every holder was dropped: %w", t.id, errLiar)
	}
	// Connected holders first: the manifest comes from the first that
	// answers, and a dial to one that left can take long.
	slices.SortStableFunc(holders, func(a, b peer.ID) int {
		return cmpBool(s.host.Network().Connectedness(b) == network.Connected, s.host.Network().Connectedness(a) == network.Connected)
	})
	sw := &swarm{s: s, t: t, f: f, served: make(map[peer.ID]int), changed: make(chan struct{}),
		lastFrom: make(map[peer.ID]time.Time), owed: make(map[peer.ID]int), conns: make(map[peer.ID]*holderConn)}
	// Dials still under way when every chunk is in are called off.
	var cancelDials context.CancelFunc
	sw.dialCtx, cancelDials = context.WithCancel(t.ctx)
	defer cancelDials()
	sw.allIn = cancelDials
	s.mu.Lock()
	sw.man = t.man
	s.mu.Unlock()
	var (
		first *holderConn
		errs  []error
	)
	if sw.man == nil {
		for _, h := range holders {
			hc, err := sw.open(h)
			if err == nil {
				if err = hc.pul.fetchManifest(); err == nil {
					first, sw.man = hc, hc.pul.man
					break
				}
				hc.close(false)
				if errors.Is(err, ErrBadManifest) {
					s.dropLiar(t, h)
				}
			}
			errs = append(errs, fmt.Errorf("holder %s: %w", h, err))
		}
		if sw.man == nil {
			return false, attemptError(errs)
		}
	}
	base := &puller{s: s, t: t, f: f, man: sw.man}
	if err := base.loadBitmap(); err != nil {
		if first != nil {
			first.close(false)
		}
		return false, err
	}
	n := sw.man.numChunks()
	sw.bm, sw.done, sw.taken = base.bm, base.done, make([]bool, n)
	sw.owner, sw.dup = make([]peer.ID, n), make([]bool, n)
	sw.missing = n - sw.bm.count()
	if sw.missing > 0 {
		errs = append(errs, sw.run(holders, first)...)
	} else if first != nil {
		first.close(true)
	}
	if ferr := sw.flush(); ferr != nil {
		s.log.Warn("transfer: store bitmap", "id", t.id, "err", ferr)
	}
	s.log.Debug("transfer: swarm attempt", "id", t.id, "holders", len(holders), "served", len(sw.served), "missing", sw.missing)
	if sw.missing > 0 {
		if err := t.ctx.Err(); err != nil {
			return sw.verified > 0, err
		}
		return sw.verified > 0, attemptError(errs)
	}
	return true, s.finalize(t, f)
}

// attemptError picks the error an attempt that did not complete returns:
// one that a later attempt may overcome (another holder was only
// unreachable) before one that ends the transfer.
func attemptError(errs []error) error {
	if len(errs) == 0 {
		return errors.New("no holder to fetch from")
	}
	for _, err := range errs {
		if !permanent(err) && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrCancelled) {
			return err
		}
	}
	return errs[0]
}

// run pulls the missing chunks from holders (first already has a stream
// open, or is nil), one worker each, and returns the workers' errors.
func (sw *swarm) run(holders []peer.ID, first *holderConn) []error {
	if len(holders) > maxSwarm {
		holders = holders[:maxSwarm]
	}
	if first != nil && !slices.Contains(holders, first.p) {
		first.close(true)
		first = nil
	}
	errs := make([]error, len(holders))
	sw.mu.Lock()
	sw.workers = len(holders)
	sw.started = time.Now()
	for _, h := range holders {
		sw.lastFrom[h] = sw.started
	}
	sw.mu.Unlock()
	var wg sync.WaitGroup
	for k, h := range holders {
		var hc *holderConn
		if first != nil && first.p == h {
			hc = first
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := sw.work(h, hc)
			sw.mu.Lock()
			sw.workers--
			sw.mu.Unlock()
			if errors.Is(err, errLiar) {
				sw.s.dropLiar(sw.t, h)
			}
			if err != nil {
				errs[k] = fmt.Errorf("holder %s: %w", h, err)
			}
		}()
	}
	wg.Wait()
	return slices.DeleteFunc(errs, func(err error) bool { return err == nil })
}

// open opens a pull stream to holder h.
func (sw *swarm) open(h peer.ID) (*holderConn, error) {
	s, t := sw.s, sw.t
	str, err := s.host.NewStream(sw.dialCtx, h, ID)
	if err != nil {
		if errors.Is(err, network.ErrLimitedConn) {
			return nil, fmt.Errorf("waiting for a direct connection: %w", err)
		}
		return nil, fmt.Errorf("open stream: %w", err)
	}
	if err := str.Scope().SetService(ServiceName); err != nil {
		_ = str.Reset()
		return nil, fmt.Errorf("attach stream: %w", err)
	}
	p := &puller{s: s, t: t, str: str, br: bufio.NewReaderSize(str, recvBufioSize), f: sw.f, man: sw.man}
	stop := context.AfterFunc(t.ctx, func() { _ = str.Reset() })
	return &holderConn{p: h, pul: p, stop: stop}, nil
}

// work pulls chunks from holder h until every chunk is verified (nil) or
// the holder fails (its error). Its outstanding chunks are released for
// the other workers whatever happens.
func (sw *swarm) work(h peer.ID, hc *holderConn) (err error) {
	t := sw.t
	if hc == nil {
		if hc, err = sw.open(h); err != nil {
			return err
		}
	}
	p := hc.pul
	p.man = sw.man
	p.onChunk = func(i int, n int64, ok bool) error { return sw.chunk(h, i, n, ok) }
	p.guard = sw.guard
	sw.mu.Lock()
	sw.conns[h] = hc
	sw.mu.Unlock()
	bufSize := int(min(recvBuf, sw.man.size))
	if err := p.str.Scope().ReserveMemory(bufSize, network.ReservationPriorityMedium); err != nil {
		hc.close(false)
		return fmt.Errorf("reserve receive buffer: %w", err)
	}
	defer p.str.Scope().ReleaseMemory(bufSize)
	buf := make([]byte, bufSize)
	sw.setActive(+1)
	defer sw.setActive(-1)
	var queue [][]int // chunks asked for, per Get, in order
	defer func() {
		sw.release(queue)
		sw.mu.Lock()
		delete(sw.owed, h)
		delete(sw.conns, h)
		sw.mu.Unlock()
		hc.close(err == nil)
	}()
	for {
		for len(queue) < swarmDepth {
			b := sw.take(h)
			if len(b) == 0 {
				break
			}
			queue = append(queue, b)
			sw.owe(h, len(b))
			if err := p.send(&pb.Get{Id: t.rawID, Ranges: wireRanges(rangesOf(b))}); err != nil {
				return err
			}
		}
		if len(queue) == 0 {
			complete, wait := sw.idle()
			if complete {
				return nil
			}
			i, ok, recheck := sw.takeDup(h, time.Now())
			if ok {
				if err := sw.endgame(h, p, i, buf); err != nil {
					return err
				}
				continue
			}
			tm := time.NewTimer(recheck)
			select {
			case <-wait:
			case <-tm.C:
			case <-t.ctx.Done():
				tm.Stop()
				return t.ctx.Err()
			}
			tm.Stop()
			continue
		}
		for _, i := range queue[0] {
			if err := t.ctx.Err(); err != nil {
				return err
			}
			if err := p.recvChunk(i, buf); err != nil {
				if cerr := t.ctx.Err(); cerr != nil {
					return cerr
				}
				return err
			}
			sw.owe(h, -1)
		}
		queue = queue[1:]
	}
}

// guard runs write, a piece of chunk i, unless the chunk is verified
// already (an endgame copy from another holder came first).
func (sw *swarm) guard(i int, write func() error) error {
	sw.wmu.RLock()
	defer sw.wmu.RUnlock()
	if sw.verifiedChunk(i) {
		return nil
	}
	return write()
}

// verifiedChunk reports whether chunk i is verified.
func (sw *swarm) verifiedChunk(i int) bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.bm.has(i)
}

// takeDup picks, in the endgame, a chunk that a slow holder other than h
// was asked for and that nobody asked for twice. Otherwise it returns
// when to look again.
func (sw *swarm) takeDup(h peer.ID, now time.Time) (int, bool, time.Duration) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	slow := endgameFirst
	if sw.verified > 0 {
		per := now.Sub(sw.started) * time.Duration(max(1, sw.workers)) / time.Duration(sw.verified)
		slow = max(endgameMin, endgameSlow*per)
	}
	if sw.asked < sw.missing {
		return 0, false, slow // chunks left that nobody was asked for
	}
	for i, tk := range sw.taken {
		if !tk || sw.dup[i] || sw.bm.has(i) {
			continue
		}
		if o := sw.owner[i]; o != h && now.Sub(sw.lastFrom[o]) > slow {
			sw.dup[i] = true
			return i, true, 0
		}
	}
	return 0, false, slow / 2
}

// endgame fetches chunk i from h (through p) a second time: into memory,
// verified, then written unless the first copy was verified meanwhile.
func (sw *swarm) endgame(h peer.ID, p *puller, i int, buf []byte) error {
	n := p.man.chunkLen(i)
	scope := p.str.Scope()
	if err := scope.ReserveMemory(int(n), network.ReservationPriorityLow); err != nil {
		return nil // no memory for a second copy: the first one it is (dup stays set)
	}
	defer scope.ReleaseMemory(int(n))
	whole := make([]byte, n)
	sw.owe(h, 1)
	defer sw.owe(h, -1)
	if err := p.send(&pb.Get{Id: sw.t.rawID, Ranges: wireRanges([]chunkRange{{i, 1}})}); err != nil {
		sw.undup(i)
		return err
	}
	_, ok, err := p.readChunk(i, buf, func(piece []byte, at int64) error {
		copy(whole[at:], piece)
		return nil
	})
	if err != nil {
		sw.undup(i)
		return err
	}
	if !ok {
		sw.undup(i)
		return fmt.Errorf("chunk %d: %w", i, errLiar)
	}
	return sw.install(h, i, whole)
}

// owe counts d more (or fewer) chunks that h's worker reads.
func (sw *swarm) owe(h peer.ID, d int) {
	sw.mu.Lock()
	sw.owed[h] += d
	sw.mu.Unlock()
}

// undup lets chunk i be asked for a second time again.
func (sw *swarm) undup(i int) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.dup[i] = false
	sw.notify()
}

// install writes the verified endgame copy data of chunk i from h to the
// part file and records it, unless the first copy was verified first.
func (sw *swarm) install(h peer.ID, i int, data []byte) error {
	sw.wmu.Lock()
	defer sw.wmu.Unlock()
	if sw.verifiedChunk(i) {
		return nil
	}
	if err := sw.s.writePart(sw.f, i, data, int64(i)*sw.man.chunkSize); err != nil {
		return err
	}
	return sw.chunk(h, i, int64(len(data)), true)
}

// take reserves the next batch of chunks nobody has verified or asked
// for, in ascending order; none when every missing chunk is asked for. A
// batch is enough chunks to keep a stream busy, and few enough that the
// chunks left spread over the holders (it shrinks to one chunk towards
// the end, so that the holders finish together) and a holder that leaves
// strands little: at most maxBatch, and at most the chunks not asked for
// over 2*swarmDepth per worker.
func (sw *swarm) take(h peer.ID) []int {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	n := len(sw.taken)
	k := max(1, min(maxBatch, (sw.missing-sw.asked)/(2*swarmDepth*max(1, sw.workers))))
	var out []int
	for j := 0; j < n && len(out) < k; j++ {
		i := (sw.next + j) % n
		if sw.bm.has(i) || sw.taken[i] {
			if len(out) > 0 {
				break // keep a batch contiguous
			}
			continue
		}
		sw.taken[i] = true
		sw.owner[i] = h
		sw.asked++
		out = append(out, i)
	}
	if len(out) > 0 {
		sw.next = (out[len(out)-1] + 1) % n
	}
	slices.Sort(out)
	return out
}

// release gives the unverified chunks of queue back to the other workers.
func (sw *swarm) release(queue [][]int) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	n := 0
	for _, b := range queue {
		for _, i := range b {
			if !sw.bm.has(i) && sw.taken[i] {
				sw.taken[i] = false
				sw.asked--
				n++
			}
		}
	}
	if n > 0 {
		sw.notify()
	}
}

// idle reports whether every chunk is verified, and otherwise returns a
// channel closed when there may be chunks to take.
func (sw *swarm) idle() (bool, <-chan struct{}) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.missing == 0, sw.changed
}

// notify wakes the idle workers. sw.mu must be held.
func (sw *swarm) notify() {
	close(sw.changed)
	sw.changed = make(chan struct{})
}

// setActive counts a worker with an open stream in or out and reports
// the number in t's progress.
func (sw *swarm) setActive(d int) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.active += d
	sw.s.mu.Lock()
	sw.t.holders = sw.active
	sw.s.mu.Unlock()
}

// chunk records chunk i of n bytes from holder h: verified when ok, else
// h is a liar.
func (sw *swarm) chunk(h peer.ID, i int, n int64, ok bool) error {
	if !ok {
		return fmt.Errorf("chunk %d: %w", i, errLiar)
	}
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.bm.has(i) {
		return nil
	}
	sw.bm.set(i)
	if sw.taken[i] {
		sw.taken[i] = false
		sw.asked--
	}
	sw.missing--
	sw.done += n
	sw.verified++
	sw.served[h]++
	sw.lastFrom[h] = time.Now()
	if sw.missing == 0 {
		sw.notify()
		sw.allIn()
		for o, n := range sw.owed {
			if hc := sw.conns[o]; n > 0 && hc != nil && o != h {
				_ = hc.pul.str.Reset() // it still sends copies of verified chunks
			}
		}
	}
	if time.Since(sw.lastFlush) >= bitmapFlushInterval {
		if err := sw.flushLocked(); err != nil {
			return err
		}
	}
	sw.s.progress(sw.t, sw.done, &sw.lastProgress, false)
	return nil
}

func (sw *swarm) flush() error {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.flushLocked()
}

// flushLocked stores the bitmap. sw.mu must be held.
func (sw *swarm) flushLocked() error {
	sw.lastFlush = time.Now()
	if sw.bm == nil {
		return nil
	}
	if err := sw.s.saveBitmap(sw.t.id, sw.bm, nil); err != nil {
		return fmt.Errorf("%w: %w", errDisk, err)
	}
	return nil
}

// cmpBool orders false before true.
func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// rangesOf turns ascending chunk indices into ranges.
func rangesOf(idx []int) []chunkRange {
	var out []chunkRange
	for _, i := range idx {
		if k := len(out) - 1; k >= 0 && out[k].start+out[k].count == i {
			out[k].count++
			continue
		}
		out = append(out, chunkRange{i, 1})
	}
	return out
}
