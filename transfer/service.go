package transfer

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/transfer/pb"
)

// Service sends and receives files over /parley/file/2.0.0 (and
// /parley/file/1.0.0 with older peers). Create it with
// New; Close stops it. All methods are safe for concurrent use.
type Service struct {
	cfg  Config
	host host.Host
	db   *bolt.DB
	log  *slog.Logger
	emit events.Emitter
	root *os.Root // the downloads dir
	dir  string   // absolute downloads dir

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sub    event.Subscription

	// free returns the free bytes on the file system of a directory.
	free func(dir string) (uint64, error)
	// chunksSent counts chunks written to Get streams (for tests).
	chunksSent atomic.Int64

	mu          sync.Mutex
	closed      bool                      // guarded by mu
	transfers   map[string]*transfer      // by id; guarded by mu
	uploads     map[uploadKey]*transfer   // share uploads; guarded by mu
	remote      map[string]remoteShare    // shares announced by peers; guarded by mu
	remoteOrder []string                  // ids in remote, oldest first; guarded by mu
	slots       map[peer.ID]chan struct{} // receive slots per peer; guarded by mu
	serving     map[peer.ID]int           // Get streams served per peer; guarded by mu
	held        map[string]*transfer      // shares this node fetched and serves (swarm.go); guarded by mu
	budget      BudgetCounters            // guarded by mu
}

// testHooks let tests inject faults; all nil in production.
type testHooks struct {
	// beforeChunk runs on the sender before chunk index of transfer id is
	// written; it may alter data, and an error resets the stream.
	beforeChunk func(id string, index int, data []byte) error
	// freeSpace replaces the free disk space query.
	freeSpace func(dir string) (uint64, error)
	// writePart runs on the recipient before a piece of a chunk is written
	// to the part file, at offset off; an error stands for the write's.
	writePart func(off int64) error
	// placing runs while a received file is put in place, at "linked"
	// (final name linked, part name still there) and "placed" (part name
	// removed); an error stops there, as a crash would.
	placing func(stage string) error
	// hashed runs on the hashing goroutine of a file being offered or
	// shared each time more of it is hashed (hashed bytes so far; 0 first),
	// after any file_hashing event for it.
	hashed func(id string, hashed int64)
	// commit runs on the sender when it has completed the manifest of a
	// transfer offered before it was hashed, before the manifest is sent
	// as its commitment; it may alter man (a lying sender).
	commit func(id string, man *manifest)
}

type uploadKey struct {
	id   string
	peer peer.ID
}

type remoteShare struct {
	Share
	from peer.ID
	room string
	hash [HashSize]byte
	// holders: the peers announced to hold the file in room, the sharer
	// (from) first, at most maxHolders (see AddRemoteShare).
	holders []peer.ID
}

// maxRemoteShares bounds the announced shares remembered for Fetch.
const maxRemoteShares = 1024

// New starts the service: it creates the downloads dir, loads the transfers
// stored in cfg.DB, registers the stream handler and resumes interrupted
// transfers with peers that are connected (and later with peers as they
// connect).
//
// Lifecycle (the same for every Parley service): ctx bounds construction
// only, and New fails if it has ended; the service runs on a context of
// its own until Close.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start transfer service: %w", err)
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.DownloadDir)
	if err != nil {
		return nil, fmt.Errorf("downloads dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create downloads dir: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open downloads dir: %w", err)
	}
	if err := initBuckets(cfg.DB); err != nil {
		_ = root.Close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		cfg: cfg, host: cfg.Host, db: cfg.DB, log: cfg.Logger, emit: cfg.Emitter,
		root: root, dir: dir, ctx: sctx, cancel: cancel, free: freeSpace,
		transfers: make(map[string]*transfer),
		uploads:   make(map[uploadKey]*transfer),
		remote:    make(map[string]remoteShare),
		slots:     make(map[peer.ID]chan struct{}),
		serving:   make(map[peer.ID]int),
		held:      make(map[string]*transfer),
	}
	if cfg.hooks.freeSpace != nil {
		s.free = cfg.hooks.freeSpace
	}
	loaded, err := s.loadAll()
	if err != nil {
		cancel()
		_ = root.Close()
		return nil, err
	}
	if err := s.loadRemotes(); err != nil {
		cancel()
		_ = root.Close()
		return nil, err
	}
	if err := s.loadHeld(); err != nil {
		cancel()
		_ = root.Close()
		return nil, err
	}
	// Before any new event: what an earlier run never showed.
	missed, err := s.unshown(time.Now())
	if err != nil {
		s.log.Warn("transfer: cannot load the events an earlier run did not show", "err", err)
	}
	for _, e := range missed {
		s.emit.Emit(e)
	}
	if len(missed) > 0 {
		s.log.Info("transfer: showing events an earlier run did not show", "events", len(missed))
	}
	for _, t := range loaded {
		if t.dir == Receive && (t.state == StateActive || t.state == StateQueued) {
			t.state = StateWaiting
		}
		if t.dir == Receive && t.state == StateOffered && !t.share {
			t.stranger = !s.known(t.peer)
			t.newcomer = t.stranger && s.newcomer(t.peer)
		}
		s.transfers[t.id] = t
	}
	s.sub, err = s.host.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		cancel()
		_ = root.Close()
		return nil, fmt.Errorf("subscribe to connectedness events: %w", err)
	}
	s.host.SetStreamHandler(ID, s.handleStream)
	s.host.SetStreamHandler(IDv1, s.handleStream)
	s.wg.Add(1)
	go s.watchPeers()
	s.goSafe(s.expireLoop)
	for _, p := range s.host.Network().Peers() {
		s.onConnected(p)
	}
	return s, nil
}

