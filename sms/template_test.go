package sms

import (
	"strings"
	"testing"
	"time"
	"unicode/utf16"
)

// Real Qatari park names, the longest around 15 characters.
var siteNames = map[string][]string{
	"ar": {"حديقة أسباير", "حديقة البدع", "حديقة الخور", "حديقة المنتزه", "حديقة أم السنيم", "متحف الفن"},
	"en": {"Aspire Park", "Al Bidda Park", "Umm Al Seneem Park", "MIA Park", "Al Khor Family Park"},
}

// pinLifetimes are PIN lifetimes staff may set (30 s to 1 h), with the
// longest wording of each plural category.
var pinLifetimes = []time.Duration{30 * time.Second, 59 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute,
	10 * time.Minute, 11 * time.Minute, 59 * time.Minute, time.Hour}

func TestDefaultTemplatesFitOneSegment(t *testing.T) {
	for lang, names := range siteNames {
		tmpl, ok := DefaultTemplates[lang]
		if !ok {
			t.Fatalf("no default template for %q", lang)
		}
		for _, site := range names {
			for _, ttl := range pinLifetimes {
				msg := Render(tmpl, "482913", ttl, lang, site)
				if n := Segments(msg); n != 1 {
					t.Errorf("%s, %q, %s: %d segments (%d UTF-16 units): %q",
						lang, site, ttl, n, len(utf16.Encode([]rune(msg))), msg)
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
	if !isGSM7(Render(DefaultTemplates["en"], "482913", 10*time.Minute, "en", "Aspire Park")) {
		t.Error("English default template is not pure GSM-7")
	}
}

// TestDefaultTemplatesPlurals: the default message words the validity
// with the plural the number needs, in both languages.
func TestDefaultTemplatesPlurals(t *testing.T) {
	for ttl, want := range map[time.Duration][2]string{
		time.Minute:      {"صالح دقيقة واحدة.", "Valid for 1 minute."},
		2 * time.Minute:  {"صالح دقيقتين.", "Valid for 2 minutes."},
		5 * time.Minute:  {"صالح 5 دقائق.", "Valid for 5 minutes."},
		15 * time.Minute: {"صالح 15 دقيقة.", "Valid for 15 minutes."},
		time.Hour:        {"صالح ساعة واحدة.", "Valid for 1 hour."},
		30 * time.Second: {"صالح 30 ثانية.", "Valid for 30 seconds."},
		// Rounded up to the minute above one minute.
		90 * time.Second: {"صالح دقيقتين.", "Valid for 2 minutes."},
	} {
		for i, lang := range []string{"ar", "en"} {
			if got := Render(DefaultTemplates[lang], "482913", ttl, lang, "x"); !strings.Contains(got, want[i]) {
				t.Errorf("%s, %s: %q lacks %q", lang, ttl, got, want[i])
			}
		}
	}
}

func TestUpgrade(t *testing.T) {
	for lang, olds := range LegacyTemplates {
		for _, old := range olds {
			if got := Upgrade(lang, old); got != DefaultTemplates[lang] {
				t.Errorf("Upgrade(%s, legacy) = %q", lang, got)
			}
		}
	}
	if got := Upgrade("ar", "رمزك {pin}"); got != "رمزك {pin}" {
		t.Errorf("Upgrade changed staff's own text: %q", got)
	}
	if got := Upgrade("en", LegacyTemplates["ar"][0]); got != LegacyTemplates["ar"][0] {
		t.Errorf("Upgrade changed an Arabic text filed under en: %q", got)
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
	got := Render("{pin}|{minutes}|{validity}|{site}|{pin}|{other}", "123456", 14*time.Minute+time.Second, "en", "a {pin} site")
	if want := "123456|15|15 minutes|a {pin} site|123456|{other}"; got != want {
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

func TestMeasureText(t *testing.T) {
	tests := []struct {
		name string
		text string
		want Measure
	}{
		{"empty", "", Measure{}},
		{"gsm", "Your code is 482913", Measure{Units: 19, Segments: 1, Capacity: 160}},
		{"extension chars count two", "€[]", Measure{Units: 6, Segments: 1, Capacity: 160}},
		{"160 septets", strings.Repeat("€", 80), Measure{Units: 160, Segments: 1, Capacity: 160}},
		{"two gsm segments", strings.Repeat("a", 161), Measure{Units: 161, Segments: 2, Capacity: 306}},
		{"arabic", "رمزك 482913", Measure{UCS2: true, NotGSM: 'ر', Units: 11, Segments: 1, Capacity: 70}},
		{"one star makes English UCS-2", "Park ★ 482913", Measure{UCS2: true, NotGSM: '★', Units: 13, Segments: 1, Capacity: 70}},
		{"ç is not gsm", "Façade", Measure{UCS2: true, NotGSM: 'ç', Units: 6, Segments: 1, Capacity: 70}},
		{"emoji are two units", strings.Repeat("😀", 36), Measure{UCS2: true, NotGSM: '😀', Units: 72, Segments: 2, Capacity: 134}},
		{"71 ucs2 units", strings.Repeat("ب", 71), Measure{UCS2: true, NotGSM: 'ب', Units: 71, Segments: 2, Capacity: 134}},
		{"135 ucs2 units", strings.Repeat("ب", 135), Measure{UCS2: true, NotGSM: 'ب', Units: 135, Segments: 3, Capacity: 201}},
	}
	for _, tt := range tests {
		if got := MeasureText(tt.text); got != tt.want {
			t.Errorf("%s: MeasureText = %+v, want %+v", tt.name, got, tt.want)
		}
	}
	if MeasureText("x").Encoding() != "GSM-7" || MeasureText("ب").Encoding() != "UCS-2" {
		t.Error("Encoding names")
	}
	// A 16-letter Arabic park name (one more than the longest real one)
	// still fits; a long one pushes the default PIN message to two
	// segments, which the console warns about.
	long := "حديقة الشيخ حمد بن خليفة آل ثاني للعائلات"
	if m := MeasureText(Render(DefaultTemplates["ar"], "482913", 5*time.Minute, "ar", long)); m.Segments != 2 {
		t.Errorf("a %d-letter park name: %+v", len([]rune(long)), m)
	}
}
