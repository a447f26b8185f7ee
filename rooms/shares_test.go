package rooms

import (
	"testing"
)

// A member that was away while files were shared in a public and in a
// private room gets each share (FileShared) once on its return, from the
// sync's shares set: GossipSub does not send the announcement again.
func TestSharesCaughtUpAfterBeingAway(t *testing.T) {
	for _, tc := range []struct {
		name    string
		private bool
	}{{"public", false}, {"private", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			a, b, away := newNode(t, "ann", nil), newNode(t, "bo", nil), newNode(t, "dee", nil)
			ns := []*tnode{a, b, away}
			connect(t, ns...)
			room := "team"
			invite := mustInvite(t, room)
			for _, n := range ns {
				var err error
				if tc.private {
					_, err = n.svc.JoinInvite(ctx, invite)
				} else {
					err = n.svc.Join(ctx, room)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			waitTopicPeers(t, room, ns...)
			away.stop()
			shares := []FileShare{
				{ID: "file-1", Name: "one.txt", Size: 3, Hash: "blake3:aa"},
				{ID: "file-2", Name: "two.txt", Size: 5, Hash: "blake3:bb"},
			}
			for _, sh := range shares {
				if err := a.svc.ShareFile(ctx, room, sh); err != nil {
					t.Fatal(err)
				}
			}
			b.shares.waitCount(t, "shares live at bo", len(shares), func(FileShare) bool { return true })
			away.resume()
			connect(t, ns...)
			away.shares.waitCount(t, "shares caught up", len(shares), func(FileShare) bool { return true })
			for _, sh := range shares {
				if n := away.shares.count(func(got FileShare) bool { return got == sh }); n != 1 {
					t.Errorf("share %s shown %d times after the return, want once", sh.ID, n)
				}
			}
		})
	}
}
