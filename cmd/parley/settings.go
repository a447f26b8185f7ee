package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/config"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/mailbox"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/overlay"
)

// cmdSet is a set of the commands that take settings.
type cmdSet uint8

const (
	cmdChat cmdSet = 1 << iota
	cmdSend
	cmdServe
	cmdID
	cmdKey

	chatNodes = cmdChat | cmdSend         // commands that run a chat node
	allNodes  = chatNodes | cmdServe      // commands that run a node
	keyUsers  = allNodes | cmdID | cmdKey // commands that use the identity key
)

func (c cmdSet) has(cmd cmdSet) bool { return c&cmd != 0 }

// setting binds one setting to its flag, its PARLEY_* environment
// variable (envName of the flag) and its config.toml key, with its
// default, its parsing and validation (the flag.Value bind returns) and
// the commands that take it. Precedence: flag > environment >
// config.toml > default (docs/CONFIG.md).
type setting struct {
	flag string // flag name; "" for a config.toml-only setting
	arg  string // what -h shows after the flag (FILE, MULTIADDR); "" for a bool
	key  string // config.toml key; "" when the file has none
	in   cmdSet // commands that take the flag
	file cmdSet // commands that read key from their config.toml
	// hidden commands accept the flag, with no effect, without listing
	// it: old command lines keep working.
	hidden cmdSet
	def    string // default, as the flag takes it; "" for none
	usage  string
	// merge: the file's values are added to those of the flag or
	// environment variable instead of giving way to them.
	merge bool
	// fromFile turns a config.toml value into what the flag takes.
	fromFile func(v, dataDir string) string
	// serve replaces def and usage for parley serve; id for parley id.
	serve, id *variant
	// bind returns the value the setting parses into, in s.
	bind func(s *settings) flag.Value
}

// variant is how a setting differs for one command: what is not empty
// replaces the setting's own.
type variant struct{ def, usage string }

// forCommand is the setting as cmd has it.
func (s setting) forCommand(cmd cmdSet) setting {
	v := s.serve
	if cmd == cmdID {
		v = s.id
	} else if cmd != cmdServe {
		v = nil
	}
	if v == nil {
		return s
	}
	if v.def != "" {
		s.def = v.def
	}
	if v.usage != "" {
		s.usage = v.usage
	}
	return s
}

// settings are the values of the settings table after layering, for
// every command; each command fills the ones it takes.
type settings struct {
	dataDir        string
	logLevel       slog.Level
	keyPassFile    string
	nick           string
	listen         []ma.Multiaddr
	announce       []ma.Multiaddr
	peers          []peer.AddrInfo
	denyPeers      []peer.ID
	denyCIDRs      []*net.IPNet
	upnp           bool
	noMDNS         bool
	rooms          []string
	downloads      string
	maxFile        int64
	autoAcceptFrom []string
	autoAcceptMax  int64
	json           bool
	line           bool
	connLow        int
	connHigh       int
	bootstrap      []peer.AddrInfo
	relays         []peer.AddrInfo
	rendezvous     []string
	publicDHT      bool
	noPunch        bool
	noRelayService bool
	swarmKey       string
	allowPeers     []peer.ID
	metrics        string
	metricsPublic  bool
	holdMailboxes  bool
	mailboxDays    int
	epochGraceDays int
}

