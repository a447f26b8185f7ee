package rooms

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/rooms/pb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func seqno(t testing.TB) []byte {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestForgedAuthorship(t *testing.T) {
	rejects := newLog[string]()
	a := newNode(t, "alice", nil)
	b := newNode(t, "bob", func(c *Config) {
		c.PubSubOptions = append(c.PubSubOptions, pubsub.WithRawTracer(&testTracer{onReject: func(m *pubsub.Message, reason string) {
			rejects.add(string(m.GetFrom()) + "|" + reason)
		}}))
	})
	m := newNode(t, "mallory", nil)
	connect(t, a, b, m)
	ctx := ctxT(t)
	for _, n := range []*tnode{a, b} {
		if err := n.svc.Join(ctx, "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	waitTopicPeers(t, "lobby", a, b)
	b.events.wait(t, "alice online", func(e events.Event) bool {
		p, ok := e.(events.Presence)
		return ok && p.PeerID == a.id() && p.Online
	})
	topic := b.topicOf("lobby")
	tp := rawTopic(t, m, topic, b.id())

	// 1. Mallory signs her own message but calls herself alice, and adds
	// an unknown field holding alice's peer ID. The author shown is
	// mallory's peer ID, flagged as a shared nick, with her fingerprint.
	data := wireEnvelope(t, func(e *envelope) { e.nick, e.text = "alice", "i am alice" })
	data = protowire.AppendTag(data, 15, protowire.BytesType)
	data = protowire.AppendBytes(data, []byte(a.id()))
	publishRaw(t, tp, data)
	got := b.waitMessage("i am alice")
	if got.From != m.id() || got.Nick != "alice" || !got.NickShared ||
		got.Fingerprint != identity.ShortFingerprint(m.id()) || got.Fingerprint == identity.ShortFingerprint(a.id()) {
		t.Fatalf("forged nick delivered as %+v", got)
	}

	// 2. Messages whose signed `from` claims alice but are not signed by
	// her key: garbage signature, mallory's signature, no signature.
	env := wireEnvelope(t, func(e *envelope) { e.nick, e.text = "alice", "forged from" })
	garbage := &pubsubpb.Message{From: []byte(a.id()), Data: env, Seqno: seqno(t), Topic: &topic, Signature: make([]byte, 64)}
	wrongKey := &pubsubpb.Message{From: []byte(a.id()), Data: env, Seqno: seqno(t), Topic: &topic}
	unsigned, err := proto.Marshal(wrongKey)
	if err != nil {
		t.Fatal(err)
	}
	if wrongKey.Signature, err = m.key.Sign(append([]byte("libp2p-pubsub:"), unsigned...)); err != nil {
		t.Fatal(err)
	}
	missing := &pubsubpb.Message{From: []byte(a.id()), Data: env, Seqno: seqno(t), Topic: &topic}
	injectRPC(t, m.h, b.id(), garbage, wrongKey, missing)
	rejects.waitCount(t, "signature rejections", 2, func(s string) bool {
		return s == string(a.id())+"|"+pubsub.RejectInvalidSignature
	})
	rejects.wait(t, "missing signature", func(s string) bool {
		return s == string(a.id())+"|"+pubsub.RejectMissingSignature
	})

	// Still working, and nothing forged was delivered as alice.
	if _, err := a.svc.Send(ctx, "lobby", "the real alice"); err != nil {
		t.Fatal(err)
	}
	b.waitMessage("the real alice")
	for _, msg := range b.messages() {
		if msg.Text == "forged from" {
			t.Fatalf("forged message delivered: %+v", msg)
		}
	}
}

// rawEnvelope builds envelope bytes field by field, to make what
// proto.Marshal refuses to (invalid UTF-8).
func rawEnvelope(kind pb.Kind, id []byte, nick, text string, sentAt time.Time) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(kind))
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, id)
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendString(b, nick)
	b = protowire.AppendTag(b, 4, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(sentAt.UnixMilli()))
	b = protowire.AppendTag(b, 5, protowire.BytesType)
	return protowire.AppendString(b, text)
}

