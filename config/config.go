// Package config reads parkportal's configuration: one UCI-syntax file
// (/etc/config/parkportal on OpenWrt, any path elsewhere) holding the
// gateway's infrastructure and the site's starting policy.
package config

import (
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/parkwifi/parkportal/internal/tz"
)

// LabDefault is the configuration `parkportal lab` runs on: a virtual park
// in documentation address ranges with console SMS.
//
//go:embed lab.uci
var LabDefault string

// Config is the whole daemon configuration.
type Config struct {
	// LANIface is the interface visitors arrive on (br-lan on OpenWrt).
	LANIface string
	// LANPrefix is the visitors' IPv4 subnet; the gateway's own address
	// in it is GatewayIP.
	LANPrefix netip.Prefix
	GatewayIP netip.Addr
	// PortalPort is where the captive pages listen on GatewayIP; plain
	// HTTP from unauthorised visitors is redirected here.
	PortalPort int
	// TLSCert and TLSKey are PEM files for the portal's HTTPS listener on
	// TLSPort; PortalHostname is the name the certificate is for (visitors'
	// DNS must resolve it to GatewayIP). Without them the portal is plain
	// HTTP only.
	TLSCert, TLSKey string
	TLSPort         int
	PortalHostname  string
	// MaxConnsPerDevice caps concurrent connections from one visitor's
	// address to the portal (phones open about six), so one device cannot
	// tie up the portal with slow or idle connections.
	MaxConnsPerDevice int
	// AdminListen is host:port of the staff console. It is never reachable
	// from the LAN: the firewall drops its port on LANIface.
	AdminListen string
	// DBPath is the bbolt file holding sessions and all durable state.
	DBPath string
	// SecretFile holds the per-install key that PINs are HMACed with;
	// created (mode 0600) on first start. It is kept outside the database
	// so a copy of the database alone does not help anyone guess PINs.
	SecretFile string
	// IFBName is the IFB device used to shape visitors' uploads.
	IFBName string
	// Shaping turns per-visitor rate limits (HTB) on.
	Shaping bool
	// FirewallBackend is where the gate lives: "nftables" (our own
	// table), "iptables" (chains and ipsets, for kernels without
	// nf_tables) or "auto" (nftables where the kernel has it).
	FirewallBackend string
	// ResyncInterval is how often the kernel state is compared with the
	// store and repaired.
	ResyncInterval time.Duration
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// TrustedMACs are staff devices on the LAN (a technician's laptop,
	// an access point's management interface): never captive, unshaped,
	// and allowed to reach the gateway itself (SSH, LuCI).
	TrustedMACs []net.HardwareAddr
	// SMS holds the options of the `config sms` section verbatim
	// (provider, outbox, twilio_*, http_*); package sms interprets them.
	// SMSHeaders are its `list http_header 'Name: value'` entries.
	SMS        map[string]string
	SMSHeaders []string
	// Timezone is the park's IANA zone; the SMS budget's day ends at its
	// midnight. Routers often have no zone database, so the binary
	// carries one.
	Timezone *time.Location
	// Retention is how long ended sessions (phone numbers included) are
	// kept before the purge job deletes them.
	Retention time.Duration
	// MaxSessions bounds how many sessions the store keeps (oldest ended
	// ones go first), so the file stays small on a router's flash.
	MaxSessions int

	Site   Site
	Radius Radius
}

