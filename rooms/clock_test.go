package rooms

import (
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/events"
)

func clockWarnings(n *tnode) []events.Error {
	var out []events.Error
	for _, e := range n.events.all() {
		if ev, ok := e.(events.Error); ok && ev.Code == events.ErrClockSkew {
			out = append(out, ev)
		}
	}
	return out
}

// TestClockSkewWarning: a node whose clock is off is told so by its peers'
// lines (issue 18: its own lines were ignored by everyone without a word),
// and the nodes whose clocks agree are not warned by its lines.
func TestClockSkewWarning(t *testing.T) {
	tests := []struct {
		name string
		skew time.Duration
		want string
	}{
		{"ten minutes ahead", 10 * time.Minute, "seems 10m0s ahead of the clocks of 3 peers"},
		{"a day behind", -24 * time.Hour, "seems 24h0m0s behind the clocks of 3 peers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			skewed := newNode(t, "bob", func(c *Config) {
				c.testWallClock = func() time.Time { return time.Now().Add(tt.skew) }
			})
			others := []*tnode{newNode(t, "alice", nil), newNode(t, "carol", nil), newNode(t, "dave", nil)}
			all := append([]*tnode{skewed}, others...)
			connect(t, all...)
			ctx := ctxT(t)
			for _, n := range all {
				if err := n.svc.Join(ctx, "lobby"); err != nil {
					t.Fatal(err)
				}
			}
			waitTopicPeers(t, "lobby", all...)
			for _, n := range others {
				if _, err := n.svc.Send(ctx, "lobby", "hello from "+*n.nick.Load()); err != nil {
					t.Fatal(err)
				}
			}
			ev := skewed.events.wait(t, "clock_skew warning", func(e events.Event) bool {
				ev, ok := e.(events.Error)
				return ok && ev.Code == events.ErrClockSkew
			}).(events.Error)
			if !strings.Contains(ev.Error, tt.want) || ev.Command != "" {
				t.Fatalf("warning %+v, want %q", ev, tt.want)
			}
			// Its own line is ignored by the others, whose clocks agree:
			// one author off does not warn them.
			if _, err := skewed.svc.Send(ctx, "lobby", "from the skewed clock"); err != nil {
				t.Fatal(err)
			}
			for _, n := range others {
				n.waitVerdict("the skewed line ignored", func(v verdictEntry) bool {
					return v.from == skewed.id() && v.v.reason == reasonSkew
				})
				if w := clockWarnings(n); len(w) != 0 {
					t.Fatalf("%s, whose clock is right, was warned: %+v", *n.nick.Load(), w)
				}
			}
			if w := clockWarnings(skewed); len(w) != 1 {
				t.Fatalf("warned %d times", len(w))
			}
		})
	}
}

// TestClockWatchMedian: the verdict needs clockPeers authors, follows
// their median (not one outlier), warns once, and again only after the
// clock agreed in between.
func TestClockWatchMedian(t *testing.T) {
	var w clockWatch
	now := time.Unix(1e9, 0)
	const at = 150 * time.Second
	steps := []struct {
		author string
		off    time.Duration
		warn   bool
	}{
		{"a", -10 * time.Minute, false}, // one author: no verdict
		{"b", -10 * time.Minute, false}, // two
		{"c", time.Second, true},        // three: median -10m
		{"d", -9 * time.Minute, false},  // already warned
		{"a", 0, false},                 // median -9m: still off
		{"b", 0, false},                 // median 0: agrees again
		{"b", -10 * time.Minute, false}, // -10m, -9m, 0, 1s: median 0
		{"c", -10 * time.Minute, true},  // -10m, -10m, -9m, 0: -9m, warns again
	}
	for i, s := range steps {
		now = now.Add(time.Second)
		_, _, warn := w.observe(peer.ID(s.author), s.off, now, at)
		if warn != s.warn {
			t.Fatalf("step %d (%s %v): warn %v, want %v", i, s.author, s.off, warn, s.warn)
		}
	}
	// Samples older than clockWindow no longer count.
	now = now.Add(clockWindow + time.Minute)
	if _, n, _ := w.observe("e", 0, now, at); n != 1 {
		t.Fatalf("%d authors counted after the window", n)
	}
	// The map stays bounded.
	for i := range 3 * clockMaxAuthors {
		w.observe(peer.ID(rune(i)), 0, now, at)
	}
	if len(w.samples) > clockMaxAuthors {
		t.Fatalf("%d samples kept", len(w.samples))
	}
}
