package rooms

import (
	"crypto/rand"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/internal/safetext"
	"github.com/parley-chat/parley/rooms/pb"
	"google.golang.org/protobuf/proto"
)

// FileShare announces a file that the author serves over the transfer
// protocol. The rooms package only checks and carries it.
type FileShare struct {
	// ID names the file in the transfer protocol: 1-64 of [A-Za-z0-9_-].
	ID string
	// Name is the file name: 1-255 bytes of UTF-8 with no control or format
	// characters, no '/' or '\', and not "." or "..".
	Name string
	// Size is the file size in bytes.
	Size uint64
	// Hash is the content hash: 1-128 printable ASCII characters, no spaces.
	Hash string
}

// FileShare limits.
const (
	maxFileIDLen   = 64
	maxFileNameLen = 255
	maxFileHashLen = 128
)

// Validate checks a FileShare against the rules on its fields.
func (f FileShare) Validate() error {
	if f.ID == "" || len(f.ID) > maxFileIDLen || strings.IndexFunc(f.ID, notIDRune) >= 0 {
		return fmt.Errorf("%w: id must be 1-%d of A-Z a-z 0-9 _ -", ErrInvalidFileShare, maxFileIDLen)
	}
	if f.Name == "" || len(f.Name) > maxFileNameLen || !safetext.IsClean(f.Name) ||
		strings.ContainsAny(f.Name, `/\`) || f.Name == "." || f.Name == ".." {
		return fmt.Errorf("%w: name must be 1-%d bytes without path separators or control characters", ErrInvalidFileShare, maxFileNameLen)
	}
	if f.Hash == "" || len(f.Hash) > maxFileHashLen || strings.IndexFunc(f.Hash, notHashRune) >= 0 {
		return fmt.Errorf("%w: hash must be 1-%d printable ASCII characters", ErrInvalidFileShare, maxFileHashLen)
	}
	return nil
}

func notIDRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
}

func notHashRune(r rune) bool { return r <= ' ' || r > '~' }

// envelope is a checked Envelope in domain form.
type envelope struct {
	kind    pb.Kind
	id      [idSize]byte
	nick    string
	sentAt  time.Time // millisecond precision
	text    string    // KIND_TEXT
	leaving bool      // KIND_PRESENCE
	record  []byte    // KIND_PRESENCE: the author's signed peer record, unverified until validate
	file    FileShare // KIND_FILE_SHARE
}

func newEnvelope(kind pb.Kind, nick string, now time.Time) (envelope, error) {
	e := envelope{kind: kind, nick: nick, sentAt: time.UnixMilli(now.UnixMilli())}
	if _, err := rand.Read(e.id[:]); err != nil {
		return e, fmt.Errorf("message id: %w", err)
	}
	return e, nil
}

// checkText applies the text rules: valid UTF-8, 1 to MaxTextLen runes.
func checkText(text string) error {
	if text == "" {
		return fmt.Errorf("%w: empty", ErrInvalidText)
	}
	if !utf8.ValidString(text) {
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidText)
	}
	if n := utf8.RuneCountInString(text); n > MaxTextLen {
		return fmt.Errorf("%w: %d characters, at most %d allowed", ErrInvalidText, n, MaxTextLen)
	}
	return nil
}

// toWire converts e to its protobuf form.
func (e *envelope) toWire() *pb.Envelope {
	w := &pb.Envelope{
		Kind:     e.kind,
		Id:       e.id[:],
		Nick:     e.nick,
		SentAtMs: e.sentAt.UnixMilli(),
	}
	switch e.kind {
	case pb.Kind_KIND_TEXT:
		w.Text = e.text
	case pb.Kind_KIND_PRESENCE:
		if e.leaving || len(e.record) > 0 {
			w.Presence = &pb.Presence{Leaving: e.leaving, PeerRecord: e.record}
		}
	case pb.Kind_KIND_FILE_SHARE:
		w.FileShare = &pb.FileShare{Id: e.file.ID, Name: e.file.Name, Size: e.file.Size, Hash: e.file.Hash}
	}
	return w
}

// marshal encodes e.
func (e *envelope) marshal() ([]byte, error) {
	b, err := proto.Marshal(e.toWire())
	if err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	return b, nil
}

// decodeEnvelope parses envelope bytes and applies every rule that depends
// only on the bytes (not on time, replay state or rate). Unknown kinds are
// ignored rather than rejected, so that new kinds do not cost senders their
// score with older peers.
func decodeEnvelope(b []byte) (envelope, verdict) {
	var e envelope
	if len(b) > MaxMessageSize {
		return e, reject(reasonOversize)
	}
	var w pb.Envelope
	if err := proto.Unmarshal(b, &w); err != nil {
		return e, reject(reasonUndecodable)
	}
	return fromWire(&w)
}

// fromWire converts and checks a decoded Envelope.
func fromWire(w *pb.Envelope) (envelope, verdict) {
	var e envelope
	switch w.Kind {
	case pb.Kind_KIND_TEXT, pb.Kind_KIND_PRESENCE, pb.Kind_KIND_FILE_SHARE:
	case pb.Kind_KIND_UNSPECIFIED:
		return e, reject(reasonKind)
	default:
		return e, ignore(reasonUnknownKind)
	}
	e.kind = w.Kind
	if len(w.Id) != idSize {
		return e, reject(reasonID)
	}
	copy(e.id[:], w.Id)
	if identity.ValidateNick(w.Nick) != nil {
		return e, reject(reasonNick)
	}
	e.nick = w.Nick
	e.sentAt = time.UnixMilli(w.SentAtMs)
	if w.Kind != pb.Kind_KIND_TEXT && w.Text != "" ||
		w.Kind != pb.Kind_KIND_PRESENCE && w.Presence != nil ||
		w.Kind != pb.Kind_KIND_FILE_SHARE && w.FileShare != nil {
		return e, reject(reasonKind)
	}
	switch w.Kind {
	case pb.Kind_KIND_TEXT:
		if checkText(w.Text) != nil {
			return e, reject(reasonText)
		}
		e.text = w.Text
	case pb.Kind_KIND_PRESENCE:
		e.leaving = w.Presence.GetLeaving()
		if len(w.Presence.GetPeerRecord()) > MaxPeerRecordSize {
			return e, reject(reasonRecord)
		}
		e.record = w.Presence.GetPeerRecord()
	case pb.Kind_KIND_FILE_SHARE:
		f := w.FileShare
		if f == nil {
			return e, reject(reasonFile)
		}
		e.file = FileShare{ID: f.Id, Name: f.Name, Size: f.Size, Hash: f.Hash}
		if e.file.Validate() != nil {
			return e, reject(reasonFile)
		}
	}
	return e, accept()
}

// verdict is the outcome of validating one message, with a reason for logs
// and tests.
type verdict struct {
	result pubsub.ValidationResult
	reason string
}

// Validation reasons.
const (
	reasonOK          = "ok"
	reasonOversize    = "oversize"
	reasonUndecodable = "undecodable"
	reasonSealed      = "sealed"
	reasonKind        = "kind"
	reasonUnknownKind = "unknown-kind"
	reasonID          = "id"
	reasonNick        = "nick"
	reasonText        = "text"
	reasonFile        = "file"
	reasonRecord      = "peer-record"
	reasonAuthor      = "author"
	reasonSkew        = "skew"
	reasonReplay      = "replay"
	reasonReplayFull  = "replay-full"
	reasonRate        = "rate"
	reasonFlood       = "flood" // far past the rate limit, from the author itself
	reasonShed        = "shed"  // a stranger's message while delivery is behind
	reasonClosed      = "closed"
)

func accept() verdict              { return verdict{pubsub.ValidationAccept, reasonOK} }
func reject(reason string) verdict { return verdict{pubsub.ValidationReject, reason} }
func ignore(reason string) verdict { return verdict{pubsub.ValidationIgnore, reason} }

// FileShared is the domain event a member's service emits when another
// member announces a file in a joined room. It is not part of the JSON
// event contract: the node hands the share to the transfer service, which
// reports it to the user as a file_offer with the room.
type FileShared struct {
	Room  string
	From  peer.ID
	Share FileShare
}

// Type names the event for events.Emitter; it never reaches the JSON
// output.
func (FileShared) Type() string { return "rooms.file_shared" }
