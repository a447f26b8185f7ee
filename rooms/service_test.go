package rooms

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/rooms/pb"
	"google.golang.org/protobuf/proto"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func TestPublicRoomReachesMembersOnly(t *testing.T) {
	a, b, c := newNode(t, "alice", nil), newNode(t, "bob", nil), newNode(t, "carol", nil)
	outsider := newNode(t, "dave", func(c *Config) { c.MeshWait = 100 * time.Millisecond })
	connect(t, a, b, c, outsider)
	ctx := ctxT(t)
	for _, n := range []*tnode{a, b, c} {
		if err := n.svc.Join(ctx, "Lobby"); err != nil {
			t.Fatal(err)
		}
	}
	if err := outsider.svc.Join(ctx, "elsewhere"); err != nil {
		t.Fatal(err)
	}
	waitTopicPeers(t, "lobby", a, b, c)

	before := time.Now()
	sent, err := a.svc.Send(ctx, "lobby", "hello room")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*tnode{a, b, c} {
		got := n.waitMessage("hello room")
		if !sameLine(got, sent) {
			t.Errorf("%s got %+v, want %+v", *n.nick.Load(), got, sent)
		}
	}
	if sent.From != a.id() || sent.Nick != "alice" || sent.Room != "lobby" || sent.Private ||
		sent.Fingerprint != identity.ShortFingerprint(a.id()) || sent.NickShared {
		t.Errorf("message fields: %+v", sent)
	}
	if id, err := hex.DecodeString(sent.ID); err != nil || len(id) != idSize {
		t.Errorf("id %q", sent.ID)
	}
	js, err := events.MarshalJSON(sent)
	if err != nil {
		t.Fatal(err)
	}
	var wire struct {
		SentAt string `json:"sent_at"`
	}
	if err := json.Unmarshal(js, &wire); err != nil {
		t.Fatal(err)
	}
	if len(wire.SentAt) != len("2006-01-02T15:04:05.000Z") {
		t.Errorf("sent_at %q is not RFC 3339 UTC with milliseconds", wire.SentAt)
	}
	at, err := time.Parse(time.RFC3339, wire.SentAt)
	if err != nil || at.Before(before.Add(-time.Millisecond)) || at.After(time.Now()) {
		t.Errorf("sent_at %q (%v) not in [%v, now]", wire.SentAt, err, before)
	}
	// The outsider's message in its own room is delivered to it, and the
	// lobby message never was.
	if _, err := outsider.svc.Send(ctx, "elsewhere", "barrier"); err != nil {
		t.Fatal(err)
	}
	outsider.waitMessage("barrier")
	for _, m := range outsider.messages() {
		if m.Room != "elsewhere" {
			t.Errorf("outsider got %+v", m)
		}
	}
	// Every member got exactly one copy.
	for _, n := range []*tnode{a, b, c} {
		if k := len(n.messages()); k != 1 {
			t.Errorf("%s has %d messages", *n.nick.Load(), k)
		}
	}
}

func TestPrivateRoom(t *testing.T) {
	a, b, outsider := newNode(t, "alice", nil), newNode(t, "bob", nil), newNode(t, "eve", nil)
	connect(t, a, b, outsider)
	ctx := ctxT(t)
	invite, err := a.svc.Create(ctx, "secret")
	if err != nil {
		t.Fatal(err)
	}
	name, err := b.svc.JoinInvite(ctx, " "+invite+"\n")
	if err != nil || name != "secret" {
		t.Fatalf("JoinInvite = %q, %v", name, err)
	}
	if again, err := a.svc.Invite("secret"); err != nil || again != invite {
		t.Fatalf("Invite = %q, %v", again, err)
	}
	topic := a.topicOf("secret")
	// The outsider learned the topic (it is visible on the wire) and
	// subscribes to it with plain pubsub, no key.
	tp := rawTopic(t, outsider, topic, a.id(), b.id())
	sub, err := tp.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	waitTopicPeers(t, "secret", a, b)
	// GossipSub never sends a message to a peer that subscribes after it
	// was published, so let the members see the outsider first.
	waitPeerOnTopic(t, outsider.id(), "secret", a, b)

	const text = "the password is swordfish"
	sent, err := a.svc.Send(ctx, "secret", text)
	if err != nil {
		t.Fatal(err)
	}
	got := b.waitMessage(text)
	if !got.Private || got.From != a.id() || !sameLine(got, sent) {
		t.Fatalf("bob got %+v", got)
	}

	// The outsider sees the text message, as ciphertext only. (The test
	// knows the key, so it can tell which message is the text.)
	_, key, err := DecodeInvite(invite)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := deriveKeys(key, "secret")
	if err != nil {
		t.Fatal(err)
	}
	var raw []byte
	for raw == nil {
		m, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(m.Data, []byte(text)) || bytes.Contains(m.Data, []byte("alice")) {
			t.Fatal("outsider sees plaintext")
		}
		var sealed pb.Sealed
		if err := proto.Unmarshal(m.Data, &sealed); err != nil {
			t.Fatalf("not a Sealed: %v", err)
		}
		var env pb.Envelope
		if proto.Unmarshal(sealed.Ciphertext, &env) == nil && env.Text != "" {
			t.Fatal("ciphertext decodes as an envelope")
		}
		plain, err := open(&keys, m.GetFrom(), sealed.Nonce, sealed.Ciphertext)
		if err != nil {
			t.Fatalf("test cannot open: %v", err)
		}
		if proto.Unmarshal(plain, &env) == nil && env.Text == text {
			raw = m.Data
		}
	}
	if n := len(outsider.messages()); n != 0 {
		t.Fatalf("outsider delivered %d messages", n)
	}

	// A tampered ciphertext is rejected, and so is the untouched
	// ciphertext republished under the outsider's own (signed) name: the
	// publisher is bound into the associated data.
	var sealed pb.Sealed
	if err := proto.Unmarshal(raw, &sealed); err != nil {
		t.Fatal(err)
	}
	sealed.Ciphertext[len(sealed.Ciphertext)/2] ^= 0x01
	tampered, _ := proto.Marshal(&sealed)
	publishRaw(t, tp, tampered)
	b.waitVerdict("tampered rejected", func(v verdictEntry) bool {
		return v.from == outsider.id() && v.v.reason == reasonSealed
	})
	publishRaw(t, tp, raw)
	b.verdicts.waitCount(t, "republished rejected", 2, func(v verdictEntry) bool {
		return v.from == outsider.id() && v.v.reason == reasonSealed && v.topic == topic
	})

	// Still working.
	if _, err := b.svc.Send(ctx, "secret", "still here"); err != nil {
		t.Fatal(err)
	}
	a.waitMessage("still here")
	if n := len(outsider.messages()); n != 0 {
		t.Fatalf("outsider delivered %d messages", n)
	}
}

