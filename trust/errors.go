package trust

import (
	"errors"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/internal/safetext"
)

var (
	// ErrUnknownPeer is returned by Resolve when no known peer matches.
	ErrUnknownPeer = errors.New("unknown peer")
	// ErrAmbiguous is matched (errors.Is) by an *AmbiguousError.
	ErrAmbiguous = errors.New("ambiguous peer name")
	// ErrCorrupt is returned by Open when a stored record cannot be decoded.
	ErrCorrupt = errors.New("trust store corrupt")
)

// Candidate is one of the peers an ambiguous name could mean.
type Candidate struct {
	ID          peer.ID `json:"peer_id"`
	Nick        string  `json:"nick"`
	Fingerprint string  `json:"fingerprint"`
	// Pinned reports that the peer holds the pin of the name.
	Pinned  bool `json:"pinned"`
	Trusted bool `json:"trusted"`
}

// AmbiguousError is returned by Resolve when a name matches more than one
// known peer. errors.Is(err, ErrAmbiguous) holds.
type AmbiguousError struct {
	Name       string
	Candidates []Candidate
}

func (e *AmbiguousError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %q matches %d peers, use a peer ID or nick#FINGERPRINT:",
		ErrAmbiguous, safetext.Line(e.Name), len(e.Candidates))
	for _, c := range e.Candidates {
		fmt.Fprintf(&b, " %s#%s (%s", safetext.Line(c.Nick), c.Fingerprint, c.ID)
		if c.Pinned {
			b.WriteString(", pinned")
		}
		if c.Trusted {
			b.WriteString(", trusted")
		}
		b.WriteString(");")
	}
	return strings.TrimSuffix(b.String(), ";")
}

// Is reports whether target is ErrAmbiguous.
func (e *AmbiguousError) Is(target error) bool { return target == ErrAmbiguous }
