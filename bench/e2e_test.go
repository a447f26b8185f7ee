package bench

import (
	"context"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/proctest"
)

// TestE2ESmoke runs the e2e scenario with the real binary at a tiny size
// over both transports and checks its rows. It measures nothing.
func TestE2ESmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the parley binary")
	}
	bin, err := proctest.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := tiny(t)
	cfg.Scenarios = []string{ScenarioE2E}
	cfg.Binary, cfg.E2ERounds, cfg.OfferProbeSize = bin, 2, 64<<20
	cfg.ProfileDir = t.TempDir()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failures) > 0 {
		t.Fatalf("failures: %v", rep.Failures)
	}
	got := make(map[string]int)
	for _, r := range rep.Results {
		got[r.Scenario]++
		if math.IsNaN(r.Value) || r.Value <= 0 && r.Metric != "peak RSS growth, MiB, sender" && r.Metric != "peak RSS growth, MiB, recipient" {
			t.Errorf("%s %s = %v", r.Scenario, r.Metric, r.Value)
		}
	}
	if got["e2e/tcp"] != 11 || got["e2e/quic"] != 9 {
		t.Errorf("rows per scenario %v, want 11 for e2e/tcp (with the large offer) and 9 for e2e/quic", got)
	}
	for _, r := range rep.Results {
		if r.Target != "" && strings.HasPrefix(r.Metric, "/send → file_done") && r.Baseline != "plain libp2p stream between two processes, fsynced" {
			t.Errorf("%s: the speed target is against %q, want the two-process copy", r.Scenario, r.Baseline)
		}
	}
	twoProcs := 0
	for _, r := range rep.Results {
		if r.Baseline == "plain libp2p stream between two processes, fsynced" && r.Base > 0 {
			twoProcs++
		}
	}
	if twoProcs != 4 {
		t.Errorf("%d rows against the two-process copy, want 2 per transport", twoProcs)
	}
	for _, name := range []string{"e2e-tcp-sender.pprof", "e2e-tcp-recipient.pprof", "e2e-quic-sender.pprof", "e2e-quic-copy-recipient.pprof"} {
		if st, err := os.Stat(cfg.ProfileDir + "/" + name); err != nil || st.Size() == 0 {
			t.Errorf("profile %s: %v", name, err)
		}
	}
}

func TestE2EWithoutBinary(t *testing.T) {
	rep, err := Run(context.Background(), Config{Scenarios: []string{ScenarioE2E}, Dir: t.TempDir()})
	if err != nil || len(rep.Failures) != 1 {
		t.Fatalf("e2e without a binary: %v, %v; want one failure", rep, err)
	}
}
