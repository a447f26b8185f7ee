package mailbox

import (
	"bytes"
	"context"
	"crypto/hpke"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/dm"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/pbframe"
	"github.com/parley-chat/parley/mailbox/pb"
)

// Courier buckets (on every chat node).
const (
	bucketSelf    = "mailbox/self"    // "record" -> own signed Record envelope
	bucketRecords = "mailbox/records" // peer ID -> a correspondent's signed Record envelope
	bucketSent    = "mailbox/sent"    // len || recipient || note id -> pb.Sent
)

// Outbox is what the courier needs of the direct-message service
// (*dm.Service).
type Outbox interface {
	PendingTo(p peer.ID) ([]dm.Outgoing, error)
	AcceptRelayed(m dm.Relayed) (dm.Verdict, error)
	ConfirmDelivered(p peer.ID, ids [][]byte, via string) error
}

// Defaults of Config.
const (
	DefaultPollInterval = time.Minute
	DefaultRetryMin     = 5 * time.Second
	DefaultRetryMax     = 10 * time.Minute
	DefaultDialTimeout  = 20 * time.Second
	DefaultRecordMaxAge = 24 * time.Hour
	// sentMaxAge is how long the sender remembers a deposit (longer than
	// any dm TTL).
	sentMaxAge = 30 * 24 * time.Hour
	// maxPickupRounds bounds the pickups in a row from one holder.
	maxPickupRounds = 64
)

// Config configures a Courier. Host, DB, Key and Outbox are required.
type Config struct {
	Host host.Host
	// DB holds the courier's buckets; the caller owns and closes it.
	DB *bolt.DB
	// Key is the node's identity key: it signs records and letters, and
	// the KEM key is derived from it.
	Key    crypto.PrivKey
	Outbox Outbox
	// Emitter receives dm_status events with reason "deposited".
	Emitter events.Emitter
	Logger  *slog.Logger
	// Nick is sent, display-only, with each note.
	Nick func() string
	// Eligible says whether a peer that runs a holder may hold this
	// node's mailbox (named in its record). Default: none.
	Eligible func(peer.ID) bool
	// Connect reaches a peer; the only place the courier dials (default
	// Host.Connect with the addresses given).
	Connect func(ctx context.Context, ai peer.AddrInfo) error
	// PollInterval is how often connected holders are asked for new
	// deposits. Default 1 min.
	PollInterval time.Duration
	// RetryMin and RetryMax bound the backoff of deposits that found no
	// record or no holder. Defaults 5 s and 10 min.
	RetryMin, RetryMax time.Duration
	// DialTimeout bounds reaching a holder. Default 20 s.
	DialTimeout time.Duration
	// StreamTimeout bounds each frame. Default 10 s.
	StreamTimeout time.Duration
	// RecordMaxAge: a correspondent's cached record older than this is
	// fetched again when the peer is connected. Default 24 h.
	RecordMaxAge time.Duration
}

