package firewall

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/internal/netnstest"
	"github.com/vishvananda/netlink"
)

// BenchmarkRestore measures what a daemon restart costs the kernel side:
// with N sessions in the store and nothing of ours in the kernel (a
// reboot, or a clean stop), Ensure builds the chains, set and shaping
// tree and Sync loads every client into the allowlist and the shaper.
//
// 5,000 visitors do not fit in a documentation /24, so the LAN here is
// 198.51.0.0/16 on a veth with nothing at its other end in a private network namespace: the
// addresses are only keys in the kernel's tables and never carry a packet.
//
//	go test -run '^$' -bench Restore -benchtime 3x ./firewall/
func BenchmarkRestore(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: builds a network namespace")
	}
	for _, tc := range []struct {
		n      int
		intact bool // the kernel state survived (kill -9): nothing to rebuild
	}{{0, false}, {1000, false}, {5000, false}, {5000, true}} {
		n := tc.n
		kernel := "empty"
		if tc.intact {
			kernel = "intact"
		}
		b.Run(fmt.Sprintf("sessions=%d/kernel=%s", n, kernel), func(b *testing.B) {
			f := benchFirewall(b)
			want := make([]Client, 0, n)
			for i := 0; i < n; i++ {
				want = append(want, benchClient(2+i))
			}
			var took []time.Duration
			if tc.intact {
				if _, err := f.Ensure(); err != nil {
					b.Fatal(err)
				}
				if _, err := f.Sync(want); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if !tc.intact {
					b.StopTimer()
					if err := f.Teardown(); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				start := time.Now()
				if _, err := f.Ensure(); err != nil {
					b.Fatal(err)
				}
				if _, err := f.Sync(want); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
			}
			b.StopTimer()
			f.Teardown()
			sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
			b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "ms/restore-p50")
		})
	}
}

// benchFirewall returns a Firewall with shaping for 198.51.0.0/16 on a
// veth "lan0" in a private network namespace, which the benchmark's
// thread stays in until the namespace is removed at cleanup.
func benchFirewall(b *testing.B) *Firewall {
	b.Helper()
	netnstest.Enter(b, "ppfwb")
	lan := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "lan0"}, PeerName: "lan0p"}
	if err := netlink.LinkAdd(lan); err != nil {
		b.Fatal(err)
	}
	netlink.LinkSetUp(lan)
	f, err := New(Config{
		LANIface: "lan0", LANPrefix: netip.MustParsePrefix("198.51.0.0/16"), GatewayIP: netip.MustParseAddr("198.51.0.1"),
		PortalPort: 2050, AdminPort: 2052, Shaping: true, IFBName: "pp-ifb0",
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Teardown() })
	return f
}

// benchClient is the visitor at offset off in 198.51.0.0/16, at 8 Mbit/s.
func benchClient(off int) Client {
	return Client{
		IP:       netip.AddrFrom4([4]byte{198, 51, byte(off >> 8), byte(off)}),
		MAC:      net.HardwareAddr{0x02, 0, 0x5e, 0x10, byte(off >> 8), byte(off)},
		RateDown: 8_000_000, RateUp: 8_000_000,
	}
}

// BenchmarkAllow measures what issue 3 calls authorising one more
// visitor, all of it: the allowlist entry (one ipset netlink message)
// and both shaping classes, queues and filters, with N visitors already
// installed. "prepared" is the daemon's normal path (the device's DHCP
// lease made its classes, outside the timed section); "new" a device
// that was never prepared. Same namespace set-up as BenchmarkRestore.
//
//	go test -run '^$' -bench Allow -benchtime 200x ./firewall/
func BenchmarkAllow(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: builds a network namespace")
	}
	for _, mode := range []string{"prepared", "new"} {
		for _, n := range []int{0, 1000, 5000} {
			b.Run(fmt.Sprintf("%s/installed=%d", mode, n), func(b *testing.B) {
				f := benchFirewall(b)
				if _, err := f.Ensure(); err != nil {
					b.Fatal(err)
				}
				want := make([]Client, 0, n)
				for i := 0; i < n; i++ {
					want = append(want, benchClient(2+i))
				}
				if _, err := f.Sync(want); err != nil {
					b.Fatal(err)
				}
				var took []time.Duration
				i := 0
				for b.Loop() {
					c := benchClient(0xc800 + i%10_000) // 198.51.200.0 on, apart from the installed
					i++
					if mode == "prepared" {
						b.StopTimer()
						if err := f.Prepare(c.IP, c.RateDown, c.RateUp); err != nil {
							b.Fatal(err)
						}
						b.StartTimer()
					}
					start := time.Now()
					err := f.Allow(c)
					took = append(took, time.Since(start))
					if err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					if err := f.Deny(c); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
				b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
			})
		}
	}
}

// BenchmarkEnsureIntact measures the check every resync makes of a gate
// nothing changed, on each backend, empty allowlist: for iptables the
// chains' listings (iptables -S, a fork each) and the sets' headers; for
// nftables a dump of our table's structure and rules.
//
//	go test -run '^$' -bench EnsureIntact -benchtime 20x ./firewall/
func BenchmarkEnsureIntact(b *testing.B) {
	for _, be := range []string{"nftables", "iptables"} {
		b.Run(be, func(b *testing.B) {
			f := kernelFirewall(b, be)
			if _, err := f.Ensure(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if n, err := f.Ensure(); err != nil || n != 0 {
					b.Fatalf("Ensure on an intact gate = %d repairs, %v", n, err)
				}
			}
		})
	}
}
