package transfer

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/transfer/pb"
)

// fakeSender speaks the protocol from a bare host and can misbehave.
type fakeSender struct {
	h    host.Host
	id   []byte
	data []byte
	man  *manifest
	// chunk returns the length to announce and the bytes to send for
	// chunk i; nil sends the true chunk.
	chunk func(i int, data []byte) (uint32, []byte)
	// after is written after the last chunk of every Get.
	after []byte
	// open makes the chunk headers carry the chunks' hashes (v2, for an
	// offer without a hash, see unhashedOffer); hash, when not nil,
	// returns the hash to send for chunk i instead of the true one cv.
	open bool
	hash func(i int, cv []byte) []byte
	// commitment, when not nil, is the Manifest sent instead of man.
	commitment *pb.Manifest
}

// unhashedOffer is an offer of f's data without its hash (v2): f then
// sends each chunk's hash with it and commits to man at the end.
func (f *fakeSender) unhashedOffer(name string) *pb.Offer {
	f.open = true
	return &pb.Offer{Id: f.id, Name: name, Size: uint64(len(f.data)), ChunkSize: uint32(f.man.chunkSize)}
}

func newFakeSender(t *testing.T, data []byte) *fakeSender {
	t.Helper()
	man, err := buildManifest(context.Background(), strings.NewReader(string(data)), int64(len(data)), MinChunkSize, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSender{h: testnet.NewHost(t), id: make([]byte, idLen), data: data, man: man}
	_, _ = rand.Read(f.id)
	f.h.SetStreamHandler(ID, f.serve)
	return f
}

func (f *fakeSender) idHex() string { return hex.EncodeToString(f.id) }

// offer sends a raw Offer to n and returns its answer.
func (f *fakeSender) offer(t *testing.T, n *node, o *pb.Offer) *pb.Status {
	t.Helper()
	if n.h.Network().Connectedness(f.h.ID()) != network.Connected {
		testnet.Connect(t, f.h, n.h)
	}
	str, err := f.h.NewStream(ctxT(t), n.h.ID(), ID)
	if err != nil {
		t.Fatal(err)
	}
	defer str.Close()
	if err := writeFrame(str, &pb.Frame{Msg: &pb.Frame_Offer{Offer: o}}); err != nil {
		t.Fatal(err)
	}
	fr, err := readFrame(bufio.NewReader(str), 4096)
	if err != nil {
		t.Fatal(err)
	}
	return fr.GetStatus()
}

func (f *fakeSender) validOffer(name string) *pb.Offer {
	return &pb.Offer{Id: f.id, Name: name, Size: uint64(len(f.data)), Hash: f.man.hash[:]}
}

func (f *fakeSender) serve(str network.Stream) {
	defer str.Close()
	br := bufio.NewReader(str)
	for {
		fr, err := readFrame(br, MaxFrameSize)
		if err != nil {
			return
		}
		if fr.GetNotice() != nil {
			_ = writeFrame(str, &pb.Frame{Msg: &pb.Frame_Status{Status: &pb.Status{Code: pb.Code_OK}}})
			return
		}
		g := fr.GetGet()
		if g == nil {
			_ = str.Reset()
			return
		}
		if g.GetManifest() {
			m := f.man.toWire()
			if f.commitment != nil {
				m = f.commitment
			}
			if writeFrame(str, &pb.Frame{Msg: &pb.Frame_Manifest{Manifest: m}}) != nil {
				return
			}
		}
		for _, r := range g.GetRanges() {
			for i := int(r.GetStart()); i < int(r.GetStart()+r.GetCount()); i++ {
				off := int64(i) * f.man.chunkSize
				data := f.data[off : off+f.man.chunkLen(i)]
				n, payload := uint32(len(data)), data
				if f.chunk != nil {
					n, payload = f.chunk(i, data)
				}
				var hash []byte
				if f.open {
					hash = f.man.chunkHash(i)
					if f.hash != nil {
						hash = f.hash(i, hash)
					}
				}
				if _, err := str.Write(append(appendChunkHeader(nil, uint32(i), n, hash), payload...)); err != nil {
					return
				}
			}
		}
		if f.after != nil {
			if _, err := str.Write(f.after); err != nil {
				return
			}
		}
	}
}

func TestMaliciousChunkNeverCompletes(t *testing.T) {
	var sent chunkCounter
	hook := func(_ string, i int, data []byte) error {
		sent.add(i)
		if i == 3 {
			data[0] ^= 0xff // does not match the manifest
		}
		return nil
	}
	a, b := newNode(t, withHook(hook)), newNode(t)
	testnet.Connect(t, a.h, b.h)
	id, _, _ := startTransfer(t, a, b, 6)
	if _, err := b.svc.Wait(ctxT(t), id); !errors.Is(err, ErrVerify) {
		t.Fatalf("recipient wait = %v, want ErrVerify", err)
	}
	if _, err := a.svc.Wait(ctxT(t), id); !errors.Is(err, ErrVerify) {
		t.Fatalf("sender wait = %v, want ErrVerify", err)
	}
	for _, r := range []*recorder{a.rec, b.rec} {
		if ev := waitFor[events.FileFailed](t, r, id); ev.Code != "verify_failed" {
			t.Fatalf("file_failed = %+v", ev)
		}
		if _, ok := find[events.FileDone](r, id); ok {
			t.Fatal("file_done reported for a corrupt transfer")
		}
	}
	if n := sent.get(3); n != DefaultChunkRetries+1 {
		t.Fatalf("bad chunk sent %d times, want %d", n, DefaultChunkRetries+1)
	}
	if sent.total() != 5+DefaultChunkRetries+1 {
		t.Fatalf("%d chunks sent in all", sent.total())
	}
	pollUntil(t, "part file removed", func() bool { return len(b.downloads()) == 0 })
}

func TestCorruptChunkRefetched(t *testing.T) {
	var sent chunkCounter
	hook := func(_ string, i int, data []byte) error {
		sent.add(i)
		if i == 2 && sent.get(2) == 1 {
			data[len(data)-1] ^= 1
		}
		return nil
	}
	a, b := newNode(t, withHook(hook)), newNode(t)
	testnet.Connect(t, a.h, b.h)
	id, _, data := startTransfer(t, a, b, 5)
	finishAndCheck(t, a, b, id, data)
	if sent.get(2) != 2 || sent.total() != 6 {
		t.Fatalf("chunk 2 sent %d times, %d in all", sent.get(2), sent.total())
	}
}

func TestSenderSendingMoreIsCutOff(t *testing.T) {
	data := make([]byte, 4*MinChunkSize)
	f := newFakeSender(t, data)
	f.chunk = func(i int, d []byte) (uint32, []byte) {
		if i == 2 {
			return uint32(len(d) + 1), append(d, 'x') // one byte more than declared
		}
		return uint32(len(d)), d
	}
	b := newNode(t, func(c *Config) { c.MaxAttempts = 2 })
	if st := f.offer(t, b, f.validOffer("more.bin")); st.GetCode() != pb.Code_OK {
		t.Fatalf("offer: %v", st)
	}
	id := f.idHex()
	if err := b.svc.Accept(id); err != nil {
		t.Fatal(err)
	}
	// The recipient gives up after MaxAttempts and waits, never done.
	pollUntil(t, "recipient parks", func() bool {
		b.svc.mu.Lock()
		defer b.svc.mu.Unlock()
		tr := b.svc.transfers[id]
		return !tr.running && tr.state == StateWaiting
	})
	in := b.info(id)
	if in.Bytes != 2*MinChunkSize || !strings.Contains(in.Error, "protocol violation") {
		t.Fatalf("info = %+v", in)
	}
	// A display is told that nothing moves any more (issue 22: the row
	// kept the old rate and ETA).
	w := b.rec.wait(t, "file_progress waiting", func(e events.Event) bool {
		p, ok := e.(events.FileProgress)
		return ok && p.TransferID == id && p.Waiting
	}).(events.FileProgress)
	if w.Rate != 0 || w.Bytes != 2*MinChunkSize {
		t.Fatalf("waiting progress %+v", w)
	}
	if slices.Contains(b.downloads(), "more.bin") {
		t.Fatal("file placed")
	}
	if err := b.svc.Cancel(id); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "part file removed", func() bool { return len(b.downloads()) == 0 })
}

