package settings

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/parkwifi/parkportal/config"
)

func openDB(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func defaults() Site { return FromConfig(config.Defaults().Site) }

func TestDefaultsValid(t *testing.T) {
	if fe := defaults().Validate(); fe != nil {
		t.Fatalf("defaults from config do not validate: %v", fe)
	}
}

func TestValidatePerField(t *testing.T) {
	tests := []struct {
		field string
		edit  func(*Site)
	}{
		{"name_ar", func(s *Site) { s.NameAR = " " }},
		{"name_en", func(s *Site) { s.NameEN = strings.Repeat("x", 65) }},
		{"session_timeout", func(s *Site) { s.SessionTimeout = Duration(9 * time.Second) }},
		{"idle_timeout", func(s *Site) { s.IdleTimeout = Duration(25 * time.Hour) }},
		{"terms_url", func(s *Site) { s.TermsURL = "ftp://198.51.100.1/terms" }},
		{"venue_url", func(s *Site) { s.VenueURL = "venue" }},
		{"sms_daily_budget", func(s *Site) { s.SMSDailyBudget = 0 }},
		{"pin_max_tries", func(s *Site) { s.PINMaxTries = 0 }},
		{"rate_down", func(s *Site) { s.RateDown = 0 }},
		{"rate_up", func(s *Site) { s.RateUp = 1000 }},
		{"rate_down", func(s *Site) { s.UplinkDown = 4_000_000 }},
		{"walled_garden", func(s *Site) { s.WalledGarden = []string{"example.org"} }},
		{"walled_garden", func(s *Site) { s.WalledGarden = []string{"2001:db8::/32"} }},
		{"sms_templates.ar", func(s *Site) { s.SMSTemplates["ar"] = "no pin here" }},
		{"sms_templates.en", func(s *Site) { delete(s.SMSTemplates, "en") }},
		{"sms_templates", func(s *Site) { s.SMSTemplates["fr"] = "{pin}" }},
		{"phone_region", func(s *Site) { s.PhoneRegion = "qa" }},
		{"allowed_prefixes", func(s *Site) { s.AllowedPrefixes = []string{"9743"} }},
		{"allowed_prefixes", func(s *Site) { s.AllowedPrefixes = nil }},
		{"sms_per_number_hour", func(s *Site) { s.SMSPerNumberHour = 0 }},
		{"sms_daily_budget", func(s *Site) { s.SMSDailyBudget = -1 }},
		{"privacy_url", func(s *Site) { s.PrivacyURL = "javascript:alert(1)" }},
		{"require_terms", func(s *Site) { s.RequireTerms = true }},
		{"radius.fail_policy", func(s *Site) { s.RADIUS.FailPolicy = "maybe" }},
		{"radius.servers", func(s *Site) { s.RADIUS.Enabled = true }},
		{"radius.servers", func(s *Site) { s.RADIUS.Servers = []string{"radius.example"} }},
	}
	for _, tt := range tests {
		s := defaults()
		tt.edit(&s)
		fe := s.Validate()
		if !fe.has(tt.field) {
			t.Errorf("%s: want an error, got %v", tt.field, fe)
		}
		if len(fe) != 1 {
			t.Errorf("%s: want only that field's error, got %v", tt.field, fe)
		}
	}
}

func TestUpdateAuditListeners(t *testing.T) {
	db := openDB(t)
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	m, err := Open(db, defaults(), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	var heard []Site
	m.OnChange(func(s Site) { heard = append(heard, s) })

	next := m.Get()
	next.RateDown = 4_000_000
	next.SMSTemplates["en"] = "PIN {pin}"
	next.ID = "someone-else" // ignored: the config names the site
	if _, err := m.Update("alice", next); err != nil {
		t.Fatal(err)
	}
	if len(heard) != 1 || heard[0].RateDown != 4_000_000 || heard[0].ID != "park" {
		t.Fatalf("listener heard %+v", heard)
	}
	recs, err := m.Audit(10, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]AuditRecord{}
	for _, r := range recs {
		got[r.Field] = r
	}
	if len(recs) != 2 || got["rate_down"].Old != `"8mbit"` || got["rate_down"].New != `"4mbit"` ||
		got["rate_down"].Actor != "alice" || !got["rate_down"].Time.Equal(now) || got["sms_templates.en"].New != `"PIN {pin}"` {
		t.Fatalf("audit = %+v", recs)
	}

	bad := m.Get()
	bad.RateUp = 0
	_, err = m.Update("alice", bad)
	var fe FieldErrors
	if !errors.As(err, &fe) || !fe.has("rate_up") {
		t.Fatalf("invalid update: err = %v", err)
	}
	if len(heard) != 1 || m.Get().RateUp == 0 {
		t.Fatal("an invalid update changed something")
	}

	// Reopening reads the stored policy, not the defaults.
	m2, err := Open(db, defaults(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Get().RateDown != 4_000_000 {
		t.Fatalf("reopened rate_down = %v", m2.Get().RateDown)
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	a, err := Open(openDB(t), defaults(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := a.Get()
	s.NameEN, s.TermsAR, s.RequireTerms = "Aspire Park", "الشروط", true
	s.WalledGarden = []string{"203.0.113.0/28", "192.0.2.7"}
	s.RADIUS = RADIUS{Enabled: true, Servers: []string{"192.0.2.5:1812"}, FailPolicy: "open"}
	if _, err := a.Update("alice", s); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := a.Export(&buf); err != nil {
		t.Fatal(err)
	}

	other := defaults()
	other.ID, other.NameEN = "park-09", "Park Nine"
	b, err := Open(openDB(t), other, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Import("bob", bytes.NewReader(buf.Bytes()), true)
	if err != nil {
		t.Fatal(err)
	}
	want := a.Get()
	want.ID, want.NameEN = "park-09", "Park Nine"
	if !equalJSON(t, got, want) {
		t.Fatalf("imported\n%+v\nwant\n%+v", got, want)
	}
	if _, err := b.Import("bob", strings.NewReader(`{"format":"other","version":1,"site":{}}`), false); err == nil {
		t.Fatal("imported a file that is not a profile")
	}
}

func equalJSON(t *testing.T, a, b Site) bool {
	t.Helper()
	fa, _ := flatten(a)
	fb, _ := flatten(b)
	if len(fa) != len(fb) {
		return false
	}
	for k, v := range fa {
		if !bytes.Equal(v, fb[k]) {
			t.Logf("%s: %s != %s", k, v, fb[k])
			return false
		}
	}
	return true
}

func TestDecodeStrictAndPatch(t *testing.T) {
	if _, err := DecodeJSON([]byte(`{"rate_dwon":"4mbit"}`)); err == nil {
		t.Fatal("unknown field accepted")
	}
	if _, err := DecodeJSON([]byte(`{} {}`)); err == nil {
		t.Fatal("trailing data accepted")
	}
	p, err := Patch(defaults(), []byte(`{"rate_down":"2mbit","idle_timeout":600,"radius":{"fail_policy":"open"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.RateDown != 2_000_000 || p.IdleTimeout.D() != 10*time.Minute || p.RADIUS.FailPolicy != "open" || p.RADIUS.Servers == nil {
		t.Fatalf("patched = %+v", p)
	}
	if _, err := Patch(defaults(), []byte(`{"nope":1}`)); !errors.Is(err, ErrUnknownField) {
		t.Fatalf("unknown patch field: err = %v", err)
	}
}

// TestRADIUSSecretCheck: with no shared secret in the config file,
// turning RADIUS on is refused on its field before anything is stored,
// audited or announced; with one, it is saved.
func TestRADIUSSecretCheck(t *testing.T) {
	for _, hasSecret := range []bool{false, true} {
		m, err := Open(openDB(t), defaults(), nil)
		if err != nil {
			t.Fatal(err)
		}
		m.AddCheck(RequireRADIUSSecret(hasSecret))
		heard := 0
		m.OnChange(func(Site) { heard++ })
		next := m.Get()
		next.RADIUS = RADIUS{Enabled: true, Servers: []string{"192.0.2.5:1812"}, FailPolicy: "closed"}
		if fe := m.Check(next); hasSecret != (fe == nil) {
			t.Errorf("secret %v: Check = %v", hasSecret, fe)
		}
		_, err = m.Update("alice", next)
		recs, _ := m.Audit(10, 0)
		if hasSecret {
			if err != nil || !m.Get().RADIUS.Enabled || heard != 1 {
				t.Errorf("with a secret: err %v, enabled %v, heard %d", err, m.Get().RADIUS.Enabled, heard)
			}
			continue
		}
		var fe FieldErrors
		if !errors.As(err, &fe) || len(fe) != 1 || fe["radius.enabled"].Code != "radius_no_secret" {
			t.Fatalf("without a secret: err = %v", err)
		}
		if !strings.Contains(err.Error(), "secret_file") {
			t.Errorf("the message does not say what to do: %v", err)
		}
		if m.Get().RADIUS.Enabled || heard != 0 || len(recs) != 0 {
			t.Errorf("a refused change was applied: enabled %v, heard %d, audit %v", m.Get().RADIUS.Enabled, heard, recs)
		}
		// Other changes still save while RADIUS stays off.
		next.RADIUS.Enabled = false
		if _, err := m.Update("alice", next); err != nil {
			t.Errorf("RADIUS off: %v", err)
		}
	}
}

// TestFieldErrorLanguages: every message has both languages, takes
// exactly its parameters, and the API's JSON stays English text.
func TestFieldErrorLanguages(t *testing.T) {
	for _, err := range fieldMessages.Check() {
		t.Error(err)
	}
	s := defaults()
	s.RateDown = 1000
	s.WalledGarden = []string{"example.org"}
	fe := s.Validate()
	if got := fe["rate_down"].In("en"); got != "at least 64kbit (a page would not load below that)" {
		t.Errorf("English: %q", got)
	}
	ar := fe["walled_garden"].In("ar")
	if !strings.Contains(ar, "المطلوب عناوين") || !strings.Contains(ar, "\u2068\"example.org\"\u2069") {
		t.Errorf("Arabic: %q", ar)
	}
	b, err := json.Marshal(fe)
	if err != nil || !strings.Contains(string(b), `"walled_garden":"want IPv4 addresses or prefixes like 203.0.113.0/28, got \"example.org\""`) {
		t.Errorf("JSON: %s %v", b, err)
	}
	if _, err := ParseRate("fast"); err == nil || err.Error() != `want a rate like 8mbit or 512kbit, got "fast"` {
		t.Errorf("ParseRate error: %v", err)
	}
}
