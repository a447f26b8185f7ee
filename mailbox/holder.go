package mailbox

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/internal/fair"
	"github.com/parley-chat/parley/internal/pbframe"
	"github.com/parley-chat/parley/mailbox/pb"
)

// Holder buckets.
const (
	bucketHeld   = "mailbox/held"   // mailbox id (16) || deposit id (8, big endian) -> pb.Stored
	bucketOwners = "mailbox/owners" // owner peer ID -> signed Record envelope
	bucketMeta   = "mailbox/meta"   // "salt" -> 32 random bytes
)

// Quota bounds deposits by count and by bytes of seal.
type Quota struct {
	Count int
	Bytes int64
}

// HolderConfig configures a Holder. Host and DB are required; every zero
// knob takes its documented default.
type HolderConfig struct {
	Host host.Host
	// DB holds the holder's buckets; the caller owns and closes it.
	DB     *bolt.DB
	Logger *slog.Logger
	// MaxAge is the longest a deposit is kept (default 14 days); a
	// deposit's own expiry may be earlier.
	MaxAge time.Duration
	// Mailbox bounds the deposits waiting in one mailbox (default 2000,
	// 32 MiB); Depositor those left by one depositing peer in all
	// mailboxes (default 2000, 32 MiB); Total all (default 200000, 1 GiB).
	Mailbox, Depositor, Total Quota
	// Known reports whether a depositing peer is known to the user (node:
	// trusted, written to, or in a private room; nil knows nobody). Known
	// depositors may use all of Total; strangers together Total minus
	// Reserved (default 50000, 256 MiB; no reserve when Known is nil),
	// the strangers depositing over one subnet (an IPv4 /24, an IPv6 /48,
	// internal/fair.Subnet) PerSubnet of it (default 25000, 128 MiB), and
	// the newcomers (Newcomer; nil: nobody is one) together Newcomers of
	// it (default 37500, 192 MiB). Each share is at most Total. The
	// depositor decides the share, not the mailbox's owner. Known and
	// Newcomer are asked once per batch of deposits, concurrently, outside
	// the holder's lock; they must not block.
	Known    func(peer.ID) bool
	Newcomer func(peer.ID) bool
	// Reserved, PerSubnet and Newcomers: see Known.
	Reserved, PerSubnet, Newcomers Quota
	// MaxDepositSize bounds one seal (default and at most MaxSealSize).
	MaxDepositSize int
	// StreamTimeout is the deadline of each frame. Default 10 s.
	StreamTimeout time.Duration
	// MaxStreamsPerPeer and MaxInboundStreams cap concurrent streams.
	// Defaults 4 and 256.
	MaxStreamsPerPeer, MaxInboundStreams int
	// PruneInterval is how often expired deposits are removed. Default
	// 10 min.
	PruneInterval time.Duration
}

