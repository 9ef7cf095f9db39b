package tmpl_test

import (
	"errors"
	"html/template"
	"os"
	"strings"
	"testing"

	"github.com/parkwifi/parkportal/internal/tmpl"
	"github.com/parkwifi/parkportal/internal/tmpl/escape"
)

type item struct {
	Name, Key string
	OK, Skip  bool
}

type inner struct{ Value string }

type nested struct{ Inner *inner }

type problem struct{ Code, Msg string }

type stringerT struct{ v string }

func (s stringerT) String() string { return "<" + s.v + ">" }

type data struct {
	Lang, Title, Link, Link2, Query, Text string
	Problem                               *problem
	Items                                 []item
	Map                                   map[string]string
	Empty                                 []string
	Flag                                  bool
	Zero                                  int
	Count                                 int
	Unsigned                              uint64
	Ptr                                   *item
	Stringer                              stringerT
	Err                                   error
	Strings                               []string
	Nested                                nested
}

var page = escape.Page{Name: "test", Entry: "layout", Files: []string{"layout.html", "content.html"}}

var funcs = tmpl.FuncMap{
	"upper": strings.ToUpper,
	"join":  strings.Join,
	"dict": func(kv ...any) (map[string]any, error) {
		if len(kv)%2 != 0 {
			return nil, errors.New("odd")
		}
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m, nil
	},
}

// bound are the per-request funcs, as a page's language binds them.
func bound(lang string) tmpl.FuncMap {
	return tmpl.FuncMap{
		"T":         func(key string) string { return lang + ":" + key },
		"otherLang": func() string { return map[string]string{"ar": "en"}[lang] },
	}
}

func all(lang string) map[string]any {
	m := map[string]any{}
	for k, v := range funcs {
		m[k] = v
	}
	for k, v := range bound(lang) {
		m[k] = v
	}
	return m
}

func samples() []data {
	base := data{
		Lang: "ar", Title: `Park <b>"O'Neil"</b> & co +1`, Link: "https://example.org/a b?x=1&y=<2>",
		Link2: "javascript:alert(1)", Query: "a&b=c d/é", Text: "line\n</textarea><script>",
		Problem: &problem{Code: "bad-<code>", Msg: "رسالة & \"message\""},
		Items: []item{{Name: "one", Key: "k1", OK: true}, {Name: "two", Key: "k2", Skip: true}, {Name: "three", Key: "nokey"},
			{Name: "4"}, {Name: "5"}, {Name: "6"}, {Name: "7"}, {Name: "8"}},
		Map:  map[string]string{"k1": "v<1>", "k2": "v2", "a": "first"},
		Flag: true, Count: 7, Unsigned: 7,
		Ptr:      &item{Name: "pointed"},
		Stringer: stringerT{"s&t"}, Err: errors.New("an <error>"),
		Strings: []string{"x", "<y>"},
		Nested:  nested{Inner: &inner{Value: "deep"}},
	}
	en := base
	en.Lang, en.Problem, en.Flag, en.Zero, en.Count, en.Unsigned, en.Ptr = "en", nil, false, 1, 3, 2, nil
	en.Items = en.Items[:1]
	en.Map = nil
	en.Link, en.Link2 = "/relative/path?x=%41%zz", "mailto:staff@example.org"
	empty := data{Lang: "en", Items: []item{{}}, Nested: nested{Inner: &inner{}}}
	return []data{base, en, empty}
}

func parsed(t testing.TB) *tmpl.Set {
	t.Helper()
	src, err := escape.Escape(os.DirFS("testdata"), all("ar"), page)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tmpl.Parse("test", src, funcs, "T", "otherLang")
	if err != nil {
		t.Fatalf("parsing the escaped templates: %v\n%s", err, src)
	}
	return s
}

// TestMatchesHTMLTemplate renders the test pages with html/template and
// with tmpl from html/template's escaped source: the output must be the
// same byte for byte.
func TestMatchesHTMLTemplate(t *testing.T) {
	s := parsed(t)
	for i, d := range samples() {
		want, err := escape.Render(os.DirFS("testdata"), all(d.Lang), page, d)
		if err != nil {
			t.Fatalf("sample %d: html/template: %v", i, err)
		}
		var got strings.Builder
		if err := s.Execute(&got, "layout", d, bound(d.Lang)); err != nil {
			t.Fatalf("sample %d: tmpl: %v", i, err)
		}
		if got.String() != want {
			t.Errorf("sample %d differs\n--- html/template\n%s\n--- tmpl\n%s", i, want, got.String())
		}
	}
}

