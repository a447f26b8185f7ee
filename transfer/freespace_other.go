//go:build !linux && !darwin && !windows

package transfer

import (
	"errors"
	"syscall"
)

var errFreeSpaceUnknown = errors.New("free space unknown on this platform")

// freeSpace is not implemented on this platform; offers are not checked
// against free space (writes still fail cleanly when the disk fills).
func freeSpace(string) (uint64, error) { return 0, errFreeSpaceUnknown }

// isDiskFull reports whether err is a write that found the file system full.
func isDiskFull(err error) bool { return errors.Is(err, syscall.ENOSPC) }