// Close stops the service: it refuses new goroutines, removes the stream
// handler, cancels the service's context, which stops the transfers in
// flight, and waits for every goroutine. There is nothing to drain first:
// a stopped transfer keeps its verified chunks and resumes with the peer
// after the next New. Close does not close the host or the database.
// Calling Close again does nothing.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.host.RemoveStreamHandler(ID)
	s.host.RemoveStreamHandler(IDv1)
	s.cancel()
	err := s.sub.Close()
	s.wg.Wait()
	if rerr := s.root.Close(); err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("close transfer service: %w", err)
	}
	return nil
}

// goSafe runs f in a goroutine counted in s.wg, unless the service is
// closed.
func (s *Service) goSafe(f func()) bool {
	if !s.enter() {
		return false
	}
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// enter counts a goroutine in s.wg; false once the service is closed.
func (s *Service) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// watchPeers resumes transfers and delivers notices when peers connect.
func (s *Service) watchPeers() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case e, ok := <-s.sub.Out():
			if !ok {
				return
			}
			ev, ok := e.(event.EvtPeerConnectednessChanged)
			if ok && ev.Connectedness == network.Connected {
				s.onConnected(ev.Peer)
			}
		}
	}
}

// onConnected restarts the waiting transfers with p and delivers notices
// still owed to p.
func (s *Service) onConnected(p peer.ID) {
	s.mu.Lock()
	var run, notify []*transfer
	for _, t := range s.transfers {
		if t.peer != p && !s.holds(t, p) {
			continue
		}
		if t.notice != nil {
			notify = append(notify, t)
		}
		if t.dir == Receive && (t.state == StateWaiting || t.state == StateQueued || t.state == StateActive) {
			run = append(run, t)
		}
	}
	s.mu.Unlock()
	for _, t := range notify {
		s.deliverAsync(t)
	}
	for _, t := range run {
		s.start(t, true)
	}
}

// handleStream serves one inbound stream: its first frame says what it is.
func (s *Service) handleStream(str network.Stream) {
	if !s.enter() {
		_ = str.Reset()
		return
	}
	defer s.wg.Done()
	if err := str.Scope().SetService(ServiceName); err != nil {
		s.log.Debug("transfer: attach stream to service", "err", err)
		_ = str.Reset()
		return
	}
	stop := context.AfterFunc(s.ctx, func() { _ = str.Reset() })
	defer stop()
	from := str.Conn().RemotePeer()
	_ = str.SetReadDeadline(time.Now().Add(s.cfg.ControlTimeout))
	br := bufio.NewReaderSize(str, 4096)
	f, err := readFrame(br, s.cfg.MaxFrameSize)
	if err != nil {
		s.log.Debug("transfer: read first frame", "peer", from, "err", err)
		_ = str.Reset()
		return
	}
	switch m := f.GetMsg().(type) {
	case *pb.Frame_Offer:
		s.reply(str, s.handleOffer(from, str.Conn(), m.Offer, str.Protocol() == ID))
	case *pb.Frame_Notice:
		s.reply(str, s.handleNotice(from, m.Notice))
	case *pb.Frame_Get:
		s.serve(str, br, from, m.Get)
	default:
		s.log.Debug("transfer: unexpected first frame", "peer", from)
		_ = str.Reset()
	}
}

