package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
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
func TestExpiryCutsOpenConnections(t *testing.T) {
	p := newPark(t, 1)
	p.start(p.config(map[string]string{"site.session_timeout": "10s"}))
	v := p.Visitors[0]
	p.login(v, "33123456")
	loggedIn := time.Now()
	// A long download: the internet host trickles data for a minute;
	// curl gives up when nothing arrives for 3 s.
	dl := lab.Cmd(v.NS, "curl", "-sS", "-o", "/dev/null", "--max-time", "60", "-y", "3", "-Y", "1",
		"http://"+lab.InternetIP.String()+"/stream")
	start := time.Now()
	err := dl.Run()
	took := time.Since(start)
	if err == nil {
		t.Fatalf("the download ran to completion (%s): the expired session's connection was not cut", took)
	}
	var ee *exec.ExitError
	if !asExit(err, &ee) || (ee.ExitCode() != 28 && ee.ExitCode() != 56 && ee.ExitCode() != 18) {
		t.Fatalf("download failed for another reason: %v", err)
	}
	cut := time.Since(loggedIn)
	// 10 s session + up to 5 s sweep + 3 s of curl's patience, with slack.
	if cut > 30*time.Second {
		t.Errorf("connection cut %s after login; want soon after the 10 s timeout", cut)
	}
	t.Logf("10 s session: download stopped %s after login", cut.Round(100*time.Millisecond))
	if online(v) {
		t.Error("after expiry, the visitor still gets out")
	}
	if r := lab.Curl(v.NS, 3*time.Second, portalURL); !strings.Contains(r.Body, `name="phone"`) {
		t.Errorf("after expiry, the portal does not ask for a number again: %d", r.Code)
	}
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
	breakages := []struct {
		name string
		cmds [][]string
	}{
		{"ipset flush", [][]string{{"ipset", "flush", "pp-allow"}}},
		{"iptables -F pp-forward", [][]string{{"iptables", "-F", "pp-forward"}}},
		{"iptables -t nat -F pp-prerouting", [][]string{{"iptables", "-t", "nat", "-F", "pp-prerouting"}}},
		{"jump from FORWARD deleted", [][]string{{"iptables", "-D", "FORWARD", "-i", lab.LANIface, "-j", "pp-forward"}}},
		{"tc qdisc del (shaping removed)", [][]string{{"tc", "qdisc", "del", "dev", lab.LANIface, "root"}, {"tc", "qdisc", "del", "dev", lab.LANIface, "ingress"}}},
		{"everything wiped (firewall reload)", [][]string{
			{"iptables", "-F"}, {"iptables", "-t", "nat", "-F"}, {"iptables", "-X"}, {"iptables", "-t", "nat", "-X"},
			{"ipset", "destroy", "pp-allow"},
		}},
	}
	for _, b := range breakages {
		for _, c := range b.cmds {
			if out, err := p.gw(c[0], c[1:]...); err != nil {
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
