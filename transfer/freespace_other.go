//go:build !linux && !darwin && !windows

package transfer

import "errors"

var errFreeSpaceUnknown = errors.New("free space unknown on this platform")

// freeSpace is not implemented on this platform; offers are not checked
// against free space (writes still fail cleanly when the disk fills).
func freeSpace(string) (uint64, error) { return 0, errFreeSpaceUnknown }
