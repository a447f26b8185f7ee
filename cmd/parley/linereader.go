package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// longLineEcho is how much of a discarded line is kept to show it back.
const longLineEcho = 256

// lineTooLongError reports a line that was read and discarded because it
// was longer than the limit. The reader goes on with the next line.
type lineTooLongError struct {
	size   int64  // bytes in the line, without its line ending
	max    int    // the limit
	prefix string // the line's first bytes, to show it back
}

func (e *lineTooLongError) Error() string {
	return fmt.Sprintf("line of %d bytes is too long and was discarded; a line may have at most %d bytes", e.size, e.max)
}

// lineReader reads lines like bufio.Scanner with ScanLines ("\n" or
// "\r\n" endings, a last line without one), but survives an over-long
// line: it reads it to its end keeping only the first max bytes in memory,
// and returns a *lineTooLongError for it. The next call reads the next
// line.
type lineReader struct {
	r   *bufio.Reader
	max int
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 4096), max: max}
}

// next returns the next line without its line ending, a *lineTooLongError
// for a line longer than the limit, io.EOF at the end of the input, or the
// error of the underlying reader.
func (l *lineReader) next() (string, error) {
	var (
		kept []byte // the line's first bytes, up to max+1 of them
		size int64  // the bytes read for this line, line ending included
		prev byte   // the last byte read before the current chunk
	)
	for {
		chunk, err := l.r.ReadSlice('\n')
		if room := l.max + 1 - len(kept); room > 0 {
			kept = append(kept, chunk[:min(room, len(chunk))]...)
		}
		before := prev
		if len(chunk) > 0 {
			size += int64(len(chunk))
			prev = chunk[len(chunk)-1]
		}
		switch {
		case err == nil: // the chunk ends with '\n'
			if len(chunk) > 1 {
				before = chunk[len(chunk)-2]
			}
			if before == '\r' {
				return l.line(kept, size-2)
			}
			return l.line(kept, size-1)
		case errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			if size == 0 {
				return "", io.EOF
			}
			if prev == '\r' {
				return l.line(kept, size-1)
			}
			return l.line(kept, size)
		default:
			return "", err
		}
	}
}

// line turns the kept bytes of a line of size bytes (without its ending)
// into the result of next.
func (l *lineReader) line(kept []byte, size int64) (string, error) {
	if size > int64(l.max) {
		return "", &lineTooLongError{size: size, max: l.max, prefix: string(kept[:min(len(kept), longLineEcho)])}
	}
	return string(kept[:size]), nil
}
