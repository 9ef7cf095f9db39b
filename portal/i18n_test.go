package portal

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/parkwifi/parkportal/limits"
)

func hasArabic(s string) bool {
	for _, r := range s {
		if unicode.Is(unicode.Arabic, r) {
			return true
		}
	}
	return false
}

func hasLatin(s string) bool {
	for _, r := range s {
		if unicode.Is(unicode.Latin, r) {
			return true
		}
	}
	return false
}

// TestCatalogComplete: every text has both languages and every plural
// form each needs (i18n.Catalog.Check), Arabic texts are written in
// Arabic script and English ones are not; the language switch names the
// other language in itself.
func TestCatalogComplete(t *testing.T) {
	for _, err := range catalog.Check() {
		t.Error(err)
	}
	for k, txt := range catalog {
		if k == "lang.other" {
			continue
		}
		ar, en := []string{txt.AR}, []string{txt.EN}
		if txt.Counted() {
			ar, en = txt.CountAR[:], txt.CountEN[:]
		}
		for _, s := range ar {
			if s != "" && !hasArabic(s) {
				t.Errorf("%s: Arabic %q has no Arabic script", k, s)
			}
		}
		for _, s := range en {
			if s != "" && (hasArabic(s) || !hasLatin(s)) {
				t.Errorf("%s: English %q is not English text", k, s)
			}
		}
	}
	if sw := catalog["lang.other"]; !hasArabic(sw.EN) || hasArabic(sw.AR) {
		t.Errorf("switch links: from ar %q, from en %q", sw.AR, sw.EN)
	}
}

// problems lists every package-level problem; TestProblemsListed checks
// that none is missing.
var problems = map[string]*problem{
	"errMalformedNumber":  errMalformedNumber,
	"errNumberNotAllowed": errNumberNotAllowed,
	"errNoDevice":         errNoDevice,
	"errMalformedPIN":     errMalformedPIN,
	"errNoPending":        errNoPending,
	"errExpiredPIN":       errExpiredPIN,
	"errTooManyTries":     errTooManyTries,
	"errSMSTemporary":     errSMSTemporary,
	"errSMSPermanent":     errSMSPermanent,
	"errSMSPaused":        errSMSPaused,
	"errTermsRequired":    errTermsRequired,
	"errNumberBlocked":    errNumberBlocked,
	"errAuthUnavailable":  errAuthUnavailable,
	"errAddressInUse":     errAddressInUse,
	"errInternal":         errInternal,
	"errCrossOrigin":      errCrossOrigin,
	"errBadRequest":       errBadRequest,
}

// TestProblemsListed parses the package's sources and finds every
// package-level var set to a problem (&problem{...} or newProblem): each must be in problems, so
// that a new one cannot skip TestProblemsBilingual.
func TestProblemsListed(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	found := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, val := range vs.Values {
					if !isProblemLiteral(val) || i >= len(vs.Names) {
						continue
					}
					found++
					if problems[vs.Names[i].Name] == nil {
						t.Errorf("%s: problem %s is not in this test's problems list", fset.Position(vs.Pos()), vs.Names[i].Name)
					}
				}
			}
		}
	}
	if found == 0 {
		t.Fatal("found no problem vars in the package's sources: the parser check is broken")
	}
	if found != len(problems) {
		t.Errorf("sources define %d problem vars, the list has %d", found, len(problems))
	}
}

// isProblemLiteral reports whether e is &problem{...}, problem{...} or
// newProblem(...).
func isProblemLiteral(e ast.Expr) bool {
	if c, ok := e.(*ast.CallExpr); ok {
		id, ok := c.Fun.(*ast.Ident)
		return ok && id.Name == "newProblem"
	}
	if u, ok := e.(*ast.UnaryExpr); ok && u.Op == token.AND {
		e = u.X
	}
	cl, ok := e.(*ast.CompositeLit)
	if !ok {
		return false
	}
	id, ok := cl.Type.(*ast.Ident)
	return ok && id.Name == "problem"
}

// TestProblemsBilingual: every problem a visitor can see, the fixed ones
// and the ones made on the fly (wrong PIN, every limit), has an Arabic
// and an English text, a unique code and an error status.
func TestProblemsBilingual(t *testing.T) {
	all := map[string]*problem{}
	for name, p := range problems {
		all[name] = p
	}
	all["wrongPIN(1)"] = wrongPIN(1)
	all["wrongPIN(4)"] = wrongPIN(4)
	for _, r := range []limits.Reason{limits.PerNumber, limits.PerDevice, limits.SiteBudget, limits.ResendGap, limits.PINBackoff, limits.None} {
		for _, wait := range []time.Duration{40 * time.Second, 15 * time.Minute} {
			all["limited("+r.String()+", "+wait.String()+")"] = limited(limits.Decision{Reason: r, RetryAfter: wait})
		}
	}
	codes := map[string]string{}
	for name, p := range all {
		if p == nil {
			t.Errorf("%s is nil", name)
			continue
		}
		if !hasArabic(p.AR) {
			t.Errorf("%s (%s): Arabic text %q has no Arabic script", name, p.Code, p.AR)
		}
		if strings.TrimSpace(p.EN) == "" || hasArabic(p.EN) || !hasLatin(p.EN) {
			t.Errorf("%s (%s): English text %q is not English", name, p.Code, p.EN)
		}
		if p.Code == "" || strings.ToLower(p.Code) != p.Code || strings.ContainsAny(p.Code, " \"<>") {
			t.Errorf("%s: code %q is not a stable lower-case identifier", name, p.Code)
		}
		if p.Status < 400 || p.Status > 599 {
			t.Errorf("%s (%s): status %d is not an error", name, p.Code, p.Status)
		}
		if _, fixed := problems[name]; fixed {
			if other, dup := codes[p.Code]; dup {
				t.Errorf("%s and %s share the code %q", name, other, p.Code)
			}
			codes[p.Code] = name
		}
	}
}
