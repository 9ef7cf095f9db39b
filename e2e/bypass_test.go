package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/parkwifi/parkportal/lab"
)

// inNS runs fn with the calling goroutine's thread inside namespace ns.
// Sockets fn opens stay in ns after it returns.
func inNS(t *testing.T, ns string, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		t.Fatal(err)
	}
	defer netns.Set(orig)
	fn()
}

// udpEcho sends one datagram from ns to addr and reports whether the
// echo came back within timeout.
func udpEcho(t *testing.T, ns, addr string, timeout time.Duration) bool {
	t.Helper()
	var conn net.Conn
	inNS(t, ns, func() {
		var err error
		conn, err = net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
	})
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte("parkportal bypass probe")); err != nil {
		return false
	}
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	return err == nil && string(buf[:n]) == "parkportal bypass probe"
}

func ping(ns, addr string) bool {
	return lab.Cmd(ns, "ping", "-c", "1", "-W", "1", addr).Run() == nil
}

// TestBypassAttempts: an unauthorised visitor tries every other way out.
// Each check has a positive control (the same thing works for a logged-in
// visitor, or without parkportal), so a pass means the firewall stopped
// it, not that the lab was broken.
func TestBypassAttempts(t *testing.T) {
	p := newPark(t, 2)
	p.start(p.config(map[string]string{
		// The staff console bound where visitors could reach it, and a
		// CoA listener on the LAN address: the firewall must still keep
		// both away from visitors.
		"parkportal.admin_listen": "198.51.100.1:2052",
		"radius.das_listen":       "198.51.100.1:3799",
		"radius.das_client":       "list 192.0.2.2",
		"radius.das_secret":       "lab-das-secret",
	}))
	bad, good := p.Visitors[0], p.Visitors[1]
	p.login(good, "55123456")
	inet := lab.InternetIP.String()

	type attempt struct {
		name string
		out  func(v lab.Visitor) bool // true: got through
	}
	attempts := []attempt{
		{"UDP to the internet (port 9999)", func(v lab.Visitor) bool { return udpEcho(t, v.NS, inet+":9999", time.Second) }},
		{"DNS to an outside resolver (203.0.113.10:53)", func(v lab.Visitor) bool { return udpEcho(t, v.NS, inet+":53", time.Second) }},
		{"ICMP echo to the internet", func(v lab.Visitor) bool { return ping(v.NS, inet) }},
		{"TCP 22 to the internet", func(v lab.Visitor) bool {
			// 7: the internet host refused (we got there); 28: dropped.
			return lab.Curl(v.NS, 2*time.Second, "http://"+inet+":22/").Exit == 7
		}},
		{"TCP 443 to the internet", func(v lab.Visitor) bool {
			return strings.Contains(lab.Curl(v.NS, 2*time.Second, "telnet://"+inet+":443", "-m", "2").Body, "not TLS")
		}},
	}
	for _, a := range attempts {
		if a.out(bad) {
			t.Errorf("unauthorised visitor got out: %s", a.name)
		}
		if !a.out(good) {
			t.Errorf("positive control failed: a logged-in visitor cannot do %q either (lab broken?)", a.name)
		}
	}

	// The gateway itself: ssh, the admin console, the CoA port.
	if r := lab.Curl(bad.NS, 2*time.Second, "http://198.51.100.1:22/"); r.Exit != 28 {
		t.Errorf("TCP 22 on the gateway: curl exit %d, want 28 (dropped)", r.Exit)
	}
	for _, v := range []lab.Visitor{bad, good} {
		if r := lab.Curl(v.NS, 2*time.Second, "http://198.51.100.1:2052/"); r.Exit != 28 {
			t.Errorf("%s reached the admin port from the LAN: curl exit %d, want 28 (dropped)", v.NS, r.Exit)
		}
	}
	before := dropCount(t, p, "3799")
	udpEcho(t, bad.NS, "198.51.100.1:3799", 200*time.Millisecond)
	if after := dropCount(t, p, "3799"); after <= before {
		t.Errorf("a datagram to the CoA port from the LAN was not dropped by pp-input (%d → %d)", before, after)
	}
}