func (c *Config) setDefaults() error {
	if c.Host == nil || c.DB == nil || c.Key == nil || c.Outbox == nil {
		return errors.New("mailbox config: Host, DB, Key and Outbox are required")
	}
	if c.Emitter == nil {
		c.Emitter = events.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Nick == nil {
		c.Nick = func() string { return "" }
	}
	if c.Eligible == nil {
		c.Eligible = func(peer.ID) bool { return false }
	}
	if c.Connect == nil {
		c.Connect = c.Host.Connect
	}
	setDur(&c.PollInterval, DefaultPollInterval)
	setDur(&c.RetryMin, DefaultRetryMin)
	setDur(&c.RetryMax, DefaultRetryMax)
	setDur(&c.DialTimeout, DefaultDialTimeout)
	setDur(&c.StreamTimeout, DefaultStreamTimeout)
	setDur(&c.RecordMaxAge, DefaultRecordMaxAge)
	return nil
}

// Courier is a chat node's side of offline delivery: it publishes the
// node's record, deposits sealed copies of DMs for offline recipients
// with their holders, picks up its own mailbox from its holders, and
// deposits receipts back. Create it with New; Close stops it.
type Courier struct {
	cfg    Config
	h      host.Host
	db     *bolt.DB
	log    *slog.Logger
	kem    hpke.PrivateKey
	client *Client

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// wakeSend and wakePick (capacity 1) wake the deposit and pickup
	// workers.
	wakeSend, wakePick chan struct{}

	mu     sync.Mutex
	closed bool // guarded by mu
	// own is this node's current record.
	own *Record // guarded by mu
	// sends holds the recipients with deposits to make, by due time.
	sends map[peer.ID]*retry // guarded by mu
	// receipts holds the receipts to deposit, by sender.
	receipts map[peer.ID]*receiptJob // guarded by mu
	// learn holds connected peers whose record to fetch.
	learn map[peer.ID]struct{} // guarded by mu
	// picks holds the holders to pick up from now.
	picks map[peer.ID]struct{} // guarded by mu
	// picked holds the holders picked up from in this run.
	picked map[peer.ID]bool // guarded by mu
}

// retry is the schedule of one deposit job.
type retry struct {
	due     time.Time
	backoff time.Duration
	// dirty: work arrived while the job ran; run it again.
	dirty bool
}

// receiptJob is the note ids to acknowledge to one sender.
type receiptJob struct {
	retry
	rec *Record // the sender's newest record seen
	ids [][]byte
}

// New starts the courier: it loads or makes the node's record, registers
// the record protocol and watches for holders. ctx bounds construction.
func New(ctx context.Context, cfg Config) (*Courier, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mailbox: start: %w", err)
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	kem, err := DeriveKEMKey(cfg.Key)
	if err != nil {
		return nil, err
	}
	c := &Courier{cfg: cfg, h: cfg.Host, db: cfg.DB, log: cfg.Logger, kem: kem,
		wakeSend: make(chan struct{}, 1), wakePick: make(chan struct{}, 1),
		sends: map[peer.ID]*retry{}, receipts: map[peer.ID]*receiptJob{},
		learn: map[peer.ID]struct{}{}, picks: map[peer.ID]struct{}{}, picked: map[peer.ID]bool{}}
	c.client = &Client{Open: c.open, Timeout: cfg.StreamTimeout}
	if err := c.loadOwn(); err != nil {
		return nil, fmt.Errorf("mailbox: %w", err)
	}
	sub, err := c.h.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		return nil, fmt.Errorf("mailbox: subscribe to identify events: %w", err)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.h.SetStreamHandler(RecordProtocolID, c.handleRecord)
	c.wg.Add(3)
	go c.watch(sub)
	go c.sendLoop()
	go c.pickLoop()
	// Holders already connected (the subscription sees only new ones).
	for _, p := range c.h.Network().Peers() {
		c.consider(p)
	}
	return c, nil
}

// Close stops the courier and waits for its goroutines. Deposits and
// pickups cut short are made again by the next New (the outbox and the
// holder keep them).
func (c *Courier) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.h.RemoveStreamHandler(RecordProtocolID)
	c.cancel()
	c.wg.Wait()
	return nil
}

// Record returns the node's current signed record.
func (c *Courier) Record() *Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.own
}

// Offline tells the courier that direct delivery to p failed: pending
// messages to p are sealed and deposited with p's holders.
func (c *Courier) Offline(p peer.ID) {
	c.mu.Lock()
	if r, ok := c.sends[p]; ok {
		r.dirty, r.due = true, time.Time{}
	} else if !c.closed {
		c.sends[p] = &retry{}
	}
	c.mu.Unlock()
	poke(c.wakeSend)
}

// Learn asks the courier to fetch p's record from p (when connected and
// the cached one is missing or old), so that DMs to p can be deposited
// once p is offline.
func (c *Courier) Learn(p peer.ID) {
	if p == c.h.ID() {
		return
	}
	if rec, at := c.cached(p); rec != nil && time.Since(at) < c.cfg.RecordMaxAge {
		return
	}
	c.mu.Lock()
	if !c.closed {
		c.learn[p] = struct{}{}
	}
	c.mu.Unlock()
	poke(c.wakeSend)
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// open opens a stream to p, reaching it first with the addresses known.
// It is the one place that dials.
func (c *Courier) open(ctx context.Context, p peer.ID, proto string) (network.Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	if c.h.Network().Connectedness(p) != network.Connected {
		if err := c.cfg.Connect(ctx, peer.AddrInfo{ID: p}); err != nil {
			return nil, fmt.Errorf("reach %s: %w", p, err)
		}
	}
	return c.h.NewStream(network.WithAllowLimitedConn(ctx, "parley mailbox"), p, protocol.ID(proto))
}

// reach adds a holder's addresses from a record before opening streams.
func (c *Courier) reach(ai peer.AddrInfo) {
	if len(ai.Addrs) > 0 && c.h.Network().Connectedness(ai.ID) != network.Connected {
		c.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, 10*time.Minute)
	}
}

// watch turns identified peers into holders and pickups.
func (c *Courier) watch(sub event.Subscription) {
	defer c.wg.Done()
	defer func() { _ = sub.Close() }()
	for {
		select {
		case <-c.ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			if ev, ok := e.(event.EvtPeerIdentificationCompleted); ok {
				c.consider(ev.Peer)
			}
		}
	}
}

