package rooms

import (
	"errors"
	"testing"

	"github.com/parley-chat/parley/internal/safetext"
)

// FuzzNormalizeName: room names come from users and from invite codes.
// Whatever NormalizeName accepts is canonical (normalizing again changes
// nothing), inert on a terminal, and fits an invite.
func FuzzNormalizeName(f *testing.F) {
	for _, s := range []string{"lobby", "Lobby", "café", "cafe\u0301", "a\u202eb", "İstanbul", "ǅ", "x.y-z_1", "", "\xff", "ᾈ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		n, err := NormalizeName(name)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("error %v does not wrap ErrInvalidName", err)
			}
			return
		}
		if !isCanonicalName(n) {
			again, err := NormalizeName(n)
			t.Fatalf("NormalizeName(%q) = %q, which normalizes to %q (%v)", name, n, again, err)
		}
		if !safetext.IsClean(n) || len(n) > maxNameBytes {
			t.Fatalf("accepted name %q", n)
		}
	})
}