// TestBypassIPv6Gateway: the staff console bound to the wildcard
// "0.0.0.0" (which Go's net.Listen makes a dual-stack [::] socket on
// Linux) and the RADIUS DAS bound to "[::]" are kept from visitors over
// IPv6 too: the gateway's global LAN address and its link-local address,
// which a LAN always has. So is everything else on the gateway (port 22
// here stands for ssh and LuCI). Positive controls: a trusted staff
// device on the same LAN reaches the same ports at the same addresses,
// the gateway reaches its console over IPv6 itself, and the visitor still
// gets ICMPv6 echo answers from both addresses, so every "dropped" below
// is pp-input6 at work, not a lab without IPv6. A clean stop leaves no
// pp- chain in ip6tables.
func TestBypassIPv6Gateway(t *testing.T) {
	if _, err := exec.LookPath("radclient"); err != nil {
		t.Fatal("radclient not installed (apt-get install -y freeradius-utils)")
	}
	p := newPark(t, 2)
	bad, staff := p.Visitors[0], p.Visitors[1]
	const secret = "lab-das-secret"
	cfg := p.config(map[string]string{
		"parkportal.admin_listen": "0.0.0.0:2052",
		"parkportal.trusted_mac":  "list " + staff.MAC,
		"radius.das_listen":       "[::]:3799",
		"radius.das_client":       "list " + bad.IP6.String(),
		"radius.das_secret":       secret,
	})
	// Both visitors are DAS clients: without the firewall the DAS would
	// answer either, so only pp-input6 can silence the visitor. config
	// takes one value per option, so the second list entry goes in here.
	first := uciLine("das_client", "list "+bad.IP6.String())
	text, err := os.ReadFile(cfg)
	must(t, err)
	if !strings.Contains(string(text), first) {
		t.Fatalf("config has no %q line:\n%s", first, text)
	}
	text = []byte(strings.Replace(string(text), first, first+"\n"+uciLine("das_client", "list "+staff.IP6.String()), 1))
	must(t, os.WriteFile(cfg, text, 0o600))
	d := p.start(cfg)
	gwLL := linkLocal(t, p.Gateway, lab.LANIface)
	for _, v := range []lab.Visitor{bad, staff} {
		linkLocal(t, v.NS, "eth0") // usable (not tentative) before we send from it
	}
	hosts := []struct{ name, url, ping string }{
		{"global " + lab.GatewayLAN6.String(), "[" + lab.GatewayLAN6.String() + "]", lab.GatewayLAN6.String()},
		{"link-local " + gwLL, "[" + gwLL + "%25eth0]", gwLL + "%eth0"},
	}
	// The gateway reaches its own console over IPv6: the wildcard bind
	// really is dual-stack (lo is not lan_iface, so our chains stay out).
	if r := lab.Curl(p.Gateway, 3*time.Second, "http://["+lab.GatewayLAN6.String()+"]:2052/"); r.Code == 0 {
		t.Fatalf("control: the gateway cannot reach its own console over IPv6 (curl exit %d): the listener is not dual-stack", r.Exit)
	}
	for _, h := range hosts {
		if !ping(bad.NS, h.ping) {
			t.Errorf("control: the visitor gets no ICMPv6 echo reply from the gateway's %s address (lab IPv6 broken, or ICMPv6 blocked)", h.name)
		}
		admin := "http://" + h.url + ":2052/"
		if r := lab.Curl(staff.NS, 3*time.Second, admin, "-g"); r.Code == 0 {
			t.Errorf("control: the trusted staff device cannot reach the console at %s (curl exit %d)", admin, r.Exit)
		}
		if r := lab.Curl(bad.NS, 2*time.Second, admin, "-g"); r.Exit != 28 {
			t.Errorf("visitor reached the admin console over IPv6 at %s: HTTP %d, curl exit %d, want 28 (dropped)", admin, r.Code, r.Exit)
		}
		ssh := "http://" + h.url + ":22/"
		if r := lab.Curl(staff.NS, 2*time.Second, ssh, "-g"); r.Exit != 7 {
			t.Errorf("control: trusted staff device to %s: curl exit %d, want 7 (reached, refused)", ssh, r.Exit)
		}
		if r := lab.Curl(bad.NS, 2*time.Second, ssh, "-g"); r.Exit != 28 {
			t.Errorf("visitor to %s over IPv6: curl exit %d, want 28 (dropped)", ssh, r.Exit)
		}
	}
	// The DAS over IPv6: the staff device gets its Disconnect-NAK, the
	// visitor (just as listed as a client) gets no answer at all.
	das := "[" + lab.GatewayLAN6.String() + "]:3799"
	if out := radclientFrom(staff.NS, das, secret); !strings.Contains(out, "Disconnect-NAK") {
		t.Errorf("control: the trusted staff device got no answer from the DAS at %s:\n%s", das, out)
	}
	if out := radclientFrom(bad.NS, das, secret); strings.Contains(out, "Received") {
		t.Errorf("a visitor reached the RADIUS DAS over IPv6 at %s:\n%s", das, out)
	}

	gate := p.gateView()
	if !strings.Contains(gate, "pp-input6") {
		t.Errorf("while running, the gate has no pp-input6:\n%s", gate)
	}
	// A stop keeps the IPv6 chains with the rest of the gate: the console
	// stays closed to visitors over IPv6 while the daemon is away.
	d.stop(t, syscall.SIGTERM)
	if got := p.gateView(); got != gate {
		t.Errorf("a clean stop changed the gate:\n%s\nwant:\n%s", got, gate)
	}
	for _, h := range hosts {
		ssh := "http://" + h.url + ":22/"
		if r := lab.Curl(bad.NS, 2*time.Second, ssh, "-g"); r.Exit != 28 {
			t.Errorf("with the daemon stopped, a visitor to %s over IPv6: curl exit %d, want 28 (dropped)", ssh, r.Exit)
		}
	}
}

