package rooms

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/rooms/pb"
	"google.golang.org/protobuf/proto"
)

func addrs(tb testing.TB, ss ...string) []ma.Multiaddr {
	tb.Helper()
	out := make([]ma.Multiaddr, len(ss))
	for i, s := range ss {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = a
	}
	return out
}

// otherPayload is a record signed in the peer record domain under another
// payload type.
type otherPayload struct{ b []byte }

func (o *otherPayload) Domain() string                 { return peer.PeerRecordEnvelopeDomain }
func (o *otherPayload) Codec() []byte                  { return []byte{0x03, 0x02} }
func (o *otherPayload) MarshalRecord() ([]byte, error) { return o.b, nil }
func (o *otherPayload) UnmarshalRecord(b []byte) error { o.b = b; return nil }

// sealEnv signs r with k and encodes the envelope.
func sealEnv(tb testing.TB, r record.Record, k crypto.PrivKey) []byte {
	tb.Helper()
	env, err := record.Seal(r, k)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := env.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// sealRecord signs a peer record naming id at as with k.
func sealRecord(tb testing.TB, k crypto.PrivKey, id peer.ID, as []ma.Multiaddr) []byte {
	tb.Helper()
	return sealEnv(tb, peer.PeerRecordFromAddrInfo(peer.AddrInfo{ID: id, Addrs: as}), k)
}

func keyID(tb testing.TB) (crypto.PrivKey, peer.ID) {
	tb.Helper()
	k := testnet.NewKey(tb)
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	return k, id
}

func manyAddrs(tb testing.TB, n int) []ma.Multiaddr {
	var ss []string
	for i := range n {
		ss = append(ss, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 4000+i))
	}
	return addrs(tb, ss...)
}

func TestVerifyPeerRecord(t *testing.T) {
	key, author := keyID(t)
	otherKey, other := keyID(t)
	one := addrs(t, "/ip4/127.0.0.1/tcp/4001")
	peerRec := peer.PeerRecordFromAddrInfo(peer.AddrInfo{ID: author, Addrs: one})
	payload, err := peerRec.MarshalRecord()
	if err != nil {
		t.Fatal(err)
	}
	var long []string // 14 addresses (within the count) of about 90 bytes
	for i := range 14 {
		long = append(long, fmt.Sprintf("/dns4/%s%d.example/tcp/4001", strings.Repeat("a", 60), i))
	}
	cases := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"valid", sealRecord(t, key, author, one), true},
		{"16 addresses", sealRecord(t, key, author, manyAddrs(t, 16)), true},
		{"no addresses", sealRecord(t, key, author, nil), true},
		{"forged: author's ID signed by another key", sealRecord(t, otherKey, author, one), false},
		{"record of another peer", sealRecord(t, otherKey, other, one), false},
		{"author's key, another peer's ID", sealRecord(t, key, other, one), false},
		{"too many addresses", sealRecord(t, key, author, manyAddrs(t, 17)), false},
		{"oversized", sealRecord(t, key, author, addrs(t, long...)), false},
		{"wrong payload type", sealEnv(t, &otherPayload{payload}, key), false},
		{"garbage", []byte("not an envelope"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "oversized" && len(c.b) <= MaxPeerRecordSize {
				t.Fatalf("oversized case is %d bytes", len(c.b))
			}
			_, pr, err := verifyPeerRecord(c.b, author)
			if c.ok != (err == nil) {
				t.Fatalf("verify = %v, want ok=%v", err, c.ok)
			}
			if err != nil && !errors.Is(err, errPeerRecord) {
				t.Fatalf("error %v is not errPeerRecord", err)
			}
			if c.ok && pr.PeerID != author {
				t.Fatalf("record of %s", pr.PeerID)
			}
		})
	}
}

// TestValidatePresenceRecord runs the topic validator on presences that
// carry records: a good one is accepted with its record, bad ones are
// rejected (they cost the forwarder its score).
func TestValidatePresenceRecord(t *testing.T) {
	key, author := keyID(t)
	otherKey, _ := keyID(t)
	one := addrs(t, "/ip4/127.0.0.1/tcp/4001")
	cases := []struct {
		name   string
		record []byte
		want   pubsub.ValidationResult
	}{
		{"none", nil, pubsub.ValidationAccept},
		{"valid", sealRecord(t, key, author, one), pubsub.ValidationAccept},
		{"forged", sealRecord(t, otherKey, author, one), pubsub.ValidationReject},
		{"too many addresses", sealRecord(t, key, author, manyAddrs(t, 17)), pubsub.ValidationReject},
		{"oversized", make([]byte, MaxPeerRecordSize+1), pubsub.ValidationReject},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, pub, _ := fuzzRooms(t)
			env, err := newEnvelope(pb.Kind_KIND_PRESENCE, "alice", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			env.record = c.record
			data, err := env.marshal()
			if err != nil {
				t.Fatal(err)
			}
			m := &pubsub.Message{
				Message:      &pubsubpb.Message{From: []byte(author), Data: data, Signature: []byte{1}, Topic: &pub.topicName},
				ReceivedFrom: "relay",
			}
			if got := s.validator(pub)(context.Background(), "relay", m); got != c.want {
				t.Fatalf("validate = %v, want %v", got, c.want)
			}
			in, _ := m.ValidatorData.(*incoming)
			if c.want == pubsub.ValidationAccept && (in == nil || (in.rec != nil) != (c.record != nil)) {
				t.Fatalf("accepted with %#v", m.ValidatorData)
			}
		})
	}
}

