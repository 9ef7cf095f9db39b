package i18n

import (
	"strings"
	"testing"
	"time"
)

func TestArabicCategory(t *testing.T) {
	cases := map[int]Category{
		0: Zero, 1: One, 2: Two,
		3: Few, 4: Few, 10: Few, 103: Few, 110: Few, 1005: Few,
		11: Many, 15: Many, 59: Many, 99: Many, 111: Many, 199: Many, 1011: Many,
		100: Other, 101: Other, 102: Other, 200: Other, 1000: Other, 1001: Other, 1002: Other,
		-1: One, -3: Few,
	}
	for n, want := range cases {
		if got := ArabicCategory(n); got != want {
			t.Errorf("ArabicCategory(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestEnglishCategory(t *testing.T) {
	for n, want := range map[int]Category{0: Other, 1: One, 2: Other, 11: Other, 101: Other, -1: One} {
		if got := EnglishCategory(n); got != want {
			t.Errorf("EnglishCategory(%d) = %s, want %s", n, got, want)
		}
	}
}

// TestUnits checks every unit in every Arabic category and case against
// the forms an Arabic editor wrote down, and English's two.
func TestUnits(t *testing.T) {
	type row struct {
		u    Unit
		n    int
		c    Case
		ar   string
		en   string
		name string
	}
	rows := []row{
		{Minutes, 0, Nominative, "0 دقيقة", "0 minutes", "minute zero"},
		{Minutes, 1, Nominative, "دقيقة واحدة", "1 minute", "minute one"},
		{Minutes, 2, Nominative, "دقيقتان", "2 minutes", "minute two"},
		{Minutes, 2, Genitive, "دقيقتين", "2 minutes", "minute two genitive"},
		{Minutes, 2, Accusative, "دقيقتين", "2 minutes", "minute two accusative"},
		{Minutes, 3, Nominative, "3 دقائق", "3 minutes", "minute few"},
		{Minutes, 10, Nominative, "10 دقائق", "10 minutes", "minute few 10"},
		{Minutes, 11, Nominative, "11 دقيقة", "11 minutes", "minute many"},
		{Minutes, 59, Genitive, "59 دقيقة", "59 minutes", "minute many genitive"},
		{Minutes, 100, Nominative, "100 دقيقة", "100 minutes", "minute other"},
		{Minutes, 103, Nominative, "103 دقائق", "103 minutes", "minute few 103"},
		{Hours, 1, Nominative, "ساعة واحدة", "1 hour", "hour one"},
		{Hours, 2, Nominative, "ساعتان", "2 hours", "hour two"},
		{Hours, 2, Genitive, "ساعتين", "2 hours", "hour two genitive"},
		{Hours, 3, Nominative, "3 ساعات", "3 hours", "hour few"},
		{Hours, 11, Nominative, "11 ساعة", "11 hours", "hour many"},
		{Hours, 0, Nominative, "0 ساعة", "0 hours", "hour zero"},
		{Hours, 100, Nominative, "100 ساعة", "100 hours", "hour other"},
		{Days, 1, Nominative, "يوم واحد", "1 day", "day one"},
		{Days, 1, Accusative, "يومًا واحدًا", "1 day", "day one accusative"},
		{Days, 1, Genitive, "يوم واحد", "1 day", "day one genitive"},
		{Days, 2, Nominative, "يومان", "2 days", "day two"},
		{Days, 2, Accusative, "يومين", "2 days", "day two accusative"},
		{Days, 3, Nominative, "3 أيام", "3 days", "day few"},
		{Days, 10, Accusative, "10 أيام", "10 days", "day few 10"},
		{Days, 11, Nominative, "11 يومًا", "11 days", "day many"},
		{Days, 90, Accusative, "90 يومًا", "90 days", "day many 90"},
		{Days, 100, Nominative, "100 يوم", "100 days", "day other"},
		{Days, 0, Nominative, "0 يوم", "0 days", "day zero"},
		{Seconds, 1, Nominative, "ثانية واحدة", "1 second", "second one"},
		{Seconds, 2, Genitive, "ثانيتين", "2 seconds", "second two genitive"},
		{Seconds, 5, Genitive, "5 ثوانٍ", "5 seconds", "second few"},
		{Seconds, 45, Genitive, "45 ثانية", "45 seconds", "second many"},
		{Seconds, 0, Nominative, "0 ثانية", "0 seconds", "second zero"},
		{Seconds, 100, Nominative, "100 ثانية", "100 seconds", "second other"},
	}
	for _, r := range rows {
		if got := r.u.Count(AR, r.n, r.c); got != r.ar {
			t.Errorf("%s: Arabic %d = %q, want %q", r.name, r.n, got, r.ar)
		}
		if got := r.u.Count(EN, r.n, r.c); got != r.en {
			t.Errorf("%s: English %d = %q, want %q", r.name, r.n, got, r.en)
		}
	}
	// Every unit has every form its languages need, in every case.
	for name, u := range map[string]Unit{"Seconds": Seconds, "Minutes": Minutes, "Hours": Hours, "Days": Days} {
		for c, forms := range u.ar {
			for _, cat := range Needed(AR) {
				if forms[cat] == "" {
					t.Errorf("%s: no Arabic %s form in case %d", name, cat, c)
				}
			}
		}
		for _, cat := range Needed(EN) {
			if u.en[cat] == "" {
				t.Errorf("%s: no English %s form", name, cat)
			}
		}
	}
}

func TestDuration(t *testing.T) {
	cases := []struct {
		d      time.Duration
		c      Case
		ar, en string
	}{
		{4 * time.Hour, Nominative, "4 ساعات", "4 hours"},
		{3*time.Hour + 59*time.Minute, Nominative, "3 ساعات و59 دقيقة", "3 hours and 59 minutes"},
		{2*time.Hour + 2*time.Minute, Genitive, "ساعتين ودقيقتين", "2 hours and 2 minutes"},
		{time.Hour + time.Minute, Nominative, "ساعة واحدة ودقيقة واحدة", "1 hour and 1 minute"},
		{26*time.Hour + 5*time.Minute, Nominative, "يوم واحد وساعتان و5 دقائق", "1 day, 2 hours and 5 minutes"},
		{20 * time.Minute, Genitive, "20 دقيقة", "20 minutes"},
		{45 * time.Second, Genitive, "45 ثانية", "45 seconds"},
		{0, Nominative, "0 دقيقة", "0 minutes"},
	}
	for _, c := range cases {
		if got := Duration(AR, c.d, c.c); got != c.ar {
			t.Errorf("Duration(ar, %s) = %q, want %q", c.d, got, c.ar)
		}
		if got := Duration(EN, c.d, c.c); got != c.en {
			t.Errorf("Duration(en, %s) = %q, want %q", c.d, got, c.en)
		}
	}
}

func TestRemaining(t *testing.T) {
	cases := []struct {
		d      time.Duration
		ar, en string
	}{
		// A fresh 4-hour session a second after login still reads 4 hours.
		{4*time.Hour - time.Second, "4 ساعات", "4 hours"},
		{3*time.Hour + 58*time.Minute + 30*time.Second, "3 ساعات و59 دقيقة", "3 hours and 59 minutes"},
		{59 * time.Second, "أقل من دقيقة", "less than a minute"},
		{time.Second, "أقل من دقيقة", "less than a minute"},
		{time.Minute, "دقيقة واحدة", "1 minute"},
		{61 * time.Second, "دقيقتان", "2 minutes"},
		{0, "0 دقيقة", "0 minutes"},
		{-time.Minute, "0 دقيقة", "0 minutes"},
	}
	for _, c := range cases {
		if got := Remaining(AR, c.d); got != c.ar {
			t.Errorf("Remaining(ar, %s) = %q, want %q", c.d, got, c.ar)
		}
		if got := Remaining(EN, c.d); got != c.en {
			t.Errorf("Remaining(en, %s) = %q, want %q", c.d, got, c.en)
		}
	}
}

func TestWait(t *testing.T) {
	cases := []struct {
		d      time.Duration
		ar, en string
	}{
		{1500 * time.Millisecond, "ثانيتين", "2 seconds"},
		{time.Millisecond, "ثانية واحدة", "1 second"},
		{30 * time.Second, "30 ثانية", "30 seconds"},
		{59*time.Second + 500*time.Millisecond, "دقيقة واحدة", "1 minute"},
		{90 * time.Second, "دقيقتين", "2 minutes"},
		{15 * time.Minute, "15 دقيقة", "15 minutes"},
		{5*time.Hour + 30*time.Second, "5 ساعات ودقيقة واحدة", "5 hours and 1 minute"},
	}
	for _, c := range cases {
		if got := Wait(AR, c.d); got != c.ar {
			t.Errorf("Wait(ar, %s) = %q, want %q", c.d, got, c.ar)
		}
		if got := Wait(EN, c.d); got != c.en {
			t.Errorf("Wait(en, %s) = %q, want %q", c.d, got, c.en)
		}
	}
}

func TestFill(t *testing.T) {
	if got := Fill("{1} and {2}, {1}", "a{2}", "b"); got != "a{2} and b, a{2}" {
		t.Errorf("Fill = %q", got)
	}
	if got := Fill("no {1}"); got != "no {1}" {
		t.Errorf("Fill without args = %q", got)
	}
}

func TestCatalogLookups(t *testing.T) {
	c := Catalog{
		"hello":   {AR: "مرحبا", EN: "Hello"},
		"visitor": {CountAR: Forms{Zero: "لا زوار", One: "زائر واحد", Two: "زائران", Few: "{n} زوار", Many: "{n} زائرًا", Other: "{n} زائر"}, CountEN: Forms{One: "1 visitor", Other: "{n} visitors"}},
	}
	if errs := c.Check(); len(errs) != 0 {
		t.Fatalf("a complete catalogue fails its check: %v", errs)
	}
	if got := c.T(AR, "hello"); got != "مرحبا" {
		t.Errorf("T(ar) = %q", got)
	}
	if got := c.T("fr", "hello"); got != "Hello" {
		t.Errorf("T(fr) = %q, want the English", got)
	}
	if got := c.T(EN, "nope"); got != "nope" {
		t.Errorf("unknown key = %q, want the key", got)
	}
	for n, want := range map[int]string{0: "لا زوار", 1: "زائر واحد", 2: "زائران", 7: "7 زوار", 12: "12 زائرًا", 300: "300 زائر"} {
		if got := c.N(AR, "visitor", n); got != want {
			t.Errorf("N(ar, %d) = %q, want %q", n, got, want)
		}
	}
	if got := c.N(EN, "visitor", 1); got != "1 visitor" {
		t.Errorf("N(en, 1) = %q", got)
	}
	if got := c.N(EN, "visitor", 0); got != "0 visitors" {
		t.Errorf("N(en, 0) = %q", got)
	}
}

func TestCatalogCheckFindsGaps(t *testing.T) {
	full := Forms{Zero: "0", One: "1", Two: "2", Few: "{n}", Many: "{n}", Other: "{n}"}
	noFew := full
	noFew[Few] = ""
	cases := map[string]Catalog{
		"no Arabic":                  {"k": {EN: "x"}},
		"no English":                 {"k": {AR: "x"}},
		"both a plain and a counted": {"k": {AR: "x", EN: "y", CountAR: full, CountEN: Forms{One: "1", Other: "{n}"}}},
		`no ar form for "few"`:       {"k": {CountAR: noFew, CountEN: Forms{One: "1", Other: "{n}"}}},
		`no en form for "one"`:       {"k": {CountAR: full, CountEN: Forms{Other: "{n}"}}},
		"placeholders differ":        {"k": {AR: "{1} و{2}", EN: "{1}"}},
		"never shown":                {"k": {CountAR: full, CountEN: Forms{Zero: "none", One: "1", Other: "{n}"}}},
		"others":                     {"k": {CountAR: Forms{Zero: "{1}", One: "{1}", Two: "{1}", Few: "{1}", Many: "{1}", Other: "{1}"}, CountEN: Forms{One: "1", Other: "{1}"}}},
	}
	for want, c := range cases {
		errs := c.Check()
		if len(errs) == 0 {
			t.Errorf("%s: Check found nothing", want)
			continue
		}
		var msgs []string
		for _, e := range errs {
			msgs = append(msgs, e.Error())
		}
		if !strings.Contains(strings.Join(msgs, "; "), want) {
			t.Errorf("%s: Check said %q", want, msgs)
		}
	}
}

func TestOtherLang(t *testing.T) {
	if OtherLang(AR) != EN || OtherLang(EN) != AR || OtherLang("fr") != AR {
		t.Error("OtherLang does not switch between Arabic and English")
	}
}
