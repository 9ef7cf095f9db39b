package phone

import (
	"errors"
	"strings"
	"testing"
)

var qatarMobile = []string{"+9743", "+9745", "+9746", "+9747"}

func TestNormalizeQatar(t *testing.T) {
	inputs := []string{
		"33123456",
		" 33123456 ",
		"0097433123456",
		"+97433123456",
		"+974 3312 3456",
		"974 33123456",
		"3312-3456",
		"33 12 34 56",
		"(+974) 3312.3456",
		"+974-3312-3456",
		"\u00a033123456",
		"٣٣١٢٣٤٥٦",       // Arabic-Indic
		"٠٠٩٧٤٣٣١٢٣٤٥٦",  // Arabic-Indic with 00
		"+٩٧٤ ٣٣١٢ ٣٤٥٦", // Arabic-Indic with +
		"۳۳۱۲۳۴۵۶",       // Persian
		"+974٣٣١٢٣٤٥٦",   // mixed
		"００９７４３３１２３４５６",        // full-width
		"\u200f33123456\u200f", // RLM around the number
		"\u200e+974 3312 3456", // LRM
		// What Android and WhatsApp put around a number copied from a
		// contact or chat in a right-to-left interface.
		"\u202a+974 3312 3456\u202c", // LRE … PDF
		"\u2066+974 3312 3456\u2069", // LRI … PDI
		"\u061c33123456",             // Arabic letter mark
	}
	for _, in := range inputs {
		got, err := Normalize(in, "QA", qatarMobile)
		if err != nil || got != "+97433123456" {
			t.Errorf("Normalize(%q) = %q, %v; want +97433123456", in, got, err)
		}
	}
}

func TestNormalizeAllowedPrefixes(t *testing.T) {
	cases := []struct {
		in      string
		allowed []string
		want    string
		err     error
	}{
		{"55123456", qatarMobile, "+97455123456", nil},
		{"66123456", qatarMobile, "+97466123456", nil},
		{"70123456", qatarMobile, "+97470123456", nil},
		{"55123456", []string{"+9743"}, "", ErrNotAllowed},
		{"33123456", []string{"+9743"}, "+97433123456", nil},
		{"33123456", nil, "+97433123456", nil},
		{"33123456", []string{}, "+97433123456", nil},
		// Foreign mobiles: valid, but not for a Qatari-only site.
		{"+12025550123", qatarMobile, "", ErrNotAllowed},
		{"+447400123456", qatarMobile, "", ErrNotAllowed},
		{"00447400123456", qatarMobile, "", ErrNotAllowed},
		// A site that also accepts them.
		{"+447400123456", append([]string{"+44"}, qatarMobile...), "+447400123456", nil},
		{"+447400123456", nil, "+447400123456", nil},
	}
	for _, c := range cases {
		got, err := Normalize(c.in, "QA", c.allowed)
		if got != c.want || !errors.Is(err, c.err) {
			t.Errorf("Normalize(%q, %q) = %q, %v; want %q, %v", c.in, c.allowed, got, err, c.want, c.err)
		}
	}
}

func TestNormalizeRejects(t *testing.T) {
	cases := []struct {
		in  string
		err error
	}{
		// Qatari landlines are valid numbers that cannot receive SMS.
		{"44123456", ErrNotAllowed},
		{"+974 4412 3456", ErrNotAllowed},
		{"0097444123456", ErrNotAllowed},
		// Not numbers at all.
		{"", ErrMalformed},
		{"   ", ErrMalformed},
		{"abc", ErrMalformed},
		{"1234", ErrMalformed},
		{"3312345", ErrMalformed},   // 7 digits
		{"331234567", ErrMalformed}, // 9 digits
		{"+974 3312 345", ErrMalformed},
		{"33123456789", ErrMalformed},
		{"+", ErrMalformed},
		{"00", ErrMalformed},
		{"0033123456", ErrMalformed}, // 00 then not a country's number
		{"80012345", ErrMalformed},
		{"٣٣١٢٣٤٥", ErrMalformed},
		{strings.Repeat("3", 41), ErrMalformed},
		{"33123456" + strings.Repeat(" ", 40), nil}, // trailing spaces are trimmed first
		{strings.Repeat("\u200f", 50) + "33123456", nil},
		{"\x00\xff", ErrMalformed},
	}
	for _, c := range cases {
		got, err := Normalize(c.in, "QA", qatarMobile)
		if !errors.Is(err, c.err) {
			t.Errorf("Normalize(%q) = %q, %v; want error %v", c.in, got, err, c.err)
		}
		if err != nil && got != "" {
			t.Errorf("Normalize(%q) returned %q with error %v", c.in, got, err)
		}
	}
}

func TestNormalizeRegion(t *testing.T) {
	// National numbers are read in the site's region; international ones
	// in any.
	if got, err := Normalize("07400 123456", "GB", nil); err != nil || got != "+447400123456" {
		t.Errorf("GB national = %q, %v", got, err)
	}
	if got, err := Normalize("+97433123456", "GB", nil); err != nil || got != "+97433123456" {
		t.Errorf("QA number in GB region = %q, %v", got, err)
	}
	if _, err := Normalize("33123456", "", nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("national number without region: %v, want ErrMalformed", err)
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"33123456", "0097433123456", "+974 3312 3456", "٣٣١٢٣٤٥٦", "\u202a+974 3312 3456\u202c", "44123456", "+447400123456", "+97433123456 ext 12", "tel:+97433123456", "+1 800 FLOWERS", "00"} {
		f.Add(s, "QA", true)
	}
	f.Add("07400 123456", "GB", false)
	f.Fuzz(func(t *testing.T, in, region string, restrict bool) {
		var allowed []string
		if restrict {
			allowed = qatarMobile
		}
		out, err := Normalize(in, region, allowed)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNotAllowed) {
				t.Fatalf("Normalize(%q, %q) error %v is neither ErrMalformed nor ErrNotAllowed", in, region, err)
			}
			if out != "" {
				t.Fatalf("Normalize(%q, %q) = %q with error %v", in, region, out, err)
			}
			return
		}
		if !strings.HasPrefix(out, "+") || len(out) < 3 || len(out) > 16 {
			t.Fatalf("Normalize(%q, %q) = %q: not E.164", in, region, out)
		}
		for _, c := range out[1:] {
			if c < '0' || c > '9' {
				t.Fatalf("Normalize(%q, %q) = %q: not E.164", in, region, out)
			}
		}
		if restrict {
			ok := false
			for _, p := range allowed {
				ok = ok || strings.HasPrefix(out, p)
			}
			if !ok {
				t.Fatalf("Normalize(%q) = %q outside the allowed prefixes", in, out)
			}
		}
		again, err := Normalize(out, region, allowed)
		if err != nil || again != out {
			t.Fatalf("Normalize(%q, %q) = %q, but that re-normalises to %q, %v", in, region, out, again, err)
		}
	})
}
