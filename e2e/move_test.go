package e2e

import (
	"os/exec"
	"path/filepath"
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
	for _, tool := range []string{"dnsmasq", "busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (scripts/deps.sh installs dnsmasq-base and busybox)", tool)
		}
	}
	p := newPark(t, 1)
	p.start(p.config(nil))
	v := p.Visitors[0]
	p.login(v, "33123456")

	dhcp := lab.Cmd(p.Gateway, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
		"--interface="+lab.LANIface, "--bind-interfaces", "--dhcp-authoritative",
		"--dhcp-range=198.51.100.200,198.51.100.220,255.255.255.0,1h",
		"--dhcp-leasefile="+filepath.Join(p.dir, "leases"), "--pid-file=")
	if err := dhcp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dhcp.Process.Kill(); dhcp.Wait() })

	const newIP = "198.51.100.201"
	var out []byte
	var err error
	for i := 0; i < 10; i++ { // dnsmasq may take a moment to listen
		out, err = lab.Cmd(v.NS, "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-s", "/bin/true",
			"-r", newIP, "-t", "3", "-T", "1").CombinedOutput()
		if err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil || !strings.Contains(string(out), newIP) {
		t.Fatalf("udhcpc did not get %s: %v\n%s", newIP, err, out)
	}
	// The phone now uses the address the server gave it.
	for _, c := range [][]string{
		{"ip", "addr", "del", v.IP.String() + "/24", "dev", "eth0"},
		{"ip", "addr", "add", newIP + "/24", "dev", "eth0"},
		{"ip", "route", "replace", "default", "via", lab.GatewayLAN.String()},
	} {
		if out, err := lab.Cmd(v.NS, c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", c, err, out)
		}
	}

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
	set, err := p.gw("ipset", "list", "pp-allow")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(set, v.IP.String()+",") {
		t.Errorf("the old address %s is still allowed:\n%s", v.IP, set)
	}
	if !strings.Contains(set, newIP+","+strings.ToUpper(v.MAC)) && !strings.Contains(set, newIP+","+v.MAC) {
		t.Errorf("the new address is not bound to the phone's MAC:\n%s", set)
	}
}
