package rooms

import (
	"bytes"
	"context"
	"crypto/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/rooms/pb"
)

// The validator runs inline on GossipSub's event loop, so a slow one would
// slow every room. This test guards against blow-ups, not for speed (the
// speed is BenchmarkValidatorWorstInputs): the bound is a ratio against a
// same-run baseline, a small valid message validated right before each
// worst input, so both see the same machine load. The worst inputs are up
// to 1,300 times the baseline's size; linear work measured up to ~85
// times its time on a quiet machine and ~570 times under a load of 15
// with the race detector (large inputs suffer more from a busy machine:
// GC, caches). A quadratic blow-up would cost 1,300 times more again, far
// past the bound.
const worstRatio = 5000

// TestValidatorWorstInputsStayWithinTime feeds the topic validator the
// most expensive inputs it can get: the largest valid texts (4096 runes of
// 4 bytes), 64 KiB of unknown fields, 64 KiB of nested groups, invalid
// UTF-8 at the very end, sealed messages of the full size with a broken
// tag, and oversize data. Each stays within worstRatio of a small
// message's validation time, and each input gets the verdict it should.
func TestValidatorWorstInputsStayWithinTime(t *testing.T) {
	s, pub, priv := fuzzRooms(t)
	maxText := strings.Repeat("\U0001F600", MaxTextLen)
	maxNick := strings.Repeat("\U0001F600", 32)
	envelope := func(text string, extra []byte) []byte {
		id := make([]byte, idSize)
		if _, err := rand.Read(id); err != nil {
			t.Fatal(err)
		}
		b, err := proto.Marshal(&pb.Envelope{Kind: pb.Kind_KIND_TEXT, Id: id, Nick: maxNick, SentAtMs: time.Now().UnixMilli(), Text: text})
		if err != nil {
			t.Fatal(err)
		}
		return append(b, extra...)
	}
	unknownFields := func(size int) []byte {
		var b []byte
		for len(b) < size {
			b = protowire.AppendTag(b, 1000, protowire.VarintType)
			b = protowire.AppendVarint(b, 1)
		}
		return b
	}
	nestedGroups := func(size int) []byte {
		var b []byte
		depth := size / 6
		for range depth {
			b = protowire.AppendTag(b, 1000, protowire.StartGroupType)
		}
		for range depth {
			b = protowire.AppendTag(b, 1000, protowire.EndGroupType)
		}
		return b
	}
	sealed := func(plain []byte, breakTag bool) []byte {
		nonce, ct, err := seal(&priv.keys, fuzzAuthor, plain)
		if err != nil {
			t.Fatal(err)
		}
		if breakTag {
			ct[len(ct)-1] ^= 1
		}
		b, err := proto.Marshal(&pb.Sealed{Nonce: nonce, Ciphertext: ct})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	badUTF8 := func() []byte {
		id := make([]byte, idSize)
		return rawEnvelope(pb.Kind_KIND_TEXT, id, maxNick, maxText[:len(maxText)-4]+"\xff\xff\xff\xff", time.Now())
	}
	cases := []struct {
		name    string
		private bool
		data    func() []byte
		want    pubsub.ValidationResult
	}{
		{"largest valid text", false, func() []byte { return envelope(maxText, nil) }, pubsub.ValidationAccept},
		{"one rune too many", false, func() []byte { return envelope(maxText+"x", nil) }, pubsub.ValidationReject},
		{"64 KiB of unknown fields", false, func() []byte { return envelope("hi", unknownFields(MaxMessageSize-200)) }, pubsub.ValidationAccept},
		{"64 KiB of nested groups", false, func() []byte { return envelope("hi", nestedGroups(MaxMessageSize-200)) }, pubsub.ValidationReject},
		{"invalid UTF-8 at the end", false, badUTF8, pubsub.ValidationReject},
		{"oversize", false, func() []byte { return bytes.Repeat([]byte{0x08}, MaxMessageSize+1) }, pubsub.ValidationReject},
		{"largest sealed text", true, func() []byte { return sealed(envelope(maxText, unknownFields(MaxMessageSize-16<<10-400)), false) }, pubsub.ValidationAccept},
		{"largest sealed, broken tag", true, func() []byte { return sealed(envelope(maxText, unknownFields(MaxMessageSize-16<<10-400)), true) }, pubsub.ValidationReject},
	}
	const runs = 50
	pubValidate := s.validator(pub)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := pub
			if tc.private {
				r = priv
			}
			validate := s.validator(r)
			var total, baseTotal time.Duration
			times := make([]time.Duration, 0, runs)
			for range runs {
				// The same-run baseline: a small valid message, validated
				// right before, so both see the same machine load.
				small := &pubsub.Message{
					Message:      &pubsubpb.Message{From: []byte(fuzzAuthor), Data: envelope("hi", nil), Signature: []byte{1}, Topic: &pub.topicName},
					ReceivedFrom: "relay",
				}
				bstart := time.Now()
				pubValidate(context.Background(), "relay", small)
				baseTotal += time.Since(bstart)
				data := tc.data()
				if len(data) > MaxMessageSize+1 {
					t.Fatalf("test input of %d bytes", len(data))
				}
				msg := &pubsub.Message{
					Message:      &pubsubpb.Message{From: []byte(fuzzAuthor), Data: data, Signature: []byte{1}, Topic: &r.topicName},
					ReceivedFrom: "relay",
				}
				start := time.Now()
				got := validate(context.Background(), "relay", msg)
				took := time.Since(start)
				if got != tc.want {
					t.Fatalf("verdict %v, want %v", got, tc.want)
				}
				times = append(times, took)
				total += took
			}
			slices.Sort(times)
			mean, p90, worst := total/runs, times[runs*9/10], times[runs-1]
			t.Logf("mean %v, p90 %v, worst %v; small message %v; ratio %.1f", mean.Round(time.Microsecond), p90.Round(time.Microsecond), worst.Round(time.Microsecond), (baseTotal / runs).Round(time.Microsecond), float64(total)/float64(baseTotal))
			if ratio := float64(total) / float64(baseTotal); ratio > worstRatio {
				t.Fatalf("validation took %.0f times as long as a small message's (%v against %v on average); bound %d", ratio, mean, baseTotal/runs, worstRatio)
			}
		})
	}
}
