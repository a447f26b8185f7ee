package mailbox

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/mailbox/pb"
)

func deposits(mailbox []byte, n int, size int, tag byte) []DepositReq {
	out := make([]DepositReq, n)
	for i := range out {
		b := bytes.Repeat([]byte{tag}, size)
		b[0] = byte(i)
		out[i] = DepositReq{Mailbox: mailbox, Sealed: b, Expires: time.Now().Add(time.Hour)}
	}
	return out
}

func TestHolderDepositPickupDelete(t *testing.T) {
	hs, hh := startHolder(t, nil)
	sender, recipient := testnet.NewHost(t), testnet.NewHost(t)
	testnet.Connect(t, sender, hh)
	testnet.Connect(t, recipient, hh)
	carol := newOwnerWithKey(t, recipient)
	ctx := ctxT(t)

	sts, err := clientOf(sender).Deposit(ctx, hh.ID(), deposits(carol.rec.MailboxID(), 3, 100, 1))
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range sts {
		if st != pb.Status_STATUS_STORED {
			t.Fatalf("deposit %d: %v", i, st)
		}
	}
	// Someone else cannot pick carol's mailbox up with carol's record.
	if _, err := clientOf(sender).Pickup(ctx, hh.ID(), carol.rec.Envelope, 0); err == nil {
		t.Fatal("pickup with another peer's record succeeded")
	}
	pk, err := clientOf(recipient).Pickup(ctx, hh.ID(), carol.rec.Envelope, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(pk.Items) != 2 || !pk.More || pk.Items[0].Sealed[0] != 0 || pk.Items[1].Sealed[0] != 1 {
		t.Fatalf("first pickup: %d items, more %v", len(pk.Items), pk.More)
	}
	n, err := pk.Delete([]uint64{pk.Items[0].ID, pk.Items[1].ID, 999})
	pk.Close()
	if err != nil || n != 2 {
		t.Fatalf("delete: %d, %v", n, err)
	}
	pk, err = clientOf(recipient).Pickup(ctx, hh.ID(), carol.rec.Envelope, 0)
	if err != nil {
		t.Fatal(err)
	}
	pk.Close()
	if len(pk.Items) != 1 || pk.More || pk.Items[0].Sealed[0] != 2 {
		t.Fatalf("second pickup: %d items", len(pk.Items))
	}
	if c, _ := hs.Held(); c != 1 {
		t.Fatalf("holder keeps %d deposits, want 1", c)
	}
	// The holder learnt carol's record at pickup and hands it out.
	got, err := clientOf(sender).Lookup(ctx, hh.ID(), carol.id)
	if err != nil || got == nil || got.Peer != carol.id {
		t.Fatalf("lookup: %v, %v", got, err)
	}
	none, err := clientOf(sender).Lookup(ctx, hh.ID(), sender.ID())
	if err != nil || none != nil {
		t.Fatalf("lookup of an unknown owner: %v, %v", none, err)
	}
}

// newOwnerWithKey is an owner whose key is h's identity key.
func newOwnerWithKey(t testing.TB, h interface{ ID() peer.ID }) *owner {
	t.Helper()
	key := hostKey(t, h)
	kem, err := DeriveKEMKey(key)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := SignRecord(key, kem.PublicKey(), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &owner{key: key, id: rec.Peer, rec: rec}
}

func TestHolderQuotas(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*HolderConfig)
		// two senders deposit n each into mailbox A; then a third deposits into B.
		n                     int
		wantA1, wantA2, wantB int // stored
	}{
		{"per mailbox", func(c *HolderConfig) { c.Mailbox = Quota{Count: 5} }, 4, 4, 1, 4},
		{"per depositor", func(c *HolderConfig) { c.Depositor = Quota{Count: 3} }, 4, 3, 3, 3},
		{"mailbox bytes", func(c *HolderConfig) { c.Mailbox = Quota{Count: 100, Bytes: 1000} }, 4, 4, 1, 4},
		{"total", func(c *HolderConfig) { c.Total = Quota{Count: 6} }, 4, 4, 2, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hs, hh := startHolder(t, tc.mod)
			s1, s2, s3 := testnet.NewHost(t), testnet.NewHost(t), testnet.NewHost(t)
			testnet.Connect(t, s1, hh)
			testnet.Connect(t, s2, hh)
			testnet.Connect(t, s3, hh)
			ctx := ctxT(t)
			boxA, boxB := bytes.Repeat([]byte{0xa}, 16), bytes.Repeat([]byte{0xb}, 16)
			count := func(c *Client, box []byte, tag byte) int {
				sts, err := c.Deposit(ctx, hh.ID(), deposits(box, tc.n, 200, tag))
				if err != nil {
					t.Fatal(err)
				}
				k := 0
				for _, st := range sts {
					switch st {
					case pb.Status_STATUS_STORED:
						k++
					case pb.Status_STATUS_FULL:
					default:
						t.Fatalf("status %v", st)
					}
				}
				return k
			}
			a1 := count(clientOf(s1), boxA, 1)
			a2 := count(clientOf(s2), boxA, 2)
			b := count(clientOf(s3), boxB, 3)
			if a1 != tc.wantA1 || a2 != tc.wantA2 || b != tc.wantB {
				t.Fatalf("stored %d, %d, %d; want %d, %d, %d", a1, a2, b, tc.wantA1, tc.wantA2, tc.wantB)
			}
			if c := hs.Counters(); c.Full == 0 {
				t.Fatal("no deposit counted as refused for quota")
			}
		})
	}
}

