package overlay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	bolt "go.etcd.io/bbolt"
)

// PeersBucket is the store bucket of remembered peers: key the peer ID's
// bytes, value a JSON record {"addrs":[multiaddr...],"last_seen":unix}.
const PeersBucket = "overlay/peers"

const (
	// maxRecordSize bounds one stored record before it is decoded.
	maxRecordSize = 8 << 10
	// maxRecordAddrs bounds the addresses remembered per peer.
	maxRecordAddrs = 16
	// maxAddrLen bounds one remembered address (string form).
	maxAddrLen = 256
	// memoryMaxDials bounds concurrent redials.
	memoryMaxDials = 8
)

// PeerMemory configures how the node remembers the Parley peers it has
// seen and redials them after a restart, a dropped connection or a
// network change. Only peers whose identify agent starts with "parley"
// are remembered, so DHT traffic on the public DHT fills nothing.
type PeerMemory struct {
	// MaxPeers bounds the remembered peers; the least recently seen are
	// forgotten first (default 256).
	MaxPeers int
	// MaxAge forgets peers not seen for this long (default 7 days).
	MaxAge time.Duration
	// StrangerMaxAge forgets strangers (peers Config.Known does not know
	// when they are seen) not seen for this long (default 1 h); at most a
	// quarter of the Redial slots go to strangers.
	StrangerMaxAge time.Duration
	// Redial is how many of the most recently seen peers are redialled
	// (default 32).
	Redial int
	// RedialMax is the longest wait between two dials of one peer; waits
	// start at 1 s and double (default 10 min).
	RedialMax time.Duration
	// FlushEvery is how often changes are written to the store (default
	// 30 s; also on Close).
	FlushEvery time.Duration
}

func (m *PeerMemory) setDefaults() {
	if m.MaxPeers <= 0 {
		m.MaxPeers = 256
	}
	if m.MaxAge <= 0 {
		m.MaxAge = 7 * 24 * time.Hour
	}
	if m.StrangerMaxAge <= 0 {
		m.StrangerMaxAge = time.Hour
	}
	m.StrangerMaxAge = min(m.StrangerMaxAge, m.MaxAge)
	if m.Redial <= 0 {
		m.Redial = 32
	}
	if m.Redial > m.MaxPeers {
		m.Redial = m.MaxPeers
	}
	if m.RedialMax <= 0 {
		m.RedialMax = 10 * time.Minute
	}
	if m.FlushEvery <= 0 {
		m.FlushEvery = 30 * time.Second
	}
}

// PeerRecord is a remembered peer.
type PeerRecord struct {
	ID       peer.ID
	Addrs    []ma.Multiaddr
	LastSeen time.Time
	// Stranger: the peer was not known (Config.Known) when last seen;
	// its addresses passed plausibleAddrs and it is kept StrangerMaxAge.
	Stranger bool
}

type recordJSON struct {
	Addrs    []string `json:"addrs"`
	LastSeen int64    `json:"last_seen"`
	Stranger bool     `json:"stranger,omitempty"`
}

// encodeRecord is the stored form of r.
func encodeRecord(r PeerRecord) ([]byte, error) {
	j := recordJSON{LastSeen: r.LastSeen.Unix(), Stranger: r.Stranger}
	for _, a := range r.Addrs {
		if s := a.String(); len(s) <= maxAddrLen && len(j.Addrs) < maxRecordAddrs {
			j.Addrs = append(j.Addrs, s)
		}
	}
	b, err := json.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("encode peer record: %w", err)
	}
	return b, nil
}

// errBadRecord marks a stored record that cannot be used.
var errBadRecord = errors.New("bad peer record")

// decodeRecord validates and decodes a stored record. Unparsable
// addresses are skipped; a record without a valid peer ID, with a bad
// size or bad JSON is an error.
func decodeRecord(key, val []byte) (PeerRecord, error) {
	id, err := peer.IDFromBytes(key)
	if err != nil {
		return PeerRecord{}, fmt.Errorf("%w: key: %v", errBadRecord, err)
	}
	if len(val) > maxRecordSize {
		return PeerRecord{}, fmt.Errorf("%w: %d bytes", errBadRecord, len(val))
	}
	var j recordJSON
	dec := json.NewDecoder(bytes.NewReader(val))
	if err := dec.Decode(&j); err != nil {
		return PeerRecord{}, fmt.Errorf("%w: %v", errBadRecord, err)
	}
	if j.LastSeen <= 0 {
		return PeerRecord{}, fmt.Errorf("%w: no last_seen", errBadRecord)
	}
	r := PeerRecord{ID: id, LastSeen: time.Unix(j.LastSeen, 0), Stranger: j.Stranger}
	for _, s := range j.Addrs {
		if len(r.Addrs) == maxRecordAddrs {
			break
		}
		if len(s) > maxAddrLen {
			continue
		}
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			continue
		}
		r.Addrs = append(r.Addrs, a)
	}
	return r, nil
}

