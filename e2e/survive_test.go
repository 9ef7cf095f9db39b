package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/lab"
)

// TestExpiryCutsOpenConnections: a session that reaches its timeout is
// removed from the allowlist and its open connections are cut at once
// (conntrack entries deleted), even though nobody loads a page.
//
// What is asserted is the cut itself: the gateway's connection tracking
// forwards the download while the session lasts and holds no forwarded
// entry for it once the session has ended. The download stopping is not
// proof enough: with the pair out of the allowlist its packets are
// dropped and it stalls whether or not the entry was deleted, and a
// stall looks like a cut to curl.
func TestExpiryCutsOpenConnections(t *testing.T) {
	p := newPark(t, 1)
	d := p.start(p.config(map[string]string{"site.session_timeout": "10s"}))
	v := p.Visitors[0]
	p.login(v, "33123456")
	loggedIn := time.Now()
	// A long download: the internet host trickles data for a minute;
	// curl gives up when nothing arrives for 3 s.
	dl := lab.Cmd(v.NS, "curl", "-sS", "-o", "/dev/null", "--max-time", "60", "-y", "3", "-Y", "1",
		"http://"+lab.InternetIP.String()+"/stream")
	if err := dl.Start(); err != nil {
		t.Fatal(err)
	}
	var dlErr error
	done := make(chan struct{})
	go func() { dlErr = dl.Wait(); close(done) }()
	t.Cleanup(func() { dl.Process.Kill(); <-done })

	// While the session lasts, the gateway forwards the download.
	var flows []string
	for i := 0; i < 50 && len(flows) == 0; i++ { // bounded: 50 × 100 ms
		flows = p.forwardedFlows(t, v.IP)
		if len(flows) == 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if len(flows) == 0 {
		t.Fatal("the download never showed up in the gateway's connection tracking")
	}

	// The sweep (every 5 s) ends the session after its 10 s; the line is
	// logged once the pair has left the allowlist and its connections
	// were cut.
	for i := 0; i < 300 && !strings.Contains(d.output(), "reason=session-timeout"); i++ { // bounded: 30 s
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(d.output(), "reason=session-timeout") {
		t.Fatal("the session did not end within 30 s of its 10 s timeout")
	}
	ended := time.Since(loggedIn)
	if flows := p.forwardedFlows(t, v.IP); len(flows) > 0 {
		t.Errorf("the session ended %s after login, but the gateway still tracks its forwarded connections:\n%s",
			ended.Round(100*time.Millisecond), strings.Join(flows, "\n"))
	}

	// And the download stops (curl sees nothing more: the server's
	// packets no longer find the visitor).
	select {
	case <-done:
		err := dlErr
		if err == nil {
			t.Fatal("the download ran to completion: the expired session's connection was not cut")
		}
		var ee *exec.ExitError
		if !asExit(err, &ee) || (ee.ExitCode() != 28 && ee.ExitCode() != 56 && ee.ExitCode() != 18) {
			t.Fatalf("download failed for another reason: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the download still runs 20 s after the session ended")
	}
	t.Logf("10 s session: ended %s after login, download stopped %s after login",
		ended.Round(100*time.Millisecond), time.Since(loggedIn).Round(100*time.Millisecond))
	if online(v) {
		t.Error("after expiry, the visitor still gets out")
	}
	if r := lab.Curl(v.NS, 3*time.Second, portalURL); !strings.Contains(r.Body, `name="phone"`) {
		t.Errorf("after expiry, the portal does not ask for a number again: %d", r.Code)
	}
}

// forwardedFlows returns the gateway's connection-tracking entries of
// TCP flows from ip to the internet host's port 80 that the gateway
// forwards: their reply comes from the internet host. (A visitor's
// packets after its session ended are redirected to the portal and get
// entries whose reply comes from the gateway; those are not forwarded.)
// It reads /proc/net/nf_conntrack in the gateway's namespace, or asks
// the conntrack tool where the kernel has no such file.
func (p *testPark) forwardedFlows(t *testing.T, ip netip.Addr) []string {
	t.Helper()
	out, err := p.gw("cat", "/proc/net/nf_conntrack")
	if err != nil {
		if _, lerr := exec.LookPath("conntrack"); lerr != nil {
			t.Fatalf("cannot read the gateway's connection tracking: %v: %s (and no conntrack tool: apt-get install -y conntrack)", err, out)
		}
		if out, err = p.gw("conntrack", "-L", "-p", "tcp"); err != nil {
			t.Fatalf("conntrack -L: %v: %s", err, out)
		}
	}
	var flows []string
	for _, line := range strings.Split(out, "\n") {
		var src, dst, dport []string
		tcp := false
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "tcp":
				tcp = true
			case "src":
				src = append(src, v)
			case "dst":
				dst = append(dst, v)
			case "dport":
				dport = append(dport, v)
			}
		}
		if tcp && len(src) == 2 && len(dst) == 2 && len(dport) == 2 &&
			src[0] == ip.String() && dst[0] == lab.InternetIP.String() && dport[0] == "80" && src[1] == lab.InternetIP.String() {
			flows = append(flows, line)
		}
	}
	return flows
}

func asExit(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}

// TestDriftRepaired: other tools flush or delete our kernel state; the
// next periodic resync (every 2 s here) repairs it, the logged-in visitor
// is back online without logging in again and the other visitor is
// captive again.
func TestDriftRepaired(t *testing.T) {
	p := newPark(t, 2)
	d := p.start(p.config(map[string]string{"parkportal.resync_interval": "2s"}))
	v1, v2 := p.Visitors[0], p.Visitors[1]
	p.login(v1, "33123456")
	type breakage struct {
		name string
		cmds [][]string
	}
	tcDel := breakage{"tc qdisc del (shaping removed)", [][]string{{"tc", "qdisc", "del", "dev", lab.LANIface, "root"}, {"tc", "qdisc", "del", "dev", lab.LANIface, "ingress"}}}
	breakages := []breakage{
		{"ipset flush", [][]string{{"ipset", "flush", "pp-allow"}}},
		{"iptables -F pp-forward", [][]string{{"iptables", "-F", "pp-forward"}}},
		{"iptables -t nat -F pp-prerouting", [][]string{{"iptables", "-t", "nat", "-F", "pp-prerouting"}}},
		{"jump from FORWARD deleted", [][]string{{"iptables", "-D", "FORWARD", "-i", lab.LANIface, "-j", "pp-forward"}}},
		tcDel,
		{"everything wiped (firewall reload)", [][]string{
			{"iptables", "-F"}, {"iptables", "-t", "nat", "-F"}, {"iptables", "-t", "security", "-F"},
			{"iptables", "-X"}, {"iptables", "-t", "nat", "-X"}, {"iptables", "-t", "security", "-X"},
			{"ipset", "destroy", "pp-allow"},
		}},
	}
	if _, err := p.gw("nft", "list", "table", "inet", "parkportal"); err == nil {
		breakages = []breakage{
			{"nft flush set allow4", [][]string{{"nft", "flush", "set", "inet", "parkportal", "allow4"}}},
			{"nft flush chain pp-forward", [][]string{{"nft", "flush", "chain", "inet", "parkportal", "pp-forward"}}},
			{"nft flush chain pp-prerouting", [][]string{{"nft", "flush", "chain", "inet", "parkportal", "pp-prerouting"}}},
			{"nft flush chain forward (base)", [][]string{{"nft", "flush", "chain", "inet", "parkportal", "forward"}}},
			tcDel,
			{"everything wiped (nft flush ruleset)", [][]string{{"nft", "flush", "ruleset"}}},
		}
	}
	for _, b := range breakages {
		for _, c := range b.cmds {
			out, err := p.gw(c[0], c[1:]...)
			if err != nil && c[0] == "ipset" && strings.Contains(out, "in use") {
				// The daemon saw the flushes and rebuilt its chains, which
				// name the set, before this command ran.
				t.Logf("%s: %v refused: the chains were already repaired", b.name, c)
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v: %v: %s", b.name, c, err, out)
			}
		}
		broke := time.Now()
		repaired := false
		for i := 0; i < 40 && !repaired; i++ { // bounded: 40 × ~150 ms + curl time
			// Repaired means: v1 out, v2 redirected (nat chain) and v2's
			// HTTPS reset (filter chain): every piece is back.
			repaired = online(v1) && shaped(p, v1) &&
				lab.Curl(v2.NS, 2*time.Second, "http://"+lab.InternetIP.String()+"/generate_204").Code == 302 &&
				lab.Curl(v2.NS, 2*time.Second, "https://"+lab.InternetIP.String()+"/", "-k").Exit == 7
			if !repaired {
				time.Sleep(150 * time.Millisecond)
			}
		}
		if !repaired {
			t.Errorf("%s: not repaired within one resync", b.name)
			continue
		}
		t.Logf("%s: repaired after %s", b.name, time.Since(broke).Round(10*time.Millisecond))
	}
	if !strings.Contains(d.output(), "repaired") && !strings.Contains(d.output(), "restored missing") {
		t.Error("no repair was logged")
	}
}

// TestKill9DuringLoginBurst: 200 devices log in, 8 at a time; the daemon
// is killed with SIGKILL in the middle. After a restart every device that
// was told "connected" is online, and no device has two active sessions.
func TestKill9DuringLoginBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("burst of 200 logins")
	}
	p := newPark(t, 1)
	cfg := p.config(nil)
	d := p.start(cfg)
	devs, err := lab.AddCrowd(p.Visitors[0], 30, 200)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		acked = map[string]lab.Device{}
		wg    sync.WaitGroup
		work  = make(chan int)
	)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				dev := devs[i]
				phone := fmt.Sprintf("33%06d", 100000+i)
				if _, err := lab.Login(dev.NS, dev.CurlArgs(), portalURL, p.outbox(), phone); err == nil {
					mu.Lock()
					acked[dev.MAC] = dev
					mu.Unlock()
				}
			}
		}()
	}
	killed := false
	for i := range devs {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if !killed && n >= 80 {
			d.cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
		work <- i
	}
	close(work)
	wg.Wait()
	if !killed {
		t.Fatalf("only %d logins were acknowledged; the kill never happened", len(acked))
	}
	d.cmd.Wait()
	t.Logf("%d logins acknowledged before SIGKILL", len(acked))

	start := time.Now()
	d = p.start(cfg)
	t.Logf("restart to portal answering: %s", time.Since(start).Round(time.Millisecond))
	offline := 0
	for _, dev := range acked {
		args := append(dev.CurlArgs(), "-H", "Host: connectivitycheck.gstatic.com")
		if r := lab.Curl(dev.NS, 2*time.Second, "http://"+lab.InternetIP.String()+"/generate_204", args...); r.Code != 204 {
			offline++
			if offline <= 5 {
				t.Errorf("device %s %s was told connected but is offline after restart (got %d)", dev.MAC, dev.IP, r.Code)
			}
		}
	}
	if offline > 5 {
		t.Errorf("... %d acknowledged devices offline in all", offline)
	}

	// No duplicates: stop (keeping the kernel state) and read the store.
	d.stop(t, syscall.SIGTERM)
	out, err := exec.Command(binary, "db", "export", "--format", "json", "--config", cfg).Output()
	if err != nil {
		t.Fatalf("db export: %v", err)
	}
	activeByMAC := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var s struct{ MAC, State string }
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		if s.State == "active" {
			activeByMAC[s.MAC]++
		}
	}
	for mac, n := range activeByMAC {
		if n > 1 {
			t.Errorf("device %s has %d active sessions", mac, n)
		}
	}
	for mac := range acked {
		if activeByMAC[mac] != 1 {
			t.Errorf("acknowledged device %s has %d active sessions in the store", mac, activeByMAC[mac])
		}
	}
}

// shaped reports whether visitor v has its download class on the LAN
// (class 1:<2+last octet> in hex, see firewall/shaper/ids.go).
func shaped(p *testPark, v lab.Visitor) bool {
	out, err := p.gw("tc", "class", "show", "dev", lab.LANIface)
	if err != nil {
		return false
	}
	a := v.IP.As4()
	return strings.Contains(out, fmt.Sprintf("class htb 1:%x ", 2+int(a[3])))
}
