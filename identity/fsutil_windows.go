//go:build windows

package identity

// Directories cannot be fsynced on Windows; the rename is durable enough.
func isSyncUnsupported(error) bool { return true }