// reply answers a control stream with one Status and closes it.
func (s *Service) reply(str network.Stream, st *pb.Status) {
	_ = str.SetWriteDeadline(time.Now().Add(s.cfg.ControlTimeout))
	if err := writeFrame(str, &pb.Frame{Msg: &pb.Frame_Status{Status: st}}); err != nil {
		s.log.Debug("transfer: reply", "err", err)
		_ = str.Reset()
		return
	}
	_ = str.Close()
}

// exchange opens a control stream to p, sends f and returns the peer's
// Status.
func (s *Service) exchange(ctx context.Context, p peer.ID, f *pb.Frame) (*pb.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ControlTimeout)
	defer cancel()
	str, err := s.openControl(ctx, p)
	if err != nil {
		return nil, err
	}
	return s.roundTrip(ctx, str, f)
}

// openControl opens a control stream to p, on the newest protocol version
// both speak (str.Protocol() says which). ctx bounds the stream's life.
func (s *Service) openControl(ctx context.Context, p peer.ID) (network.Stream, error) {
	// Control frames are small: they may cross a relayed connection.
	str, err := s.host.NewStream(network.WithAllowLimitedConn(ctx, "parley file control"), p, ID, IDv1)
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	if err := str.Scope().SetService(ServiceName); err != nil {
		_ = str.Reset()
		return nil, fmt.Errorf("attach stream: %w", err)
	}
	return str, nil
}

// roundTrip sends f on the control stream str, returns the peer's Status
// and closes str; ctx's end resets it.
func (s *Service) roundTrip(ctx context.Context, str network.Stream, f *pb.Frame) (*pb.Status, error) {
	stop := context.AfterFunc(ctx, func() { _ = str.Reset() })
	defer stop()
	_ = str.SetDeadline(time.Now().Add(s.cfg.ControlTimeout))
	if err := writeFrame(str, f); err != nil {
		_ = str.Reset()
		return nil, err
	}
	_ = str.CloseWrite()
	resp, err := readFrame(bufio.NewReaderSize(str, 512), 4096)
	if err != nil {
		_ = str.Reset()
		return nil, fmt.Errorf("read reply: %w", err)
	}
	st := resp.GetStatus()
	if st == nil {
		_ = str.Reset()
		return nil, fmt.Errorf("%w: reply is not a status", ErrProtocol)
	}
	_ = str.Close()
	return st, nil
}

