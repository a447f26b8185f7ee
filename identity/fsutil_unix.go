//go:build !windows

package identity

func isSyncUnsupported(error) bool { return false }
