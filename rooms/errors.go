package rooms

import "errors"

var (
	// ErrInvalidName is returned for a room name that breaks the rules of
	// NormalizeName.
	ErrInvalidName = errors.New("invalid room name")
	// ErrInvalidInvite is returned for an invite code that does not decode:
	// wrong prefix, encoding, length, version, checksum or room name.
	ErrInvalidInvite = errors.New("invalid invite code")
	// ErrWeakPassphrase is returned by JoinPassphrase for a passphrase
	// shorter than MinPassphraseLen characters or longer than
	// MaxPassphraseBytes bytes.
	ErrWeakPassphrase = errors.New("passphrase too weak")
	// ErrNotJoined is returned for an operation on a room the node has not
	// joined.
	ErrNotJoined = errors.New("not joined to room")
	// ErrNameTaken is returned when a room of that name, with another key or
	// kind, is already joined.
	ErrNameTaken = errors.New("room name already in use")
	// ErrPublicRoom is returned by Invite for a public room: it has no key
	// to share; its name is enough.
	ErrPublicRoom = errors.New("public room has no invite")
	// ErrInvalidText is returned by Send for an empty text, one over
	// MaxTextLen characters, or invalid UTF-8.
	ErrInvalidText = errors.New("invalid message text")
	// ErrInvalidFileShare is returned by ShareFile for an announcement that
	// breaks the FileShare rules.
	ErrInvalidFileShare = errors.New("invalid file share")
	// ErrRateLimited is returned by Send and ShareFile when the node's own
	// messages in a room exceed the rate limit that every peer enforces.
	ErrRateLimited = errors.New("sending too fast")
	// ErrPublish is returned when the message could not be published.
	ErrPublish = errors.New("publish failed")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("rooms service closed")
)

// Room sync errors (sync.go), wrapped with the details.
var (
	// errSyncRefused: the peer is not a member of the room, failed the
	// key proof, or is penalised.
	errSyncRefused = errors.New("sync refused")
	// errSyncLie: the peer sent an item that fails verification, that was
	// not asked for, or too many.
	errSyncLie = errors.New("sync peer sent a bad item")
	// errSyncSkip: an item this node cannot take now (an epoch whose key
	// it lacks, an author its membership log does not admit, a sent time
	// out of the window by this node's clock); skipped,
	// the peer is not blamed.
	errSyncSkip = errors.New("sync item skipped")
	// errOversizeItem: a signed item over maxSignedSize.
	errOversizeItem = errors.New("sync item too large")
)
