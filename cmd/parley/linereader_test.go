package main

import (
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	slash "github.com/parley-chat/parley/command"
)

// readAll reads every line of in with a lineReader of limit max; a
// discarded line appears as "<long N>" with its size.
func readAll(t *testing.T, r io.Reader, max int) []string {
	t.Helper()
	lr := newLineReader(r, max)
	var got []string
	for {
		line, err := lr.next()
		var long *lineTooLongError
		switch {
		case errors.Is(err, io.EOF):
			return got
		case errors.As(err, &long):
			if long.max != max {
				t.Fatalf("error names the limit %d, want %d", long.max, max)
			}
			got = append(got, "<long "+strconv.FormatInt(long.size, 10)+">")
		case err != nil:
			t.Fatalf("next: %v", err)
		default:
			got = append(got, line)
		}
	}
}

func TestLineReader(t *testing.T) {
	const max = 10
	x := func(n int) string { return strings.Repeat("x", n) }
	cases := []struct {
		name string
		in   string
		want []string
	}{
		{"empty input", "", nil},
		{"lines", "a\nbb\n\nccc\n", []string{"a", "bb", "", "ccc"}},
		{"crlf", "a\r\nb\r\n\r\n", []string{"a", "b", ""}},
		{"last line without newline", "a\nb", []string{"a", "b"}},
		{"last line with a lone cr", "a\nb\r", []string{"a", "b"}},
		{"cr inside a line", "a\rb\n", []string{"a\rb"}},
		{"exactly the limit", x(max) + "\n", []string{x(max)}},
		{"exactly the limit, crlf", x(max) + "\r\n", []string{x(max)}},
		{"exactly the limit at eof", x(max), []string{x(max)}},
		{"one byte over", x(max+1) + "\nnext\n", []string{"<long 11>", "next"}},
		{"one byte over, crlf", x(max+1) + "\r\nnext\n", []string{"<long 11>", "next"}},
		{"one byte over at eof", "a\n" + x(max+1), []string{"a", "<long 11>"}},
		{"far over, then more lines", x(100000) + "\n/id\n" + x(max+5) + "\nlast", []string{"<long 100000>", "/id", "<long 15>", "last"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := readAll(t, strings.NewReader(tc.in), max)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Fatalf("lines %q, want %q", got, tc.want)
			}
			// The same byte by byte: chunk boundaries anywhere.
			got = readAll(t, iotest.OneByteReader(strings.NewReader(tc.in)), max)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Fatalf("byte by byte: lines %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLineReaderKeepsThePrefixOfALongLine(t *testing.T) {
	in := "/joinpass room " + strings.Repeat("s", 1000) + "\n"
	_, err := newLineReader(strings.NewReader(in), 100).next()
	var long *lineTooLongError
	if !errors.As(err, &long) {
		t.Fatalf("err %v, want a lineTooLongError", err)
	}
	if long.size != int64(len(in)-1) || long.prefix != in[:101] { // the kept max+1 bytes
		t.Fatalf("size %d prefix %q", long.size, long.prefix)
	}
	msg := long.Error()
	if !strings.Contains(msg, "too long") || !strings.Contains(msg, "at most 100 bytes") {
		t.Fatalf("message %q does not say the line is too long and the limit", msg)
	}
	if echo := slash.EchoPrefix(long.prefix); echo != "/joinpass …" {
		t.Fatalf("echo %q shows more than the command name", echo)
	}
	if echo := slash.EchoPrefix(strings.Repeat("é", 200)); len(echo) > 200+len("…") || !strings.HasSuffix(echo, "é…") {
		t.Fatalf("echo of text %q: not cut at 200 bytes on a character boundary", echo)
	}
	if echo := slash.EchoPrefix("hello\x1b[2J"); strings.Contains(echo, "\x1b") {
		t.Fatalf("echo %q keeps a control character", echo)
	}
}

// endless is a reader of one line of n bytes (no newline) that allocates
// nothing.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	for i := range p {
		p[i] = 'x'
	}
	e.n -= int64(len(p))
	return len(p), nil
}

func TestLineReaderDoesNotBufferALongLine(t *testing.T) {
	const size = 64 << 20
	lr := newLineReader(io.MultiReader(&endless{n: size}, strings.NewReader("\nafter\n")), slash.MaxLine)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := lr.next()
	runtime.ReadMemStats(&after)
	var long *lineTooLongError
	if !errors.As(err, &long) || long.size != size {
		t.Fatalf("err %v, want a lineTooLongError of %d bytes", err, size)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
		t.Fatalf("reading a %d-byte line allocated %d bytes; it should keep at most about %d", size, grew, slash.MaxLine)
	}
	if line, err := lr.next(); err != nil || line != "after" {
		t.Fatalf("next line %q, %v; want \"after\"", line, err)
	}
}
