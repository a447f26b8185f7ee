package rooms

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p-pubsub"
	"github.com/parley-chat/parley/rooms/pb"
	"google.golang.org/protobuf/proto"
)

func validWire() *pb.Envelope {
	return &pb.Envelope{
		Kind:     pb.Kind_KIND_TEXT,
		Id:       make([]byte, idSize),
		Nick:     "alice",
		SentAtMs: time.Now().UnixMilli(),
		Text:     "hello",
	}
}

func TestDecodeEnvelope(t *testing.T) {
	tests := []struct {
		name   string
		mut    func(*pb.Envelope)
		result pubsub.ValidationResult
		reason string
	}{
		{"text", func(*pb.Envelope) {}, pubsub.ValidationAccept, reasonOK},
		{"presence", func(e *pb.Envelope) { e.Kind, e.Text = pb.Kind_KIND_PRESENCE, "" }, pubsub.ValidationAccept, reasonOK},
		{"leaving", func(e *pb.Envelope) {
			e.Kind, e.Text, e.Presence = pb.Kind_KIND_PRESENCE, "", &pb.Presence{Leaving: true}
		}, pubsub.ValidationAccept, reasonOK},
		{"file", func(e *pb.Envelope) {
			e.Kind, e.Text = pb.Kind_KIND_FILE_SHARE, ""
			e.FileShare = &pb.FileShare{Id: "f1", Name: "a.txt", Size: 3, Hash: "sha256:abc"}
		}, pubsub.ValidationAccept, reasonOK},
		{"max text", func(e *pb.Envelope) { e.Text = strings.Repeat("é", MaxTextLen) }, pubsub.ValidationAccept, reasonOK},
		{"unspecified kind", func(e *pb.Envelope) { e.Kind = pb.Kind_KIND_UNSPECIFIED }, pubsub.ValidationReject, reasonKind},
		{"future kind", func(e *pb.Envelope) { e.Kind = 99 }, pubsub.ValidationIgnore, reasonUnknownKind},
		{"short id", func(e *pb.Envelope) { e.Id = e.Id[:8] }, pubsub.ValidationReject, reasonID},
		{"no id", func(e *pb.Envelope) { e.Id = nil }, pubsub.ValidationReject, reasonID},
		{"no nick", func(e *pb.Envelope) { e.Nick = "" }, pubsub.ValidationReject, reasonNick},
		{"nick escape", func(e *pb.Envelope) { e.Nick = "ev\x1b[2Jil" }, pubsub.ValidationReject, reasonNick},
		{"nick bidi", func(e *pb.Envelope) { e.Nick = "bob\u202eecila" }, pubsub.ValidationReject, reasonNick},
		{"nick newline", func(e *pb.Envelope) { e.Nick = "a\nb" }, pubsub.ValidationReject, reasonNick},
		{"nick too long", func(e *pb.Envelope) { e.Nick = strings.Repeat("n", 33) }, pubsub.ValidationReject, reasonNick},
		{"empty text", func(e *pb.Envelope) { e.Text = "" }, pubsub.ValidationReject, reasonText},
		{"text too long", func(e *pb.Envelope) { e.Text = strings.Repeat("x", MaxTextLen+1) }, pubsub.ValidationReject, reasonText},
		{"presence with text", func(e *pb.Envelope) { e.Kind = pb.Kind_KIND_PRESENCE }, pubsub.ValidationReject, reasonKind},
		{"text with file", func(e *pb.Envelope) { e.FileShare = &pb.FileShare{} }, pubsub.ValidationReject, reasonKind},
		{"file missing", func(e *pb.Envelope) { e.Kind, e.Text = pb.Kind_KIND_FILE_SHARE, "" }, pubsub.ValidationReject, reasonFile},
		{"file path", func(e *pb.Envelope) {
			e.Kind, e.Text = pb.Kind_KIND_FILE_SHARE, ""
			e.FileShare = &pb.FileShare{Id: "f1", Name: "../etc/passwd", Hash: "h"}
		}, pubsub.ValidationReject, reasonFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := validWire()
			tt.mut(w)
			b, err := proto.Marshal(w)
			if err != nil {
				t.Fatal(err)
			}
			_, v := decodeEnvelope(b)
			if v.result != tt.result || v.reason != tt.reason {
				t.Fatalf("got %v %s, want %v %s", v.result, v.reason, tt.result, tt.reason)
			}
		})
	}
}

