package mailbox

import (
	"errors"

	"github.com/parley-chat/parley/internal/pbframe"
)

// Errors callers can match with errors.Is.
var (
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("mailbox closed")
	// ErrBadSignature: a record or letter whose signature does not verify,
	// or that is signed by another peer than it names.
	ErrBadSignature = errors.New("bad signature")
	// ErrMalformed: bytes that are not a valid record, seal, letter or
	// frame. It is internal/pbframe.ErrMalformed, which the frame reader
	// returns.
	ErrMalformed = pbframe.ErrMalformed
	// ErrFrameTooLarge: a frame's length prefix is over the limit.
	ErrFrameTooLarge = pbframe.ErrTooLarge
	// ErrUndecryptable: a seal that does not open with this node's key
	// (not for us, or altered).
	ErrUndecryptable = errors.New("seal does not open")
	// ErrNotForUs: a letter addressed to another peer.
	ErrNotForUs = errors.New("letter addressed to another peer")
	// ErrNoRecord: the recipient's mailbox record is not known.
	ErrNoRecord = errors.New("no mailbox record of the recipient")
	// ErrNoHolder: no holder of the recipient took the deposit.
	ErrNoHolder = errors.New("no holder took the deposit")
	// ErrFull: a holder's quota is reached.
	ErrFull = errors.New("holder quota reached")
	// ErrRefused: a holder refused a deposit for good.
	ErrRefused = errors.New("holder refused the deposit")
	// ErrProtocol: the other side broke the protocol.
	ErrProtocol = errors.New("mailbox protocol violation")
)