// Bytes after the last requested chunk are never read.
func TestTrailingBytesIgnored(t *testing.T) {
	data := []byte(strings.Repeat("0123456789", 5000))
	f := newFakeSender(t, data)
	f.after = []byte("junk that was never declared")
	b := newNode(t)
	if st := f.offer(t, b, f.validOffer("t.txt")); st.GetCode() != pb.Code_OK {
		t.Fatalf("offer: %v", st)
	}
	if err := b.svc.Accept(f.idHex()); err != nil {
		t.Fatal(err)
	}
	res, err := b.svc.Wait(ctxT(t), f.idHex())
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(res.Path); string(got) != string(data) {
		t.Fatalf("received %d bytes", len(got))
	}
}

func TestHostileNames(t *testing.T) {
	tests := []struct {
		offered string
		saved   string // "" when refused
	}{
		{"../../escape.txt", "escape.txt"},
		{`..\..\win.txt`, "win.txt"},
		{"/etc/passwd", "passwd"},
		{"CON", "_CON"},
		{"aux.log", "_aux.log"},
		{"nul\x00.txt", "nul_.txt"},
		{"\x1b]0;pwned\a.txt", "_]0;pwned_.txt"},
		{"rtl\u202egnp.exe", "rtl_gnp.exe"},
		{".profile", "_profile"},
		{strings.Repeat("n", 400) + ".dat", strings.Repeat("n", 196) + ".dat"},
		{"..", ""},
		{"", ""},
		{"/", ""},
	}
	b := newNode(t)
	parent := filepath.Dir(b.dir)
	before, _ := os.ReadDir(parent)
	for _, tt := range tests {
		f := newFakeSender(t, []byte("hostile"))
		st := f.offer(t, b, f.validOffer(tt.offered))
		if tt.saved == "" {
			if st.GetCode() != pb.Code_BAD_NAME {
				t.Errorf("%q: status %v, want BAD_NAME", tt.offered, st)
			}
			continue
		}
		if st.GetCode() != pb.Code_OK {
			t.Errorf("%q: status %v", tt.offered, st)
			continue
		}
		if ev := waitFor[events.FileOffer](t, b.rec, f.idHex()); ev.Name != tt.saved {
			t.Errorf("%q: offered as %q, want %q", tt.offered, ev.Name, tt.saved)
		}
		if err := b.svc.Accept(f.idHex()); err != nil {
			t.Fatal(err)
		}
		res, err := b.svc.Wait(ctxT(t), f.idHex())
		if err != nil {
			t.Fatalf("%q: %v", tt.offered, err)
		}
		if res.Path != filepath.Join(b.dir, tt.saved) {
			t.Errorf("%q: saved at %s", tt.offered, res.Path)
		}
	}
	after, _ := os.ReadDir(parent)
	if len(after) != len(before) {
		t.Fatalf("files appeared next to the downloads dir: %v -> %v", before, after)
	}
}

