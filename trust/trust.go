package trust

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/internal/safetext"
)

const (
	bucketPeers = "trust/peers" // peer ID bytes -> JSON peerRecord
	bucketPins  = "trust/pins"  // nick comparison key -> peer ID bytes

	// lastSeenResolution is how stale LastSeen may get before Observe
	// writes a fresh one; it keeps Observe from writing on every message.
	lastSeenResolution = time.Minute
	// maxRecordSize bounds what Open decodes from one stored record.
	maxRecordSize = 4096

	// DefaultMaxPeers bounds the records the store keeps: every identity
	// that claims a nick in a room gets one, so a crowd of throwaway keys
	// would otherwise grow the store without end. Trusted peers never
	// count against it and are never dropped.
	DefaultMaxPeers = 20000
	// maxPinsPerPeer bounds the nick pins one key can hold: a key that
	// keeps changing its nick pins its first few nicks only (its later
	// nicks are shown unpinned, without a warning), so one identity cannot
	// fill the pin table either.
	maxPinsPerPeer = 8
)

// PeerInfo is what the store knows about a peer.
type PeerInfo struct {
	ID peer.ID `json:"peer_id"`
	// Nick is the last nick the peer claimed; empty when none yet.
	Nick        string `json:"nick"`
	Fingerprint string `json:"fingerprint"`
	// Pinned reports that the peer holds the pin of Nick. A peer that
	// claims a nick pinned to another key has Pinned false.
	Pinned    bool      `json:"pinned"`
	Trusted   bool      `json:"trusted"`
	TrustedAt time.Time `json:"trusted_at,omitzero"`
	FirstSeen time.Time `json:"first_seen,omitzero"`
	LastSeen  time.Time `json:"last_seen,omitzero"`
}

// PinConflict reports a peer claiming a nick whose pin another key holds.
type PinConflict struct {
	Nick string
	// Peer is the peer that claims Nick now; Pinned holds its pin.
	Peer   peer.ID
	Pinned peer.ID
	// New is true the first time Peer is seen claiming Nick, so the node
	// can warn loudly once and quietly mark later messages.
	New bool
}

// Text is the warning shown to the user.
func (c *PinConflict) Text() string {
	return fmt.Sprintf("WARNING: %q is now used by key %s (%s), but was first seen with key %s (%s). "+
		"This may be an impostor, or the owner has a new key. Compare safety numbers with /verify %s "+
		"over another channel; only /trust %s moves the name to the new key.",
		safetext.Line(c.Nick), identity.Fingerprint(c.Peer), c.Peer,
		identity.Fingerprint(c.Pinned), c.Pinned, c.Peer, c.Peer)
}

// Event returns the trust_warning event for the conflict.
func (c *PinConflict) Event() events.TrustWarning {
	return events.TrustWarning{
		PeerID:       c.Peer,
		Nick:         c.Nick,
		PinnedPeerID: c.Pinned,
		Text:         c.Text(),
	}
}

