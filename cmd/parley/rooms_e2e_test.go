package main_test

import (
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/proctest"
)

func isMessage(room, text string) func(proctest.Event) bool {
	return func(e proctest.Event) bool { return e.Str("room") == room && e.Str("text") == text }
}

// noEvent fails if p reported an event of type typ matching match so far.
func noEvent(t *testing.T, p *proctest.Peer, typ string, match func(proctest.Event) bool) {
	t.Helper()
	for _, e := range p.Seen() {
		if e.Type() == typ && (match == nil || match(e)) {
			t.Fatalf("%s got %s event it must not see: %v", p.Name, typ, e)
		}
	}
}

// quietPeriod is how long a test waits to be sure that something does not
// arrive, after it has arrived everywhere it should have.
const quietPeriod = 2 * time.Second

func TestRoomMessageReachesMembersOnly(t *testing.T) {
	a, readyA := startPeer(t, "alice", "--room", "dev")
	addrA := firstAddr(t, readyA)
	b, _ := startPeer(t, "bob", "--room", "dev", "--peer", addrA)
	c, _ := startPeer(t, "carol", "--room", "dev", "--peer", addrA)
	d, _ := startPeer(t, "dave", "--peer", addrA) // lobby only
	for _, p := range []*proctest.Peer{a, b, c} {
		p.Find(20*time.Second, "joined", func(e proctest.Event) bool { return e.Str("room") == "dev" })
	}
	// Members see each other before the first message.
	for _, p := range []*proctest.Peer{b, c} {
		p.Find(30*time.Second, "presence", func(e proctest.Event) bool {
			return e.Str("room") == "dev" && e.Str("peer_id") == readyA.Str("peer_id") && e["online"] == true
		})
	}
	before := time.Now().Add(-time.Second)
	a.Send("/switch dev")
	a.Send("hello room")
	for _, p := range []*proctest.Peer{b, c} {
		m := p.Wait(20*time.Second, "message", isMessage("dev", "hello room"))
		if m.Str("from") != readyA.Str("peer_id") || m.Str("nick") != "alice" || m["private"] != false {
			t.Fatalf("%s got %v", p.Name, m)
		}
		sent, err := time.Parse(time.RFC3339, m.Str("sent_at"))
		if err != nil || sent.Before(before.Truncate(time.Second)) || sent.After(time.Now().Add(time.Second)) {
			t.Fatalf("%s: sent_at %q (%v) not around now", p.Name, m.Str("sent_at"), err)
		}
	}
	time.Sleep(quietPeriod) // nothing to await: proving an absence
	noEvent(t, d, "message", isMessage("dev", "hello room"))
}

func TestPrivateRoomAndHistoryAfterRestart(t *testing.T) {
	a, readyA := startPeer(t, "alice")
	addrA := firstAddr(t, readyA)
	bDir := t.TempDir()
	bArgs := append([]string{"--data-dir", bDir, "--nick", "bob", "--peer", addrA}, proctest.Loopback()...)
	b := proctest.Start(t, bin, "bob", bArgs...)
	b.Wait(20*time.Second, "ready", nil)
	c, _ := startPeer(t, "carol", "--peer", addrA)

	a.Send("/create secret")
	inv := a.Wait(10*time.Second, "info", func(e proctest.Event) bool {
		data, _ := e["data"].(map[string]any)
		return data != nil && data["invite"] != nil
	})
	invite := inv["data"].(map[string]any)["invite"].(string)
	if strings.Contains(invite, "secret") {
		t.Fatalf("invite %q shows the room name in clear", invite)
	}
	b.Send("/join " + invite)
	b.Wait(20*time.Second, "joined", func(e proctest.Event) bool { return e.Str("room") == "secret" })
	b.Find(30*time.Second, "presence", func(e proctest.Event) bool {
		return e.Str("room") == "secret" && e.Str("peer_id") == readyA.Str("peer_id")
	})
	a.Send("/switch secret")
	a.Send("for members only")
	m := b.Wait(20*time.Second, "message", isMessage("secret", "for members only"))
	if m["private"] != true {
		t.Fatalf("private room message not marked private: %v", m)
	}
	time.Sleep(quietPeriod)
	noEvent(t, c, "message", func(e proctest.Event) bool { return e.Str("text") == "for members only" })

	// Bob restarts: the room is rejoined and the history is still there.
	b.Send("/quit")
	if err := b.Exited(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	b = proctest.Start(t, bin, "bob", bArgs...)
	b.Wait(20*time.Second, "ready", nil)
	b.Find(20*time.Second, "joined", func(e proctest.Event) bool { return e.Str("room") == "secret" })
	b.Send("/history secret 10")
	h := b.Wait(10*time.Second, "info", func(e proctest.Event) bool { return strings.Contains(e.Str("text"), "for members only") })
	_ = h
}