func TestDecodeEnvelopeBytes(t *testing.T) {
	good, _ := proto.Marshal(validWire())
	badUTF8 := validWire()
	badUTF8.Text = "ok"
	b, _ := proto.Marshal(badUTF8)
	i := strings.Index(string(b), "ok")
	b[i] = 0xff // proto3 strings must be UTF-8
	tests := map[string]struct {
		data   []byte
		reason string
	}{
		"garbage":      {[]byte{0xff, 0xff, 0xff}, reasonUndecodable},
		"truncated":    {good[:len(good)-2], reasonUndecodable},
		"invalid utf8": {b, reasonUndecodable},
		"oversize":     {make([]byte, MaxMessageSize+1), reasonOversize},
		"empty":        {nil, reasonKind},
	}
	for name, tt := range tests {
		if _, v := decodeEnvelope(tt.data); v.result != pubsub.ValidationReject || v.reason != tt.reason {
			t.Errorf("%s: got %v %s, want reject %s", name, v.result, v.reason, tt.reason)
		}
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, kind := range []pb.Kind{pb.Kind_KIND_TEXT, pb.Kind_KIND_PRESENCE, pb.Kind_KIND_FILE_SHARE} {
		e, err := newEnvelope(kind, "bob", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		switch kind {
		case pb.Kind_KIND_TEXT:
			e.text = "hi\nthere"
		case pb.Kind_KIND_PRESENCE:
			e.leaving = true
			e.record = []byte{1, 2, 3} // unverified here: validate checks it against the author
		case pb.Kind_KIND_FILE_SHARE:
			e.file = FileShare{ID: "abc", Name: "photo.jpg", Size: 1 << 20, Hash: "sha256:00"}
		}
		b, err := e.marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, v := decodeEnvelope(b)
		if v.result != pubsub.ValidationAccept || !reflect.DeepEqual(got, e) {
			t.Fatalf("%v: round trip %+v -> %+v (%s)", kind, e, got, v.reason)
		}
	}
}

func TestFileShareValidate(t *testing.T) {
	good := FileShare{ID: "a-B_9", Name: "notes (1).txt", Size: 0, Hash: "sha256:ab"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []FileShare{
		{ID: "", Name: "a", Hash: "h"},
		{ID: "a b", Name: "a", Hash: "h"},
		{ID: strings.Repeat("a", 65), Name: "a", Hash: "h"},
		{ID: "a", Name: "", Hash: "h"},
		{ID: "a", Name: "..", Hash: "h"},
		{ID: "a", Name: `a\b`, Hash: "h"},
		{ID: "a", Name: "a\x1b]0;x\x07", Hash: "h"},
		{ID: "a", Name: "evil\u202etxt.exe", Hash: "h"},
		{ID: "a", Name: strings.Repeat("n", 256), Hash: "h"},
		{ID: "a", Name: "a", Hash: ""},
		{ID: "a", Name: "a", Hash: "has space"},
	}
	for _, f := range bad {
		if f.Validate() == nil {
			t.Errorf("accepted %+v", f)
		}
	}
}

// FuzzDecodeEnvelope feeds arbitrary bytes to the envelope decoder and
// checks that whatever it accepts obeys every rule.
func FuzzDecodeEnvelope(f *testing.F) {
	good, _ := proto.Marshal(validWire())
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0x08, 0x02, 0x12, 0x10})
	file := validWire()
	file.Kind, file.Text = pb.Kind_KIND_FILE_SHARE, ""
	file.FileShare = &pb.FileShare{Id: "x", Name: "y", Hash: "z"}
	fb, _ := proto.Marshal(file)
	f.Add(fb)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, v := decodeEnvelope(data)
		if v.result != pubsub.ValidationAccept {
			return
		}
		checkAccepted(t, e)
	})
}

func checkAccepted(t *testing.T, e envelope) {
	t.Helper()
	if e.nick == "" || len(e.nick) > 4*32 {
		t.Fatalf("accepted nick %q", e.nick)
	}
	switch e.kind {
	case pb.Kind_KIND_TEXT:
		if checkText(e.text) != nil {
			t.Fatalf("accepted text %q", e.text)
		}
	case pb.Kind_KIND_FILE_SHARE:
		if e.file.Validate() != nil {
			t.Fatalf("accepted file %+v", e.file)
		}
	case pb.Kind_KIND_PRESENCE:
	default:
		t.Fatalf("accepted kind %v", e.kind)
	}
}
