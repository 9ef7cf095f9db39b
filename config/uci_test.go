package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseUCI(t *testing.T) {
	src := strings.Join([]string{
		"# a comment line",
		"package parkportal",
		"",
		"config parkportal 'main'",
		"\toption bare word",
		"\toption single 'two words'",
		`	option double "say \"hi\" \\ there"`,
		`	option escaped a\ b`,
		"\toption hash 'a#b' # trailing comment",
		"\toption empty ''",
		"\toption joined 'ab'\"cd\"ef",
		"\toption crlf 'x'\r",
		"\tlist l 'one'",
		"\tlist l \"two\"",
		"\tlist l three",
		"config sms",
		"\toption provider console",
	}, "\n")
	got, err := ParseUCI(src)
	if err != nil {
		t.Fatalf("ParseUCI: %v", err)
	}
	want := []*Section{
		{
			Type: "parkportal", Name: "main", Line: 4,
			Options: map[string]string{
				"bare":    "word",
				"single":  "two words",
				"double":  `say "hi" \ there`,
				"escaped": "a b",
				"hash":    "a#b",
				"empty":   "",
				"joined":  "abcdef",
				"crlf":    "x",
			},
			Lists: map[string][]string{"l": {"one", "two", "three"}},
		},
		{
			Type: "sms", Line: 16,
			Options: map[string]string{"provider": "console"},
			Lists:   map[string][]string{},
		},
	}
	if !reflect.DeepEqual(got, want) {
		for i := range got {
			t.Logf("got[%d] = %+v", i, *got[i])
		}
		t.Fatalf("ParseUCI mismatch; want %+v %+v", *want[0], *want[1])
	}
}

func TestParseUCIOptionReplaced(t *testing.T) {
	got, err := ParseUCI("config a\noption x 1\noption x 2\n")
	if err != nil {
		t.Fatal(err)
	}
	if v := got[0].Options["x"]; v != "2" {
		t.Errorf("repeated option = %q, want the last value 2", v)
	}
}

func TestParseUCIErrors(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"unterminated single", "config a\noption x 'abc", "line 2: unterminated single quote"},
		{"unterminated double", "config a\n\n  option x \"abc", "line 3: unterminated double quote"},
		{"escaped closing double", `config a` + "\n" + `option x "abc\"`, "line 2: unterminated double quote"},
		{"option outside section", "# c\noption x y", "line 2: option outside any config section"},
		{"list outside section", "list x y", "line 1: list outside any config section"},
		{"config without type", "config", "line 1: want `config <type> ['<name>']`"},
		{"config too many words", "config a b c", "line 1: want `config <type> ['<name>']`"},
		{"option without value", "config a\noption x", "line 2: want `option <name> '<value>'`"},
		{"option two values", "config a\noption x y z", "line 2: want `option <name> '<value>'`"},
		{"list without value", "config a\nlist x", "line 2: want `list <name> '<value>'`"},
		{"unknown keyword", "config a\n\n\nopt x y", `line 4: unknown keyword "opt"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseUCI(c.src)
			if err == nil {
				t.Fatalf("ParseUCI(%q) succeeded, want error %q", c.src, c.want)
			}
			if err.Error() != c.want {
				t.Errorf("ParseUCI(%q) error = %q, want %q", c.src, err, c.want)
			}
		})
	}
}

func TestSplitWords(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"   \t ", nil},
		{"# only comment", nil},
		{"a b\tc", []string{"a", "b", "c"}},
		{"a#b", []string{"a#b"}}, // # inside a word is not a comment
		{"a #b", []string{"a"}},
		{`'it''s'`, []string{"its"}},
		{`"a'b"`, []string{"a'b"}},
		{`'a"b'`, []string{`a"b`}},
		{`'a\b'`, []string{`a\b`}}, // no escapes in single quotes
		{`"a\nb"`, []string{"anb"}},
		{`trailing\`, []string{`trailing\`}},
		{`""`, []string{""}},
		{`x ''`, []string{"x", ""}},
	}
	for _, c := range cases {
		got, err := splitWords(c.in)
		if err != nil {
			t.Errorf("splitWords(%q): %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("splitWords(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzParseUCI(f *testing.F) {
	f.Add(LabDefault)
	f.Add("config a 'b'\n\toption x \"y\\\"z\" # c\n\tlist l 'm'\n")
	f.Add("option x y")
	f.Add("config a\noption x 'unterminated")
	f.Add("config a\noption x \"a\\")
	f.Add("package p\r\nconfig a b\r\n")
	f.Fuzz(func(t *testing.T, src string) {
		secs, err := ParseUCI(src)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("error %q does not name a line", err)
			}
			return
		}
		lines := strings.Count(src, "\n") + 1
		prev := 0
		for _, s := range secs {
			if s.Type == "" && !strings.Contains(src, "''") && !strings.Contains(src, `""`) {
				t.Fatalf("section with empty type from %q", src)
			}
			if s.Options == nil || s.Lists == nil {
				t.Fatalf("section %+v has nil maps", s)
			}
			if s.Line <= prev || s.Line > lines {
				t.Fatalf("section line %d out of order or range (prev %d, %d lines)", s.Line, prev, lines)
			}
			prev = s.Line
		}
	})
}
