package tmpl

// The escaping functions html/template's escaper writes into the
// templates (package tmpl/escape), ported from Go's html/template
// (html.go, url.go, content.go; BSD-style licence, Copyright 2011 The Go
// Authors) for plain values: the pages pass no template.HTML or
// template.URL, so there is no typed content to trust. The tests render
// every page both ways and compare.

import (
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"
)

var escapers = FuncMap{
	"_html_template_htmlescaper":   htmlEscaper,
	"_html_template_attrescaper":   htmlEscaper, // the same for plain text
	"_html_template_rcdataescaper": htmlEscaper, // the same for plain text
	"_html_template_urlfilter":     urlFilter,
	"_html_template_urlnormalizer": urlNormalizer,
	"_html_template_urlescaper":    urlEscaper,
}

// filterFailsafe replaces a value that is unsafe where it stands.
const filterFailsafe = "ZgotmplZ"

// stringify renders an escaper's arguments as text the way html/template
// does for plain values: pointers followed to a Stringer, an error or
// the value, untyped nils skipped.
func stringify(args ...any) string {
	if len(args) == 1 {
		if s, ok := indirectAny(args[0]).(string); ok {
			return s
		}
	}
	vals := make([]any, 0, len(args))
	for _, a := range args {
		if a == nil {
			continue
		}
		vals = append(vals, indirectToStringerOrError(a))
	}
	return fmt.Sprint(vals...)
}

func indirectAny(a any) any {
	if a == nil {
		return nil
	}
	if t := reflect.TypeOf(a); t.Kind() != reflect.Pointer {
		return a
	}
	v := reflect.ValueOf(a)
	for v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	return v.Interface()
}

func indirectToStringerOrError(a any) any {
	v := reflect.ValueOf(a)
	for !v.Type().Implements(stringer) && !v.Type().Implements(errorType) && v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	return v.Interface()
}

// htmlReplacementTable holds the runes escaped in text and quoted
// attribute values.
var htmlReplacementTable = []string{
	0:    "\uFFFD",
	'"':  "&#34;",
	'&':  "&amp;",
	'\'': "&#39;",
	'+':  "&#43;",
	'<':  "&lt;",
	'>':  "&gt;",
}

// htmlEscaper escapes for HTML text, quoted attribute values and RCDATA
// (<title>, <textarea>).
func htmlEscaper(args ...any) string {
	s := stringify(args...)
	var b strings.Builder
	written := 0
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		if int(r) < len(htmlReplacementTable) {
			if repl := htmlReplacementTable[r]; repl != "" {
				if written == 0 {
					b.Grow(len(s))
				}
				b.WriteString(s[written:i])
				b.WriteString(repl)
				written = i + w
			}
		}
		i += w
	}
	if written == 0 {
		return s
	}
	b.WriteString(s[written:])
	return b.String()
}

// urlFilter defangs a URL whose scheme is not http, https or mailto.
func urlFilter(args ...any) string {
	s := stringify(args...)
	if protocol, _, ok := strings.Cut(s, ":"); ok && !strings.Contains(protocol, "/") {
		if !strings.EqualFold(protocol, "http") && !strings.EqualFold(protocol, "https") && !strings.EqualFold(protocol, "mailto") {
			return "#" + filterFailsafe
		}
	}
	return s
}

// urlEscaper escapes for a URL query.
func urlEscaper(args ...any) string { return urlProcessor(false, args...) }

// urlNormalizer normalises a URL for a quoted attribute.
func urlNormalizer(args ...any) string { return urlProcessor(true, args...) }

func urlProcessor(norm bool, args ...any) string {
	s := stringify(args...)
	var b strings.Builder
	b.Grow(len(s) + 16)
	written := 0
	for i, n := 0, len(s); i < n; i++ {
		c := s[i]
		switch c {
		case '!', '#', '$', '&', '*', '+', ',', '/', ':', ';', '=', '?', '@', '[', ']':
			if norm {
				continue
			}
		case '-', '.', '_', '~':
			continue
		case '%':
			if norm && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
				continue
			}
		default:
			if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
				continue
			}
		}
		b.WriteString(s[written:i])
		fmt.Fprintf(&b, "%%%02x", c)
		written = i + 1
	}
	if written == 0 {
		return s
	}
	b.WriteString(s[written:])
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
