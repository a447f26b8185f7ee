package fair

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// AgesBucket is the store bucket of identity ages: key a peer ID's bytes,
// value two big-endian uint64 unix seconds: first seen, last seen.
const AgesBucket = "fair/first-seen"

// Defaults of AgesConfig.
const (
	DefaultNewcomerAge = time.Hour
	DefaultMaxAges     = 1 << 16
	DefaultForgetAfter = 30 * 24 * time.Hour
	DefaultFlushEvery  = 30 * time.Second
	// maxPeerIDLen bounds a stored key (a peer ID is about 38 bytes).
	maxPeerIDLen = 128
)

// AgesConfig configures Ages; zero fields take the defaults.
type AgesConfig struct {
	// NewcomerAge: an identity first seen less than this long ago is a
	// newcomer (default 1 h).
	NewcomerAge time.Duration
	// Max bounds the identities remembered (default 65536). When full,
	// the newcomers are forgotten first (they lose nothing: they count as
	// newcomers either way); when every entry is older, new identities
	// are not remembered and stay newcomers until room is made.
	Max int
	// ForgetAfter forgets an identity not seen for this long (default 30
	// days).
	ForgetAfter time.Duration
	// FlushEvery is how often new sightings are written to the store
	// (default 30 s; also on Close).
	FlushEvery time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Ages remembers when each identity was first seen, in the store, so that
// an identity's age survives restarts. An identity is "seen" when it
// first asks for a budget (Newcomer) or connects (Seen). It is safe for
// concurrent use; Close stops its writer.
type Ages struct {
	cfg AgesConfig
	db  *bolt.DB // nil: remembered in memory only
	log *slog.Logger
	now func() time.Time

	mu    sync.Mutex
	seen  map[peer.ID]sighting // guarded by mu
	dirty map[peer.ID]struct{} // changed since the last flush; guarded by mu

	cancel context.CancelFunc
	done   chan struct{}
}

type sighting struct{ first, last int64 } // unix seconds

// NewAges loads the remembered ages from db (nil: memory only) and starts
// the writer; Close stops it.
func NewAges(db *bolt.DB, cfg AgesConfig) (*Ages, error) {
	if cfg.NewcomerAge <= 0 {
		cfg.NewcomerAge = DefaultNewcomerAge
	}
	if cfg.Max <= 0 {
		cfg.Max = DefaultMaxAges
	}
	if cfg.ForgetAfter <= 0 {
		cfg.ForgetAfter = DefaultForgetAfter
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = DefaultFlushEvery
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &Ages{cfg: cfg, db: db, log: cfg.Logger, now: time.Now,
		seen: make(map[peer.ID]sighting), dirty: make(map[peer.ID]struct{}), done: make(chan struct{})}
	if err := a.load(); err != nil {
		return nil, fmt.Errorf("load identity ages: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go a.run(ctx)
	return a, nil
}

func (a *Ages) load() error {
	if a.db == nil {
		return nil
	}
	cut := a.now().Add(-a.cfg.ForgetAfter).Unix()
	return a.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(AgesBucket))
		if err != nil {
			return err
		}
		var stale [][]byte
		err = b.ForEach(func(k, v []byte) error {
			if len(v) != 16 || len(k) > maxPeerIDLen || len(a.seen) >= a.cfg.Max {
				stale = append(stale, k)
				return nil
			}
			s := sighting{first: int64(binary.BigEndian.Uint64(v)), last: int64(binary.BigEndian.Uint64(v[8:]))} // #nosec G115 -- written by flush from unix seconds
			if s.last < cut {
				stale = append(stale, k)
				return nil
			}
			a.seen[peer.ID(k)] = s
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// Seen records that p was seen now: its first sighting if it is new.
func (a *Ages) Seen(p peer.ID) { a.Age(p) }

// Age returns how long ago p was first seen, and records this sighting
// (0 for an identity seen now for the first time).
func (a *Ages) Age(p peer.ID) time.Duration {
	if len(p) == 0 || len(p) > maxPeerIDLen {
		return 0
	}
	now := a.now().Unix()
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.seen[p]
	switch {
	case ok:
		// The last sighting is written at most once a day per identity.
		if now-s.last > 24*3600 {
			s.last = now
			a.seen[p] = s
			a.dirty[p] = struct{}{}
		}
		return time.Duration(max(now-s.first, 0)) * time.Second
	case len(a.seen) >= a.cfg.Max && !a.makeRoom(now):
		return 0
	}
	a.seen[p] = sighting{first: now, last: now}
	a.dirty[p] = struct{}{}
	return 0
}

// Newcomer reports whether p was first seen less than NewcomerAge ago
// (and records this sighting).
func (a *Ages) Newcomer(p peer.ID) bool { return a.Age(p) < a.cfg.NewcomerAge }

// makeRoom forgets the newcomers and the identities not seen for
// ForgetAfter, and reports whether there is room now. a.mu must be held.
func (a *Ages) makeRoom(now int64) bool {
	young := now - int64(a.cfg.NewcomerAge/time.Second)
	cut := now - int64(a.cfg.ForgetAfter/time.Second)
	for p, s := range a.seen {
		if s.first > young || s.last < cut {
			delete(a.seen, p)
			a.dirty[p] = struct{}{}
		}
	}
	return len(a.seen) < a.cfg.Max
}

// Len returns the number of identities remembered.
func (a *Ages) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.seen)
}

func (a *Ages) run(ctx context.Context) {
	defer close(a.done)
	t := time.NewTicker(a.cfg.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.Flush(); err != nil {
				a.log.Warn("fair: write identity ages", "err", err)
			}
		}
	}
}

// Flush writes the sightings changed since the last flush to the store.
func (a *Ages) Flush() error {
	if a.db == nil {
		return nil
	}
	a.mu.Lock()
	if len(a.dirty) == 0 {
		a.mu.Unlock()
		return nil
	}
	put := make(map[peer.ID]sighting, len(a.dirty))
	var del []peer.ID
	for p := range a.dirty {
		if s, ok := a.seen[p]; ok {
			put[p] = s
		} else {
			del = append(del, p)
		}
	}
	clear(a.dirty)
	a.mu.Unlock()
	err := a.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(AgesBucket))
		if err != nil {
			return err
		}
		for _, p := range del {
			if err := b.Delete([]byte(p)); err != nil {
				return err
			}
		}
		for p, s := range put {
			// bbolt keeps the value until the transaction ends.
			v := make([]byte, 16)
			binary.BigEndian.PutUint64(v[:8], uint64(s.first)) // #nosec G115 -- unix seconds, positive
			binary.BigEndian.PutUint64(v[8:], uint64(s.last))  // #nosec G115 -- unix seconds, positive
			if err := b.Put([]byte(p), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// Try again at the next flush.
		a.mu.Lock()
		for p := range put {
			a.dirty[p] = struct{}{}
		}
		for _, p := range del {
			a.dirty[p] = struct{}{}
		}
		a.mu.Unlock()
	}
	return err
}

// Close stops the writer and writes what is left.
func (a *Ages) Close() error {
	a.cancel()
	<-a.done
	return a.Flush()
}
