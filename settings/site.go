// Package settings keeps a site's policy (the part staff change from the
// console, the API or the CLI) in the daemon's bbolt file, validates every
// change field by field, records it in an audit log and tells the daemon,
// so changes apply live without a restart.
//
// The config file holds infrastructure, which is its alone (the RADIUS
// policy among it), and the site policy's options, which the latest
// writer owns: the file when it changed since the previous start, else
// the store. See file.go.
package settings

import (
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/parkwifi/parkportal/config"
	"github.com/parkwifi/parkportal/sms"
)

// Site is one park's policy.
type Site struct {
	// ID names the site (the config file's section name). It is not
	// editable here: it keys RADIUS accounting and metrics.
	ID     string `json:"id"`
	NameAR string `json:"name_ar"`
	NameEN string `json:"name_en"`

	SessionTimeout Duration `json:"session_timeout"`
	IdleTimeout    Duration `json:"idle_timeout"`
	PINTTL         Duration `json:"pin_ttl"`
	PINMaxTries    int      `json:"pin_max_tries"`

	// RateDown and RateUp are each visitor's ceiling.
	RateDown Rate `json:"rate_down"`
	RateUp   Rate `json:"rate_up"`
	// UplinkDown and UplinkUp are the park's uplink; 0 means unlimited.
	UplinkDown Rate `json:"uplink_down"`
	UplinkUp   Rate `json:"uplink_up"`

	// WalledGarden lists IPv4 addresses and prefixes reachable before login.
	WalledGarden []string `json:"walled_garden"`

	// SMSTemplates holds the PIN message per language ("ar", "en"); each
	// must contain {pin} and may contain {validity}, {minutes} and {site}
	// (see sms.Render).
	SMSTemplates map[string]string `json:"sms_templates"`
	PhoneRegion  string            `json:"phone_region"`
	// AllowedPrefixes lists the E.164 prefixes SMS may be sent to.
	AllowedPrefixes []string `json:"allowed_prefixes"`

	SMSPerNumberHour int `json:"sms_per_number_hour"`
	SMSPerDeviceHour int `json:"sms_per_device_hour"`
	SMSDailyBudget   int `json:"sms_daily_budget"`

	TermsAR      string `json:"terms_ar"`
	TermsEN      string `json:"terms_en"`
	PrivacyURL   string `json:"privacy_url"`
	RequireTerms bool   `json:"require_terms"`
	TermsURL     string `json:"terms_url,omitempty"`
	VenueURL     string `json:"venue_url,omitempty"`

	RADIUS RADIUS `json:"radius"`
}

// RADIUS holds the site's RADIUS options as plain fields; the radius
// package interprets them.
type RADIUS struct {
	Enabled bool `json:"enabled"`
	// Servers are host:port of the RADIUS servers, in order of preference.
	Servers []string `json:"servers"`
	// FailPolicy says what happens to a login when no server answers:
	// "open" lets the visitor in, "closed" refuses.
	FailPolicy string `json:"fail_policy"`
}

// Defaults of the SMS caps (the config file's defaults are the same).
const (
	DefaultSMSPerNumberHour = 3
	DefaultSMSPerDeviceHour = 5
	DefaultSMSDailyBudget   = 2000
)

// DefaultTemplates are the PIN messages a new site starts with: the SMS
// package's, which fit one segment.
var DefaultTemplates = sms.DefaultTemplates

// FromConfig returns the policy the config file starts a site with.
func FromConfig(c config.Site) Site {
	s := Site{
		ID: c.ID, NameAR: c.NameAR, NameEN: c.NameEN,
		SessionTimeout: Duration(c.SessionTimeout), IdleTimeout: Duration(c.IdleTimeout),
		PINTTL: Duration(c.PINTTL), PINMaxTries: c.PINMaxTries,
		RateDown: Rate(c.RateDown), RateUp: Rate(c.RateUp),
		UplinkDown: Rate(c.UplinkDown), UplinkUp: Rate(c.UplinkUp),
		WalledGarden:     []string{},
		SMSTemplates:     map[string]string{},
		PhoneRegion:      c.PhoneRegion,
		AllowedPrefixes:  slices.Clone(c.AllowedPrefixes),
		SMSPerNumberHour: c.SMSPerNumber,
		SMSPerDeviceHour: c.SMSPerDevice,
		SMSDailyBudget:   c.SMSDailyBudget,
		PrivacyURL:       c.PrivacyURL,
		RequireTerms:     c.RequireTerms,
		TermsURL:         c.TermsURL,
		VenueURL:         c.VenueURL,
		RADIUS:           RADIUS{Servers: []string{}, FailPolicy: "closed"},
	}
	for _, p := range c.WalledGarden {
		if p.Bits() == 32 {
			s.WalledGarden = append(s.WalledGarden, p.Addr().String())
		} else {
			s.WalledGarden = append(s.WalledGarden, p.String())
		}
	}
	for k, v := range DefaultTemplates {
		s.SMSTemplates[k] = v
	}
	if s.AllowedPrefixes == nil {
		s.AllowedPrefixes = []string{}
	}
	return s
}