func (c *HolderConfig) setDefaults() error {
	if c.Host == nil || c.DB == nil {
		return errors.New("mailbox holder config: Host and DB are required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	setDur(&c.MaxAge, DefaultMaxAge)
	setDur(&c.StreamTimeout, DefaultStreamTimeout)
	setDur(&c.PruneInterval, DefaultPruneInterval)
	setQuota(&c.Mailbox, DefaultMailboxCount, DefaultMailboxBytes)
	setQuota(&c.Depositor, DefaultDepositorCount, DefaultDepositorBytes)
	setQuota(&c.Total, DefaultTotalCount, DefaultTotalBytes)
	setQuota(&c.Reserved, DefaultReservedCount, DefaultReservedBytes)
	setQuota(&c.PerSubnet, DefaultPerSubnetCount, DefaultPerSubnetBytes)
	setQuota(&c.Newcomers, DefaultNewcomersCount, DefaultNewcomersBytes)
	for _, q := range []*Quota{&c.Reserved, &c.PerSubnet, &c.Newcomers} {
		q.Count, q.Bytes = min(q.Count, c.Total.Count), min(q.Bytes, c.Total.Bytes)
	}
	if c.Known == nil {
		c.Reserved = Quota{} // nobody could use it
	}
	setInt(&c.MaxStreamsPerPeer, DefaultMaxStreamsPerPeer)
	setInt(&c.MaxInboundStreams, DefaultMaxInboundStreams)
	if c.MaxDepositSize <= 0 || c.MaxDepositSize > MaxSealSize {
		c.MaxDepositSize = MaxSealSize
	}
	return nil
}

func setDur(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

func setInt(n *int, def int) {
	if *n <= 0 {
		*n = def
	}
}

func setQuota(q *Quota, n int, b int64) {
	setInt(&q.Count, n)
	if q.Bytes <= 0 {
		q.Bytes = b
	}
}

// usage is what a mailbox, a depositor or the holder has in store.
type usage struct {
	count int
	bytes int64
}

func (u *usage) fits(q Quota, size int) bool {
	return u.count+1 <= q.Count && u.bytes+int64(size) <= q.Bytes
}

func (u *usage) add(size int, sign int) {
	u.count += sign
	u.bytes += int64(sign * size)
}

// Holder keeps sealed deposits for mailbox owners: the /parley/mailbox
// holder side. It cannot open what it holds. Create it with NewHolder;
// Close stops it.
type Holder struct {
	cfg  HolderConfig
	h    host.Host
	db   *bolt.DB
	log  *slog.Logger
	salt []byte

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool // guarded by mu
	// byMailbox, byDepositor and total account the stored deposits;
	// strangers, bySubnet (strangers' only) and newcomers the shares.
	byMailbox   map[string]*usage // guarded by mu
	byDepositor map[string]*usage // guarded by mu
	total       usage             // guarded by mu
	strangers   usage             // guarded by mu
	bySubnet    map[string]*usage // guarded by mu
	newcomers   usage             // guarded by mu
	// inbound counts open streams per peer; inTotal in all.
	inbound map[peer.ID]int // guarded by mu
	inTotal int             // guarded by mu
	// owners maps the mailbox ids of the owners seen to their peers.
	owners map[string]peer.ID // guarded by mu
	// notify holds the owners to tell of new deposits; wakeNotify
	// (capacity 1) wakes notifyLoop.
	notify     map[peer.ID]struct{} // guarded by mu
	wakeNotify chan struct{}

	ctr holderCounters
}

type holderCounters struct {
	stored, full, sharesFull, refused, pickedUp, deleted, expired, lookups atomic.Uint64
	malformed, badRecord, tooManyStreams, streamErrors                     atomic.Uint64
	notified                                                               atomic.Uint64
}

// HolderCounters counts what a holder did since NewHolder.
type HolderCounters struct {
	Stored, Full, Refused, PickedUp, Deleted, Expired, Lookups uint64
	// SharesFull counts the deposits of strangers refused FULL (and
	// counted in Full) for the strangers', their subnet's or the
	// newcomers' share (HolderConfig.Known).
	SharesFull                                         uint64
	Malformed, BadRecord, TooManyStreams, StreamErrors uint64
	// Notified counts the notifications sent to connected owners.
	Notified uint64
}

// Counters returns a snapshot of the counters.
func (s *Holder) Counters() HolderCounters {
	c := &s.ctr
	return HolderCounters{
		Stored: c.stored.Load(), Full: c.full.Load(), SharesFull: c.sharesFull.Load(), Refused: c.refused.Load(), PickedUp: c.pickedUp.Load(),
		Deleted: c.deleted.Load(), Expired: c.expired.Load(), Lookups: c.lookups.Load(),
		Malformed: c.malformed.Load(), BadRecord: c.badRecord.Load(),
		TooManyStreams: c.tooManyStreams.Load(), StreamErrors: c.streamErrors.Load(),
		Notified: c.notified.Load(),
	}
}

// Held returns how many deposits the holder keeps and their bytes.
func (s *Holder) Held() (int, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total.count, s.total.bytes
}

// NewHolder creates the buckets, accounts what is stored, removes what
// expired and registers the stream handler. ctx bounds construction only.
func NewHolder(ctx context.Context, cfg HolderConfig) (*Holder, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mailbox holder: start: %w", err)
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Holder{cfg: cfg, h: cfg.Host, db: cfg.DB, log: cfg.Logger,
		byMailbox: map[string]*usage{}, byDepositor: map[string]*usage{}, bySubnet: map[string]*usage{}, inbound: map[peer.ID]int{},
		owners: map[string]peer.ID{}, notify: map[peer.ID]struct{}{}, wakeNotify: make(chan struct{}, 1)}
	if err := s.open(); err != nil {
		return nil, fmt.Errorf("mailbox holder: %w", err)
	}
	if err := s.prune(time.Now()); err != nil {
		return nil, fmt.Errorf("mailbox holder: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.h.SetStreamHandler(ProtocolID, s.handle)
	s.wg.Add(2)
	go s.pruneLoop()
	go s.notifyLoop()
	return s, nil
}

// Close removes the stream handler, aborts the streams in flight and
// waits for every goroutine. It does not close the host or the database.
func (s *Holder) Close() error {
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

// open creates the buckets and the salt and accounts the stored deposits.
func (s *Holder) open() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range []string{bucketHeld, bucketOwners, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		meta := tx.Bucket([]byte(bucketMeta))
		s.salt = bytes.Clone(meta.Get([]byte("salt")))
		if len(s.salt) != 32 {
			s.salt = make([]byte, 32)
			if _, err := rand.Read(s.salt); err != nil {
				return fmt.Errorf("make salt: %w", err)
			}
			if err := meta.Put([]byte("salt"), s.salt); err != nil {
				return fmt.Errorf("store salt: %w", err)
			}
		}
		s.loadOwners(tx)
		return tx.Bucket([]byte(bucketHeld)).ForEach(func(k, v []byte) error {
			var st pb.Stored
			if len(k) != MailboxIDLen+8 || proto.Unmarshal(v, &st) != nil {
				return nil // removed by prune
			}
			s.account(k[:MailboxIDLen], &st, 1)
			return nil
		})
	})
}

// account adds (sign 1) or removes (sign -1) one deposit st of mailbox.
// Callers hold mu or run before the service starts.
func (s *Holder) account(mailbox []byte, st *pb.Stored, sign int) {
	size := len(st.Sealed)
	addTo := func(m map[string]*usage, k string) {
		u, ok := m[k]
		if !ok {
			u = &usage{}
			m[k] = u
		}
		if u.add(size, sign); u.count <= 0 {
			delete(m, k)
		}
	}
	addTo(s.byMailbox, string(mailbox))
	addTo(s.byDepositor, string(st.Depositor))
	s.total.add(size, sign)
	if st.Known {
		return
	}
	s.strangers.add(size, sign)
	if st.Subnet != "" {
		addTo(s.bySubnet, st.Subnet)
	}
	if st.Newcomer {
		s.newcomers.add(size, sign)
	}
}

// strangerFits reports whether a stranger's deposit of size, from subnet
// ("": none known) and a newcomer or not, fits in the strangers' shares.
// s.mu must be held.
func (s *Holder) strangerFits(size int, subnet string, newcomer bool) bool {
	c := &s.cfg
	share := Quota{Count: c.Total.Count - c.Reserved.Count, Bytes: c.Total.Bytes - c.Reserved.Bytes}
	if !s.strangers.fits(share, size) || (newcomer && !s.newcomers.fits(c.Newcomers, size)) {
		return false
	}
	u := s.bySubnet[subnet]
	return subnet == "" || u == nil || u.fits(c.PerSubnet, size)
}

// depositorOf is the salted hash of a depositing peer the quota is kept
// under: the store never holds depositors' peer IDs.
func (s *Holder) depositorOf(p peer.ID) []byte {
	h := sha256.New()
	h.Write(s.salt)
	h.Write([]byte(p))
	return h.Sum(nil)[:8]
}

func heldKey(mailbox []byte, id uint64) []byte {
	return binary.BigEndian.AppendUint64(bytes.Clone(mailbox), id)
}

// deposit stores one seal, from a connection of subnet, and returns its
// status.
func (s *Holder) deposit(from peer.ID, subnet string, d *pb.Deposit, now time.Time) pb.Status {
	return s.depositMany(from, subnet, []*pb.Deposit{d}, now)[0]
}

// maxDepositBatch bounds the deposits stored in one transaction.
const maxDepositBatch = 64

// depositMany checks and stores seals from one depositor, whose
// connection came from subnet, in a single transaction (one disk sync)
// and returns the status of each.
func (s *Holder) depositMany(from peer.ID, subnet string, ds []*pb.Deposit, now time.Time) []pb.Status {
	out := make([]pb.Status, len(ds))
	dep := s.depositorOf(from)
	// Asked outside mu: they may read a store.
	known := s.cfg.Known != nil && s.cfg.Known(from)
	newcomer := !known && s.cfg.Newcomer != nil && s.cfg.Newcomer(from)
	shareFull := 0
	s.mu.Lock()
	defer s.mu.Unlock()
	type kept struct {
		i    int
		mbox []byte
		st   *pb.Stored
	}
	var keep []kept
	for i, d := range ds {
		if len(d.Mailbox) != MailboxIDLen || len(d.Sealed) == 0 || len(d.Sealed) > s.cfg.MaxDepositSize {
			out[i] = pb.Status_STATUS_REJECTED
			continue
		}
		exp := now.Add(s.cfg.MaxAge)
		if d.ExpiresMs > 0 && d.ExpiresMs < exp.UnixMilli() {
			exp = time.UnixMilli(d.ExpiresMs)
		}
		if !exp.After(now) {
			out[i] = pb.Status_STATUS_REJECTED
			continue
		}
		size := len(d.Sealed)
		mu, du := s.byMailbox[string(d.Mailbox)], s.byDepositor[string(dep)]
		if (mu != nil && !mu.fits(s.cfg.Mailbox, size)) || (du != nil && !du.fits(s.cfg.Depositor, size)) ||
			!s.total.fits(s.cfg.Total, size) || size > int(min(s.cfg.Mailbox.Bytes, s.cfg.Depositor.Bytes)) {
			out[i] = pb.Status_STATUS_FULL
			continue
		}
		if !known && !s.strangerFits(size, subnet, newcomer) {
			out[i] = pb.Status_STATUS_FULL
			shareFull++
			continue
		}
		// Account now so that later deposits of the batch see it; undone
		// below if the transaction fails.
		st := &pb.Stored{Sealed: d.Sealed, DepositedMs: now.UnixMilli(), ExpiresMs: exp.UnixMilli(), Depositor: dep,
			Subnet: subnet, Known: known, Newcomer: newcomer}
		s.account(d.Mailbox, st, 1)
		keep = append(keep, kept{i, d.Mailbox, st})
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketHeld))
		for _, k := range keep {
			id, err := b.NextSequence()
			if err != nil {
				return fmt.Errorf("number deposit: %w", err)
			}
			v, err := proto.Marshal(k.st)
			if err != nil {
				return fmt.Errorf("encode deposit: %w", err)
			}
			if err := b.Put(heldKey(k.mbox, id), v); err != nil {
				return err
			}
		}
		return nil
	})
	for _, k := range keep {
		if err != nil {
			s.account(k.mbox, k.st, -1)
			out[k.i] = pb.Status_STATUS_FULL
			continue
		}
		out[k.i] = pb.Status_STATUS_STORED
		s.toNotify(k.mbox)
	}
	if err != nil {
		s.log.Warn("mailbox: storing deposits failed", "err", err)
	}
	if shareFull > 0 {
		s.ctr.sharesFull.Add(uint64(shareFull)) // #nosec G115 -- a count
		s.log.Debug("mailbox: strangers' share full, deposits refused", "peer", from, "subnet", subnet,
			"newcomer", newcomer, "refused", shareFull)
	}
	for _, st := range out {
		switch st {
		case pb.Status_STATUS_STORED:
			s.ctr.stored.Add(1)
		case pb.Status_STATUS_FULL:
			s.ctr.full.Add(1)
		default:
			s.ctr.refused.Add(1)
		}
	}
	return out
}

// items returns up to max deposits of mailbox in deposit order, and
// whether there are more.
func (s *Holder) items(mailbox []byte, max int, now time.Time) (out []*pb.Item, more bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(bucketHeld)).Cursor()
		for k, v := c.Seek(mailbox); k != nil && bytes.HasPrefix(k, mailbox); k, v = c.Next() {
			var st pb.Stored
			if len(k) != MailboxIDLen+8 || proto.Unmarshal(v, &st) != nil || st.ExpiresMs <= now.UnixMilli() {
				continue
			}
			if len(out) == max {
				more = true
				return nil
			}
			out = append(out, &pb.Item{Id: binary.BigEndian.Uint64(k[MailboxIDLen:]), Sealed: st.Sealed, DepositedMs: st.DepositedMs})
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("list mailbox: %w", err)
	}
	return out, more, nil
}

