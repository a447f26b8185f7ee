// Command parley is a secure peer-to-peer chat peer on libp2p.
//
//	parley [chat] [flags]   run a chat peer (the default)
//	parley serve [flags]    run an always-on DHT, relay and bootstrap node
//	parley id [flags]       print the peer ID, fingerprint and data dir
//	parley key encrypt|decrypt|passphrase [flags]
//	                        encrypt the identity key with a passphrase, or undo it
//	parley keygen --swarm-key FILE
//	                        write a new private-network swarm key
//	parley bench [flags]    run the benchmark suite on loopback (docs/BENCHMARKS.md)
//	parley version          print the version
//
// See README.md and docs/ for the flags, the commands and the JSON events.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// exitUsage is the exit code for bad flags and arguments; exitFailure for
// everything else that went wrong.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError marks errors in what the user typed on the command line.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() {
	// SIGINT and SIGTERM end ctx. That only stops what runs for the
	// command (chat's command loop or terminal UI); chat then closes the
	// node exactly as after /quit, which announces leaving in every room,
	// within shutdownTimeout. The node's services do not run on ctx: they
	// run until node.Close (see node.New).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := startProfile(os.Stderr)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stopProfile()
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := runArgs(ctx, args, stdin, stdout, stderr)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errHelp):
		return exitOK
	default:
		_, _ = fmt.Fprintf(stderr, "parley: %s\n", oneLine(err.Error())) // nowhere left to report a failed write
		var ue usageError
		if errors.As(err, &ue) {
			return exitUsage
		}
		return exitFailure
	}
}

// runArgs parses the command line and runs the command. A permission
// error on the data dir says what to do about it.
func runArgs(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd, err := parseCommandLine(args, stdout)
	if err != nil {
		return err
	}
	err = cmd.run(ctx, stdin, stdout, stderr)
	if d, ok := cmd.(dataDirUser); ok {
		err = explainDataDir(d.usedDataDir(), err)
	}
	return err
}

// command is a parsed command line, ready to run.
type command interface {
	run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error
}

// commandFunc is a command without flags.
type commandFunc func(stdout io.Writer) error

func (f commandFunc) run(_ context.Context, _ io.Reader, stdout, _ io.Writer) error { return f(stdout) }

// parseCommandLine picks the subcommand (chat by default) and parses its
// flags and arguments. It runs nothing: no node, no key, no file written,
// beyond the usage text that -h prints to stdout.
func parseCommandLine(args []string, stdout io.Writer) (command, error) {
	if len(args) == 1 && isHelpFlag(args[0]) {
		args = []string{"help"} // parley --help lists the commands, as parley help does
	}
	sub := "chat"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "chat":
		return asCommand(parseChat(args, stdout))
	case "serve":
		return asCommand(parseServe(args, stdout))
	case "send":
		return asCommand(parseSend(args, stdout))
	case "id":
		return asCommand(parseID(args, stdout))
	case "key":
		return asCommand(parseKey(args, stdout))
	case "keygen":
		return asCommand(parseKeygen(args, stdout))
	case "bench":
		return asCommand(parseBench(args, stdout))
	case "version":
		return commandFunc(func(stdout io.Writer) error {
			_, err := fmt.Fprintf(stdout, "parley %s\n", version)
			return err
		}), nil
	case "help":
		if len(args) == 1 && args[0] != "help" {
			return parseCommandLine([]string{args[0], "-h"}, stdout) // parley help send
		}
		return commandFunc(func(stdout io.Writer) error {
			printUsage(stdout)
			return nil
		}), nil
	default:
		return nil, usageError{fmt.Errorf("unknown command %q; run 'parley help' for the list", sub)}
	}
}

// asCommand turns the result of a parseXxx function into a command (and
// never a non-nil interface holding a nil pointer).
func asCommand[C command](c C, err error) (command, error) {
	if err != nil {
		return nil, err
	}
	return c, nil
}

// isHelpFlag reports whether arg asks for help as the flag package
// understands it.
func isHelpFlag(arg string) bool {
	switch arg {
	case "-h", "--h", "-help", "--help":
		return true
	}
	return false
}

func printUsage(w io.Writer) {
	_, _ = fmt.Fprint(w, `usage: parley [command] [flags]

commands:
  chat      run a chat peer (the default)
  serve     run an always-on DHT, relay and bootstrap node (docs/SERVE.md)
  send      send one file: parley send --to PEER PATH (exit 0 once the recipient verified it)
  id        print the peer ID, fingerprint and data dir
  key       encrypt|decrypt|passphrase: protect the identity key with a passphrase
  keygen    --swarm-key FILE: write a new private-network swarm key
  bench     run the benchmark suite on loopback and print a table (docs/BENCHMARKS.md)
  version   print the version
  help      this text; 'parley help COMMAND' lists a command's flags

Run 'parley' to start chatting (type /help inside). 'parley chat -h' lists the chat flags,
'parley send -h' those of send, and so on. Received files go to DATA_DIR/downloads
('parley id' prints DATA_DIR); --downloads DIR or downloads = "DIR" in config.toml moves them.
`)
}

func oneLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}
