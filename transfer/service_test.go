package transfer

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"lukechampine.com/blake3"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
)

// sendAndCheck offers a file of size bytes from a to b, accepts it and
// checks the result on both sides; it returns the transfer id.
func sendAndCheck(t *testing.T, a, b *node, name string, size int64) string {
	t.Helper()
	path, data := writeFile(t, t.TempDir(), name, size)
	id, err := a.svc.Offer(ctxT(t), b.h.ID(), path)
	if err != nil {
		t.Fatalf("offer: %v", err)
	}
	off := waitFor[events.FileOffer](t, b.rec, id)
	if off.Name != name || off.Size != size || off.From != a.h.ID() || off.Room != "" {
		t.Fatalf("file_offer = %+v", off)
	}
	if err := b.svc.Accept(id); err != nil {
		t.Fatalf("accept: %v", err)
	}
	resB, err := b.svc.Wait(ctxT(t), id)
	if err != nil {
		t.Fatalf("recipient wait: %v", err)
	}
	resA, err := a.svc.Wait(ctxT(t), id)
	if err != nil {
		t.Fatalf("sender wait: %v", err)
	}
	got, err := os.ReadFile(resB.Path)
	if err != nil {
		t.Fatal(err)
	}
	sum := blake3.Sum256(data)
	want := hex.EncodeToString(sum[:])
	if !bytes.Equal(got, data) || resB.Hash != want || resA.Hash != want {
		t.Fatalf("received %d bytes (hash %s / %s), want %d bytes hash %s", len(got), resB.Hash, resA.Hash, len(data), want)
	}
	if filepath.Dir(resB.Path) != b.svc.dir || resA.Path != path {
		t.Fatalf("paths: recipient %s, sender %s", resB.Path, resA.Path)
	}
	doneB := waitFor[events.FileDone](t, b.rec, id)
	doneA := waitFor[events.FileDone](t, a.rec, id)
	if doneB.Direction != "receive" || doneA.Direction != "send" || doneB.Hash != want || doneA.Path != path ||
		doneB.Path != resB.Path || doneB.Peer != a.h.ID() || doneA.Peer != b.h.ID() {
		t.Fatalf("file_done events: %+v / %+v", doneB, doneA)
	}
	if st, err := os.Stat(resB.Path); err != nil || st.Mode().Perm()&0o111 != 0 {
		t.Fatalf("received file mode: %v %v", st.Mode(), err)
	}
	noPartFiles(t, b)
	return id
}

func TestRoundTrip(t *testing.T) {
	a, b := newNode(t), newNode(t)
	testnet.Connect(t, a.h, b.h)
	cs := int64(MinChunkSize)
	for _, size := range []int64{0, 1, cs - 1, cs, cs + 1, 7*cs + 3} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			sendAndCheck(t, a, b, fmt.Sprintf("file-%d.bin", size), size)
		})
	}
}

func TestRoundTrip100MiB(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MiB transfer skipped in -short mode")
	}
	opt := func(c *Config) { c.ChunkSize = DefaultChunkSize }
	a, b := newNode(t, opt), newNode(t, opt)
	testnet.Connect(t, a.h, b.h)
	sendAndCheck(t, a, b, "big.bin", 100<<20)
}

// A second file with the same name never replaces the first.
func TestNeverOverwrites(t *testing.T) {
	a, b := newNode(t), newNode(t)
	testnet.Connect(t, a.h, b.h)
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.dir, "doc.txt"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	sendAndCheck(t, a, b, "doc.txt", 100)
	sendAndCheck(t, a, b, "doc.txt", 200)
	if mine, _ := os.ReadFile(filepath.Join(b.dir, "doc.txt")); string(mine) != "mine" {
		t.Fatalf("existing file overwritten: %q", mine)
	}
	for _, name := range []string{"doc (1).txt", "doc (2).txt"} {
		if _, err := os.Stat(filepath.Join(b.dir, name)); err != nil {
			t.Fatalf("%s: %v (dir: %v)", name, err, b.downloads())
		}
	}
}
