// Package escape runs html/template's contextual escaper over a page set
// at build time and writes the escaped templates for package tmpl. The
// packages with pages call it from their tests (which fail when an
// escaped file is stale, and rewrite them with -update) and from go
// generate. The daemon never imports it: executing html/template is what
// package tmpl exists to avoid.
package escape

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"text/template/parse"
)

// Page is one page set: the template files parsed together and the
// template that renders the page.
type Page struct {
	Name  string   // the escaped file is Name + ".tmpl"
	Entry string   // the template Execute starts at
	Files []string // paths in the source FS
}

// Parse parses a page set with html/template, as package tmpl's sources.
func Parse(src fs.FS, funcs map[string]any, p Page) (*template.Template, error) {
	t, err := template.New(path.Base(p.Files[0])).Funcs(funcs).ParseFS(src, p.Files...)
	if err != nil {
		return nil, fmt.Errorf("parsing page %s: %w", p.Name, err)
	}
	return t, nil
}

// Render renders a page with html/template, for tests that compare
// package tmpl's output with it.
func Render(src fs.FS, funcs map[string]any, p Page, data any) (string, error) {
	t, err := Parse(src, funcs, p)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	err = t.ExecuteTemplate(&b, p.Entry, data)
	return b.String(), err
}

// Escape returns page p escaped, as {{define}}s package tmpl parses: the
// entry template and every template it calls, in the contexts it calls
// them in (html/template adds variants named name$htmltemplate_… where a
// template is called from another context).
func Escape(src fs.FS, funcs map[string]any, p Page) (string, error) {
	t, err := Parse(src, funcs, p)
	if err != nil {
		return "", err
	}
	out, err := EscapeTemplate(t, p.Entry, strings.Join(p.Files, ", "))
	if err != nil {
		return "", fmt.Errorf("escaping page %s: %w", p.Name, err)
	}
	return out, nil
}

// EscapeTemplate escapes entry in t (parsed, not yet executed) and
// returns it and every template it calls as {{define}}s; from names the
// sources in the header.
func EscapeTemplate(t *template.Template, entry, from string) (string, error) {
	// Executing escapes the entry and everything it calls, before it
	// evaluates anything; with nil data the evaluation then fails,
	// which is expected. An escaping problem is a *template.Error.
	err := t.ExecuteTemplate(io.Discard, entry, nil)
	var te *template.Error
	if errors.As(err, &te) {
		return "", err
	}
	trees := map[string]*parse.Tree{}
	for _, x := range t.Templates() {
		if x.Tree != nil && x.Tree.Root != nil {
			trees[x.Name()] = x.Tree
		}
	}
	// Only what the entry reaches has been escaped: anything else must
	// not come along unescaped.
	reached := map[string]bool{}
	var visit func(name string) error
	visit = func(name string) error {
		if reached[name] {
			return nil
		}
		tr := trees[name]
		if tr == nil {
			return fmt.Errorf("template %q not defined", name)
		}
		reached[name] = true
		var err error
		walk(tr.Root, func(n *parse.TemplateNode) {
			if err == nil {
				err = visit(n.Name)
			}
		})
		return err
	}
	if err := visit(entry); err != nil {
		return "", err
	}
	names := make([]string, 0, len(reached))
	for n := range reached {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	fmt.Fprintf(&b, "{{/* Escaped by html/template from %s: do not edit; go generate rewrites it. */}}\n", from)
	for _, n := range names {
		fmt.Fprintf(&b, "{{define %q}}%s{{end}}\n", n, trees[n].Root.String())
	}
	return b.String(), nil
}

// walk calls f for every {{template}} in the tree under n.
func walk(n parse.Node, f func(*parse.TemplateNode)) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			walk(c, f)
		}
	case *parse.IfNode:
		walk(n.List, f)
		walk(n.ElseList, f)
	case *parse.RangeNode:
		walk(n.List, f)
		walk(n.ElseList, f)
	case *parse.WithNode:
		walk(n.List, f)
		walk(n.ElseList, f)
	case *parse.TemplateNode:
		f(n)
	}
}

// Sync escapes every page and compares the result with dir/NAME.tmpl;
// with update it writes the files instead. It names every stale file.
func Sync(src fs.FS, funcs map[string]any, pages []Page, dir string, update bool) error {
	var stale []string
	for _, p := range pages {
		out, err := Escape(src, funcs, p)
		if err != nil {
			return err
		}
		file := filepath.Join(dir, p.Name+".tmpl")
		if update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
				return err
			}
			continue
		}
		have, err := os.ReadFile(file)
		if err != nil || !bytes.Equal(have, []byte(out)) {
			stale = append(stale, file)
		}
	}
	if len(stale) > 0 {
		return fmt.Errorf("escaped templates out of date: %s; run go generate (or go test -run TestEscapedPages -update) in the package", strings.Join(stale, ", "))
	}
	return nil
}