// settingTable is every setting of chat, send, serve, id and key.
func settingTable() []setting {
	return []setting{
		{flag: "data-dir", arg: "DIR", in: keyUsers,
			usage: "directory for the key, config.toml and the store (default $XDG_DATA_HOME/parley or ~/.local/share/parley)",
			serve: &variant{usage: "directory for the key, config.toml and the store (default $XDG_DATA_HOME/parley-serve or ~/.local/share/parley-serve)"},
			bind:  func(s *settings) flag.Value { return textOf(&s.dataDir) }},
		{flag: "log-level", arg: "LEVEL", key: "log_level", in: keyUsers, file: allNodes, def: "warn",
			usage: "log level on stderr: debug, info, warn or error",
			bind:  func(s *settings) flag.Value { return levelOf(&s.logLevel) }},
		{flag: "key-passphrase-file", arg: "FILE", in: keyUsers,
			usage: "read the passphrase of an encrypted identity key from FILE (default: ask on the terminal); a new key is then created encrypted",
			bind:  func(s *settings) flag.Value { return textOf(&s.keyPassFile) }},
		{flag: "nick", arg: "NICK", key: "nick", in: chatNodes, file: chatNodes,
			usage: "nickname, 1-32 printable characters (parley chat saves it in config.toml)",
			bind:  func(s *settings) flag.Value { return nickOf(&s.nick) }},
		{flag: "listen", arg: "MULTIADDR", key: "listen", in: allNodes | cmdID, file: allNodes,
			usage: "listen on this address (repeatable; replaces the default of all interfaces, random ports)",
			serve: &variant{usage: "listen on this address (repeatable; default TCP and QUIC on port " + strconv.Itoa(node.ServePort) + " on every interface)"},
			id:    &variant{usage: "print the addresses peers can dial you at when chat listens here, e.g. /ip4/0.0.0.0/tcp/4001 (repeatable)"},
			bind:  func(s *settings) flag.Value { return listenOf(&s.listen) }},
		{flag: "announce", arg: "MULTIADDR", in: cmdServe,
			usage: "advertise this address instead of the listen addresses, e.g. a public address in front of a 1:1 NAT (repeatable)",
			bind:  func(s *settings) flag.Value { return listenOf(&s.announce) }},
		{flag: "peer", arg: "MULTIADDR/p2p/ID", key: "peers", in: chatNodes, file: chatNodes,
			usage: "peer to dial at start and keep connected (repeatable)",
			bind:  func(s *settings) flag.Value { return peerAddrsOf(&s.peers) }},
		{flag: "deny-peer", arg: "PEER_ID", key: "deny_peers", in: allNodes, file: allNodes, merge: true,
			usage: "refuse connections with this peer (repeatable; added to deny_peers in config.toml)",
			bind:  func(s *settings) flag.Value { return peerIDsOf(&s.denyPeers) }},
		{flag: "deny-cidr", arg: "CIDR", key: "deny_cidrs", in: allNodes, file: allNodes, merge: true,
			usage: "refuse connections with addresses in this range, or this IP (repeatable; added to deny_cidrs in config.toml)",
			bind:  func(s *settings) flag.Value { return cidrsOf(&s.denyCIDRs) }},
		{flag: "upnp", key: "upnp", in: chatNodes, file: chatNodes,
			usage: "ask the router for a port mapping (UPnP / NAT-PMP)",
			bind:  func(s *settings) flag.Value { return boolOf(&s.upnp) }},
		{flag: "no-mdns", key: "mdns", in: chatNodes, file: chatNodes, fromFile: invertBool,
			usage: "do not look for peers on the LAN with mDNS (config.toml: mdns = false)",
			bind:  func(s *settings) flag.Value { return boolOf(&s.noMDNS) }},
		{flag: "downloads", arg: "DIR", key: "downloads", in: chatNodes, file: chatNodes,
			usage: "directory for received files (default DATA_DIR/downloads)",
			bind:  func(s *settings) flag.Value { return textOf(&s.downloads) }},
		{flag: "max-file-size", arg: "BYTES", key: "max_file_size", in: chatNodes, file: chatNodes,
			usage: "refuse file offers bigger than this many bytes (default 16 GiB)",
			bind:  func(s *settings) flag.Value { return int64Of(&s.maxFile) }},
		{flag: "room", arg: "ROOM", key: "rooms", in: chatNodes, file: chatNodes,
			usage: "join this room at start; the first is the current room (repeatable; parley chat's default is lobby)",
			bind:  func(s *settings) flag.Value { return textsOf(&s.rooms) }},
		{key: "auto_accept_from", file: cmdChat,
			bind: func(s *settings) flag.Value { return textsOf(&s.autoAcceptFrom) }},
		{key: "auto_accept_max_size", file: cmdChat,
			bind: func(s *settings) flag.Value { return int64Of(&s.autoAcceptMax) }},
		{flag: "json", in: allNodes,
			usage: "print every event as one JSON object per line (docs/EVENTS.md)",
			bind:  func(s *settings) flag.Value { return boolOf(&s.json) }},
		{flag: "line", in: cmdChat, hidden: cmdSend,
			usage: "line mode even on a terminal",
			bind:  func(s *settings) flag.Value { return boolOf(&s.line) }},
		{flag: "conn-low", arg: "N", key: "conn_low", in: allNodes, file: chatNodes, def: "64",
			usage: "connection manager low water mark",
			serve: &variant{def: "256"},
			bind:  func(s *settings) flag.Value { return intOf(&s.connLow) }},
		{flag: "conn-high", arg: "N", key: "conn_high", in: allNodes, file: chatNodes, def: "192",
			usage: "connection manager high water mark",
			serve: &variant{def: "1024"},
			bind:  func(s *settings) flag.Value { return intOf(&s.connHigh) }},
		{flag: "bootstrap", arg: "MULTIADDR/p2p/ID", key: "bootstrap", in: allNodes, file: allNodes,
			usage: "join the DHT through this node, normally a parley serve node (repeatable); also used as relay",
			serve: &variant{usage: "join the DHT of this other serve node (repeatable)"},
			bind:  func(s *settings) flag.Value { return peerAddrsOf(&s.bootstrap) }},
		{flag: "relay", arg: "MULTIADDR/p2p/ID", key: "relays", in: chatNodes, file: chatNodes,
			usage: "hold a reservation on this circuit relay when not publicly reachable (repeatable; --bootstrap nodes are relays too)",
			bind:  func(s *settings) flag.Value { return peerAddrsOf(&s.relays) }},
		{flag: "rendezvous", arg: "NAMESPACE", in: allNodes,
			usage: "advertise and find peers under this namespace through the DHT (repeatable; rooms do this by themselves)",
			bind:  func(s *settings) flag.Value { return namespacesOf(&s.rendezvous) }},
		{flag: "public-dht", key: "public_dht", in: allNodes, file: allNodes,
			usage: "use the public IPFS DHT and its bootstrap peers instead of Parley's own DHT (reveals your addresses and rendezvous keys to strangers)",
			bind:  func(s *settings) flag.Value { return boolOf(&s.publicDHT) }},
		{flag: "no-hole-punching", in: chatNodes,
			usage: "do not try to turn relayed connections into direct ones",
			bind:  func(s *settings) flag.Value { return boolOf(&s.noPunch) }},
		{flag: "no-relay-service", key: "relay_service", in: cmdChat, file: cmdChat, fromFile: invertBool,
			usage: "do not relay for room members and trusted peers (config.toml: relay_service = false; docs/OVERLAY.md)",
			bind:  func(s *settings) flag.Value { return boolOf(&s.noRelayService) }},
		{flag: "swarm-key", arg: "FILE", key: "swarm_key", in: allNodes, file: allNodes, fromFile: underDataDir,
			usage: "join the private network of this swarm key file (parley keygen --swarm-key makes one): only holders of the key can connect; TCP only",
			bind:  func(s *settings) flag.Value { return textOf(&s.swarmKey) }},
		{flag: "allow-peer", arg: "PEER_ID", key: "allow_peers", in: allNodes, file: allNodes,
			usage: "allow-list mode: only this peer may connect (repeatable; --peer, --bootstrap and --relay peers are allowed too)",
			serve: &variant{usage: "allow-list mode: only this peer may connect (repeatable; --bootstrap nodes are allowed too)"},
			bind:  func(s *settings) flag.Value { return peerIDsOf(&s.allowPeers) }},
		{flag: "hold-mailboxes", key: "hold_mailboxes", in: cmdChat | cmdServe, file: cmdChat | cmdServe,
			usage: "keep sealed direct messages for trusted and configured peers while their recipients are offline (docs/SECURITY.md, \"Offline delivery\"); --hold-mailboxes=false turns it off",
			serve: &variant{def: "true", usage: "keep sealed direct messages for offline peers, within quotas (docs/SECURITY.md, \"Offline delivery\"); --hold-mailboxes=false turns it off"},
			bind:  func(s *settings) flag.Value { return boolOf(&s.holdMailboxes) }},
		{flag: "mailbox-expiry-days", arg: "DAYS", key: "mailbox_expiry_days", in: cmdChat | cmdServe, file: cmdChat | cmdServe, def: "14",
			usage: "with --hold-mailboxes: keep a sealed message at most this many days",
			bind:  func(s *settings) flag.Value { return intOf(&s.mailboxDays) }},
		{flag: "epoch-key-grace-days", arg: "DAYS", key: "epoch_key_grace_days", in: cmdChat, file: cmdChat, def: "7",
			usage: "keep a private room's old epoch key this many days after the next epoch started (late messages, history sync), then delete it (docs/SECURITY.md)",
			bind:  func(s *settings) flag.Value { return intOf(&s.epochGraceDays) }},
		{flag: "metrics", arg: "HOST:PORT", in: cmdServe,
			usage: "serve Prometheus metrics at http://HOST:PORT/metrics (loopback only unless --metrics-public)",
			bind:  func(s *settings) flag.Value { return metricsOf(&s.metrics) }},
		{flag: "metrics-public", in: cmdServe,
			usage: "allow --metrics on a non-loopback address",
			bind:  func(s *settings) flag.Value { return boolOf(&s.metricsPublic) }},
	}
}

