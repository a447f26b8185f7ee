package transfer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/transfer/pb"
)

// Offer offers the file at path to peer to. It checks the file and returns
// the new transfer's id at once: the file is then hashed in the background
// (state StateHashing, file_hashing events) and offered once hashed. ctx
// bounds only these checks; Cancel stops the hashing and Close interrupts
// it. Errors after Offer returned end the transfer with file_failed: the
// file vanished, could not be read or changed while it was hashed, the
// peer could not be reached, or its node refused the offer (an error
// matching ErrTooLarge, ErrNoSpace, ErrBusy or ErrBadName). WaitOffered
// waits until the recipient holds the offer; Wait waits for the outcome.
//
// Offering the same unchanged file to the same peer again while an earlier
// offer is still open returns the earlier transfer's id and asks the peer
// to resume it, so a restarted sender picks up where it was.
func (s *Service) Offer(ctx context.Context, to peer.ID, path string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if to == s.host.ID() {
		return "", errors.New("offer: cannot send a file to this node")
	}
	abs, st, err := statSource(path)
	if err != nil {
		return "", err
	}
	if old := s.openOffer(to, abs, st); old != nil {
		if err := s.Resume(old.id); err != nil {
			s.log.Debug("transfer: resume earlier offer", "id", old.id, "err", err)
		}
		return old.id, nil
	}
	t, cs, err := s.newSource(abs, st)
	if err != nil {
		return "", err
	}
	t.peer = to
	if err := s.startHashing(t, cs); err != nil {
		return "", err
	}
	return t.id, nil
}

// StartShare checks the file at path and returns the id of a new share at
// once; the file is hashed in the background (state StateHashing,
// file_hashing events without a peer). WaitShared returns the Share to
// announce in a room once it is hashed and served to any peer that
// fetches it by id (the id is the capability: 128 random bits). Cancel(id)
// stops the hashing, or the serving.
func (s *Service) StartShare(path string) (string, error) {
	abs, st, err := statSource(path)
	if err != nil {
		return "", err
	}
	t, cs, err := s.newSource(abs, st)
	if err != nil {
		return "", err
	}
	t.share = true
	if err := s.startHashing(t, cs); err != nil {
		return "", err
	}
	return t.id, nil
}

// Share is StartShare followed by WaitShared: it returns once the file at
// path is hashed and served, or hashing failed, or the service closed.
func (s *Service) Share(path string) (Share, error) {
	id, err := s.StartShare(path)
	if err != nil {
		return Share{}, err
	}
	return s.WaitShared(context.Background(), id)
}

// WaitOffered blocks until the transfer id, started by Offer, has been
// hashed and the recipient holds the offer (it may have accepted it at
// once), and returns nil then, also if the transfer ended since. It returns
// the error that ended the transfer before that (see Offer), ctx.Err(), or
// ErrClosed.
func (s *Service) WaitOffered(ctx context.Context, id string) error {
	t, err := s.resolve(id)
	if err != nil {
		return err
	}
	if t.dir != Send || t.share {
		return fmt.Errorf("%w: transfer %s is not an outgoing offer", ErrState, t.id)
	}
	return s.waitReady(ctx, t)
}

// WaitShared blocks until the share id, started by StartShare, has been
// hashed and is served, and returns it to announce. It returns the error
// that ended the share before that (file_failed: the file vanished, could
// not be read or changed; or Cancel), ctx.Err(), or ErrClosed.
func (s *Service) WaitShared(ctx context.Context, id string) (Share, error) {
	t, err := s.resolve(id)
	if err != nil {
		return Share{}, err
	}
	if t.dir != Send || !t.share {
		return Share{}, fmt.Errorf("%w: transfer %s is not a share of this node", ErrState, t.id)
	}
	if err := s.waitReady(ctx, t); err != nil {
		return Share{}, err
	}
	return Share{ID: t.id, Name: t.name, Size: t.size, Hash: hex.EncodeToString(t.hash[:])}, nil
}

// waitReady waits for t.ready, and returns why t ended when it ended
// without getting there.
func (s *Service) waitReady(ctx context.Context, t *transfer) error {
	select {
	case <-t.ready:
		return nil
	case <-t.done:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.ctx.Done():
		return ErrClosed
	}
	select {
	case <-t.ready: // both happened: the transfer got there, then ended
		return nil
	default:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case t.state == StateDone: // the answer to the offer came after the recipient's DONE
		return nil
	case t.err != nil:
		return t.err
	}
	return fmt.Errorf("transfer %s %s", t.id, t.state)
}

