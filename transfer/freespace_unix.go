//go:build linux || darwin

package transfer

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// freeSpace returns the bytes available to this user on dir's file system.
func freeSpace(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	// #nosec G115 -- statfs counts are never negative
	return uint64(st.Bavail) * uint64(st.Bsize), nil //nolint:unconvert // field types differ per OS
}

// isDiskFull reports whether err is a write that found the file system (or
// the user's quota) full.
func isDiskFull(err error) bool {
	return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)
}
