package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/parley-chat/parley/config"
)

// errHelp is returned after -h printed the usage.
var errHelp = errors.New("help shown")

// flagSet is the command line of one command, with the precedence
// flags > environment > config file > defaults (docs/CONFIG.md).
// Environment variables are PARLEY_ plus the flag name in upper case with
// '-' as '_' (--data-dir: PARLEY_DATA_DIR); repeatable flags take a
// comma-separated list there. The settings of the table (settings.go)
// are bound with bind; a command's own flags (send --to, bench's) are
// added to the embedded flag.FlagSet and take the environment too.
type flagSet struct {
	*flag.FlagSet
	cmd      cmdSet           // the command, for the table's columns; 0 outside the table
	synopsis string           // first line of -h, after "usage: "
	bound    []bound          // the table's settings cmd takes, in table order
	byFlag   map[string]bound // bound settings by flag name
	set      map[string]bool  // flags given on the command line or in the environment
	hidden   map[string]bool  // flags accepted but not listed by -h
	// badValue is the first bad value of a bound setting on the command
	// line, said as the environment and the file say theirs.
	badValue error
	// maxArgs is the number of positional arguments allowed among the
	// flags (0 for most subcommands).
	maxArgs int
	// args are the positional arguments, in order, wherever they stood
	// among the flags (parley send FILE --to PEER works as croc's order).
	args []string
}

// bound is one setting of the table tied to where its value lands.
type bound struct {
	setting
	value flag.Value
}

func newFlagSet(name string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &flagSet{
		FlagSet:  fs,
		synopsis: "parley " + name + " [flags]",
		byFlag:   make(map[string]bound),
		set:      make(map[string]bool),
		hidden:   make(map[string]bool),
	}
}

// newCommandFlags is the flag set of a command of the table with its
// settings bound to s and their defaults set.
func newCommandFlags(name string, cmd cmdSet, s *settings) *flagSet {
	f := newFlagSet(name)
	f.cmd = cmd
	for _, row := range settingTable() {
		takes, hidden := row.in.has(cmd), row.hidden.has(cmd)
		if !takes && !hidden && !(row.flag == "" && row.file.has(cmd)) {
			continue
		}
		b := bound{setting: row.forCommand(cmd), value: row.bind(s)}
		if b.def != "" {
			// The table's defaults are valid (TestSettingDefaults).
			_ = b.value.Set(b.def)
		}
		f.bound = append(f.bound, b)
		if b.flag == "" {
			continue // config.toml only
		}
		f.byFlag[b.flag] = b
		f.Var(cliValue{Value: b.value, name: b.flag, fs: f}, b.flag, b.usage)
		f.hidden[b.flag] = hidden && !takes
	}
	return f
}

// cliValue is a bound setting's value as the flag package sets it: it
// keeps the first error to report it as "bad --flag: ...".
type cliValue struct {
	flag.Value
	name string
	fs   *flagSet
}

func (c cliValue) Set(v string) error {
	err := c.Value.Set(v)
	if err != nil && c.fs.badValue == nil {
		c.fs.badValue = fmt.Errorf("bad --%s: %w", c.name, err)
	}
	return err
}