func statSource(path string) (string, os.FileInfo, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", nil, fmt.Errorf("source path: %w", err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", nil, fmt.Errorf("source: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", nil, fmt.Errorf("%w: %s", ErrNotFile, abs)
	}
	if st.Size() > MaxSize {
		return "", nil, fmt.Errorf("%w: %d bytes (protocol limit %d)", ErrTooLarge, st.Size(), int64(MaxSize))
	}
	return abs, st, nil
}

// openOffer finds a transfer of the same unchanged file to the same peer
// that has not ended.
func (s *Service) openOffer(to peer.ID, abs string, st os.FileInfo) *transfer {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.transfers {
		if t.dir == Send && !t.share && t.peer == to && t.src == abs && !t.state.Terminal() &&
			t.size == st.Size() && t.modTime == st.ModTime().UnixNano() {
			return t
		}
	}
	return nil
}

// newSource makes a sending transfer of the file abs, still to be hashed
// in chunks of the returned size.
func (s *Service) newSource(abs string, st os.FileInfo) (*transfer, int64, error) {
	cs, err := chooseChunkSize(st.Size(), s.cfg.ChunkSize)
	if err != nil {
		return nil, 0, err
	}
	raw := make([]byte, idLen)
	if _, err := rand.Read(raw); err != nil {
		return nil, 0, fmt.Errorf("transfer id: %w", err)
	}
	t := newTransfer(s.ctx, raw)
	t.dir, t.name, t.size, t.state = Send, filepath.Base(abs), st.Size(), StateHashing
	t.src, t.modTime = abs, st.ModTime().UnixNano()
	return t, cs, nil
}

// startHashing registers t and offers or hashes it on a goroutine of the
// service (hashAndOffer). A file that is hashed first has its record
// stored now, in state hashing with no manifest: a node that stops before
// the hash is done fails it at the next start, see fromRecord. An offer
// sent unhashed is stored once, just before it goes out.
func (s *Service) startHashing(t *transfer, chunkSize int64) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.transfers[t.id] = t
	s.mu.Unlock()
	if t.share {
		s.save(t)
	}
	if !s.goSafe(func() { s.hashAndOffer(t, chunkSize) }) {
		s.drop(t)
		return ErrClosed
	}
	return nil
}

// hashAndOffer offers t's file to the peer at once, unhashed (protocol
// v2: the file is hashed as it is sent, see offerUnhashed); or, for a
// share or a peer that speaks only v1, hashes the file, stores the
// manifest, then offers it (or starts serving the share). Then it closes
// t.ready. Any error ends t as failed; Cancel ends it as cancelled and
// stops the hashing between two chunks. When the service closes during
// hashing, t is left as stored (state hashing): the next start fails it.
func (s *Service) hashAndOffer(t *transfer, chunkSize int64) {
	if !t.share {
		err := s.offerUnhashed(t, chunkSize)
		if err == nil {
			close(t.ready)
			return
		}
		if !errors.Is(err, errOldPeer) {
			s.finish(t, StateFailed, s.errClosedOr(err), nil)
			return
		}
		s.log.Debug("transfer: peer speaks only "+string(IDv1)+": hashing before the offer", "id", t.id, "peer", t.peer)
		s.save(t)
	}
	man, err := s.hashFile(t, chunkSize)
	if err != nil && s.ctx.Err() != nil {
		return
	}
	if err == nil {
		err = s.publish(t, man)
	}
	if err == nil && !t.share {
		err = s.sendOffer(t)
	}
	if err != nil {
		s.finish(t, StateFailed, s.errClosedOr(err), nil)
		return
	}
	close(t.ready)
	s.log.Debug("transfer: hashed", "id", t.id, "peer", t.peer, "size", t.size, "share", t.share)
}

// errOldPeer: the peer speaks only protocol v1, which needs the hash in
// the offer.
var errOldPeer = errors.New("peer speaks only " + string(IDv1))

// offerUnhashed offers t before its file is hashed: the offer carries the
// chunk size instead of the hash, and t gets an open manifest that fills
// up as the chunks are read and sent; the recipient asks for the sender's
// commitment (the complete manifest) once it has every chunk. It returns
// errOldPeer, having sent nothing, when the peer speaks only v1.
func (s *Service) offerUnhashed(t *transfer, chunkSize int64) error {
	ctx, cancel := context.WithTimeout(t.ctx, s.cfg.ControlTimeout)
	defer cancel()
	str, err := s.openControl(ctx, t.peer)
	if err != nil {
		return fmt.Errorf("offer %s to %s: %w", t.name, t.peer, err)
	}
	if str.Protocol() != ID {
		_ = str.Reset()
		return errOldPeer
	}
	if err := s.publish(t, newOpenManifest(t.size, chunkSize)); err != nil {
		_ = str.Reset()
		return err
	}
	// #nosec G115 -- a file size is never negative; chunkSize <= MaxChunkSize
	offer := &pb.Offer{Id: t.rawID, Name: truncate(t.name, maxNameLen), Size: uint64(t.size), ChunkSize: uint32(chunkSize)}
	reply, err := s.roundTrip(ctx, str, &pb.Frame{Msg: &pb.Frame_Offer{Offer: offer}})
	if err != nil {
		return fmt.Errorf("offer %s to %s: %w", t.name, t.peer, err)
	}
	return s.offerAnswered(t, reply)
}

