package rooms

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func TestInviteRoundTrip(t *testing.T) {
	for _, name := range []string{"x", "secret-room", "日本語", strings.Repeat("é", MaxNameLen)} {
		code, err := EncodeInvite(name, testKey(7))
		if err != nil {
			t.Fatalf("encode %q: %v", name, err)
		}
		if !LooksLikeInvite(code) {
			t.Fatalf("%q does not look like an invite", code)
		}
		gotName, gotKey, err := DecodeInvite(code)
		if err != nil || gotName != name || !bytes.Equal(gotKey, testKey(7)) {
			t.Fatalf("decode(encode(%q)) = %q, %x, %v", name, gotName, gotKey, err)
		}
	}
}

func TestInviteEncodeRefuses(t *testing.T) {
	if _, err := EncodeInvite("Upper", testKey(1)); !errors.Is(err, ErrInvalidInvite) {
		t.Errorf("non-canonical name: %v", err)
	}
	if _, err := EncodeInvite("ok", testKey(1)[:31]); !errors.Is(err, ErrInvalidInvite) {
		t.Errorf("short key: %v", err)
	}
}

func TestInviteDecodeRejects(t *testing.T) {
	good, err := EncodeInvite("room", testKey(9))
	if err != nil {
		t.Fatal(err)
	}
	body := strings.TrimPrefix(good, InvitePrefix)
	raw, err := inviteEncoding.DecodeString(body)
	if err != nil {
		t.Fatal(err)
	}
	reencode := func(mut func([]byte) []byte) string {
		b := mut(bytes.Clone(raw))
		return InvitePrefix + inviteEncoding.EncodeToString(b)
	}
	// withCheck rebuilds the check bytes so only the named defect remains.
	withCheck := func(b []byte) []byte {
		b = b[:len(b)-inviteCheckLen]
		return append(b, inviteCheck(b)...)
	}
	tests := map[string]string{
		"empty":          "",
		"no prefix":      body,
		"wrong prefix":   "parley-invite;" + body,
		"upper prefix":   strings.ToUpper(InvitePrefix) + body,
		"bad base64":     InvitePrefix + body[:10] + "*" + body[11:],
		"padding":        good + "==",
		"trailing space": good + " ",
		"inner newline":  InvitePrefix + body[:10] + "\n" + body[10:],
		"inner CR":       InvitePrefix + body[:10] + "\r" + body[10:],
		"too long":       InvitePrefix + strings.Repeat("A", 400),
		"truncated":      good[:len(good)-3],
		"flipped key bit": reencode(func(b []byte) []byte {
			b[5] ^= 1
			return b
		}),
		"flipped check bit": reencode(func(b []byte) []byte {
			b[len(b)-1] ^= 0x80
			return b
		}),
		"version 2": reencode(func(b []byte) []byte {
			b[0] = 2
			return withCheck(b)
		}),
		"name length mismatch": reencode(func(b []byte) []byte {
			b[1+KeySize] = 3
			return withCheck(b)
		}),
		"name not canonical": reencode(func(b []byte) []byte {
			b[1+KeySize+1] = 'R'
			return withCheck(b)
		}),
		"name with escape": reencode(func(b []byte) []byte {
			b[1+KeySize+1] = 0x1b
			return withCheck(b)
		}),
		"extra byte": reencode(func(b []byte) []byte {
			b = append(b[:len(b)-inviteCheckLen], 'x')
			b = append(b, 0, 0, 0, 0)
			return withCheck(b)
		}),
	}
	for name, code := range tests {
		if _, _, err := DecodeInvite(code); !errors.Is(err, ErrInvalidInvite) {
			t.Errorf("%s: DecodeInvite(%q) = %v, want ErrInvalidInvite", name, code, err)
		}
	}
}

func FuzzDecodeInvite(f *testing.F) {
	good, _ := EncodeInvite("room", testKey(3))
	f.Add(good)
	f.Add(InvitePrefix)
	f.Add(InvitePrefix + "AQ")
	f.Add("lobby")
	f.Fuzz(func(t *testing.T, code string) {
		name, key, err := DecodeInvite(code)
		if err != nil {
			if !errors.Is(err, ErrInvalidInvite) {
				t.Fatalf("error does not wrap ErrInvalidInvite: %v", err)
			}
			return
		}
		if !isCanonicalName(name) || len(key) != KeySize {
			t.Fatalf("accepted bad invite: name %q key %d bytes", name, len(key))
		}
		again, err := EncodeInvite(name, key)
		if err != nil || again != code {
			t.Fatalf("invite is not canonical: %q re-encodes to %q (%v)", code, again, err)
		}
	})
}
