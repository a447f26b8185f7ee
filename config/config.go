// Package config owns Parley's settings file: config.toml in the data
// directory, and the default data directory. The command line (the
// settings table in cmd/parley/settings.go) binds each key to its flag
// and PARLEY_* variable, reads keys through File.Value and applies the
// precedence flags > environment (PARLEY_*) > config.toml > defaults.
//
// The file is decoded strictly: an unknown key or a value of the wrong type
// is an error naming the file, the line and the key, never ignored.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/parley-chat/parley/identity"
)

// FileName is the config file inside the data directory.
const FileName = "config.toml"

// maxFileSize bounds what Load reads.
const maxFileSize = 1 << 20

// File is the content of config.toml. Every key is optional; flags and
// environment variables override it.
type File struct {
	Nick      string   `toml:"nick"`
	Listen    []string `toml:"listen"`
	Peers     []string `toml:"peers"`
	DenyPeers []string `toml:"deny_peers"`
	DenyCIDRs []string `toml:"deny_cidrs"`
	UPnP      *bool    `toml:"upnp"`
	MDNS      *bool    `toml:"mdns"`
	ConnLow   int      `toml:"conn_low"`
	ConnHigh  int      `toml:"conn_high"`
	LogLevel  string   `toml:"log_level"`
	Rooms     []string `toml:"rooms"`
	Bootstrap []string `toml:"bootstrap"`
	Relays    []string `toml:"relays"`
	PublicDHT *bool    `toml:"public_dht"`
	// RelayService: false stops relaying for room members and trusted
	// peers (docs/OVERLAY.md).
	RelayService *bool `toml:"relay_service"`
	// SwarmKey is the swarm key file of a private network; a relative
	// path is relative to the data directory.
	SwarmKey string `toml:"swarm_key"`
	// AllowPeers, when not empty, lets only these peer IDs connect.
	AllowPeers []string `toml:"allow_peers"`
	// Downloads is where received files land.
	Downloads string `toml:"downloads"`
	// MaxFileSize refuses bigger offers (bytes; 0: the default).
	MaxFileSize int64 `toml:"max_file_size"`
	// AutoAcceptFrom lists peer IDs (or "trusted") whose offers are
	// accepted without asking, up to AutoAcceptMaxSize bytes.
	AutoAcceptFrom    []string `toml:"auto_accept_from"`
	AutoAcceptMaxSize int64    `toml:"auto_accept_max_size"`
	// HoldMailboxes keeps sealed direct messages for offline peers
	// (chat: off by default; serve: on).
	HoldMailboxes *bool `toml:"hold_mailboxes"`
	// MailboxExpiryDays is how long a held sealed message is kept at
	// most (0: the default, 14).
	MailboxExpiryDays int `toml:"mailbox_expiry_days"`
	// EpochKeyGraceDays is how long a private room's old epoch key is kept
	// after the next epoch started (0: the default, 7).
	EpochKeyGraceDays int `toml:"epoch_key_grace_days"`
}

// Keys returns the keys config.toml may set, in File's order.
func Keys() []string {
	t := reflect.TypeFor[File]()
	keys := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		keys = append(keys, t.Field(i).Tag.Get("toml"))
	}
	return keys
}

// Value returns what the file sets key to, as text a command-line flag
// would take: one string per list element, "true" or "false" for a bool,
// the number in base 10 for an int. ok is false when the file leaves key
// unset: absent, or an empty string, empty list or zero number (which
// mean the default, as they always have), or when Keys does not list key.
func (f File) Value(key string) (vals []string, ok bool) {
	v := reflect.ValueOf(f)
	t := v.Type()
	for i := range t.NumField() {
		if t.Field(i).Tag.Get("toml") == key {
			return fieldText(v.Field(i))
		}
	}
	return nil, false
}

// fieldText renders one field of File for Value.
func fieldText(v reflect.Value) ([]string, bool) {
	switch v.Kind() {
	case reflect.String:
		return []string{v.String()}, v.String() != ""
	case reflect.Int, reflect.Int64:
		return []string{strconv.FormatInt(v.Int(), 10)}, v.Int() != 0
	case reflect.Pointer: // *bool: nil is unset
		if v.IsNil() {
			return nil, false
		}
		return []string{strconv.FormatBool(v.Elem().Bool())}, true
	case reflect.Slice: // []string
		out := make([]string, v.Len())
		for i := range out {
			out[i] = v.Index(i).String()
		}
		return out, len(out) > 0
	default: // File has no other kinds (TestValue covers every key)
		return nil, false
	}
}

// DefaultDataDir returns $XDG_DATA_HOME/parley, else ~/.local/share/parley.
// PARLEY_DATA_DIR and --data-dir override it (the command line applies
// those).
func DefaultDataDir() (string, error) {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "parley"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no home directory for the default data dir (%w); pass --data-dir or set PARLEY_DATA_DIR", err)
	}
	return filepath.Join(home, ".local", "share", "parley"), nil
}

// Load reads dir/config.toml. A missing file is an empty File.
func Load(dir string) (File, error) {
	path := filepath.Join(dir, FileName)
	raw, err := os.ReadFile(path) // #nosec G304 -- config.toml in the user's data dir
	if errors.Is(err, fs.ErrNotExist) {
		return File{}, nil
	}
	if err != nil {
		return File{}, fmt.Errorf("read config %s: %w", path, err)
	}
	return Parse(path, raw)
}

// Parse decodes config file content; name is used in errors.
func Parse(name string, raw []byte) (File, error) {
	var f File
	if len(raw) > maxFileSize {
		return f, fmt.Errorf("config %s: %d bytes is too large (max %d)", name, len(raw), maxFileSize)
	}
	md, err := toml.Decode(string(raw), &f)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return File{}, fmt.Errorf("config %s: line %d: %s; fix or remove that line", name, perr.Position.Line, oneLine(perr.Message))
		}
		return File{}, fmt.Errorf("config %s: %s", name, oneLine(err.Error()))
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return File{}, fmt.Errorf("config %s: unknown key %s; see docs/CONFIG.md for the keys", name, strings.Join(keys, ", "))
	}
	if f.Nick != "" {
		if err := identity.ValidateNick(f.Nick); err != nil {
			return File{}, fmt.Errorf("config %s: nick: %w", name, err)
		}
	}
	return f, nil
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

var nickLine = regexp.MustCompile(`^\s*nick\s*=`)

// SaveNick sets the nick key in dir/config.toml, keeping every other line
// (comments included) as it was. The file is replaced atomically.
func SaveNick(dir, nick string) error {
	if err := identity.ValidateNick(nick); err != nil {
		return err
	}
	path := filepath.Join(dir, FileName)
	raw, err := os.ReadFile(path) // #nosec G304 -- config.toml in the user's data dir
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read config %s: %w", path, err)
	}
	entry := "nick = " + strconv.Quote(nick)
	lines := strings.Split(string(raw), "\n")
	replaced := false
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "[") {
			break // nick is a top-level key: stop at the first table
		}
		if nickLine.MatchString(l) {
			lines[i] = entry
			replaced = true
			break
		}
	}
	out := strings.Join(lines, "\n")
	if !replaced {
		out = entry + "\n" + out
	}
	// strconv.Quote yields a valid TOML basic string for printable text.
	if _, err := Parse(path, []byte(out)); err != nil {
		return fmt.Errorf("update nick in %s: %w", path, err)
	}
	return identity.WriteFileAtomic(path, []byte(out), 0o600)
}