func TestInvalidMessagesRefused(t *testing.T) {
	a, b := newNode(t, "alice", nil), newNode(t, "bob", nil)
	connect(t, a, b)
	ctx := ctxT(t)
	for _, n := range []*tnode{a, b} {
		if err := n.svc.Join(ctx, "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	waitTopicPeers(t, "lobby", a, b)
	topic := b.topicOf("lobby")
	id := make([]byte, idSize)
	now := time.Now()
	tests := []struct {
		name   string
		data   []byte
		result pubsub.ValidationResult
		reason string
	}{
		{"oversize", make([]byte, MaxMessageSize+1), pubsub.ValidationReject, reasonOversize},
		{"malformed", []byte("\xff\xff\xff\xffnot protobuf"), pubsub.ValidationReject, reasonUndecodable},
		{"invalid utf-8 text", rawEnvelope(1, id, "mallory", "bad \xff text", now), pubsub.ValidationReject, reasonUndecodable},
		{"invalid utf-8 nick", rawEnvelope(1, id, "mal\xfflory", "text", now), pubsub.ValidationReject, reasonUndecodable},
		{"bidi nick", rawEnvelope(1, id, "mallory\u202e", "text", now), pubsub.ValidationReject, reasonNick},
		{"control nick", rawEnvelope(1, id, "\x1b[2Jmallory", "text", now), pubsub.ValidationReject, reasonNick},
		{"long text", rawEnvelope(1, id, "mallory", strings.Repeat("x", MaxTextLen+1), now), pubsub.ValidationReject, reasonText},
		{"skewed past", rawEnvelope(1, id, "mallory", "old", now.Add(-DefaultMaxClockSkew-time.Minute)), pubsub.ValidationIgnore, reasonSkew},
		{"skewed future", rawEnvelope(1, id, "mallory", "new", now.Add(DefaultMaxClockSkew+time.Minute)), pubsub.ValidationIgnore, reasonSkew},
		{"future kind", rawEnvelope(42, id, "mallory", "", now), pubsub.ValidationIgnore, reasonUnknownKind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A fresh attacker per case: refused messages cost the sender
			// its score, and a graylisted sender is not even validated.
			m := newNode(t, "mallory", nil)
			connect(t, m, b)
			tp := rawTopic(t, m, topic, b.id())
			publishRaw(t, tp, tt.data)
			v := b.waitVerdict(tt.name, func(v verdictEntry) bool { return v.from == m.id() })
			if v.v.result != tt.result || v.v.reason != tt.reason {
				t.Fatalf("got %v %s, want %v %s", v.v.result, v.v.reason, tt.result, tt.reason)
			}
		})
	}
	// Nothing from the attackers was delivered, and the room still works.
	if _, err := a.svc.Send(ctx, "lobby", "after the storm"); err != nil {
		t.Fatal(err)
	}
	b.waitMessage("after the storm")
	for _, msg := range b.messages() {
		if msg.From != a.id() {
			t.Fatalf("delivered %+v", msg)
		}
	}
}

func TestInvalidSenderLosesScore(t *testing.T) {
	scores := newLog[map[peer.ID]float64]()
	b := newNode(t, "bob", func(c *Config) {
		c.PubSubOptions = append(c.PubSubOptions, pubsub.WithPeerScoreInspect(
			pubsub.PeerScoreInspectFn(scores.add), 50*time.Millisecond))
	})
	m := newNode(t, "mallory", nil)
	connect(t, b, m)
	ctx := ctxT(t)
	if err := b.svc.Join(ctx, "lobby"); err != nil {
		t.Fatal(err)
	}
	tp := rawTopic(t, m, b.topicOf("lobby"), b.id())
	for range 3 {
		publishRaw(t, tp, []byte("junk"))
	}
	b.verdicts.waitCount(t, "3 rejections", 3, func(v verdictEntry) bool { return v.from == m.id() })
	scores.wait(t, "mallory graylisted", func(s map[peer.ID]float64) bool {
		return s[m.id()] < scoreGraylistThreshold
	})
}

func TestReplayBySameAuthorRefused(t *testing.T) {
	b, m := newNode(t, "bob", nil), newNode(t, "mallory", nil)
	connect(t, b, m)
	ctx := ctxT(t)
	if err := b.svc.Join(ctx, "lobby"); err != nil {
		t.Fatal(err)
	}
	tp := rawTopic(t, m, b.topicOf("lobby"), b.id())
	data := wireEnvelope(t, func(e *envelope) { e.text = "say it twice" })
	publishRaw(t, tp, data)
	b.waitMessage("say it twice")
	publishRaw(t, tp, data) // same envelope, new GossipSub seqno
	b.waitVerdict("replay refused", func(v verdictEntry) bool {
		return v.from == m.id() && v.v.reason == reasonReplay && v.v.result == pubsub.ValidationIgnore
	})
	if n := b.events.count(func(e events.Event) bool {
		msg, ok := e.(events.Message)
		return ok && msg.Text == "say it twice"
	}); n != 1 {
		t.Fatalf("delivered %d times", n)
	}
}

func TestReplayAfterRestartRefused(t *testing.T) {
	for _, private := range []bool{false, true} {
		t.Run(kindName(private), func(t *testing.T) {
			a, b, m := newNode(t, "alice", nil), newNode(t, "bob", nil), newNode(t, "mallory", nil)
			connect(t, a, b, m)
			ctx := ctxT(t)
			room := "lobby"
			if private {
				invite, err := a.svc.Create(ctx, "hideout")
				if err != nil {
					t.Fatal(err)
				}
				if room, err = b.svc.JoinInvite(ctx, invite); err != nil {
					t.Fatal(err)
				}
			} else {
				for _, n := range []*tnode{a, b} {
					if err := n.svc.Join(ctx, room); err != nil {
						t.Fatal(err)
					}
				}
			}
			waitTopicPeers(t, room, a, b)
			topic := b.topicOf(room)
			// Mallory records the signed message from the wire.
			tp := rawTopic(t, m, topic, a.id(), b.id())
			sub, err := tp.Subscribe()
			if err != nil {
				t.Fatal(err)
			}
			waitPeerOnTopic(t, m.id(), room, a)
			sent, err := a.svc.Send(ctx, room, "only once")
			if err != nil {
				t.Fatal(err)
			}
			b.waitMessage("only once")
			ra, err := a.svc.joined(room)
			if err != nil {
				t.Fatal(err)
			}
			var captured *pubsubpb.Message
			for captured == nil {
				msg, err := sub.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				// The test may look inside (it knows the key).
				if env, v := a.svc.decode(ra, msg.GetFrom(), msg.Data); v.reason == reasonOK && env.text == "only once" {
					captured = msg.Message
				}
			}
			sub.Cancel()

			// Bob restarts: new process, same key and database; GossipSub's
			// seen cache is empty.
			b.restart()
			b.events.wait(t, "rejoined", func(e events.Event) bool { return e == events.Joined{Room: room} })
			connect(t, b, a)
			connect(t, b, m)
			injectRPC(t, m.h, b.id(), captured)
			v := b.waitVerdict("replay refused", func(v verdictEntry) bool { return v.from == a.id() && v.v.reason != reasonOK })
			if v.v.reason != reasonReplay || v.v.result != pubsub.ValidationIgnore {
				t.Fatalf("replay verdict %+v", v.v)
			}
			hist, err := b.svc.History(room, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(hist) != 1 || !sameLine(hist[0], sent) {
				t.Fatalf("history after replay: %+v", hist)
			}
			// Bob keeps working.
			waitTopicPeers(t, room, a, b)
			if _, err := a.svc.Send(ctx, room, "welcome back"); err != nil {
				t.Fatal(err)
			}
			b.waitMessage("welcome back")
			if n := b.events.count(func(e events.Event) bool {
				msg, ok := e.(events.Message)
				return ok && msg.Text == "only once"
			}); n != 1 {
				t.Fatalf("bob delivered the message %d times", n)
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	slow := func(c *Config) {
		c.RateBurst = 3
		c.RateLimit = 0.01
		c.PresenceInterval = time.Minute
		c.PresenceTimeout = 2 * time.Minute
	}
	a, b, m := newNode(t, "alice", slow), newNode(t, "bob", slow), newNode(t, "mallory", slow)
	connect(t, a, b, m)
	ctx := ctxT(t)
	for _, n := range []*tnode{a, b} {
		if err := n.svc.Join(ctx, "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	waitTopicPeers(t, "lobby", a, b)
	tp := rawTopic(t, m, b.topicOf("lobby"), b.id())
	for i := range 6 {
		publishRaw(t, tp, wireEnvelope(t, func(e *envelope) { e.text = "flood " + string(rune('a'+i)) }))
	}
	b.verdicts.waitCount(t, "6 verdicts", 6, func(v verdictEntry) bool { return v.from == m.id() })
	accepted := b.verdicts.count(func(v verdictEntry) bool { return v.from == m.id() && v.v.reason == reasonOK })
	limited := b.verdicts.count(func(v verdictEntry) bool { return v.from == m.id() && v.v.reason == reasonRate })
	if accepted != 3 || limited != 3 {
		t.Fatalf("accepted %d, rate limited %d; want 3 and 3", accepted, limited)
	}
	b.events.waitCount(t, "3 flood messages", 3, func(e events.Event) bool {
		msg, ok := e.(events.Message)
		return ok && msg.From == m.id()
	})

	// The node's own sends hit the same limit and say so; presence does not
	// use up the chat allowance.
	var err error
	for i := 0; i < 4 && err == nil; i++ {
		_, err = a.svc.Send(ctx, "lobby", "chatty")
	}
	if !errors.Is(err, ErrRateLimited) {
		t.Fatalf("4th send: %v, want ErrRateLimited", err)
	}
	b.events.waitCount(t, "alice's 3 lines", 3, func(e events.Event) bool {
		msg, ok := e.(events.Message)
		return ok && msg.Text == "chatty"
	})
}