// memory keeps PeerRecords in memory, writes changes to the store every
// FlushEvery, and redials the most recently seen peers with backoff.
type memory struct {
	o       *Host
	db      *bolt.DB
	cfg     PeerMemory
	backoff Backoff
	sub     event.Subscription
	sema    chan struct{}
	wake    chan struct{} // capacity 1: the redial schedule changed

	mu     sync.Mutex
	peers  map[peer.ID]*PeerRecord  // guarded by mu
	dirty  map[peer.ID]bool         // guarded by mu; true: write, false: delete
	redial map[peer.ID]*redialState // guarded by mu
}

type redialState struct {
	next    time.Time
	wait    time.Duration
	dialing bool
}

func newMemory(o *Host, db *bolt.DB, cfg PeerMemory, b Backoff) *memory {
	return &memory{
		o: o, db: db, cfg: cfg, backoff: b,
		sema:   make(chan struct{}, memoryMaxDials),
		wake:   make(chan struct{}, 1),
		peers:  make(map[peer.ID]*PeerRecord),
		dirty:  make(map[peer.ID]bool),
		redial: make(map[peer.ID]*redialState),
	}
}

// load reads the remembered peers, forgets those too old or corrupt, and
// schedules the most recent for a redial at once.
func (m *memory) load() error {
	now := time.Now()
	var recs []PeerRecord
	err := m.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(PeersBucket))
		if err != nil {
			return err
		}
		var drop [][]byte
		err = b.ForEach(func(k, v []byte) error {
			r, err := decodeRecord(k, v)
			if err != nil || now.Sub(r.LastSeen) > m.maxAge(r) {
				if err != nil {
					m.o.log.Warn("forgetting a corrupt remembered peer", "err", err)
				}
				drop = append(drop, bytes.Clone(k))
				return nil
			}
			recs = append(recs, r)
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range drop {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load remembered peers from bucket %s: %w", PeersBucket, err)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].LastSeen.After(recs[j].LastSeen) })
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range recs {
		r := recs[i]
		if r.ID == m.o.ID() {
			continue
		}
		if len(m.peers) >= m.cfg.MaxPeers {
			m.dirty[r.ID] = false
			continue
		}
		m.peers[r.ID] = &r
		m.o.Peerstore().AddAddrs(r.ID, r.Addrs, peerstore.AddressTTL)
		if m.redialRoom(r.Stranger) {
			m.redial[r.ID] = &redialState{next: now}
		}
	}
	return nil
}

func (m *memory) start() error {
	if err := m.load(); err != nil {
		return err
	}
	sub, err := m.o.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		return fmt.Errorf("subscribe to identify events: %w", err)
	}
	m.sub = sub
	m.o.goroutine(m.identified)
	m.o.goroutine(m.run)
	return nil
}

// isParley reports whether an identify agent version is a Parley node's.
func isParley(agent string) bool { return strings.HasPrefix(agent, "parley") }

// identified remembers Parley peers once identify tells their addresses.
func (m *memory) identified() {
	for {
		select {
		case <-m.o.ctx.Done():
			return
		case e, ok := <-m.sub.Out():
			if !ok {
				return
			}
			ev := e.(event.EvtPeerIdentificationCompleted)
			if !isParley(ev.AgentVersion) || ev.Peer == m.o.ID() {
				continue
			}
			if m.o.guard.isKnown(ev.Peer) {
				m.remember(ev.Peer, rememberAddrs(ev.ListenAddrs, ev.Conn), false)
				continue
			}
			var remote ma.Multiaddr
			if ev.Conn != nil {
				remote = ev.Conn.RemoteMultiaddr()
			}
			keep, _ := plausibleAddrs(announcedAddrs(ev), remote)
			m.remember(ev.Peer, rememberAddrs(keep, ev.Conn), true)
		}
	}
}

// rememberAddrs picks the addresses worth redialling: what the peer says
// it listens on, plus the address we dialled it at. Loopback addresses
// only when we reached it over loopback.
func rememberAddrs(listen []ma.Multiaddr, c network.Conn) []ma.Multiaddr {
	var remote ma.Multiaddr
	if c != nil {
		remote = c.RemoteMultiaddr()
	}
	loopOK := remote != nil && manet.IsIPLoopback(remote)
	var out []ma.Multiaddr
	if c != nil && c.Stat().Direction == network.DirOutbound && remote != nil {
		out = append(out, remote)
	}
	for _, a := range listen {
		if manet.IsIPLoopback(a) && !loopOK {
			continue
		}
		out = append(out, a)
	}
	out = ma.Unique(out)
	if len(out) > maxRecordAddrs {
		out = out[:maxRecordAddrs]
	}
	return out
}

func (m *memory) remember(p peer.ID, addrs []ma.Multiaddr, stranger bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.peers[p]
	if !ok {
		if len(m.peers) >= m.cfg.MaxPeers {
			m.evictOldest()
		}
		r = &PeerRecord{ID: p}
		m.peers[p] = r
	}
	if len(addrs) > 0 || stranger {
		r.Addrs = addrs
	}
	r.LastSeen, r.Stranger = time.Now(), stranger
	m.dirty[p] = true
}

// evictOldest forgets the least recently seen peer. Caller holds mu.
func (m *memory) evictOldest() {
	var oldest *PeerRecord
	for _, r := range m.peers {
		if oldest == nil || r.LastSeen.Before(oldest.LastSeen) {
			oldest = r
		}
	}
	if oldest != nil {
		delete(m.peers, oldest.ID)
		delete(m.redial, oldest.ID)
		m.dirty[oldest.ID] = false
	}
}

// connected resets p's redial backoff.
func (m *memory) connected(p peer.ID) {
	m.mu.Lock()
	if st, ok := m.redial[p]; ok {
		st.wait = 0
	}
	m.mu.Unlock()
}

// disconnected schedules a remembered peer for a redial.
func (m *memory) disconnected(p peer.ID) {
	m.mu.Lock()
	r, ok := m.peers[p]
	if ok {
		r.LastSeen = time.Now()
		m.dirty[p] = true
		st, scheduled := m.redial[p]
		switch {
		case scheduled:
			st.next = time.Now().Add(jitter(m.backoff.Min))
		case m.redialRoom(r.Stranger):
			m.redial[p] = &redialState{next: time.Now().Add(jitter(m.backoff.Min))}
		}
	}
	m.mu.Unlock()
	if ok {
		m.poke()
	}
}

// networkChanged redials every scheduled peer now.
func (m *memory) networkChanged() {
	m.mu.Lock()
	for _, st := range m.redial {
		st.next, st.wait = time.Time{}, 0
	}
	m.mu.Unlock()
	m.poke()
}

func (m *memory) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// run redials due peers and flushes to the store until the host closes;
// then it flushes a last time.
func (m *memory) run() {
	flush := time.NewTicker(m.cfg.FlushEvery)
	defer flush.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var dials sync.WaitGroup
	defer func() {
		dials.Wait()
		if err := m.flush(); err != nil {
			m.o.log.Warn("save remembered peers", "err", err)
		}
	}()
	m.dialDue(&dials)
	for {
		select {
		case <-m.o.ctx.Done():
			return
		case <-flush.C:
			m.touchConnected()
			if err := m.flush(); err != nil {
				m.o.log.Warn("save remembered peers", "err", err)
			}
		case <-tick.C:
		case <-m.wake:
		}
		m.dialDue(&dials)
	}
}

// dialDue starts a dial for every scheduled peer that is due.
func (m *memory) dialDue(dials *sync.WaitGroup) {
	now := time.Now()
	var due []peer.ID
	m.mu.Lock()
	for p, st := range m.redial {
		r := m.peers[p]
		if r == nil || now.Sub(r.LastSeen) > m.maxAge(*r) {
			delete(m.redial, p)
			continue
		}
		if st.dialing || now.Before(st.next) || m.o.Network().Connectedness(p) == network.Connected {
			continue
		}
		st.dialing = true
		due = append(due, p)
	}
	m.mu.Unlock()
	for _, p := range due {
		dials.Add(1)
		go func() {
			defer dials.Done()
			m.dial(p)
		}()
	}
}

func (m *memory) dial(p peer.ID) {
	ctx := m.o.ctx
	select {
	case m.sema <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-m.sema }()
	dctx, cancel := context.WithTimeout(ctx, m.backoff.DialTimeout)
	err := m.o.Connect(dctx, peer.AddrInfo{ID: p})
	cancel()
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.redial[p]
	if !ok {
		return
	}
	st.dialing = false
	if err == nil {
		st.wait = 0
		return
	}
	st.wait = min(m.backoff.next(st.wait), m.cfg.RedialMax)
	st.next = time.Now().Add(jitter(st.wait))
	if ctx.Err() == nil {
		m.o.log.Debug("redial remembered peer failed", "peer", p, "retry in", st.wait, "err", err)
	}
}

// touchConnected marks connected remembered peers as seen now, and
// strangers that became known as known; it forgets strangers not seen for
// StrangerMaxAge.
func (m *memory) touchConnected() {
	now := time.Now()
	m.mu.Lock()
	var strangers []peer.ID
	for p, r := range m.peers {
		if r.Stranger {
			strangers = append(strangers, p)
		}
	}
	m.mu.Unlock()
	nowKnown := make(map[peer.ID]bool)
	for _, p := range strangers { // Known may read stores: not under mu
		if m.o.guard.isKnown(p) {
			nowKnown[p] = true
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for p, r := range m.peers {
		if nowKnown[p] {
			r.Stranger = false
			m.dirty[p] = true
		}
		if m.o.Network().Connectedness(p) == network.Connected {
			r.LastSeen = now
			m.dirty[p] = true
		} else if now.Sub(r.LastSeen) > m.maxAge(*r) {
			delete(m.peers, p)
			delete(m.redial, p)
			m.dirty[p] = false
		}
	}
}

// maxAge is how long r is remembered without being seen.
func (m *memory) maxAge(r PeerRecord) time.Duration {
	if r.Stranger {
		return m.cfg.StrangerMaxAge
	}
	return m.cfg.MaxAge
}

// redialRoom reports whether one more peer (a stranger or not) may be
// scheduled for redials: Redial in all, strangers a quarter of them (at
// least one). m.mu must be held.
func (m *memory) redialRoom(stranger bool) bool {
	if len(m.redial) >= m.cfg.Redial {
		return false
	}
	if !stranger {
		return true
	}
	n := 0
	for p := range m.redial {
		if r := m.peers[p]; r != nil && r.Stranger {
			n++
		}
	}
	return n < max(m.cfg.Redial/4, 1)
}

// flush writes the changed records in one transaction.
func (m *memory) flush() error {
	m.mu.Lock()
	if len(m.dirty) == 0 {
		m.mu.Unlock()
		return nil
	}
	puts := make(map[peer.ID][]byte, len(m.dirty))
	var dels []peer.ID
	var encErr error
	for p, write := range m.dirty {
		r, ok := m.peers[p]
		if !write || !ok {
			dels = append(dels, p)
			continue
		}
		b, err := encodeRecord(*r)
		if err != nil {
			encErr = err
			continue
		}
		puts[p] = b
	}
	m.dirty = make(map[peer.ID]bool)
	m.mu.Unlock()
	err := m.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(PeersBucket))
		if err != nil {
			return err
		}
		for p, v := range puts {
			if err := b.Put([]byte(p), v); err != nil {
				return err
			}
		}
		for _, p := range dels {
			if err := b.Delete([]byte(p)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write bucket %s: %w", PeersBucket, err)
	}
	return encErr
}

func (m *memory) stop() {
	if m.sub != nil {
		_ = m.sub.Close()
	}
}

// Remembered returns the remembered peers, most recently seen first.
func (o *Host) Remembered() []PeerRecord {
	if o.memory == nil {
		return nil
	}
	m := o.memory
	m.mu.Lock()
	out := make([]PeerRecord, 0, len(m.peers))
	for _, r := range m.peers {
		out = append(out, *r)
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].LastSeen.After(out[j].LastSeen) })
	return out
}