// remove deletes deposits of mailbox by id and returns how many existed.
func (s *Holder) remove(mailbox []byte, ids []uint64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var removed []*pb.Stored
	err := s.db.Update(func(tx *bolt.Tx) error {
		removed = removed[:0]
		b := tx.Bucket([]byte(bucketHeld))
		for _, id := range ids {
			k := heldKey(mailbox, id)
			v := b.Get(k)
			if v == nil {
				continue
			}
			st := &pb.Stored{}
			_ = proto.Unmarshal(v, st) // an unreadable record is removed all the same
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("delete deposit: %w", err)
			}
			removed = append(removed, st)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, st := range removed {
		s.account(mailbox, st, -1)
	}
	return len(removed), nil
}

// prune removes expired and unreadable deposits.
func (s *Holder) prune(now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketHeld))
		c := b.Cursor()
		for k, v := c.First(); k != nil; {
			var st pb.Stored
			bad := len(k) != MailboxIDLen+8 || proto.Unmarshal(v, &st) != nil
			if !bad && st.ExpiresMs > now.UnixMilli() {
				k, v = c.Next()
				continue
			}
			if !bad {
				s.account(k[:MailboxIDLen], &st, -1)
			}
			key := bytes.Clone(k)
			if err := c.Delete(); err != nil {
				return fmt.Errorf("delete expired deposit: %w", err)
			}
			n++
			k, v = c.Seek(key) // Delete moves the cursor: look again from the deleted key
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("prune deposits: %w", err)
	}
	s.ctr.expired.Add(uint64(n)) // #nosec G115 -- n counts deletions, never negative
	return nil
}

