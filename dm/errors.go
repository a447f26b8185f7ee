package dm

import (
	"errors"
	"fmt"

	"github.com/parley-chat/parley/dm/pb"
	"github.com/parley-chat/parley/internal/pbframe"
)

var (
	// ErrClosed is returned by Send after Close.
	ErrClosed = errors.New("dm service closed")
	// ErrSelf is returned when sending to the node's own peer ID.
	ErrSelf = errors.New("cannot send a direct message to yourself")
	// ErrInvalidPeer is returned for a recipient that is not a valid peer ID.
	ErrInvalidPeer = errors.New("invalid peer ID")
	// ErrEmptyText is returned for an empty message.
	ErrEmptyText = errors.New("message is empty")
	// ErrTextTooLong is returned for a message longer than MaxTextBytes.
	ErrTextTooLong = errors.New("message too long")
	// ErrInvalidUTF8 is returned for a message that is not valid UTF-8.
	ErrInvalidUTF8 = errors.New("message is not valid UTF-8")
	// ErrOutboxFull is returned when Config.MaxPending messages wait for
	// delivery already.
	ErrOutboxFull = errors.New("outbox full")

	// ErrExpired is the cause of a failed message that was not delivered
	// within its time to live.
	ErrExpired = errors.New("expired")
	// ErrRejected is the cause of a failed message the recipient refused.
	ErrRejected = errors.New("rejected by recipient")
	// ErrBusy means the recipient asked to retry later; the message stays
	// queued.
	ErrBusy = errors.New("recipient busy")

	// ErrFrameTooLarge is returned by the frame reader when a length
	// prefix exceeds the frame limit (checked before any allocation). It
	// is the frame reader's own error, internal/pbframe.ErrTooLarge.
	ErrFrameTooLarge = pbframe.ErrTooLarge
	// ErrMalformed is returned for a frame that cannot be decoded or
	// breaks the protocol (truncated, bad varint, bad protobuf, bad id).
	// It is internal/pbframe.ErrMalformed, which the frame reader returns.
	ErrMalformed = pbframe.ErrMalformed
)

// reasonErrors maps the recipient's reason codes to errors; the
// recipient's checks and the sender's own checks share them.
var reasonErrors = map[pb.Ack_Reason]error{
	pb.Ack_REASON_EMPTY_TEXT:    ErrEmptyText,
	pb.Ack_REASON_TEXT_TOO_LONG: ErrTextTooLong,
	pb.Ack_REASON_INVALID_UTF8:  ErrInvalidUTF8,
	pb.Ack_REASON_INVALID_NICK:  errors.New("invalid nick"),
	pb.Ack_REASON_BAD_TIMESTAMP: errors.New("timestamp out of range"),
	pb.Ack_REASON_RATE_LIMITED:  errors.New("rate limited"),
	pb.Ack_REASON_STORAGE:       errors.New("storage failure"),
}

// reasonError describes a reason code from an ack.
func reasonError(r pb.Ack_Reason) error {
	if err, ok := reasonErrors[r]; ok {
		return err
	}
	return fmt.Errorf("reason code %d", int32(r))
}
