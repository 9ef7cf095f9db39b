package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/lab"
)

// TestCaptiveLoop runs the scripted visitor of `parkportal lab --check`
// against the real daemon: probes, resets, drops, splash, SMS, PIN
// errors, login, isolation of another visitor, logout.
func TestCaptiveLoop(t *testing.T) {
	p := newPark(t, 2)
	p.start(p.config(nil))
	var report strings.Builder
	ch := &lab.Checker{Park: p.Park, PortalURL: portalURL, Outbox: p.outbox(), Phone: "33123456", Out: &report}
	steps, flow := ch.Run()
	t.Logf("scripted visitor:\n%s", report.String())
	for _, s := range steps {
		if !s.OK {
			t.Errorf("step failed: %s: %s", s.Name, s.Detail)
		}
	}
	if len(steps) < 20 {
		t.Errorf("only %d steps ran; the script stopped early", len(steps))
	}
	t.Logf("PIN accepted → traffic flows: %s", flow)
}

// TestRestartKeepsVisitorsOnline: a clean stop leaves the gate as it is
// (the authorised visitor stays online, the other captive); after
// 'parkportal cleanup' removed it, the next start rebuilds the allowlist
// from the store, so the authorised visitor is back online without a new
// SMS and the other visitor is captive again. A kill -9 leaves the kernel
// state in place too, so the visitor never goes offline.
func TestRestartKeepsVisitorsOnline(t *testing.T) {
	p := newPark(t, 2)
	cfg := p.config(nil)
	d := p.start(cfg)
	v1, v2 := p.Visitors[0], p.Visitors[1]
	p.login(v1, "33123456")
	if !online(v1) {
		t.Fatal("visitor not online after login")
	}
	if got := p.todayFigures(); got != "logins 1, SMS sent 1" {
		t.Errorf("dashboard before restart: %s", got)
	}

	gate := p.gateView()
	d.stop(t, syscall.SIGTERM)
	if got := p.gateView(); got != gate {
		t.Errorf("a clean stop changed the gate:\n%s\nwant:\n%s", got, gate)
	}
	if !online(v1) {
		t.Error("after a clean stop, the authorised visitor is offline")
	}
	if online(v2) {
		t.Error("after a clean stop, the unauthorised visitor got out")
	}
	if out, err := lab.Cmd(p.Gateway, binary, "cleanup", "--config", cfg).CombinedOutput(); err != nil {
		t.Fatalf("parkportal cleanup: %v: %s", err, out)
	}
	if got := p.gateView(); got != "" {
		t.Errorf("after parkportal cleanup, the kernel still has:\n%s", got)
	}

	d = p.start(cfg)
	if !online(v1) {
		t.Error("after restart, the authorised visitor is not online")
	}
	if online(v2) {
		t.Error("after restart, the unauthorised visitor got out")
	}
	if r := lab.Curl(v1.NS, 2*time.Second, portalURL); !strings.Contains(r.Body, `id="connected"`) {
		t.Errorf("after restart, the visitor's portal page is not the status page: %d", r.Code)
	}
	// The dashboard's day survives the restart (and with it the SMS
	// budget it shows as left).
	if got := p.todayFigures(); got != "logins 1, SMS sent 1" {
		t.Errorf("dashboard after restart: %s", got)
	}

	// kill -9: nothing is torn down, traffic keeps flowing meanwhile.
	d.cmd.Process.Kill()
	d.cmd.Wait()
	if !online(v1) {
		t.Error("while the daemon is dead, the authorised visitor lost the internet")
	}
	if online(v2) {
		t.Error("while the daemon is dead, the unauthorised visitor got out")
	}
	p.start(cfg)
	if !online(v1) {
		t.Error("after kill -9 and restart, the authorised visitor is not online")
	}
	list, err := p.allowlist()
	if err != nil {
		t.Fatalf("listing the allowlist: %v", err)
	}
	if n := len(slices.DeleteFunc(slices.Clone(list), func(e string) bool { return !strings.HasPrefix(e, v1.IP.String()+" ") })); n != 1 {
		t.Errorf("allowlist holds %d entries for %s after restart, want 1: %v", n, v1.IP, list)
	}
}