func (s *Holder) pruneLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			if err := s.prune(time.Now()); err != nil {
				s.log.Warn("mailbox: pruning deposits failed", "err", err)
			}
		}
	}
}

// keepOwner stores an owner's record unless a newer one is stored.
func (s *Holder) keepOwner(r *Record) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketOwners))
		if old := b.Get([]byte(r.Peer)); old != nil {
			if o, err := OpenRecord(old); err == nil && !r.Issued.After(o.Issued) {
				return nil
			}
		}
		return b.Put([]byte(r.Peer), r.Envelope)
	})
}

// owner returns the stored record of p, nil when none.
func (s *Holder) owner(p peer.ID) []byte {
	var out []byte
	_ = s.db.View(func(tx *bolt.Tx) error {
		out = bytes.Clone(tx.Bucket([]byte(bucketOwners)).Get([]byte(p)))
		return nil
	})
	return out
}

// handle serves one inbound stream: Deposit frames (each answered), or
// one Pickup followed by at most one Delete, or Lookups.
func (s *Holder) handle(str network.Stream) {
	p := str.Conn().RemotePeer()
	if ok, closed := s.acquire(p); !ok {
		if !closed {
			s.ctr.tooManyStreams.Add(1)
		}
		_ = str.ResetWithError(network.StreamResourceLimitExceeded)
		return
	}
	defer s.release(p)
	const mem = MaxRequestSize + 4<<10
	if err := str.Scope().SetService(ServiceName); err != nil {
		s.ctr.streamErrors.Add(1)
		_ = str.ResetWithError(network.StreamResourceLimitExceeded)
		return
	}
	if err := str.Scope().ReserveMemory(mem, network.ReservationPriorityAlways); err != nil {
		s.ctr.streamErrors.Add(1)
		_ = str.ResetWithError(network.StreamResourceLimitExceeded)
		return
	}
	defer str.Scope().ReleaseMemory(mem)
	defer context.AfterFunc(s.ctx, func() { _ = str.Reset() })()
	if err := s.serve(p, fair.ConnSubnet(str.Conn()), str); err != nil {
		s.fail(p, str, err)
		return
	}
	_ = str.Close()
}

