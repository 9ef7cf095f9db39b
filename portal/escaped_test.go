package portal

import (
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/internal/tmpl/escape"
	"github.com/parkwifi/parkportal/limits"
)

var update = flag.Bool("update", false, "rewrite the escaped templates in web/escaped")

func escapePages() []escape.Page {
	var pages []escape.Page
	for _, n := range pageNames {
		pages = append(pages, escape.Page{Name: n, Entry: "layout", Files: []string{"layout.html", n + ".html"}})
	}
	return pages
}

// htmlFuncs are the funcs html/template parses the sources with.
func htmlFuncs(lang string) map[string]any {
	m := map[string]any{}
	for k, v := range funcsFor(lang) {
		m[k] = v
	}
	return m
}

// TestEscapedPages: web/escaped holds what html/template's escaper makes
// of the sources in web; with -update it is rewritten.
func TestEscapedPages(t *testing.T) {
	if err := escape.Sync(os.DirFS("web"), htmlFuncs(langAR), escapePages(), "web/escaped", *update); err != nil {
		t.Fatal(err)
	}
}

// TestPagesMatchHTMLTemplate renders every page in both languages, in
// the states a visitor meets, with html/template from the sources and
// with the daemon's renderer: the bytes must be the same.
func TestPagesMatchHTMLTemplate(t *testing.T) {
	v := newVisitor(1)
	p := newParkWith(t, nil, func(o *Options) {
		o.Site.RateDown = 8e6
		o.Site.RetentionDays = 90
		o.Site.PrivacyURL = "https://example.org/privacy?a=1&b=<2>"
		o.Site.TermsAR, o.Site.TermsEN = "شرط أول\n\nشرط ثانٍ", ""
		o.Site.RequireTerms = true
	}, v)
	views := map[string][]*view{}
	for _, lang := range []string{langAR, langEN} {
		plain := p.srv.newView(lang)
		withProblem := p.srv.newView(lang)
		withProblem.Problem, withProblem.Phone = wrongPIN(3), `33 <"12">`
		pin := p.srv.newView(lang)
		pin.Phone, pin.PhoneE164, pin.Problem = "+974••••3456", "+97433123456", limited(limits.Decision{Reason: limits.PINBackoff, RetryAfter: 90 * time.Second})
		status := p.srv.newView(lang)
		status.Remaining, status.SecondsLeft, status.DataUsed, status.Speed = "3 ساعات و59 دقيقة", 14399, "12.5 MB", "8 Mbit/s"
		terms := p.srv.newView(lang)
		terms.Terms, terms.TermsLang, terms.TermsDir = paragraphs("one & <two>\n\nthree"), "ar", "rtl"
		notice := p.srv.newView(lang)
		notice.Notice = tr(lang, "logout.done")
		views["splash"] = append(views["splash"], plain, withProblem, notice)
		views["pin"] = append(views["pin"], pin)
		views["status"] = append(views["status"], status)
		views["terms"] = append(views["terms"], terms)
	}
	for _, page := range escapePages() {
		if len(views[page.Name]) == 0 {
			t.Errorf("no views for page %s", page.Name)
		}
		for i, v := range views[page.Name] {
			want, err := escape.Render(os.DirFS("web"), htmlFuncs(v.Lang), page, v)
			if err != nil {
				t.Fatalf("%s %d: html/template: %v", page.Name, i, err)
			}
			var got strings.Builder
			if err := p.srv.pages[page.Name].Execute(&got, "layout", v, funcsFor(v.Lang)); err != nil {
				t.Fatalf("%s %d: %v", page.Name, i, err)
			}
			if got.String() != want {
				t.Errorf("%s %d (%s): renderers differ\n--- html/template\n%s\n--- daemon\n%s", page.Name, i, v.Lang, want, got.String())
			}
		}
	}
}

var keyRE = regexp.MustCompile(`\bT "([^"]+)"`)

// TestPageKeysExist: every {{T "key"}} in a page names a plain text of
// the catalogue, and every catalogue key is used by a page or the code.
func TestPageKeysExist(t *testing.T) {
	used := map[string]bool{}
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
			used[m[1]] = true
			txt, ok := catalog[m[1]]
			switch {
			case !ok:
				t.Errorf("%s: T %q is not in the catalogue", f.Name(), m[1])
			case txt.Counted():
				t.Errorf("%s: T %q is a counted text; pages show those through the view", f.Name(), m[1])
			}
		}
	}
	if len(used) < 10 {
		t.Fatalf("found only %d keys in the pages: the scan is broken", len(used))
	}
	code, err := os.ReadFile("portal.go")
	if err != nil {
		t.Fatal(err)
	}
	i18nSrc, err := os.ReadFile("i18n.go")
	if err != nil {
		t.Fatal(err)
	}
	for k := range catalog {
		name := strings.TrimPrefix(k, "problem.")
		if used[k] || strings.Contains(string(code), `"`+k+`"`) || strings.Contains(string(i18nSrc), `"`+name+`"`) || strings.Contains(string(i18nSrc), `"`+k+`"`) ||
			strings.HasPrefix(name, "limit-") || strings.HasPrefix(k, "rate.") {
			continue
		}
		t.Errorf("catalogue key %q is used nowhere", k)
	}
}
