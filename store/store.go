// Package store owns the node's embedded database: one bbolt file,
// parley.db, in the data directory. bbolt is a copy-on-write B+tree with a
// single writer; every update is a transaction that is fsynced before it
// commits, so a crash mid-write leaves the previous committed state.
//
// Each feature package keeps its data in its own top-level buckets, named
// after the package ("rooms/...", "dm/...", "transfer/..."), and is handed
// the *bbolt.DB from here. The file lock also keeps two Parley processes
// from sharing one data directory.
//
// Damage. Open reads every page of the file once (every bucket, key and
// value) before handing it out, with panics and memory faults turned into
// ErrCorrupt: bbolt trusts its file and panics, or faults on its memory
// map, when the bytes are damaged (truncated, garbled, zeroed). A damaged
// store is never opened; the error says which file, what is wrong and
// what to do.
//
// Backup. After a store passed the check, Open copies it to
// parley.db.bak (a consistent snapshot, written to a temporary file and
// renamed), unless the store is empty: the backup is the last good store,
// with the room keys, the outbox and the history as of the last start
// (Close makes the first one, when the data dir's first run wrote data). Its
// existence also shows that the data dir was used: Open reports (Info) a
// store that is new or empty while a backup exists (LostData), and keeps
// that backup under a new name, so the node can warn instead of starting
// over in silence.
package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FileName is the database file inside the data directory; BackupName its
// last good copy.
const (
	FileName   = "parley.db"
	BackupName = FileName + ".bak"
)

var (
	// ErrLocked is returned when another process holds the database open.
	ErrLocked = errors.New("data dir is in use by another parley process")
	// ErrCorrupt is returned when the database file is damaged.
	ErrCorrupt = errors.New("store is damaged")
)

// Store is the node's open database.
type Store struct {
	db   *bolt.DB
	info Info
}

// Info describes what Open found.
type Info struct {
	// Path is the database file.
	Path string
	// Empty: the store has no bucket (it was missing, 0 bytes, or never
	// written to).
	Empty bool
	// Backup is the path of the last good copy, "" when there is none;
	// BackupTime is when it was made.
	Backup     string
	BackupTime time.Time
	// BackupErr says why the backup of a good store could not be written
	// (the store is usable).
	BackupErr error
	// LostData: the store is empty although an earlier run left a
	// backup, so its data (history, room keys, outbox) is gone. The
	// backup was renamed, with the time, so no later run overwrites it;
	// Backup is its new path.
	LostData bool
}

// Open opens (creating when missing) the database in dataDir. It waits at
// most lockWait for another process to release the file lock. A damaged
// file gives ErrCorrupt, never a panic.
func Open(dataDir string, lockWait time.Duration) (*Store, error) {
	path := filepath.Join(dataDir, FileName)
	bak := filepath.Join(dataDir, BackupName)
	info := Info{Path: path}
	if fi, err := os.Stat(bak); err == nil {
		info.Backup, info.BackupTime = bak, fi.ModTime()
	}
	var changed time.Time // when the store was last written, before this open
	if fi, err := os.Stat(path); err == nil {
		changed = fi.ModTime()
	}
	db, err := openChecked(path, lockWait)
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s is locked; stop the other process or use another --data-dir", ErrLocked, path)
		}
		if errors.Is(err, ErrCorrupt) {
			return nil, fmt.Errorf("%w: %s", err, advice(path, info))
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	info.Empty = isEmpty(db)
	if info.Empty && info.Backup != "" {
		// The data is gone but an earlier run backed it up: keep that
		// copy aside, so later runs (whose store is no longer empty) do
		// not overwrite it with their own backup.
		kept := fmt.Sprintf("%s.%s", bak, time.Now().UTC().Format("20060102T150405Z"))
		if err := os.Rename(bak, kept); err != nil {
			info.BackupErr = fmt.Errorf("keep the backup: %w", err)
		} else {
			info.Backup = kept
		}
		info.LostData = true
	}
	// The copy costs time in proportion to the store: it is skipped
	// when the store was not written since the backup was made (a
	// backup is written after the open, so a later write of the store
	// makes it older than the store).
	if !info.Empty && (info.Backup == "" || changed.IsZero() || changed.After(info.BackupTime)) {
		if err := backup(db, bak); err != nil {
			// The store is fine; only the safety copy failed.
			info.BackupErr = err
		} else {
			info.Backup, info.BackupTime = bak, time.Now()
		}
	}
	return &Store{db: db, info: info}, nil
}

