package mailbox

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/pbframe"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/mailbox/pb"
)

// FuzzOpenRecord feeds arbitrary bytes to the record decoder: no panic,
// and a record it accepts opens again to the same peer and KEM key.
func FuzzOpenRecord(f *testing.F) {
	o := newOwner(f)
	f.Add(o.rec.Envelope)
	f.Add(o.rec.Envelope[:len(o.rec.Envelope)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := OpenRecord(b)
		if err != nil {
			return
		}
		again, err := OpenRecord(r.Envelope)
		if err != nil || again.Peer != r.Peer || !bytes.Equal(again.KEM.Bytes(), r.KEM.Bytes()) || len(r.Holders) > MaxHolders {
			t.Fatalf("accepted record does not reopen: %v", err)
		}
	})
}

// FuzzOpenSeal feeds arbitrary bytes to the seal opener: no panic, and
// nothing but the one authentic seal opens.
func FuzzOpenSeal(f *testing.F) {
	alice, carol := newOwner(f), newOwner(f)
	key, err := DeriveKEMKey(carol.key)
	if err != nil {
		f.Fatal(err)
	}
	note := &pb.Note{Id: bytes.Repeat([]byte{1}, 16), Text: "hi", SentAtMs: 1}
	sealed, err := Seal(alice.key, alice.rec.Envelope, carol.rec, note)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add(sealed[:1200])
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := Open(b, key, carol.id)
		if err != nil {
			return
		}
		if !bytes.Equal(b, sealed) || l.From != alice.id {
			t.Fatalf("opened a seal that was not made by alice: from %s", l.From)
		}
	})
}

// FuzzHolderRequests decodes Request frames as a holder reads them and
// applies every deposit to a holder: no panic, errors of the frame
// classes only, and the holder's accounting never exceeds its quotas.
func FuzzHolderRequests(f *testing.F) {
	box := bytes.Repeat([]byte{1}, 16)
	valid, _ := pbframe.Append(nil, &pb.Request{Kind: &pb.Request_Deposit{Deposit: &pb.Deposit{Mailbox: box, Sealed: []byte("x")}}})
	f.Add(valid)
	f.Add(append(valid, valid...))
	pickup, _ := pbframe.Append(nil, &pb.Request{Kind: &pb.Request_Pickup{Pickup: &pb.Pickup{Record: []byte{1, 2}, Max: 9}}})
	f.Add(pickup)
	f.Add([]byte{0x80})
	db := testnet.TempDB(f)
	db.NoSync = true
	hs := &Holder{db: db, byMailbox: map[string]*usage{}, byDepositor: map[string]*usage{}, bySubnet: map[string]*usage{}, salt: make([]byte, 32)}
	hs.cfg = HolderConfig{Host: testnet.NewHost(f), DB: db, Mailbox: Quota{Count: 3}, Depositor: Quota{Count: 5}, Total: Quota{Count: 8}}
	if err := hs.cfg.setDefaults(); err != nil {
		f.Fatal(err)
	}
	hs.log = hs.cfg.Logger
	if err := hs.open(); err != nil {
		f.Fatal(err)
	}
	from := hs.cfg.Host.ID()
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(bytes.NewReader(data))
		for range 8 {
			var req pb.Request
			err := pbframe.Read(br, MaxRequestSize, &req)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrFrameTooLarge) {
					t.Fatalf("unexpected error class: %v", err)
				}
				return
			}
			if d := req.GetDeposit(); d != nil {
				hs.deposit(from, "", d, time.Now())
			}
			hs.mu.Lock()
			total := hs.total.count
			hs.mu.Unlock()
			if total > hs.cfg.Total.Count {
				t.Fatalf("holder keeps %d deposits, quota %d", total, hs.cfg.Total.Count)
			}
		}
	})
}

// FuzzResponses decodes Response frames as a client reads them.
func FuzzResponses(f *testing.F) {
	item, _ := pbframe.Append(nil, &pb.Response{Kind: &pb.Response_Item{Item: &pb.Item{Id: 3, Sealed: []byte("s")}}})
	end, _ := pbframe.Append(nil, &pb.Response{Kind: &pb.Response_End{End: &pb.End{More: true}}})
	f.Add(append(item, end...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(bytes.NewReader(data))
		for range 8 {
			var r pb.Response
			if err := pbframe.Read(br, MaxResponseSize, &r); err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrFrameTooLarge) {
					t.Fatalf("unexpected error class: %v", err)
				}
				return
			}
			if f := r.GetFound(); f != nil && len(f.Record) > 0 {
				_, _ = OpenRecord(f.Record)
			}
		}
	})
}

// FuzzSentKey feeds arbitrary keys of the buckets mailbox/sent and
// mailbox/receipts to their decoder (read back from disk after a
// restart): no panic, and a key it accepts is made again by sentKey.
func FuzzSentKey(f *testing.F) {
	o := newOwner(f)
	f.Add(sentKey(o.id, bytes.Repeat([]byte{7}, 16)))
	f.Add([]byte{})
	f.Add([]byte{200, 1, 2})
	f.Fuzz(func(t *testing.T, k []byte) {
		p, id, ok := splitSentKey(k)
		if !ok {
			return
		}
		if !bytes.Equal(sentKey(p, id), k) {
			t.Fatalf("key %x decodes to %s, %x, which encode to %x", k, p, id, sentKey(p, id))
		}
	})
}
