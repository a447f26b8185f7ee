package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/events"
)

// stuck returns a function that blocks until the test ends.
func stuck(t *testing.T) func() error {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	return func() error { <-release; return nil }
}

// drainer reads q until it is closed, then reports err on the returned
// channel.
func drainer(q *events.Queue, err error) <-chan error {
	done := make(chan error, 1)
	go func() {
		for {
			if _, ok := q.Next(context.Background()); !ok {
				done <- err
				return
			}
		}
	}()
	return done
}

func TestShutdownIsBoundedInTotal(t *testing.T) {
	const total, reserve = time.Second, 200 * time.Millisecond
	q := events.NewQueue(16)
	never := make(chan error) // a writer that never finishes
	start := time.Now()
	err := shutdownWithin(total, reserve, stuck(t), q, never)
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "did not close within 800ms") {
		t.Fatalf("err %v, want the close timeout", err)
	}
	// Close and flush together stay within total (plus scheduling).
	if took < total || took > total+500*time.Millisecond {
		t.Fatalf("shutdown took %v, want %v", took, total)
	}
}

func TestShutdownFlushesAfterASlowClose(t *testing.T) {
	const total, reserve = time.Second, 200 * time.Millisecond
	q := events.NewQueue(16)
	q.Emit(events.Info{Text: "last words"})
	start := time.Now()
	err := shutdownWithin(total, reserve, stuck(t), q, drainer(q, nil))
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "did not close") {
		t.Fatalf("err %v, want the close timeout", err)
	}
	if took > total-reserve+500*time.Millisecond {
		t.Fatalf("shutdown took %v although the writer finished at once", took)
	}
}

func TestShutdownReturnsTheFirstError(t *testing.T) {
	closeErr, writeErr := errors.New("close failed"), errors.New("write failed")
	cases := []struct {
		name     string
		closeErr error
		writeErr error
		want     error
	}{
		{"clean", nil, nil, nil},
		{"close", closeErr, writeErr, closeErr},
		{"write", nil, writeErr, writeErr},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := events.NewQueue(16)
			start := time.Now()
			err := shutdownWithin(time.Minute, time.Second, func() error { return tc.closeErr }, q, drainer(q, tc.writeErr))
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Fatalf("a quick close and flush took %v", took)
			}
		})
	}
}

func TestShutdownTimeoutIsFiveSeconds(t *testing.T) {
	// docs/EVENTS.md, docs/TUI.md and docs/SERVE.md promise 5 s.
	if shutdownTimeout != 5*time.Second || shutdownFlushReserve <= 0 || shutdownFlushReserve >= shutdownTimeout {
		t.Fatalf("shutdownTimeout %v, flush reserve %v", shutdownTimeout, shutdownFlushReserve)
	}
}
