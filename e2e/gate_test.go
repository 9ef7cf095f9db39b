package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/lab"
	"github.com/vishvananda/netns"
)

// e2eBackend is the firewall backend the daemon runs on in these tests:
// PARKPORTAL_E2E_BACKEND (nftables or iptables), or the daemon's own
// choice (nftables on this kernel). Tests of the gate itself run on both.
var e2eBackend = os.Getenv("PARKPORTAL_E2E_BACKEND")

var backends = []string{"nftables", "iptables"}

var (
	nftPairRE = regexp.MustCompile(`(\d+\.\d+\.\d+\.\d+) \. ([0-9a-f:]{17})`)
	ipsetRE   = regexp.MustCompile(`(?m)^(\d+\.\d+\.\d+\.\d+),([0-9A-Fa-f:]{17})`)
)

// allowlist returns the gate's allowlist as sorted "ip mac" lines (MAC in
// lower case), whichever backend holds it.
func (p *testPark) allowlist() ([]string, error) {
	var out []string
	if s, err := p.gw("nft", "list", "set", "inet", "parkportal", "allow4"); err == nil {
		for _, m := range nftPairRE.FindAllStringSubmatch(s, -1) {
			out = append(out, m[1]+" "+m[2])
		}
	} else if s, err := p.gw("ipset", "list", "pp-allow"); err == nil {
		for _, m := range ipsetRE.FindAllStringSubmatch(s, -1) {
			out = append(out, m[1]+" "+strings.ToLower(m[2]))
		}
	} else {
		return nil, fmt.Errorf("neither an nftables nor an ipset allowlist in the gateway: %s", s)
	}
	slices.Sort(out)
	return out, nil
}

var countersRE = regexp.MustCompile(`counter packets \d+ bytes \d+|\[\d+:\d+\]`)

// gateView is the kernel's own rendering of our gate, counters and
// allowlist elements left out: "nft list table inet parkportal", or the
// pp- lines of iptables-save and ip6tables-save. Empty when there is none.
func (p *testPark) gateView() string {
	var b strings.Builder
	if s, err := p.gw("nft", "list", "table", "inet", "parkportal"); err == nil {
		for _, l := range strings.Split(s, "\n") {
			if !strings.Contains(l, "elements =") && !strings.HasPrefix(strings.TrimSpace(l), "counter packets") &&
				!strings.HasPrefix(strings.TrimSpace(l), "198.51.100.") {
				b.WriteString(countersRE.ReplaceAllString(l, "") + "\n")
			}
		}
	}
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		s, _ := p.gw(tool)
		table := ""
		// Our jumps from the built-in chains are listed sorted: each
		// matches its own direction (-i lan0 into pp-forward, -o lan0
		// into pp-count, which only counts), so their order among
		// themselves is not part of the gate, and a repair that puts
		// back one jump before the other may leave them either way.
		var jumps []string
		flush := func() {
			slices.Sort(jumps)
			for _, j := range jumps {
				b.WriteString(j)
			}
			jumps = jumps[:0]
		}
		for _, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(l, "*") {
				flush()
				table = l
			}
			if strings.Contains(l, "pp-") && !strings.HasPrefix(l, "#") {
				line := tool + " " + table + " " + countersRE.ReplaceAllString(l, "") + "\n"
				if f := strings.Fields(l); len(f) > 1 && f[0] == "-A" && !strings.HasPrefix(f[1], "pp-") {
					jumps = append(jumps, line)
					continue
				}
				b.WriteString(line)
			}
		}
		flush()
	}
	return b.String()
}