// holderConfig is the mailbox holder the settings describe.
func (s *settings) holderConfig() (mailbox.HolderConfig, error) {
	if s.mailboxDays < 1 || s.mailboxDays > 365 {
		return mailbox.HolderConfig{}, usageError{fmt.Errorf("bad --mailbox-expiry-days %d: use 1 to 365", s.mailboxDays)}
	}
	return mailbox.HolderConfig{MaxAge: time.Duration(s.mailboxDays) * 24 * time.Hour}, nil
}

// epochKeyGrace is the rooms' EpochKeyGrace the settings describe.
func (s *settings) epochKeyGrace() (time.Duration, error) {
	if s.epochGraceDays < 1 || s.epochGraceDays > 365 {
		return 0, usageError{fmt.Errorf("bad --epoch-key-grace-days %d: use 1 to 365", s.epochGraceDays)}
	}
	return time.Duration(s.epochGraceDays) * 24 * time.Hour, nil
}

// invertBool turns mdns = false into --no-mdns=true.
func invertBool(v, _ string) string {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return v // config.Value gives "true" or "false"; Set says what is wrong
	}
	return strconv.FormatBool(!b)
}

// underDataDir makes a relative path in config.toml relative to the data
// dir (a flag's is relative to the working directory).
func underDataDir(v, dataDir string) string {
	if filepath.IsAbs(v) {
		return v
	}
	return filepath.Join(dataDir, v)
}

