package events

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

func TestMarshalJSONPutsTypeFirst(t *testing.T) {
	b, err := MarshalJSON(PeerConnected{PeerID: testPeer, Addr: "/ip4/127.0.0.1/tcp/1"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"peer_connected","peer_id":"` + testPeerID + `","addr":"/ip4/127.0.0.1/tcp/1"}`
	if string(b) != want {
		t.Fatalf("got %s\nwant %s", b, want)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
}

type empty struct{}

func (empty) Type() string { return "empty" }

func TestMarshalJSONEmpty(t *testing.T) {
	b, err := MarshalJSON(empty{})
	if err != nil || string(b) != `{"type":"empty"}` {
		t.Fatalf("got %s, %v", b, err)
	}
}

func TestQueueOrderDropAndClose(t *testing.T) {
	q := NewQueue(2)
	q.Emit(Info{Text: "1"})
	q.Emit(Info{Text: "2"})
	q.Emit(Info{Text: "3"}) // dropped
	if q.Dropped() != 1 {
		t.Fatalf("dropped = %d", q.Dropped())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, want := range []string{"1", "2"} {
		e, ok := q.Next(ctx)
		if !ok || e.(Info).Text != want {
			t.Fatalf("got %v %v, want %s", e, ok, want)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, ok := q.Next(ctx); ok {
			t.Error("Next after Close returned an event")
		}
	}()
	q.Close()
	<-done
}
