package e2e

// The staff's side against the real daemon in the virtual park: the
// first account made with the CLI on the box, the console driven in
// headless Chromium inside the GATEWAY's namespace (where the console
// listens on 127.0.0.1:2052, as staff reach it on the router or through
// an SSH tunnel), a site rate change seen in the kernel's HTB class of a
// visitor who stays online, a kick that makes a visitor captive again,
// the API and /metrics with a token made by the CLI, and the admin port
// closed to the visitors' LAN.
//
// Chromium runs as in browser_test.go (startBrowser: `ip netns exec`
// around the browser, DevTools over --remote-debugging-pipe, killed in
// t.Cleanup before the park is removed), only in the gateway namespace.
//
// Identifiers here start with "adm" so that they do not collide with the
// package's other test files.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parkwifi/parkportal/lab"
)

const (
	// admConsole is the console as staff open it on the gateway.
	admConsole = "http://127.0.0.1:2052"
	// admPassword is the first account's password (10+ bytes).
	admPassword = "amal-lab-console-2026"
	// Laptop viewport of the console.
	admLaptopW, admLaptopH = 1280, 860
)

// admRun runs a command (bounded) with stdin and returns its stdout and
// stderr.
func admRun(t *testing.T, c *exec.Cmd, stdin string) (string, string, error) {
	t.Helper()
	var o, e bytes.Buffer
	c.Stdin = strings.NewReader(stdin)
	c.Stdout, c.Stderr = &o, &e
	if err := c.Start(); err != nil {
		t.Fatalf("%v: %v", c.Args, err)
	}
	// `ip netns exec` execs the command in place: killing it kills
	// parkportal.
	timer := time.AfterFunc(20*time.Second, func() { c.Process.Kill() })
	err := c.Wait()
	timer.Stop()
	return o.String(), e.String(), err
}

// admAPI calls the admin listener from the gateway's namespace with curl,
// as staff's scripts do, with token (none if empty).
func admAPI(ns, token, path string) lab.HTTPResult {
	var extra []string
	if token != "" {
		extra = []string{"-H", "Authorization: Bearer " + token}
	}
	return lab.Curl(ns, 5*time.Second, admConsole+path, extra...)
}

// admSession is a session as GET /api/v1/sessions lists it.
type admSession struct {
	ID       string `json:"id"`
	Phone    string `json:"phone"`
	MAC      string `json:"mac"`
	IP       string `json:"ip"`
	RateDown uint64 `json:"rate_down"`
	RateUp   uint64 `json:"rate_up"`
	State    string `json:"state"`
}

// admSessions lists the active sessions through the API.
func admSessions(t *testing.T, ns, token string) []admSession {
	t.Helper()
	r := admAPI(ns, token, "/api/v1/sessions")
	if r.Code != 200 {
		t.Fatalf("GET /api/v1/sessions with the CLI's token: %d (curl exit %d): %s", r.Code, r.Exit, r.Body)
	}
	var list []admSession
	if err := json.Unmarshal([]byte(r.Body), &list); err != nil {
		t.Fatalf("GET /api/v1/sessions: %v: %s", err, r.Body)
	}
	return list
}

func admFind(list []admSession, v lab.Visitor) (admSession, bool) {
	for _, s := range list {
		if s.IP == v.IP.String() {
			return s, true
		}
	}
	return admSession{}, false
}

// admClassID is the HTB class of a visitor's address on the LAN device:
// 1:(2+offset in the LAN prefix), in hex as tc prints it (see
// firewall/shaper/ids.go).
func admClassID(v lab.Visitor) string {
	off := v.IP.As4()[3] - lab.LANPrefix.Addr().As4()[3]
	return fmt.Sprintf("1:%x", int(off)+2)
}

var admClassRE = regexp.MustCompile(`class htb (\S+) (?:root|parent \S+) .*?rate (\S+) ceil (\S+)`)

// admCeil reads the ceiling (bit/s) of HTB class id on dev in the
// gateway; ok is false when the class does not exist.
func admCeil(t *testing.T, p *testPark, dev, id string) (uint64, bool) {
	t.Helper()
	out, err := p.gw("tc", "class", "show", "dev", dev)
	if err != nil {
		t.Fatalf("tc class show dev %s: %v\n%s", dev, err, out)
	}
	for _, m := range admClassRE.FindAllStringSubmatch(out, -1) {
		if m[1] == id {
			return parseTCRate(t, m[3]), true
		}
	}
	return 0, false
}

