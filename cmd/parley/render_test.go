package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/safetext"
	"github.com/parley-chat/parley/present"
)

// allEvents has one value of every event type; TestAllEventsListed keeps
// it complete.
var allEvents = []events.Event{
	events.Ready{}, events.PeerConnected{}, events.PeerDisconnected{}, events.Error{}, events.Info{},
	events.DM{}, events.DMStatus{}, events.MailboxPickup{}, events.TrustWarning{}, events.Reachability{}, events.PeerPath{}, events.PeerDialFailed{},
	events.Message{}, events.Joined{}, events.Left{}, events.Presence{}, events.Membership{}, events.RoomSync{},
	events.FileOffer{}, events.FileHashing{}, events.FileProgress{}, events.FileDone{}, events.FileFailed{}, events.FileRejected{},
}

func TestAllEventsListed(t *testing.T) {
	files, err := filepath.Glob("../../events/*.go")
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		{
			for _, d := range f.Decls {
				fn, ok := d.(*ast.FuncDecl)
				if !ok || fn.Name.Name != "Type" || fn.Recv == nil || len(fn.Recv.List) != 1 {
					continue
				}
				if id, ok := fn.Recv.List[0].Type.(*ast.Ident); ok && ast.IsExported(id.Name) {
					declared = append(declared, id.Name)
				}
			}
		}
	}
	var listed []string
	for _, e := range allEvents {
		listed = append(listed, reflect.TypeOf(e).Name())
	}
	slices.Sort(declared)
	slices.Sort(listed)
	if !slices.Equal(declared, listed) {
		t.Fatalf("events declared %v, listed in allEvents %v: add the new ones", declared, listed)
	}
}

// fill returns e with every string-kinded field (and slice of them;
// peer.ID is one) set to s.
func fill(e events.Event, s string) events.Event {
	v := reflect.New(reflect.TypeOf(e)).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch {
		case f.Kind() == reflect.String:
			f.SetString(s)
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
			sl := reflect.MakeSlice(f.Type(), 2, 2)
			sl.Index(0).SetString(s)
			sl.Index(1).SetString(s)
			f.Set(sl)
		case f.Type() == reflect.TypeOf(time.Time{}):
			f.Set(reflect.ValueOf(time.Unix(1700000000, 0)))
		}
	}
	return v.Interface().(events.Event)
}

// TestEscapesInEveryRenderedField puts terminal escapes in every string
// field of every event and renders it for people: the line renderer shows
// no control or bidi character and adds no line break. (Info texts are the
// node's own and may hold line breaks; the node escapes what peers put in
// them, see adversarial.TestEscapesInEveryDisplayedField.)
func TestEscapesInEveryRenderedField(t *testing.T) {
	const evil = "\x1b[2J\x1b]0;pwned\x07\u202egpj.exe\u009b31m\u2028\u2029\rX\x7f"
	for _, e := range allEvents {
		plain := present.Event(fill(e, "x"), nil)
		got := present.Event(fill(e, evil), nil)
		if !safetext.IsClean(strings.ReplaceAll(got, "\n", "")) {
			t.Errorf("%s renders control characters: %q", e.Type(), got)
		}
		if strings.Count(got, "\n") != strings.Count(plain, "\n") {
			t.Errorf("%s: escapes changed the number of lines: %q", e.Type(), got)
		}
	}
	// A multi-line room message keeps its lines, indented, so that none
	// passes for a message of its own.
	m := events.Message{Room: "lobby", Nick: "mallory", Text: "hi\n[12:00] #lobby <alice> fake", SentAt: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	lines := strings.Split(present.Event(m, nil), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], " ") {
		t.Fatalf("multi-line message rendered as %q", lines)
	}
}

// TestLineModeCompact: line mode shows a private message queued and
// delivered, not the "sent" step between (a reason to wait is shown in
// any state); on a terminal progress lines replace each other and the
// next line starts below the last; elsewhere each is a line of its own.
func TestLineModeCompact(t *testing.T) {
	var b strings.Builder
	r := newRenderer(&b, false, nil)
	for _, e := range []events.Event{
		events.DMStatus{ID: "m1", State: events.DMQueued},
		events.DMStatus{ID: "m1", State: events.DMSent},
		events.DMStatus{ID: "m1", State: events.DMSent, Reason: events.DMWaitInterrupted, Detail: "broke"},
		events.DMStatus{ID: "m1", State: events.DMDelivered},
	} {
		if err := r.write(e); err != nil {
			t.Fatal(err)
		}
	}
	got := b.String()
	if strings.Count(got, "\n") != 3 || strings.Contains(got, ": sent)") || !strings.Contains(got, ": delivered)") {
		t.Errorf("DM states rendered as:\n%s", got)
	}

	progress := []events.Event{
		events.FileProgress{TransferID: "t1", Direction: "send", Bytes: 0, Size: 10},
		events.FileProgress{TransferID: "t1", Direction: "send", Bytes: 10, Size: 10},
		events.FileDone{TransferID: "t1", Path: "f", Size: 10},
	}
	for _, tc := range []struct {
		inPlace bool
		want    string
	}{
		{false, "  t1 send [--------------------]   0% 0 B/10 B\n  t1 send [####################] 100% 10 B/10 B\n* file t1 done"},
		{true, "\r\x1b[K  t1 send [--------------------]   0% 0 B/10 B\r\x1b[K  t1 send [####################] 100% 10 B/10 B\n* file t1 done"},
	} {
		b.Reset()
		r := newRenderer(&b, false, nil)
		r.inPlace = tc.inPlace
		for _, e := range progress {
			if err := r.write(e); err != nil {
				t.Fatal(err)
			}
		}
		if !strings.HasPrefix(b.String(), tc.want) || !strings.HasSuffix(b.String(), "\n") {
			t.Errorf("in place %v: %q, want it to start with %q", tc.inPlace, b.String(), tc.want)
		}
	}
	// A progress line left open is ended when the output ends.
	b.Reset()
	r = newRenderer(&b, false, nil)
	r.inPlace = true
	q := events.NewQueue(4)
	q.Emit(progress[0])
	q.Close()
	if err := r.drain(q); err != nil || !strings.HasSuffix(b.String(), "\n") {
		t.Errorf("drain left %q, %v", b.String(), err)
	}
}
