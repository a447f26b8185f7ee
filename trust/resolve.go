package trust

import (
	"fmt"
	"sort"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/internal/safetext"
)

// Resolve turns what a user typed into a peer ID. It accepts, in order:
//
//   - a peer ID (known or not: a peer ID names its key by itself);
//   - a full fingerprint ("ABCD-EFGH-IJKL-MNOP") of a known peer;
//   - "nick#FP", a nick and a fingerprint prefix ("alice#ABCD"), which
//     picks among peers sharing a nick;
//   - a nick, when exactly one known peer matches it, or exactly one of
//     the peers matching it is trusted (the user compared safety numbers
//     with it, so an impostor's later claim to the nick does not take
//     it away). A peer matches when its current nick has the same
//     comparison key (identity.NickKey) or when it holds the nick's pin.
//
// No match is ErrUnknownPeer; more than one is an *AmbiguousError listing
// the candidates.
func (s *Store) Resolve(nameOrID string) (peer.ID, error) {
	name := strings.TrimSpace(nameOrID)
	if name == "" {
		return "", fmt.Errorf("%w: empty name", ErrUnknownPeer)
	}
	if id, err := peer.Decode(name); err == nil {
		return id, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if looksLikeFingerprint(name) {
		fp := strings.ToUpper(name)
		for p := range s.peers {
			if identity.Fingerprint(p) == fp {
				return p, nil
			}
		}
		return "", fmt.Errorf("%w: no known peer has fingerprint %s", ErrUnknownPeer, fp)
	}
	var cands []Candidate
	if i := strings.LastIndexByte(name, '#'); i > 0 && isFPPrefix(name[i+1:]) {
		cands = s.candidates(identity.NickKey(name[:i]), normalizeFP(name[i+1:]))
	}
	if len(cands) == 0 {
		// Not nick#FP, or a nick that contains '#' itself.
		cands = s.candidates(identity.NickKey(name), "")
	}
	switch len(cands) {
	case 0:
		return "", fmt.Errorf("%w: no known peer is called %q", ErrUnknownPeer, safetext.Line(name))
	case 1:
		return cands[0].ID, nil
	}
	// Several peers use the nick: the one the user verified (/trust)
	// names it, when there is exactly one; otherwise the user decides
	// (nick#FP, /trust or /forget).
	var trusted []Candidate
	for _, c := range cands {
		if c.Trusted {
			trusted = append(trusted, c)
		}
	}
	if len(trusted) == 1 {
		return trusted[0].ID, nil
	}
	return "", &AmbiguousError{Name: name, Candidates: cands}
}

// candidates returns the known peers matching a nick key and fingerprint
// prefix, the pin holder first. Callers hold mu.
func (s *Store) candidates(key, fpPrefix string) []Candidate {
	holder, pinned := s.pins[key]
	var out []Candidate
	for p, rec := range s.peers {
		isHolder := pinned && holder == p
		if !isHolder && (rec.Nick == "" || identity.NickKey(rec.Nick) != key) {
			continue
		}
		fp := identity.Fingerprint(p)
		if fpPrefix != "" && !strings.HasPrefix(normalizeFP(fp), fpPrefix) {
			continue
		}
		out = append(out, Candidate{ID: p, Nick: rec.Nick, Fingerprint: fp, Pinned: isHolder, Trusted: rec.Trusted})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Pinned != out[j].Pinned {
			return out[i].Pinned
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func normalizeFP(s string) string {
	return strings.ToUpper(strings.ReplaceAll(s, "-", ""))
}

// isFPPrefix reports whether s could start a fingerprint: base32 characters
// and dashes, at least one character.
func isFPPrefix(s string) bool {
	if s == "" || len(s) > identity.FingerprintLen+3 {
		return false
	}
	for _, r := range s {
		if r != '-' && !isBase32(r) {
			return false
		}
	}
	return true
}

func isBase32(r rune) bool {
	return 'A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '2' <= r && r <= '7'
}

// looksLikeFingerprint reports whether s has the shape of a full
// fingerprint: four groups of four base32 characters.
func looksLikeFingerprint(s string) bool {
	if len(s) != identity.FingerprintLen+3 {
		return false
	}
	for i, r := range s {
		if i%5 == 4 {
			if r != '-' {
				return false
			}
			continue
		}
		if !isBase32(r) {
			return false
		}
	}
	return true
}
