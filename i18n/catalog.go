package i18n

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Forms are the wordings of a counted text, one per plural category,
// indexed by Category: Forms{One: "1 visitor", Other: "{n} visitors"}.
// {n} stands for the number; a form may leave it out ("دقيقة واحدة",
// "دقيقتان": Arabic says one and two with the noun alone).
type Forms [6]string

// Format returns the form for n's category in lang with {n} filled in.
// A category left empty falls back to Other (Check reports it, so this
// only matters for a catalogue the tests did not see).
func (f Forms) Format(lang string, n int) string {
	form := f[CategoryOf(lang, n)]
	if form == "" {
		form = f[Other]
	}
	return strings.ReplaceAll(form, "{n}", strconv.Itoa(n))
}

// Text is one message in both languages: either plain (AR, EN) or
// counted (CountAR, CountEN: a form per plural category), never both.
// Either kind may hold numbered placeholders {1}, {2}, … for Fill.
type Text struct {
	AR, EN           string
	CountAR, CountEN Forms
}

// Counted reports whether t is a counted text.
func (t Text) Counted() bool { return t.CountAR != Forms{} || t.CountEN != Forms{} }

// In returns a plain text in lang (English for anything but Arabic).
func (t Text) In(lang string) string {
	if lang == AR {
		return t.AR
	}
	return t.EN
}

// Count returns a counted text in lang for n.
func (t Text) Count(lang string, n int) string {
	if lang == AR {
		return t.CountAR.Format(lang, n)
	}
	return t.CountEN.Format(lang, n)
}

// Catalog maps keys to texts. Each package keeps its own (the portal's
// visitor texts, the console's, the settings' field errors) and runs
// Check in its tests.
type Catalog map[string]Text

// T returns key's plain text in lang. An unknown key returns the key
// itself, so a slip shows on the page rather than an empty string; the
// tests make sure no page uses one.
func (c Catalog) T(lang, key string) string {
	t, ok := c[key]
	if !ok {
		return key
	}
	return t.In(lang)
}

// N returns key's counted text in lang for n; an unknown key returns
// the key and the number.
func (c Catalog) N(lang, key string, n int) string {
	t, ok := c[key]
	if !ok {
		return key + " " + strconv.Itoa(n)
	}
	return t.Count(lang, n)
}

// Fill replaces the numbered placeholders {1}, {2}, … in text with args
// in one pass, so an argument that happens to contain "{2}" is not
// expanded again.
func Fill(text string, args ...string) string {
	if len(args) == 0 {
		return text
	}
	pairs := make([]string, 0, 2*len(args))
	for i, a := range args {
		pairs = append(pairs, "{"+strconv.Itoa(i+1)+"}", a)
	}
	return strings.NewReplacer(pairs...).Replace(text)
}

// placeholderRE is compiled on first use, not at package initialisation:
// only Check (the catalogs' completeness tests) needs it, and every run
// of the binary, each CLI call included, initialises this package.
var placeholderRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\{[0-9]+\}`) })

// placeholders returns the set of {1}, {2}, … in text, sorted.
func placeholders(text string) []string {
	found := placeholderRE().FindAllString(text, -1)
	sort.Strings(found)
	return slices.Compact(found)
}

// Check returns what is missing or inconsistent in c: a plain text
// empty in a language; a counted text without a form for a category its
// language needs (all six in Arabic, one and other in English); a text
// that is both; numbered placeholders that differ between the languages
// or between the forms of one language (a translation that drops {1}
// silently loses a value). Keys are reported in order.
func (c Catalog) Check() []error {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		t := c[k]
		plain := t.AR != "" || t.EN != ""
		if plain && t.Counted() {
			errs = append(errs, fmt.Errorf("%s: both a plain and a counted text", k))
			continue
		}
		if !t.Counted() {
			if strings.TrimSpace(t.AR) == "" {
				errs = append(errs, fmt.Errorf("%s: no Arabic", k))
			}
			if strings.TrimSpace(t.EN) == "" {
				errs = append(errs, fmt.Errorf("%s: no English", k))
			}
			if a, e := placeholders(t.AR), placeholders(t.EN); !slices.Equal(a, e) {
				errs = append(errs, fmt.Errorf("%s: placeholders differ: Arabic %v, English %v", k, a, e))
			}
			continue
		}
		var want []string
		first := true
		for _, lang := range Langs {
			forms := t.CountEN
			if lang == AR {
				forms = t.CountAR
			}
			for _, cat := range Needed(lang) {
				if strings.TrimSpace(forms[cat]) == "" {
					errs = append(errs, fmt.Errorf("%s: no %s form for %q", k, lang, cat))
					continue
				}
				got := placeholders(forms[cat])
				if first {
					want, first = got, false
				} else if !slices.Equal(got, want) {
					errs = append(errs, fmt.Errorf("%s: %s form %q has placeholders %v, others %v", k, lang, cat, got, want))
				}
			}
			for cat := range forms {
				if forms[cat] != "" && !slices.Contains(Needed(lang), Category(cat)) {
					errs = append(errs, fmt.Errorf("%s: %s has no %q category; that form is never shown", k, lang, Category(cat)))
				}
			}
		}
	}
	return errs
}