// Radius configures the gateway as a RADIUS NAS (section `config radius`).
type Radius struct {
	// Accounting sends Start/Interim/Stop to AcctServers;
	// Authorization asks AuthServers after a PIN checks out.
	Accounting, Authorization bool
	AuthServers, AcctServers  []string // host:port, primary first
	// Secret (or the file SecretFile) is shared with the servers.
	Secret, SecretFile string
	// NASIdentifier defaults to the site id, NASIP to gateway_ip;
	// CalledStationID is sent as Called-Station-Id: empty means the LAN
	// interface's MAC (AA-BB-CC-DD-EE-FF), ":SSID" that MAC and the SSID,
	// as CoovaChilli does; anything else is sent as it is.
	NASIdentifier   string
	NASIP           netip.Addr
	CalledStationID string
	// InterimInterval is the default Acct-Interim-Interval.
	InterimInterval time.Duration
	// AcctQueueMax bounds the accounting records kept while no server
	// answers (default 10,000: with 200 visitors and 5-minute interims,
	// about four hours of interims before any is given up; Starts and
	// Stops go last).
	AcctQueueMax int
	// FailOpen: when no server answers an Access-Request, let the visitor
	// in with the site's defaults (true) or refuse (false).
	FailOpen bool
	// DASListen is the UDP address for RFC 5176 Disconnect/CoA requests
	// ("" to not listen); only DASClients with DASSecret are answered.
	DASListen                string
	DASClients               []netip.Addr
	DASSecret, DASSecretFile string
}

// Site is one park's policy. The config file gives its starting values.
type Site struct {
	ID     string
	NameAR string
	NameEN string
	// SessionTimeout is the hard limit of one login; IdleTimeout ends a
	// session early when the device has sent nothing for that long.
	SessionTimeout time.Duration
	IdleTimeout    time.Duration
	// PINTTL is how long an SMS PIN stays valid; PINMaxTries wrong
	// entries void it.
	PINTTL      time.Duration
	PINMaxTries int
	// RateDown and RateUp are each visitor's ceiling in bit/s.
	RateDown, RateUp uint64
	// UplinkDown and UplinkUp are the park's uplink capacity in bit/s,
	// shared fairly between visitors; 0 means not limited.
	UplinkDown, UplinkUp uint64
	// PhoneRegion is the ISO 3166 region numbers without a country code
	// are read in; AllowedPrefixes lists the E.164 prefixes SMS may go to.
	PhoneRegion     string
	AllowedPrefixes []string
	// WalledGarden lists destinations reachable before login.
	WalledGarden []netip.Prefix
	// PrivacyURL links the full privacy text from the splash page.
	PrivacyURL string
	// VenueURL is advertised as venue-info-url in the Captive Portal API.
	VenueURL string
	// RequireTerms makes visitors accept the terms (TermsURL) first.
	RequireTerms bool
	TermsURL     string
	// SMS abuse limits: messages per number and per device in a sliding
	// hour, the site's daily budget, and the least gap between two
	// messages to one number (0 turns the gap off).
	SMSPerNumber, SMSPerDevice, SMSDailyBudget int
	SMSResendGap                               time.Duration
}

// mustLoadLocation loads a zone tz always knows (routers rarely have a
// zone database; tz then builds it from its compiled rules).
func mustLoadLocation(name string) *time.Location {
	loc, err := tz.Load(name)
	if err != nil {
		return time.UTC
	}
	return loc
}

// Load reads and validates the file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	c, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Defaults returns the built-in values every option starts from.
func Defaults() *Config {
	return &Config{
		LANIface:          "br-lan",
		PortalPort:        2050,
		TLSPort:           2051,
		MaxConnsPerDevice: 32,
		AdminListen:       "127.0.0.1:2052",
		DBPath:            "/etc/parkportal/parkportal.db",
		IFBName:           "pp-ifb0",
		Shaping:           true,
		FirewallBackend:   "auto",
		ResyncInterval:    30 * time.Second,
		Radius:            Radius{InterimInterval: 5 * time.Minute, FailOpen: true, AcctQueueMax: 10_000},
		Retention:         90 * 24 * time.Hour,
		MaxSessions:       50_000,
		Timezone:          mustLoadLocation("Asia/Qatar"),
		LogLevel:          "info",
		SMS:               map[string]string{"provider": "console"},
		Site: Site{
			ID:             "park",
			NameAR:         "حديقة عامة",
			NameEN:         "Public park",
			SessionTimeout: 4 * time.Hour,
			IdleTimeout:    20 * time.Minute,
			PINTTL:         5 * time.Minute,
			PINMaxTries:    5,
			RateDown:       8_000_000,
			RateUp:         8_000_000,
			PhoneRegion:    "QA",
			// Qatar mobile numbers: +974 then 8 digits starting 3, 5, 6 or 7.
			AllowedPrefixes: []string{"+9743", "+9745", "+9746", "+9747"},
			// Three texts an hour per number is a first PIN and two
			// resends; five per device lets a visitor fix a mistyped
			// number; 2000 a day is above a busy park's real demand and
			// caps what SMS-pumping fraud can cost.
			SMSPerNumber:   3,
			SMSPerDevice:   5,
			SMSDailyBudget: 2000,
			SMSResendGap:   time.Minute,
		},
	}
}

