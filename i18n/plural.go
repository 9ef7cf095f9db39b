// Package i18n is what the visitors' pages, the staff console, the
// settings messages and the PIN SMS share about language: the two
// languages (Arabic first, English second), CLDR plural categories,
// counted nouns and durations worded as people say them, and one
// catalogue type with a completeness check that every package's tests
// run.
//
// It implements the CLDR plural rules itself rather than importing
// golang.org/x/text/feature/plural: we need two languages' integer rules
// (a dozen lines), and that package pulls x/text's language tables into
// the router binary (see the commit that added this package for the
// measurement).
//
// Numbers are written with Western digits in both languages, as the
// pages always have: the PIN, the phone number and the hints a visitor
// copies from are in Western digits, and mixing the two systems on one
// screen reads as an error.
package i18n

import "strconv"

// The languages, in the order pages offer them.
const (
	AR = "ar"
	EN = "en"
)

// Langs lists every language a catalogue must cover.
var Langs = []string{AR, EN}

// OtherLang returns the language a switch link offers: English on an
// Arabic page, Arabic on any other.
func OtherLang(lang string) string {
	if lang == AR {
		return EN
	}
	return AR
}

// Category is a CLDR plural category: which form of a counted noun a
// number takes.
type Category uint8

// The six CLDR categories. English uses One and Other; Arabic all six.
const (
	Zero Category = iota
	One
	Two
	Few
	Many
	Other
)

var categoryNames = [...]string{"zero", "one", "two", "few", "many", "other"}

// String returns the CLDR name: "zero", "one", ….
func (c Category) String() string {
	if int(c) < len(categoryNames) {
		return categoryNames[c]
	}
	return "Category(" + strconv.Itoa(int(c)) + ")"
}

// ArabicCategory is CLDR's rule for Arabic integers:
//
//	zero  n = 0
//	one   n = 1
//	two   n = 2
//	few   n % 100 = 3..10   (3 دقائق, 103 دقائق)
//	many  n % 100 = 11..99  (11 دقيقة, 99 دقيقة)
//	other everything else   (100 دقيقة, 101 دقيقة, 102 دقيقة)
//
// A negative count takes its absolute value's category.
func ArabicCategory(n int) Category {
	if n < 0 {
		n = -n
	}
	switch m := n % 100; {
	case n == 0:
		return Zero
	case n == 1:
		return One
	case n == 2:
		return Two
	case m >= 3 && m <= 10:
		return Few
	case m >= 11 && m <= 99:
		return Many
	}
	return Other
}

// EnglishCategory is CLDR's rule for English integers: one for 1 (and
// -1), other for everything else, 0 included ("0 minutes").
func EnglishCategory(n int) Category {
	if n == 1 || n == -1 {
		return One
	}
	return Other
}

// CategoryOf returns n's category in lang; any language but Arabic
// follows English.
func CategoryOf(lang string, n int) Category {
	if lang == AR {
		return ArabicCategory(n)
	}
	return EnglishCategory(n)
}

// Needed lists the categories lang distinguishes: a counted text must
// have a form for each.
func Needed(lang string) []Category {
	if lang == AR {
		return []Category{Zero, One, Two, Few, Many, Other}
	}
	return []Category{One, Other}
}
