package settings

import (
	"strings"
	"testing"

	"github.com/parkwifi/parkportal/sms"
)

// TestCountedFieldMessages: a message that counts takes the plural form
// its number needs, in both languages.
func TestCountedFieldMessages(t *testing.T) {
	cases := []struct {
		code, n string
		ar, en  string
	}{
		{"max_chars", "1", "حرف واحد على الأكثر", "at most 1 character"},
		{"max_chars", "2", "حرفان على الأكثر", "at most 2 characters"},
		{"max_chars", "3", "3 أحرف على الأكثر", "at most 3 characters"},
		{"max_chars", "64", "64 حرفًا على الأكثر", "at most 64 characters"},
		{"max_chars", "20000", "20000 حرف على الأكثر", "at most 20000 characters"},
		{"max_entries", "256", "256 عنصرًا على الأكثر", "at most 256 entries"},
		{"max_entries", "103", "103 عناصر على الأكثر", "at most 103 entries"},
		{"template_max", "320", "320 حرفًا على الأكثر (نحو رسالتين نصيتين)", "at most 320 characters (about two SMS)"},
	}
	for _, c := range cases {
		e := fieldError(c.code, c.n)
		if got := e.In("ar"); got != c.ar {
			t.Errorf("%s %s: Arabic %q, want %q", c.code, c.n, got, c.ar)
		}
		if got := e.In("en"); got != c.en {
			t.Errorf("%s %s: English %q, want %q", c.code, c.n, got, c.en)
		}
	}
	// What Validate reports for a too-long name reads right.
	s := defaults()
	s.NameAR = strings.Repeat("ح", 65)
	if got := s.Validate()["name_ar"].In("ar"); got != "64 حرفًا على الأكثر" {
		t.Errorf("a 65-character name: %q", got)
	}
}

// TestEarlierDefaultTemplateUpgraded: a site whose stored PIN text is an
// earlier default («صالح {minutes} دقيقة») reads the current one after a
// restart; a text staff wrote is kept.
func TestEarlierDefaultTemplateUpgraded(t *testing.T) {
	db := openDB(t)
	m, err := Open(db, defaults(), nil)
	if err != nil {
		t.Fatal(err)
	}
	next := m.Get()
	next.SMSTemplates["ar"] = sms.LegacyTemplates["ar"][0]
	next.SMSTemplates["en"] = "Code {pin}, {minutes} min"
	if _, err := m.Update("alice", next); err != nil {
		t.Fatal(err)
	}
	m2, err := Open(db, defaults(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := m2.Get().SMSTemplates
	if got["ar"] != sms.DefaultTemplates["ar"] || got["en"] != "Code {pin}, {minutes} min" {
		t.Errorf("after reopening: %q", got)
	}
}
