package transfer_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/transfer"
)

// node starts a loopback host with its store and transfer service.
func node(dir string, emit events.Emitter) (host.Host, *transfer.Service, func()) {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		log.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(dir, "parley.db"), 0o600, nil)
	if err != nil {
		log.Fatal(err)
	}
	svc, err := transfer.New(context.Background(), transfer.Config{
		Host: h, DB: db, Emitter: emit, DownloadDir: filepath.Join(dir, "downloads"),
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	return h, svc, func() { _ = svc.Close(); _ = h.Close(); _ = db.Close() }
}

// A sender offers a file; the recipient accepts it when the file_offer
// event arrives; the sender waits until the recipient has verified it.
func Example() {
	dir, err := os.MkdirTemp("", "parley-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	for _, d := range []string{"alice", "bob"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			log.Fatal(err)
		}
	}

	offers := make(chan events.FileOffer, 1)
	bobEvents := events.EmitterFunc(func(e events.Event) {
		if o, ok := e.(events.FileOffer); ok {
			offers <- o
		}
	})
	alice, aliceSvc, closeAlice := node(filepath.Join(dir, "alice"), events.Discard)
	defer closeAlice()
	bob, bobSvc, closeBob := node(filepath.Join(dir, "bob"), bobEvents)
	defer closeBob()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := alice.Connect(ctx, peer.AddrInfo{ID: bob.ID(), Addrs: bob.Addrs()}); err != nil {
		log.Fatal(err)
	}
	path := filepath.Join(dir, "alice", "hello.txt")
	if err := os.WriteFile(path, []byte("hello, bob"), 0o600); err != nil {
		log.Fatal(err)
	}

	id, err := aliceSvc.Offer(ctx, bob.ID(), path) // "/send bob hello.txt"
	if err != nil {
		log.Fatal(err)
	}
	offer := <-offers
	fmt.Printf("bob is offered %s (%d bytes)\n", offer.Name, offer.Size)
	if err := bobSvc.Accept(offer.TransferID); err != nil { // "/accept ID"
		log.Fatal(err)
	}
	res, err := aliceSvc.Wait(ctx, id) // what "parley send" waits for
	if err != nil {
		log.Fatal(err)
	}
	got, err := bobSvc.Wait(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	data, _ := os.ReadFile(got.Path)
	fmt.Printf("bob verified %d bytes, same hash: %v: %q\n", res.Size, res.Hash == got.Hash, data)
	// Output:
	// bob is offered hello.txt (10 bytes)
	// bob verified 10 bytes, same hash: true: "hello, bob"
}