func TestHolderRefusesBadDeposits(t *testing.T) {
	_, hh := startHolder(t, func(c *HolderConfig) { c.MaxDepositSize = 1000 })
	s := testnet.NewHost(t)
	testnet.Connect(t, s, hh)
	ctx := ctxT(t)
	box := bytes.Repeat([]byte{1}, 16)
	reqs := []DepositReq{
		{Mailbox: box[:15], Sealed: []byte{1}, Expires: time.Now().Add(time.Hour)},
		{Mailbox: box, Sealed: nil, Expires: time.Now().Add(time.Hour)},
		{Mailbox: box, Sealed: make([]byte, 1001), Expires: time.Now().Add(time.Hour)},
		{Mailbox: box, Sealed: []byte{1}, Expires: time.Now().Add(-time.Minute)},
		{Mailbox: box, Sealed: []byte{1}, Expires: time.Now().Add(time.Hour)},
	}
	sts, err := clientOf(s).Deposit(ctx, hh.ID(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	want := []pb.Status{pb.Status_STATUS_REJECTED, pb.Status_STATUS_REJECTED, pb.Status_STATUS_REJECTED, pb.Status_STATUS_REJECTED, pb.Status_STATUS_STORED}
	for i := range want {
		if sts[i] != want[i] {
			t.Errorf("deposit %d: %v, want %v", i, sts[i], want[i])
		}
	}
}

func TestHolderExpiresAndSurvivesRestart(t *testing.T) {
	h := testnet.NewHost(t)
	db := testnet.TempDB(t)
	hs, err := NewHolder(context.Background(), HolderConfig{Host: h, DB: db})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	box := bytes.Repeat([]byte{1}, 16)
	p := testnet.NewHost(t).ID()
	for i, exp := range []time.Time{now.Add(time.Hour), now.Add(3 * time.Hour), now.Add(30 * 24 * time.Hour)} {
		if st := hs.deposit(p, "", &pb.Deposit{Mailbox: box, Sealed: []byte{byte(i)}, ExpiresMs: exp.UnixMilli()}, now); st != pb.Status_STATUS_STORED {
			t.Fatal(st)
		}
	}
	// The third is kept at most MaxAge (14 days).
	if err := hs.prune(now.Add(2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if c, _ := hs.Held(); c != 2 {
		t.Fatalf("after 2 h: %d held, want 2", c)
	}
	if err := hs.prune(now.Add(15 * 24 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if c, _ := hs.Held(); c != 0 {
		t.Fatalf("after 15 days: %d held, want 0", c)
	}
	if st := hs.deposit(p, "", &pb.Deposit{Mailbox: box, Sealed: []byte{9}}, now); st != pb.Status_STATUS_STORED {
		t.Fatal(st)
	}
	if err := hs.Close(); err != nil {
		t.Fatal(err)
	}
	hs2, err := NewHolder(context.Background(), HolderConfig{Host: h, DB: db, Depositor: Quota{Count: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer hs2.Close()
	if c, b := hs2.Held(); c != 1 || b != 1 {
		t.Fatalf("after restart: %d held (%d bytes), want 1", c, b)
	}
	// The restarted holder remembers the depositor's usage.
	if st := hs2.deposit(p, "", &pb.Deposit{Mailbox: box, Sealed: []byte{9}}, now); st != pb.Status_STATUS_FULL {
		t.Fatalf("over the depositor quota after restart: %v", st)
	}
}