func TestOfferRefusals(t *testing.T) {
	a := newNode(t)
	b := newNode(t, func(c *Config) {
		c.MaxFileSize = 5000
		c.MaxPendingOffers = 2
		c.hooks.freeSpace = func(string) (uint64, error) { return 3000, nil }
	})
	testnet.Connect(t, a.h, b.h)
	dir := t.TempDir()
	big, _ := writeFile(t, dir, "big.bin", 6000)
	if _, err := offerAndWait(t, a, b.h.ID(), big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the size limit: %v", err)
	}
	roomy, _ := writeFile(t, dir, "roomy.bin", 4000)
	if _, err := offerAndWait(t, a, b.h.ID(), roomy); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("over the free space: %v", err)
	}
	if _, err := offerAndWait(t, a, b.h.ID(), dir); !errors.Is(err, ErrNotFile) {
		t.Fatalf("directory: %v", err)
	}
	f := newFakeSender(t, []byte("x"))
	malformed := f.validOffer("x")
	malformed.Id = []byte{1, 2, 3}
	if st := f.offer(t, b, malformed); st.GetCode() != pb.Code_BAD_REQUEST {
		t.Fatalf("malformed offer: %v", st)
	}
	if st := f.offer(t, b, f.validOffer("x")); st.GetCode() != pb.Code_OK {
		t.Fatalf("first offer: %v", st)
	}
	if st := f.offer(t, b, f.validOffer("x")); st.GetCode() != pb.Code_DUPLICATE {
		t.Fatalf("same id again: %v", st)
	}
	second := f.validOffer("y")
	second.Id = make([]byte, idLen)
	if st := f.offer(t, b, second); st.GetCode() != pb.Code_OK {
		t.Fatalf("second offer: %v", st)
	}
	third := f.validOffer("z")
	third.Id = make([]byte, idLen)
	third.Id[0] = 1
	if st := f.offer(t, b, third); st.GetCode() != pb.Code_BUSY {
		t.Fatalf("offer over the pending cap: %v", st)
	}
	if got := b.downloads(); len(got) != 0 {
		t.Fatalf("refused offers wrote %v", got)
	}
}