// waitGate waits (bounded) until the kernel's gate reads as want again and
// returns how long that took, or fails the test.
func (p *testPark) waitGate(t *testing.T, what, want string, d *daemon) time.Duration {
	t.Helper()
	start := time.Now()
	for i := 0; i < 100; i++ { // bounded: 100 × 50 ms
		if p.gateView() == want {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: the gate was not repaired within 5 s; it reads:\n%s\nwant:\n%s\ndaemon:\n%s", what, p.gateView(), want, d.output())
	return 0
}

// leakCounter counts, on the internet host, every packet that arrives
// from src: a captive visitor's packets must never get there.
type leakCounter struct {
	p   *testPark
	src string
}

func newLeakCounter(t *testing.T, p *testPark, src string) *leakCounter {
	t.Helper()
	for _, c := range [][]string{
		{"nft", "add", "table", "inet", "leak"},
		{"nft", "add", "chain", "inet", "leak", "pre", "{ type filter hook prerouting priority -300; }"},
		{"nft", "add", "rule", "inet", "leak", "pre", "ip", "saddr", src, "counter"},
	} {
		if out, err := lab.Cmd(p.Internet, c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", c, err, out)
		}
	}
	return &leakCounter{p: p, src: src}
}

var packetsRE = regexp.MustCompile(`counter packets (\d+)`)

func (l *leakCounter) packets(t *testing.T) int {
	t.Helper()
	out, err := lab.Cmd(l.p.Internet, "nft", "list", "chain", "inet", "leak", "pre").CombinedOutput()
	if err != nil {
		t.Fatalf("reading the leak counter: %v: %s", err, out)
	}
	m := packetsRE.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no counter in:\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// captiveTraffic makes ns's device keep trying to get out until stop: a
// UDP datagram to the internet host every 2 ms, and every 10 ms a TCP
// connection attempt to its ports 443, 80 (which the portal redirect
// takes) and 22. stop returns how many packets it tried to send.
func captiveTraffic(t *testing.T, ns string) (stop func() int) {
	t.Helper()
	done := make(chan struct{})
	var sent atomic.Int64
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// The thread enters ns and is put back before it is unlocked. (A
		// thread left locked dies with its goroutine, except the process's
		// main thread, which would stay in ns: the park's clean-up, which
		// kills whatever is in its namespaces, would then kill the tests.)
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer func() {
			if netns.Set(orig) == nil {
				runtime.UnlockOSThread()
			}
			orig.Close()
		}()
		target, err := netns.GetFromName(ns)
		if err == nil {
			err = netns.Set(target)
			target.Close()
		}
		var udp net.Conn
		if err == nil {
			udp, err = net.Dial("udp", net.JoinHostPort(lab.InternetIP.String(), "9999"))
		}
		errc <- err
		if err != nil {
			return
		}
		defer udp.Close()
		dialer := net.Dialer{Timeout: 20 * time.Millisecond}
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			udp.Write([]byte("let me out"))
			sent.Add(1)
			if i%5 == 0 {
				for _, port := range []string{"443", "80", "22"} {
					if c, err := dialer.Dial("tcp", net.JoinHostPort(lab.InternetIP.String(), port)); err == nil {
						c.Close()
					}
					sent.Add(1)
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	if err := <-errc; err != nil {
		t.Fatalf("starting captive traffic in %s: %v", ns, err)
	}
	return func() int {
		close(done)
		wg.Wait()
		return int(sent.Load())
	}
}

// TestFailClosed, on both backends: while a captive visitor keeps trying
// to get out, the host's tables are flushed (iptables -F, -t nat -F,
// -t mangle -F, -t security -F, -X), our own rules are emptied, fw4 reloads its table,
// the walled garden is edited (our rules rebuilt), the daemon is
// stopped and restarted, and killed with SIGKILL and restarted. Not one
// of the captive visitor's packets may reach the internet host, the
// logged-in visitor stays online, and each repair comes from the kernel's
// notification within a second, not from the periodic resync (an hour
// here).
func TestFailClosed(t *testing.T) {
	for _, be := range backends {
		t.Run(be, func(t *testing.T) {
			p := newPark(t, 2)
			cfg := p.config(map[string]string{"parkportal.firewall_backend": be, "parkportal.resync_interval": "1h"})
			d := p.start(cfg)
			v1, v2 := p.Visitors[0], p.Visitors[1]
			p.login(v1, "33123456")
			want := p.gateView()
			if want == "" {
				t.Fatal("no gate in the kernel")
			}
			leaks := newLeakCounter(t, p, v2.IP.String())
			stop := captiveTraffic(t, v2.NS)
			defer func() {
				if stop != nil {
					stop()
				}
			}()

			events := []struct {
				name string
				cmds [][]string
			}{
				{"iptables -F", [][]string{{"iptables", "-F"}}},
				{"iptables -t nat -F", [][]string{{"iptables", "-t", "nat", "-F"}}},
				{"iptables -t mangle -F", [][]string{{"iptables", "-t", "mangle", "-F"}}},
				{"iptables -t security -F", [][]string{{"iptables", "-t", "security", "-F"}}},
				{"iptables -F; iptables -X", [][]string{{"iptables", "-F"}, {"iptables", "-X"}}},
				{"ip6tables -F", [][]string{{"ip6tables", "-F"}}},
				{"fw4 reload", [][]string{
					{"nft", "add", "table", "inet", "fw4"},
					{"nft", "add", "chain", "inet", "fw4", "forward", "{ type filter hook forward priority filter; policy accept; }"},
					{"nft", "flush", "table", "inet", "fw4"},
					{"nft", "delete", "table", "inet", "fw4"},
				}},
			}
			if be == "nftables" {
				events = append(events,
					struct {
						name string
						cmds [][]string
					}{"nft flush chain pp-forward", [][]string{{"nft", "flush", "chain", "inet", "parkportal", "pp-forward"}}},
					struct {
						name string
						cmds [][]string
					}{"nft flush chain forward (base)", [][]string{{"nft", "flush", "chain", "inet", "parkportal", "forward"}}},
					struct {
						name string
						cmds [][]string
					}{"nft flush table parkportal", [][]string{{"nft", "flush", "table", "inet", "parkportal"}}},
				)
			}
			for _, ev := range events {
				for _, c := range ev.cmds {
					if out, err := p.gw(c[0], c[1:]...); err != nil {
						t.Fatalf("%s: %v: %v: %s", ev.name, c, err, out)
					}
				}
				took := p.waitGate(t, ev.name, want, d)
				t.Logf("%s: gate whole again after %v; packets leaked so far: %d", ev.name, took.Round(time.Millisecond), leaks.packets(t))
				if took > 3*time.Second {
					t.Errorf("%s: repaired after %v: not by the kernel's notification (resync_interval is 1h)", ev.name, took)
				}
			}

			// A walled-garden edit rebuilds our rules under traffic.
			out, err := lab.Cmd(p.Gateway, binary, "site", "set", "--config", cfg, "walled_garden=192.0.2.200/32").CombinedOutput()
			if err != nil {
				t.Fatalf("parkportal site set walled_garden: %v: %s", err, out)
			}
			for i := 0; i < 50 && p.gateView() == want; i++ { // bounded: 5 s
				time.Sleep(100 * time.Millisecond)
			}
			if p.gateView() == want {
				t.Fatal("the walled-garden edit did not reach the kernel")
			}
			want = p.gateView()
			t.Logf("walled garden edited: packets leaked so far: %d", leaks.packets(t))

			// A clean stop, then a crash: the gate stays shut and the
			// logged-in visitor online while the daemon is away.
			for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
				if sig == syscall.SIGKILL {
					d.cmd.Process.Kill()
					d.cmd.Wait()
				} else {
					d.stop(t, sig)
				}
				if got := p.gateView(); got != want {
					t.Errorf("after %v the gate reads:\n%s\nwant:\n%s", sig, got, want)
				}
				if !online(v1) {
					t.Errorf("after %v the logged-in visitor is offline", sig)
				}
				time.Sleep(500 * time.Millisecond) // captive traffic meets the gate with no daemon
				d = p.start(cfg)
				t.Logf("%v and restart: packets leaked so far: %d", sig, leaks.packets(t))
			}

			sent := stop()
			stop = nil
			if sent < 200 {
				t.Errorf("the captive visitor sent only %d packets: the test proved little", sent)
			}
			if n := leaks.packets(t); n != 0 {
				t.Errorf("%d of the captive visitor's %d packets reached the internet host", n, sent)
			} else {
				t.Logf("0 of the captive visitor's %d packets reached the internet host", sent)
			}
			if !online(v1) {
				t.Error("the logged-in visitor is offline at the end")
			}
			if online(v2) {
				t.Error("the captive visitor is online at the end")
			}

			// Only 'parkportal cleanup' opens the gate; the counter above
			// would have seen a leak (this proves it counts).
			d.stop(t, syscall.SIGTERM)
			if out, err := lab.Cmd(p.Gateway, binary, "cleanup", "--config", cfg).CombinedOutput(); err != nil {
				t.Fatalf("parkportal cleanup: %v: %s", err, out)
			}
			if got := p.gateView(); got != "" {
				t.Errorf("after parkportal cleanup the kernel still has:\n%s", got)
			}
			if !online(v2) {
				t.Error("after parkportal cleanup the formerly captive visitor still cannot get out")
			}
			if n := leaks.packets(t); n == 0 {
				t.Error("the leak counter saw nothing even with the gate removed")
			}
		})
	}
}

// TestDNSOneSocketFlood, on both backends: a captive visitor tunnelling
// through the gateway's resolver from one UDP socket, which the resolver
// answers (so conntrack calls the flow established), still gets only its
// budget: 10 queries/s after a burst of 30.
func TestDNSOneSocketFlood(t *testing.T) {
	for _, be := range backends {
		t.Run(be, func(t *testing.T) {
			p := newPark(t, 1)
			p.start(p.config(map[string]string{"parkportal.firewall_backend": be}))
			v := p.Visitors[0]
			var pc net.PacketConn
			inNS(t, p.Gateway, func() {
				var err error
				if pc, err = net.ListenPacket("udp", lab.GatewayLAN.String()+":53"); err != nil {
					t.Fatal(err)
				}
			})
			defer pc.Close()
			// The resolver answers every query, as dnsmasq would.
			go func() {
				buf := make([]byte, 512)
				for {
					n, from, err := pc.ReadFrom(buf)
					if err != nil {
						return
					}
					pc.WriteTo(buf[:n], from)
				}
			}()
			var c net.Conn
			inNS(t, v.NS, func() {
				var err error
				if c, err = net.Dial("udp", lab.GatewayLAN.String()+":53"); err != nil {
					t.Fatal(err)
				}
			})
			defer c.Close()
			var answered atomic.Int64
			go func() {
				buf := make([]byte, 512)
				for {
					c.SetReadDeadline(time.Now().Add(3 * time.Second))
					if _, err := c.Read(buf); err != nil {
						return
					}
					answered.Add(1)
				}
			}()
			start := time.Now()
			for i := 0; i < 300; i++ { // 300 queries in about 1.5 s, one socket
				c.Write([]byte(fmt.Sprintf("tunnel-chunk-%03d", i)))
				time.Sleep(5 * time.Millisecond)
			}
			took := time.Since(start)
			time.Sleep(time.Second)
			got := int(answered.Load())
			budget := 30 + int(10*took.Seconds()) + 10 // burst, rate, slack
			t.Logf("%d of 300 queries from one socket answered in %v (budget about %d)", got, took.Round(10*time.Millisecond), budget)
			if got > budget {
				t.Errorf("%d of 300 queries from one socket were answered; want at most about %d (30 + 10/s)", got, budget)
			}
			if got < 20 {
				t.Errorf("only %d queries answered: the budget's burst of 30 should pass", got)
			}
		})
	}
}

// TestBootGate, on both backends: a reboot empties the kernel, and until
// the daemon is back (START=95 on OpenWrt, or never, if its config is
// broken) the LAN would forward as the base firewall says. close-gate,
// which /etc/init.d/parkportal-gate runs before the LAN comes up, shuts
// the gate with no daemon at all. It must leave a gateway that never
// served alone (a fresh install's placeholders must not cut a LAN off),
// let nothing of a device's out once the gate is shut (counted on the
// internet host), leave a gate already there untouched, and hand over to
// the daemon, which lets the visitor in again. With a config file that
// no longer parses it shuts the gate serve last built.
func TestBootGate(t *testing.T) {
	for _, be := range backends {
		t.Run(be, func(t *testing.T) {
			p := newPark(t, 1)
			cfg := p.config(map[string]string{"parkportal.firewall_backend": be})
			v := p.Visitors[0]
			closeGate := func() string {
				t.Helper()
				out, err := lab.Cmd(p.Gateway, binary, "close-gate", "--config", cfg).CombinedOutput()
				if err != nil {
					t.Fatalf("parkportal close-gate: %v: %s", err, out)
				}
				return string(out)
			}

			// Never served here: nothing is closed.
			if out := closeGate(); !strings.Contains(out, "has not served here yet") {
				t.Errorf("close-gate before any serve said %q", out)
			}
			if g := p.gateView(); g != "" {
				t.Fatalf("close-gate before any serve put a gate in the kernel:\n%s", g)
			}
			if !online(v) {
				t.Fatal("without any gate the device cannot get out: the park is broken, the test proves nothing")
			}

			// Serve once, with the visitor logged in, and stop.
			d := p.start(cfg)
			p.login(v, "33123456")
			served := p.gateView()
			d.stop(t, syscall.SIGTERM)

			// The reboot: the kernel loses the gate, the files stay.
			marker := filepath.Join(p.dir, "parkportal.db.gated")
			reboot := func() {
				t.Helper()
				saved, err := os.ReadFile(marker)
				if err != nil {
					t.Fatalf("serve left no marker: %v", err)
				}
				if out, err := lab.Cmd(p.Gateway, binary, "cleanup", "--config", cfg).CombinedOutput(); err != nil {
					t.Fatalf("parkportal cleanup: %v: %s", err, out)
				}
				if _, err := os.Stat(marker); err == nil {
					t.Error("cleanup left the marker: the next boot would shut a gate the operator removed")
				}
				if err := os.WriteFile(marker, saved, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			reboot()
			if !online(v) {
				t.Fatal("with the kernel emptied the device still cannot get out: the leak count below would prove nothing")
			}

			// Boot: close-gate shuts it, and nothing gets out.
			if out := closeGate(); !strings.Contains(out, "gate closed ("+be+")") {
				t.Fatalf("close-gate after a reboot said %q", out)
			}
			closed := p.gateView()
			if closed == "" {
				t.Fatal("close-gate reported a gate the kernel does not have")
			}
			if list, err := p.allowlist(); err != nil || len(list) != 0 {
				t.Errorf("the boot gate's allowlist is %q (%v), want empty", list, err)
			}
			leaks := newLeakCounter(t, p, v.IP.String())
			stop := captiveTraffic(t, v.NS)
			time.Sleep(time.Second)
			sent := stop()
			if online(v) {
				t.Error("behind the boot gate the device reaches the internet")
			}
			if n := leaks.packets(t); n != 0 {
				t.Errorf("%d of the device's %d packets reached the internet host behind the boot gate", n, sent)
			} else {
				t.Logf("0 of the device's %d packets reached the internet host behind the boot gate", sent)
			}

			// A gate already there (a daemon's) is left as it is.
			if out := closeGate(); !strings.Contains(out, "already in the kernel") {
				t.Errorf("a second close-gate said %q", out)
			}
			if g := p.gateView(); g != closed {
				t.Errorf("a second close-gate changed the gate:\n%s\nwas:\n%s", g, closed)
			}

			// The daemon takes over: the stored session is let through
			// again, and the gate is the one it had before the reboot.
			d = p.start(cfg)
			ok := false
			for i := 0; i < 50 && !ok; i++ { // bounded: 10 s
				ok = online(v)
				if !ok {
					time.Sleep(200 * time.Millisecond)
				}
			}
			if !ok {
				t.Error("after the daemon started on the boot gate, the logged-in visitor is still shut out")
			}
			if g := p.gateView(); g != served {
				t.Errorf("the daemon's gate after the boot differs from before it:\n%s\nbefore:\n%s", g, served)
			}
			d.stop(t, syscall.SIGTERM)

			// An edit of the config gone wrong, then a reboot: close-gate
			// shuts the gate serve last built, from the marker.
			reboot()
			good, err := os.ReadFile(cfg)
			if err != nil {
				t.Fatal(err)
			}
			broken := strings.Replace(string(good), "option lan_cidr '198.51.100.0/24'", "option lan_cidr '198.51.100.0/244'", 1)
			if broken == string(good) {
				t.Fatal("no lan_cidr line to break in the lab config")
			}
			if err := os.WriteFile(cfg, []byte(broken), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := lab.Cmd(p.Gateway, binary, "close-gate", "--config", cfg).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "last served with") || !strings.Contains(string(out), "gate closed ("+be+")") {
				t.Errorf("close-gate with a broken config: %v: %s", err, out)
			}
			if g := p.gateView(); g != closed {
				t.Errorf("the gate closed from the marker differs from the one closed from the config:\n%s\nwant:\n%s", g, closed)
			}
			if online(v) {
				t.Error("with a broken config the boot gate let the device out")
			}
			os.WriteFile(cfg, good, 0o600)
		})
	}
}
