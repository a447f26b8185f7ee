package overlay

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/libp2p/go-libp2p/core/pnet"
)

// Swarm keys (libp2p private networks, "pnet").
//
// A swarm key is a 32-byte pre-shared key. A host configured with one
// (Config.SwarmKey) encrypts every connection with XSalsa20 under it before
// the security handshake, so a peer without the key cannot even complete
// the handshake, and an observer cannot see the multistream negotiation.
// It adds no integrity of its own: Noise or TLS, inside it, still
// authenticate the peer and protect the data.
//
// The file format is the one go-libp2p and kubo use (and that
// ipfs-swarm-key-gen writes), so a key can be shared with those tools:
//
//	/key/swarm/psk/1.0.0/
//	/base16/
//	<64 hexadecimal digits>
//
// The second line may also be /base64/ (44 characters of standard base64)
// or /bin/ (32 raw bytes). Lines end in "\n" or "\r\n"; after the key only
// a final line ending may follow.
const (
	// SwarmKeySize is the size of a swarm key.
	SwarmKeySize = 32
	// swarmKeyHeader is the first line of a swarm key file.
	swarmKeyHeader = "/key/swarm/psk/1.0.0/"
	// maxSwarmKeyFile bounds what ReadSwarmKey reads.
	maxSwarmKeyFile = 256
)

// ErrBadSwarmKey is returned for a swarm key file that does not hold a key
// in the format above.
var ErrBadSwarmKey = errors.New("bad swarm key file")

// NewSwarmKey returns a fresh random swarm key in the file format above
// (base16).
func NewSwarmKey() ([]byte, error) {
	key := make([]byte, SwarmKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate swarm key: %w", err)
	}
	return []byte(swarmKeyHeader + "\n/base16/\n" + hex.EncodeToString(key) + "\n"), nil
}

// WriteSwarmKey writes a new random swarm key to path with mode 0600. It
// never replaces an existing file (fs.ErrExist).
func WriteSwarmKey(path string) error {
	data, err := NewSwarmKey()
	if err != nil {
		return err
	}
	// #nosec G304 -- path is the file the user asked to create.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create swarm key file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("write swarm key file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("fsync swarm key file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("close swarm key file %s: %w", path, err)
	}
	return nil
}

// ReadSwarmKey reads a swarm key file. Like the identity key, a swarm key
// file that group or others may read is refused (except on Windows).
func ReadSwarmKey(path string) (pnet.PSK, error) {
	// #nosec G304 -- path is the swarm key file the user named.
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open swarm key: %w", err)
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat swarm key %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrBadSwarmKey, path)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o, which lets others read the key; run: chmod 600 %s",
			ErrBadSwarmKey, path, st.Mode().Perm(), path)
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxSwarmKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read swarm key %s: %w", path, err)
	}
	psk, err := DecodeSwarmKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return psk, nil
}

// DecodeSwarmKey parses the content of a swarm key file strictly.
func DecodeSwarmKey(raw []byte) (pnet.PSK, error) {
	if len(raw) > maxSwarmKeyFile {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadSwarmKey, maxSwarmKeyFile)
	}
	header, rest, ok := cutLine(raw)
	if !ok || string(header) != swarmKeyHeader {
		return nil, fmt.Errorf("%w: the first line must be %s (make one with: parley keygen --swarm-key FILE)", ErrBadSwarmKey, swarmKeyHeader)
	}
	enc, body, ok := cutLine(rest)
	if !ok {
		return nil, fmt.Errorf("%w: no encoding line", ErrBadSwarmKey)
	}
	var key []byte
	var err error
	switch string(enc) {
	case "/base16/":
		key, err = hex.DecodeString(string(trimFinalEOL(body)))
	case "/base64/":
		key, err = base64.StdEncoding.Strict().DecodeString(string(trimFinalEOL(body)))
	case "/bin/":
		key = body
		if len(body) > SwarmKeySize {
			key = trimFinalEOL(body)
		}
	default:
		return nil, fmt.Errorf("%w: unknown encoding %q; use /base16/", ErrBadSwarmKey, truncateForError(enc))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: key does not decode: %v", ErrBadSwarmKey, err)
	}
	if len(key) != SwarmKeySize {
		return nil, fmt.Errorf("%w: key is %d bytes, want %d", ErrBadSwarmKey, len(key), SwarmKeySize)
	}
	if bytes.Equal(key, make([]byte, SwarmKeySize)) {
		return nil, fmt.Errorf("%w: key is all zeros", ErrBadSwarmKey)
	}
	return pnet.PSK(bytes.Clone(key)), nil
}

// cutLine splits b after its first line ending ("\n" or "\r\n").
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, nil, false
	}
	return bytes.TrimSuffix(b[:i], []byte("\r")), b[i+1:], true
}

// trimFinalEOL removes one final "\n" or "\r\n".
func trimFinalEOL(b []byte) []byte {
	if b, ok := bytes.CutSuffix(b, []byte("\n")); ok {
		return bytes.TrimSuffix(b, []byte("\r"))
	}
	return b
}

func truncateForError(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	if len(s) > 32 {
		s = s[:32]
	}
	return s
}
