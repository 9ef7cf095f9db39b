package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/config"
	"github.com/parkwifi/parkportal/settings"
)

// TestSiteBoundsAgree: for every bounded site option, the config file's
// parser and the site policy's validator (the console, the API, the CLI)
// accept exactly the same values, at and around each bound and at 0; and
// every value they accept reaches the SMS limiter meaning what it meant
// to them (the limiter reads 0 as "its default", so 0 must never get
// there except where it means "off").
func TestSiteBoundsAgree(t *testing.T) {
	type option struct {
		file, field string
		values      []string
		set         func(*settings.Site, string) error
	}
	dur := func(dst func(*settings.Site) *settings.Duration) func(*settings.Site, string) error {
		return func(s *settings.Site, v string) error {
			d, err := settings.ParseDuration(v)
			*dst(s) = d
			return err
		}
	}
	count := func(dst func(*settings.Site) *int) func(*settings.Site, string) error {
		return func(s *settings.Site, v string) error {
			n, err := settings.ParseCount(v)
			*dst(s) = n
			return err
		}
	}
	rate := func(dst func(*settings.Site) *settings.Rate) func(*settings.Site, string) error {
		return func(s *settings.Site, v string) error {
			r, err := settings.ParseRate(v)
			*dst(s) = r
			return err
		}
	}
	durs := func(r config.DurationRange) []string {
		return []string{"0", "1", (r.Min - time.Second).String(), r.Min.String(), r.Max.String(), (r.Max + time.Second).String()}
	}
	ints := func(r config.IntRange) []string {
		return []string{"0", itoa(r.Min - 1), itoa(r.Min), itoa(r.Max), itoa(r.Max + 1)}
	}
	rates := []string{"0", "63999", "64kbit", "8mbit", "100gbit", "100000000001"}
	options := []option{
		{"session_timeout", "session_timeout", durs(config.SessionTimeoutRange), dur(func(s *settings.Site) *settings.Duration { return &s.SessionTimeout })},
		{"idle_timeout", "idle_timeout", durs(config.IdleTimeoutRange), dur(func(s *settings.Site) *settings.Duration { return &s.IdleTimeout })},
		{"pin_ttl", "pin_ttl", durs(config.PINTTLRange), dur(func(s *settings.Site) *settings.Duration { return &s.PINTTL })},
		{"pin_max_tries", "pin_max_tries", ints(config.PINMaxTriesRange), count(func(s *settings.Site) *int { return &s.PINMaxTries })},
		{"sms_per_number", "sms_per_number_hour", ints(config.SMSPerHourRange), count(func(s *settings.Site) *int { return &s.SMSPerNumberHour })},
		{"sms_per_device", "sms_per_device_hour", ints(config.SMSPerHourRange), count(func(s *settings.Site) *int { return &s.SMSPerDeviceHour })},
		{"sms_daily_budget", "sms_daily_budget", ints(config.SMSDailyBudgetRange), count(func(s *settings.Site) *int { return &s.SMSDailyBudget })},
		{"rate_down", "rate_down", rates, rate(func(s *settings.Site) *settings.Rate { return &s.RateDown })},
		{"uplink_up", "uplink_up", rates, rate(func(s *settings.Site) *settings.Rate { return &s.UplinkUp })},
		{"phone_region", "phone_region", []string{"QA", "qa", "Q", "QAT"}, func(s *settings.Site, v string) error { s.PhoneRegion = v; return nil }},
		{"name_en", "name_en", []string{"Park", strings.Repeat("x", config.MaxNameChars), strings.Repeat("x", config.MaxNameChars+1)}, func(s *settings.Site, v string) error { s.NameEN = v; return nil }},
		{"venue_url", "venue_url", []string{"https://198.51.100.1/venue", "ftp://198.51.100.1/", "https://"}, func(s *settings.Site, v string) error { s.VenueURL = v; return nil }},
	}
	for _, o := range options {
		for _, v := range o.values {
			cfg, cerr := config.Parse(minimalSite("option " + o.file + " '" + v + "'"))
			fileOK := cerr == nil
			if cerr != nil && !strings.Contains(cerr.Error(), "site."+o.file) {
				t.Errorf("%s=%q: the file's error does not name the option: %v", o.file, v, cerr)
			}
			s := settings.FromFile(mustParse(t, minimalSite("")))
			consoleOK := o.set(&s, v) == nil
			if consoleOK {
				_, bad := s.Validate()[o.field]
				consoleOK = !bad
			}
			if fileOK != consoleOK {
				t.Errorf("%s=%q: the file says ok=%v (%v), the console ok=%v (%v)", o.file, v, fileOK, cerr, consoleOK, s.Validate())
			}
			if !fileOK {
				continue
			}
			// What the limiter makes of an accepted value.
			lc, err := limitsConfig(cfg.Site, time.UTC).Effective()
			if err != nil {
				t.Errorf("%s=%q: the limiter refuses it: %v", o.file, v, err)
				continue
			}
			want := map[string]int{"sms_per_number": lc.SMSPerNumber, "sms_per_device": lc.SMSPerDevice, "sms_daily_budget": lc.DailyBudget}
			if got, ok := want[o.file]; ok && itoa(got) != v {
				t.Errorf("%s=%q reaches the limiter as %d", o.file, v, got)
			}
		}
	}
	// sms_resend_gap (the file's alone): 0 turns the gap off, and the
	// limiter must read it so.
	for _, v := range []string{"0", "1m", "1h", "61m"} {
		cfg, err := config.Parse(minimalSite("option sms_resend_gap '" + v + "'"))
		if v == "61m" {
			if err == nil {
				t.Errorf("sms_resend_gap=%s accepted", v)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		lc, err := limitsConfig(cfg.Site, time.UTC).Effective()
		if err != nil {
			t.Fatal(err)
		}
		if off := lc.ResendGap < 0; off != (v == "0") || (!off && lc.ResendGap != cfg.Site.SMSResendGap) {
			t.Errorf("sms_resend_gap=%s reaches the limiter as %v", v, lc.ResendGap)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func minimalSite(extra string) string {
	return "config parkportal 'main'\n option lan_cidr '198.51.100.0/24'\n option gateway_ip '198.51.100.1'\nconfig site 'p'\n " + extra + "\n"
}

func mustParse(t *testing.T, src string) *config.Config {
	t.Helper()
	c, err := config.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
