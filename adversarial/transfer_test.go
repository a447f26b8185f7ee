package adversarial

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/transfer"
	tpb "github.com/parley-chat/parley/transfer/pb"
)

func writeTF(s io.Writer, f *tpb.Frame) error {
	b, err := proto.Marshal(f)
	if err != nil {
		return err
	}
	_, err = s.Write(append(binary.AppendUvarint(nil, uint64(len(b))), b...))
	return err
}

func readTF(br *bufio.Reader) (*tpb.Frame, error) {
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, err
	}
	if n > transfer.MaxFrameSize {
		return nil, fmt.Errorf("frame of %d bytes", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(br, buf); err != nil {
		return nil, err
	}
	f := new(tpb.Frame)
	return f, proto.Unmarshal(buf, f)
}

// offerRaw sends a raw Offer from h to the victim and returns the answer.
func offerRaw(t *testing.T, h host.Host, victim *party, o *tpb.Offer) *tpb.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	s, err := h.NewStream(ctx, victim.peerID(), transfer.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	if err := writeTF(s, &tpb.Frame{Msg: &tpb.Frame_Offer{Offer: o}}); err != nil {
		t.Fatal(err)
	}
	_ = s.CloseWrite()
	f, err := readTF(bufio.NewReader(s))
	if err != nil {
		t.Fatalf("offer answer: %v", err)
	}
	return f.GetStatus()
}

// offerToAttacker has victim send a file (name, content) to the attacker
// host mallory, which answers the offer with code, and returns the offer
// and a new stream from mallory to victim on the transfer protocol, closed
// or reset by the caller.
func offerToAttacker(t *testing.T, victim *party, mallory host.Host, name string, content []byte, code tpb.Code) (*tpb.Offer, network.Stream) {
	t.Helper()
	offers := make(chan *tpb.Offer, 1)
	mallory.SetStreamHandler(transfer.ID, func(s network.Stream) {
		defer func() { _ = s.Close() }()
		f, err := readTF(bufio.NewReader(s))
		if err != nil || f.GetOffer() == nil {
			_ = s.Reset()
			return
		}
		_ = writeTF(s, &tpb.Frame{Msg: &tpb.Frame_Status{Status: &tpb.Status{Code: code}}})
		offers <- f.GetOffer()
	})
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	victim.exec("/send " + mallory.ID().String() + " " + path)
	var offer *tpb.Offer
	select {
	case offer = <-offers:
	case <-time.After(waitTimeout):
		t.Fatal("no offer")
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	s, err := mallory.NewStream(ctx, victim.peerID(), transfer.ID)
	if err != nil {
		t.Fatal(err)
	}
	return offer, s
}

func downloads(t *testing.T, p *party) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(p.dir, "downloads"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestOfferOfOneTerabyte: an offer declaring a 1 TB file is refused with
// TOO_LARGE before anything is shown to the user or written to disk; the
// node keeps serving.
func TestOfferOfOneTerabyte(t *testing.T) {
	victim, honest, mallory := underAttack(t)
	id := random(t, 16)
	st := offerRaw(t, mallory, victim, &tpb.Offer{Id: id, Name: "huge.bin", Size: 1 << 40, Hash: random(t, 32)})
	if st.GetCode() != tpb.Code_TOO_LARGE {
		t.Fatalf("1 TB offer answered %v", st)
	}
	// Malformed offers: a short id, a hash of the wrong size, no name.
	for _, o := range []*tpb.Offer{
		{Id: id[:3], Name: "x", Size: 1, Hash: random(t, 32)},
		{Id: random(t, 16), Name: "x", Size: 1, Hash: random(t, 5)},
		{Id: random(t, 16), Name: "", Size: 1, Hash: random(t, 32)},
	} {
		if st := offerRaw(t, mallory, victim, o); st.GetCode() == tpb.Code_OK || st.GetCode() == tpb.Code_ACCEPTED {
			t.Fatalf("malformed offer %v accepted", o)
		}
	}
	stillServes(t, honest, victim, "after huge offer")
	if n := victim.ev.count(func(e events.Event) bool { _, ok := e.(events.FileOffer); return ok }); n != 0 {
		t.Fatalf("%d refused offers shown to the user", n)
	}
	if got := downloads(t, victim); len(got) != 0 {
		t.Fatalf("refused offers wrote %v", got)
	}
}

// TestMaliciousManifest: a sender offers a file and, once it is accepted,
// answers with a manifest whose chunk hashes do not add up to the offered
// hash. The transfer fails (bad manifest), nothing is placed in the
// downloads dir, the node keeps serving.
func TestMaliciousManifest(t *testing.T) {
	victim, honest, mallory := underAttack(t)
	const size = 3 << 20
	hash := random(t, 32)
	mallory.SetStreamHandler(transfer.ID, func(s network.Stream) {
		defer func() { _ = s.Close() }()
		br := bufio.NewReader(s)
		f, err := readTF(br)
		if err != nil || f.GetGet() == nil {
			_ = s.Reset()
			return
		}
		_ = writeTF(s, &tpb.Frame{Msg: &tpb.Frame_Manifest{Manifest: &tpb.Manifest{
			// The offered size and hash, but chunk hashes that do not
			// combine into that hash.
			Size: size, ChunkSize: 1 << 20, Hash: hash, ChunkHashes: random(t, 3*32),
		}}})
	})
	id := random(t, 16)
	if st := offerRaw(t, mallory, victim, &tpb.Offer{Id: id, Name: "innocent.txt", Size: size, Hash: hash}); st.GetCode() != tpb.Code_OK {
		t.Fatalf("offer: %v", st)
	}
	victim.ev.wait(t, "file offer", func(e events.Event) bool {
		o, ok := e.(events.FileOffer)
		return ok && o.TransferID == hex.EncodeToString(id)
	})
	victim.exec("/accept " + hex.EncodeToString(id))
	failed := victim.ev.wait(t, "transfer failed", func(e events.Event) bool {
		f, ok := e.(events.FileFailed)
		return ok && f.TransferID == hex.EncodeToString(id)
	}).(events.FileFailed)
	t.Logf("bad manifest: %s (%s)", failed.Code, failed.Error)
	if victim.ev.count(func(e events.Event) bool { _, ok := e.(events.FileDone); return ok }) != 0 {
		t.Fatal("file_done for a transfer with a bad manifest")
	}
	stillServes(t, honest, victim, "after bad manifest")
	for _, name := range downloads(t, victim) {
		t.Fatalf("left in downloads: %s", name)
	}
}

// TestRecipientStopsReading: the node sends a file to a peer that accepts,
// asks for every chunk and then stops reading. The node's write deadline
// (IdleTimeout, 2 s here) resets the stream; nothing blocks, and honest
// peers are served meanwhile.
func TestRecipientStopsReading(t *testing.T) {
	t.Parallel()
	short := func(c *node.Config) { c.Transfer.IdleTimeout = 2 * time.Second }
	victim, honest := newParty(t, "victim", short), newParty(t, "honest", nil)
	link(t, honest, victim)
	inLobby(t, honest, victim)
	mallory := attacker(t, victim)

	offer, s := offerToAttacker(t, victim, mallory, "big.bin", random(t, 16<<20), tpb.Code_ACCEPTED)
	defer func() { _ = s.Reset() }()
	br := bufio.NewReader(s)
	if err := writeTF(s, &tpb.Frame{Msg: &tpb.Frame_Get{Get: &tpb.Get{Id: offer.GetId(), Manifest: true}}}); err != nil {
		t.Fatal(err)
	}
	f, err := readTF(br)
	if err != nil || f.GetManifest() == nil {
		t.Fatalf("manifest: %v %v", f, err)
	}
	chunks := uint32(len(f.GetManifest().GetChunkHashes()) / 32)
	if err := writeTF(s, &tpb.Frame{Msg: &tpb.Frame_Get{Get: &tpb.Get{Id: offer.GetId(), Ranges: []*tpb.Range{{Start: 0, Count: chunks}}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(br, make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	// Stop reading; honest traffic flows meanwhile.
	stalled := time.Now()
	stillServes(t, honest, victim, "while a recipient stalls")
	time.Sleep(4*time.Second - time.Since(stalled))
	// The node gave up on the stream: what is left is what it had
	// buffered before the deadline, then a reset.
	read, err := io.Copy(io.Discard, br)
	if err == nil {
		t.Fatalf("stream ended cleanly after %d more bytes; want a reset", read)
	}
	if total := int64(64<<10) + read; total >= int64(offer.GetSize()) {
		t.Fatalf("read the whole file (%d bytes) from a stalled stream", total)
	}
	t.Logf("stalled recipient: stream reset after %d buffered bytes (%v)", read, err)
	stillServes(t, honest, victim, "after a recipient stalled")
}

// TestEscapesInTransferFields: the transfer fields a peer controls, the
// offered file name and the message of a FAILED notice, reach the user
// inert: the name reduced by safename, the message escaped, and /transfers
// lists both without control characters.
func TestEscapesInTransferFields(t *testing.T) {
	victim, honest, mallory := underAttack(t)

	// An offer whose name holds escapes.
	in := random(t, 16)
	if st := offerRaw(t, mallory, victim, &tpb.Offer{Id: in, Name: evil + ".txt", Size: 10, Hash: random(t, 32)}); st.GetCode() != tpb.Code_OK {
		t.Fatalf("offer: %v", st)
	}
	offer := victim.ev.wait(t, "file offer", func(e events.Event) bool {
		o, ok := e.(events.FileOffer)
		return ok && o.TransferID == hex.EncodeToString(in)
	}).(events.FileOffer)
	if hasControl(offer.Name) {
		t.Fatalf("offered name shown as %q", offer.Name)
	}

	// A file the victim sends, failed by the peer with an evil message.
	out, s := offerToAttacker(t, victim, mallory, "report.txt", []byte("quarterly numbers"), tpb.Code_OK)
	defer func() { _ = s.Close() }()
	notice := &tpb.Notice{Id: out.GetId(), Kind: tpb.Notice_FAILED, Code: tpb.Code_INTERNAL, Message: evil + "\n[12:00] <victim> fake line"}
	if err := writeTF(s, &tpb.Frame{Msg: &tpb.Frame_Notice{Notice: notice}}); err != nil {
		t.Fatal(err)
	}
	if f, err := readTF(bufio.NewReader(s)); err != nil || f.GetStatus().GetCode() != tpb.Code_OK {
		t.Fatalf("notice answer: %v %v", f, err)
	}
	failed := victim.ev.wait(t, "transfer failed", func(e events.Event) bool {
		f, ok := e.(events.FileFailed)
		return ok && f.TransferID == hex.EncodeToString(out.GetId())
	}).(events.FileFailed)
	if hasControl(failed.Error) || strings.Contains(failed.Error, "\n") {
		t.Fatalf("peer's failure message shown as %q", failed.Error)
	}
	t.Logf("offered name %q; failure %q", offer.Name, failed.Error)

	before := len(victim.ev.all())
	victim.exec("/transfers")
	for _, e := range victim.ev.all()[before:] {
		checkDisplay(t, "/transfers", e, "<victim> fake line")
	}
	stillServes(t, honest, victim, "after escapes in transfers")
}
