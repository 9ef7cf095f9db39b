package shaper

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netns"
)

// The benchmarks need more than a /24 of installed visitors, so the shaper's
// prefix is 198.51.0.0/16. The installed visitors are kernel state only
// (classes and filters in a private namespace): no packet is ever sent to or
// from them. The one visitor that carries traffic is 198.51.100.11, inside
// the documentation range, like every address on an interface.
const bench16 = "198.51.0.0/16"

var installedCounts = []int{0, 1000, 5000}

// phantom returns the i-th installed visitor (i from 0), below 198.51.100.0.
func phantom(i int) netip.Addr {
	return u32Addr(addrU32(netip.MustParseAddr("198.51.0.1")) + uint32(i))
}

// probe returns the i-th address authorised by the benchmark loop, in
// 198.51.200.0–198.51.239.255, disjoint from the installed ones.
func probe(i int) netip.Addr {
	return u32Addr(addrU32(netip.MustParseAddr("198.51.200.1")) + uint32(i%10_000))
}

func install(b *testing.B, s *Shaper, n int) {
	b.Helper()
	want := make(map[netip.Addr]Rate, n)
	for i := range n {
		want[phantom(i)] = eight
	}
	if _, err := s.Sync(want); err != nil {
		b.Fatalf("installing %d visitors: %v", n, err)
	}
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds())
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// BenchmarkSet measures authorising one more visitor with n visitors
// already installed, two ways: "prepared", the daemon's normal path, where
// the device's classes were made by Prepare when it got its address by
// DHCP (outside the timed section), so Set changes two classes and adds
// two u32 entries; and "new", a device never prepared (static address,
// or a login right after a daemon restart), where Set creates the two
// classes too. The visitor is removed again outside the timed section.
func BenchmarkSet(b *testing.B) {
	for _, mode := range []string{"prepared", "new"} {
		for _, n := range installedCounts {
			b.Run(fmt.Sprintf("%s/installed=%d", mode, n), func(b *testing.B) {
				benchmarkSet(b, n, mode == "prepared")
			})
		}
	}
}

func benchmarkSet(b *testing.B, n int, prepared bool) {
	p := newPark(b, 0)
	s := p.shaper(bench16, 0, 0)
	install(b, s, n)
	var lat []time.Duration
	i := 0
	for b.Loop() {
		ip := probe(i)
		i++
		if prepared {
			b.StopTimer()
			if err := s.Prepare(ip, eight); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		t0 := time.Now()
		err := s.Set(ip, eight)
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.Remove(ip); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportPercentiles(b, lat)
}

// BenchmarkIptablesAppend is the peers' approach for comparison: one
// `iptables -A <chain> -s <ip> -j ACCEPT` per visitor through go-iptables,
// in a scratch chain in the gateway namespace holding n rules already.
func BenchmarkIptablesAppend(b *testing.B) {
	if _, err := exec.LookPath("iptables-restore"); err != nil {
		b.Skip("skipping: iptables not installed (apt-get install -y iptables)")
	}
	const chain = "PPBENCH"
	for _, n := range installedCounts {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			p := newPark(b, 0)
			var rules strings.Builder
			fmt.Fprintf(&rules, "*filter\n:%s - [0:0]\n", chain)
			for i := range n {
				fmt.Fprintf(&rules, "-A %s -s %s/32 -j ACCEPT\n", chain, phantom(i))
			}
			rules.WriteString("COMMIT\n")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			load := exec.CommandContext(ctx, "ip", "netns", "exec", p.gw, "iptables-restore", "--noflush")
			load.Stdin = strings.NewReader(rules.String())
			if out, err := load.CombinedOutput(); err != nil {
				b.Fatalf("loading %d rules: %v\n%s", n, err, out)
			}

			// go-iptables runs the iptables binary, which inherits the
			// namespace of the thread that starts it.
			runtime.LockOSThread()
			orig, err := netns.Get()
			if err != nil {
				runtime.UnlockOSThread()
				b.Fatal(err)
			}
			defer func() {
				if err := netns.Set(orig); err == nil {
					runtime.UnlockOSThread() // else the thread dies with the goroutine
				}
				orig.Close()
			}()
			if err := netns.Set(p.gwNS); err != nil {
				b.Fatal(err)
			}
			ipt, err := iptables.New()
			if err != nil {
				b.Fatal(err)
			}
			var lat []time.Duration
			i := 0
			for b.Loop() {
				rule := []string{"-s", probe(i).String() + "/32", "-j", "ACCEPT"}
				i++
				t0 := time.Now()
				err := ipt.Append("filter", chain, rule...)
				lat = append(lat, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := ipt.Delete("filter", chain, rule...); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			reportPercentiles(b, lat)
		})
	}
}

// BenchmarkThroughputWith5000 measures one shaped visitor's download and
// upload while 5,000 other visitors are installed (so its packets go
// through the two-level hash: third octet, then last octet). Run it with
// -benchtime 1x: one iteration is one 3 s iperf3 run each way.
func BenchmarkThroughputWith5000(b *testing.B) {
	p := newPark(b, 1)
	s := p.shaper(bench16, 0, 0)
	install(b, s, 5000)
	if err := s.Set(p.addrs[0], eight); err != nil {
		b.Fatal(err)
	}
	var down, up []float64
	for b.Loop() {
		down = append(down, p.parallel([]int{0}, true, 3)[0])
		up = append(up, p.parallel([]int{0}, false, 3)[0])
	}
	d, u := mean(down), mean(up)
	b.ReportMetric(d/mbit, "down-Mbit/s")
	b.ReportMetric(u/mbit, "up-Mbit/s")
	if !within(d, 8*mbit, 0.10) || !within(u, 8*mbit, 0.10) {
		b.Errorf("with 5000 installed: down %.2f up %.2f Mbit/s, want 8 ±10%%", d/mbit, u/mbit)
	}
}

// BenchmarkRefreshFilters measures the filter check a resync makes every
// 20th time, with 5,000 visitors installed and nothing to repair: one
// filter dump per tree (it used to add all 10,000 filters again and
// count the kernel's EEXIST answers).
//
//	go test -run '^$' -bench RefreshFilters -benchmem ./firewall/shaper/
func BenchmarkRefreshFilters(b *testing.B) {
	p := newPark(b, 0)
	s := p.shaper(bench16, 0, 0)
	install(b, s, 5000)
	b.ReportAllocs()
	for b.Loop() {
		if n, err := s.RefreshFilters(); err != nil || n != 0 {
			b.Fatalf("refresh: %d repairs, %v; want 0", n, err)
		}
	}
}