func TestReject(t *testing.T) {
	a, b := newNode(t), newNode(t)
	testnet.Connect(t, a.h, b.h)
	path, _ := writeFile(t, t.TempDir(), "no.bin", 100)
	id, err := offerAndWait(t, a, b.h.ID(), path)
	if err != nil {
		t.Fatal(err)
	}
	waitFor[events.FileOffer](t, b.rec, id)
	if err := b.svc.Reject(id[:8]); err != nil { // a unique prefix will do
		t.Fatal(err)
	}
	if _, err := a.svc.Wait(ctxT(t), id); !errors.Is(err, ErrRejected) {
		t.Fatalf("sender wait = %v", err)
	}
	if _, err := b.svc.Wait(ctxT(t), id); !errors.Is(err, ErrRejected) {
		t.Fatalf("recipient wait = %v", err)
	}
	waitFor[events.FileRejected](t, a.rec, id)
	waitFor[events.FileRejected](t, b.rec, id)
	if err := b.svc.Accept(id); !errors.Is(err, ErrState) {
		t.Fatalf("accept after reject = %v", err)
	}
	if len(b.downloads()) != 0 {
		t.Fatalf("rejected offer wrote %v", b.downloads())
	}
}

func TestCancel(t *testing.T) {
	for _, side := range []string{"sender", "recipient"} {
		t.Run(side, func(t *testing.T) {
			g := newGate(3)
			a, b := newNode(t, withHook(g.hook)), newNode(t)
			t.Cleanup(g.open) // before the nodes stop: Close waits for the hook
			testnet.Connect(t, a.h, b.h)
			id, _, _ := startTransfer(t, a, b, 8)
			<-g.reached
			canceller, other := a, b
			if side == "recipient" {
				canceller, other = b, a
			}
			if err := canceller.svc.Cancel(id); err != nil {
				t.Fatal(err)
			}
			for _, n := range []*node{canceller, other} {
				if _, err := n.svc.Wait(ctxT(t), id); !errors.Is(err, ErrCancelled) {
					t.Fatalf("wait = %v, want ErrCancelled", err)
				}
				if ev := waitFor[events.FileFailed](t, n.rec, id); ev.Code != "cancelled" {
					t.Fatalf("file_failed = %+v", ev)
				}
			}
			pollUntil(t, "part file removed", func() bool { return len(b.downloads()) == 0 })
			if err := canceller.svc.Cancel(id); !errors.Is(err, ErrState) {
				t.Fatalf("second cancel = %v", err)
			}
		})
	}
}

func TestPerPeerCap(t *testing.T) {
	g := newGate(1)
	a := newNode(t, withHook(g.hook))
	t.Cleanup(g.open) // before the nodes stop: Close waits for the hook
	b := newNode(t, func(c *Config) { c.MaxPerPeer = 1 })
	testnet.Connect(t, a.h, b.h)
	first, _, data1 := startTransfer(t, a, b, 4)
	<-g.reached
	path2, data2 := writeFile(t, t.TempDir(), "second.bin", 3*MinChunkSize)
	second, err := offerAndWait(t, a, b.h.ID(), path2)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.svc.Accept(second); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "second transfer queued", func() bool { return b.info(second).State == StateQueued })
	if st := b.info(first).State; st != StateActive {
		t.Fatalf("first transfer is %s", st)
	}
	g.open()
	finishAndCheck(t, a, b, first, data1)
	finishAndCheck(t, a, b, second, data2)
}

func TestAutoAccept(t *testing.T) {
	a := newNode(t)
	b := newNode(t, func(c *Config) {
		c.AutoAccept = func(from peer.ID, size int64) bool {
			return from == a.h.ID() && size < 1000
		}
	})
	testnet.Connect(t, a.h, b.h)
	small, data := writeFile(t, t.TempDir(), "small.txt", 999)
	id, err := offerAndWait(t, a, b.h.ID(), small)
	if err != nil {
		t.Fatal(err)
	}
	finishAndCheck(t, a, b, id, data)
	large, _ := writeFile(t, t.TempDir(), "large.txt", 1000)
	id2, err := offerAndWait(t, a, b.h.ID(), large)
	if err != nil {
		t.Fatal(err)
	}
	if st := b.info(id2).State; st != StateOffered {
		t.Fatalf("large offer is %s, want offered", st)
	}
}

