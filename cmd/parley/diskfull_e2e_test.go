package main_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parley-chat/parley/dm"
	"github.com/parley-chat/parley/internal/proctest"
)

// TestDMsArriveSoonAfterRecipientDiskFreed: bob's data dir is on a small
// tmpfs that the test fills; alice's DMs are answered busy while bob's
// disk is full, and arrive, each once, within a few storage retry waits
// once space comes back (issue 18: all 30 arrived 297 s later, the
// backoff having grown to its 5 min cap).
func TestDMsArriveSoonAfterRecipientDiskFreed(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes on a full tmpfs")
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root (CI runs as root)")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s)", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})

	const n = 30
	a, readyA := startPeer(t, "alice")
	bobDir := filepath.Join(mnt, "bob")
	b := proctest.Start(t, bin, "bob", append([]string{"--data-dir", bobDir, "--nick", "bob"},
		append(proctest.Loopback(), "--peer", firstAddr(t, readyA))...)...)
	bobID := b.Wait(20*time.Second, "ready", nil).Str("peer_id")
	a.Find(20*time.Second, "peer_connected", func(e proctest.Event) bool { return e.Str("peer_id") == bobID })

	filler := filepath.Join(mnt, "filler")
	fill(t, filler)

	text := strings.Repeat("x", dm.MaxTextBytes/2)
	for i := range n {
		a.Send(fmt.Sprintf("/msg %s %03d%s", bobID, i, text))
	}
	// Bob's full disk shows at alice as a busy recipient.
	a.Wait(30*time.Second, "dm_status", func(e proctest.Event) bool { return e.Str("reason") == "busy" })

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	limit := 3*dm.StorageRetryAfter + 5*time.Second
	delivered := map[string]bool{}
	a.Wait(limit, "dm_status", func(e proctest.Event) bool {
		if e.Str("state") == "delivered" {
			delivered[e.Str("id")] = true
		}
		return len(delivered) == n
	})
	took := time.Since(freed)
	seen := map[string]bool{}
	for len(seen) < n {
		e := b.Wait(10*time.Second, "dm", nil)
		if seen[e.Str("id")] {
			t.Fatalf("dm %s shown twice", e.Str("id"))
		}
		seen[e.Str("id")] = true
	}
	t.Logf("%d DMs delivered %v after the disk was freed (limit %v)", n, took.Round(time.Millisecond), limit)
}

// fill writes path until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for range 1 << 14 { // at most 1 GiB
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatalf("fill %s: %v", path, err)
		}
	}
	t.Fatalf("fill %s: the file system never filled", path)
}
