package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/overlay"
)

// The flag.Value kinds of the settings table. Each parses and validates
// one value the same way for a flag, an environment variable and a
// config.toml key, and its error names the bad value and what to use.

// listFlag is a repeatable string flag (bench's).
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}
func (*listFlag) repeatable() {}

// one is a setting with one value of type T.
type one[T any] struct {
	p     *T
	parse func(string) (T, error)
}

func (o one[T]) String() string {
	if o.p == nil {
		return ""
	}
	return fmt.Sprint(*o.p)
}

func (o one[T]) Set(s string) error {
	v, err := o.parse(s)
	if err != nil {
		return err
	}
	*o.p = v
	return nil
}

// boolValue is a setting that is on or off; a flag without a value is on.
type boolValue struct{ p *bool }

func (b boolValue) String() string   { return strconv.FormatBool(b.p != nil && *b.p) }
func (b boolValue) IsBoolFlag() bool { return true }
func (b boolValue) Set(s string) error {
	v, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not true or false", s)
	}
	*b.p = v
	return nil
}

// many is a repeatable setting: each value is parsed and added.
type many[T any] struct {
	p     *[]T
	parse func(string) (T, error)
	add   func([]T, T) []T // nil: append
}

func (*many[T]) repeatable() {}

func (m *many[T]) String() string {
	if m == nil || m.p == nil {
		return ""
	}
	s := make([]string, len(*m.p))
	for i, v := range *m.p {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, ",")
}

func (m *many[T]) Set(s string) error {
	v, err := m.parse(s)
	if err != nil {
		return err
	}
	if m.add != nil {
		*m.p = m.add(*m.p, v)
	} else {
		*m.p = append(*m.p, v)
	}
	return nil
}

func textOf(p *string) flag.Value {
	return one[string]{p, func(s string) (string, error) { return s, nil }}
}
func boolOf(p *bool) flag.Value   { return boolValue{p} }
func intOf(p *int) flag.Value     { return one[int]{p, parseInt[int]} }
func int64Of(p *int64) flag.Value { return one[int64]{p, parseInt[int64]} }
func levelOf(p *slog.Level) flag.Value {
	return one[slog.Level]{p, parseLevel}
}
func nickOf(p *string) flag.Value    { return one[string]{p, parseNick} }
func metricsOf(p *string) flag.Value { return one[string]{p, parseMetricsAddr} }
func textsOf(p *[]string) flag.Value {
	return &many[string]{p: p, parse: func(s string) (string, error) { return s, nil }}
}
func namespacesOf(p *[]string) flag.Value { return &many[string]{p: p, parse: parseNamespace} }
func listenOf(p *[]ma.Multiaddr) flag.Value {
	return &many[ma.Multiaddr]{p: p, parse: overlay.ParseListenAddr}
}
func peerAddrsOf(p *[]peer.AddrInfo) flag.Value {
	return &many[peer.AddrInfo]{p: p, parse: overlay.ParsePeerAddr, add: mergeAddrInfo}
}
func peerIDsOf(p *[]peer.ID) flag.Value  { return &many[peer.ID]{p: p, parse: parsePeerID} }
func cidrsOf(p *[]*net.IPNet) flag.Value { return &many[*net.IPNet]{p: p, parse: overlay.ParseCIDR} }

func parseInt[T int | int64](s string) (T, error) {
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || int64(T(v)) != v {
		return 0, fmt.Errorf("%q is not a whole number", s)
	}
	return T(v), nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q is not a log level; use debug, info, warn or error", s)
	}
	return l, nil
}

// parseNick accepts a valid nick, or "" for the default one.
func parseNick(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if err := identity.ValidateNick(s); err != nil {
		return "", err // it names the nick
	}
	return s, nil
}

func parsePeerID(s string) (peer.ID, error) {
	id, err := peer.Decode(strings.TrimSpace(s))
	if err != nil {
		return "", fmt.Errorf("%q is not a peer ID (%v); use one such as 12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE", s, err)
	}
	return id, nil
}

func parseNamespace(s string) (string, error) {
	if s == "" || len(s) > overlay.MaxNamespaceLen {
		return "", fmt.Errorf("%q: %w", s, overlay.ErrBadNamespace)
	}
	return s, nil
}

// parseMetricsAddr accepts HOST:PORT; checkMetricsAddr decides whether
// the host may be other than loopback.
func parseMetricsAddr(s string) (string, error) {
	if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
		return "", fmt.Errorf("%q is not HOST:PORT; use one like 127.0.0.1:9464", s)
	}
	return s, nil
}
