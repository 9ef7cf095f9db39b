package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// minimal is the least a config file must say: the LAN.
const minimal = `
config parkportal 'main'
	option lan_cidr '198.51.100.0/24'
	option gateway_ip '198.51.100.1'
`

func TestParseDefaults(t *testing.T) {
	c, err := Parse(minimal)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := Defaults()
	want.LANPrefix = netip.MustParsePrefix("198.51.100.0/24")
	want.GatewayIP = netip.MustParseAddr("198.51.100.1")
	want.SecretFile = want.DBPath + ".key"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Parse(minimal) =\n%+v\nwant\n%+v", c, want)
	}
	if c.AdminPort() != 2052 {
		t.Errorf("AdminPort = %d, want 2052", c.AdminPort())
	}
}

func TestParseEveryOption(t *testing.T) {
	src := `
config parkportal 'main'
	option lan_iface 'lan0'
	option lan_cidr '198.51.100.77/24'
	option gateway_ip '198.51.100.254'
	option portal_port '8080'
	option admin_listen '127.0.0.1:9000'
	option db_path '/var/lib/pp/pp.db'
	option secret_file '/var/lib/pp/key'
	option ifb_name 'ifb9'
	option resync_interval '90'
	option log_level 'debug'

config site 'corniche'
	option name_ar 'الكورنيش'
	option name_en 'Corniche'
	option session_timeout '2h'
	option idle_timeout '15m'
	option pin_ttl '120'
	option pin_max_tries '3'
	option rate_down '4mbit'
	option rate_up '512kbit'
	option uplink_down '1gbit'
	option uplink_up '0'
	option phone_region 'QA'
	list allowed_prefix '+9743'
	list allowed_prefix '+9745'
	option privacy_url 'http://198.51.100.1:2050/privacy'
	list walled_garden '203.0.113.0/24'
	list walled_garden '192.0.2.7'
	list walled_garden '192.0.2.130/25'

config sms
	option provider 'twilio'
	option twilio_from '+15005550006'

config radius
	option acct_queue_max '50000'
`
	c, err := Parse(src)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := Defaults()
	want.LANIface = "lan0"
	want.LANPrefix = netip.MustParsePrefix("198.51.100.0/24")
	want.GatewayIP = netip.MustParseAddr("198.51.100.254")
	want.PortalPort = 8080
	want.AdminListen = "127.0.0.1:9000"
	want.DBPath = "/var/lib/pp/pp.db"
	want.SecretFile = "/var/lib/pp/key"
	want.IFBName = "ifb9"
	want.ResyncInterval = 90 * time.Second
	want.LogLevel = "debug"
	want.SMS["provider"] = "twilio"
	want.SMS["twilio_from"] = "+15005550006"
	want.Radius.AcctQueueMax = 50_000
	ws := &want.Site
	ws.ID, ws.NameAR, ws.NameEN = "corniche", "الكورنيش", "Corniche"
	ws.SessionTimeout, ws.IdleTimeout = 2*time.Hour, 15*time.Minute
	ws.PINTTL, ws.PINMaxTries = 2*time.Minute, 3
	ws.RateDown, ws.RateUp, ws.UplinkDown, ws.UplinkUp = 4_000_000, 512_000, 1_000_000_000, 0
	ws.PhoneRegion = "QA"
	ws.AllowedPrefixes = []string{"+9743", "+9745"}
	ws.WalledGarden = []netip.Prefix{
		netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("192.0.2.128/25"),
	}
	ws.PrivacyURL = "http://198.51.100.1:2050/privacy"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Parse =\n%+v\nwant\n%+v", c, want)
	}
	if c.AdminPort() != 9000 {
		t.Errorf("AdminPort = %d, want 9000", c.AdminPort())
	}
}

