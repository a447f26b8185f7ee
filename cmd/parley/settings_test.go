package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/config"
	"github.com/parley-chat/parley/internal/testnet"
)

// tableCommands are the commands of the settings table, with their names.
var tableCommands = []struct {
	name string
	cmd  cmdSet
}{{"chat", cmdChat}, {"send", cmdSend}, {"serve", cmdServe}, {"id", cmdID}, {"key encrypt", cmdKey}}

// clearEnv unsets every PARLEY_* variable of the table for the test, so
// that the environment the tests run in does not leak in.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, row := range settingTable() {
		if row.flag == "" {
			continue
		}
		name := envName(row.flag)
		if old, ok := os.LookupEnv(name); ok {
			t.Setenv(name, old) // restores it afterwards
			if err := os.Unsetenv(name); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// rowOf returns the row of a flag name or, for a config.toml-only
// setting, of its key.
func rowOf(t *testing.T, name string) setting {
	t.Helper()
	for _, row := range settingTable() {
		if row.flag == name || (row.flag == "" && row.key == name) {
			return row
		}
	}
	t.Fatalf("no setting %q", name)
	return setting{}
}

// valueOf is what a fresh value of row holds after vals are set, as text.
func valueOf(t *testing.T, row setting, vals ...string) string {
	t.Helper()
	var s settings
	v := row.bind(&s)
	for _, one := range vals {
		if one == "" {
			continue
		}
		if err := v.Set(one); err != nil {
			t.Fatalf("%s: set %q: %v", row.flag, one, err)
		}
	}
	return v.String()
}

// sample holds valid values of one setting, a different one per source,
// so that the layers can be told apart.
type sample struct {
	toml     string // the config.toml value, a TOML literal; "" without a key
	fromFile string // that value as the flag takes it
	env, cli string
}

func samples(t *testing.T, dataDir string) map[string]sample {
	ids := make([]string, 3)
	for i := range ids {
		id, err := peer.IDFromPrivateKey(testnet.NewKey(t))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id.String()
	}
	p2p := func(port, i int) string { return "/ip4/127.0.0.1/tcp/" + string(rune('0'+port)) + "/p2p/" + ids[i] }
	return map[string]sample{
		"data-dir":             {env: "/env/dir", cli: "/cli/dir"},
		"log-level":            {`"error"`, "error", "info", "debug"},
		"key-passphrase-file":  {env: "/env/pass", cli: "/cli/pass"},
		"nick":                 {`"filenick"`, "filenick", "envnick", "clinick"},
		"listen":               {`["/ip4/127.0.0.1/tcp/1"]`, "/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/2", "/ip4/127.0.0.1/tcp/3"},
		"announce":             {env: "/ip4/192.0.2.1/tcp/2", cli: "/ip4/192.0.2.1/tcp/3"},
		"peer":                 {`["` + p2p(1, 0) + `"]`, p2p(1, 0), p2p(2, 1), p2p(3, 2)},
		"deny-peer":            {`["` + ids[0] + `"]`, ids[0], ids[1], ids[2]},
		"deny-cidr":            {`["10.0.0.0/8"]`, "10.0.0.0/8", "10.1.0.0/16", "192.0.2.1"},
		"upnp":                 {"true", "true", "false", "true"},
		"no-mdns":              {"false", "true", "false", "true"},
		"downloads":            {`"/file/dl"`, "/file/dl", "/env/dl", "/cli/dl"},
		"max-file-size":        {"100", "100", "200", "300"},
		"room":                 {`["fileroom"]`, "fileroom", "envroom", "cliroom"},
		"auto_accept_from":     {toml: `["trusted"]`, fromFile: "trusted"},
		"auto_accept_max_size": {toml: "5", fromFile: "5"},
		"json":                 {env: "true", cli: "false"},
		"line":                 {env: "true", cli: "false"},
		"conn-low":             {"10", "10", "20", "30"},
		"conn-high":            {"1000", "1000", "2000", "3000"},
		"bootstrap":            {`["` + p2p(1, 0) + `"]`, p2p(1, 0), p2p(2, 1), p2p(3, 2)},
		"relay":                {`["` + p2p(1, 0) + `"]`, p2p(1, 0), p2p(2, 1), p2p(3, 2)},
		"rendezvous":           {env: "envns", cli: "clins"},
		"public-dht":           {"true", "true", "false", "true"},
		"no-hole-punching":     {env: "true", cli: "false"},
		"no-relay-service":     {"false", "true", "false", "true"},
		"swarm-key":            {`"swarm.key"`, filepath.Join(dataDir, "swarm.key"), "/env/swarm.key", "/cli/swarm.key"},
		"allow-peer":           {`["` + ids[0] + `"]`, ids[0], ids[1], ids[2]},
		"metrics":              {env: "127.0.0.1:1", cli: "127.0.0.1:2"},
		"metrics-public":       {env: "true", cli: "false"},
		"hold-mailboxes":       {"false", "false", "true", "false"},
		"mailbox-expiry-days":  {"3", "3", "5", "7"},
		"epoch-key-grace-days": {"3", "3", "5", "9"},
	}
}

// TestSettingPrecedence proves, for every setting and every command that
// takes it, that its flag, its PARLEY_* variable and its config.toml key
// reach the same field with flag > environment > config.toml > default
// (docs/CONFIG.md), that deny lists from the file add to the flags, and
// that a command ignores the keys it does not read.
func TestSettingPrecedence(t *testing.T) {
	clearEnv(t)
	dataDir := t.TempDir()
	all := samples(t, dataDir)
	for _, row := range settingTable() {
		name := row.flag
		if name == "" {
			name = row.key
		}
		smp, ok := all[name]
		if !ok {
			t.Fatalf("no sample values for %s: add them to samples", name)
		}
		for _, c := range tableCommands {
			takesFlag := row.in.has(c.cmd)
			readsFile := row.key != "" && row.file.has(c.cmd)
			if !takesFlag && !readsFile {
				continue
			}
			r := row.forCommand(c.cmd)
			def := valueOf(t, r, r.def)
			type layer struct {
				what     string
				file     bool
				env, cli bool
				want     string
			}
			layers := []layer{{what: "default", want: def}}
			if row.key != "" {
				want := def
				if readsFile {
					want = valueOf(t, r, r.def, smp.fromFile)
				}
				layers = append(layers, layer{what: "config.toml", file: true, want: want})
			}
			if takesFlag {
				env, cli := valueOf(t, r, smp.env), valueOf(t, r, smp.cli)
				if r.merge && readsFile {
					env, cli = valueOf(t, r, smp.env, smp.fromFile), valueOf(t, r, smp.cli, smp.fromFile)
				}
				layers = append(layers,
					layer{what: "environment over config.toml", file: row.key != "", env: true, want: env},
					layer{what: "flag over environment", file: row.key != "", env: true, cli: true, want: cli})
			}
			for _, l := range layers {
				t.Run(name+"/"+c.name+"/"+l.what, func(t *testing.T) {
					var s settings
					fs := newCommandFlags(c.name, c.cmd, &s)
					if l.env {
						t.Setenv(envName(row.flag), smp.env)
					}
					var args []string
					if l.cli {
						args = []string{"--" + row.flag + "=" + smp.cli}
					}
					if err := fs.parse(args, io.Discard); err != nil {
						t.Fatal(err)
					}
					var file config.File
					if l.file {
						var err error
						if file, err = config.Parse("config.toml", []byte(row.key+" = "+smp.toml+"\n")); err != nil {
							t.Fatal(err)
						}
					}
					if err := fs.applyFile(file, dataDir); err != nil {
						t.Fatal(err)
					}
					if got := row.bind(&s).String(); got != l.want {
						t.Fatalf("%s is %q, want %q", name, got, l.want)
					}
				})
			}
		}
	}
}

// TestSettingTable checks the table itself: every config.toml key is
// bound once, flags are unique, defaults parse, help has no backticks, and
// serve reads exactly the keys docs/SERVE.md lists.
func TestSettingTable(t *testing.T) {
	keys := make(map[string]int)
	flags := make(map[string]bool)
	for _, row := range settingTable() {
		if row.key != "" {
			keys[row.key]++
			if _, ok := (config.File{}).Value(row.key); ok {
				t.Errorf("%s: an empty file sets it", row.key)
			}
		}
		if row.flag == "" {
			if row.key == "" || row.in != 0 || row.usage != "" {
				t.Errorf("a config.toml-only row needs a key, no commands taking a flag and no help: %+v", row)
			}
			continue
		}
		if flags[row.flag] {
			t.Errorf("flag --%s is in the table twice", row.flag)
		}
		flags[row.flag] = true
		if row.file&^row.in != 0 {
			t.Errorf("--%s: a command reads %s from config.toml without taking the flag", row.flag, row.key)
		}
		for _, c := range tableCommands {
			r := row.forCommand(c.cmd)
			if r.usage == "" || strings.Contains(r.usage, "`") {
				t.Errorf("--%s (%s): help %q is empty or has a backtick", row.flag, c.name, r.usage)
			}
			var s settings
			v := r.bind(&s)
			if (r.arg == "") != isBool(v) {
				t.Errorf("--%s: argument %q, but bool is %v", row.flag, r.arg, isBool(v))
			}
			if r.def != "" {
				if isList(v) {
					t.Errorf("--%s: a repeatable setting has a default %q, which a flag would add to", row.flag, r.def)
				}
				if err := v.Set(r.def); err != nil {
					t.Errorf("--%s (%s): default %q: %v", row.flag, c.name, r.def, err)
				}
			}
		}
	}
	for _, k := range config.Keys() {
		if keys[k] != 1 {
			t.Errorf("config.toml key %s is bound by %d settings, want 1", k, keys[k])
		}
		delete(keys, k)
	}
	for k := range keys {
		t.Errorf("setting key %s is not a config.toml key", k)
	}

	readBy := func(cmd cmdSet) []string {
		var out []string
		for _, row := range settingTable() {
			if row.key != "" && row.file.has(cmd) {
				out = append(out, row.key)
			}
		}
		slices.Sort(out)
		return out
	}
	// docs/SERVE.md and docs/CONFIG.md: serve reads these keys only.
	serveKeys := []string{"allow_peers", "bootstrap", "deny_cidrs", "deny_peers", "hold_mailboxes", "listen", "log_level", "mailbox_expiry_days", "public_dht", "swarm_key"}
	if got := readBy(cmdServe); !slices.Equal(got, serveKeys) {
		t.Errorf("serve reads %v from config.toml, docs say %v", got, serveKeys)
	}
	allKeys := config.Keys()
	slices.Sort(allKeys)
	if got := readBy(cmdChat); !slices.Equal(got, allKeys) {
		t.Errorf("chat reads %v from config.toml, want every key %v", got, allKeys)
	}
	if got := readBy(cmdID); got != nil {
		t.Errorf("id reads %v from config.toml, want nothing", got)
	}
}

// TestBadSettingValues: a bad value from the command line, the
// environment or config.toml is a usage error on one line that names the
// value and where it came from.
func TestBadSettingValues(t *testing.T) {
	clearEnv(t)
	for _, tc := range []struct {
		flag, bad string
		cmd       cmdSet
		fileKey   bool // also try it in config.toml (a string value)
	}{
		{"listen", "nonsense", cmdChat, true},
		{"listen", "/ip4/999.1.1.1/tcp/1", cmdServe, true},
		{"announce", "nonsense", cmdServe, false},
		{"peer", "/ip4/127.0.0.1/tcp/1", cmdChat, true},
		{"deny-peer", "not-a-peer", cmdServe, true},
		{"deny-cidr", "300.1.1.1", cmdChat, true},
		{"nick", "evil\u202ename", cmdChat, false}, // config.Parse refuses it (config tests)
		{"log-level", "loud", cmdID, false},
		{"log-level", "loud", cmdServe, true},
		{"conn-low", "many", cmdChat, false}, // a string is the wrong type in config.toml
		{"max-file-size", "big", cmdSend, false},
		{"upnp", "maybe", cmdChat, false},
		{"rendezvous", strings.Repeat("n", 300), cmdServe, false},
		{"bootstrap", "/ip4/192.0.2.1/tcp/4747", cmdServe, true},
		{"relay", "nonsense", cmdSend, true},
		{"allow-peer", "nope", cmdChat, true},
		{"metrics", "nonsense", cmdServe, false},
	} {
		row := rowOf(t, tc.flag)
		check := func(t *testing.T, err error, source string) {
			t.Helper()
			var ue usageError
			if err == nil || !errors.As(err, &ue) {
				t.Fatalf("err = %v, want a usage error", err)
			}
			msg := err.Error()
			named := strings.Contains(msg, tc.bad) || strings.Contains(msg, strconv.Quote(tc.bad))
			if strings.Contains(msg, "\n") || !strings.Contains(msg, source) || !named {
				t.Fatalf("%q is not one line naming %s and %q", msg, source, tc.bad)
			}
		}
		t.Run(tc.flag+"/flag", func(t *testing.T) {
			var s settings
			err := newCommandFlags("test", tc.cmd, &s).parse([]string{"--" + tc.flag + "=" + tc.bad}, io.Discard)
			check(t, err, "--"+tc.flag)
		})
		t.Run(tc.flag+"/environment", func(t *testing.T) {
			t.Setenv(envName(tc.flag), tc.bad)
			var s settings
			err := newCommandFlags("test", tc.cmd, &s).parse(nil, io.Discard)
			check(t, err, envName(tc.flag))
		})
		if !tc.fileKey {
			continue
		}
		t.Run(tc.flag+"/config.toml", func(t *testing.T) {
			lit := `"` + tc.bad + `"`
			if isList(row.bind(&settings{})) {
				lit = "[" + lit + "]"
			}
			file, err := config.Parse("config.toml", []byte(row.key+" = "+lit+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			var s settings
			fs := newCommandFlags("test", tc.cmd, &s)
			if err := fs.parse(nil, io.Discard); err != nil {
				t.Fatal(err)
			}
			check(t, fs.applyFile(file, t.TempDir()), row.key+" in ")
		})
	}
	// The whole command: one "parley: " line on stderr and exit code 2.
	t.Run("run", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte("listen = [\"nonsense\"]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		code := run(context.Background(), []string{"serve", "--data-dir", dir}, nil, io.Discard, &stderr)
		if code != exitUsage || strings.Count(stderr.String(), "\n") != 1 || !strings.HasPrefix(stderr.String(), "parley: bad listen in ") {
			t.Fatalf("exit %d, stderr %q", code, stderr.String())
		}
	})
}

// TestHelpFlags: each command's -h lists the flags the table gives it and
// its own, with their arguments, and no other.
func TestHelpFlags(t *testing.T) {
	clearEnv(t)
	own := map[string][]string{"send": {"to"}, "id": {"json"}, "key encrypt": nil}
	for _, c := range tableCommands {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			var s settings
			fs := newCommandFlags(c.name, c.cmd, &s)
			for _, f := range own[c.name] {
				fs.String(f, "", "its own")
			}
			if err := fs.parse([]string{"-h"}, &out); !errors.Is(err, errHelp) {
				t.Fatalf("-h: %v", err)
			}
			help := out.String()
			if strings.Contains(help, "`") {
				t.Errorf("help has a backtick:\n%s", help)
			}
			for _, row := range settingTable() {
				if row.flag == "" || slices.Contains(own[c.name], row.flag) {
					continue
				}
				listed := strings.Contains(help, "\n  --"+row.flag+" ") || strings.Contains(help, "\n  --"+row.flag+"\n")
				if listed != row.in.has(c.cmd) {
					t.Errorf("--%s listed %v, taken %v", row.flag, listed, row.in.has(c.cmd))
				}
			}
		})
	}
	// The brief's examples: send names its arguments and hides --line,
	// and --bootstrap shows its argument, not words of its help.
	var out bytes.Buffer
	if _, err := parseCommandLine([]string{"send", "-h"}, &out); !errors.Is(err, errHelp) {
		t.Fatal(err)
	}
	for _, want := range []string{"usage: parley send [flags] --to PEER PATH\n", "\n  --to PEER\n", "\n  --bootstrap MULTIADDR/p2p/ID\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("send -h lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := parseCommandLine([]string{"send", "--line", "--to", "x", "f"}, io.Discard); err != nil {
		t.Errorf("send --line, accepted before: %v", err)
	}
}
