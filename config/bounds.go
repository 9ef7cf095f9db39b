package config

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// The bounds of the site policy's options. The config file's parser
// (here) and the settings validator (package settings: the console, the
// API and the CLI) both read them, so a value one takes the other takes
// too; cmd/parkportal's tests check that both, and the SMS limiter they
// feed, agree on every bound and on what 0 means. Rules between options
// (a visitor's rate above the uplink, terms required but none given)
// live only in the settings validator, which `parkportal config check`
// and every start run on the file's site section as well.

// IntRange is an inclusive range of whole numbers.
type IntRange struct{ Min, Max int }

// Contains reports whether n is in r.
func (r IntRange) Contains(n int) bool { return n >= r.Min && n <= r.Max }

// DurationRange is an inclusive range of durations.
type DurationRange struct{ Min, Max time.Duration }

// Contains reports whether d is in r.
func (r DurationRange) Contains(d time.Duration) bool { return d >= r.Min && d <= r.Max }

// RateRange is an inclusive range of bit rates (bit/s).
type RateRange struct{ Min, Max uint64 }

// Contains reports whether bps is in r.
func (r RateRange) Contains(bps uint64) bool { return bps >= r.Min && bps <= r.Max }

var (
	// SessionTimeoutRange: a login lasts 10 s (short enough for tests)
	// to a week.
	SessionTimeoutRange = DurationRange{10 * time.Second, 7 * 24 * time.Hour}
	// IdleTimeoutRange: an idle timeout longer than the session simply
	// never fires, which is allowed.
	IdleTimeoutRange = DurationRange{10 * time.Second, 24 * time.Hour}
	PINTTLRange      = DurationRange{30 * time.Second, time.Hour}
	PINMaxTriesRange = IntRange{1, 10}
	// SMSPerHourRange bounds the SMS a number, and a device, may get in
	// an hour. 0 is not a value: the limiter would read it as "default".
	SMSPerHourRange = IntRange{1, 100}
	// SMSDailyBudgetRange bounds the site's SMS per day. 0 is not a
	// value either (it used to be taken, shown as "0 left" on the
	// dashboard while the limiter sent 2000 a day).
	SMSDailyBudgetRange = IntRange{1, 1_000_000}
	// SMSResendGapRange: 0 turns the gap off.
	SMSResendGapRange = DurationRange{0, time.Hour}
	// VisitorRateRange bounds each visitor's rates; an uplink is 0
	// (unlimited) or in it too.
	VisitorRateRange = RateRange{64_000, 100_000_000_000}
)

const (
	// MaxListEntries bounds the walled garden and the allowed prefixes.
	MaxListEntries = 256
	// MaxNameChars bounds the park's names.
	MaxNameChars = 64
	// MaxURLLen bounds the privacy, terms and venue URLs.
	MaxURLLen = 2048
)

// IsRegion reports whether s is an ISO 3166 region as phone numbers are
// read in: two capital letters, like QA.
func IsRegion(s string) bool {
	if len(s) != 2 {
		return false
	}
	for _, r := range s {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

// ErrNameRequired, ErrNameTooLong and ErrNameLines are CheckName's
// answers.
var (
	ErrNameRequired = errors.New("required")
	ErrNameTooLong  = fmt.Errorf("at most %d characters", MaxNameChars)
	ErrNameLines    = errors.New("one line of text")
)

// CheckName checks one of the park's names.
func CheckName(s string) error {
	switch {
	case strings.TrimSpace(s) == "":
		return ErrNameRequired
	case utf8.RuneCountInString(s) > MaxNameChars:
		return ErrNameTooLong
	case !utf8.ValidString(s) || strings.ContainsAny(s, "\r\n\t"):
		return ErrNameLines
	}
	return nil
}

// CheckURL checks a privacy, terms or venue URL: http or https, with a
// host, at most MaxURLLen long. Empty is the caller's business.
func CheckURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(s) > MaxURLLen {
		return fmt.Errorf("want an http(s):// URL with a host, at most %d characters, got %q", MaxURLLen, s)
	}
	return nil
}

// SiteOptions lists the options of the `config site` section ("name_ar",
// "allowed_prefix", ...), as the parser reads them, so other packages
// can check that they cover every one.
func SiteOptions() []string {
	sec := &Section{Type: "site", Options: map[string]string{}, Lists: map[string][]string{}}
	r := newReader(sec)
	var s Site
	s.applyWith(r, sec)
	var out []string
	for k := range r.used {
		out = append(out, k)
	}
	for k := range r.usedList {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
