package transfer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"

	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/transfer/safename"
)

// partSuffix marks a file still being received, next to its final name.
const partSuffix = ".part"

// maxNumbered bounds the "name (n).ext" candidates tried for one file.
const maxNumbered = 1000

// checkSpace fails with ErrNoSpace when the bytes t still needs, plus those
// other accepted receiving transfers still need, exceed the free space of
// the downloads dir.
func (s *Service) checkSpace(t *transfer) error {
	free, err := s.free(s.dir)
	if err != nil {
		s.log.Debug("transfer: free space unknown; not checked", "err", err)
		return nil
	}
	s.mu.Lock()
	need := uint64(t.size - t.bytes) // #nosec G115 -- bytes <= size
	for _, o := range s.transfers {
		if o != t && o.dir == Receive && !o.state.Terminal() && o.state != StateOffered {
			need += uint64(o.size - o.bytes) // #nosec G115 -- bytes <= size
		}
	}
	s.mu.Unlock()
	if need > free {
		return fmt.Errorf("%w: need %d bytes, %d free in %s", ErrNoSpace, need, free, s.dir)
	}
	return nil
}

// createPart reserves a name for a file: the first of name, "name (1)"...
// such that neither it nor its part file exists, and creates the part file
// (exclusively, mode 0600, inside the downloads dir). It returns the part
// file's name and the final name it is meant for.
func (s *Service) createPart(name string) (part, final string, err error) {
	for k := range maxNumbered {
		cand := safename.Numbered(name, k)
		if exists, err := s.exists(cand); err != nil {
			return "", "", err
		} else if exists {
			continue
		}
		part := cand + partSuffix
		f, err := s.root.OpenFile(part, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", "", fmt.Errorf("%w: create part file: %w", errDisk, err)
		}
		if err := f.Close(); err != nil {
			return "", "", fmt.Errorf("%w: create part file: %w", errDisk, err)
		}
		return part, cand, nil
	}
	return "", "", fmt.Errorf("%w: no free name for %q", errDisk, name)
}

func (s *Service) exists(name string) (bool, error) {
	_, err := s.root.Lstat(name)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("%w: stat %s: %w", errDisk, name, err)
	}
}

// openPart opens t's part file for writing. A part file that disappeared
// is created again and its chunks are fetched again.
func (s *Service) openPart(t *transfer) (*os.File, error) {
	s.mu.Lock()
	part := t.part
	s.mu.Unlock()
	if part != "" {
		f, err := s.root.OpenFile(part, os.O_RDWR, 0)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: open part file: %w", errDisk, err)
		}
		s.log.Warn("transfer: part file is gone; starting over", "id", t.id, "part", part)
	}
	part, final, err := s.createPart(t.name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	t.part, t.final = part, final
	s.mu.Unlock()
	if t.bm != nil {
		clear(t.bm)
	}
	t.bm = nil
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketBitmaps).Delete([]byte(t.id)) }); err != nil {
		return nil, fmt.Errorf("%w: reset bitmap: %w", errDisk, err)
	}
	s.save(t)
	f, err := s.root.OpenFile(part, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: open part file: %w", errDisk, err)
	}
	return f, nil
}

// removePart deletes a part file of a transfer that ended without success.
func (s *Service) removePart(part string) {
	if err := s.root.Remove(part); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("transfer: remove part file", "part", part, "err", err)
	}
}

// placeFinal gives t's verified part file its final name, chosen and
// stored when the part file was created: it hard-links the part file there
// (which fails rather than replace a file), then removes the part name. If
// a file took that name meanwhile, the next free "name (n)" is chosen and
// stored first. On file systems without hard links it renames after
// checking the name is free.
func (s *Service) placeFinal(t *transfer) (string, error) {
	s.mu.Lock()
	part, final := t.part, t.final
	s.mu.Unlock()
	for k := 0; k < maxNumbered; k++ {
		if final == "" || k > 0 {
			cand := safename.Numbered(t.name, k)
			if exists, err := s.exists(cand); err != nil {
				return "", err
			} else if exists || cand == final {
				continue
			}
			final = cand
			s.mu.Lock()
			t.final = final
			s.mu.Unlock()
			s.save(t)
		}
		err := s.root.Link(part, final)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			if exists, xerr := s.exists(final); xerr != nil || exists {
				continue
			}
			if rerr := s.root.Rename(part, final); rerr != nil {
				return "", fmt.Errorf("%w: place %s: link: %w; rename: %w", errDisk, final, err, rerr)
			}
		} else {
			if err := s.testPlacing("linked"); err != nil {
				return "", err
			}
			s.removePart(part)
		}
		if err := s.testPlacing("placed"); err != nil {
			return "", err
		}
		s.mu.Lock()
		t.part = ""
		s.mu.Unlock()
		s.syncDir()
		return final, nil
	}
	return "", fmt.Errorf("%w: no free name for %q", errDisk, t.name)
}

func (s *Service) testPlacing(stage string) error {
	if h := s.cfg.hooks.placing; h != nil {
		return h(stage)
	}
	return nil
}

// placedEarlier reports whether a restart came between placing t's file
// and recording it: the final file exists and is either the part file
// itself (the part name is then removed) or, with the part file gone, has
// exactly the content the manifest describes.
func (s *Service) placedEarlier(t *transfer) bool {
	s.mu.Lock()
	part, final, man := t.part, t.final, t.man
	s.mu.Unlock()
	if final == "" || man == nil {
		return false
	}
	fi, err := s.root.Lstat(final)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != man.size {
		return false
	}
	if part != "" {
		pi, err := s.root.Lstat(part)
		if err == nil {
			if !os.SameFile(pi, fi) {
				return false
			}
			s.removePart(part)
			s.mu.Lock()
			t.part = ""
			s.mu.Unlock()
			return true
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return false
		}
	}
	f, err := s.root.Open(final)
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }() // read only
	if !verifyFile(t.ctx, f, man) {
		return false
	}
	s.mu.Lock()
	t.part = ""
	s.mu.Unlock()
	return true
}

// verifyFile reports whether every chunk of f matches the manifest.
func verifyFile(ctx context.Context, f *os.File, man *manifest) bool {
	buf := make([]byte, min(man.chunkSize, max(man.size, 1)))
	for i := range man.numChunks() {
		if ctx.Err() != nil {
			return false
		}
		data := buf[:man.chunkLen(i)]
		if _, err := f.ReadAt(data, int64(i)*man.chunkSize); err != nil {
			return false
		}
		if !man.verifyChunk(i, data) {
			return false
		}
	}
	return true
}

// syncDir makes the directory entries durable (not possible on Windows).
func (s *Service) syncDir() {
	if runtime.GOOS == "windows" {
		return
	}
	d, err := s.root.Open(".")
	if err != nil {
		s.log.Debug("transfer: open downloads dir", "err", err)
		return
	}
	defer func() { _ = d.Close() }() // opened for Sync, whose error is checked
	if err := d.Sync(); err != nil {
		s.log.Debug("transfer: sync downloads dir", "err", err)
	}
}
