package mailbox

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/parley-chat/parley/internal/testnet"
)

// owner is a key with its KEM key and a signed record naming holders.
type owner struct {
	key crypto.PrivKey
	id  peer.ID
	rec *Record
}

func newOwner(t testing.TB, holders ...peer.AddrInfo) *owner {
	t.Helper()
	key := testnet.NewKey(t)
	kem, err := DeriveKEMKey(key)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := SignRecord(key, kem.PublicKey(), holders, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &owner{key: key, id: rec.Peer, rec: rec}
}

// startHolder runs a holder on a new loopback host.
func startHolder(t testing.TB, mod func(*HolderConfig)) (*Holder, host.Host) {
	t.Helper()
	h := testnet.NewHost(t)
	cfg := HolderConfig{Host: h, DB: testnet.TempDB(t)}
	if mod != nil {
		mod(&cfg)
	}
	hs, err := NewHolder(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hs.Close() })
	return hs, h
}

// clientOf is a Client on h that connects to holder hh first.
func clientOf(h host.Host) *Client {
	return &Client{Open: func(ctx context.Context, p peer.ID, proto string) (network.Stream, error) {
		return h.NewStream(ctx, p, protocol.ID(proto))
	}}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// hostKey returns the identity key of a loopback host h (from its
// peerstore).
func hostKey(t testing.TB, h interface{ ID() peer.ID }) crypto.PrivKey {
	t.Helper()
	hh, ok := h.(host.Host)
	if !ok {
		t.Fatalf("%T is not a host", h)
	}
	k := hh.Peerstore().PrivKey(hh.ID())
	if k == nil {
		t.Fatal("host has no private key in its peerstore")
	}
	return k
}
