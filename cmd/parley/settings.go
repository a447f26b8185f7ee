package main

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/config"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/overlay"
)

// common are the flags every subcommand that touches the data dir takes.
type common struct {
	dataDir     string
	logLevel    string
	keyPassFile string
}

func (c *common) register(fs *flagSet) {
	fs.StringVar(&c.dataDir, "data-dir", "", "directory for the key, config.toml and the store (default $XDG_DATA_HOME/parley or ~/.local/share/parley)")
	fs.StringVar(&c.logLevel, "log-level", "warn", "log level on stderr: debug, info, warn or error")
	fs.StringVar(&c.keyPassFile, "key-passphrase-file", "", "read the passphrase of an encrypted identity key from `FILE` (default: ask on the terminal); a new key is then created encrypted")
}

// passphrases returns the passphrase source of the key flags.
func (c *common) passphrases(stdin io.Reader, stderr io.Writer, logger *slog.Logger) passphrases {
	return passphrases{file: c.keyPassFile, stdin: stdin, stderr: stderr, log: logger}
}

// resolveDataDir applies the default data dir.
func (c *common) resolveDataDir() error {
	if c.dataDir != "" {
		return nil
	}
	d, err := config.DefaultDataDir()
	if err != nil {
		return err
	}
	c.dataDir = d
	return nil
}

// prepare does what every long-running subcommand does first: make the
// data dir, read config.toml into the settings (applyFile, for what flags
// and the environment left unset), set up logging, and load or create the
// identity. Logs go to logOut; a passphrase is asked for on stdin and
// stderr, the terminal.
func (c *common) prepare(fs *flagSet, applyFile func(*flagSet, config.File), stdin io.Reader, stderr, logOut io.Writer) (*slog.Logger, *identity.Identity, error) {
	if err := identity.EnsureDir(c.dataDir); err != nil {
		return nil, nil, err
	}
	file, err := config.Load(c.dataDir)
	if err != nil {
		return nil, nil, err
	}
	applyFile(fs, file)
	level, err := parseLevel(c.logLevel)
	if err != nil {
		return nil, nil, err
	}
	logger := newLogger(logOut, level)
	warnDataDirMode(logger, c.dataDir)
	id, err := loadIdentity(c.dataDir, c.passphrases(stdin, stderr, logger), logger)
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

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, usageError{fmt.Errorf("bad --log-level %q: use debug, info, warn or error", s)}
	}
	return l, nil
}

// chatSettings are the flags of `parley chat` after layering.
type chatSettings struct {
	common
	nick      string
	listen    listFlag
	peers     listFlag
	denyPeers listFlag
	denyCIDRs listFlag
	upnp      bool
	noMDNS    bool
	rooms     listFlag
	downloads string
	maxFile   int64
	// Only in config.toml: auto_accept_from, auto_accept_max_size.
	autoAcceptFrom []string
	autoAcceptMax  int64
	json           bool
	line           bool
	connLow        int
	connHigh       int
	discovery      discoveryFlags
	private        privateFlags
}

// privateFlags are the private-swarm flags of chat and serve
// (docs/SECURITY.md).
type privateFlags struct {
	swarmKey   string
	allowPeers listFlag
}

func (p *privateFlags) register(fs *flagSet) {
	fs.StringVar(&p.swarmKey, "swarm-key", "", "join the private network of this swarm key `FILE` (parley keygen --swarm-key makes one): only holders of the key can connect; TCP only")
	fs.Var(&p.allowPeers, "allow-peer", "allow-list mode: only this `PEER_ID` may connect (repeatable; --peer, --bootstrap and --relay peers are allowed too)")
}

// applyFile fills the private-swarm settings from the config file. A
// relative swarm_key is relative to the data dir.
func (p *privateFlags) applyFile(fs *flagSet, f config.File, dataDir string) {
	if !fs.given("swarm-key") && f.SwarmKey != "" {
		p.swarmKey = f.SwarmKey
		if !filepath.IsAbs(p.swarmKey) {
			p.swarmKey = filepath.Join(dataDir, p.swarmKey)
		}
	}
	if !fs.given("allow-peer") && len(f.AllowPeers) > 0 {
		p.allowPeers = f.AllowPeers
	}
}

// apply reads the swarm key and validates the allow list into cfg.
func (p *privateFlags) apply(cfg *overlay.Config) error {
	for _, a := range p.allowPeers {
		id, err := peer.Decode(strings.TrimSpace(a))
		if err != nil {
			return usageError{fmt.Errorf("bad --allow-peer %q: %v; use a peer ID such as 12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE", a, err)}
		}
		cfg.AllowPeers = append(cfg.AllowPeers, id)
	}
	if p.swarmKey != "" {
		psk, err := overlay.ReadSwarmKey(p.swarmKey)
		if err != nil {
			return err
		}
		cfg.SwarmKey = psk
	}
	return nil
}

