package trust

import (
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/internal/testnet"
)

func newID(t testing.TB) peer.ID {
	t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func openStore(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "parley.db")
	s, err := Open(testnet.OpenDB(t, path))
	if err != nil {
		t.Fatal(err)
	}
	return s, path
}

func observe(t *testing.T, s *Store, p peer.ID, nick string) *PinConflict {
	t.Helper()
	c, err := s.Observe(p, nick)
	if err != nil {
		t.Fatalf("Observe(%s, %q): %v", p, nick, err)
	}
	return c
}

func TestPinConflict(t *testing.T) {
	s, path := openStore(t)
	alice, mallory := newID(t), newID(t)
	if c := observe(t, s, alice, "alice"); c != nil {
		t.Fatalf("first sight of a nick conflicts: %+v", c)
	}
	if c := observe(t, s, alice, "alice"); c != nil {
		t.Fatalf("owner conflicts with own pin: %+v", c)
	}
	for i, nick := range []string{"alice", "ALICE", "Ａlice"} {
		c := observe(t, s, mallory, nick)
		if c == nil {
			t.Fatalf("%q claimed by another key: no conflict", nick)
		}
		if c.Peer != mallory || c.Pinned != alice || c.New != (i == 0) {
			t.Fatalf("%q: conflict %+v, want peer=mallory pinned=alice new=%v", nick, c, i == 0)
		}
		ev := c.Event()
		if ev.PeerID != mallory || ev.PinnedPeerID != alice || ev.Nick != nick ||
			!strings.Contains(ev.Text, identity.Fingerprint(alice)) || !strings.Contains(ev.Text, "WARNING") {
			t.Fatalf("bad trust_warning %+v", ev)
		}
	}
	if info, _ := s.Get(alice); !info.Pinned {
		t.Fatal("pin was taken from the first key")
	}
	if info, _ := s.Get(mallory); info.Pinned || info.Nick != "Ａlice" {
		t.Fatalf("impostor record %+v", info)
	}

	// The pin and the "already warned" mark survive a restart.
	db := s.db
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(testnet.OpenDB(t, path))
	if err != nil {
		t.Fatal(err)
	}
	c := observe(t, s2, mallory, "alice")
	if c == nil || c.Pinned != alice || c.New {
		t.Fatalf("after restart: conflict %+v, want pinned=alice new=false", c)
	}
	// Only trusting the new key moves the pin.
	if err := s2.Trust(mallory); err != nil {
		t.Fatal(err)
	}
	if c := observe(t, s2, mallory, "alice"); c != nil {
		t.Fatalf("trusted new key still conflicts: %+v", c)
	}
	c = observe(t, s2, alice, "alice")
	if c == nil || c.Pinned != mallory || !c.New {
		t.Fatalf("old key after repin: %+v", c)
	}
	if info, _ := s2.Get(mallory); !info.Trusted || info.TrustedAt.IsZero() || !info.Pinned {
		t.Fatalf("trusted record %+v", info)
	}
	if err := s2.Untrust(mallory); err != nil {
		t.Fatal(err)
	}
	if info, _ := s2.Get(mallory); info.Trusted || !info.Pinned {
		t.Fatalf("untrusted record %+v", info)
	}
}

func TestObserveRejectsBadInput(t *testing.T) {
	s, _ := openStore(t)
	for _, nick := range []string{"", "bad\x1b[2J", strings.Repeat("x", 33), "\u202eevil"} {
		if _, err := s.Observe(newID(t), nick); !errors.Is(err, identity.ErrInvalidNick) {
			t.Errorf("Observe(%q) = %v, want ErrInvalidNick", nick, err)
		}
	}
	if _, err := s.Observe(peer.ID(""), "x"); err == nil {
		t.Error("empty peer ID accepted")
	}
	if len(s.Known()) != 0 {
		t.Fatal("bad input was recorded")
	}
}

