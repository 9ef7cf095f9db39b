package shaper

import (
	"context"
	"fmt"
	"github.com/parkwifi/parkportal/lab"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// The virtual park used by the root tests and benchmarks:
//
//	visitor ns (eth0 198.51.100.1x) ──veth── vpN ┐
//	                                            bridge "lan" 198.51.100.1 ── gateway ns ── wan 192.0.2.1
//	                                                                                   │ veth
//	                                              internet ns: eth0 192.0.2.2, 203.0.113.10 (iperf3 -s)
//
// The shaper runs on the gateway's "lan" bridge. Only documentation
// addresses carry traffic.

const (
	inetAddr = "203.0.113.10"
	lanIface = "lan"
	ifbName  = "pp-ifb0"
	mbit     = 1_000_000
)

var parkSeq atomic.Int32

type park struct {
	t        testing.TB
	id       string
	gw, inet string
	visitors []string       // namespace per visitor
	addrs    []netip.Addr   // address per visitor
	gwNS     netns.NsHandle // for netlink handles and iptables
	h        *netlink.Handle
	nextPort int // iperf3 servers started so far
}

// needRoot skips tests that build namespaces when they cannot.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces, veths, qdiscs")
	}
	for _, bin := range []string{"ip", "iperf3"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("skipping: %s not installed (apt-get install -y iproute2 iperf3)", bin)
		}
	}
}