// consider makes p a holder of this node's mailbox when it runs one and
// is eligible, and picks up from it when it is one.
func (c *Courier) consider(p peer.ID) {
	if ok, _ := c.h.Peerstore().SupportsProtocols(p, ProtocolID); len(ok) == 0 {
		return
	}
	if !c.isHolder(p) {
		if !c.cfg.Eligible(p) {
			return
		}
		if err := c.addHolder(p); err != nil {
			c.log.Warn("mailbox: adding a holder failed", "holder", p, "err", err)
			return
		}
	}
	c.mu.Lock()
	c.picks[p] = struct{}{}
	c.mu.Unlock()
	poke(c.wakePick)
}

func (c *Courier) isHolder(p peer.ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.ContainsFunc(c.own.Holders, func(ai peer.AddrInfo) bool { return ai.ID == p })
}

// loadOwn reads the node's record, or signs a first one with no holders.
func (c *Courier) loadOwn() error {
	var env []byte
	err := c.db.Update(func(tx *bolt.Tx) error {
		for _, b := range []string{bucketSelf, bucketRecords, bucketSent} {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		env = bytes.Clone(tx.Bucket([]byte(bucketSelf)).Get([]byte("record")))
		return nil
	})
	if err != nil {
		return err
	}
	if rec, err := OpenRecord(env); err == nil && rec.Peer == c.h.ID() && bytes.Equal(rec.KEM.Bytes(), c.kem.PublicKey().Bytes()) {
		c.own = rec
		return nil
	}
	return c.resign(nil)
}

// resign signs and stores the node's record with holders.
func (c *Courier) resign(holders []peer.AddrInfo) error {
	issued := time.Now()
	if c.own != nil && !issued.After(c.own.Issued) {
		issued = c.own.Issued.Add(time.Millisecond)
	}
	rec, err := SignRecord(c.cfg.Key, c.kem.PublicKey(), holders, issued)
	if err != nil {
		return err
	}
	err = c.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketSelf)).Put([]byte("record"), rec.Envelope)
	})
	if err != nil {
		return fmt.Errorf("store own record: %w", err)
	}
	c.own = rec
	return nil
}

// addHolder adds p (with up to 4 of its known addresses) to the node's
// record, while it names fewer than MaxHolders.
func (c *Courier) addHolder(p peer.ID) error {
	ai := peer.AddrInfo{ID: p, Addrs: c.h.Peerstore().Addrs(p)}
	if len(ai.Addrs) > maxHolderAddrs {
		ai.Addrs = ai.Addrs[:maxHolderAddrs]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.own.Holders) >= MaxHolders || slices.ContainsFunc(c.own.Holders, func(h peer.AddrInfo) bool { return h.ID == p }) {
		return nil
	}
	if err := c.resign(append(slices.Clone(c.own.Holders), ai)); err != nil {
		return err
	}
	c.log.Info("mailbox: new holder", "holder", p)
	return nil
}

// handleRecord answers RecordProtocolID with the node's record.
func (c *Courier) handleRecord(str network.Stream) {
	defer func() { _ = str.Close() }()
	if err := str.Scope().SetService(ServiceName); err != nil {
		_ = str.Reset()
		return
	}
	if err := str.SetWriteDeadline(time.Now().Add(c.cfg.StreamTimeout)); err != nil {
		_ = str.Reset()
		return
	}
	own := c.Record()
	if err := pbframe.Write(str, &pb.Response{Kind: &pb.Response_Found{Found: &pb.Found{Record: own.Envelope}}}); err != nil {
		_ = str.Reset()
	}
}

// cached returns a correspondent's cached record and when it was issued.
func (c *Courier) cached(p peer.ID) (*Record, time.Time) {
	var env []byte
	_ = c.db.View(func(tx *bolt.Tx) error {
		env = bytes.Clone(tx.Bucket([]byte(bucketRecords)).Get([]byte(p)))
		return nil
	})
	if env == nil {
		return nil, time.Time{}
	}
	rec, err := OpenRecord(env)
	if err != nil || rec.Peer != p {
		return nil, time.Time{}
	}
	return rec, rec.Issued
}

// remember caches a correspondent's record unless a newer one is cached.
func (c *Courier) remember(rec *Record) {
	if rec == nil || rec.Peer == c.h.ID() {
		return
	}
	if old, _ := c.cached(rec.Peer); old != nil && !rec.Issued.After(old.Issued) {
		return
	}
	err := c.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketRecords)).Put([]byte(rec.Peer), rec.Envelope)
	})
	if err != nil {
		c.log.Warn("mailbox: caching a record failed", "peer", rec.Peer, "err", err)
	}
}

