package rooms

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/rooms/pb"
	"golang.org/x/time/rate"
)

// fastRate lets tests post hundreds of lines at once (every node uses
// the same limits, as the protocol asks).
func fastRate(c *Config) {
	c.RateLimit, c.RateBurst = rate.Limit(1000), 1000
}

// stop ends n as a process exit would; resume starts it again.
func (n *tnode) stop() {
	n.t.Helper()
	if err := n.svc.Close(); err != nil {
		n.t.Fatal(err)
	}
	if err := n.db.Close(); err != nil {
		n.t.Fatal(err)
	}
	_ = n.h.Close()
}

func (n *tnode) resume() {
	n.t.Helper()
	n.h = testnet.NewHost(n.t, libp2p.Identity(n.key))
	n.openDB()
	n.start()
}

// caughtUp returns n's message events of room with the prefix.
func (n *tnode) roomMessages(room, prefix string) []events.Message {
	var out []events.Message
	for _, m := range n.messages() {
		if m.Room == room && strings.HasPrefix(m.Text, prefix) {
			out = append(out, m)
		}
	}
	return out
}

func TestSyncCatchesUpAfterBeingAway(t *testing.T) {
	for _, tc := range []struct {
		name    string
		private bool
	}{{"public", false}, {"private", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			ns := []*tnode{newNode(t, "ann", fastRate), newNode(t, "bo", fastRate), newNode(t, "cy", fastRate), newNode(t, "dee", fastRate)}
			connect(t, ns...)
			room := "team"
			for _, n := range ns {
				var err error
				if tc.private {
					_, err = n.svc.JoinInvite(ctx, mustInvite(t, room))
				} else {
					err = n.svc.Join(ctx, room)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			waitTopicPeers(t, room, ns...)
			away := ns[3]
			away.stop()
			const total = 200
			var texts []string
			for i := range total {
				text := fmt.Sprintf("missed %03d", i)
				if _, err := ns[i%3].svc.Send(ctx, room, text); err != nil {
					t.Fatal(err)
				}
				texts = append(texts, text)
			}
			ns[0].events.waitCount(t, "all lines at ann", total, func(e events.Event) bool {
				m, ok := e.(events.Message)
				return ok && strings.HasPrefix(m.Text, "missed ")
			})
			start := time.Now()
			away.resume()
			connect(t, ns...)
			away.events.waitCount(t, "lines caught up", total, func(e events.Event) bool {
				m, ok := e.(events.Message)
				return ok && strings.HasPrefix(m.Text, "missed ")
			})
			t.Logf("caught up on %d lines in %v", total, time.Since(start))
			got := away.roomMessages(room, "missed ")
			seen := make(map[string]int)
			for _, m := range got {
				seen[m.Text]++
				if !m.CaughtUp {
					t.Errorf("%q not marked caught up", m.Text)
				}
				if m.Private != tc.private {
					t.Errorf("%q private = %v", m.Text, m.Private)
				}
			}
			for _, text := range texts {
				if seen[text] != 1 {
					t.Errorf("%q shown %d times", text, seen[text])
				}
			}
			hist, err := away.svc.History(room, total+10)
			if err != nil {
				t.Fatal(err)
			}
			var histTexts []string
			for _, m := range hist {
				if strings.HasPrefix(m.Text, "missed ") {
					histTexts = append(histTexts, m.Text)
					if !m.CaughtUp {
						t.Errorf("history %q not marked caught up", m.Text)
					}
				}
			}
			if !slices.IsSortedFunc(hist, func(a, b events.Message) int { return a.SentAt.Compare(b.SentAt) }) {
				t.Error("history not in sent-time order")
			}
			if len(histTexts) != total {
				t.Fatalf("history holds %d of %d lines", len(histTexts), total)
			}
			// Lines sent in the same millisecond by different authors may
			// be in either order; each author's own are in order.
			slices.Sort(histTexts)
			if !slices.Equal(histTexts, texts) {
				t.Fatalf("history lines differ")
			}
		})
	}
}

// TestSyncNonMemberGetsNothing: a peer without the room key that asks
// for a private room's history (it knows the topic: GossipSub tells
// every connected peer) is refused before any item ID is sent.
func TestSyncNonMemberGetsNothing(t *testing.T) {
	ctx := ctxT(t)
	a, out := newNode(t, "ann", nil), newNode(t, "eve", nil)
	connect(t, a, out)
	if _, err := a.svc.JoinInvite(ctx, mustInvite(t, "secret")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.Send(ctx, "secret", "for members only"); err != nil {
		t.Fatal(err)
	}
	// eve joins a private room of the same name with another key, then
	// points it at a's topic: her proof is under the wrong key.
	if _, err := out.svc.JoinInvite(ctx, mustInviteKey(t, "secret", testKey(0x11))); err != nil {
		t.Fatal(err)
	}
	r, err := out.svc.joined("secret")
	if err != nil {
		t.Fatal(err)
	}
	fake := newRoom("secret")
	fake.private, fake.syncKey, fake.keys = true, r.syncKey, r.keys
	fake.topicName = a.topicOf("secret")
	st, err := out.svc.syncWith(ctx, fake, a.id(), pb.SyncSet_SYNC_SET_HISTORY)
	if err == nil || st.got != 0 {
		t.Fatalf("non-member sync: %+v, %v", st, err)
	}
	if n := len(out.roomMessages("secret", "for members")); n != 0 {
		t.Fatalf("non-member got %d messages", n)
	}
}

func mustInviteKey(t testing.TB, name string, key []byte) string {
	code, err := EncodeInvite(name, key)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// TestPresenceWithoutReplies: a newcomer sees the members and they see it
// within seconds, though nobody answers it on the topic: its presence
// travels by the sync.
func TestPresenceBySync(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := []*tnode{newNode(t, "ann", nil), newNode(t, "bo", nil), newNode(t, "cy", nil)}
	// A line: ann - bo - cy. cy hears of ann only through bo.
	testnet.Connect(t, ns[0].h, ns[1].h)
	testnet.Connect(t, ns[1].h, ns[2].h)
	for _, n := range ns {
		if err := n.svc.Join(ctx, "line"); err != nil {
			t.Fatal(err)
		}
	}
	online := func(n *tnode, who *tnode) {
		n.events.wait(t, "presence", func(e events.Event) bool {
			p, ok := e.(events.Presence)
			return ok && p.Room == "line" && p.PeerID == who.id() && p.Online
		})
	}
	online(ns[2], ns[0])
	online(ns[0], ns[2])
}