func run(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newPark builds the topology with n visitors; everything is removed in
// t.Cleanup, also when the test fails.
func newPark(t testing.TB, n int) *park {
	t.Helper()
	needRoot(t)
	p := &park{t: t, id: fmt.Sprintf("pps%d-%d", os.Getpid(), parkSeq.Add(1))}
	p.gw, p.inet = p.id+"-gw", p.id+"-inet"
	all := []string{p.gw, p.inet}
	for i := range n {
		all = append(all, fmt.Sprintf("%s-v%d", p.id, i+1))
	}
	t.Cleanup(func() {
		if p.h != nil {
			p.h.Close()
		}
		if p.gwNS.IsOpen() {
			p.gwNS.Close()
		}
		for _, ns := range all {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	for _, ns := range all {
		run(t, "ip", "netns", "add", ns)
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "-n", p.gw, "link", "add", lanIface, "type", "bridge")
	run(t, "ip", "-n", p.gw, "addr", "add", "198.51.100.1/24", "dev", lanIface)
	run(t, "ip", "-n", p.gw, "link", "set", lanIface, "up")
	for i := range n {
		ns := all[2+i]
		port := fmt.Sprintf("vp%d", i+1)
		addr := netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i + 1)})
		run(t, "ip", "-n", p.gw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
		run(t, "ip", "-n", p.gw, "link", "set", port, "master", lanIface, "up")
		run(t, "ip", "-n", ns, "addr", "add", addr.String()+"/24", "dev", "eth0")
		run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
		run(t, "ip", "-n", ns, "route", "add", "default", "via", "198.51.100.1")
		p.visitors = append(p.visitors, ns)
		p.addrs = append(p.addrs, addr)
	}
	run(t, "ip", "-n", p.gw, "link", "add", "wan", "type", "veth", "peer", "name", "eth0", "netns", p.inet)
	run(t, "ip", "-n", p.gw, "addr", "add", "192.0.2.1/24", "dev", "wan")
	run(t, "ip", "-n", p.gw, "link", "set", "wan", "up")
	run(t, "ip", "-n", p.gw, "route", "add", "203.0.113.0/24", "via", "192.0.2.2")
	run(t, "ip", "netns", "exec", p.gw, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	run(t, "ip", "-n", p.inet, "addr", "add", "192.0.2.2/24", "dev", "eth0")
	run(t, "ip", "-n", p.inet, "addr", "add", inetAddr+"/24", "dev", "eth0")
	run(t, "ip", "-n", p.inet, "link", "set", "eth0", "up")
	run(t, "ip", "-n", p.inet, "route", "add", "198.51.100.0/24", "via", "192.0.2.1")

	var err error
	if p.gwNS, err = netns.GetFromName(p.gw); err != nil {
		t.Fatalf("opening namespace %s: %v", p.gw, err)
	}
	if p.h, err = netlink.NewHandleAt(p.gwNS); err != nil {
		t.Fatalf("netlink handle in %s: %v", p.gw, err)
	}
	return p
}

// shaper returns a shaper on the gateway's LAN bridge, torn down at cleanup.
func (p *park) shaper(prefix string, down, up uint64) *Shaper {
	p.t.Helper()
	s, err := New(Config{
		NetNS:      p.gwNS,
		LANIface:   lanIface,
		IFBName:    ifbName,
		LANPrefix:  netip.MustParsePrefix(prefix),
		UplinkDown: down,
		UplinkUp:   up,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		p.t.Fatalf("New: %v", err)
	}
	if err := s.Ensure(); err != nil {
		p.t.Fatalf("Ensure: %v", err)
	}
	p.t.Cleanup(func() { _ = s.Teardown() })
	return s
}

// iperfServers starts one iperf3 server per port in the internet namespace
// (a server runs one test at a time) and stops them at cleanup.
func (p *park) iperfServers(n int) []int {
	p.t.Helper()
	ports := make([]int, n)
	for i := range n {
		ports[i] = 5201 + p.nextPort
		p.nextPort++
		stop, err := lab.StartIperfServer(p.inet, "", ports[i])
		if err != nil {
			p.t.Fatal(err)
		}
		p.t.Cleanup(stop)
	}
	return ports
}

type iperfResult = lab.IperfResult

// iperf runs one iperf3 client in visitor i's namespace: download when
// reverse, upload otherwise. The first second (slow start) is omitted.
func (p *park) iperf(i, port int, reverse bool, secs int) (iperfResult, error) {
	return lab.Iperf(p.visitors[i], inetAddr, port, reverse, secs)
}

// parallel runs one client per listed visitor at the same time and returns
// each receiver-side rate in bit/s.
func (p *park) parallel(visitors []int, reverse bool, secs int) []float64 {
	p.t.Helper()
	ports := p.iperfServers(len(visitors))
	type res struct {
		i   int
		bps float64
		err error
	}
	ch := make(chan res, len(visitors))
	for k, v := range visitors {
		go func() {
			r, err := p.iperf(v, ports[k], reverse, secs)
			ch <- res{k, r.End.SumReceived.BitsPerSecond, err}
		}()
	}
	out := make([]float64, len(visitors))
	for range visitors {
		r := <-ch
		if r.err != nil {
			p.t.Fatalf("visitor %d: %v", visitors[r.i], r.err)
		}
		out[r.i] = r.bps
	}
	return out
}

func within(got, want, tol float64) bool {
	return got >= want*(1-tol) && got <= want*(1+tol)
}

func checkRate(t testing.TB, what string, got, want, tol float64) {
	t.Helper()
	t.Logf("%s: %.2f Mbit/s (want %.2f ±%.0f%%)", what, got/mbit, want/mbit, tol*100)
	if !within(got, want, tol) {
		t.Errorf("%s: %.2f Mbit/s, want %.2f ±%.0f%%", what, got/mbit, want/mbit, tol*100)
	}
}

// TestMain removes namespaces left by earlier runs that were killed before
// their cleanups ran (a test timeout panics without running t.Cleanup): a
// namespace named pps<pid>-… whose process no longer exists is garbage.
func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		sweepStaleNamespaces()
	}
	os.Exit(m.Run())
}

func sweepStaleNamespaces() {
	entries, err := os.ReadDir("/var/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		var pid, seq int
		var rest string
		if n, _ := fmt.Sscanf(e.Name(), "pps%d-%d-%s", &pid, &seq, &rest); n < 2 {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // still running
		}
		_ = exec.Command("ip", "netns", "del", e.Name()).Run()
	}
}