// serve runs the request loop of one stream, from subnet; an error
// resets it.
func (s *Holder) serve(p peer.ID, subnet string, str network.Stream) error {
	br := bufio.NewReaderSize(str, 4<<10)
	var picked []byte    // the mailbox of this stream's Pickup
	var next *pb.Request // a frame read ahead while batching deposits
	for frames := 0; frames < MaxFramesPerStream; frames++ {
		req := next
		next = nil
		if req == nil {
			var err error
			if req, err = s.read(str, br); err != nil {
				return err
			} else if req == nil {
				return nil
			}
		}
		var resp []*pb.Response
		switch k := req.Kind.(type) {
		case *pb.Request_Deposit:
			// Deposits already buffered behind this one are stored in
			// the same transaction.
			batch := []*pb.Deposit{k.Deposit}
			for len(batch) < maxDepositBatch && frames+len(batch) < MaxFramesPerStream && br.Buffered() > 0 {
				r, err := s.read(str, br)
				if err != nil {
					return err
				}
				if r == nil {
					break
				}
				d := r.GetDeposit()
				if d == nil {
					next = r
					break
				}
				batch = append(batch, d)
			}
			frames += len(batch) - 1
			for _, st := range s.depositMany(p, subnet, batch, time.Now()) {
				resp = append(resp, &pb.Response{Kind: &pb.Response_Deposit{Deposit: &pb.DepositResult{Status: st}}})
			}
		case *pb.Request_Pickup:
			if picked != nil {
				return fmt.Errorf("%w: second pickup on a stream", ErrProtocol)
			}
			var err error
			if picked, resp, err = s.pickup(p, k.Pickup); err != nil {
				return err
			}
		case *pb.Request_Delete:
			if picked == nil || len(k.Delete.Ids) > MaxPickupBatch {
				return fmt.Errorf("%w: delete without pickup, or of %d ids", ErrProtocol, len(k.Delete.Ids))
			}
			n, err := s.remove(picked, k.Delete.Ids)
			if err != nil {
				s.log.Warn("mailbox: deleting deposits failed", "err", err)
				return err
			}
			s.ctr.deleted.Add(uint64(n))                                                                          // #nosec G115 -- a count
			resp = append(resp, &pb.Response{Kind: &pb.Response_Deleted{Deleted: &pb.Deleted{Count: uint32(n)}}}) // #nosec G115 -- n <= MaxPickupBatch
		case *pb.Request_Lookup:
			s.ctr.lookups.Add(1)
			resp = append(resp, &pb.Response{Kind: &pb.Response_Found{Found: &pb.Found{Record: s.owner(peer.ID(k.Lookup.PeerId))}}})
		default:
			return fmt.Errorf("%w: empty request", ErrMalformed)
		}
		if err := s.write(str, resp); err != nil {
			return err
		}
	}
	return nil
}

