package e2e

import (
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/lab"
)

// TestSessionFollowsDHCPRenewal: a logged-in phone renews its DHCP lease
// and gets a new address from the gateway's DHCP server (dnsmasq, as on
// OpenWrt). The daemon sees the server's ACK and moves the session: the
// phone stays online at its new address without a new SMS, and its old
// address is no longer allowed.
func TestSessionFollowsDHCPRenewal(t *testing.T) {
	p := newPark(t, 1)
	p.start(p.config(nil))
	v := p.Visitors[0]
	p.login(v, "33123456")

	const newIP = "198.51.100.201"
	p.startDHCP()
	p.leaseAndUse(v, newIP)

	moved := time.Now()
	ok := false
	for i := 0; i < 20 && !ok; i++ { // bounded: about 4 s
		ok = online(v)
		if !ok {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if !ok {
		t.Fatalf("the phone is offline at its new address %s", newIP)
	}
	t.Logf("online at the new address %s after the renewal", time.Since(moved).Round(10*time.Millisecond))
	if r := lab.Curl(v.NS, 3*time.Second, portalURL); !strings.Contains(r.Body, `id="connected"`) {
		t.Errorf("at the new address the portal does not show the session (got %d)", r.Code)
	}
	list, err := p.allowlist()
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(list, func(e string) bool { return strings.HasPrefix(e, v.IP.String()+" ") }) {
		t.Errorf("the old address %s is still allowed: %v", v.IP, list)
	}
	if !slices.Contains(list, newIP+" "+strings.ToLower(v.MAC)) {
		t.Errorf("the new address is not bound to the phone's MAC: %v", list)
	}
}

// TestDHCPLeasePreparesShaping: a phone that gets its address from the
// gateway's DHCP server has its shaping classes made while it is still
// captive (so its login only changes them), and they let nothing
// through: it stays captive, with no filter sending its packets to them,
// until it logs in.
func TestDHCPLeasePreparesShaping(t *testing.T) {
	p := newPark(t, 1)
	p.start(p.config(nil))
	v := p.Visitors[0]
	p.startDHCP()
	const leased = "198.51.100.202"
	p.leaseAndUse(v, leased)
	v.IP = netip.MustParseAddr(leased)
	class := admClassID(v)

	prepared := false
	for i := 0; i < 20 && !prepared; i++ { // bounded: about 4 s
		_, prepared = admCeil(t, p, lab.LANIface, class)
		if !prepared {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if !prepared {
		t.Fatalf("no class %s on %s for the leased address %s before login", class, lab.LANIface, leased)
	}
	if _, ok := admCeil(t, p, "pp-ifb0", class); !ok {
		t.Errorf("no upload class %s for %s before login", class, leased)
	}
	if online(v) {
		t.Fatal("a phone with prepared classes got out without logging in")
	}
	filters, _ := p.gw("tc", "filter", "show", "dev", lab.LANIface)
	if strings.Contains(filters, "flowid "+class+" ") {
		t.Errorf("a filter already sends traffic to the prepared class %s:\n%s", class, filters)
	}

	p.login(v, "33123456")
	if !online(v) {
		t.Fatal("not online after login")
	}
	if ceil, ok := admCeil(t, p, lab.LANIface, class); !ok || ceil != 8_000_000 {
		t.Errorf("after login: class %s ceil %d (exists %v), want 8 Mbit/s", class, ceil, ok)
	}
	filters, _ = p.gw("tc", "filter", "show", "dev", lab.LANIface)
	if !strings.Contains(filters, "flowid "+class+" ") {
		t.Errorf("after login no filter sends %s to class %s:\n%s", leased, class, filters)
	}
}

// startDHCP runs dnsmasq as the gateway's DHCP server, as on OpenWrt,
// handing out 198.51.100.200-220, until the test ends.
func (p *testPark) startDHCP() {
	p.t.Helper()
	for _, tool := range []string{"dnsmasq", "busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			p.t.Fatalf("%s not installed (scripts/deps.sh installs dnsmasq-base and busybox)", tool)
		}
	}
	dhcp := lab.Cmd(p.Gateway, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
		"--interface="+lab.LANIface, "--bind-interfaces", "--dhcp-authoritative",
		"--dhcp-range=198.51.100.200,198.51.100.220,255.255.255.0,1h",
		"--dhcp-leasefile="+filepath.Join(p.dir, "leases"), "--pid-file=")
	if err := dhcp.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { dhcp.Process.Kill(); dhcp.Wait() })
}

// leaseAndUse has visitor v ask the DHCP server for ip (busybox udhcpc)
// and then use it instead of its lab address.
func (p *testPark) leaseAndUse(v lab.Visitor, ip string) {
	p.t.Helper()
	var out []byte
	var err error
	for i := 0; i < 10; i++ { // dnsmasq may take a moment to listen
		out, err = lab.Cmd(v.NS, "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-s", "/bin/true",
			"-r", ip, "-t", "3", "-T", "1").CombinedOutput()
		if err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil || !strings.Contains(string(out), ip) {
		p.t.Fatalf("udhcpc did not get %s: %v\n%s", ip, err, out)
	}
	for _, c := range [][]string{
		{"ip", "addr", "del", v.IP.String() + "/24", "dev", "eth0"},
		{"ip", "addr", "add", ip + "/24", "dev", "eth0"},
		{"ip", "route", "replace", "default", "via", lab.GatewayLAN.String()},
	} {
		if out, err := lab.Cmd(v.NS, c[0], c[1:]...).CombinedOutput(); err != nil {
			p.t.Fatalf("%v: %v: %s", c, err, out)
		}
	}
}
