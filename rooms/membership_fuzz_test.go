package rooms

import (
	"testing"

	"github.com/parley-chat/parley/rooms/pb"
	"google.golang.org/protobuf/proto"
)

// FuzzMembersFrame feeds a frame of the members exchange to everything
// that decodes it: the frame, each signed change and its merge into a log
// (admin, member, an epoch), the signed KEM key, and each sealed epoch
// key (opened with a fixed HPKE key, checked against a commitment).
func FuzzMembersFrame(f *testing.F) {
	admin, member := newSigner(f), newSigner(f)
	st := newLogState(testTopic)
	mustApply(f, st, admin.next(f, st, pb.MemberOp_MEMBER_OP_CREATE, admin.id))
	mustApply(f, st, admin.next(f, st, pb.MemberOp_MEMBER_OP_ADD, member.id))
	next := admin.next(f, st, pb.MemberOp_MEMBER_OP_ROTATE, "")
	kem, err := newKEMKey(member.key, member.id, testTopic, next.at)
	if err != nil {
		f.Fatal(err)
	}
	pub, err := verifyMemberKey(kem.signed, testTopic, member.id)
	if err != nil {
		f.Fatal(err)
	}
	epochKey := make([]byte, epochKeySize)
	commit, _ := epochCommit(epochKey)
	sk, err := sealEpochKey(pub, testTopic, member.id, 1, epochKey)
	if err != nil {
		f.Fatal(err)
	}
	head, hash := st.head()
	for _, fr := range []*pb.MembersFrame{
		{Topic: testTopic, Nonce: make([]byte, membersNonceSize), Head: head, HeadHash: hash, Kem: kem.signed},
		{Changes: []*pb.SignedMemberChange{next.signed}, Keys: []*pb.SealedEpochKey{sk}},
		{Changes: st.since(0, nil)},
	} {
		b, _ := proto.Marshal(fr)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x42, 0x02, 0x0a, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > MaxMembersFrame {
			return
		}
		var fr pb.MembersFrame
		if proto.Unmarshal(data, &fr) != nil {
			return
		}
		var run []change
		for _, sc := range fr.Changes {
			c, err := decodeChange(sc)
			if err != nil {
				run = nil
				break
			}
			run = append(run, c)
		}
		if got, changed, err := st.merge(run); err == nil && changed {
			if n, _ := got.head(); n <= 2 && got.epoch == 0 {
				t.Fatalf("merge changed the log to %d changes", n)
			}
		}
		if p, err := verifyMemberKey(fr.Kem, testTopic, member.id); err == nil && p == nil {
			t.Fatal("verified KEM key without a key")
		}
		for _, w := range fr.Keys {
			if k, err := openEpochKey(kem.priv, testTopic, member.id, w, commit); err == nil && len(k) != epochKeySize {
				t.Fatalf("opened a key of %d bytes", len(k))
			}
		}
	})
}