// resolveDataDir applies the default data dir of cmd: a serve node's is
// a sibling of the chat data dir, so that the two do not share an
// identity on one machine.
func (s *settings) resolveDataDir(cmd cmdSet) error {
	if s.dataDir != "" {
		return nil
	}
	d, err := config.DefaultDataDir()
	if err != nil {
		return err
	}
	if cmd == cmdServe {
		d = filepath.Join(filepath.Dir(d), "parley-serve")
	}
	s.dataDir = d
	return nil
}

// passphrases returns the passphrase source of the key flags.
func (s *settings) passphrases(stdin io.Reader, stderr io.Writer, logger *slog.Logger) passphrases {
	return passphrases{file: s.keyPassFile, stdin: stdin, stderr: stderr, log: logger}
}

// prepare does what every command that runs a node does first: resolve
// and make the data dir, read its config.toml into the settings that
// flags and the environment left unset, set up logging, and load or
// create the identity. Logs go to logOut; a passphrase is asked for on
// stdin and stderr, the terminal.
func (s *settings) prepare(fs *flagSet, stdin io.Reader, stderr, logOut io.Writer) (*slog.Logger, *identity.Identity, error) {
	if err := s.resolveDataDir(fs.cmd); err != nil {
		return nil, nil, err
	}
	if err := identity.EnsureDir(s.dataDir); err != nil {
		return nil, nil, err
	}
	file, err := config.Load(s.dataDir)
	if err != nil {
		return nil, nil, err
	}
	if err := fs.applyFile(file, s.dataDir); err != nil {
		return nil, nil, err
	}
	logger := newLogger(logOut, s.logLevel)
	warnDataDirMode(logger, s.dataDir)
	id, err := loadIdentity(s.dataDir, s.passphrases(stdin, stderr, logger), logger)
	if err != nil {
		return nil, nil, err
	}
	return logger, id, nil
}

