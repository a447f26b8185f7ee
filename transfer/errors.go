package transfer

import (
	"errors"
	"fmt"

	"github.com/parley-chat/parley/internal/safetext"
	"github.com/parley-chat/parley/transfer/pb"
)

// Errors callers can match with errors.Is. Errors that come from the peer
// (a Status or Notice code) wrap the sentinel for that code.
var (
	ErrClosed      = errors.New("transfer service closed")
	ErrNotFound    = errors.New("no such transfer")
	ErrAmbiguous   = errors.New("transfer id prefix matches more than one transfer")
	ErrState       = errors.New("transfer is not in a state that allows this")
	ErrNotFile     = errors.New("not a regular file")
	ErrTooLarge    = errors.New("file too large")
	ErrNoSpace     = errors.New("not enough free disk space")
	ErrBusy        = errors.New("too many transfers with this peer")
	ErrRejected    = errors.New("offer rejected")
	ErrCancelled   = errors.New("transfer cancelled")
	ErrBadName     = errors.New("file name refused")
	ErrFileChanged = errors.New("file changed since it was offered")
	ErrVerify      = errors.New("chunk failed verification too many times")
	ErrBadManifest = errors.New("invalid manifest")
	ErrProtocol    = errors.New("protocol violation")
	ErrDuplicate   = errors.New("transfer id already in use")
	ErrRemote      = errors.New("peer reported an internal error")
	ErrExpired     = errors.New("offer expired without an answer")
	ErrConflict    = errors.New("share announced with other contents")
)

// errDisk marks local file system and store errors: a receiving transfer
// that hits one waits for Resume or a reconnect instead of retrying.
var errDisk = errors.New("local disk")

// codeErrors maps wire codes to sentinels, both ways.
var codeErrors = []struct {
	code pb.Code
	err  error
}{
	{pb.Code_REJECTED, ErrRejected},
	{pb.Code_TOO_LARGE, ErrTooLarge},
	{pb.Code_NO_SPACE, ErrNoSpace},
	{pb.Code_BUSY, ErrBusy},
	{pb.Code_NOT_FOUND, ErrNotFound},
	{pb.Code_CANCELLED, ErrCancelled},
	{pb.Code_BAD_NAME, ErrBadName},
	{pb.Code_FILE_CHANGED, ErrFileChanged},
	{pb.Code_BAD_REQUEST, ErrProtocol},
	{pb.Code_VERIFY_FAILED, ErrVerify},
	{pb.Code_DUPLICATE, ErrDuplicate},
	{pb.Code_INTERNAL, ErrRemote},
	{pb.Code_EXPIRED, ErrExpired},
}

// remoteError turns a code and message received from a peer into an error
// wrapping the code's sentinel. The message is made inert for terminals.
func remoteError(code pb.Code, msg string) error {
	base := ErrProtocol
	for _, ce := range codeErrors {
		if ce.code == code {
			base = ce.err
			break
		}
	}
	if msg == "" {
		return fmt.Errorf("peer: %w", base)
	}
	return fmt.Errorf("peer: %w: %s", base, safetext.Line(safetext.Cut(msg, maxMessageLen)))
}

// errorCode maps a local error to the code sent to the peer.
func errorCode(err error) pb.Code {
	for _, ce := range codeErrors {
		if errors.Is(err, ce.err) {
			return ce.code
		}
	}
	return pb.Code_INTERNAL
}

// codeName is the short machine-readable reason used in events.
func codeName(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrCancelled):
		return "cancelled"
	case errors.Is(err, ErrRejected):
		return "rejected"
	case errors.Is(err, ErrVerify):
		return "verify_failed"
	case errors.Is(err, ErrFileChanged):
		return "file_changed"
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrNoSpace):
		return "no_space"
	case errors.Is(err, ErrBadManifest), errors.Is(err, ErrProtocol):
		return "protocol"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrExpired):
		return "expired"
	default:
		return "error"
	}
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string { return safetext.Cut(s, n) }
