package bench

import (
	"context"
	"errors"
	"math"
	"os"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/proctest"
)

// The swarm measurement itself, on plain loopback without a namespace or
// shaping: every fetch completes, also the one a holder leaves. It
// measures nothing.
func TestFileSwarmMeasure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := tiny(t)
	cfg := c.withDefaults()
	p := fileSwarmParams{Size: 4 << 20, Rounds: 2}
	limited := false
	times, err := measureFileSwarm(ctx, cfg, p, func(ports []int) error {
		limited = len(ports) == swarmHolders
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !limited || len(times.One) != 2 || len(times.Three) != 2 || times.Leave <= 0 {
		t.Fatalf("times %+v, limit called: %v", times, limited)
	}
	rows := fileSwarmRows(p, times)
	if len(rows) != 2 || math.IsNaN(rows[0].Ratio) || rows[0].Value <= 0 || rows[1].Met != "yes" {
		t.Fatalf("rows %+v", rows)
	}
}

// The scenario as `parley bench` runs it: the binary in a new network
// namespace, the holders' uplinks shaped with tc. Root only; a tiny file
// at a high rate, so it measures nothing either.
func TestFileSwarmInNamespace(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the parley binary")
	}
	if os.Geteuid() != 0 {
		if _, err := Swarm(context.Background(), tiny(t)); !errors.Is(err, errNotRoot) {
			t.Fatalf("swarm as a user = %v, want errNotRoot", err)
		}
		t.Skip("the swarm scenario needs root (network namespaces, tc)")
	}
	bin, err := proctest.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := tiny(t)
	cfg.Binary, cfg.SwarmSize, cfg.E2ERounds = bin, 4<<20, 1
	rows, err := Swarm(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Value <= 0 || rows[0].Base <= 0 || rows[1].Met != "yes" {
		t.Fatalf("rows %+v", rows)
	}
}