func TestObserveWritesOnlyOnChange(t *testing.T) {
	s, _ := openStore(t)
	p := newID(t)
	observe(t, s, p, "bob")
	writes := func() int64 { st := s.db.Stats(); return st.TxStats.GetWrite() }
	before := writes()
	for range 50 {
		observe(t, s, p, "bob")
	}
	if got := writes() - before; got != 0 {
		t.Fatalf("%d writes for an unchanged nick", got)
	}
	observe(t, s, p, "bobby")
	info, ok := s.Get(p)
	if !ok || info.Nick != "bobby" || info.FirstSeen.IsZero() || info.LastSeen.Before(info.FirstSeen) {
		t.Fatalf("record %+v", info)
	}
}

func TestResolve(t *testing.T) {
	s, _ := openStore(t)
	alice, alice2, bob, carol := newID(t), newID(t), newID(t), newID(t)
	observe(t, s, alice, "alice")
	observe(t, s, alice2, "Alice")
	observe(t, s, bob, "bob")
	observe(t, s, carol, "carol")
	observe(t, s, carol, "caroline") // carol keeps the pin of "carol"
	unknown := newID(t)

	cases := []struct {
		in   string
		want peer.ID
		err  error
	}{
		{bob.String(), bob, nil},
		{unknown.String(), unknown, nil},
		{"bob", bob, nil},
		{" BOB ", bob, nil},
		{"caroline", carol, nil},
		{"carol", carol, nil}, // by pin
		{identity.Fingerprint(alice2), alice2, nil},
		{strings.ToLower(identity.Fingerprint(alice2)), alice2, nil},
		{"alice#" + identity.ShortFingerprint(alice), alice, nil},
		{"alice#" + strings.ToLower(identity.Fingerprint(alice2)[:7]), alice2, nil},
		{"alice", "", ErrAmbiguous},
		{"alice#" + identity.ShortFingerprint(alice2), alice2, nil},
		{"dave", "", ErrUnknownPeer},
		{"", "", ErrUnknownPeer},
		{"AAAA-AAAA-AAAA-AAAA", "", ErrUnknownPeer},
	}
	for _, tc := range cases {
		got, err := s.Resolve(tc.in)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("Resolve(%q) = %s, %v; want %s, %v", tc.in, got, err, tc.want, tc.err)
		}
	}

	_, err := s.Resolve("alice")
	var amb *AmbiguousError
	if !errors.As(err, &amb) || len(amb.Candidates) != 2 {
		t.Fatalf("ambiguous error %v", err)
	}
	if amb.Candidates[0].ID != alice || !amb.Candidates[0].Pinned || amb.Candidates[1].Pinned {
		t.Fatalf("candidates %+v: pin holder must come first", amb.Candidates)
	}
	for _, p := range []peer.ID{alice, alice2} {
		if !strings.Contains(err.Error(), identity.Fingerprint(p)) || !strings.Contains(err.Error(), p.String()) {
			t.Fatalf("error %q does not list %s", err, p)
		}
	}
}

func TestResolveNickWithHash(t *testing.T) {
	s, _ := openStore(t)
	p := newID(t)
	observe(t, s, p, "c#")
	observe(t, s, newID(t), "c")
	if got, err := s.Resolve("c#"); err != nil || got != p {
		t.Fatalf("Resolve(c#) = %s, %v", got, err)
	}
}

func TestKnownSorted(t *testing.T) {
	s, _ := openStore(t)
	for _, n := range []string{"zed", "amy", "kim"} {
		observe(t, s, newID(t), n)
	}
	k := s.Known()
	if len(k) != 3 || k[0].Nick != "amy" || k[1].Nick != "kim" || k[2].Nick != "zed" {
		t.Fatalf("Known() = %+v", k)
	}
}

func TestOpenRejectsCorruptRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	db := testnet.OpenDB(t, path)
	if _, err := Open(db); err != nil {
		t.Fatal(err)
	}
	p := newID(t)
	err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketPeers)).Put([]byte(p), []byte("{not json"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(db); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open = %v, want ErrCorrupt", err)
	}
}

