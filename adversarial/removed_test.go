package adversarial

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/chacha20poly1305"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/rooms"
	roomspb "github.com/parley-chat/parley/rooms/pb"
	"github.com/parley-chat/parley/store"
)

// fromTracer counts, per author, the messages a node's GossipSub did not
// deliver (rejected or ignored by the validator).
type fromTracer struct {
	*tracer
	mu      sync.Mutex
	refused map[peer.ID]int
}

func newFromTracer() *fromTracer {
	return &fromTracer{tracer: newTracer(), refused: map[peer.ID]int{}}
}

func (ft *fromTracer) RejectMessage(m *pubsub.Message, reason string) {
	ft.mu.Lock()
	ft.refused[m.GetFrom()]++
	ft.mu.Unlock()
	ft.tracer.RejectMessage(m, reason)
}

func (ft *fromTracer) refusedFrom(p peer.ID) int {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return ft.refused[p]
}

func (ft *fromTracer) option(c *node.Config) {
	c.RoomsConfig.PubSubOptions = append(c.RoomsConfig.PubSubOptions, pubsub.WithRawTracer(ft))
}

// Key derivations of docs/PROTOCOL.md §5 and §14, written from the spec.
const (
	specSalt          = "parley/room/1"
	specSealInfo      = "parley/room/1 seal"
	specEpochSealInfo = "parley/room/1 epoch seal"
)

// heldKey is one key a removed member kept: the seal key of epoch e.
type heldKey struct {
	epoch uint64
	seal  []byte
}

