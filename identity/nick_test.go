package identity

import "testing"

func TestSameNick(t *testing.T) {
	tests := []struct {
		a, b string
		same bool
	}{
		{"alice", "alice", true},
		{"alice", "ALICE", true},
		{"alice", "ａｌｉｃｅ", true}, // full width
		{"Ａlice", "alice", true},
		{"ﬁona", "fiona", true}, // compatibility ligature
		{"sam  smith", "sam smith", true},
		{"Straße", "STRASSE", true}, // full case folding
		{"ΣΑΣ", "σας", true},        // final sigma
		{"İlker", "i\u0307lker", true},
		{"İlker", "ilker", false}, // not the Turkic folding
		{"𝐀lice", "alice", true},  // NFKC before folding
		{"alice", "alice2", false},
		{"alice", "alíce", false},
		{"bob", "b o b", false},
		{"", "", true},
		{"", "x", false},
	}
	for _, tc := range tests {
		if got := SameNick(tc.a, tc.b); got != tc.same {
			t.Errorf("SameNick(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.same)
		}
		if got := NickKey(tc.a) == NickKey(tc.b); got != tc.same {
			t.Errorf("NickKey(%q) == NickKey(%q) is %v, want %v", tc.a, tc.b, got, tc.same)
		}
	}
}

// Every nick ValidateNick admits has a non-empty key, also those the
// PRECIS Nickname profile refuses (unassigned in its tables, for example).
func TestNickKeyOfValidNicks(t *testing.T) {
	for _, nick := range []string{"a", "ALICE", "\u0378x", "x\u0301", "日本語"} {
		if err := ValidateNick(nick); err != nil {
			continue
		}
		if NickKey(nick) == "" {
			t.Errorf("NickKey(%q) is empty", nick)
		}
	}
}