// admWaitCeil waits (bounded) until the visitor's class on dev has ceil
// want, and fails the test with what it saw if it does not.
func admWaitCeil(t *testing.T, p *testPark, dev string, v lab.Visitor, want uint64) {
	t.Helper()
	id := admClassID(v)
	var got uint64
	var ok bool
	for deadline := time.Now().Add(5 * time.Second); ; {
		if got, ok = admCeil(t, p, dev, id); ok && got == want {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !ok {
		t.Errorf("%s: no HTB class %s for %s", dev, id, v.IP)
		return
	}
	t.Errorf("%s: class %s of %s has ceil %d bit/s, want %d", dev, id, v.IP, got, want)
}

// admView is a browser's emulated viewport.
type admView struct {
	w, h  int64
	phone bool
}

var (
	admLaptop = admView{w: admLaptopW, h: admLaptopH}
	admPhone  = admView{w: phoneWidth, h: phoneHeight, phone: true}
)

// emulate is the action that sets the viewport, h CSS px high.
func (v admView) emulate(h int64) chromedp.Action[chromedp.Void] {
	if v.phone {
		return chromedp.EmulateViewport(v.w, h, chromedp.EmulateScale(phoneScale), chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
	}
	return chromedp.EmulateViewport(v.w, h)
}

// admShot saves a screenshot of the whole page as
// artifacts/screenshots/admin-lab-<name>.png and returns its path: the
// viewport is made as high as the page for the capture, then restored.
//
// Not chromedp.FullScreenshot: its capture beyond the viewport drew the
// right-to-left dashboard shifted ~300 px sideways and cut off whenever
// the emulated viewport was wider than the browser's window (startBrowser
// opens a 360 px window; the laptop viewport is emulated), although the
// page itself had no overflow (scrollWidth = clientWidth = 1280, and a
// viewport capture showed it right).
func admShot(b *browser, v admView, name string) string {
	b.t.Helper()
	h := get(b, "measuring the page", chromedp.Evaluate[int64](`Math.ceil(document.documentElement.scrollHeight)`))
	b.do("viewport as high as the page", v.emulate(max(h, v.h)))
	png := get(b, "screenshot "+name, chromedp.CaptureScreenshot())
	b.do("restoring the viewport", v.emulate(v.h))
	path := filepath.Join(screenshotDir, "admin-lab-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return path
}

// admConsoleLogin signs in on the console's login page and waits for the
// dashboard.
func admConsoleLogin(b *browser, lang string) {
	b.t.Helper()
	// The console sends a browser without a login to the login page.
	b.navigate(admConsole + "/?lang=" + lang)
	if loc := get(b, "location", chromedp.Location()); !strings.HasPrefix(loc, admConsole+"/login") {
		b.t.Fatalf("%s: the console without a login is at %s, want the login page", b.name, loc)
	}
	b.do("waiting for the login form", chromedp.WaitVisible(chromedp.CSS("#name")))
	b.typeInto("#name", "amal")
	b.typeInto("#password", admPassword)
	if st := b.submit("#login"); st != 200 {
		b.t.Fatalf("%s: console login: status %d (%s)", b.name, st, b.where())
	}
	b.do("waiting for the dashboard", chromedp.WaitVisible(chromedp.CSS("#online")))
}

// admText reads an element's text, trimmed.
func admText(b *browser, sel string) string {
	b.t.Helper()
	return strings.TrimSpace(get(b, "reading "+sel, chromedp.Text(chromedp.CSS(sel))))
}

// admNoOverflow fails the test when the page scrolls sideways.
func admNoOverflow(b *browser, page string) {
	b.t.Helper()
	type widths struct {
		Scroll int `json:"scroll"`
		Client int `json:"client"`
	}
	w := get(b, "measuring widths", chromedp.Evaluate[widths](`({scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth})`))
	if w.Scroll > w.Client {
		b.t.Errorf("%s %s: content %d CSS px wide in a %d px viewport (horizontal scrolling)", b.name, page, w.Scroll, w.Client)
	}
}

// TestAdminConsoleInLab: a park with two visitors and the real daemon.
//
//   - The first account is created with `parkportal admin add-user` in the
//     gateway (password on stdin, through the daemon's admin socket).
//   - The admin port is dropped for visitors, captive or logged in.
//   - `parkportal admin token` makes an API token; from the gateway the API
//     lists both sessions and /metrics counts visitors online, logins and
//     SMS sent.
//   - Chromium in the gateway namespace at a laptop viewport logs in to the
//     console (Arabic and English dashboards), changes the site's download
//     rate 8mbit → 2mbit on the settings page: both visitors' HTB classes
//     on lan0 move to 2 Mbit/s in place, visitor 1 stays online in the
//     same session, the upload class stays at 8 Mbit/s, and the change is
//     in the audit log as amal's.
//   - Chromium at 360 px logs in, searches the sessions page for visitor
//     1's phone and kicks the session: visitor 1 is captive again (a probe
//     gets the portal's 302), visitor 2 stays online.
//
// Screenshots go to artifacts/screenshots/admin-lab-*.png.
func TestAdminConsoleInLab(t *testing.T) {
	exe := needChromium(t) // skips when not root or without chromium
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	p := newPark(t, 2)
	cfg := p.config(nil)
	p.start(cfg)
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	v1, v2 := p.Visitors[0], p.Visitors[1]
	const phone1, phone2 = "33123456", "55123457"
	var shots []string

	// The first account, with the CLI on the box. Not a terminal: the
	// password is read once from stdin.
	out, errOut, err := admRun(t, lab.Cmd(p.Gateway, binary, "admin", "add-user", "--config", cfg, "--role", "admin", "amal"), admPassword+"\n")
	if err != nil || !strings.Contains(out, "account amal (admin) created") {
		t.Fatalf("parkportal admin add-user: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	out, errOut, err = admRun(t, lab.Cmd(p.Gateway, binary, "admin", "list", "--config", cfg), "")
	if err != nil || !regexp.MustCompile(`(?m)^amal\s+admin\s`).MatchString(out) {
		t.Fatalf("parkportal admin list: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}

	// The admin port, for a visitor still captive.
	if r := lab.Curl(v2.NS, 2*time.Second, "http://"+lab.GatewayLAN.String()+":2052/"); r.Exit != 28 {
		t.Errorf("captive %s: curl to the admin port on %s: exit %d (HTTP %d), want 28 (dropped)", v2.NS, lab.GatewayLAN, r.Exit, r.Code)
	}

	// Both visitors log in at the site's 8mbit.
	p.login(v1, phone1)
	p.login(v2, phone2)
	if !online(v1) || !online(v2) {
		t.Fatal("after login the visitors are not online")
	}
	for _, v := range []lab.Visitor{v1, v2} {
		admWaitCeil(t, p, lab.LANIface, v, 8_000_000)
	}

	// The admin port, for a visitor who is in.
	if r := lab.Curl(v1.NS, 2*time.Second, "http://"+lab.GatewayLAN.String()+":2052/"); r.Exit != 28 {
		t.Errorf("logged-in %s: curl to the admin port on %s: exit %d (HTTP %d), want 28 (dropped)", v1.NS, lab.GatewayLAN, r.Exit, r.Code)
	}

	// The API and /metrics with a token from the CLI.
	out, errOut, err = admRun(t, lab.Cmd(p.Gateway, binary, "admin", "token", "--config", cfg, "--label", "lab e2e", "amal"), "")
	token := strings.TrimSpace(out)
	if err != nil || !strings.HasPrefix(token, "ppt_") || strings.ContainsAny(token, " \n") {
		t.Fatalf("parkportal admin token: %v\nstdout: %q\nstderr: %s", err, out, errOut)
	}
	if r := admAPI(p.Gateway, "", "/api/v1/sessions"); r.Code != 401 {
		t.Errorf("GET /api/v1/sessions without a token: %d, want 401", r.Code)
	}
	if r := admAPI(p.Gateway, "ppt_not-a-token", "/api/v1/sessions"); r.Code != 401 {
		t.Errorf("GET /api/v1/sessions with a wrong token: %d, want 401", r.Code)
	}
	list := admSessions(t, p.Gateway, token)
	s1, ok := admFind(list, v1)
	if !ok || len(list) != 2 {
		t.Fatalf("the API lists %d sessions, want both visitors': %+v", len(list), list)
	}
	if s1.Phone != "+974"+phone1 || !strings.EqualFold(s1.MAC, v1.MAC) || s1.RateDown != 8_000_000 || s1.RateUp != 8_000_000 {
		t.Errorf("visitor 1's session in the API: %+v, want phone +974%s, MAC %s, 8mbit both ways", s1, phone1, v1.MAC)
	}
	r := admAPI(p.Gateway, token, "/metrics")
	if r.Code != 200 {
		t.Fatalf("GET /metrics with the token: %d (curl exit %d)", r.Code, r.Exit)
	}
	for name, want := range map[string]float64{
		"parkportal_visitors_online": 2,
		"parkportal_logins_total":    2,
		"parkportal_sms_sent_total":  2,
	} {
		if got := readMetric(r.Body, name); got != want {
			t.Errorf("/metrics: %s = %v, want %v", name, got, want)
		}
	}
	if !strings.Contains(r.Body, `parkportal_visitors_online{site="lab-park"}`) {
		t.Errorf("/metrics: no parkportal_visitors_online for site lab-park:\n%s", r.Body)
	}

	gateway := lab.Visitor{NS: p.Gateway}

	// Laptop: dashboards, settings.
	t.Run("laptop", func(t *testing.T) {
		b := startBrowser(t, exe, "console-laptop", gateway, "en-GB,en", false)
		b.do("laptop viewport", admLaptop.emulate(admLaptop.h))
		admConsoleLogin(b, "ar")
		b.wantPage("ar", "rtl")
		if got := admText(b, "#online"); got != "2" {
			t.Errorf("Arabic dashboard shows %q visitors online, want 2", got)
		}
		shots = append(shots, admShot(b, admLaptop, "dashboard-ar"))

		b.navigate(admConsole + "/?lang=en")
		b.do("waiting for the dashboard", chromedp.WaitVisible(chromedp.CSS("#online")))
		b.wantPage("en", "ltr")
		if got := admText(b, "#online"); got != "2" {
			t.Errorf("English dashboard shows %q visitors online, want 2", got)
		}
		if title := get(b, "title", chromedp.Title()); title != "Park Wi-Fi console" {
			t.Errorf("English title %q", title)
		}
		admNoOverflow(b, "dashboard-en")
		shots = append(shots, admShot(b, admLaptop, "dashboard-en"))

		// The site's download rate, 8mbit → 2mbit.
		b.navigate(admConsole + "/settings")
		b.do("waiting for the settings form", chromedp.WaitVisible(chromedp.CSS("#f-rate_down")))
		if got := get(b, "reading rate_down", chromedp.Value(chromedp.CSS("#f-rate_down"))); got != "8mbit" {
			t.Errorf("settings page shows rate_down %q, want 8mbit", got)
		}
		b.typeInto("#f-rate_down", "2mbit")
		if st := b.submit("#save"); st != 200 {
			t.Fatalf("saving the settings: status %d (%s)", st, b.where())
		}
		b.do("waiting for the confirmation", chromedp.WaitVisible(chromedp.CSS("p.ok")))
		if got := admText(b, "p.ok"); !strings.Contains(got, "Saved") {
			t.Errorf("after saving the settings the page says %q", got)
		}
		if got := get(b, "reading rate_down", chromedp.Value(chromedp.CSS("#f-rate_down"))); got != "2mbit" {
			t.Errorf("after saving, the settings page shows rate_down %q, want 2mbit", got)
		}
		shots = append(shots, admShot(b, admLaptop, "settings-en"))

		// In the kernel: both visitors' download classes, in place.
		for _, v := range []lab.Visitor{v1, v2} {
			admWaitCeil(t, p, lab.LANIface, v, 2_000_000)
		}
		// Upload (the IFB's classes) stays at the unchanged rate_up.
		if got, ok := admCeil(t, p, "pp-ifb0", admClassID(v1)); !ok || got != 8_000_000 {
			t.Errorf("pp-ifb0: visitor 1's upload class %s: ceil %d (present %v) after a download-only change, want 8000000", admClassID(v1), got, ok)
		}
		if !online(v1) {
			t.Error("visitor 1 is not online after the site's rate change")
		}
		after, ok := admFind(admSessions(t, p.Gateway, token), v1)
		if !ok || after.ID != s1.ID || after.RateDown != 2_000_000 || after.RateUp != 8_000_000 {
			t.Errorf("visitor 1's session after the rate change: %+v (ok=%v), want session %s at 2mbit down, 8mbit up", after, ok, s1.ID)
		}
		// The audit log has it, as amal's.
		r := admAPI(p.Gateway, token, "/api/v1/audit?limit=5")
		var audit []struct {
			Actor, Field, Old, New string
		}
		if r.Code != 200 || json.Unmarshal([]byte(r.Body), &audit) != nil {
			t.Fatalf("GET /api/v1/audit: %d %s", r.Code, r.Body)
		}
		found := false
		for _, a := range audit {
			if a.Actor == "amal" && a.Field == "rate_down" && a.Old == `"8mbit"` && a.New == `"2mbit"` {
				found = true
			}
		}
		if !found {
			t.Errorf("audit log has no rate_down 8mbit → 2mbit by amal: %s", r.Body)
		}
		// The CLI reached the running daemon through its socket, as the
		// socket's local-root account (with the daemon down it would have
		// opened the store, which the daemon holds).
		r = admAPI(p.Gateway, token, "/api/v1/audit?limit=100")
		if err := json.Unmarshal([]byte(r.Body), &audit); r.Code != 200 || err != nil {
			t.Fatalf("GET /api/v1/audit: %d %s", r.Code, r.Body)
		}
		found = false
		for _, a := range audit {
			if a.Actor == "local-root" && a.Field == "account.amal" {
				found = true
			}
		}
		if !found {
			t.Errorf("audit log has no account.amal by local-root (the CLI through the admin socket): %s", r.Body)
		}

		// The sessions page shows the new rate.
		b.navigate(admConsole + "/sessions")
		b.do("waiting for the sessions", chromedp.WaitVisible(chromedp.CSS("#kick-"+s1.ID)))
		if got := admText(b, "#s-"+s1.ID); !strings.Contains(got, "2mbit / 8mbit") {
			t.Errorf("sessions page shows visitor 1 as %q, want the rate 2mbit / 8mbit", got)
		}
		shots = append(shots, admShot(b, admLaptop, "sessions-en"))
	})
	if t.Failed() {
		t.FailNow()
	}

	// Phone: search, kick.
	t.Run("phone", func(t *testing.T) {
		b := startBrowser(t, exe, "console-phone", gateway, "ar-QA,ar", false)
		admConsoleLogin(b, "ar")
		b.wantPage("ar", "rtl")
		admNoOverflow(b, "dashboard-ar-phone")
		shots = append(shots, admShot(b, admPhone, "dashboard-ar-phone"))

		b.navigate(admConsole + "/sessions")
		b.do("waiting for the search field", chromedp.WaitVisible(chromedp.CSS("#q")))
		b.typeInto("#q", phone1)
		if st := b.submit(`form.search button[type=submit]`); st != 200 {
			t.Fatalf("searching the sessions: status %d (%s)", st, b.where())
		}
		rows := get(b, "listing the rows", chromedp.AttributesAll(chromedp.CSS("article.row")))
		if len(rows) != 1 || rows[0]["id"] != "s-"+s1.ID {
			t.Fatalf("searching for %s found rows %v, want only s-%s", phone1, rows, s1.ID)
		}
		admNoOverflow(b, "sessions-ar-phone")
		shots = append(shots, admShot(b, admPhone, "sessions-search-ar-phone"))

		if st := b.submit("#kick-" + s1.ID); st != 200 {
			t.Fatalf("kicking: status %d (%s)", st, b.where())
		}
		b.do("waiting for the confirmation", chromedp.WaitVisible(chromedp.CSS("p.ok")))
		if ids := get(b, "looking for the kicked row", chromedp.QueryNodeIDs(chromedp.CSS("#s-"+s1.ID), chromedp.AtLeast(0))); len(ids) != 0 {
			t.Error("after the kick the sessions page still lists the session")
		}
		shots = append(shots, admShot(b, admPhone, "sessions-kicked-ar-phone"))

		// Visitor 1 is captive again; visitor 2 is not touched.
		gone := false
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			if !online(v1) {
				gone = true
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if !gone {
			t.Fatal("visitor 1 still reaches the internet after the kick")
		}
		probe := lab.Curl(v1.NS, 3*time.Second, "http://"+lab.InternetIP.String()+"/generate_204")
		if probe.Code != 302 || !strings.HasPrefix(probe.Location, portalURL) {
			t.Errorf("visitor 1's probe after the kick: %d → %q (curl exit %d), want 302 to %s", probe.Code, probe.Location, probe.Exit, portalURL)
		}
		if !online(v2) {
			t.Error("kicking visitor 1 took visitor 2 offline")
		}
		list := admSessions(t, p.Gateway, token)
		if _, ok := admFind(list, v1); ok || len(list) != 1 {
			t.Errorf("after the kick the API lists %+v, want only visitor 2's session", list)
		}
		r := admAPI(p.Gateway, token, "/metrics")
		if got := readMetric(r.Body, "parkportal_visitors_online"); r.Code != 200 || got != 1 {
			t.Errorf("/metrics after the kick: HTTP %d, parkportal_visitors_online = %v, want 1", r.Code, got)
		}
	})

	abs, _ := filepath.Abs(screenshotDir)
	for i, s := range shots {
		shots[i] = filepath.Base(s)
	}
	t.Logf("screenshots in %s: %s", abs, strings.Join(shots, ", "))
}