// peerRecord is the stored form of a known peer.
type peerRecord struct {
	Nick      string    `json:"nick,omitempty"`
	Trusted   bool      `json:"trusted,omitempty"`
	TrustedAt time.Time `json:"trusted_at,omitzero"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Conflict is the comparison key of the pinned nick this peer was
	// last reported claiming, so a conflict is New only once.
	Conflict string `json:"conflict,omitempty"`
}

// Store is the trust store. Its methods are safe for concurrent use.
type Store struct {
	db  *bolt.DB
	now func() time.Time

	mu    sync.Mutex
	peers map[peer.ID]peerRecord // guarded by mu; mirrors bucketPeers
	pins  map[string]peer.ID     // guarded by mu; mirrors bucketPins
	// pinned counts the pins each peer holds. Guarded by mu.
	pinned map[peer.ID]int
	// maxPeers bounds len(peers) less the trusted ones (SetMaxPeers).
	// Guarded by mu.
	maxPeers int

	// behind is how long Observe may keep what it learnt in memory only
	// (WriteBehind); 0: it writes at once. dirtyPeers and dirtyPins are
	// the records and pins Observe changed and did not write yet, since
	// dirtySince. Guarded by mu.
	behind     time.Duration
	dirtyPeers map[peer.ID]struct{}
	dirtyPins  map[string]struct{}
	dirtySince time.Time
}

// Open loads the trust store from db, creating its buckets when missing.
func Open(db *bolt.DB) (*Store, error) {
	s := &Store{db: db, now: time.Now, peers: map[peer.ID]peerRecord{}, pins: map[string]peer.ID{},
		pinned: map[peer.ID]int{}, maxPeers: DefaultMaxPeers}
	err := db.Update(func(tx *bolt.Tx) error {
		pb, err := tx.CreateBucketIfNotExists([]byte(bucketPeers))
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", bucketPeers, err)
		}
		nb, err := tx.CreateBucketIfNotExists([]byte(bucketPins))
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", bucketPins, err)
		}
		if err := pb.ForEach(s.loadPeer); err != nil {
			return err
		}
		var stale [][]byte
		err = nb.ForEach(func(k, v []byte) error {
			if identity.NickKey(string(k)) != string(k) {
				stale = append(stale, append([]byte(nil), k...))
				return nil
			}
			return s.loadPin(k, v)
		})
		if err != nil {
			return err
		}
		return s.rekeyPins(nb, stale)
	})
	if err != nil {
		return nil, fmt.Errorf("open trust store: %w", err)
	}
	return s, nil
}

func (s *Store) loadPeer(k, v []byte) error {
	id, err := peer.IDFromBytes(k)
	if err != nil {
		return fmt.Errorf("%w: peer key %x: %v", ErrCorrupt, k, err)
	}
	if len(v) > maxRecordSize {
		return fmt.Errorf("%w: record of %s is %d bytes", ErrCorrupt, id, len(v))
	}
	var r peerRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return fmt.Errorf("%w: record of %s: %v", ErrCorrupt, id, err)
	}
	if r.Nick != "" && identity.ValidateNick(r.Nick) != nil {
		return fmt.Errorf("%w: record of %s has an invalid nick", ErrCorrupt, id)
	}
	s.peers[id] = r
	return nil
}

// rekeyPins moves the pins stored under keys of an older nick comparison
// rule (PRECIS Nickname, before identity.FoldName: "straße" is now
// "strasse") to their current key. A pin already stored under the current
// key wins, so a pin moved by /trust since is kept.
func (s *Store) rekeyPins(nb *bolt.Bucket, stale [][]byte) error {
	for _, k := range stale {
		v := nb.Get(k)
		if err := nb.Delete(k); err != nil {
			return fmt.Errorf("delete pin %q: %w", k, err)
		}
		key := identity.NickKey(string(k))
		if _, ok := s.pins[key]; ok || key == "" {
			continue
		}
		if err := s.loadPin([]byte(key), v); err != nil {
			return err
		}
		if err := nb.Put([]byte(key), v); err != nil {
			return fmt.Errorf("move pin %q: %w", k, err)
		}
	}
	return nil
}

func (s *Store) loadPin(k, v []byte) error {
	id, err := peer.IDFromBytes(v)
	if err != nil {
		return fmt.Errorf("%w: pin %q: %v", ErrCorrupt, k, err)
	}
	s.setPin(string(k), id)
	return nil
}

// setPin pins key to p, keeping the per-peer counts. Callers hold mu.
func (s *Store) setPin(key string, p peer.ID) {
	if old, ok := s.pins[key]; ok {
		s.dropPin(key, old)
	}
	s.pins[key] = p
	s.pinned[p]++
}

// dropPin removes key's pin, held by p. Callers hold mu.
func (s *Store) dropPin(key string, p peer.ID) {
	delete(s.pins, key)
	if s.pinned[p] <= 1 {
		delete(s.pinned, p)
		return
	}
	s.pinned[p]--
}

// SetMaxPeers sets how many records of untrusted peers the store keeps
// (DefaultMaxPeers unless set; n < 1 means the default). Past it, Observe
// makes room by dropping the untrusted records first seen most recently
// (and the pins they hold): a crowd of new keys churns among itself and
// cannot push out the peers seen before it.
func (s *Store) SetMaxPeers(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n < 1 {
		n = DefaultMaxPeers
	}
	s.maxPeers = n
}

// makeRoom drops untrusted records, newest first seen first, until one
// more fits under maxPeers; the drops are written with the next flush
// (at once when Observe writes at once). Callers hold mu.
func (s *Store) makeRoom() {
	if len(s.peers) < s.maxPeers {
		return // fewer records in all than the untrusted may have: no scan
	}
	untrusted := make([]peer.ID, 0, len(s.peers))
	for p, rec := range s.peers {
		if !rec.Trusted {
			untrusted = append(untrusted, p)
		}
	}
	if len(untrusted) < s.maxPeers {
		return
	}
	// Drop a sixteenth at once, so a flood sorts once per many arrivals.
	n := len(untrusted) - s.maxPeers + 1 + s.maxPeers/16
	sort.Slice(untrusted, func(i, j int) bool {
		a, b := s.peers[untrusted[i]].FirstSeen, s.peers[untrusted[j]].FirstSeen
		if !a.Equal(b) {
			return a.After(b)
		}
		return untrusted[i] < untrusted[j]
	})
	drop := make(map[peer.ID]bool, n)
	for _, p := range untrusted[:min(n, len(untrusted))] {
		drop[p] = true
		delete(s.peers, p)
		s.markDirtyPeer(p)
	}
	for k, holder := range s.pins {
		if drop[holder] {
			s.dropPin(k, holder)
			s.dirtyPins[k] = struct{}{}
		}
	}
}

// markDirtyPeer records that p's record must be written (or deleted) by
// the next flush. Callers hold mu.
func (s *Store) markDirtyPeer(p peer.ID) {
	if s.dirtyPeers == nil {
		s.dirtyPeers, s.dirtyPins = make(map[peer.ID]struct{}), make(map[string]struct{})
	}
	s.dirtyPeers[p] = struct{}{}
	if s.dirtySince.IsZero() {
		s.dirtySince = s.now()
	}
}

// Observe records that peer p claims nick (from a room message, a direct
// message or a hello). The first peer seen with a nick gets its pin. When
// the nick is pinned to another peer, Observe returns a *PinConflict and
// leaves the pin alone. The error reports an invalid nick
// (identity.ErrInvalidNick) or a storage failure.
func (s *Store) Observe(p peer.ID, nick string) (*PinConflict, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("observe peer: %w", err)
	}
	if err := identity.ValidateNick(nick); err != nil {
		return nil, fmt.Errorf("observe %s: %w", p, err)
	}
	now := s.now()
	key := identity.NickKey(nick)

	s.mu.Lock()
	defer s.mu.Unlock()
	rec, known := s.peers[p]
	dirty := !known || rec.Nick != nick || now.Sub(rec.LastSeen) >= lastSeenResolution
	if !known {
		rec.FirstSeen = now
		s.makeRoom()
	}
	rec.Nick = nick
	rec.LastSeen = now

	var conflict *PinConflict
	holder, pinned := s.pins[key]
	newPin := !pinned && s.pinned[p] < maxPinsPerPeer
	switch {
	case !pinned && !newPin:
		// p holds its share of pins: this nick stays unpinned.
	case newPin:
		dirty = true
	case holder != p:
		conflict = &PinConflict{Nick: nick, Peer: p, Pinned: holder, New: rec.Conflict != key}
		if conflict.New {
			rec.Conflict = key
			dirty = true
		}
	case rec.Conflict != "":
		rec.Conflict = ""
		dirty = true
	}
	if !dirty {
		return conflict, s.flushDue(now)
	}
	if s.behind > 0 {
		s.peers[p] = rec
		s.markDirtyPeer(p)
		if newPin {
			s.setPin(key, p)
			s.dirtyPins[key] = struct{}{}
		}
		return conflict, s.flushDue(now)
	}
	if err := s.flush(); err != nil { // what makeRoom dropped
		return nil, fmt.Errorf("observe %s: %w", p, err)
	}
	if err := s.put(p, rec, newPin, key); err != nil {
		return nil, fmt.Errorf("observe %s: %w", p, err)
	}
	return conflict, nil
}

// WriteBehind lets Observe keep what it learnt (a new peer, nick, pin,
// a fresher LastSeen) in memory for up to d, and write it all in one
// transaction with the first observation after that, or at Flush: a
// crowd of new identities in a room then costs one store write a
// second, not one each, on the caller's path (node's event loop, which
// shows known peers' lines behind them; docs/SECURITY.md, "Budgets").
// What was not written yet is lost if the process dies. Trust, Untrust
// and Forget still write at once. 0 (the default) writes at once.
func (s *Store) WriteBehind(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.behind = max(d, 0)
	if s.dirtyPeers == nil {
		s.dirtyPeers, s.dirtyPins = make(map[peer.ID]struct{}), make(map[string]struct{})
	}
}

// Flush writes what Observe kept in memory (WriteBehind).
func (s *Store) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flush()
}

// flushDue flushes when the oldest unwritten change is WriteBehind old.
// Callers hold mu.
func (s *Store) flushDue(now time.Time) error {
	if s.dirtySince.IsZero() || now.Sub(s.dirtySince) < s.behind {
		return nil
	}
	return s.flush()
}

// flush writes the records and pins Observe changed, as memory holds
// them now (deleted when memory no longer has them: Forget). Callers hold
// mu.
func (s *Store) flush() error {
	if len(s.dirtyPeers) == 0 && len(s.dirtyPins) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		peers, pins := tx.Bucket([]byte(bucketPeers)), tx.Bucket([]byte(bucketPins))
		for p := range s.dirtyPeers {
			rec, ok := s.peers[p]
			if !ok {
				if err := peers.Delete([]byte(p)); err != nil {
					return fmt.Errorf("delete peer record: %w", err)
				}
				continue
			}
			v, err := json.Marshal(rec)
			if err != nil {
				return fmt.Errorf("encode peer record: %w", err)
			}
			if err := peers.Put([]byte(p), v); err != nil {
				return fmt.Errorf("store peer record: %w", err)
			}
		}
		for k := range s.dirtyPins {
			holder, ok := s.pins[k]
			if !ok {
				if err := pins.Delete([]byte(k)); err != nil {
					return fmt.Errorf("delete nick pin: %w", err)
				}
				continue
			}
			if err := pins.Put([]byte(k), []byte(holder)); err != nil {
				return fmt.Errorf("store nick pin: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write observed peers: %w", err)
	}
	clear(s.dirtyPeers)
	clear(s.dirtyPins)
	s.dirtySince = time.Time{}
	return nil
}

// put writes rec (and, when pin is set, the pin of key to p) to the
// database, then to memory. Callers hold mu.
func (s *Store) put(p peer.ID, rec peerRecord, pin bool, key string) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode peer record: %w", err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte(bucketPeers)).Put([]byte(p), v); err != nil {
			return fmt.Errorf("store peer record: %w", err)
		}
		if pin {
			if err := tx.Bucket([]byte(bucketPins)).Put([]byte(key), []byte(p)); err != nil {
				return fmt.Errorf("store nick pin: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.peers[p] = rec
	if pin {
		s.setPin(key, p)
	}
	return nil
}

// Trust records that the user compared the safety number with p. When p's
// current nick is pinned to another peer, the pin moves to p: this
// deliberate act is the only way a pin changes.
func (s *Store) Trust(p peer.ID) error {
	return s.setTrust(p, true)
}

// Untrust removes p's trust mark. Pins stay as they are.
func (s *Store) Untrust(p peer.ID) error {
	return s.setTrust(p, false)
}

func (s *Store) setTrust(p peer.ID, trusted bool) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("trust peer: %w", err)
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, known := s.peers[p]
	if !known && !trusted {
		return nil
	}
	if !known {
		rec.FirstSeen = now
		rec.LastSeen = now
	}
	rec.Trusted = trusted
	rec.TrustedAt = time.Time{}
	if trusted {
		rec.TrustedAt = now
	}
	var key string
	repin := false
	if trusted && rec.Nick != "" {
		key = identity.NickKey(rec.Nick)
		repin = s.pins[key] != p
		rec.Conflict = ""
	}
	if err := s.put(p, rec, repin, key); err != nil {
		return fmt.Errorf("trust %s: %w", p, err)
	}
	return nil
}

// Forget removes everything the store knows about p: its record, its
// trust mark and the nick pins it holds (the next key seen with such a
// nick takes the pin). It reports whether p was known. /forget uses it
// to let the user drop an impostor or a retired key.
func (s *Store) Forget(p peer.ID) (bool, error) {
	if err := p.Validate(); err != nil {
		return false, fmt.Errorf("forget peer: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, known := s.peers[p]
	var keys []string
	for k, holder := range s.pins {
		if holder == p {
			keys = append(keys, k)
		}
	}
	if !known && len(keys) == 0 {
		return false, nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte(bucketPeers)).Delete([]byte(p)); err != nil {
			return fmt.Errorf("delete peer record: %w", err)
		}
		for _, k := range keys {
			if err := tx.Bucket([]byte(bucketPins)).Delete([]byte(k)); err != nil {
				return fmt.Errorf("delete nick pin: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("forget %s: %w", p, err)
	}
	delete(s.peers, p)
	for _, k := range keys {
		s.dropPin(k, p)
	}
	return true, nil
}

// Get returns what the store knows about p.
func (s *Store) Get(p peer.ID) (PeerInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.peers[p]
	if !ok {
		return PeerInfo{ID: p, Fingerprint: identity.Fingerprint(p)}, false
	}
	return s.info(p, rec), true
}

// PinnedToOther reports whether nick (compared as identity.NickKey does)
// is pinned to a key other than p: p claiming it gets a trust warning
// (Observe), so its messages are flagged nick_shared and shown with its
// fingerprint (rooms.Config.NickPinned), also when the pin's holder is in
// none of the rooms.
func (s *Store) PinnedToOther(p peer.ID, nick string) bool {
	key := identity.NickKey(nick)
	s.mu.Lock()
	defer s.mu.Unlock()
	holder, ok := s.pins[key]
	return ok && holder != p
}

// Trusted reports whether p is marked trusted (Trust), without building
// its PeerInfo: a policy may ask it on every request.
func (s *Store) Trusted(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peers[p].Trusted
}

// Known returns every known peer, sorted by nick, then peer ID.
func (s *Store) Known() []PeerInfo {
	s.mu.Lock()
	out := make([]PeerInfo, 0, len(s.peers))
	for p, rec := range s.peers {
		out = append(out, s.info(p, rec))
	}
	s.mu.Unlock()
	sortInfos(out)
	return out
}

func sortInfos(out []PeerInfo) {
	sort.Slice(out, func(i, j int) bool {
		if out[i].Nick != out[j].Nick {
			return out[i].Nick < out[j].Nick
		}
		return out[i].ID < out[j].ID
	})
}

// info converts a record. Callers hold mu.
func (s *Store) info(p peer.ID, rec peerRecord) PeerInfo {
	return PeerInfo{
		ID:          p,
		Nick:        rec.Nick,
		Fingerprint: identity.Fingerprint(p),
		Pinned:      rec.Nick != "" && s.pins[identity.NickKey(rec.Nick)] == p,
		Trusted:     rec.Trusted,
		TrustedAt:   rec.TrustedAt,
		FirstSeen:   rec.FirstSeen,
		LastSeen:    rec.LastSeen,
	}
}

func fingerprint(p peer.ID) string { return identity.Fingerprint(p) }