// Pins stored under a key of the older PRECIS rule ("straße" was its own
// key; FoldName makes it "strasse") are moved to the current key when the
// store opens, and a pin already under the current key wins.
func TestOpenRekeysOldPins(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	db := testnet.OpenDB(t, path)
	if _, err := Open(db); err != nil {
		t.Fatal(err)
	}
	old, current, greek := newID(t), newID(t), newID(t)
	err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketPins))
		for k, p := range map[string]peer.ID{"straße": old, "strasse": current, "σας": greek} {
			if err := b.Put([]byte(k), []byte(p)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	for nick, want := range map[string]peer.ID{"STRASSE": current, "Straße": current, "ΣΑΣ": greek, "σασ": greek} {
		if c := observe(t, s, want, nick); c != nil {
			t.Errorf("Observe(%s, %q) conflicts with %s; want the pin moved to the current key", want, nick, c.Pinned)
		}
	}
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketPins))
		for _, k := range []string{"straße", "σας"} {
			if b.Get([]byte(k)) != nil {
				t.Errorf("pin under the old key %q is still stored", k)
			}
		}
		if got := peer.ID(b.Get([]byte("σασ"))); got != greek {
			t.Errorf("pin under σασ = %s, want %s", got, greek)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A nick two peers use names the one the user trusts; /forget drops a
// peer and the pins it holds.
func TestResolveTrustedAndForget(t *testing.T) {
	s, _ := openStore(t)
	bob, impostor := newID(t), newID(t)
	observe(t, s, bob, "bob")
	observe(t, s, impostor, "Bob")
	if _, err := s.Resolve("bob"); !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("untrusted pair: err = %v, want ambiguous", err)
	}
	if err := s.Trust(bob); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Resolve("bob"); err != nil || got != bob {
		t.Fatalf("Resolve(bob) = %s, %v; want the trusted bob", got, err)
	}
	if err := s.Trust(impostor); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve("bob"); !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("two trusted: err = %v, want ambiguous", err)
	}

	// The impostor now holds the pin (Trust moved it); forgetting it
	// frees the nick, and bob takes the pin again when next seen.
	known, err := s.Forget(impostor)
	if err != nil || !known {
		t.Fatalf("Forget = %v, %v", known, err)
	}
	if _, ok := s.Get(impostor); ok {
		t.Fatal("forgotten peer still known")
	}
	if got, err := s.Resolve("bob"); err != nil || got != bob {
		t.Fatalf("after Forget: Resolve(bob) = %s, %v", got, err)
	}
	if c, err := s.Observe(bob, "bob"); err != nil || c != nil {
		t.Fatalf("bob seen again: conflict %v, %v; want the free pin", c, err)
	}
	if known, err := s.Forget(impostor); err != nil || known {
		t.Fatalf("second Forget = %v, %v; want not known", known, err)
	}
	// Persisted: a reopened store agrees.
	s2, err := Open(s.db)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s2.Get(impostor); ok {
		t.Fatal("forgotten peer back after reopening")
	}
}

// PinnedToOther: a nick (and its look-alikes under identity.NickKey) is
// pinned to its first holder; only another key claiming it is reported.
func TestPinnedToOther(t *testing.T) {
	s, _ := openStore(t)
	alice, other := newID(t), newID(t)
	if s.PinnedToOther(other, "alice") {
		t.Fatal("an unpinned nick reported pinned")
	}
	if _, err := s.Observe(alice, "alice"); err != nil {
		t.Fatal(err)
	}
	for _, nick := range []string{"alice", "ALICE", "ａｌｉｃｅ"} {
		if !s.PinnedToOther(other, nick) {
			t.Errorf("%q of another key not reported", nick)
		}
		if s.PinnedToOther(alice, nick) {
			t.Errorf("%q of the pin's holder reported", nick)
		}
	}
	if s.PinnedToOther(other, "alicia") {
		t.Error("another nick reported")
	}
}