func TestShareAndFetch(t *testing.T) {
	a, b, c := newNode(t), newNode(t), newNode(t)
	testnet.Connect(t, a.h, b.h)
	testnet.Connect(t, a.h, c.h)
	path, data := writeFile(t, t.TempDir(), "slides.pdf", 5*MinChunkSize+17)
	sh, err := a.svc.Share(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{b, c} {
		if err := n.svc.AddRemoteShare("team", a.h.ID(), sh); err != nil {
			t.Fatal(err)
		}
		if ev := waitFor[events.FileOffer](t, n.rec, sh.ID); ev.Room != "team" || ev.Name != "slides.pdf" || ev.Size != sh.Size {
			t.Fatalf("file_offer = %+v", ev)
		}
		if err := n.svc.Fetch(ctxT(t), sh.ID[:6]); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*node{b, c} {
		res, err := n.svc.Wait(ctxT(t), sh.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(res.Path); string(got) != string(data) || res.Hash != sh.Hash {
			t.Fatal("fetched file differs")
		}
	}
	// The sharer sees each upload verified.
	peers := map[string]bool{}
	a.rec.wait(t, "two upload file_done", func(e events.Event) bool {
		if d, ok := e.(events.FileDone); ok && d.TransferID == sh.ID && d.Direction == "send" {
			peers[d.Peer.String()] = true
		}
		return len(peers) == 2
	})
	// Cancelling the share stops serving it.
	if err := a.svc.Cancel(sh.ID); err != nil {
		t.Fatal(err)
	}
	d := newNode(t)
	testnet.Connect(t, a.h, d.h)
	if err := d.svc.AddRemoteShare("team", a.h.ID(), sh); err != nil {
		t.Fatal(err)
	}
	if err := d.svc.Fetch(ctxT(t), sh.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.svc.Wait(ctxT(t), sh.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("fetch of a cancelled share = %v", err)
	}
	bad := sh
	bad.Hash = "zz"
	if err := d.svc.AddRemoteShare("team", a.h.ID(), bad); err == nil {
		t.Fatal("malformed share accepted")
	}
}

func TestLookupErrors(t *testing.T) {
	b := newNode(t)
	for _, id := range []string{"", "abc", "0123456789abcdef0123456789abcdef"} {
		if err := b.svc.Accept(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("accept %q = %v", id, err)
		}
	}
	if _, err := b.svc.Wait(ctxT(t), "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("wait = %v", err)
	}
	if err := b.svc.Fetch(ctxT(t), "0000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("fetch = %v", err)
	}
}

// Announced shares survive restarts of both ends: the fetcher remembers
// the announcement, the sharer keeps serving the file.
func TestShareFetchedAfterRestarts(t *testing.T) {
	a, b := newNode(t), newNode(t)
	testnet.Connect(t, a.h, b.h)
	path, data := writeFile(t, t.TempDir(), "notes.txt", 3*MinChunkSize+5)
	sh, err := a.svc.Share(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.svc.AddRemoteShare("team", a.h.ID(), sh); err != nil {
		t.Fatal(err)
	}
	a.stop()
	b.stop()
	a.start()
	b.start()
	testnet.Connect(t, a.h, b.h)
	if err := b.svc.Fetch(ctxT(t), sh.ID[:8]); err != nil {
		t.Fatalf("fetch after restart: %v", err)
	}
	res, err := b.svc.Wait(ctxT(t), sh.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(res.Path); string(got) != string(data) || res.Hash != sh.Hash {
		t.Fatal("fetched file differs")
	}
}

// Only the most recent maxRemoteShares announcements are kept, in memory
// and in the store.
func TestRemoteSharesBounded(t *testing.T) {
	a := newNode(t)
	from := testnet.NewHost(t).ID()
	ids := make([]string, maxRemoteShares+3)
	for i := range ids {
		ids[i] = fmt.Sprintf("%032x", i+1)
		sh := Share{ID: ids[i], Name: fmt.Sprintf("f%d", i), Size: 1, Hash: strings.Repeat("ab", HashSize)}
		if err := a.svc.AddRemoteShare("team", from, sh); err != nil {
			t.Fatal(err)
		}
	}
	a.stop()
	a.start()
	for i, id := range ids {
		_, err := a.svc.findRemote(id)
		if kept := i >= 3; kept != (err == nil) {
			t.Fatalf("share %d: kept=%v, err=%v", i, kept, err)
		}
	}
	var stored int
	if err := a.db.View(func(tx *bolt.Tx) error { stored = tx.Bucket(bucketRemote).Stats().KeyN; return nil }); err != nil {
		t.Fatal(err)
	}
	if stored != maxRemoteShares {
		t.Fatalf("%d announcements stored, want %d", stored, maxRemoteShares)
	}
}