func TestJoinLeaveRules(t *testing.T) {
	a := newNode(t, "alice", func(c *Config) { c.MeshWait = time.Millisecond })
	ctx := ctxT(t)
	if err := a.svc.Join(ctx, "Lobby"); err != nil {
		t.Fatal(err)
	}
	if err := a.svc.Join(ctx, "lobby"); err != nil {
		t.Fatalf("second join: %v", err)
	}
	if err := a.svc.Join(ctx, "bad name"); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := a.svc.Create(ctx, "lobby"); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("create over public: %v", err)
	}
	invite, err := a.svc.Create(ctx, "priv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.Create(ctx, "priv"); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("create twice: %v", err)
	}
	if name, err := a.svc.JoinInvite(ctx, invite); err != nil || name != "priv" {
		t.Fatalf("join own invite: %q %v", name, err)
	}
	other, _ := EncodeInvite("priv", testKey(42))
	if _, err := a.svc.JoinInvite(ctx, other); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("other key, same name: %v", err)
	}
	if err := a.svc.Join(ctx, "priv"); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("public over private: %v", err)
	}
	if _, err := a.svc.JoinInvite(ctx, "parley-invite:garbage"); !errors.Is(err, ErrInvalidInvite) {
		t.Fatalf("bad invite: %v", err)
	}
	if _, err := a.svc.Invite("lobby"); !errors.Is(err, ErrPublicRoom) {
		t.Fatalf("invite public: %v", err)
	}
	got := a.svc.Rooms()
	if len(got) != 2 {
		t.Fatalf("Rooms = %+v", got)
	}
	want := []RoomInfo{
		{Name: "lobby", Private: false, Members: 1, Rendezvous: PublicTopicPrefix + "lobby"},
		{Name: "priv", Private: true, Members: 1, Rendezvous: got[1].Rendezvous},
	}
	if got[0] != want[0] || got[1] != want[1] || !strings.HasPrefix(got[1].Rendezvous, PrivateTopicPrefix+"rendezvous/") {
		t.Fatalf("Rooms = %+v", got)
	}
	if _, err := a.svc.Send(ctx, "lobby", ""); !errors.Is(err, ErrInvalidText) {
		t.Fatalf("empty text: %v", err)
	}
	if _, err := a.svc.Send(ctx, "lobby", string(make([]byte, MaxTextLen+1))); !errors.Is(err, ErrInvalidText) {
		t.Fatalf("long text: %v", err)
	}
	a.setNick("bad\x1bnick")
	if _, err := a.svc.Send(ctx, "lobby", "hi"); !errors.Is(err, identity.ErrInvalidNick) {
		t.Fatalf("bad own nick: %v", err)
	}
	a.setNick("alice")
	if _, err := a.svc.Send(ctx, "lobby", "alone"); err != nil {
		t.Fatalf("send alone: %v", err)
	}
	a.waitMessage("alone")
	if err := a.svc.Leave("LOBBY"); err != nil {
		t.Fatal(err)
	}
	if err := a.svc.Leave("lobby"); !errors.Is(err, ErrNotJoined) {
		t.Fatalf("leave twice: %v", err)
	}
	if _, err := a.svc.Send(ctx, "lobby", "hi"); !errors.Is(err, ErrNotJoined) {
		t.Fatalf("send after leave: %v", err)
	}
	if _, err := a.svc.Who("lobby"); !errors.Is(err, ErrNotJoined) {
		t.Fatalf("who after leave: %v", err)
	}
	// Joined, left and rejoin-at-start events.
	a.events.wait(t, "left", func(e events.Event) bool { return e == events.Left{Room: "lobby"} })
	if n := a.events.count(func(e events.Event) bool { return e == events.Joined{Room: "lobby"} }); n != 1 {
		t.Fatalf("%d joined events for lobby", n)
	}
	a.restart()
	a.events.wait(t, "rejoined priv", func(e events.Event) bool { return e == events.Joined{Room: "priv"} })
	got = a.svc.Rooms()
	if len(got) != 1 || got[0].Name != "priv" || !got[0].Private {
		t.Fatalf("after restart Rooms = %+v", got)
	}
	if again, err := a.svc.Invite("priv"); err != nil || again != invite {
		t.Fatalf("private key not kept: %v", err)
	}
	if err := a.svc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.svc.Join(ctx, "x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("join after close: %v", err)
	}
	if err := a.svc.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}