// linkLocal returns the link-local address of dev in namespace ns once
// duplicate address detection has finished with it (bounded: 10 s).
func linkLocal(t *testing.T, ns, dev string) string {
	t.Helper()
	for i := 0; i < 100; i++ {
		out, err := lab.Cmd(ns, "ip", "-6", "-o", "addr", "show", "dev", dev, "scope", "link").Output()
		if err != nil {
			t.Fatalf("ip -6 addr show dev %s in %s: %v", dev, ns, err)
		}
		if f := strings.Fields(string(out)); len(f) > 3 && f[2] == "inet6" && !strings.Contains(string(out), "tentative") {
			addr, _, _ := strings.Cut(f[3], "/")
			return addr
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s in %s has no usable link-local address after 10 s", dev, ns)
	return ""
}

// radclientFrom sends one Disconnect-Request for a session nobody has
// from namespace ns to the DAS at addr and returns radclient's output:
// a Disconnect-NAK means the DAS heard it.
func radclientFrom(ns, addr, secret string) string {
	cmd := lab.Cmd(ns, "radclient", "-x", "-r", "1", "-t", "2", addr, "disconnect", secret)
	cmd.Stdin = strings.NewReader("Acct-Session-Id = \"no-such-session\"\nMessage-Authenticator = 0x00\n")
	out, _ := cmd.CombinedOutput() // no answer is a non-zero exit; the output says which
	return string(out)
}

// dropCount reads the packet counter of pp-input's drop rule for a UDP
// destination port, from whichever backend holds the gate.
func dropCount(t *testing.T, p *testPark, port string) int {
	t.Helper()
	if out, err := p.gw("nft", "list", "chain", "inet", "parkportal", "pp-input"); err == nil {
		m := regexp.MustCompile(`udp dport ` + port + ` counter packets (\d+) bytes \d+ drop`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no counted drop for udp %s in pp-input:\n%s", port, out)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	out, err := p.gw("iptables", "-L", "pp-input", "-v", "-x", "-n")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "DROP") && strings.Contains(line, "udp dpt:"+port) {
			n, _ := strconv.Atoi(strings.Fields(line)[0])
			return n
		}
	}
	t.Fatalf("no DROP rule for udp %s in pp-input:\n%s", port, out)
	return 0
}

// TestDNSTunnellingBudget: before login, DNS to the gateway is rate
// limited per device (10/s, burst 30), so a tunnel through the resolver
// gets a trickle; after login the limit is gone.
func TestDNSTunnellingBudget(t *testing.T) {
	p := newPark(t, 1)
	p.start(p.config(nil))
	v := p.Visitors[0]
	// A stand-in resolver on the gateway counts what arrives.
	var pc net.PacketConn
	inNS(t, p.Gateway, func() {
		var err error
		pc, err = net.ListenPacket("udp", "198.51.100.1:53")
		if err != nil {
			t.Fatal(err)
		}
	})
	defer pc.Close()
	blast := func() {
		var c net.Conn
		inNS(t, v.NS, func() {
			var err error
			c, err = net.Dial("udp", "198.51.100.1:53")
			if err != nil {
				t.Fatal(err)
			}
		})
		defer c.Close()
		for i := 0; i < 300; i++ { // 300 "queries" in about half a second
			c.Write([]byte(fmt.Sprintf("tunnel-chunk-%03d-%s", i, strings.Repeat("x", 200))))
			time.Sleep(time.Millisecond)
		}
	}
	// count drains the socket while blast runs, so nothing is lost to a
	// full receive buffer.
	count := func(blast func()) int {
		got := make(chan int)
		go func() {
			n := 0
			buf := make([]byte, 512)
			for {
				pc.SetReadDeadline(time.Now().Add(time.Second))
				if _, _, err := pc.ReadFrom(buf); err != nil {
					got <- n
					return
				}
				n++
			}
		}()
		blast()
		return <-got
	}
	captive := count(blast)
	if captive > 60 {
		t.Errorf("before login, %d of 300 rapid DNS datagrams reached the resolver; want the 10/s, burst 30 budget", captive)
	}
	if captive == 0 {
		t.Error("before login, no DNS reached the gateway at all: visitors could not resolve the portal")
	}
	p.login(v, "33123456")
	online := count(blast)
	if online < 250 {
		t.Errorf("after login, only %d of 300 DNS datagrams arrived; want no limit", online)
	}
	t.Logf("DNS datagrams delivered of 300 sent at once: %d before login, %d after", captive, online)
}

var macRE = regexp.MustCompile(`link/ether ([0-9a-f:]+)`)

// TestSpoofedMACGetsNothing: a device that copies a logged-in visitor's
// MAC but keeps its own address is not let out, and loading the portal
// does not move the session to it while the visitor is there.
func TestSpoofedMACGetsNothing(t *testing.T) {
	p := newPark(t, 2)
	p.start(p.config(nil))
	v1, v2 := p.Visitors[0], p.Visitors[1]
	p.login(v1, "33123456")
	must(t, lab.Cmd(v2.NS, "ip", "link", "set", "eth0", "address", v1.MAC).Run())
	out, _ := lab.Cmd(v2.NS, "ip", "link", "show", "eth0").Output()
	if m := macRE.FindSubmatch(out); m == nil || string(m[1]) != v1.MAC {
		t.Fatalf("could not spoof the MAC: %s", out)
	}
	if r := lab.Curl(v2.NS, 3*time.Second, portalURL); strings.Contains(r.Body, `id="connected"`) {
		t.Error("the portal showed the spoofer the victim's session")
	}
	r := lab.Curl(v2.NS, 2*time.Second, "http://"+lab.InternetIP.String()+"/generate_204")
	if r.Code != 302 {
		t.Errorf("MAC spoofer with its own IP: got %d (curl exit %d), want the captive redirect", r.Code, r.Exit)
	}
}

// TestTrustedMAC: a staff device listed as trusted_mac is never captive
// and may reach the gateway itself; visitors next to it stay captive.
func TestTrustedMAC(t *testing.T) {
	p := newPark(t, 2)
	visitor, staff := p.Visitors[0], p.Visitors[1]
	p.start(p.config(map[string]string{"parkportal.trusted_mac": "list " + staff.MAC}))
	if !online(staff) {
		t.Error("the trusted staff device is captive")
	}
	// Port 22 on the gateway: nothing listens, so a trusted device gets a
	// refusal (7) where a visitor's packets are dropped (28).
	if r := lab.Curl(staff.NS, 2*time.Second, "http://198.51.100.1:22/"); r.Exit != 7 {
		t.Errorf("trusted device to the gateway's port 22: curl exit %d, want 7 (reached, refused)", r.Exit)
	}
	if online(visitor) {
		t.Error("a visitor next to the trusted device got out")
	}
}