// TestSpoofedIPGetsNothing: a second device that takes an authorised
// visitor's IP (with its own MAC) stays captive.
func TestSpoofedIPGetsNothing(t *testing.T) {
	p := newPark(t, 2)
	p.start(p.config(nil))
	v1, v2 := p.Visitors[0], p.Visitors[1]
	p.login(v1, "33123456")
	// v1 leaves; v2 takes v1's address.
	must(t, lab.Cmd(v1.NS, "ip", "link", "set", "eth0", "down").Run())
	must(t, lab.Cmd(v2.NS, "ip", "addr", "flush", "dev", "eth0").Run())
	must(t, lab.Cmd(v2.NS, "ip", "addr", "add", v1.IP.String()+"/24", "dev", "eth0").Run())
	must(t, lab.Cmd(v2.NS, "ip", "route", "replace", "default", "via", lab.GatewayLAN.String()).Run())
	// Make the gateway learn v2's MAC for the address.
	lab.Cmd(p.Gateway, "ip", "neigh", "flush", "dev", lab.LANIface).Run()
	// The spoofer's packets do reach the gateway (it is redirected like
	// any captive device), but it never gets out.
	r := lab.Curl(v2.NS, 2*time.Second, "http://"+lab.InternetIP.String()+"/generate_204")
	if r.Code != 302 {
		t.Fatalf("spoofing device: want the captive redirect (302), got %d (curl exit %d)", r.Code, r.Exit)
	}
}

// TestAddressCopierCannotEndVisitorSession: a device that copies an online
// visitor's address, and has won the gateway's neighbour entry for it (so
// the portal takes its requests for its own), cannot log in with its own
// number: that login would end the visitor's session and take the
// visitor offline. The visitor keeps its session and its allowlist entry,
// and once the copier is gone it is online without logging in again.
func TestAddressCopierCannotEndVisitorSession(t *testing.T) {
	p := newPark(t, 2)
	d := p.start(p.config(nil))
	v1, v2 := p.Visitors[0], p.Visitors[1]
	p.login(v1, "33123456")
	// v2 takes v1's address while v1 stays online. The neighbour entry is
	// pinned to v2, as if v2 had answered the gateway's ARP last, so the
	// portal's view of the address cannot flap back to v1 mid-test.
	must(t, lab.Cmd(v2.NS, "ip", "addr", "flush", "dev", "eth0").Run())
	must(t, lab.Cmd(v2.NS, "ip", "addr", "add", v1.IP.String()+"/24", "dev", "eth0").Run())
	must(t, lab.Cmd(v2.NS, "ip", "route", "replace", "default", "via", lab.GatewayLAN.String()).Run())
	must(t, lab.Cmd(p.Gateway, "ip", "neigh", "replace", v1.IP.String(), "lladdr", v2.MAC, "dev", lab.LANIface, "nud", "permanent").Run())

	r, err := lab.Login(v2.NS, lab.CookieJar(v2.NS), portalURL, p.outbox(), "33999999")
	if err == nil {
		t.Fatalf("the device copying the visitor's address logged in with its own number (%d)", r.Code)
	}
	if !strings.Contains(d.output(), "login refused") {
		t.Errorf("the copier's login failed (%v), but not for the address being in use", err)
	}
	if r.Code != http.StatusConflict || !strings.Contains(r.Body, "address-in-use") {
		t.Errorf("the copier was told %d, want 409 with the address-in-use problem:\n%s", r.Code, r.Body)
	}
	list, err := p.allowlist()
	if err != nil {
		t.Fatalf("listing the allowlist: %v", err)
	}
	if !slices.Contains(list, v1.IP.String()+" "+strings.ToLower(v1.MAC)) {
		t.Errorf("the visitor's allowlist entry is gone after the copier's login: %v", list)
	}
	if slices.ContainsFunc(list, func(e string) bool { return strings.HasSuffix(e, " "+strings.ToLower(v2.MAC)) }) {
		t.Errorf("the copier is in the allowlist: %v", list)
	}

	// The copier leaves; the gateway learns the address from v1 again.
	must(t, lab.Cmd(v2.NS, "ip", "link", "set", "eth0", "down").Run())
	must(t, lab.Cmd(p.Gateway, "ip", "neigh", "del", v1.IP.String(), "dev", lab.LANIface).Run())
	back := false
	for i := 0; i < 10 && !back; i++ { // bounded: 10 × (≤ 2 s + 200 ms)
		if back = online(v1); !back {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if !back {
		t.Error("the visitor is not online after the copier left")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// todayFigures reads today's logins and SMS from the admin API's
// dashboard, e.g. "logins 1, SMS sent 1".
func (p *testPark) todayFigures() string {
	p.t.Helper()
	code, body := p.api("GET", "/api/v1/dashboard", "")
	var d struct {
		Now struct {
			Today struct {
				Logins  int `json:"logins"`
				SMSSent int `json:"sms_sent"`
			} `json:"today"`
		} `json:"now"`
	}
	if err := json.Unmarshal([]byte(body), &d); code != 200 || err != nil {
		p.t.Fatalf("GET /api/v1/dashboard: %d %v: %s", code, err, body)
	}
	return fmt.Sprintf("logins %d, SMS sent %d", d.Now.Today.Logins, d.Now.Today.SMSSent)
}