func TestLabDefaultParses(t *testing.T) {
	c, err := Parse(LabDefault)
	if err != nil {
		t.Fatalf("Parse(LabDefault): %v", err)
	}
	if c.Site.ID != "lab-park" || c.LANIface != "lan0" || c.SMS["outbox"] == "" {
		t.Errorf("LabDefault parsed to %+v", c)
	}
	if !c.LANPrefix.Contains(c.GatewayIP) {
		t.Errorf("lab gateway %s outside %s", c.GatewayIP, c.LANPrefix)
	}
	for _, a := range []netip.Addr{c.LANPrefix.Addr(), c.GatewayIP} {
		if !netip.MustParsePrefix("198.51.100.0/24").Contains(a) {
			t.Errorf("lab address %s is not in the documentation range 198.51.100.0/24", a)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "parkportal")
	if err := os.WriteFile(p, []byte(minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err != nil {
		t.Errorf("Load: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "reading config") {
		t.Errorf("Load(missing) = %v, want a reading config error", err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("config parkportal\n\toption portal_port 'x'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("Load(bad) = %v, want an error naming %s", err, bad)
	}
}

// withMain returns a config whose main section has the minimal LAN plus
// extra lines, and whose site section has siteLines.
func withMain(mainLines, siteLines string) string {
	return minimal + mainLines + "\nconfig site 'p'\n" + siteLines + "\n"
}

func TestParseErrorsNameTheOption(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want []string // every substring must appear in the error
	}{
		{"no lan", "config parkportal\n", []string{"parkportal.lan_cidr: required", "parkportal.gateway_ip: required"}},
		{"lan_cidr not a prefix", "config parkportal\n option lan_cidr 'x'\n option gateway_ip '198.51.100.1'\n", []string{"parkportal.lan_cidr", `"x"`}},
		{"lan_cidr IPv6", "config parkportal\n option lan_cidr '2001:db8::/64'\n option gateway_ip '198.51.100.1'\n", []string{"parkportal.lan_cidr"}},
		{"lan_cidr too wide", "config parkportal\n option lan_cidr '198.0.0.0/8'\n option gateway_ip '198.51.100.1'\n", []string{"parkportal.lan_cidr", "wider than /16"}},
		{"gateway_ip not an address", withMain(" option gateway_ip 'gw'", ""), []string{"parkportal.gateway_ip", `"gw"`}},
		{"gateway_ip IPv6", withMain(" option gateway_ip '2001:db8::1'", ""), []string{"parkportal.gateway_ip"}},
		{"gateway_ip outside", withMain(" option gateway_ip '192.0.2.1'", ""), []string{"parkportal.gateway_ip", "outside lan_cidr"}},
		{"portal_port zero", withMain(" option portal_port '0'", ""), []string{"parkportal.portal_port", "1 to 65535"}},
		{"portal_port too big", withMain(" option portal_port '65536'", ""), []string{"parkportal.portal_port"}},
		{"portal_port word", withMain(" option portal_port 'http'", ""), []string{"parkportal.portal_port", `"http"`}},
		{"admin_listen", withMain(" option admin_listen 'localhost:2052'", ""), []string{"parkportal.admin_listen"}},
		{"admin_listen no port", withMain(" option admin_listen '127.0.0.1'", ""), []string{"parkportal.admin_listen"}},
		{"db_path empty", withMain(" option db_path ''", ""), []string{"parkportal.db_path: required"}},
		{"lan_iface empty", withMain(" option lan_iface ''", ""), []string{"parkportal.lan_iface"}},
		{"lan_iface too long", withMain(" option lan_iface 'abcdefghijklmnop'", ""), []string{"parkportal.lan_iface"}},
		{"ifb_name too long", withMain(" option ifb_name 'abcdefghijklmnop'", ""), []string{"parkportal.ifb_name"}},
		{"resync_interval short", withMain(" option resync_interval '500ms'", ""), []string{"parkportal.resync_interval"}},
		{"resync_interval long", withMain(" option resync_interval '2h'", ""), []string{"parkportal.resync_interval"}},
		{"resync_interval word", withMain(" option resync_interval 'often'", ""), []string{"parkportal.resync_interval"}},
		{"log_level", withMain(" option log_level 'verbose'", ""), []string{"parkportal.log_level", `"verbose"`}},
		{"unknown main option", withMain(" option lan_ifcae 'x'", ""), []string{"parkportal.lan_ifcae: unknown option"}},
		{"unknown main list", withMain(" list extra 'x'", ""), []string{"parkportal.extra: unknown option"}},
		{"name_ar empty", withMain("", " option name_ar ''"), []string{"site.name_ar"}},
		{"name_en empty", withMain("", " option name_en ''"), []string{"site.name_en"}},
		{"session_timeout short", withMain("", " option session_timeout '5s'"), []string{"site.session_timeout"}},
		{"session_timeout long", withMain("", " option session_timeout '200h'"), []string{"site.session_timeout"}},
		{"session_timeout negative", withMain("", " option session_timeout '-4h'"), []string{"site.session_timeout"}},
		{"idle_timeout", withMain("", " option idle_timeout '25h'"), []string{"site.idle_timeout"}},
		{"pin_ttl short", withMain("", " option pin_ttl '10s'"), []string{"site.pin_ttl"}},
		{"pin_ttl long", withMain("", " option pin_ttl '2h'"), []string{"site.pin_ttl"}},
		{"pin_max_tries zero", withMain("", " option pin_max_tries '0'"), []string{"site.pin_max_tries", "1 to 10"}},
		{"pin_max_tries big", withMain("", " option pin_max_tries '11'"), []string{"site.pin_max_tries"}},
		{"rate_down zero", withMain("", " option rate_down '0'"), []string{"site.rate_down"}},
		{"rate_up word", withMain("", " option rate_up 'fast'"), []string{"site.rate_up", `"fast"`}},
		{"rate_up negative", withMain("", " option rate_up '-1mbit'"), []string{"site.rate_up"}},
		{"rate_down too high", withMain("", " option rate_down '101gbit'"), []string{"site.rate_down"}},
		{"uplink_down word", withMain("", " option uplink_down 'lots'"), []string{"site.uplink_down"}},
		{"phone_region", withMain("", " option phone_region 'QAT'"), []string{"site.phone_region", `"QAT"`}},
		{"phone_region empty", withMain("", " option phone_region ''"), []string{"site.phone_region"}},
		{"allowed_prefix no plus", withMain("", " list allowed_prefix '9743'"), []string{"site.allowed_prefix", `"9743"`}},
		{"allowed_prefix letters", withMain("", " list allowed_prefix '+97a'"), []string{"site.allowed_prefix"}},
		{"allowed_prefix plus only", withMain("", " list allowed_prefix '+'"), []string{"site.allowed_prefix"}},
		{"walled_garden", withMain("", " list walled_garden 'example.org'"), []string{"site.walled_garden", `"example.org"`}},
		{"walled_garden IPv6", withMain("", " list walled_garden '2001:db8::/32'"), []string{"site.walled_garden"}},
		{"unknown site option", withMain("", " option sesion_timeout '1h'"), []string{"site.sesion_timeout: unknown option"}},
		{"sms provider", minimal + "config sms\n option provider 'pigeon'\n", []string{"sms.provider", `"pigeon"`}},
		{"sms unknown option", minimal + "config sms\n option twilio_sid 'x'\n", []string{"sms.twilio_sid: unknown option"}},
		{"radius fail_policy", minimal + "config radius\n option fail_policy 'maybe'\n", []string{"radius.fail_policy", `"maybe"`}},
		{"radius boolean", minimal + "config radius\n option accounting 'sure'\n", []string{"radius.accounting", `"sure"`}},
		{"radius no server", minimal + "config radius\n option authorization '1'\n option secret 's'\n", []string{"radius.auth_server"}},
		{"radius queue too small", minimal + "config radius\n option acct_queue_max '10'\n", []string{"radius.acct_queue_max"}},
		{"radius no secret", minimal + "config radius\n option accounting '1'\n list acct_server '192.0.2.10:1813'\n", []string{"radius.secret"}},
		{"unknown section", minimal + "config portal\n", []string{`line 5: unknown section type "portal"`}},
		{"duplicate section", minimal + "config parkportal 'again'\n", []string{"line 5", "more than one `config parkportal` section"}},
		{"uci syntax", minimal + "option x 'y\n", []string{"line 5", "unterminated single quote"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse(c.src)
			if err == nil {
				t.Fatalf("Parse succeeded with %+v, want an error mentioning %q", cfg, c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestParseReportsEveryError checks that staff see all problems at once.
func TestParseReportsEveryError(t *testing.T) {
	src := withMain(" option portal_port 'x'\n option log_level 'loud'", " option pin_ttl 'soon'\n option rate_down 'x'")
	_, err := Parse(src)
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	for _, w := range []string{"portal_port", "log_level", "pin_ttl", "rate_down"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q misses %s", err, w)
		}
	}
}

// TestParseOptionListMixup checks that an option written with the wrong
// keyword (`option` for a list, `list` for an option) is refused rather
// than silently ignored: `option walled_garden '203.0.113.5'` must not
// leave the walled garden empty without a word.
func TestParseOptionListMixup(t *testing.T) {
	cases := []struct{ name, src, option string }{
		{"option for a list", withMain("", " option allowed_prefix '+9743'"), "allowed_prefix"},
		{"option for walled_garden", withMain("", " option walled_garden '203.0.113.5'"), "walled_garden"},
		{"list for an option", withMain(" list log_level 'debug'", ""), "log_level"},
		{"list for a site option", withMain("", " list pin_ttl '1m'"), "pin_ttl"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse(c.src)
			if err == nil {
				t.Fatalf("Parse accepted %q and ignored it (site %+v, log_level %q)", c.option, cfg.Site, cfg.LogLevel)
			}
			if !strings.Contains(err.Error(), c.option) {
				t.Errorf("error %q does not name %s", err, c.option)
			}
		})
	}
}

func TestParseSiteWithoutNameKeepsID(t *testing.T) {
	c, err := Parse(minimal + "config site\n option name_en 'X'\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Site.ID != "park" || c.Site.NameEN != "X" {
		t.Errorf("site = %+v", c.Site)
	}
}

func TestParseRate(t *testing.T) {
	cases := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"8mbit", 8_000_000, true},
		{"8Mbit", 8_000_000, true},
		{" 512kbit ", 512_000, true},
		{"1gbit", 1_000_000_000, true},
		{"1.5mbit", 1_500_000, true},
		{"300bit", 300, true},
		{"300", 300, true},
		{"0", 0, true},
		{"100gbit", 100_000_000_000, true},
		{"101gbit", 0, false},
		{"-1mbit", 0, false},
		{"mbit", 0, false},
		{"", 0, false},
		{"8mbps", 0, false},
		{"fast", 0, false},
		{"inf", 0, false},
		{"infmbit", 0, false},
		{"nan", 0, false},
		{"nanmbit", 0, false},
		{"NaN", 0, false},
	}
	for _, c := range cases {
		got, err := ParseRate(c.in)
		if c.ok != (err == nil) || got != c.want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d, ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestRateRoundTrip(t *testing.T) {
	values := []uint64{0, 1, 999, 1000, 1001, 512_000, 1_500_000, 8_000_000, 999_999_999, 1_000_000_000, 2_500_000_000, 100_000_000_000}
	for i := uint64(1); i < 1e11; i = i*7 + 3 {
		values = append(values, i)
	}
	for _, v := range values {
		s := FormatRate(v)
		got, err := ParseRate(s)
		if err != nil || got != v {
			t.Errorf("ParseRate(FormatRate(%d) = %q) = %d, %v", v, s, got, err)
		}
	}
	for in, want := range map[uint64]string{8_000_000: "8mbit", 512_000: "512kbit", 1e9: "1gbit", 1_500_000: "1500kbit", 7: "7bit", 0: "0bit"} {
		if got := FormatRate(in); got != want {
			t.Errorf("FormatRate(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"300", 300 * time.Second, true},
		{"0", 0, true},
		{"90s", 90 * time.Second, true},
		{"20m", 20 * time.Minute, true},
		{"4h", 4 * time.Hour, true},
		{"1h30m", 90 * time.Minute, true},
		{"1.5h", 90 * time.Minute, true},
		{"", 0, false},
		{"4 hours", 0, false},
		{"4d", 96 * time.Hour, true},
		{"1.5d", 0, false},
		{"4x", 0, false},
		{"-", 0, false},
		{"99999999999", 0, false}, // bare seconds beyond 32 bits and no unit
	}
	for _, c := range cases {
		got, err := ParseDuration(c.in)
		if c.ok != (err == nil) || (c.ok && got != c.want) {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(LabDefault)
	f.Add(minimal)
	f.Add(withMain(" option portal_port '80'", " option rate_down 'nanmbit'\n list walled_garden '192.0.2.0/24'"))
	f.Add(withMain(" option lan_cidr '198.51.100.1/16'", " option pin_ttl '60'"))
	f.Add("config parkportal\n option lan_cidr '198.51.100.0/32'\n option gateway_ip '198.51.100.0'\n")
	f.Fuzz(func(t *testing.T, src string) {
		c, err := Parse(src)
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a config with an error")
			}
			return
		}
		if err := checkInvariants(c); err != nil {
			t.Fatalf("Parse(%q) accepted an invalid config: %v", src, err)
		}
	})
}

// checkInvariants is what the rest of the daemon relies on of a parsed
// Config.
func checkInvariants(c *Config) error {
	switch {
	case !c.LANPrefix.IsValid() || !c.LANPrefix.Addr().Is4() || c.LANPrefix.Bits() < 16 || c.LANPrefix != c.LANPrefix.Masked():
		return fmt.Errorf("LANPrefix %s", c.LANPrefix)
	case !c.GatewayIP.Is4() || !c.LANPrefix.Contains(c.GatewayIP):
		return fmt.Errorf("GatewayIP %s not in %s", c.GatewayIP, c.LANPrefix)
	case c.PortalPort < 1 || c.PortalPort > 65535 || c.TLSPort < 1 || c.TLSPort > 65535 || c.TLSPort == c.PortalPort:
		return fmt.Errorf("ports %d %d", c.PortalPort, c.TLSPort)
	case c.AdminPort() == 0 && c.AdminListen != "" && !strings.HasSuffix(c.AdminListen, ":0"):
		return fmt.Errorf("AdminListen %q", c.AdminListen)
	case c.LANIface == "" || len(c.LANIface) > 15 || c.IFBName == "" || len(c.IFBName) > 15:
		return fmt.Errorf("interface names %q %q", c.LANIface, c.IFBName)
	case c.DBPath == "" || c.SecretFile == "":
		return fmt.Errorf("paths %q %q", c.DBPath, c.SecretFile)
	case c.ResyncInterval < time.Second || c.ResyncInterval > time.Hour:
		return fmt.Errorf("ResyncInterval %s", c.ResyncInterval)
	case c.LogLevel != "debug" && c.LogLevel != "info" && c.LogLevel != "warn" && c.LogLevel != "error":
		return fmt.Errorf("LogLevel %q", c.LogLevel)
	case c.SMS == nil:
		return fmt.Errorf("nil SMS map")
	}
	s := c.Site
	switch {
	case s.NameAR == "" || s.NameEN == "":
		return fmt.Errorf("site names")
	case s.SessionTimeout < 10*time.Second || s.SessionTimeout > 7*24*time.Hour:
		return fmt.Errorf("SessionTimeout %s", s.SessionTimeout)
	case s.IdleTimeout < time.Minute || s.IdleTimeout > 24*time.Hour:
		return fmt.Errorf("IdleTimeout %s", s.IdleTimeout)
	case s.PINTTL < 30*time.Second || s.PINTTL > time.Hour:
		return fmt.Errorf("PINTTL %s", s.PINTTL)
	case s.PINMaxTries < 1 || s.PINMaxTries > 10:
		return fmt.Errorf("PINMaxTries %d", s.PINMaxTries)
	case s.RateDown == 0 || s.RateUp == 0 || s.RateDown > 1e11 || s.RateUp > 1e11:
		return fmt.Errorf("rates %d %d", s.RateDown, s.RateUp)
	case s.UplinkDown > 1e11 || s.UplinkUp > 1e11:
		return fmt.Errorf("uplink %d %d", s.UplinkDown, s.UplinkUp)
	case len(s.PhoneRegion) != 2:
		return fmt.Errorf("PhoneRegion %q", s.PhoneRegion)
	}
	for _, p := range s.AllowedPrefixes {
		if !IsE164Prefix(p) {
			return fmt.Errorf("allowed prefix %q", p)
		}
	}
	for _, p := range s.WalledGarden {
		if !p.Addr().Is4() || p != p.Masked() {
			return fmt.Errorf("walled garden %s", p)
		}
	}
	return nil
}
