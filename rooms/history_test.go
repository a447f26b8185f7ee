package rooms

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/rooms/pb"
	bolt "go.etcd.io/bbolt"
)

func TestHistorySurvivesRestart(t *testing.T) {
	a, b := newNode(t, "alice", nil), newNode(t, "bob", nil)
	connect(t, a, b)
	ctx := ctxT(t)
	if err := a.svc.Join(ctx, "lobby"); err != nil {
		t.Fatal(err)
	}
	if err := b.svc.Join(ctx, "lobby"); err != nil {
		t.Fatal(err)
	}
	invite, err := a.svc.Create(ctx, "priv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.JoinInvite(ctx, invite); err != nil {
		t.Fatal(err)
	}
	waitTopicPeers(t, "lobby", a, b)
	waitTopicPeers(t, "priv", a, b)
	var sent []string
	for i := range 3 {
		text := fmt.Sprintf("line %d\nwith a second line", i)
		if _, err := a.svc.Send(ctx, "lobby", text); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, text)
	}
	secret, err := a.svc.Send(ctx, "priv", "private line")
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range sent {
		b.waitMessage(text)
	}
	b.waitMessage("private line")
	var delivered []events.Message
	for _, m := range b.messages() {
		if m.Room == "lobby" {
			delivered = append(delivered, m)
		}
	}

	// History is in sent-time order (the sync inserts late messages in
	// their place), then by sync item ID for lines of one millisecond,
	// which need not be the order of delivery.
	key := func(m events.Message) item {
		var id [idSize]byte
		b, _ := hex.DecodeString(m.ID)
		copy(id[:], b)
		return item{ts: uint64(m.SentAt.UnixMilli()), id: itemID(m.From, id)}
	}
	slices.SortStableFunc(delivered, func(x, y events.Message) int { return compareItems(key(x), key(y)) })
	b.restart()
	hist, err := b.svc.History("Lobby", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 3 {
		t.Fatalf("history has %d messages", len(hist))
	}
	for i, m := range hist {
		if m != delivered[i] {
			t.Errorf("history[%d] = %+v, delivered %+v", i, m, delivered[i])
		}
	}
	last2, err := b.svc.History("lobby", 2)
	if err != nil || len(last2) != 2 || last2[0] != delivered[1] || last2[1] != delivered[2] {
		t.Fatalf("History(2) = %+v, %v", last2, err)
	}
	priv, err := b.svc.History("priv", 10)
	if err != nil || len(priv) != 1 || !sameLine(priv[0], secret) {
		t.Fatalf("private history = %+v, %v", priv, err)
	}
	// The sender keeps its own lines too.
	own, err := a.svc.History("lobby", 10)
	if err != nil || len(own) != 3 {
		t.Fatalf("own history = %+v, %v", own, err)
	}
}

func TestHistoryTrim(t *testing.T) {
	db := testnet.TempDB(t)
	if err := ensureBuckets(db); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		err := db.Update(func(tx *bolt.Tx) error {
			return appendHistory(tx, "topic", &pb.StoredMessage{Text: fmt.Sprint(i), From: []byte(peer.ID("x")), Id: []byte{byte(i)}, SentAtMs: int64(i)}, 5)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	recs, _, err := readHistory(db, slog.Default(), "topic", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 5 || recs[0].Text != "3" || recs[4].Text != "7" {
		t.Fatalf("kept %v", recs)
	}
	if recs, _, err := readHistory(db, slog.Default(), "none", 10); err != nil || len(recs) != 0 {
		t.Fatalf("empty history: %v %v", recs, err)
	}
}

// TestHistorySkipsGarbledRecord: one unreadable record (garbled bytes on
// disk) is skipped and counted; the rest of the room's history is read,
// and served to the sync.
func TestHistorySkipsGarbledRecord(t *testing.T) {
	db := testnet.TempDB(t)
	if err := ensureBuckets(db); err != nil {
		t.Fatal(err)
	}
	var its []item
	for i := range 5 {
		rec := &pb.StoredMessage{Text: fmt.Sprint(i), From: []byte(peer.ID("x")), Id: []byte{byte(i)}, SentAtMs: int64(i + 1), Signed: []byte{1, byte(i)}}
		its = append(its, recordItem(rec))
		err := db.Update(func(tx *bolt.Tx) error { return appendHistory(tx, "topic", rec, 100) })
		if err != nil {
			t.Fatal(err)
		}
	}
	garbled := []byte{0xff, 0xff, 0xff, 0xff, 0x0f} // a truncated varint tag
	err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHistory).Bucket([]byte("topic")).Put(historyKey(its[2]), garbled)
	})
	if err != nil {
		t.Fatal(err)
	}
	recs, skipped, err := readHistory(db, slog.Default(), "topic", 100)
	if err != nil {
		t.Fatalf("read history with one garbled record: %v", err)
	}
	var texts []string
	for _, r := range recs {
		texts = append(texts, r.Text)
	}
	if skipped != 1 || !slices.Equal(texts, []string{"0", "1", "3", "4"}) {
		t.Fatalf("read %q, skipped %d", texts, skipped)
	}
	// n counts the records returned, not the ones skipped.
	if recs, skipped, err := readHistory(db, slog.Default(), "topic", 3); err != nil || len(recs) != 3 || recs[0].Text != "1" || skipped != 1 {
		t.Fatalf("last 3: %v, skipped %d, %v", recs, skipped, err)
	}
	signed, err := historySigned(db, "topic", its)
	if err != nil || len(signed) != 4 {
		t.Fatalf("signed history: %d records, %v", len(signed), err)
	}
}

