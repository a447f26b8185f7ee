package dm_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/dm"
	"github.com/parley-chat/parley/events"
)

// Two peers on loopback: alice sends bob a message and waits until bob
// has acknowledged it.
func ExampleService_Send() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "dm-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	start := func(name string, em events.Emitter) (host.Host, *dm.Service) {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
		if err != nil {
			log.Fatal(err)
		}
		db, err := bolt.Open(filepath.Join(dir, name+".db"), 0o600, nil)
		if err != nil {
			log.Fatal(err)
		}
		svc, err := dm.New(ctx, dm.Config{Host: h, DB: db, Emitter: em, Nick: func() string { return name }})
		if err != nil {
			log.Fatal(err)
		}
		return h, svc
	}
	statuses := make(chan events.DMStatus, 8)
	inbox := make(chan events.DM, 8)
	ha, alice := start("alice", events.EmitterFunc(func(e events.Event) {
		if s, ok := e.(events.DMStatus); ok {
			statuses <- s
		}
	}))
	hb, bob := start("bob", events.EmitterFunc(func(e events.Event) {
		if m, ok := e.(events.DM); ok {
			inbox <- m
		}
	}))
	defer ha.Close()
	defer hb.Close()
	defer alice.Close()
	defer bob.Close()

	if err := ha.Connect(ctx, peer.AddrInfo{ID: hb.ID(), Addrs: hb.Addrs()}); err != nil {
		log.Fatal(err)
	}
	if _, err := alice.Send(ctx, hb.ID(), "hello bob"); err != nil {
		log.Fatal(err)
	}
	for s := range statuses {
		fmt.Println("alice:", s.State)
		if s.State == events.DMDelivered || s.State == events.DMFailed {
			break
		}
	}
	m := <-inbox
	fmt.Printf("bob: %s says %q\n", m.Nick, m.Text)
	// Output:
	// alice: queued
	// alice: sent
	// alice: delivered
	// bob: alice says "hello bob"
}
