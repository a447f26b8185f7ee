package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// protoDecl is one message or enum of a .proto (or of a proto block of
// docs/PROTOCOL.md): its qualified name (Ack.Status for a nested enum) and
// its members, "type name = N" for a message's fields (oneof members
// included) and "NAME = N" for an enum's values, sorted.
type protoDecl struct {
	kind    string // "message" or "enum"
	name    string
	members []string
}

var (
	protoField = regexp.MustCompile(`^(repeated\s+|optional\s+)?([\w.]+)\s+(\w+)\s*=\s*(\d+)$`)
	protoValue = regexp.MustCompile(`^(\w+)\s*=\s*(-?\d+)$`)
	protoLine  = regexp.MustCompile(`//[^\n]*`)
)

// parseProto reads the messages and enums of proto source: statements are
// split at ';', '{' and '}', so one-line declarations (as the document
// writes some) read as the .proto's own.
func parseProto(src string) (map[string]*protoDecl, error) {
	src = protoLine.ReplaceAllString(src, "")
	decls := map[string]*protoDecl{}
	type scope struct {
		decl *protoDecl // nil for a oneof (its fields belong to the message)
		name string
	}
	var stack []scope
	current := func() *protoDecl {
		for i := len(stack) - 1; i >= 0; i-- {
			if stack[i].decl != nil {
				return stack[i].decl
			}
		}
		return nil
	}
	qualified := func(name string) string {
		var parts []string
		for _, s := range stack {
			if s.decl != nil {
				parts = append(parts, s.name)
			}
		}
		return strings.Join(append(parts, name), ".")
	}
	stmt := ""
	for _, c := range src {
		if c != ';' && c != '{' && c != '}' {
			stmt += string(c)
			continue
		}
		s := strings.Join(strings.Fields(stmt), " ")
		stmt = ""
		switch c {
		case '{':
			f := strings.Fields(s)
			if len(f) != 2 {
				return nil, fmt.Errorf("block %q", s)
			}
			switch f[0] {
			case "message", "enum":
				d := &protoDecl{kind: f[0], name: qualified(f[1])}
				if decls[d.name] != nil {
					return nil, fmt.Errorf("%s %s declared twice", f[0], d.name)
				}
				decls[d.name] = d
				stack = append(stack, scope{d, f[1]})
			case "oneof":
				stack = append(stack, scope{nil, f[1]})
			default:
				return nil, fmt.Errorf("block %q", s)
			}
		case '}':
			if s != "" {
				return nil, fmt.Errorf("%q before '}'", s)
			}
			if len(stack) == 0 {
				return nil, fmt.Errorf("unbalanced '}'")
			}
			stack = stack[:len(stack)-1]
		case ';':
			d := current()
			if d == nil || s == "" || strings.HasPrefix(s, "reserved ") || strings.HasPrefix(s, "option ") {
				continue // syntax, package, option, import
			}
			if d.kind == "enum" {
				m := protoValue.FindStringSubmatch(s)
				if m == nil {
					return nil, fmt.Errorf("enum %s: %q", d.name, s)
				}
				d.members = append(d.members, m[1]+" = "+m[2])
				continue
			}
			m := protoField.FindStringSubmatch(s)
			if m == nil {
				return nil, fmt.Errorf("message %s: %q", d.name, s)
			}
			d.members = append(d.members, strings.TrimSpace(m[1]+m[2])+" "+m[3]+" = "+m[4])
		}
	}
	if len(stack) != 0 || strings.TrimSpace(stmt) != "" {
		return nil, fmt.Errorf("unterminated declaration")
	}
	for _, d := range decls {
		slices.Sort(d.members)
	}
	return decls, nil
}

// docSection returns the text of docs/PROTOCOL.md from the first line
// starting with start up to the next "## " heading.
func docSection(doc, start string) string {
	i := strings.Index(doc, "\n"+start)
	if i < 0 {
		return ""
	}
	rest := doc[i+1:]
	if j := strings.Index(rest[len(start):], "\n## "); j >= 0 {
		return rest[:len(start)+j]
	}
	return rest
}

// protoBlocks returns the fenced ```proto blocks of a text.
func protoBlocks(text string) []string {
	var out []string
	for {
		i := strings.Index(text, "```proto\n")
		if i < 0 {
			return out
		}
		text = text[i+len("```proto\n"):]
		j := strings.Index(text, "```")
		if j < 0 {
			return append(out, text)
		}
		out = append(out, text[:j])
		text = text[j+3:]
	}
}

// TestProtocolDocMatchesProtos checks that docs/PROTOCOL.md gives every
// wire message and enum of every .proto inline, in a ```proto block of the
// protocol's section, with exactly the .proto's fields (repeated, type,
// name, number) and enum values: the document and the code cannot drift
// apart. Messages only stored locally (not on the wire) are listed below
// and need not be in a proto block.
func TestProtocolDocMatchesProtos(t *testing.T) {
	doc, err := os.ReadFile("../../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	files := []struct {
		proto, section string
		local          []string // stored, never sent
	}{
		{"rooms/pb/rooms.proto", "## Rooms protocol", []string{"JoinedRoom", "StoredMessage"}},
		{"rooms/pb/sync.proto", "## Rooms protocol", nil},
		{"rooms/pb/membership.proto", "## Rooms protocol", []string{"StoredEpochKey"}},
		{"dm/pb/dm.proto", "## Direct messages", []string{"State", "OutboxRecord", "InboxRecord"}},
		{"transfer/pb/transfer.proto", "## File transfer protocol", nil},
		{"mailbox/pb/mailbox.proto", "## Offline delivery", []string{"Stored", "Sent"}},
	}
	seen := map[string]bool{}
	for _, f := range files {
		seen[f.proto] = true
		src, err := os.ReadFile(filepath.Join("../..", f.proto))
		if err != nil {
			t.Fatal(err)
		}
		want, err := parseProto(string(src))
		if err != nil {
			t.Fatalf("%s: %v", f.proto, err)
		}
		section := docSection(string(doc), f.section)
		if section == "" {
			t.Fatalf("docs/PROTOCOL.md has no section %q", f.section)
		}
		documented := map[string][]*protoDecl{}
		for i, b := range protoBlocks(section) {
			got, err := parseProto(b)
			if err != nil {
				t.Fatalf("docs/PROTOCOL.md %q, proto block %d: %v", f.section, i+1, err)
			}
			for name, d := range got {
				documented[name] = append(documented[name], d)
			}
		}
		for name, w := range want {
			if slices.Contains(f.local, name) {
				continue
			}
			ds := documented[name]
			if len(ds) == 0 {
				t.Errorf("%s: %s %s is in no proto block of docs/PROTOCOL.md %q", f.proto, w.kind, name, f.section)
				continue
			}
			for _, d := range ds {
				if d.kind != w.kind || !slices.Equal(d.members, w.members) {
					t.Errorf("%s: docs/PROTOCOL.md %q gives %s %s as\n  %s\nthe .proto has\n  %s", f.proto, f.section, d.kind, name,
						strings.Join(d.members, "; "), strings.Join(w.members, "; "))
				}
			}
		}
	}
	// Every .proto of the module is listed above.
	all, err := filepath.Glob("../../*/pb/*.proto")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob("../../*/*/pb/*.proto")
	for _, p := range append(all, more...) {
		rel, _ := filepath.Rel("../..", p)
		if !seen[filepath.ToSlash(rel)] {
			t.Errorf("%s is not checked against docs/PROTOCOL.md: add it to this test", rel)
		}
	}
}
