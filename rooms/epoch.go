package rooms

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/rooms/pb"
	"golang.org/x/crypto/chacha20poly1305"
	"google.golang.org/protobuf/proto"
)

// Epochs of a private room (docs/PROTOCOL.md §14). Epoch 0 is the room as
// it was before membership: its seal key is derived from the room key
// (§5). Each REMOVE or ROTATE starts epoch n+1 with a fresh random 32-byte
// key that the admin commits to in the change and hands, sealed with HPKE
// to each remaining member, over the members exchange (members.go).
// Messages name their epoch (Sealed.epoch); old epoch keys are deleted
// EpochKeyGrace after the next epoch started here.

// HKDF infos of the epoch derivations (salt hkdfSalt, IKM the epoch key).
const (
	epochSealInfo   = "parley/room/1 epoch seal"
	epochCommitInfo = "parley/room/1 epoch commit"
	// membersMACInfo derives, from the room key, the key of the members
	// exchange's proofs.
	membersMACInfo = "parley/room/1 members"
	// epochKeyInfo prefixes the HPKE info of a sealed epoch key.
	epochKeyInfo = "parley/rooms/members/1 epoch key\x00"
)

// epochKeySize is the size of an epoch key.
const epochKeySize = 32

// kemSuite is the HPKE suite epoch keys are sealed with: DHKEM(X25519,
// HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305 (RFC 9180 IDs 0x0020,
// 0x0001, 0x0003).
var (
	kemSuite  = hpke.DHKEM(ecdh.X25519())
	kemKDF    = hpke.HKDFSHA256()
	kemAEAD   = hpke.ChaCha20Poly1305()
	kemPubLen = 32
)

// epochKey is one epoch's key as this node holds it.
type epochKey struct {
	key   []byte
	seal  [chacha20poly1305.KeySize]byte
	ended time.Time // when the next epoch started here; zero while current
}

func newEpochKey(key []byte) (*epochKey, error) {
	if len(key) != epochKeySize {
		return nil, fmt.Errorf("epoch key of %d bytes", len(key))
	}
	s, err := hkdf.Key(sha256.New, key, []byte(hkdfSalt), epochSealInfo, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("derive epoch seal key: %w", err)
	}
	k := &epochKey{key: append([]byte(nil), key...)}
	copy(k.seal[:], s)
	return k, nil
}

// epochCommit is the commitment to an epoch key that the change starting
// the epoch carries: it lets a member check a key any other member hands
// it, without revealing the key.
func epochCommit(key []byte) ([]byte, error) {
	c, err := hkdf.Key(sha256.New, key, []byte(hkdfSalt), epochCommitInfo, commitSize)
	if err != nil {
		return nil, fmt.Errorf("commit to epoch key: %w", err)
	}
	return c, nil
}

// epochAD is the associated data of a message sealed in epoch e: the
// epoch-0 AD (§5) followed by uvarint(e).
func epochAD(topic string, from peer.ID, e uint64) []byte {
	return binary.AppendUvarint(sealAD(topic, from), e)
}

// roomMembers is the membership state of one private room.
type roomMembers struct {
	topic  string
	macKey []byte // proofs of the room key in the members exchange

	// saveMu serializes the writers (exchanges, admin changes, pruning)
	// from reading the state to storing and installing the next one, so
	// that mu is never held across a store write (validators take it).
	saveMu sync.Mutex

	mu   sync.Mutex
	log  *logState            // guarded by mu; never nil; replaced, never mutated, once installed
	keys map[uint64]*epochKey // guarded by mu; epochs >= 1 whose key this node holds; replaced, never mutated
	// ticket is the limited invite's ticket this node shows admins until
	// it is in the log (invites.go); guarded by mu; memory only.
	ticket *pb.InviteTicket
	// hold keeps the messages this node could not judge yet for want of
	// a key or a log change (epochhold.go).
	hold epochHold
}

func newRoomMembers(topic string, roomKey []byte) (*roomMembers, error) {
	mk, err := hkdf.Key(sha256.New, roomKey, []byte(hkdfSalt), membersMACInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("derive members key: %w", err)
	}
	return &roomMembers{topic: topic, macKey: mk, log: newLogState(topic), keys: make(map[uint64]*epochKey)}, nil
}

// current returns the log's epoch and this node's key of it (nil when it
// has none yet, or for epoch 0).
func (m *roomMembers) current() (uint64, *epochKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.log.epoch, m.keys[m.log.epoch]
}

// haveEpoch is the highest epoch whose key this node holds (0 if none).
func (m *roomMembers) haveEpoch() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var h uint64
	for e := range m.keys {
		h = max(h, e)
	}
	return h
}