// Clone returns a deep copy, so a listener cannot change the manager's
// copy through shared slices or maps.
func (s Site) Clone() Site {
	s.WalledGarden = slices.Clone(s.WalledGarden)
	s.AllowedPrefixes = slices.Clone(s.AllowedPrefixes)
	s.RADIUS.Servers = slices.Clone(s.RADIUS.Servers)
	if s.SMSTemplates != nil {
		m := make(map[string]string, len(s.SMSTemplates))
		for k, v := range s.SMSTemplates {
			m[k] = v
		}
		s.SMSTemplates = m
	}
	return s
}

// WalledGardenPrefixes returns the walled garden as prefixes; entries that
// do not parse (Validate refuses them) are skipped.
func (s Site) WalledGardenPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, g := range s.WalledGarden {
		if p, err := config.ParsePrefixOrAddr(g); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// Limits on free text, so a profile cannot bloat the store or a page.
// The bounds of the options the config file also carries are config's
// (config/bounds.go), so the file and the console agree on them.
const (
	maxTerms    = 20000
	maxTemplate = 320
)

// Validate checks every field and returns a message per bad field, or
// nil when s is acceptable. It is the one validator of site policy: the
// console, the API, the CLI and profile imports go through it, and so
// does the config file's site section at every start and in `parkportal
// config check` (whose parser checks each option against the same
// bounds first).
func (s Site) Validate() FieldErrors {
	fe := FieldErrors{}
	name := func(field, v string) {
		switch err := config.CheckName(v); {
		case errors.Is(err, config.ErrNameRequired):
			fe[field] = fieldError("name_required")
		case errors.Is(err, config.ErrNameTooLong):
			fe[field] = fieldError("max_chars", strconv.Itoa(config.MaxNameChars))
		case err != nil:
			fe[field] = fieldError("one_line")
		}
	}
	name("name_ar", s.NameAR)
	name("name_en", s.NameEN)
	dur := func(field string, d Duration, r config.DurationRange) {
		if !r.Contains(d.D()) {
			fe[field] = fieldError("duration_range", Duration(r.Min).String(), Duration(r.Max).String(), d.String())
		}
	}
	dur("session_timeout", s.SessionTimeout, config.SessionTimeoutRange)
	dur("idle_timeout", s.IdleTimeout, config.IdleTimeoutRange)
	dur("pin_ttl", s.PINTTL, config.PINTTLRange)
	count := func(field string, n int, r config.IntRange) {
		if !r.Contains(n) {
			fe[field] = fieldError("number_range", strconv.Itoa(r.Min), strconv.Itoa(r.Max), strconv.Itoa(n))
		}
	}
	count("pin_max_tries", s.PINMaxTries, config.PINMaxTriesRange)
	rate := func(field string, r Rate, allowZero bool) {
		switch {
		case r == 0 && !allowZero:
			fe[field] = fieldError("rate_required")
		case r != 0 && uint64(r) < config.VisitorRateRange.Min:
			fe[field] = fieldError("rate_min")
		case uint64(r) > config.VisitorRateRange.Max:
			fe[field] = fieldError("rate_max")
		}
	}
	rate("rate_down", s.RateDown, false)
	rate("rate_up", s.RateUp, false)
	rate("uplink_down", s.UplinkDown, true)
	rate("uplink_up", s.UplinkUp, true)
	if !fe.has("rate_down") && s.UplinkDown != 0 && s.RateDown > s.UplinkDown {
		fe["rate_down"] = fieldError("rate_over_uplink", s.UplinkDown.String())
	}
	if !fe.has("rate_up") && s.UplinkUp != 0 && s.RateUp > s.UplinkUp {
		fe["rate_up"] = fieldError("rate_over_uplink", s.UplinkUp.String())
	}
	if len(s.WalledGarden) > config.MaxListEntries {
		fe["walled_garden"] = fieldError("max_entries", strconv.Itoa(config.MaxListEntries))
	} else {
		for _, g := range s.WalledGarden {
			if _, err := config.ParsePrefixOrAddr(g); err != nil {
				fe["walled_garden"] = fieldError("walled_garden_entry", strconv.Quote(g))
				break
			}
		}
	}
	for _, lang := range []string{"ar", "en"} {
		field := "sms_templates." + lang
		t := s.SMSTemplates[lang]
		switch {
		case strings.TrimSpace(t) == "":
			fe[field] = fieldError("required")
		case !strings.Contains(t, "{pin}"):
			fe[field] = fieldError("template_pin")
		case utf8.RuneCountInString(t) > maxTemplate:
			fe[field] = fieldError("template_max", strconv.Itoa(maxTemplate))
		}
	}
	for lang := range s.SMSTemplates {
		if lang != "ar" && lang != "en" {
			fe["sms_templates"] = fieldError("template_langs", strconv.Quote(lang))
		}
	}
	if !config.IsRegion(s.PhoneRegion) {
		fe["phone_region"] = fieldError("phone_region", strconv.Quote(s.PhoneRegion))
	}
	switch {
	case len(s.AllowedPrefixes) == 0:
		fe["allowed_prefixes"] = fieldError("prefixes_required")
	case len(s.AllowedPrefixes) > config.MaxListEntries:
		fe["allowed_prefixes"] = fieldError("max_entries", strconv.Itoa(config.MaxListEntries))
	default:
		for _, p := range s.AllowedPrefixes {
			if !config.IsE164Prefix(p) {
				fe["allowed_prefixes"] = fieldError("prefix_entry", strconv.Quote(p))
				break
			}
		}
	}
	count("sms_per_number_hour", s.SMSPerNumberHour, config.SMSPerHourRange)
	count("sms_per_device_hour", s.SMSPerDeviceHour, config.SMSPerHourRange)
	count("sms_daily_budget", s.SMSDailyBudget, config.SMSDailyBudgetRange)
	if utf8.RuneCountInString(s.TermsAR) > maxTerms {
		fe["terms_ar"] = fieldError("max_chars", strconv.Itoa(maxTerms))
	}
	if utf8.RuneCountInString(s.TermsEN) > maxTerms {
		fe["terms_en"] = fieldError("max_chars", strconv.Itoa(maxTerms))
	}
	if s.PrivacyURL != "" && config.CheckURL(s.PrivacyURL) != nil {
		fe["privacy_url"] = fieldError("privacy_url")
	}
	for _, u := range []struct{ field, v string }{{"terms_url", s.TermsURL}, {"venue_url", s.VenueURL}} {
		if u.v != "" && config.CheckURL(u.v) != nil {
			fe[u.field] = fieldError("url")
		}
	}
	if s.RequireTerms && strings.TrimSpace(s.TermsAR) == "" && strings.TrimSpace(s.TermsEN) == "" && s.PrivacyURL == "" && s.TermsURL == "" {
		fe["require_terms"] = fieldError("terms_empty")
	}
	switch s.RADIUS.FailPolicy {
	case "open", "closed":
	default:
		fe["radius.fail_policy"] = fieldError("fail_policy", strconv.Quote(s.RADIUS.FailPolicy))
	}
	if len(s.RADIUS.Servers) > 8 {
		fe["radius.servers"] = fieldError("radius_servers_max")
	} else {
		for _, srv := range s.RADIUS.Servers {
			if _, err := netip.ParseAddrPort(srv); err != nil {
				fe["radius.servers"] = fieldError("radius_server_entry", strconv.Quote(srv))
				break
			}
		}
	}
	if s.RADIUS.Enabled && len(s.RADIUS.Servers) == 0 {
		fe["radius.servers"] = fieldError("radius_no_servers")
	}
	if len(fe) == 0 {
		return nil
	}
	return fe
}

func (fe FieldErrors) has(field string) bool { _, ok := fe[field]; return ok }