// recordOf returns p's record: cached, else asked of p itself when
// connected, else of the holders this node knows (its own and the
// connected ones).
func (c *Courier) recordOf(ctx context.Context, p peer.ID) (*Record, error) {
	if rec, _ := c.cached(p); rec != nil {
		return rec, nil
	}
	if c.h.Network().Connectedness(p) == network.Connected {
		if rec, err := c.client.OwnRecord(ctx, p); err == nil && rec != nil {
			c.remember(rec)
			return rec, nil
		}
	}
	for _, hp := range c.knownHolders() {
		rec, err := c.client.Lookup(ctx, hp, p)
		if err != nil {
			c.log.Debug("mailbox: record lookup failed", "holder", hp, "err", err)
			continue
		}
		if rec != nil {
			c.remember(rec)
			return rec, nil
		}
	}
	return nil, ErrNoRecord
}

// knownHolders are the node's own holders, then connected peers that run
// a holder.
func (c *Courier) knownHolders() []peer.ID {
	var out []peer.ID
	for _, ai := range c.Record().Holders {
		c.reach(ai)
		out = append(out, ai.ID)
	}
	for _, p := range c.h.Network().Peers() {
		if ok, _ := c.h.Peerstore().SupportsProtocols(p, ProtocolID); len(ok) > 0 && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func sentKey(to peer.ID, id []byte) []byte {
	k := make([]byte, 0, 1+len(to)+len(id))
	k = append(k, byte(len(to))) // #nosec G115 -- peer IDs here come from the dm outbox (<= 255 bytes)
	k = append(k, to...)
	return append(k, id...)
}

// undeposited filters out the messages deposited already.
func (c *Courier) undeposited(to peer.ID, msgs []dm.Outgoing) []dm.Outgoing {
	var out []dm.Outgoing
	_ = c.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketSent))
		for _, m := range msgs {
			if b.Get(sentKey(to, m.ID)) == nil {
				out = append(out, m)
			}
		}
		return nil
	})
	return out
}

// markSent records that the messages were deposited with holder.
func (c *Courier) markSent(to, holder peer.ID, ids [][]byte) error {
	now := time.Now().UnixMilli()
	return c.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketSent))
		for _, id := range ids {
			var s pb.Sent
			if v := b.Get(sentKey(to, id)); v != nil {
				_ = proto.Unmarshal(v, &s) // an unreadable record is replaced
			}
			s.Holders = append(s.Holders, []byte(holder))
			s.AtMs = now
			v, err := proto.Marshal(&s)
			if err != nil {
				return err
			}
			if err := b.Put(sentKey(to, id), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// pruneSent forgets deposits older than sentMaxAge.
func (c *Courier) pruneSent(now time.Time) {
	cutoff := now.Add(-sentMaxAge).UnixMilli()
	err := c.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketSent))
		var del [][]byte
		_ = b.ForEach(func(k, v []byte) error {
			var s pb.Sent
			if proto.Unmarshal(v, &s) != nil || s.AtMs < cutoff {
				del = append(del, bytes.Clone(k))
			}
			return nil
		})
		for _, k := range del {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		c.log.Warn("mailbox: pruning deposit records failed", "err", err)
	}
}

// sortNotes orders opened notes by sender, then the sender's order.
func sortNotes(ls []opened) {
	sort.SliceStable(ls, func(i, j int) bool {
		a, b := ls[i].l, ls[j].l
		if a.From != b.From {
			return a.From < b.From
		}
		if a.Note.SentAtMs != b.Note.SentAtMs {
			return a.Note.SentAtMs < b.Note.SentAtMs
		}
		return a.Note.Seq < b.Note.Seq
	})
}

type opened struct {
	id uint64
	l  *Letter
}

// Observe reacts to the node's events, without blocking: a DM that waits
// because its recipient is unreachable is deposited; a peer that
// exchanged a DM directly has its record fetched. The node's event loop
// calls it for every event.
func (c *Courier) Observe(e events.Event) {
	switch e := e.(type) {
	case events.DMStatus:
		switch {
		case e.Reason == events.DMWaitNoAddress, e.Reason == events.DMWaitDialFailed, e.Reason == events.DMWaitInterrupted:
			c.Offline(e.To)
		case e.State == events.DMDelivered && e.Via == events.DMViaDirect:
			c.Learn(e.To)
		case e.State == events.DMQueued && e.Reason == "" && c.h.Network().Connectedness(e.To) == network.Connected:
			c.Learn(e.To)
		}
	case events.DM:
		if e.Via == "" {
			c.Learn(e.From)
		}
	}
}