// sealFor seals an envelope's bytes for r as this node: in the current
// epoch when it holds its key. A chat line (text, file share) is refused
// when this node is not a member of the current epoch or lacks its key, so
// that nothing new goes out under a key a removed member holds. Presence
// goes under the newest key held (epoch 0 for a node not yet added), so
// that a newcomer shows up for admins to add.
func (s *Service) sealFor(r *room, env *envelope, plain []byte) ([]byte, error) {
	m := r.membership
	if m == nil { // a room built without membership state: epoch 0
		m = &roomMembers{log: newLogState(r.topicName)}
	}
	m.mu.Lock()
	st, cur := m.log, m.log.epoch
	k := m.keys[cur]
	chat := env.kind != pb.Kind_KIND_PRESENCE
	var e uint64
	switch {
	case cur == 0:
	case k != nil && st.isMember(s.self):
		e = cur
	case chat && !st.isMember(s.self):
		m.mu.Unlock()
		return nil, fmt.Errorf("%w %s (epoch %d): ask an admin to add you", ErrNotMember, r.name, cur)
	case chat:
		m.mu.Unlock()
		return nil, fmt.Errorf("%w in %s (epoch %d)", ErrNoEpochKey, r.name, cur)
	default:
		for h := range m.keys {
			if h > e && st.isMember(s.self) {
				e = h
			}
		}
		k = m.keys[e]
	}
	m.mu.Unlock()
	if e == 0 {
		nonce, ct, err := seal(&r.keys, s.self, plain)
		if err != nil {
			return nil, err
		}
		return marshalSealed(&pb.Sealed{Nonce: nonce, Ciphertext: ct})
	}
	return sealEpoch(k, r.topicName, s.self, e, plain)
}

// sealEpoch seals plain in epoch e with its key k, as published by from
// on topic, under a fresh random 24-byte nonce, and encodes the Sealed.
func sealEpoch(k *epochKey, topic string, from peer.ID, e uint64, plain []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(k.seal[:])
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal nonce: %w", err)
	}
	ct := aead.Seal(nil, nonce, plain, epochAD(topic, from, e))
	return marshalSealed(&pb.Sealed{Nonce: nonce, Ciphertext: ct, Epoch: e})
}

func marshalSealed(w *pb.Sealed) ([]byte, error) {
	b, err := proto.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode sealed: %w", err)
	}
	return b, nil
}

// openSealed opens a private room's Sealed with the key of the epoch it
// names. A key this node does not hold (a later epoch not received yet,
// or an old one past its grace period) is ignored: it depends on this
// node's state.
func (s *Service) openSealed(r *room, author peer.ID, w *pb.Sealed) ([]byte, verdict) {
	if w.Epoch == 0 {
		plain, err := open(&r.keys, author, w.Nonce, w.Ciphertext)
		if err != nil {
			return nil, reject(reasonSealed)
		}
		return plain, accept()
	}
	m := r.membership
	if m == nil {
		return nil, ignore(reasonEpochKey)
	}
	m.mu.Lock()
	k := m.keys[w.Epoch]
	m.mu.Unlock()
	if k == nil {
		return nil, ignore(reasonEpochKey)
	}
	aead, err := chacha20poly1305.NewX(k.seal[:])
	if err != nil || len(w.Nonce) != aead.NonceSize() || len(w.Ciphertext) < aead.Overhead() {
		return nil, reject(reasonSealed)
	}
	plain, err := aead.Open(nil, w.Nonce, w.Ciphertext, epochAD(r.topicName, author, w.Epoch))
	if err != nil {
		return nil, reject(reasonSealed)
	}
	return plain, accept()
}