// IsBoolFlag lets a bool setting be given without a value.
func (c cliValue) IsBoolFlag() bool {
	b, ok := c.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// envName returns the environment variable for a flag.
func envName(flagName string) string {
	return "PARLEY_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parse parses args, then fills flags not given from the environment.
// Positional arguments may stand before, between or after the flags;
// after "--" everything is positional.
func (f *flagSet) parse(args []string, stdout io.Writer) error {
	rest := args
	for {
		if err := f.Parse(rest); err != nil {
			return f.parseError(err, stdout)
		}
		left := f.Args()
		if len(left) == 0 {
			break
		}
		if consumed := len(rest) - len(left); consumed > 0 && rest[consumed-1] == "--" {
			f.args = append(f.args, left...)
			break
		}
		f.args = append(f.args, left[0])
		rest = left[1:]
	}
	if len(f.args) > f.maxArgs {
		return usageError{fmt.Errorf("unexpected argument %q; run 'parley %s -h' for the flags", f.args[f.maxArgs], f.Name())}
	}
	f.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	var err error
	f.VisitAll(func(fl *flag.Flag) {
		if err == nil && !f.set[fl.Name] {
			err = f.fromEnv(fl)
		}
	})
	return err
}

// parseError turns an error of the flag package into what parse returns:
// errHelp after printing the usage for -h, the bad value of a setting,
// or the flag package's complaint said with the flag as -h lists it
// ("--frobnicate", not "-frobnicate").
func (f *flagSet) parseError(err error, stdout io.Writer) error {
	if errors.Is(err, flag.ErrHelp) {
		f.usage(stdout)
		return errHelp
	}
	if f.badValue != nil {
		return usageError{f.badValue}
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		msg = "unknown flag --" + strings.TrimLeft(name, "-")
	} else if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		msg = "--" + strings.TrimLeft(name, "-") + " needs a value"
	}
	return usageError{fmt.Errorf("%s; run 'parley %s -h' for the flags", msg, f.Name())}
}

// fromEnv sets fl from its environment variable, if that is set.
func (f *flagSet) fromEnv(fl *flag.Flag) error {
	name := envName(fl.Name)
	v, ok := os.LookupEnv(name)
	if !ok {
		return nil
	}
	vals := []string{v}
	if isList(fl.Value) {
		vals = splitList(v)
	}
	b, inTable := f.byFlag[fl.Name]
	for _, one := range vals {
		if !inTable {
			if err := fl.Value.Set(one); err != nil {
				return usageError{fmt.Errorf("bad value %q in %s: %v", v, name, err)}
			}
			continue
		}
		if err := b.value.Set(one); err != nil {
			return usageError{fmt.Errorf("bad %s: %w", name, err)}
		}
	}
	f.set[fl.Name] = true
	return nil
}

// isList reports whether v is a repeatable flag.
func isList(v flag.Value) bool {
	if c, ok := v.(cliValue); ok {
		v = c.Value
	}
	_, ok := v.(interface{ repeatable() })
	return ok
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// given reports whether a flag came from the command line or environment,
// so that the config file must not override it.
func (f *flagSet) given(name string) bool { return f.set[name] }

// applyFile fills the settings the command reads from config.toml (in
// dataDir) and that no flag or environment variable gave; the file's
// values of a merge setting are added to those.
func (f *flagSet) applyFile(file config.File, dataDir string) error {
	path := filepath.Join(dataDir, config.FileName)
	for _, b := range f.bound {
		if b.key == "" || !b.file.has(f.cmd) || (b.flag != "" && f.given(b.flag) && !b.merge) {
			continue
		}
		vals, ok := file.Value(b.key)
		if !ok {
			continue
		}
		for _, v := range vals {
			if b.fromFile != nil {
				v = b.fromFile(v, dataDir)
			}
			if err := b.value.Set(v); err != nil {
				return usageError{fmt.Errorf("bad %s in %s: %w", b.key, path, err)}
			}
		}
	}
	return nil
}

// usage prints the flags, with the argument each takes and its default.
func (f *flagSet) usage(w io.Writer) {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s\n\nflags (each also settable as PARLEY_<FLAG> in the environment):\n", f.synopsis)
	f.VisitAll(func(fl *flag.Flag) {
		if f.hidden[fl.Name] {
			return
		}
		arg, usage, def := f.describe(fl)
		b.WriteString("  --" + fl.Name)
		if arg != "" {
			b.WriteString(" " + arg)
		}
		b.WriteString("\n    \t" + strings.ReplaceAll(usage, "\n", "\n    \t"))
		if def != "" {
			fmt.Fprintf(&b, " (default %s)", def)
		}
		b.WriteString("\n")
	})
	_, _ = io.WriteString(w, b.String()) // -h output: nowhere to report a failed write
}

// describe returns what -h says of fl: its argument name (none for a
// bool), its help and its default when that is worth showing.
func (f *flagSet) describe(fl *flag.Flag) (arg, usage, def string) {
	if b, ok := f.byFlag[fl.Name]; ok {
		if b.arg == "" && !isBool(b.value) {
			b.arg = "VALUE"
		}
		if b.def == "false" {
			b.def = ""
		}
		return b.arg, b.usage, b.def
	}
	arg, usage = flag.UnquoteUsage(fl)
	switch fl.DefValue {
	case "", "0", "false":
	default:
		def = fl.DefValue
	}
	if arg == "value" {
		arg = "VALUE"
	}
	return arg, usage, def
}

func isBool(v flag.Value) bool {
	b, ok := v.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}