// loadIdentity loads the key in dir, creating it on first start. An
// encrypted key is unlocked with a passphrase from pass; a new key is
// encrypted when a passphrase file was named.
func loadIdentity(dir string, pass passphrases, logger *slog.Logger) (*identity.Identity, error) {
	id, created, err := identity.LoadOrCreateWith(dir, identity.KeyOptions{
		Unlock:           pass.unlock,
		NewKeyPassphrase: pass.newKeyFromFile(),
	})
	if err != nil {
		return nil, err
	}
	if created {
		logger.Info("generated a new identity", "peer", id.ID, "key", id.KeyPath, "encrypted", id.Encrypted)
	}
	return id, nil
}

// overlayConfig is the network the settings describe: the settings are
// parsed already; this checks the connection limits against each other
// and reads the swarm key. The node sets the role (node.NewServe for a
// serve node).
func (s *settings) overlayConfig() (overlay.Config, error) {
	if s.connLow < 1 || s.connHigh < s.connLow {
		return overlay.Config{}, usageError{fmt.Errorf("bad connection limits --conn-low %d --conn-high %d: need 1 <= low <= high", s.connLow, s.connHigh)}
	}
	cfg := overlay.Config{
		ListenAddrs:    s.listen,
		AnnounceAddrs:  s.announce,
		Peers:          s.peers,
		DenyPeers:      s.denyPeers,
		DenyCIDRs:      s.denyCIDRs,
		AllowPeers:     s.allowPeers,
		UPnP:           s.upnp,
		MDNS:           !s.noMDNS,
		ConnLow:        s.connLow,
		ConnHigh:       s.connHigh,
		PublicDHT:      s.publicDHT,
		NoHolePunching: s.noPunch,
		Namespaces:     s.rendezvous,
	}
	for _, ai := range s.bootstrap {
		cfg.Bootstrap = mergeAddrInfo(cfg.Bootstrap, ai)
		cfg.Relays = mergeAddrInfo(cfg.Relays, ai) // bootstrap nodes are relays too
	}
	for _, ai := range s.relays {
		cfg.Relays = mergeAddrInfo(cfg.Relays, ai)
	}
	if s.swarmKey != "" {
		psk, err := overlay.ReadSwarmKey(s.swarmKey)
		if err != nil {
			return cfg, err
		}
		cfg.SwarmKey = psk
	}
	return cfg, nil
}

// mergeAddrInfo adds ai to list, merging addresses of the same peer.
func mergeAddrInfo(list []peer.AddrInfo, ai peer.AddrInfo) []peer.AddrInfo {
	for i := range list {
		if list[i].ID == ai.ID {
			list[i].Addrs = append(list[i].Addrs[:len(list[i].Addrs):len(list[i].Addrs)], ai.Addrs...)
			return list
		}
	}
	return append(list, ai)
}

// defaultNick is the nick of a node that never chose one.
func defaultNick(id *identity.Identity) string {
	return "peer-" + strings.ToLower(identity.ShortFingerprint(id.ID))
}
