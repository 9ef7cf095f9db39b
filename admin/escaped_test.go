package admin

import (
	"flag"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/config"
	"github.com/parkwifi/parkportal/internal/tmpl"
	"github.com/parkwifi/parkportal/internal/tmpl/escape"
	"github.com/parkwifi/parkportal/settings"
)

var update = flag.Bool("update", false, "rewrite the escaped templates in web/escaped")

func escapePages() []escape.Page {
	var out []escape.Page
	for _, n := range pageNames {
		out = append(out, escape.Page{Name: n, Entry: "layout.html", Files: []string{"layout.html", n + ".html"}})
	}
	return out
}

// htmlFuncs are the funcs html/template parses the sources with: the
// static ones and a page's bound ones.
func htmlFuncs(bound tmpl.FuncMap) map[string]any {
	m := map[string]any{}
	for k, v := range staticFuncs {
		m[k] = v
	}
	for k, v := range bound {
		m[k] = v
	}
	return m
}

// TestEscapedPages: web/escaped holds what html/template's escaper makes
// of the sources in web; with -update it is rewritten.
func TestEscapedPages(t *testing.T) {
	p := &page{Lang: "ar"}
	if err := escape.Sync(os.DirFS("web"), htmlFuncs(p.funcs()), escapePages(), "web/escaped", *update); err != nil {
		t.Fatal(err)
	}
}

// dualRenderer renders every page twice, with the daemon's renderer and
// with html/template from the sources, records any difference and
// answers with the daemon's.
type dualRenderer struct {
	t      *testing.T
	name   string
	daemon renderer
	pages  *int
}

func (d dualRenderer) Execute(w io.Writer, entry string, data any, bound tmpl.FuncMap) error {
	var got strings.Builder
	if err := d.daemon.Execute(&got, entry, data, bound); err != nil {
		d.t.Errorf("%s: %v", d.name, err)
	}
	want, err := escape.Render(os.DirFS("web"), htmlFuncs(bound), escape.Page{Name: d.name, Entry: entry, Files: []string{"layout.html", d.name + ".html"}}, data)
	if err != nil {
		d.t.Errorf("%s: html/template: %v", d.name, err)
	}
	if got.String() != want {
		d.t.Errorf("%s: renderers differ\n--- html/template\n%s\n--- daemon\n%s", d.name, want, got.String())
	}
	*d.pages++
	_, err = io.WriteString(w, got.String())
	return err
}

// TestConsoleMatchesHTMLTemplate drives the console through every page,
// in both languages and the states staff meet (field errors, a token
// shown once, a search, a role that may not act), each page rendered by
// the daemon's renderer and by html/template from the sources: the bytes
// must be the same.
func TestConsoleMatchesHTMLTemplate(t *testing.T) {
	saved := pages
	defer func() { pages = saved }()
	rendered := 0
	wrapped := map[string]renderer{}
	for name, r := range saved() {
		wrapped[name] = dualRenderer{t: t, name: name, daemon: r, pages: &rendered}
	}
	pages = func() map[string]renderer { return wrapped }
	e := newEnv(t)
	a, v := e.login("admin"), e.login("viewer")
	for i, lang := range []string{"ar", "en"} {
		// The second round with the SMS provider refusing our account.
		if i == 1 {
			e.srv.SetSMSFault(func() (string, time.Time, bool) { return "http-402", e.clock.Now(), true })
		}
		v.get("/login?lang=" + lang)
		for _, path := range []string{"/", "/sessions", "/sessions?q=" + url.QueryEscape(`"><x>`), "/sessions?q=nobody", "/settings", "/accounts", "/audit", "/settings?ok=saved"} {
			a.get(path + sep(path) + "lang=" + lang)
		}
		v.get("/accounts?lang=" + lang)
		v.get("/sessions?lang=" + lang)
		form := validSettingsForm()
		form.Set("rate_down", "fast")
		form.Set("name_en", strings.Repeat("x", 70))
		a.post("/settings?lang="+lang, form, nil).Body.Close()
		a.post("/accounts/viewer?lang="+lang, url.Values{"action": {"token"}, "label": {"<ci>"}}, nil).Body.Close()
	}
	if rendered < 26 {
		t.Errorf("only %d pages rendered", rendered)
	}
}

var keyRE = regexp.MustCompile(`\b(T|N) "([^"]+)"`)

// TestConsoleKeysExist: every key a page names ({{T "key"}}, {{N "key" n}})
// or builds (f.FIELD, role.ROLE, ok.WHAT) and every key the code asks
// for is in the catalogue, of the right kind.
func TestConsoleKeysExist(t *testing.T) {
	found := 0
	check := func(where, kind, key string) {
		found++
		txt, ok := messages[key]
		switch {
		case !ok:
			t.Errorf("%s: %q is not in the catalogue", where, key)
		case kind == "N" && !txt.Counted():
			t.Errorf("%s: N %q is not a counted text", where, key)
		case kind == "T" && txt.Counted():
			t.Errorf("%s: T %q is a counted text; use N", where, key)
		}
	}
	files, _ := os.ReadDir("web")
	for _, f := range files {
		if !strings.HasSuffix(f.Name(), ".html") {
			continue
		}
		src, err := os.ReadFile("web/" + f.Name())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range keyRE.FindAllStringSubmatch(string(src), -1) {
			check(f.Name(), m[1], m[2])
		}
	}
	for _, name := range []string{"console.go", "api.go", "server.go", "users.go"} {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`\.T\("([^"]+)"\)`).FindAllStringSubmatch(string(src), -1) {
			check(name, "T", m[1])
		}
	}
	form := formOf(settings.FromConfig(config.Defaults().Site))
	for k := range form.V {
		check("settings form", "T", "f."+k)
	}
	for k := range form.Bools {
		check("settings form", "T", "f."+k)
	}
	for _, r := range []Role{Viewer, Operator, Admin} {
		check("roles", "T", "role."+string(r))
	}
	for _, ok := range []string{"kicked", "extended", "rate", "saved", "account"} {
		check("flash", "T", "ok."+ok)
	}
	if found < 60 {
		t.Fatalf("checked only %d keys: the scan is broken", found)
	}
}

// TestMessagesComplete: every console text has both languages and every
// plural form each needs.
func TestMessagesComplete(t *testing.T) {
	for _, err := range messages.Check() {
		t.Error(err)
	}
}

func sep(path string) string {
	if strings.Contains(path, "?") {
		return "&"
	}
	return "?"
}