// read reads one request; nil at a clean end of stream.
func (s *Holder) read(str network.Stream, br *bufio.Reader) (*pb.Request, error) {
	if err := str.SetReadDeadline(time.Now().Add(s.cfg.StreamTimeout)); err != nil {
		return nil, err
	}
	var req pb.Request
	err := pbframe.Read(br, MaxRequestSize, &req)
	if errors.Is(err, io.EOF) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &req, nil
}

// pickup checks the owner's record and returns its mailbox and the
// frames to send: the items, then End.
func (s *Holder) pickup(p peer.ID, req *pb.Pickup) ([]byte, []*pb.Response, error) {
	rec, err := OpenRecord(req.Record)
	if err != nil || rec.Peer != p {
		s.ctr.badRecord.Add(1)
		return nil, nil, fmt.Errorf("%w: pickup record: %v", ErrProtocol, err)
	}
	if err := s.keepOwner(rec); err != nil {
		s.log.Warn("mailbox: storing an owner record failed", "err", err)
	}
	s.learnOwner(rec)
	max := MaxPickupBatch
	if req.Max > 0 && int(req.Max) < max {
		max = int(req.Max)
	}
	mbox := rec.MailboxID()
	items, more, err := s.items(mbox, max, time.Now())
	if err != nil {
		return nil, nil, err
	}
	s.ctr.pickedUp.Add(uint64(len(items)))
	resp := make([]*pb.Response, 0, len(items)+1)
	for _, it := range items {
		resp = append(resp, &pb.Response{Kind: &pb.Response_Item{Item: it}})
	}
	resp = append(resp, &pb.Response{Kind: &pb.Response_End{End: &pb.End{More: more}}})
	return mbox, resp, nil
}

// write sends frames, a write deadline for each.
func (s *Holder) write(str network.Stream, frames []*pb.Response) error {
	for _, f := range frames {
		if err := str.SetWriteDeadline(time.Now().Add(s.cfg.StreamTimeout)); err != nil {
			return err
		}
		if err := pbframe.Write(str, f); err != nil {
			return err
		}
	}
	return nil
}

func (s *Holder) fail(p peer.ID, str network.Stream, err error) {
	code := network.StreamProtocolViolation
	switch {
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrFrameTooLarge), errors.Is(err, ErrProtocol):
		s.ctr.malformed.Add(1)
	default:
		s.ctr.streamErrors.Add(1)
		code = network.StreamNoError
	}
	s.log.Debug("mailbox: bad stream, resetting", "peer", p, "err", err)
	_ = str.ResetWithError(code)
}

func (s *Holder) acquire(p peer.ID) (ok, closed bool) {
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

func (s *Holder) release(p peer.ID) {
	s.mu.Lock()
	if s.inbound[p]--; s.inbound[p] <= 0 {
		delete(s.inbound, p)
	}
	s.inTotal--
	s.mu.Unlock()
	s.wg.Done()
}
