package config

import (
	"fmt"
	"strings"
)

// A Section is one `config <type> '<name>'` block of a UCI file.
type Section struct {
	Type    string
	Name    string
	Options map[string]string
	Lists   map[string][]string
	Line    int // where the section starts, for error messages
}

// ParseUCI reads the subset of UCI syntax that /etc/config files use:
// `config`, `option` and `list` lines, single- or double-quoted or bare
// words, and # comments. It reads the same file on OpenWrt and in the lab,
// so the daemon has one config schema rather than a UCI one and a private one.
func ParseUCI(src string) ([]*Section, error) {
	var (
		sections []*Section
		cur      *Section
	)
	for i, raw := range strings.Split(src, "\n") {
		lineNo := i + 1
		words, err := splitWords(raw)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", lineNo, err)
		}
		if len(words) == 0 {
			continue
		}
		switch words[0] {
		case "package":
			// `package parkportal` is legal UCI; nothing to do.
		case "config":
			if len(words) < 2 || len(words) > 3 {
				return nil, fmt.Errorf("line %d: want `config <type> ['<name>']`", lineNo)
			}
			cur = &Section{Type: words[1], Options: map[string]string{}, Lists: map[string][]string{}, Line: lineNo}
			if len(words) == 3 {
				cur.Name = words[2]
			}
			sections = append(sections, cur)
		case "option", "list":
			if cur == nil {
				return nil, fmt.Errorf("line %d: %s outside any config section", lineNo, words[0])
			}
			if len(words) != 3 {
				return nil, fmt.Errorf("line %d: want `%s <name> '<value>'`", lineNo, words[0])
			}
			if words[0] == "option" {
				cur.Options[words[1]] = words[2]
			} else {
				cur.Lists[words[1]] = append(cur.Lists[words[1]], words[2])
			}
		default:
			return nil, fmt.Errorf("line %d: unknown keyword %q", lineNo, words[0])
		}
	}
	return sections, nil
}

// splitWords splits one line the way the UCI shell lexer does for the
// constructs config files use: quotes group, backslash escapes inside double
// quotes and bare words, # starts a comment outside quotes.
func splitWords(line string) ([]string, error) {
	var (
		words []string
		b     strings.Builder
		in    bool // inside a word
	)
	flush := func() {
		if in {
			words = append(words, b.String())
			b.Reset()
			in = false
		}
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '#' && !in:
			flush()
			return words, nil
		case c == ' ' || c == '\t' || c == '\r':
			flush()
		case c == '\'':
			in = true
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated single quote")
			}
			b.WriteString(line[i+1 : i+1+end])
			i += end + 1
		case c == '"':
			in = true
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) {
					i++
				}
				b.WriteByte(line[i])
			}
			if i >= len(line) {
				return nil, fmt.Errorf("unterminated double quote")
			}
		case c == '\\' && i+1 < len(line):
			in = true
			i++
			b.WriteByte(line[i])
		default:
			in = true
			b.WriteByte(c)
		}
	}
	flush()
	return words, nil
}