// admit applies the membership rules to a message of author opened in
// epoch e. In a room without a log, or still in epoch 0, everyone holding
// the room key may write. Otherwise:
//   - a presence is refused from a removed member only (a newcomer not
//     yet added shows up so that an admin can add it);
//   - a chat line must come from a member of epoch e, and, when e is not
//     the current epoch, from a member of the current one, or be dated
//     (by its author) more than MaxClockSkew before epoch e ended: history
//     from before a removal stays valid, while a removed member cannot
//     write in an old epoch after its removal.
//
// Failures depend on this node's log, so they are ignored, not rejected.
func (s *Service) admit(r *room, author peer.ID, e uint64, env *envelope) verdict {
	m := r.membership
	if m == nil {
		return accept()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.log
	if st.epoch == 0 {
		return accept()
	}
	if env.kind == pb.Kind_KIND_PRESENCE {
		if st.role(author) == RoleRemoved {
			return ignore(reasonNotMember)
		}
		return accept()
	}
	if !st.memberDuring(author, e) {
		return ignore(reasonNotMember)
	}
	if e == st.epoch || st.isMember(author) {
		return accept()
	}
	if end, ok := st.started[e+1]; ok && env.sentAt.Before(end.Add(-s.cfg.MaxClockSkew)) {
		return accept()
	}
	return ignore(reasonNotMember)
}

// kemKey is this node's HPKE key pair for one members exchange. It is made
// for the exchange and forgotten after it, so that a key sealed to it
// cannot be opened later from a seized device.
type kemKey struct {
	priv   hpke.PrivateKey
	signed *pb.SignedMemberKey
}

// newKEMKey makes a fresh HPKE key pair for topic and signs its public
// key with the node's identity key.
func newKEMKey(id crypto.PrivKey, self peer.ID, topic string, now time.Time) (*kemKey, error) {
	priv, err := kemSuite.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("generate KEM key: %w", err)
	}
	body, err := proto.Marshal(&pb.MemberKey{Topic: topic, Peer: []byte(self), KemPublic: priv.PublicKey().Bytes(), AtMs: now.UnixMilli()})
	if err != nil {
		return nil, fmt.Errorf("encode KEM key: %w", err)
	}
	sig, err := id.Sign(append([]byte(kemSignDomain), body...))
	if err != nil {
		return nil, fmt.Errorf("sign KEM key: %w", err)
	}
	return &kemKey{priv: priv, signed: &pb.SignedMemberKey{Key: body, Signature: sig}}, nil
}

// verifyMemberKey checks that smk is p's signed HPKE key for topic and
// returns the public key.
func verifyMemberKey(smk *pb.SignedMemberKey, topic string, p peer.ID) (hpke.PublicKey, error) {
	if smk == nil {
		return nil, fmt.Errorf("%w: no KEM key", errBadChange)
	}
	if err := verifyByPeer(p, kemSignDomain, smk.Key, smk.Signature); err != nil {
		return nil, err
	}
	var mk pb.MemberKey
	if err := proto.Unmarshal(smk.Key, &mk); err != nil {
		return nil, fmt.Errorf("%w: decode KEM key: %w", errBadChange, err)
	}
	if mk.Topic != topic || peer.ID(mk.Peer) != p || len(mk.KemPublic) != kemPubLen {
		return nil, fmt.Errorf("%w: KEM key of another room or peer", errBadChange)
	}
	pub, err := kemSuite.NewPublicKey(mk.KemPublic)
	if err != nil {
		return nil, fmt.Errorf("%w: KEM key: %w", errBadChange, err)
	}
	return pub, nil
}

// epochKeyInfoFor is the HPKE info of epoch e's key sealed to recipient.
func epochKeyInfoFor(topic string, recipient peer.ID, e uint64) []byte {
	info := []byte(epochKeyInfo)
	info = binary.AppendUvarint(info, uint64(len(topic)))
	info = append(info, topic...)
	info = binary.AppendUvarint(info, uint64(len(recipient)))
	info = append(info, recipient...)
	return binary.BigEndian.AppendUint64(info, e)
}

// sealEpochKey seals epoch e's key to recipient's HPKE key.
func sealEpochKey(pub hpke.PublicKey, topic string, recipient peer.ID, e uint64, key []byte) (*pb.SealedEpochKey, error) {
	ct, err := hpke.Seal(pub, kemKDF, kemAEAD, epochKeyInfoFor(topic, recipient, e), key)
	if err != nil {
		return nil, fmt.Errorf("seal epoch key: %w", err)
	}
	return &pb.SealedEpochKey{Epoch: e, Sealed: ct}, nil
}

// openEpochKey opens a sealed epoch key meant for self and checks it
// against the commitment of its epoch.
func openEpochKey(priv hpke.PrivateKey, topic string, self peer.ID, w *pb.SealedEpochKey, commit []byte) ([]byte, error) {
	key, err := hpke.Open(priv, kemKDF, kemAEAD, epochKeyInfoFor(topic, self, w.Epoch), w.Sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: open epoch %d key: %w", errBadChange, w.Epoch, err)
	}
	if len(key) != epochKeySize {
		return nil, fmt.Errorf("%w: epoch %d key of %d bytes", errBadChange, w.Epoch, len(key))
	}
	c, err := epochCommit(key)
	if err != nil {
		return nil, err
	}
	if len(commit) != commitSize || subtle.ConstantTimeCompare(c, commit) != 1 {
		return nil, fmt.Errorf("%w: epoch %d key does not match its commitment", errBadChange, w.Epoch)
	}
	return key, nil
}