// hashFile hashes t's source file into a manifest, reporting file_hashing
// progress, and checks that the file did not change meanwhile.
func (s *Service) hashFile(t *transfer, chunkSize int64) (*manifest, error) {
	var last time.Time
	s.hashProgress(t, 0, &last, true)
	f, err := os.Open(t.src)
	if err != nil {
		return nil, fmt.Errorf("open source: %w", err)
	}
	defer func() { _ = f.Close() }() // read only
	// The file must still be the one Offer checked, before hashing (it was
	// replaced) and after (it was written to meanwhile).
	if err := sameFile(f, t.size, t.modTime); err != nil {
		return nil, err
	}
	man, err := buildManifest(t.ctx, f, t.size, chunkSize, func(hashed int64) {
		if hashed < t.size {
			s.hashProgress(t, hashed, &last, false)
		}
	})
	if err != nil {
		return nil, err
	}
	if err := sameFile(f, t.size, t.modTime); err != nil {
		return nil, err
	}
	s.hashProgress(t, t.size, &last, true)
	return man, nil
}

// hashProgress records that hashed bytes of t are hashed and emits
// file_hashing when the last one is older than the progress interval (or
// force is set).
func (s *Service) hashProgress(t *transfer, hashed int64, last *time.Time, force bool) {
	s.mu.Lock()
	if t.state == StateHashing {
		t.bytes = hashed
	}
	s.mu.Unlock()
	if now := time.Now(); force || now.Sub(*last) >= s.cfg.ProgressInterval {
		*last = now
		s.emit.Emit(events.FileHashing{TransferID: t.id, Name: t.name, Bytes: hashed, Size: t.size,
			Direction: string(Send), Peer: t.peer})
	}
	if h := s.cfg.hooks.hashed; h != nil {
		h(t.id, hashed)
	}
}

// publish gives t its manifest and moves it out of StateHashing (to
// StateOffered, or StateShared for a share), then stores it with the
// manifest.
func (s *Service) publish(t *transfer, man *manifest) error {
	s.mu.Lock()
	if t.state != StateHashing { // cancelled meanwhile
		st := t.state
		s.mu.Unlock()
		return fmt.Errorf("%w: transfer %s is %s", ErrState, t.id, st)
	}
	t.man, t.hash, t.bytes = man, man.hash, 0
	t.state = StateOffered
	if t.share {
		t.state = StateShared
	}
	s.mu.Unlock()
	if man.open { // no chunk hash known yet: the record (with the chunk size) is all
		s.save(t)
		return nil
	}
	return s.saveWithManifest(t)
}

// sendOffer offers t to its peer and applies the answer.
func (s *Service) sendOffer(t *transfer) error {
	offer := &pb.Offer{Id: t.rawID, Name: truncate(t.name, maxNameLen), Size: uint64(t.size), Hash: t.hash[:]} // #nosec G115 -- a file size is never negative
	reply, err := s.exchange(t.ctx, t.peer, &pb.Frame{Msg: &pb.Frame_Offer{Offer: offer}})
	if err != nil {
		return fmt.Errorf("offer %s to %s: %w", t.name, t.peer, err)
	}
	return s.offerAnswered(t, reply)
}

// offerAnswered applies the recipient's answer to t's offer.
func (s *Service) offerAnswered(t *transfer, reply *pb.Status) error {
	switch reply.GetCode() {
	case pb.Code_OK:
	case pb.Code_ACCEPTED:
		s.mu.Lock()
		if t.state == StateOffered { // the recipient may be pulling already
			t.state = StateQueued
		}
		s.mu.Unlock()
		s.save(t)
	default:
		return fmt.Errorf("offer %s to %s: %w", t.name, t.peer, remoteError(reply.GetCode(), reply.GetMessage()))
	}
	s.log.Debug("transfer: offered", "id", t.id, "peer", t.peer, "size", t.size)
	return nil
}