// discoveryFlags are the discovery and NAT traversal flags of chat and
// serve (docs/OVERLAY.md).
type discoveryFlags struct {
	bootstrap  listFlag
	relays     listFlag
	rendezvous listFlag
	publicDHT  bool
	noPunch    bool
}

func (d *discoveryFlags) register(fs *flagSet, relayFlag bool) {
	fs.Var(&d.bootstrap, "bootstrap", "join the DHT through this node, normally a `parley serve`, `MULTIADDR/p2p/ID` (repeatable); also used as relay")
	fs.BoolVar(&d.publicDHT, "public-dht", false, "use the public IPFS DHT and its bootstrap peers instead of Parley's own DHT (reveals your addresses and rendezvous keys to strangers)")
	fs.Var(&d.rendezvous, "rendezvous", "advertise and find peers under this `NAMESPACE` through the DHT (repeatable; rooms do this by themselves)")
	if relayFlag {
		fs.Var(&d.relays, "relay", "hold a reservation on this circuit relay when not publicly reachable, `MULTIADDR/p2p/ID` (repeatable; --bootstrap nodes are relays too)")
		fs.BoolVar(&d.noPunch, "no-hole-punching", false, "do not try to turn relayed connections into direct ones")
	}
}

// applyFile takes bootstrap, relays and public_dht from config.toml
// unless the flags were given; relays only where the flag exists (chat).
func (d *discoveryFlags) applyFile(fs *flagSet, f config.File) {
	if !fs.given("bootstrap") && len(f.Bootstrap) > 0 {
		d.bootstrap = f.Bootstrap
	}
	if fs.Lookup("relay") != nil && !fs.given("relay") && len(f.Relays) > 0 {
		d.relays = f.Relays
	}
	if !fs.given("public-dht") && f.PublicDHT != nil {
		d.publicDHT = *f.PublicDHT
	}
}

// apply validates the flags into cfg.
func (d *discoveryFlags) apply(cfg *overlay.Config) error {
	for _, b := range d.bootstrap {
		ai, err := overlay.ParsePeerAddr(b)
		if err != nil {
			return usageError{fmt.Errorf("bad --bootstrap: %w", err)}
		}
		cfg.Bootstrap = mergeAddrInfo(cfg.Bootstrap, ai)
		cfg.Relays = mergeAddrInfo(cfg.Relays, ai)
	}
	for _, r := range d.relays {
		ai, err := overlay.ParsePeerAddr(r)
		if err != nil {
			return usageError{fmt.Errorf("bad --relay: %w", err)}
		}
		cfg.Relays = mergeAddrInfo(cfg.Relays, ai)
	}
	for _, ns := range d.rendezvous {
		if ns == "" || len(ns) > overlay.MaxNamespaceLen {
			return usageError{fmt.Errorf("bad --rendezvous %q: %w", ns, overlay.ErrBadNamespace)}
		}
		cfg.Namespaces = append(cfg.Namespaces, ns)
	}
	cfg.PublicDHT = d.publicDHT
	cfg.NoHolePunching = d.noPunch
	return nil
}

func (s *chatSettings) register(fs *flagSet) {
	s.common.register(fs)
	fs.StringVar(&s.nick, "nick", "", "nickname, 1-32 printable characters (saved in config.toml)")
	fs.Var(&s.listen, "listen", "listen `MULTIADDR` (repeatable; replaces the default of all interfaces, random ports)")
	fs.Var(&s.peers, "peer", "peer to dial at start and keep connected, `MULTIADDR/p2p/ID` (repeatable)")
	fs.Var(&s.denyPeers, "deny-peer", "refuse connections with this `PEER_ID` (repeatable)")
	fs.Var(&s.denyCIDRs, "deny-cidr", "refuse connections with addresses in this `CIDR` (repeatable)")
	fs.BoolVar(&s.upnp, "upnp", false, "ask the router for a port mapping (UPnP / NAT-PMP)")
	fs.BoolVar(&s.noMDNS, "no-mdns", false, "do not look for peers on the LAN with mDNS")
	fs.StringVar(&s.downloads, "downloads", "", "directory for received files (default DATA_DIR/downloads)")
	fs.Int64Var(&s.maxFile, "max-file-size", 0, "refuse file offers bigger than this many `BYTES` (default 16 GiB)")
	fs.Var(&s.rooms, "room", "join this room at start; the first is the current room (repeatable; default lobby)")
	fs.BoolVar(&s.json, "json", false, "print every event as one JSON object per line (docs/EVENTS.md)")
	fs.BoolVar(&s.line, "line", false, "line mode even on a terminal")
	fs.IntVar(&s.connLow, "conn-low", 64, "connection manager low water mark")
	fs.IntVar(&s.connHigh, "conn-high", 192, "connection manager high water mark")
	s.discovery.register(fs, true)
	s.private.register(fs)
}

