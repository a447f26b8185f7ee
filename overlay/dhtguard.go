package overlay

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// MaxDHTRequest bounds a request a DHT server reads (the length its
// length prefix claims). go-libp2p-kad-dht reads messages of up to 4 MiB
// and allocates the size a length prefix claims before the bytes arrive,
// keeping it while it waits up to a minute for them: four bytes per
// stream made a serve node hold 4 MiB, about 270 MiB for one peer's
// streams (adversarial.TestDHTLengthPrefixHoldsNoMemory). Requests to a
// server (FIND_NODE, GET_PROVIDERS, ADD_PROVIDER with one peer's
// addresses; on the public DHT also PUT_VALUE of records of at most
// 10 KiB) are a few KiB.
const MaxDHTRequest = 64 << 10

// errDHTRequestTooLarge ends a DHT stream whose length prefix claims more
// than MaxDHTRequest.
var errDHTRequestTooLarge = errors.New("DHT request too large")

// dhtGuard is the host handed to the DHT: the stream handlers the DHT
// registers read through frameLimit, which resets a stream as soon as a
// length prefix claims more than MaxDHTRequest, before the DHT sees it.
type dhtGuard struct{ host.Host }

func (g dhtGuard) SetStreamHandler(pid protocol.ID, h network.StreamHandler) {
	g.Host.SetStreamHandler(pid, guardStreams(h))
}

func (g dhtGuard) SetStreamHandlerMatch(pid protocol.ID, m func(protocol.ID) bool, h network.StreamHandler) {
	g.Host.SetStreamHandlerMatch(pid, m, guardStreams(h))
}

func guardStreams(h network.StreamHandler) network.StreamHandler {
	return func(s network.Stream) { h(&frameLimit{Stream: s, max: MaxDHTRequest}) }
}

// frameLimit watches the unsigned-varint length prefixes of the frames
// read from a stream (the bytes pass unchanged) and resets the stream when
// one claims more than max bytes or is not a valid varint.
type frameLimit struct {
	network.Stream
	max uint64

	body   uint64 // bytes of the current frame still to come
	length uint64 // the length prefix read so far
	shift  uint   // bits of the length prefix read so far
	err    error
}

func (f *frameLimit) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.Stream.Read(p)
	if cerr := f.check(p[:n]); cerr != nil {
		f.err = cerr
		_ = f.Stream.Reset()
		return 0, cerr
	}
	return n, err
}

// check follows the frames in b, the next bytes of the stream.
func (f *frameLimit) check(b []byte) error {
	for len(b) > 0 {
		if f.body > 0 {
			k := min(f.body, uint64(len(b)))
			f.body -= k
			b = b[k:]
			continue
		}
		c := b[0]
		b = b[1:]
		if f.shift > 63 {
			return fmt.Errorf("%w: length prefix longer than 10 bytes", errDHTRequestTooLarge)
		}
		f.length |= uint64(c&0x7f) << f.shift
		f.shift += 7
		if f.length > f.max {
			return fmt.Errorf("%w: over %d bytes", errDHTRequestTooLarge, f.max)
		}
		if c < 0x80 {
			f.body, f.length, f.shift = f.length, 0, 0
		}
	}
	return nil
}