type withMethod struct{ Name string }

func (withMethod) Greeting() string { return "hello" }

// TestNoMethods: a template that calls a method fails, naming the fix;
// html/template would have called it.
func TestNoMethods(t *testing.T) {
	s, err := tmpl.Parse("m", `{{define "p"}}{{.Greeting}}{{end}}{{define "f"}}{{.Name}}{{end}}`, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	err = s.Execute(&b, "p", withMethod{"x"}, nil)
	if err == nil || !strings.Contains(err.Error(), "can't evaluate field Greeting") || !strings.Contains(err.Error(), "template func") {
		t.Errorf("calling a method: err = %v", err)
	}
	b.Reset()
	if err := s.Execute(&b, "f", &withMethod{"x"}, nil); err != nil || b.String() != "x" {
		t.Errorf("a field through a pointer: %q, %v", b.String(), err)
	}
}

func TestParseRefusesUnknownFuncs(t *testing.T) {
	if _, err := tmpl.Parse("x", `{{define "p"}}{{. | _html_template_jsvalescaper}}{{end}}`, nil); err == nil {
		t.Error("an escaper tmpl does not implement parsed")
	}
	if _, err := tmpl.Parse("x", `{{define "p"}}{{call .F}}{{end}}`, nil); err == nil {
		t.Error("an unsupported builtin parsed")
	}
	if _, err := tmpl.Parse("x", `{{define "p"}}{{T "a"}}{{end}}`, nil); err == nil {
		t.Error("a func neither given nor bound parsed")
	}
}

func TestExecuteNeedsBoundFuncs(t *testing.T) {
	s, err := tmpl.Parse("x", `{{define "p"}}{{T "a"}}{{end}}`, nil, "T")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := s.Execute(&b, "p", nil, nil); err == nil || !strings.Contains(err.Error(), "func T not supplied") {
		t.Errorf("missing bound func: %v", err)
	}
	if err := s.Execute(&b, "p", nil, tmpl.FuncMap{"T": func(k string) string { return "<" + k }}); err != nil || b.String() != "<a" {
		t.Errorf("bound func: %q, %v", b.String(), err)
	}
	if err := s.Execute(&b, "nope", nil, nil); err == nil {
		t.Error("executing an undefined template succeeded")
	}
}

func TestFuncErrorsAndPanics(t *testing.T) {
	s, err := tmpl.Parse("x", `{{define "e"}}{{fail}}{{end}}{{define "p"}}{{boom}}{{end}}{{define "r"}}{{template "r" .}}{{end}}`, tmpl.FuncMap{
		"fail": func() (string, error) { return "", errors.New("no good") },
		"boom": func() string { panic("kaput") },
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"e": "error calling fail: no good", "p": "kaput", "r": "maximum template depth"} {
		var b strings.Builder
		if err := s.Execute(&b, name, nil, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", name, err, want)
		}
	}
}

// FuzzEscapersMatchHTMLTemplate feeds any text a visitor or staff member
// could type (a phone number, a park name, a URL) through every context
// the pages print values in, with html/template and with tmpl.
func FuzzEscapersMatchHTMLTemplate(f *testing.F) {
	for _, s := range []string{"", "33123456", "<script>", "javascript:x", "a&b=c d", "%zz%41", "\x00\ufffd\ufdd0", "رمز +974", "'\"+<>&"} {
		f.Add(s)
	}
	const src = `{{define "p"}}<p title="{{.}}">{{.}}</p><a href="{{.}}">x</a><a href="/q?x={{.}}">y</a><textarea>{{.}}</textarea>{{end}}`
	ht := template.Must(template.New("x").Parse(src))
	escaped, err := escape.EscapeTemplate(template.Must(template.New("x").Parse(src)), "p", "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	ts, err := tmpl.Parse("p", escaped, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var b strings.Builder
		if err := ts.Execute(&b, "p", s, nil); err != nil {
			t.Fatal(err)
		}
		var w strings.Builder
		if err := ht.ExecuteTemplate(&w, "p", s); err != nil {
			t.Fatal(err)
		}
		if b.String() != w.String() {
			t.Errorf("%q:\nhtml/template %s\ntmpl          %s", s, w.String(), b.String())
		}
	})
}