func TestFileShare(t *testing.T) {
	a, b := newNode(t, "alice", nil), newNode(t, "bob", nil)
	connect(t, a, b)
	ctx := context.Background()
	for _, n := range []*tnode{a, b} {
		if _, err := n.svc.JoinInvite(ctx, mustInvite(t, "files")); err != nil {
			t.Fatal(err)
		}
	}
	waitTopicPeers(t, "files", a, b)
	share := FileShare{ID: "t1", Name: "report.pdf", Size: 12345, Hash: "sha256:abcd"}
	if err := a.svc.ShareFile(ctx, "files", share); err != nil {
		t.Fatal(err)
	}
	if got := b.shares.wait(t, "share", func(FileShare) bool { return true }); got != share {
		t.Fatalf("got %+v", got)
	}
	if err := a.svc.ShareFile(ctx, "files", FileShare{ID: "t2", Name: "../x", Hash: "h"}); err == nil {
		t.Fatal("bad share accepted")
	}
	if n := len(a.shares.all()); n != 0 {
		t.Fatalf("own share reported %d times", n)
	}
	if n := len(b.messages()); n != 0 {
		t.Fatalf("share produced %d messages", n)
	}
}

var fixedKey = testKey(0x5a)

func mustInvite(t testing.TB, name string) string {
	code, err := EncodeInvite(name, fixedKey)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func TestPassphraseRoom(t *testing.T) {
	if testing.Short() {
		t.Skip("Argon2id with 64 MiB")
	}
	a, b := newNode(t, "alice", nil), newNode(t, "bob", nil)
	connect(t, a, b)
	ctx := ctxT(t)
	const pass = "correct horse battery staple"
	if err := a.svc.JoinPassphrase(ctx, "Club", pass); err != nil {
		t.Fatal(err)
	}
	if err := b.svc.JoinPassphrase(ctx, "club", pass); err != nil {
		t.Fatal(err)
	}
	if err := b.svc.JoinPassphrase(ctx, "club", pass); err != nil {
		t.Fatalf("second join: %v", err)
	}
	if err := b.svc.JoinPassphrase(ctx, "other", "short"); !errors.Is(err, ErrWeakPassphrase) {
		t.Fatalf("weak passphrase: %v", err)
	}
	if a.topicOf("club") != b.topicOf("club") || !strings.HasPrefix(a.topicOf("club"), PrivateTopicPrefix) {
		t.Fatal("passphrase rooms differ")
	}
	waitTopicPeers(t, "club", a, b)
	if _, err := a.svc.Send(ctx, "club", "knock knock"); err != nil {
		t.Fatal(err)
	}
	if m := b.waitMessage("knock knock"); !m.Private {
		t.Fatalf("%+v", m)
	}
	// Its invite lets others in without the passphrase.
	invite, err := a.svc.Invite("club")
	if err != nil {
		t.Fatal(err)
	}
	if name, _, err := DecodeInvite(invite); err != nil || name != "club" {
		t.Fatalf("invite: %q %v", name, err)
	}
}