// Parse reads UCI text into a validated Config. Every problem found is
// reported, each naming the option, so staff fix the file in one pass.
func Parse(src string) (*Config, error) {
	sections, err := ParseUCI(src)
	if err != nil {
		return nil, err
	}
	c := Defaults()
	var errs []error
	seen := map[string]bool{}
	for _, s := range sections {
		if seen[s.Type] {
			errs = append(errs, fmt.Errorf("line %d: more than one `config %s` section", s.Line, s.Type))
			continue
		}
		seen[s.Type] = true
		switch s.Type {
		case "parkportal":
			errs = append(errs, c.applyMain(s)...)
		case "site":
			errs = append(errs, c.Site.apply(s)...)
		case "sms":
			errs = append(errs, c.applySMS(s)...)
		case "radius":
			errs = append(errs, c.Radius.apply(s)...)
		default:
			errs = append(errs, fmt.Errorf("line %d: unknown section type %q", s.Line, s.Type))
		}
	}
	errs = append(errs, c.validate()...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// optionReader applies one section's options to typed fields, collecting
// an error per bad option and noticing options nobody asked for.
type optionReader struct {
	s        *Section
	used     map[string]bool // options read
	usedList map[string]bool // lists read
	errs     []error
}

func newReader(s *Section) *optionReader {
	return &optionReader{s: s, used: map[string]bool{}, usedList: map[string]bool{}}
}

func (r *optionReader) fail(name, format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf("%s.%s: %s", r.s.Type, name, fmt.Sprintf(format, args...)))
}

func (r *optionReader) str(name string, dst *string) {
	r.used[name] = true
	if v, ok := r.s.Options[name]; ok {
		*dst = v
	}
}

func (r *optionReader) integer(name string, dst *int, min, max int) {
	r.used[name] = true
	v, ok := r.s.Options[name]
	if !ok {
		return
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		r.fail(name, "want a whole number from %d to %d, got %q", min, max, v)
		return
	}
	*dst = n
}

func (r *optionReader) duration(name string, dst *time.Duration, min, max time.Duration) {
	r.used[name] = true
	v, ok := r.s.Options[name]
	if !ok {
		return
	}
	d, err := ParseDuration(v)
	if err != nil || d < min || d > max {
		r.fail(name, "want a duration from %s to %s (like 30s, 20m, 4h), got %q", min, max, v)
		return
	}
	*dst = d
}

func (r *optionReader) rate(name string, dst *uint64, allowZero bool) {
	r.used[name] = true
	v, ok := r.s.Options[name]
	if !ok {
		return
	}
	n, err := ParseRate(v)
	switch {
	case err != nil || (n == 0 && !allowZero):
		r.fail(name, "want a rate like 8mbit or 512kbit, got %q", v)
	case n != 0 && !VisitorRateRange.Contains(n):
		r.fail(name, "want a rate from %s to %s, got %q", FormatRate(VisitorRateRange.Min), FormatRate(VisitorRateRange.Max), v)
	default:
		*dst = n
	}
}

func (r *optionReader) boolean(name string, dst *bool) {
	r.used[name] = true
	v, ok := r.s.Options[name]
	if !ok {
		return
	}
	switch v {
	case "1", "yes", "on", "true", "enabled":
		*dst = true
	case "0", "no", "off", "false", "disabled":
		*dst = false
	default:
		r.fail(name, "want 1 or 0, got %q", v)
	}
}

func (r *optionReader) list(name string, dst *[]string) {
	r.usedList[name] = true
	if v, ok := r.s.Lists[name]; ok {
		*dst = v
	}
}

// unknown reports options this section does not define, so a typo does
// not silently leave a default in place.
func (r *optionReader) unknown() {
	var names []string
	for k := range r.s.Options {
		if !r.used[k] {
			names = append(names, k)
		}
	}
	for k := range r.s.Lists {
		if !r.usedList[k] {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		r.fail(k, "unknown option")
	}
}

func (c *Config) applyMain(s *Section) []error {
	r := newReader(s)
	var cidr, gw string
	r.str("lan_iface", &c.LANIface)
	r.str("lan_cidr", &cidr)
	r.str("gateway_ip", &gw)
	r.integer("portal_port", &c.PortalPort, 1, 65535)
	r.str("tls_cert", &c.TLSCert)
	r.str("tls_key", &c.TLSKey)
	r.integer("tls_port", &c.TLSPort, 1, 65535)
	r.str("portal_hostname", &c.PortalHostname)
	r.integer("max_conns_per_device", &c.MaxConnsPerDevice, 4, 10_000)
	r.str("admin_listen", &c.AdminListen)
	r.str("db_path", &c.DBPath)
	r.str("secret_file", &c.SecretFile)
	r.str("ifb_name", &c.IFBName)
	r.boolean("shaping", &c.Shaping)
	r.str("firewall_backend", &c.FirewallBackend)
	r.duration("resync_interval", &c.ResyncInterval, time.Second, time.Hour)
	r.str("log_level", &c.LogLevel)
	var trusted []string
	r.list("trusted_mac", &trusted)
	for _, m := range trusted {
		mac, err := net.ParseMAC(m)
		if err != nil || len(mac) != 6 {
			r.fail("trusted_mac", "want a MAC address like 02:00:5e:00:53:01, got %q", m)
			continue
		}
		c.TrustedMACs = append(c.TrustedMACs, mac)
	}
	r.duration("retention", &c.Retention, time.Hour, 5*365*24*time.Hour)
	r.integer("max_sessions", &c.MaxSessions, 100, 10_000_000)
	var zone string
	r.str("timezone", &zone)
	if zone != "" {
		loc, err := tz.Load(zone)
		if err != nil {
			r.fail("timezone", "want an IANA zone like Asia/Qatar, got %q", zone)
		} else {
			c.Timezone = loc
		}
	}
	r.unknown()
	if cidr != "" {
		p, err := netip.ParsePrefix(cidr)
		if err != nil || !p.Addr().Is4() {
			r.fail("lan_cidr", "want an IPv4 prefix like 198.51.100.0/24, got %q", cidr)
		} else {
			c.LANPrefix = p.Masked()
		}
	}
	if gw != "" {
		a, err := netip.ParseAddr(gw)
		if err != nil || !a.Is4() {
			r.fail("gateway_ip", "want an IPv4 address, got %q", gw)
		} else {
			c.GatewayIP = a
		}
	}
	return r.errs
}

func (s *Site) apply(sec *Section) []error {
	r := newReader(sec)
	s.applyWith(r, sec)
	return r.errs
}

func (s *Site) applyWith(r *optionReader, sec *Section) {
	if sec.Name != "" {
		s.ID = sec.Name
	}
	r.str("name_ar", &s.NameAR)
	r.str("name_en", &s.NameEN)
	r.duration("session_timeout", &s.SessionTimeout, SessionTimeoutRange.Min, SessionTimeoutRange.Max)
	r.duration("idle_timeout", &s.IdleTimeout, IdleTimeoutRange.Min, IdleTimeoutRange.Max)
	r.duration("pin_ttl", &s.PINTTL, PINTTLRange.Min, PINTTLRange.Max)
	r.integer("pin_max_tries", &s.PINMaxTries, PINMaxTriesRange.Min, PINMaxTriesRange.Max)
	r.rate("rate_down", &s.RateDown, false)
	r.rate("rate_up", &s.RateUp, false)
	r.rate("uplink_down", &s.UplinkDown, true)
	r.rate("uplink_up", &s.UplinkUp, true)
	r.str("phone_region", &s.PhoneRegion)
	r.list("allowed_prefix", &s.AllowedPrefixes)
	r.str("privacy_url", &s.PrivacyURL)
	r.str("venue_url", &s.VenueURL)
	r.str("terms_url", &s.TermsURL)
	r.boolean("require_terms", &s.RequireTerms)
	r.integer("sms_per_number", &s.SMSPerNumber, SMSPerHourRange.Min, SMSPerHourRange.Max)
	r.integer("sms_per_device", &s.SMSPerDevice, SMSPerHourRange.Min, SMSPerHourRange.Max)
	r.integer("sms_daily_budget", &s.SMSDailyBudget, SMSDailyBudgetRange.Min, SMSDailyBudgetRange.Max)
	r.duration("sms_resend_gap", &s.SMSResendGap, SMSResendGapRange.Min, SMSResendGapRange.Max)
	var garden []string
	r.list("walled_garden", &garden)
	r.unknown()
	for _, name := range []struct {
		option, v string
	}{{"name_ar", s.NameAR}, {"name_en", s.NameEN}} {
		if err := CheckName(name.v); err != nil && !errors.Is(err, ErrNameRequired) {
			r.fail(name.option, "%v, got %q", err, name.v)
		}
	}
	if _, ok := sec.Options["phone_region"]; ok && !IsRegion(s.PhoneRegion) {
		r.fail("phone_region", "want a two-letter region in capitals like QA, got %q", s.PhoneRegion)
	}
	if len(garden) > MaxListEntries {
		r.fail("walled_garden", "at most %d entries, got %d", MaxListEntries, len(garden))
	}
	if len(s.AllowedPrefixes) > MaxListEntries {
		r.fail("allowed_prefix", "at most %d entries, got %d", MaxListEntries, len(s.AllowedPrefixes))
	}
	for _, g := range garden {
		p, err := ParsePrefixOrAddr(g)
		if err != nil {
			r.fail("walled_garden", "want an IPv4 address or prefix, got %q", g)
			continue
		}
		s.WalledGarden = append(s.WalledGarden, p)
	}
}

func (rc *Radius) apply(s *Section) []error {
	r := newReader(s)
	r.boolean("accounting", &rc.Accounting)
	r.boolean("authorization", &rc.Authorization)
	r.list("auth_server", &rc.AuthServers)
	r.list("acct_server", &rc.AcctServers)
	r.str("secret", &rc.Secret)
	r.str("secret_file", &rc.SecretFile)
	r.str("nas_identifier", &rc.NASIdentifier)
	r.str("called_station_id", &rc.CalledStationID)
	r.duration("interim_interval", &rc.InterimInterval, time.Minute, 24*time.Hour)
	r.integer("acct_queue_max", &rc.AcctQueueMax, 100, 1_000_000)
	r.str("das_listen", &rc.DASListen)
	r.str("das_secret", &rc.DASSecret)
	r.str("das_secret_file", &rc.DASSecretFile)
	var nasIP, policy string
	var das []string
	r.str("nas_ip", &nasIP)
	r.str("fail_policy", &policy)
	r.list("das_client", &das)
	r.unknown()
	if nasIP != "" {
		a, err := netip.ParseAddr(nasIP)
		if err != nil {
			r.fail("nas_ip", "want an IP address, got %q", nasIP)
		}
		rc.NASIP = a
	}
	switch policy {
	case "", "open":
		rc.FailOpen = true
	case "closed":
		rc.FailOpen = false
	default:
		r.fail("fail_policy", "want open or closed, got %q", policy)
	}
	for _, d := range das {
		a, err := netip.ParseAddr(d)
		if err != nil {
			r.fail("das_client", "want an IP address, got %q", d)
			continue
		}
		rc.DASClients = append(rc.DASClients, a)
	}
	for _, hp := range append(append([]string{}, rc.AuthServers...), rc.AcctServers...) {
		if _, err := netip.ParseAddrPort(hp); err != nil {
			r.fail("auth_server/acct_server", "want address:port like 192.0.2.10:1812, got %q", hp)
		}
	}
	if rc.Authorization && len(rc.AuthServers) == 0 {
		r.fail("auth_server", "authorization is on but no auth_server is listed")
	}
	if rc.Accounting && len(rc.AcctServers) == 0 {
		r.fail("acct_server", "accounting is on but no acct_server is listed")
	}
	if (rc.Authorization || rc.Accounting) && rc.Secret == "" && rc.SecretFile == "" {
		r.fail("secret", "RADIUS is on but neither secret nor secret_file is set")
	}
	if rc.DASListen != "" {
		if _, err := netip.ParseAddrPort(rc.DASListen); err != nil {
			r.fail("das_listen", "want address:port like 192.0.2.1:3799, got %q", rc.DASListen)
		}
		if len(rc.DASClients) == 0 || (rc.DASSecret == "" && rc.DASSecretFile == "") {
			r.fail("das_listen", "needs das_client entries and das_secret or das_secret_file")
		}
	}
	return r.errs
}

// smsOptions are the options of `config sms`; package sms documents them.
var smsOptions = []string{
	"provider", "outbox",
	"twilio_account_sid", "twilio_auth_token", "twilio_auth_token_file", "twilio_auth_token_env",
	"twilio_from", "twilio_messaging_service_sid", "twilio_validity",
	"http_url", "http_method", "http_mode", "http_body_template",
	"http_auth_header", "http_auth_value", "http_auth_file", "http_auth_env",
	"http_success_status", "http_success_contains", "http_success_json_field", "http_success_json_value",
	"http_number_format", "http_country_code",
	"timeout", "retry_attempts", "retry_backoff", "retry_deadline", "breaker_failures", "breaker_cooldown",
}

func (c *Config) applySMS(s *Section) []error {
	r := newReader(s)
	for _, name := range smsOptions {
		v := c.SMS[name]
		r.str(name, &v)
		if v != "" {
			c.SMS[name] = v
		}
	}
	r.list("http_header", &c.SMSHeaders)
	r.unknown()
	for _, h := range c.SMSHeaders {
		if name, _, ok := strings.Cut(h, ":"); !ok || strings.TrimSpace(name) == "" {
			r.fail("http_header", "want 'Name: value', got %q", h)
		}
	}
	switch c.SMS["provider"] {
	case "console", "twilio", "http":
	default:
		r.fail("provider", "want console, twilio or http, got %q", c.SMS["provider"])
	}
	return r.errs
}

func (c *Config) validate() []error {
	var errs []error
	if !c.LANPrefix.IsValid() {
		errs = append(errs, errors.New("parkportal.lan_cidr: required (the visitors' IPv4 subnet)"))
	} else if c.LANPrefix.Bits() < 16 {
		errs = append(errs, fmt.Errorf("parkportal.lan_cidr: %s is wider than /16; the allowlist holds at most 65536 addresses", c.LANPrefix))
	}
	if !c.GatewayIP.IsValid() {
		errs = append(errs, errors.New("parkportal.gateway_ip: required (the gateway's address in lan_cidr)"))
	} else if c.LANPrefix.IsValid() && !c.LANPrefix.Contains(c.GatewayIP) {
		errs = append(errs, fmt.Errorf("parkportal.gateway_ip: %s is outside lan_cidr %s", c.GatewayIP, c.LANPrefix))
	}
	if c.LANIface == "" || len(c.LANIface) > 15 {
		errs = append(errs, fmt.Errorf("parkportal.lan_iface: want an interface name of 1-15 characters, got %q", c.LANIface))
	}
	if c.IFBName == "" || len(c.IFBName) > 15 {
		errs = append(errs, fmt.Errorf("parkportal.ifb_name: want an interface name of 1-15 characters, got %q", c.IFBName))
	}
	switch c.FirewallBackend {
	case "auto", "nftables", "iptables":
	default:
		errs = append(errs, fmt.Errorf("parkportal.firewall_backend: want auto, nftables or iptables, got %q", c.FirewallBackend))
	}
	if c.DBPath == "" {
		errs = append(errs, errors.New("parkportal.db_path: required"))
	}
	if c.SecretFile == "" && c.DBPath != "" {
		c.SecretFile = c.DBPath + ".key"
	}
	if _, _, err := splitHostPort(c.AdminListen); err != nil {
		errs = append(errs, fmt.Errorf("parkportal.admin_listen: %w", err))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("parkportal.tls_cert, parkportal.tls_key: give both or neither"))
	}
	if c.TLSPort == c.PortalPort {
		errs = append(errs, fmt.Errorf("parkportal.tls_port: %d is already portal_port", c.TLSPort))
	}
	for _, u := range []struct{ name, v string }{{"site.privacy_url", c.Site.PrivacyURL}, {"site.venue_url", c.Site.VenueURL}, {"site.terms_url", c.Site.TermsURL}} {
		if u.v != "" {
			if err := CheckURL(u.v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", u.name, err))
			}
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("parkportal.log_level: want debug, info, warn or error, got %q", c.LogLevel))
	}
	s := &c.Site
	if s.NameAR == "" || s.NameEN == "" {
		errs = append(errs, errors.New("site.name_ar, site.name_en: the park needs a name in both languages"))
	}
	if s.PhoneRegion == "" {
		errs = append(errs, fmt.Errorf("site.phone_region: want a two-letter region like QA, got %q", s.PhoneRegion))
	}
	for _, p := range s.AllowedPrefixes {
		if !IsE164Prefix(p) {
			errs = append(errs, fmt.Errorf("site.allowed_prefix: want + and digits like +9743, got %q", p))
		}
	}
	return errs
}

// IsE164Prefix reports whether p is + and 1-15 digits, the shape of an
// allowed number prefix.
func IsE164Prefix(p string) bool {
	if len(p) < 2 || len(p) > 16 || p[0] != '+' {
		return false
	}
	for _, r := range p[1:] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func splitHostPort(hp string) (netip.Addr, int, error) {
	ap, err := netip.ParseAddrPort(hp)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("want address:port like 127.0.0.1:2052, got %q", hp)
	}
	return ap.Addr(), int(ap.Port()), nil
}

// AdminPort is the TCP port of the staff console, which the firewall
// keeps closed to visitors.
func (c *Config) AdminPort() int {
	_, port, _ := splitHostPort(c.AdminListen)
	return port
}

// ParsePrefixOrAddr reads a walled-garden entry: an IPv4 address or
// prefix (an address is its /32).
func ParsePrefixOrAddr(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() {
			return netip.Prefix{}, fmt.Errorf("bad prefix %q", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("bad address %q", s)
	}
	return netip.PrefixFrom(a, 32), nil
}

// ParseDuration accepts Go durations ("90s", "4h"), days ("90d") and bare
// seconds ("300").
func ParseDuration(s string) (time.Duration, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(d, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// ParseRate reads a rate the way tc users write it: "8mbit", "512kbit",
// "1gbit", or bare bits per second. It returns bits per second.
func ParseRate(s string) (uint64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	mult := uint64(1)
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || !(n >= 0) || n*float64(mult) > 1e11 { // !(n >= 0) also refuses NaN
		return 0, fmt.Errorf("bad rate %q", s)
	}
	return uint64(n * float64(mult)), nil
}

// FormatRate renders bit/s the way ParseRate reads it.
func FormatRate(bps uint64) string {
	switch {
	case bps >= 1e9 && bps%1e9 == 0:
		return fmt.Sprintf("%dgbit", bps/1e9)
	case bps >= 1e6 && bps%1e6 == 0:
		return fmt.Sprintf("%dmbit", bps/1e6)
	case bps >= 1e3 && bps%1e3 == 0:
		return fmt.Sprintf("%dkbit", bps/1e3)
	}
	return fmt.Sprintf("%dbit", bps)
}
