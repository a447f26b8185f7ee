package main

import (
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	slash "github.com/parley-chat/parley/command"
	"github.com/parley-chat/parley/internal/nodetest"
	"github.com/parley-chat/parley/internal/testnet"
)

// readmeBlocks returns the fenced code blocks of README.md with the
// language given: each block's lines, a line ending in a backslash
// joined with the next.
func readmeBlocks(t *testing.T, lang string) [][]string {
	t.Helper()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks [][]string
	var cur []string
	in := false
	for _, line := range strings.Split(strings.ReplaceAll(string(raw), "\\\n", " "), "\n") {
		switch {
		case !in && line == "```"+lang:
			in, cur = true, nil
		case in && line == "```":
			in = false
			blocks = append(blocks, cur)
		case in:
			cur = append(cur, line)
		}
	}
	if len(blocks) == 0 {
		t.Fatalf("README.md has no %s block", lang)
	}
	return blocks
}

// TestReadmeCommandLines: every parley command line in README.md's sh
// blocks parses (flags, arguments; "12D3KooW..." stands for a peer ID), and
// its first two commands are the ones .ci/run and a newcomer rely on.
func TestReadmeCommandLines(t *testing.T) {
	clearEnv(t)
	blocks := readmeBlocks(t, "sh")
	first := blocks[0]
	if len(first) < 2 || !strings.HasPrefix(first[0], "go run ./cmd/parley ") || !strings.HasPrefix(first[1], "go test -race -timeout 30m ./... ") {
		t.Fatalf("README's first commands changed: %q", first)
	}
	p, err := peer.IDFromPrivateKey(testnet.NewKey(t))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, b := range blocks {
		for _, line := range b {
			line = strings.TrimSpace(line)
			if i := strings.Index(line, " #"); i >= 0 {
				line = line[:i]
			}
			args := strings.Fields(strings.ReplaceAll(line, "12D3KooW...", p.String()))
			if len(args) == 0 || (args[0] != "./parley" && args[0] != "parley") {
				continue
			}
			checked++
			if _, err := parseCommandLine(args[1:], io.Discard); err != nil {
				t.Errorf("README: %q: %v", line, err)
			}
		}
	}
	if checked < 3 {
		t.Fatalf("only %d parley command lines found in README.md", checked)
	}
}

// TestReadmeSlashCommands: every slash command README.md shows in its
// text blocks (and names in backquotes) exists.
func TestReadmeSlashCommands(t *testing.T) {
	n, _ := nodetest.New(t, nil)
	known := make(map[string]bool)
	for _, c := range slash.New(n).Commands() {
		known[c.Name] = true
	}
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, m := range regexp.MustCompile("(?m)(?:^|`|\\s{2,})/([a-z]+)(?:[ `.,;)]|$)").FindAllStringSubmatch(string(raw), -1) {
		seen++
		if !known[m[1]] {
			t.Errorf("README.md shows /%s, which is no command", m[1])
		}
	}
	if seen < 10 {
		t.Fatalf("only %d slash commands found in README.md", seen)
	}
}