// advice is what to do about a damaged store at path.
func advice(path string, info Info) string {
	s := fmt.Sprintf("move it aside (mv %s %s.damaged) and start again: parley starts with an empty store and keeps its key", path, path)
	if info.Backup != "" {
		s += fmt.Sprintf("; or restore the last good copy from %s (cp %s %s)", info.BackupTime.Format(time.DateTime), info.Backup, path)
	}
	return s
}

// openChecked opens path and reads all of it once. Whatever bbolt does
// with damaged bytes (an error, a panic, a fault on its memory map) ends
// here as an error wrapping ErrCorrupt, and the file is closed again.
func openChecked(path string, lockWait time.Duration) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = closeQuietly(db)
				db = nil
			}
			err = fmt.Errorf("%w: %s: %v", ErrCorrupt, path, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: lockWait})
	if err != nil {
		// The file lock and system calls fail with a timeout or a path
		// error; everything else is about the file's bytes (bad meta
		// pages, a checksum, "file size too small").
		var pe *fs.PathError
		if errors.Is(err, berrors.ErrTimeout) || errors.As(err, &pe) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
	}
	if err := readAll(db); err != nil {
		_ = closeQuietly(db)
		return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
	}
	return db, nil
}

// closeQuietly closes a database that may be damaged; closing touches the
// memory map, so it gets the same protection.
func closeQuietly(db *bolt.DB) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("close damaged store: %v", r)
		}
	}()
	return db.Close()
}

// readAll visits every bucket, key and value, which touches every page
// reachable from the root.
func readAll(db *bolt.DB) error {
	return db.View(func(tx *bolt.Tx) error {
		if tx.Size() != 0 {
			if fi, err := os.Stat(db.Path()); err == nil && fi.Size() < tx.Size() {
				return fmt.Errorf("file is %d bytes, its pages need %d (truncated)", fi.Size(), tx.Size())
			}
		}
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walk(b, 0) })
	})
}

// maxDepth bounds nested buckets (Parley nests at most two levels), so a
// garbled bucket that points at itself cannot recurse forever.
const maxDepth = 16

func walk(b *bolt.Bucket, depth int) error {
	if depth > maxDepth {
		return errors.New("buckets nested too deep")
	}
	return b.ForEach(func(k, v []byte) error {
		if v != nil {
			return nil
		}
		sub := b.Bucket(k)
		if sub == nil {
			return fmt.Errorf("bucket entry %x is neither a value nor a bucket", k)
		}
		return walk(sub, depth+1)
	})
}

func isEmpty(db *bolt.DB) bool {
	empty := true
	_ = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func([]byte, *bolt.Bucket) error {
			empty = false
			return errors.New("stop")
		})
	})
	return empty
}

// backup writes a consistent copy of db to path, through a temporary
// file that is synced and renamed.
func backup(db *bolt.DB, path string) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600) // #nosec G304 -- a fixed name in the node's data dir
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(f)
		return err
	})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("back up store to %s: %w", path, err)
	}
	return nil
}

// Info describes what Open found.
func (s *Store) Info() Info { return s.info }

// DB returns the underlying database for feature packages.
func (s *Store) DB() *bolt.DB { return s.db }

// Close flushes and closes the database. A store that has data but no
// backup yet (the first run of a data dir backs up nothing at its start)
// is backed up first, so that a store lost after that first run is still
// noticed (LostData) and recoverable at the next start.
func (s *Store) Close() error {
	var errBackup error
	if s.info.Backup == "" && !isEmpty(s.db) {
		if err := backup(s.db, filepath.Join(filepath.Dir(s.info.Path), BackupName)); err != nil {
			errBackup = fmt.Errorf("back up the store at close: %w", err)
		}
	}
	if err := s.db.Close(); err != nil {
		return errors.Join(fmt.Errorf("close store: %w", err), errBackup)
	}
	return errBackup
}