// keptKeys reads, from a stopped node's database, the keys its owner kept:
// the room key's seal key (epoch 0, from the invite) and every epoch key
// in its store.
func keptKeys(t *testing.T, dir, topic string, roomKey []byte) []heldKey {
	t.Helper()
	s0, err := hkdf.Key(sha256.New, roomKey, []byte(specSalt), specSealInfo, 32)
	if err != nil {
		t.Fatal(err)
	}
	keys := []heldKey{{0, s0}}
	db, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, &bolt.Options{ReadOnly: true, Timeout: waitTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("rooms/epochs"))
		if b != nil {
			b = b.Bucket([]byte(topic))
		}
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var sk roomspb.StoredEpochKey
			if err := proto.Unmarshal(v, &sk); err != nil {
				return err
			}
			s, err := hkdf.Key(sha256.New, sk.Key, []byte(specSalt), specEpochSealInfo, 32)
			if err != nil {
				return err
			}
			keys = append(keys, heldKey{binary.BigEndian.Uint64(k), s})
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// specAD is the associated data of §5, with uvarint(e) for epochs >= 1.
func specAD(topic string, from peer.ID, e uint64) []byte {
	ad := binary.AppendUvarint(nil, uint64(len(topic)))
	ad = append(ad, topic...)
	ad = binary.AppendUvarint(ad, uint64(len(from)))
	ad = append(ad, from...)
	if e > 0 {
		ad = binary.AppendUvarint(ad, e)
	}
	return ad
}

// sealWith seals a text envelope as from, under k, naming epoch e.
func sealWith(t *testing.T, k heldKey, e uint64, topic string, from peer.ID, text string) []byte {
	t.Helper()
	aead, err := chacha20poly1305.NewX(k.seal)
	if err != nil {
		t.Fatal(err)
	}
	nonce := random(t, aead.NonceSize())
	ct := aead.Seal(nil, nonce, envelopeBytes(t, "carol", text), specAD(topic, from, e))
	b, err := proto.Marshal(&roomspb.Sealed{Nonce: nonce, Ciphertext: ct, Epoch: e})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRemovedMemberWithEveryOldKey: Alice (admin), Bob and Carol share a
// private room; Alice rotates (all hold epoch 1), then removes Carol.
// Carol's data directory is then read for every key it kept (the room key
// and the epoch keys in its store), and Carol comes back as a raw GossipSub
// host with its own identity, subscribed to the room's topic. It opens
// none of what Alice and Bob say afterwards, and what it publishes under
// each key it holds (and under a guessed key of the new epoch) is refused
// by both; they keep talking.
func TestRemovedMemberWithEveryOldKey(t *testing.T) {
	trA, trB := newFromTracer(), newFromTracer()
	alice, bob := newParty(t, "alice", trA.option), newParty(t, "bob", trB.option)
	carol := newParty(t, "carol", nil)
	link(t, alice, bob)
	link(t, alice, carol)
	link(t, bob, carol)

	alice.exec("/create team")
	code := alice.ev.wait(t, "invite", func(e events.Event) bool {
		i, ok := e.(events.Info)
		return ok && strings.Contains(i.Text, rooms.InvitePrefix)
	}).(events.Info).Data.(node.RoomRef).Invite
	_, roomKey, err := rooms.DecodeInvite(code)
	if err != nil {
		t.Fatal(err)
	}
	bob.exec("/join " + code)
	carol.exec("/join " + code)
	change := func(p *party, op string, subject peer.ID) {
		t.Helper()
		p.ev.wait(t, p.name+" sees "+op, func(e events.Event) bool {
			m, ok := e.(events.Membership)
			return ok && m.Op == op && m.Subject == subject
		})
	}
	change(alice, "add", bob.peerID())
	change(alice, "add", carol.peerID())
	alice.exec("/rotate")
	alice.exec("epoch one")
	carol.waitMessage("epoch one") // Carol held the key of epoch 1
	bob.waitMessage("epoch one")

	alice.exec("/kick " + carol.peerID().String())
	change(bob, "remove", carol.peerID())
	change(carol, "remove", carol.peerID())

	// Carol stops; everything it was given is in its data directory.
	if err := carol.n.Close(); err != nil {
		t.Fatal(err)
	}
	topic := privateTopic(t, carol.dir)
	held := keptKeys(t, carol.dir, topic, roomKey)
	var epochs []uint64
	for _, k := range held {
		epochs = append(epochs, k.epoch)
	}
	if len(held) < 2 {
		t.Fatalf("carol kept keys of epochs %v, want 0 and 1", epochs)
	}

	// Carol again, as a raw host with its own identity, on the topic.
	mallory := testnet.NewHost(t, libp2p.Identity(carol.id.PrivKey))
	testnetConnect(t, mallory, alice)
	testnetConnect(t, mallory, bob)
	ps := rawPubSub(t, mallory)
	tp := joinTopic(t, ps, topic, alice.peerID(), bob.peerID())
	sub, err := tp.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Cancel)

	// Reading: Alice and Bob talk until Carol has received a message of
	// epoch 2 from each (they may not know of its subscription yet when
	// they first speak); Carol opens none of them.
	const said = "after removal from "
	seen := map[peer.ID]int{}
	read := func(wait time.Duration) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		for n := 0; n < 100; n++ {
			m, err := sub.Next(ctx)
			if err != nil {
				return // nothing more for now
			}
			var w roomspb.Sealed
			if err := proto.Unmarshal(m.Data, &w); err != nil {
				t.Fatalf("undecodable room message: %v", err)
			}
			for _, k := range held {
				aead, err := chacha20poly1305.NewX(k.seal)
				if err != nil {
					t.Fatal(err)
				}
				pt, err := aead.Open(nil, w.Nonce, w.Ciphertext, specAD(topic, m.GetFrom(), w.Epoch))
				if err != nil {
					continue
				}
				if w.Epoch >= 2 {
					t.Fatalf("carol opened a message of epoch %d with its key of epoch %d", w.Epoch, k.epoch)
				}
				var env roomspb.Envelope
				if proto.Unmarshal(pt, &env) == nil && strings.HasPrefix(env.Text, said) {
					t.Fatalf("carol read %q", env.Text)
				}
			}
			if w.Epoch >= 2 {
				seen[m.GetFrom()]++
			}
		}
	}
	for round := 0; round < 40 && (seen[alice.peerID()] == 0 || seen[bob.peerID()] == 0); round++ {
		for _, p := range []*party{alice, bob} {
			if seen[p.peerID()] == 0 {
				p.exec(fmt.Sprintf("%s%s %d", said, p.name, round))
			}
		}
		read(500 * time.Millisecond)
	}
	if seen[alice.peerID()] == 0 || seen[bob.peerID()] == 0 {
		t.Fatalf("carol received %v messages of epoch 2, want some from alice and bob", seen)
	}
	bob.waitMessage(said + "alice 0")
	alice.waitMessage(said + "bob 0")

	// Writing: a text sealed under each key Carol holds, naming its epoch,
	// and one under a guessed key of the current epoch.
	guess := heldKey{2, make([]byte, 32)}
	if _, err := rand.Read(guess.seal); err != nil {
		t.Fatal(err)
	}
	forged := append(slices.Clone(held), guess)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for _, k := range forged {
		if err := tp.Publish(ctx, sealWith(t, k, k.epoch, topic, mallory.ID(), "forged by carol")); err != nil {
			t.Fatal(err)
		}
	}
	for _, tr := range []*fromTracer{trA, trB} {
		tr.waitFor(t, "the forged messages refused", func() bool { return tr.refusedFrom(mallory.ID()) >= len(forged) })
	}
	stillServes(t, alice, bob, "after the removed member's attempts")
	for _, p := range []*party{alice, bob} {
		if n := p.messages("forged by carol"); n != 0 {
			t.Fatalf("%s showed %d forged messages", p.name, n)
		}
	}
	t.Logf("carol kept keys of epochs %v; saw %v messages of epoch 2, opened none; %d forgeries refused by each", epochs, seen, len(forged))
}

// privateTopic is the one private room topic in a stopped node's store
// (the nested bucket of its membership log).
func privateTopic(t *testing.T, dir string) string {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, &bolt.Options{ReadOnly: true, Timeout: waitTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	var topic string
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("rooms/members"))
		if b == nil {
			return nil
		}
		return b.ForEachBucket(func(k []byte) error {
			if strings.HasPrefix(string(k), rooms.PrivateTopicPrefix) {
				topic = string(k)
			}
			return nil
		})
	})
	if err != nil || topic == "" {
		t.Fatalf("no private room topic in %s: %v", dir, err)
	}
	return topic
}
