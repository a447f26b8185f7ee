package transfer

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
)

// TestDiskFullMidwayIsReported: a receiving transfer whose disk fills
// mid-way is not silent (issue 18: the error only showed in /transfers).
// The recipient emits a waiting file_progress with code no_space and the
// reason, the transfer waits, and /resume completes it once there is room
// again. "tmpfs" fills a real 128 KiB tmpfs (root only); "injected" makes
// the part file's writes fail with ENOSPC.
func TestDiskFullMidwayIsReported(t *testing.T) {
	const chunks = 24 // 384 KiB: fits neither tmpfs nor the injected room
	tests := []struct {
		name  string
		setup func(t *testing.T) (opt func(*Config), makeRoom func())
	}{
		{"tmpfs", func(t *testing.T) (func(*Config), func()) {
			dir := smallTmpfs(t, "128k")
			opt := func(c *Config) {
				c.DownloadDir = dir
				// The offer passed the free-space check: the disk filled
				// afterwards (another program wrote to it).
				c.hooks.freeSpace = func(string) (uint64, error) { return 1 << 30, nil }
			}
			return opt, func() {
				if out, err := exec.Command("mount", "-o", "remount,size=2m", dir).CombinedOutput(); err != nil {
					t.Fatalf("grow tmpfs: %v: %s", err, out)
				}
			}
		}},
		{"injected", func(t *testing.T) (func(*Config), func()) {
			var full atomic.Bool
			full.Store(true)
			opt := func(c *Config) {
				c.hooks.writePart = func(off int64) error {
					if full.Load() && off >= 100<<10 {
						return &os.PathError{Op: "write", Path: "payload.bin.part", Err: syscall.ENOSPC}
					}
					return nil
				}
			}
			return opt, func() { full.Store(false) }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt, makeRoom := tt.setup(t)
			a, b := newNode(t), newNode(t, opt)
			testnet.Connect(t, a.h, b.h)
			id, _, data := startTransfer(t, a, b, chunks)
			w := b.rec.wait(t, "waiting file_progress on the recipient", func(e events.Event) bool {
				p, ok := e.(events.FileProgress)
				return ok && p.TransferID == id && p.Waiting
			}).(events.FileProgress)
			if w.Code != events.WaitNoSpace || !strings.Contains(w.Reason, "no space left") || w.Rate != 0 {
				t.Fatalf("waiting progress = %+v, want code %q and the reason", w, events.WaitNoSpace)
			}
			if _, failed := find[events.FileFailed](b.rec, id); failed {
				t.Fatal("a full disk failed the transfer; it should wait")
			}
			if in := b.info(id); in.State != StateWaiting || !strings.Contains(in.Error, "no space left") {
				t.Fatalf("recipient's /transfers entry = %+v", in)
			}
			makeRoom()
			if err := b.svc.Resume(id); err != nil {
				t.Fatalf("resume: %v", err)
			}
			done := waitFor[events.FileDone](t, b.rec, id)
			got, err := os.ReadFile(done.Path)
			if err != nil || string(got) != string(data) {
				t.Fatalf("received file: %d bytes, %v", len(got), err)
			}
		})
	}
}

// smallTmpfs mounts a tmpfs of size under a test dir, unmounted at
// cleanup. It skips the test when not root or when mount fails.
func smallTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root; the injected case covers the same path")
	}
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%s,mode=0700", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s); the injected case covers the same path", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}
