package sms

import (
	"strings"
	"testing"
	"unicode/utf16"
)

// Real Qatari park names, the longest around 15 characters.
var siteNames = map[string][]string{
	"ar": {"حديقة أسباير", "حديقة البدع", "حديقة الخور", "حديقة المنتزه", "حديقة أم السنيم", "متحف الفن"},
	"en": {"Aspire Park", "Al Bidda Park", "Umm Al Seneem Park", "MIA Park", "Al Khor Family Park"},
}

func TestDefaultTemplatesFitOneSegment(t *testing.T) {
	for lang, names := range siteNames {
		tmpl, ok := DefaultTemplates[lang]
		if !ok {
			t.Fatalf("no default template for %q", lang)
		}
		for _, site := range names {
			for _, minutes := range []int{5, 10, 60, 120} {
				msg := Render(tmpl, "482913", minutes, site)
				if n := Segments(msg); n != 1 {
					t.Errorf("%s, %q, %d min: %d segments (%d UTF-16 units): %q",
						lang, site, minutes, n, len(utf16.Encode([]rune(msg))), msg)
				}
				if i := strings.Index(msg, "482913"); i < 0 || i > 30 {
					t.Errorf("%s: PIN not near the start of %q", lang, msg)
				}
				if strings.ContainsAny(msg, "{}") {
					t.Errorf("%s: placeholder left in %q", lang, msg)
				}
			}
		}
	}
	// The English text must stay GSM-7, or it would fall to 70 per segment.
	if !isGSM7(Render(DefaultTemplates["en"], "482913", 10, "Aspire Park")) {
		t.Error("English default template is not pure GSM-7")
	}
}

func isGSM7(s string) bool {
	for _, r := range s {
		if _, ok := gsm7Cost[r]; !ok {
			return false
		}
	}
	return true
}

func TestRender(t *testing.T) {
	got := Render("{pin}|{minutes}|{site}|{pin}|{other}", "123456", 15, "a {pin} site")
	if want := "123456|15|a {pin} site|123456|{other}"; got != want {
		t.Errorf("Render = %q, want %q", got, want)
	}
}

func TestSegments(t *testing.T) {
	tests := []struct {
		name string
		text string
		want int
	}{
		{"empty", "", 0},
		{"short gsm", "Your code is 123456", 1},
		{"160 gsm", strings.Repeat("a", 160), 1},
		{"161 gsm", strings.Repeat("a", 161), 2},
		{"306 gsm", strings.Repeat("a", 306), 2},
		{"307 gsm", strings.Repeat("a", 307), 3},
		{"gsm accents", "àéèìòù ÄÖÑÜ äöñü ¿¡ £¥§ ΔΦΓΛΩΠΨΣΘΞ", 1},
		{"80 extension chars = 160 septets", strings.Repeat("€", 80), 1},
		{"81 extension chars = 162 septets", strings.Repeat("{", 81), 2},
		// 152 plain + one 2-septet char does not fit the first 153-septet
		// part; the escape pair is not split.
		{"extension at a part boundary", strings.Repeat("a", 152) + "[" + strings.Repeat("a", 10), 2},
		{"extension pushes to 3 parts", strings.Repeat("a", 152) + "^" + strings.Repeat("a", 152) + "~", 3},
		{"ç is not gsm (only Ç)", strings.Repeat("a", 100) + "ç", 2},
		{"Ç is gsm", strings.Repeat("a", 100) + "Ç", 1},
		{"backtick is not gsm", strings.Repeat("a", 100) + "`", 2},
		{"70 ucs2", strings.Repeat("ب", 70), 1},
		{"71 ucs2", strings.Repeat("ب", 71), 2},
		{"134 ucs2", strings.Repeat("ب", 134), 2},
		{"135 ucs2", strings.Repeat("ب", 135), 3},
		{"one arabic char forces ucs2", strings.Repeat("a", 70) + "ب", 2},
		{"35 emoji = 70 units", strings.Repeat("😀", 35), 1},
		{"36 emoji = 72 units", strings.Repeat("😀", 36), 2},
		// 66 units + a surrogate pair: the pair moves to part two.
		{"surrogate pair at a part boundary", strings.Repeat("a", 66) + "😀" + strings.Repeat("a", 5), 2},
		{"surrogate pairs to 3 parts", strings.Repeat("a", 66) + "😀" + strings.Repeat("a", 65) + "😀", 3},
		{"invalid utf-8 counts as one unit", "\xff", 1},
		{"ESC is not text", "\x1b", 1},
	}
	for _, tt := range tests {
		if got := Segments(tt.text); got != tt.want {
			t.Errorf("%s: Segments = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestGSM7Tables(t *testing.T) {
	// 128 code points minus ESC in the basic table, 10 in the extension.
	if n := len([]rune(gsm7Basic)); n != 127 {
		t.Errorf("basic table has %d characters, want 127", n)
	}
	if n := len([]rune(gsm7Ext)); n != 10 {
		t.Errorf("extension table has %d characters, want 10", n)
	}
	if len(gsm7Cost) != 137 {
		t.Errorf("tables overlap: %d distinct characters", len(gsm7Cost))
	}
}