// applyFile fills settings not given as flags or environment from the
// config file.
func (s *chatSettings) applyFile(fs *flagSet, f config.File) {
	if !fs.given("nick") && f.Nick != "" {
		s.nick = f.Nick
	}
	if !fs.given("listen") && len(f.Listen) > 0 {
		s.listen = f.Listen
	}
	if !fs.given("peer") && len(f.Peers) > 0 {
		s.peers = f.Peers
	}
	if !fs.given("deny-peer") {
		s.denyPeers = append(s.denyPeers, f.DenyPeers...)
	}
	if !fs.given("deny-cidr") {
		s.denyCIDRs = append(s.denyCIDRs, f.DenyCIDRs...)
	}
	if !fs.given("upnp") && f.UPnP != nil {
		s.upnp = *f.UPnP
	}
	if !fs.given("no-mdns") && f.MDNS != nil {
		s.noMDNS = !*f.MDNS
	}
	if !fs.given("conn-low") && f.ConnLow != 0 {
		s.connLow = f.ConnLow
	}
	if !fs.given("conn-high") && f.ConnHigh != 0 {
		s.connHigh = f.ConnHigh
	}
	if !fs.given("log-level") && f.LogLevel != "" {
		s.logLevel = f.LogLevel
	}
	if !fs.given("downloads") && f.Downloads != "" {
		s.downloads = f.Downloads
	}
	if !fs.given("max-file-size") && f.MaxFileSize != 0 {
		s.maxFile = f.MaxFileSize
	}
	s.autoAcceptFrom = f.AutoAcceptFrom
	s.autoAcceptMax = f.AutoAcceptMaxSize
	if !fs.given("room") && len(f.Rooms) > 0 {
		s.rooms = f.Rooms
	}
	s.discovery.applyFile(fs, f)
	s.private.applyFile(fs, f, s.dataDir)
}

// overlayConfig validates the network settings.
func (s *chatSettings) overlayConfig() (overlay.Config, error) {
	var cfg overlay.Config
	for _, l := range s.listen {
		a, err := overlay.ParseListenAddr(l)
		if err != nil {
			return cfg, usageError{err}
		}
		cfg.ListenAddrs = append(cfg.ListenAddrs, a)
	}
	for _, p := range s.peers {
		ai, err := overlay.ParsePeerAddr(p)
		if err != nil {
			return cfg, usageError{err}
		}
		cfg.Peers = mergeAddrInfo(cfg.Peers, ai)
	}
	for _, d := range s.denyPeers {
		id, err := peer.Decode(strings.TrimSpace(d))
		if err != nil {
			return cfg, usageError{fmt.Errorf("bad deny peer %q: %v; use a peer ID such as 12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE", d, err)}
		}
		cfg.DenyPeers = append(cfg.DenyPeers, id)
	}
	for _, c := range s.denyCIDRs {
		n, err := overlay.ParseCIDR(c)
		if err != nil {
			return cfg, usageError{err}
		}
		cfg.DenyCIDRs = append(cfg.DenyCIDRs, n)
	}
	if s.connLow < 1 || s.connHigh < s.connLow {
		return cfg, usageError{fmt.Errorf("bad connection limits --conn-low %d --conn-high %d: need 1 <= low <= high", s.connLow, s.connHigh)}
	}
	cfg.ConnLow, cfg.ConnHigh = s.connLow, s.connHigh
	cfg.UPnP = s.upnp
	cfg.MDNS = !s.noMDNS
	if err := s.discovery.apply(&cfg); err != nil {
		return cfg, err
	}
	if err := s.private.apply(&cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// mergeAddrInfo adds ai to list, merging addresses of the same peer.
func mergeAddrInfo(list []peer.AddrInfo, ai peer.AddrInfo) []peer.AddrInfo {
	for i := range list {
		if list[i].ID == ai.ID {
			list[i].Addrs = append(list[i].Addrs, ai.Addrs...)
			return list
		}
	}
	return append(list, ai)
}

// defaultNick is the nick of a node that never chose one.
func defaultNick(id *identity.Identity) string {
	return "peer-" + strings.ToLower(identity.ShortFingerprint(id.ID))
}
