package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/lab"
)

// Issue 15 through the real daemon, against FreeRADIUS with SQL
// accounting (rlm_sql_sqlite and FreeRADIUS's own radacct schema, as an
// operator bills from it): what radacct says a visitor moved is what the
// kernel moved, whenever the session ends; no Interim-Update follows a
// Stop; a session kicked while the daemon is down gets its Stop; and a
// FreeRADIUS that signs nothing (Debian 12's 3.2.1 as it comes) is
// reported at start.

// radacctRow waits (bounded) until radacct has session id's row with a
// stop time, and returns it.
func (r *labRADIUS) stoppedRow(id string, within time.Duration) lab.RadAcct {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for {
		rows, err := r.srv.RadAcct()
		if err != nil {
			r.t.Fatal(err)
		}
		for _, row := range rows {
			if row.SessionID == id && row.StopTime != nil {
				return row
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("radacct has no stopped row for session %s within %v: %+v", id, within, rows)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// counter is an iptables rule's count, in IP-layer bytes.
type counter struct{ packets, bytes uint64 }

// countRule adds a counting rule (no target) to chain in namespace ns
// and returns a function that reads it. The namespaces are the test's
// own and go away with the park.
func (p *testPark) countRule(ns, chain string, match ...string) func() counter {
	p.t.Helper()
	tag := fmt.Sprintf("pp-acct-%s-%s", chain, strings.Join(match, ""))
	args := append([]string{"-w", "-I", chain}, match...)
	args = append(args, "-m", "comment", "--comment", tag)
	if out, err := lab.Cmd(ns, "iptables", args...).CombinedOutput(); err != nil {
		p.t.Fatalf("iptables %v in %s: %v\n%s", args, ns, err, out)
	}
	return func() counter {
		p.t.Helper()
		out, err := lab.Cmd(ns, "iptables", "-w", "-L", chain, "-v", "-x", "-n").Output()
		if err != nil {
			p.t.Fatalf("reading iptables counters in %s: %v", ns, err)
		}
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); strings.Contains(sc.Text(), tag) && len(f) > 2 {
				pk, _ := strconv.ParseUint(f[0], 10, 64)
				b, _ := strconv.ParseUint(f[1], 10, 64)
				return counter{pk, b}
			}
		}
		p.t.Fatalf("no counting rule %s in %s:\n%s", tag, ns, out)
		return counter{}
	}
}

// accountingConfig: SQL accounting and authorisation (the e2e users
// file gives +97455100001 a 4 Mbit/s plan and Acct-Interim-Interval 10 s,
// so interims run while the downloads do) and the DAS; one visitor logs
// in again and again, so the SMS caps are off its way.
func (p *testPark) accountingConfig() string {
	return p.radiusConfigWith(map[string]string{"site.sms_resend_gap": "0", "site.sms_per_number": "20", "site.sms_per_device": "20"})
}

// TestRADIUSAccountingMatchesKernel downloads through the real daemon
// and logs out in the middle of the stream, at moments that fall at
// different points of the 5-second sweep (and once after an Interim),
// and compares radacct's octets with what the kernel counted crossing
// the gateway (IP-layer bytes: what reached the visitor from the
// internet host, what reached the internet host from the visitor). They
// must agree within 1 %, and no Interim may come after the Stop (SQL
// would then overwrite the Stop's octets with the Interim's). The last
// round logs the first device in again: its new session must not start
// from the old one's counters.
func TestRADIUSAccountingMatchesKernel(t *testing.T) {
	p := newPark(t, 3)
	needIperf(t)
	fr := p.startRADIUS()
	p.start(p.accountingConfig(), "--keep-firewall")
	// The internet host sends every segment as a packet of its own, as
	// a real network would carry it: over veth a TSO burst reaches the
	// visitor as one 64 KB packet with one header, which an IP-layer
	// count would take for fewer bytes than the segments the gateway
	// forwarded.
	if out, err := lab.Cmd(p.Internet, "ip", "link", "set", "dev", "eth0", "gso_max_segs", "1").CombinedOutput(); err != nil {
		t.Fatalf("turning segmentation offload off on the internet host: %v %s", err, out)
	}
	type meter struct{ down, up func() counter }
	meters := map[string]meter{}
	for _, v := range p.Visitors {
		meters[v.NS] = meter{p.countRule(v.NS, "INPUT", "-s", lab.InternetIP.String()), p.countRule(p.Internet, "INPUT", "-s", v.IP.String())}
	}
	rounds := []struct {
		v     lab.Visitor
		after time.Duration
		what  string
	}{
		{p.Visitors[0], 2300 * time.Millisecond, ""},
		{p.Visitors[1], 4700 * time.Millisecond, ""},
		// Past the 10 s Acct-Interim-Interval and a 15 s tick of the
		// interim loop: Interim-Updates run during the download.
		{p.Visitors[2], 26300 * time.Millisecond, ""},
		{p.Visitors[0], 7100 * time.Millisecond, "the same device again"},
	}
	ports := p.iperfServers(len(rounds))
	interims := 0
	for i, r := range rounds {
		v, after := r.v, r.after
		m := meters[v.NS]
		p.login(v, "55100001")
		s := p.sessionOf(v)
		d0, u0 := m.down(), m.up()
		// iperf3 downloads until stopped; the logout comes first.
		dl := lab.Cmd(v.NS, "iperf3", "-c", lab.InternetIP.String(), "-p", strconv.Itoa(ports[i]), "-R", "-t", "40", "--connect-timeout", "3000")
		if err := dl.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { dl.Process.Kill(); dl.Wait() })
		time.Sleep(after)
		if r := lab.PostForm(v.NS, portalURL+"logout", map[string]string{"lang": "en"}); r.Code != 200 {
			t.Fatalf("logout: %d %s", r.Code, r.Body)
		}
		// Whatever was in flight arrives or is dropped; then the client,
		// whose connection the gateway cut, is stopped.
		time.Sleep(1500 * time.Millisecond)
		dl.Process.Kill()
		d1, u1 := m.down(), m.up()
		kernelDown, kernelUp := d1.bytes-d0.bytes, u1.bytes-u0.bytes

		row := fr.stoppedRow(s.ID, 20*time.Second)
		stop := fr.waitRecord(s.ID, "Stop", 10*time.Second)
		outPkts, inPkts := num(stop.Get("Acct-Output-Packets")), num(stop.Get("Acct-Input-Packets"))
		acctDown, acctUp := uint64(*row.OutputOctets), uint64(*row.InputOctets)
		label := fmt.Sprintf("%s, logout after %v", v.NS, after)
		if r.what != "" {
			label += " (" + r.what + ")"
		}
		t.Logf("%s: download radacct %d B (%d packets), kernel %d B (%d packets), %+.2f %%; upload radacct %d B (%d packets), kernel %d B (%d packets), %+.2f %%",
			label, acctDown, outPkts, kernelDown, d1.packets-d0.packets, pct(acctDown, kernelDown), acctUp, inPkts, kernelUp, u1.packets-u0.packets, pct(acctUp, kernelUp))
		if kernelDown < 500_000 {
			t.Fatalf("%s: the download moved only %d bytes before the logout", label, kernelDown)
		}
		for _, c := range []struct {
			dir          string
			acct, kernel uint64
			acctPkts     uint64
		}{{"download", acctDown, kernelDown, outPkts}, {"upload", acctUp, kernelUp, inPkts}} {
			if off := pct(c.acct, c.kernel); off > 1 || off < -1 {
				// Tell a layer difference (a link-layer count on one
				// side: 14 bytes of Ethernet header per packet) from a
				// lost, late or stale reading.
				l2 := pct(c.acct-min(c.acct, 14*c.acctPkts), c.kernel)
				t.Errorf("%s: radacct's %s octets %d differ from the kernel's %d by %+.2f %% (more than 1 %%); without 14 B per packet (%d packets) %+.2f %%",
					label, c.dir, c.acct, c.kernel, off, c.acctPkts, l2)
			}
		}
		if row.TerminateCause != "User-Request" {
			t.Errorf("%s: radacct terminate cause %q", label, row.TerminateCause)
		}
		// Every Interim came before the Stop and counted no more than it.
		seenStop := false
		for _, r := range fr.detail() {
			if r.Get("Acct-Session-Id") != s.ID {
				continue
			}
			switch r.Get("Acct-Status-Type") {
			case "Stop":
				seenStop = true
			case "Interim-Update":
				interims++
				if seenStop {
					t.Errorf("%s: an Interim-Update after the Stop", label)
				}
				if o := num(r.Get("Acct-Output-Octets")) + num(r.Get("Acct-Output-Gigawords"))<<32; o > acctDown || o == 0 {
					t.Errorf("%s: an Interim counts %d output octets; the Stop %d", label, o, acctDown)
				}
			}
		}
	}
	if interims == 0 {
		t.Error("no Interim-Update during a 26 s download with a 10 s interval: the ordering check saw none")
	}
	t.Logf("%d Interim-Updates during the downloads", interims)
}

func pct(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return (float64(a) - float64(b)) * 100 / float64(b)
}

// TestRADIUSOfflineKickStop: a session kicked with `parkportal sessions
// kick` while the daemon is down ends in the store only; the next start
// sends its Stop (Admin-Reset, stamped with the time of the kick), and
// the visitor is offline.
func TestRADIUSOfflineKickStop(t *testing.T) {
	p := newPark(t, 1)
	fr := p.startRADIUS()
	cfg := p.accountingConfig()
	d := p.start(cfg, "--keep-firewall")
	v := p.Visitors[0]
	p.login(v, "55100004")
	s := p.sessionOf(v)
	fr.waitRecord(s.ID, "Start", 20*time.Second)
	d.stop(t, syscall.SIGTERM)
	if !online(v) {
		t.Fatal("the visitor went offline with the daemon (--keep-firewall)")
	}
	kickedAt := time.Now()
	out, err := lab.Cmd(p.Gateway, binary, "sessions", "kick", "--config", cfg, s.ID).CombinedOutput()
	if err != nil {
		t.Fatalf("offline kick: %v\n%s", err, out)
	}
	time.Sleep(2 * time.Second) // the Stop waits in the outbox meanwhile
	if n := len(fr.records(s.ID, "Stop")); n != 0 {
		t.Fatalf("a Stop arrived with the daemon down")
	}
	p.start(cfg, "--keep-firewall")
	stop := fr.waitRecord(s.ID, "Stop", 20*time.Second)
	if got := stop.Get("Acct-Terminate-Cause"); got != "Admin-Reset" {
		t.Errorf("Stop after an offline kick: Acct-Terminate-Cause %q, want Admin-Reset", got)
	}
	if ts, err := time.Parse("Jan _2 2006 15:04:05 MST", stop.Get("Event-Timestamp")); err != nil || ts.Sub(kickedAt).Abs() > 2*time.Second {
		t.Errorf("Stop's Event-Timestamp %q (%v), want the kick's time %v", stop.Get("Event-Timestamp"), err, kickedAt)
	}
	if num(stop.Get("Acct-Delay-Time")) < 2 {
		t.Errorf("Acct-Delay-Time %q, want the seconds it waited", stop.Get("Acct-Delay-Time"))
	}
	if row := fr.stoppedRow(s.ID, 10*time.Second); row.TerminateCause != "Admin-Reset" {
		t.Errorf("radacct: %+v", row)
	}
	if n := len(fr.records(s.ID, "Stop")); n != 1 {
		t.Errorf("%d Stops, want 1", n)
	}
	if online(v) {
		t.Error("the kicked visitor is online after the restart")
	}
}

// TestRADIUSUnsignedServerReportedAtStart runs Debian 12's FreeRADIUS as
// it comes (no Message-Authenticator in its answers): the daemon reports
// it at start, before any visitor (log line with the fix, metric,
// console banner), and a number the server rejects does not get in, even
// with fail_policy open.
func TestRADIUSUnsignedServerReportedAtStart(t *testing.T) {
	p := newPark(t, 1)
	p.startRADIUSWith(func(conf string) {
		unsigned, err := os.ReadFile(filepath.Join(conf, "sign_replies.unpatched"))
		if err == nil {
			err = os.WriteFile(filepath.Join(conf, "sign_replies"), unsigned, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	})
	cfg := p.config(map[string]string{
		"radius.accounting": "1", "radius.authorization": "1",
		"radius.auth_server": "list 127.0.0.1:1812", "radius.acct_server": "list 127.0.0.1:1813",
		"radius.secret": radSecret, "radius.nas_identifier": nasID, "radius.fail_policy": "open",
	})
	d := p.start(cfg)
	// p.start returns once the portal answers, which is after the probe.
	out := d.output()
	for _, want := range []string{
		`msg="RADIUS server misconfigured or unreachable" role=auth server=127.0.0.1:1812 problem=no-message-authenticator`,
		"update reply { &Message-Authenticator := 0x00 }",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the start's log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "role=acct server=127.0.0.1:1813 problem=") {
		t.Errorf("the accounting port was reported (Accounting-Response needs no Message-Authenticator):\n%s", out)
	}

	// Metric, through an API token; banner, through a console login.
	if code, body := p.api("POST", "/api/v1/users", `{"name":"amal","role":"admin","password":"a long password"}`); code != 201 && code != 200 {
		t.Fatalf("adding an account: %d %s", code, body)
	}
	code, body := p.api("POST", "/api/v1/users/amal/tokens", `{"label":"e2e"}`)
	if code != 201 && code != 200 {
		t.Fatalf("token: %d %s", code, body)
	}
	token := jsonField(body, "token")
	metrics, _ := p.gw("curl", "-sS", "--max-time", "5", "-H", "Authorization: Bearer "+token, "http://127.0.0.1:2052/metrics")
	if want := `parkportal_radius_server_problem{problem="no-message-authenticator",role="auth",server="127.0.0.1:1812",site="lab-park"} 1`; !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s:\n%s", want, grepLines(metrics, "radius_server"))
	}
	jar := filepath.Join(p.dir, "console.jar")
	if out, err := p.gw("curl", "-sS", "--max-time", "10", "-c", jar, "-d", "name=amal", "-d", "password=a long password", "http://127.0.0.1:2052/login"); err != nil {
		t.Fatalf("console login: %v %s", err, out)
	}
	for lang, want := range map[string]string{"en": "RADIUS server 127.0.0.1:1812 (auth): no-message-authenticator", "ar": "يجيب دون Message-Authenticator"} {
		page, _ := p.gw("curl", "-sS", "--max-time", "10", "-b", jar, "http://127.0.0.1:2052/?lang="+lang)
		if !strings.Contains(page, `class="error alert"`) || !strings.Contains(page, want) {
			t.Errorf("console banner (%s) lacks %q:\n%s", lang, want, grepLines(page, "alert"))
		}
	}

	// fail_policy open, and the server rejects +97455100002: refused.
	v := p.Visitors[0]
	if r := lab.PostForm(v.NS, portalURL+"sms", map[string]string{"phone": "55100002"}); r.Code != 303 {
		t.Fatalf("SMS: %d %s", r.Code, r.Body)
	}
	pin, err := lab.LastPIN(p.outbox(), "+97455100002")
	if err != nil {
		t.Fatal(err)
	}
	r := lab.PostForm(v.NS, portalURL+"pin", map[string]string{"pin": pin})
	if r.Code == 200 || online(v) {
		t.Errorf("a number an unsigned server rejects got in with fail_policy open: %d", r.Code)
	}
	if !strings.Contains(r.Body, `data-code="auth-unavailable"`) {
		t.Errorf("the visitor is not told to try again later: %d\n%s", r.Code, r.Body)
	}
}

// jsonField reads a top-level string field of a JSON object.
func jsonField(body, name string) string {
	var m map[string]any
	json.Unmarshal([]byte(body), &m)
	s, _ := m[name].(string)
	return s
}

func grepLines(s, what string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, what) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
