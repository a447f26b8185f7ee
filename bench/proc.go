package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// procEvent is one --json event line of a parley process, with the time
// the line was read.
type procEvent struct {
	m  map[string]any
	at time.Time
}

func (e procEvent) typ() string         { return e.str("type") }
func (e procEvent) str(k string) string { s, _ := e.m[k].(string); return s }

// data returns the "data" object of an info event.
func (e procEvent) data() map[string]any { d, _ := e.m["data"].(map[string]any); return d }

// parleyProc is a real `parley` process driven through stdin, line mode,
// with --json events on stdout. The bench only ever signals processes it
// started.
type parleyProc struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan procEvent
	quit   chan struct{} // closed by stop: the reader drops what is left
	done   chan struct{} // closed when the process has exited
	stderr *syncBuf
	ready  procEvent
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 64<<10 { // keep the start, where errors are
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startParley runs `bin --json --data-dir dir --nick name --no-mdns
// --listen listen args...` with env added to the environment, and waits
// for its ready event.
func startParley(ctx context.Context, bin, name, dir, listen string, env []string, args ...string) (*parleyProc, error) {
	argv := append([]string{"--json", "--data-dir", dir, "--nick", name, "--no-mdns", "--listen", listen}, args...)
	return startProc(ctx, bin, name, argv, env)
}

// startCopyPeer runs `bin bench` as a copy peer over transport tr (see
// CopyPeer), with env added to the environment, and waits for its ready
// event.
func startCopyPeer(ctx context.Context, bin, name, tr string, env []string) (*parleyProc, error) {
	return startProc(ctx, bin, name, []string{"bench"}, append([]string{CopyPeerEnv + "=" + tr}, env...))
}

// startProc runs bin with argv and env added to the environment, reads
// JSON event lines from its stdout, and waits for its ready event.
func startProc(ctx context.Context, bin, name string, argv, env []string) (*parleyProc, error) {
	cmd := exec.Command(bin, argv...) // #nosec G204 -- the parley binary itself, started by `parley bench`
	cmd.Env = append(os.Environ(), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &parleyProc{name: name, cmd: cmd, stdin: stdin, events: make(chan procEvent, 256),
		quit: make(chan struct{}), done: make(chan struct{}), stderr: &syncBuf{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go p.read(stdout)
	ready, err := p.wait(ctx, 30*time.Second, "ready", nil)
	if err != nil {
		p.stop()
		return nil, err
	}
	p.ready = ready
	return p, nil
}

func (p *parleyProc) read(stdout io.Reader) {
	defer close(p.done)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		e := procEvent{at: time.Now()}
		if err := json.Unmarshal(sc.Bytes(), &e.m); err != nil {
			continue
		}
		select {
		case p.events <- e:
		case <-p.quit:
		}
	}
	_ = p.cmd.Wait()
}

// addr returns the process's listen address (with /p2p/) that contains
// part.
func (p *parleyProc) addr(part string) (string, error) {
	addrs, _ := p.ready.m["addrs"].([]any)
	for _, a := range addrs {
		if s, _ := a.(string); strings.Contains(s, part) {
			return s, nil
		}
	}
	return "", fmt.Errorf("%s: no %s address in %v", p.name, part, addrs)
}

func (p *parleyProc) id() string { return p.ready.str("peer_id") }

// send writes one command line.
func (p *parleyProc) send(line string) error {
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		return fmt.Errorf("%s: write %q: %w", p.name, line, err)
	}
	return nil
}

// wait returns the first event from now on of type typ for which match
// (if not nil) is true; a file_failed event of the process fails it.
func (p *parleyProc) wait(ctx context.Context, d time.Duration, typ string, match func(procEvent) bool) (procEvent, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case e := <-p.events:
			if e.typ() == typ && (match == nil || match(e)) {
				return e, nil
			}
			if e.typ() == "file_failed" && typ != "file_failed" {
				return e, fmt.Errorf("%s: file_failed: %s (%s)", p.name, e.str("error"), e.str("code"))
			}
		case <-p.done:
			return procEvent{}, fmt.Errorf("%s exited before a %s event; stderr: %s", p.name, typ, p.stderr.String())
		case <-timer.C:
			return procEvent{}, fmt.Errorf("%s: no %s event within %v", p.name, typ, d)
		case <-ctx.Done():
			return procEvent{}, ctx.Err()
		}
	}
}

// stop sends /quit and closes stdin, so that the process ends cleanly
// (and writes its profile, if it makes one), and kills it if it has not
// ended within 20 s.
func (p *parleyProc) stop() {
	_ = p.send("/quit")
	_ = p.stdin.Close()
	close(p.quit)
	select {
	case <-p.done:
		return
	case <-time.After(20 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// procCPU returns the user+system CPU time the process used so far
// (Linux; 0 elsewhere).
func (p *parleyProc) cpu() time.Duration { return processCPU(p.cmd.Process.Pid) }

var errNoBinary = errors.New("the e2e scenario needs the parley binary (Config.Binary; `parley bench` sets it to itself)")