// resolve finds a transfer by id or by a unique prefix of at least 4 hex
// digits.
func (s *Service) resolve(id string) (*transfer, error) {
	id = strings.ToLower(strings.TrimSpace(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.transfers[id]; ok {
		return t, nil
	}
	if len(id) < 4 {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	var found *transfer
	for k, t := range s.transfers {
		if strings.HasPrefix(k, id) {
			if found != nil {
				return nil, fmt.Errorf("%w: %q", ErrAmbiguous, id)
			}
			found = t
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return found, nil
}

// byRawID finds a transfer by its wire id.
func (s *Service) byRawID(raw []byte) *transfer {
	if len(raw) != idLen {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.transfers[hex.EncodeToString(raw)]
}

// List returns every transfer this node knows, oldest first: transfers in
// both directions, shares it serves (its own, and fetched ones it holds
// whose fetch is no longer listed) and uploads of those shares in flight.
func (s *Service) List() []Info {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	all := make([]*transfer, 0, len(s.transfers)+len(s.uploads)+len(s.held))
	for _, t := range s.transfers {
		all = append(all, t)
	}
	for id, h := range s.held {
		if s.transfers[id] == nil {
			all = append(all, h)
		}
	}
	for _, t := range s.uploads {
		all = append(all, t)
	}
	slices.SortFunc(all, func(a, b *transfer) int { return a.created.Compare(b.created) })
	out := make([]Info, 0, len(all))
	for _, t := range all {
		out = append(out, t.info(s.dir, now))
	}
	return out
}

// info describes t. s.mu must be held.
func (t *transfer) info(dir string, now time.Time) Info {
	in := Info{
		ID: t.id, Direction: t.dir, Peer: t.peer, Name: t.name, Size: t.size,
		State: t.state, Bytes: t.bytes, Room: t.room, Path: t.src,
	}
	if t.state == StateActive {
		in.Holders = t.holders
	}
	if t.state == StateActive {
		in.Rate = int64(t.rate.rate)
		if in.Rate > 0 && now.Sub(t.rate.at) < 5*time.Second {
			in.ETA = time.Duration(float64(t.size-t.bytes) / t.rate.rate * float64(time.Second)).Round(time.Second)
		}
	}
	if t.dir == Receive && t.final != "" && t.state == StateDone {
		in.Path = filepath.Join(dir, t.final)
	}
	switch {
	case t.err != nil:
		in.Error = t.err.Error()
	case t.lastErr != "" && !t.state.Terminal():
		in.Error = t.lastErr
	}
	return in
}

// Wait blocks until the transfer ends. It returns the Result once the
// recipient verified the whole file, and an error otherwise: matching
// ErrRejected, ErrCancelled, ErrVerify... when the transfer failed, or
// ctx.Err(). On the sending side Wait returns when the recipient has
// reported success.
func (s *Service) Wait(ctx context.Context, id string) (Result, error) {
	t, err := s.resolve(id)
	if err != nil {
		return Result{}, err
	}
	select {
	case <-t.done:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case <-s.ctx.Done():
		return Result{}, ErrClosed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.state != StateDone {
		if t.err != nil {
			return Result{}, t.err
		}
		return Result{}, fmt.Errorf("transfer %s %s", t.id, t.state)
	}
	res := Result{ID: t.id, Size: t.size, Hash: hex.EncodeToString(t.hash[:]), Path: t.src}
	if t.dir == Receive {
		res.Path = filepath.Join(s.dir, t.final)
	}
	return res, nil
}

// Cancel cancels a transfer on either side and tells the peer. Cancelling a
// share stops serving it, and so does cancelling a share this node fetched
// and serves (swarm.go) once the fetch is done; the fetched file stays.
// The partial file of a receiving transfer is removed.
func (s *Service) Cancel(id string) error {
	t, err := s.resolve(id)
	if err != nil {
		if errors.Is(err, ErrNotFound) && s.unholdByUser(id) {
			return nil
		}
		return err
	}
	s.mu.Lock()
	if t.state.Terminal() {
		st := t.state
		s.mu.Unlock()
		if t.dir == Receive && t.share && s.unholdByUser(t.id) {
			return nil
		}
		return fmt.Errorf("%w: transfer %s is %s", ErrState, t.id, st)
	}
	hasPeer := t.peer != ""
	s.mu.Unlock()
	var n *pb.Notice
	if hasPeer {
		n = &pb.Notice{Id: t.rawID, Kind: pb.Notice_CANCEL, Code: pb.Code_CANCELLED}
	}
	if !s.finish(t, StateCancelled, fmt.Errorf("%w by this node", ErrCancelled), n) {
		return fmt.Errorf("%w: transfer %s already ended", ErrState, t.id)
	}
	if n != nil {
		s.deliverAsync(t)
	}
	s.cancelUploads(t.id)
	return nil
}

// Resume restarts a receiving transfer that is waiting (without waiting
// for the backoff), or asks the recipient of a sending transfer to resume.
func (s *Service) Resume(id string) error {
	t, err := s.resolve(id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	st, dir := t.state, t.dir
	s.mu.Unlock()
	switch {
	case st.Terminal() || st == StateOffered || st == StateShared || st == StateHashing:
		return fmt.Errorf("%w: transfer %s is %s", ErrState, t.id, st)
	case dir == Receive:
		s.start(t, true)
		return nil
	}
	n := &pb.Notice{Id: t.rawID, Kind: pb.Notice_RESUME}
	stt, err := s.exchange(s.ctx, t.peer, &pb.Frame{Msg: &pb.Frame_Notice{Notice: n}})
	if err != nil {
		return fmt.Errorf("ask %s to resume: %w", t.peer, err)
	}
	if stt.GetCode() != pb.Code_OK {
		return fmt.Errorf("ask %s to resume: %w", t.peer, remoteError(stt.GetCode(), stt.GetMessage()))
	}
	return nil
}

// finish moves t to a terminal state, records the notice owed to the peer
// (nil for none), stores t and reports the outcome. It returns false when t
// had already ended.
func (s *Service) finish(t *transfer, st State, err error, n *pb.Notice) bool {
	s.mu.Lock()
	if t.state.Terminal() {
		s.mu.Unlock()
		return false
	}
	if t.state == StateHashing {
		n = nil // the peer has not heard of it
	}
	t.state, t.err, t.notice = st, err, n
	t.rate.reset()
	t.man = nil // up to 512 KiB that an ended transfer no longer needs
	close(t.done)
	part := ""
	if t.dir == Receive && st != StateDone && !t.running {
		part, t.part = t.part, ""
	}
	s.pruneEnded()
	s.mu.Unlock()
	t.cancel()
	if part != "" {
		s.removePart(part)
	}
	ev := s.outcome(t)
	s.saveWith(t, ev)
	if ev != nil {
		s.emit.Emit(ev)
	}
	if st == StateDone {
		s.log.Info("transfer: done", "id", t.id, "dir", t.dir, "peer", t.peer, "size", t.size)
	} else {
		s.log.Info("transfer: ended", "id", t.id, "dir", t.dir, "peer", t.peer, "state", st, "err", err)
	}
	return true
}

// maxEnded bounds the ended transfers kept in memory for List and Wait.
const maxEnded = 256

// pruneEnded forgets the oldest ended transfers beyond maxEnded, except
// those with a notice still to deliver. s.mu must be held.
func (s *Service) pruneEnded() {
	var ended []*transfer
	for _, t := range s.transfers {
		if t.state.Terminal() && t.notice == nil {
			ended = append(ended, t)
		}
	}
	if len(ended) <= maxEnded {
		return
	}
	slices.SortFunc(ended, func(a, b *transfer) int { return a.created.Compare(b.created) })
	for _, t := range ended[:len(ended)-maxEnded] {
		delete(s.transfers, t.id)
	}
	s.pruneUploads()
}

// outcome returns the event of t's terminal state (nil for another).
func (s *Service) outcome(t *transfer) events.Event {
	s.mu.Lock()
	st, err, final := t.state, t.err, t.final
	s.mu.Unlock()
	switch st {
	case StateDone:
		path := t.src
		if t.dir == Receive {
			path = filepath.Join(s.dir, final)
		}
		return events.FileDone{TransferID: t.id, Path: path, Size: t.size,
			Hash: hex.EncodeToString(t.hash[:]), Direction: string(t.dir), Peer: t.peer}
	case StateRejected:
		return events.FileRejected{TransferID: t.id, Direction: string(t.dir), Peer: t.peer}
	case StateFailed, StateCancelled:
		msg := "failed"
		if err != nil {
			msg = err.Error()
		}
		return events.FileFailed{TransferID: t.id, Error: msg, Code: codeName(err),
			Direction: string(t.dir), Peer: t.peer}
	}
	return nil
}

// progress records that t has moved to bytes and emits file_progress when
// the last one is older than the progress interval (or force is set).
func (s *Service) progress(t *transfer, bytes int64, last *time.Time, force bool) {
	s.report(t, func(int64) int64 { return bytes }, last, force)
}

// progressAdd adds n bytes to t's progress, at most t's size, and reports
// it as progress does.
func (s *Service) progressAdd(t *transfer, n int64, last *time.Time) {
	s.report(t, func(old int64) int64 { return min(t.size, old+n) }, last, false)
}

// report sets t's progress to next of the old one and emits it, as
// progress does.
func (s *Service) report(t *transfer, next func(old int64) int64, last *time.Time, force bool) {
	now := time.Now()
	s.mu.Lock()
	bytes := next(t.bytes)
	t.bytes = bytes
	t.rate.update(now, bytes)
	rate := int64(t.rate.rate)
	holders := t.holders
	s.mu.Unlock()
	if !force && now.Sub(*last) < s.cfg.ProgressInterval {
		return
	}
	*last = now
	s.emit.Emit(events.FileProgress{TransferID: t.id, Bytes: bytes, Size: t.size, Rate: rate,
		Direction: string(t.dir), Peer: t.peer, Holders: holders})
}

// emitWaiting reports that t was interrupted by err (nil when unknown): a
// last file_progress with Waiting set and no rate, so that a display does
// not keep showing the old rate and ETA while nothing moves, and with the
// reason, so that a full disk is not silent.
func (s *Service) emitWaiting(t *transfer, err error) {
	s.mu.Lock()
	bytes := t.bytes
	s.mu.Unlock()
	ev := events.FileProgress{TransferID: t.id, Bytes: bytes, Size: t.size,
		Direction: string(t.dir), Peer: t.peer, Waiting: true}
	if err != nil {
		ev.Reason = truncate(err.Error(), maxMessageLen)
		switch {
		case isDiskFull(err):
			ev.Code = events.WaitNoSpace
		case errors.Is(err, errDisk):
			ev.Code = events.WaitDisk
		}
	}
	if ev.Code != "" {
		s.log.Warn("transfer: waiting on a local disk error; /resume once fixed", "id", t.id, "code", ev.Code, "err", err)
	}
	s.emit.Emit(ev)
}

// errClosedOr returns ErrClosed when the service is closing, else err.
func (s *Service) errClosedOr(err error) error {
	if s.ctx.Err() != nil {
		return ErrClosed
	}
	return err
}
