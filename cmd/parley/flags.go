package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// errHelp is returned after -h printed the usage.
var errHelp = errors.New("help shown")

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// flagSet wraps flag.FlagSet with the precedence flags > environment >
// config file > defaults. Environment variables are PARLEY_ plus the flag
// name in upper case with '-' as '_' (--data-dir: PARLEY_DATA_DIR);
// repeatable flags take a comma-separated list there.
type flagSet struct {
	*flag.FlagSet
	set map[string]bool // flags given on the command line or in the environment
	// maxArgs is the number of positional arguments allowed after the
	// flags (0 for most subcommands).
	maxArgs int
}

func newFlagSet(name string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &flagSet{FlagSet: fs, set: make(map[string]bool)}
}

// EnvName returns the environment variable for a flag.
func envName(flagName string) string {
	return "PARLEY_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parse parses args, then fills flags not given from the environment.
func (f *flagSet) parse(args []string, stdout io.Writer) error {
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			f.usage(stdout)
			return errHelp
		}
		return usageError{fmt.Errorf("%w; run 'parley %s -h' for the flags", err, f.Name())}
	}
	if f.NArg() > f.maxArgs {
		return usageError{fmt.Errorf("unexpected argument %q; run 'parley %s -h' for the flags", f.Arg(f.maxArgs), f.Name())}
	}
	f.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	var err error
	f.VisitAll(func(fl *flag.Flag) {
		if err != nil || f.set[fl.Name] {
			return
		}
		v, ok := os.LookupEnv(envName(fl.Name))
		if !ok {
			return
		}
		vals := []string{v}
		if _, isList := fl.Value.(*listFlag); isList {
			vals = splitList(v)
		}
		for _, one := range vals {
			if e := fl.Value.Set(one); e != nil {
				err = usageError{fmt.Errorf("bad value %q in %s: %v", v, envName(fl.Name), e)}
				return
			}
		}
		f.set[fl.Name] = true
	})
	return err
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

func (f *flagSet) usage(w io.Writer) {
	_, _ = fmt.Fprintf(w, "usage: parley %s [flags]\n\nflags (each also settable as PARLEY_<FLAG> in the environment):\n", f.Name())
	f.SetOutput(w)
	f.PrintDefaults()
	f.SetOutput(io.Discard)
}