func TestShareableAddrs(t *testing.T) {
	pub := "/ip4/1.2.3.4/tcp/4001"
	pub6 := "/ip6/2001:4860::1/udp/4001/quic-v1"
	lan := "/ip4/192.168.1.5/tcp/4001"
	cgnat := "/ip4/100.64.0.1/tcp/4001"
	ula := "/ip6/fd00::1/tcp/4001"
	lo := "/ip4/127.0.0.1/tcp/4001"
	lo6 := "/ip6/::1/tcp/4001"
	ll := "/ip6/fe80::1/tcp/4001"
	unspec := "/ip4/0.0.0.0/tcp/4001"
	dnsName := "/dns4/chat.example.org/tcp/4001"
	localhost := "/dns4/localhost/tcp/4001"
	circuit := "/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWGC6TvWhfapngX6wvJHMYvKpDMXPb3ZnCZ6dMoaMtimQ5/p2p-circuit"
	cases := []struct {
		name    string
		in      []string
		private bool
		want    []string
	}{
		{"public first, LAN and loopback dropped in a public room", []string{lo, lan, pub, ll, pub6}, false, []string{pub, pub6}},
		{"LAN kept in a private room", []string{lo, lan, cgnat, ula, pub}, true, []string{pub, lan, cgnat, ula}},
		{"loopback-only node shares loopback", []string{lo, lo6, localhost}, false, []string{lo, lo6, localhost}},
		{"loopback dropped beside LAN even in a public room", []string{lo, lan}, false, nil},
		{"never unspecified or link-local", []string{unspec, ll}, true, nil},
		{"DNS names and relay circuits", []string{dnsName, circuit}, false, []string{dnsName, circuit}},
		{"duplicates once", []string{pub, pub}, false, []string{pub}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := shareableAddrs(addrs(t, c.in...), c.private)
			want := addrs(t, c.want...)
			if !slices.EqualFunc(got, want, ma.Multiaddr.Equal) {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
	if n := len(shareableAddrs(manyAddrs(t, 40), false)); n != MaxPeerRecordAddrs {
		t.Fatalf("%d addresses shared, at most %d", n, MaxPeerRecordAddrs)
	}
}

func TestUsableAddrs(t *testing.T) {
	in := addrs(t, "/ip4/1.2.3.4/tcp/1", "/ip4/10.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/1", "/ip6/fe80::1/tcp/1")
	cases := []struct {
		name              string
		private, loopback bool
		want              []ma.Multiaddr
	}{
		{"public room, no loopback peers", false, false, in[:1]},
		{"private room", true, false, in[:2]},
		{"loopback peers", false, true, []ma.Multiaddr{in[0], in[2]}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := usableAddrs(in, c.private, c.loopback); !slices.EqualFunc(got, c.want, ma.Multiaddr.Equal) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestSealPeerRecordFitsLimit(t *testing.T) {
	key, id := keyID(t)
	var long []string
	for i := range 16 {
		long = append(long, fmt.Sprintf("/dns4/%s%d.example/tcp/4001", strings.Repeat("a", 60), i))
	}
	b, err := sealPeerRecord(key, id, addrs(t, long...))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 || len(b) > MaxPeerRecordSize {
		t.Fatalf("record of %d bytes", len(b))
	}
	if _, pr, err := verifyPeerRecord(b, id); err != nil || len(pr.Addrs) == 0 || len(pr.Addrs) == 16 {
		t.Fatalf("verify: %v (%d addresses)", err, len(pr.Addrs))
	}
}

// waitOnline waits until n shows p online in any room.
func waitOnline(t *testing.T, n *tnode, p peer.ID) {
	t.Helper()
	n.events.wait(t, "presence of "+p.String(), func(e events.Event) bool {
		ev, ok := e.(events.Presence)
		return ok && ev.PeerID == p && ev.Online
	})
}

// TestPresenceTeachesAddresses: A and C are connected only to B, all in
// one room. From C's presence A learns C's addresses as a signed record
// and dials C directly with nothing else.
func TestPresenceTeachesAddresses(t *testing.T) {
	a, b, c := newNode(t, "alice", nil), newNode(t, "bob", nil), newNode(t, "carol", nil)
	connect(t, a, b)
	connect(t, b, c)
	for _, n := range []*tnode{a, b, c} {
		if err := n.svc.Join(context.Background(), "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	if a.h.Network().Connectedness(c.id()) == network.Connected {
		t.Fatal("A is connected to C before the test")
	}
	waitOnline(t, a, c.id())
	cab, ok := peerstore.GetCertifiedAddrBook(a.h.Peerstore())
	if !ok {
		t.Fatal("peerstore has no certified address book")
	}
	env := cab.GetPeerRecord(c.id())
	if env == nil {
		t.Fatal("A holds no signed record of C")
	}
	rec, err := env.Record()
	if err != nil {
		t.Fatal(err)
	}
	if pr := rec.(*peer.PeerRecord); !slices.EqualFunc(pr.Addrs, c.h.Addrs(), ma.Multiaddr.Equal) {
		t.Fatalf("record of C lists %v, C listens on %v", pr.Addrs, c.h.Addrs())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.h.Connect(ctx, peer.AddrInfo{ID: c.id()}); err != nil {
		t.Fatalf("A dials C from the peerstore: %v", err)
	}
}

// TestRecordCannotRedirect: Mallory, a room member, signs a record that
// lists Carol's address as its own. Alice stores it for Mallory only;
// dialing Mallory there fails (Noise finds Carol's peer ID), and Carol's
// own addresses are untouched.
func TestRecordCannotRedirect(t *testing.T) {
	a, c := newNode(t, "alice", nil), newNode(t, "carol", nil)
	carolAddrs := c.h.Addrs()
	m := newNode(t, "mallory", func(cfg *Config) {
		cfg.testHookOwnAddrs = func() []ma.Multiaddr { return carolAddrs }
	})
	connect(t, a, m)
	for _, n := range []*tnode{a, m} {
		if err := n.svc.Join(context.Background(), "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	waitOnline(t, a, m.id())
	got := a.h.Peerstore().Addrs(m.id())
	if !slices.ContainsFunc(got, carolAddrs[0].Equal) {
		t.Fatalf("A did not store Mallory's claim: %v", got)
	}
	if len(a.h.Peerstore().Addrs(c.id())) != 0 {
		t.Fatal("A holds addresses of Carol it was never given")
	}
	// Drop the real connection and every address but the claimed ones, so
	// that the dial must use them.
	claim := mustRecord(t, a, m.id())
	if err := a.h.Network().ClosePeer(m.id()); err != nil {
		t.Fatal(err)
	}
	a.h.Peerstore().ClearAddrs(m.id())
	if _, err := a.h.Peerstore().(peerstore.CertifiedAddrBook).ConsumePeerRecord(claim, time.Minute); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := a.h.Connect(ctx, peer.AddrInfo{ID: m.id()})
	if err == nil {
		t.Fatal("dial of Mallory at Carol's address succeeded")
	}
	if a.h.Network().Connectedness(m.id()) == network.Connected {
		t.Fatal("connected to Mallory")
	}
	if a.h.Network().Connectedness(c.id()) == network.Connected {
		t.Fatal("a connection to Carol is attributed somewhere")
	}
}

// mustRecord returns n's stored signed record of p.
func mustRecord(t *testing.T, n *tnode, p peer.ID) *record.Envelope {
	t.Helper()
	env := n.h.Peerstore().(peerstore.CertifiedAddrBook).GetPeerRecord(p)
	if env == nil {
		t.Fatalf("no record of %s", p)
	}
	return env
}

// FuzzPeerRecord runs the record check on arbitrary bytes: whatever it
// accepts is a record of the author, within the limits.
func FuzzPeerRecord(f *testing.F) {
	key, err := crypto.UnmarshalEd25519PrivateKey(make([]byte, 64))
	if err != nil {
		f.Fatal(err)
	}
	author, err := peer.IDFromPrivateKey(key)
	if err != nil {
		f.Fatal(err)
	}
	_, other := keyID(f)
	f.Add(sealRecord(f, key, author, addrs(f, "/ip4/127.0.0.1/tcp/4001", "/dns4/x.example/udp/1/quic-v1")))
	f.Add(sealRecord(f, key, other, nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, pr, err := verifyPeerRecord(b, author)
		if err != nil {
			return
		}
		if len(b) > MaxPeerRecordSize || len(pr.Addrs) > MaxPeerRecordAddrs || pr.PeerID != author {
			t.Fatalf("accepted %d bytes, %d addresses, peer %s", len(b), len(pr.Addrs), pr.PeerID)
		}
		w := &pb.Envelope{Kind: pb.Kind_KIND_PRESENCE, Id: make([]byte, idSize), Nick: "a", SentAtMs: 1, Presence: &pb.Presence{PeerRecord: b}}
		data, err := proto.Marshal(w)
		if err != nil {
			t.Fatal(err)
		}
		if e, v := decodeEnvelope(data); v.result != pubsub.ValidationAccept || string(e.record) != string(b) {
			t.Fatalf("envelope with an accepted record: %s", v.reason)
		}
	})
}
