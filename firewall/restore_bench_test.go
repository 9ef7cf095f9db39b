package firewall

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
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
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			orig, err := netns.Get()
			if err != nil {
				b.Fatal(err)
			}
			defer orig.Close()
			name := fmt.Sprintf("ppfwb%d", os.Getpid()%100000)
			ns, err := netns.NewNamed(name)
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				netns.Set(orig)
				ns.Close()
				netns.DeleteNamed(name)
			}()
			lan := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "lan0"}, PeerName: "lan0p"}
			if err := netlink.LinkAdd(lan); err != nil {
				b.Fatal(err)
			}
			netlink.LinkSetUp(lan)
			prefix := netip.MustParsePrefix("198.51.0.0/16")
			f, err := New(Config{
				LANIface: "lan0", LANPrefix: prefix, GatewayIP: netip.MustParseAddr("198.51.0.1"),
				PortalPort: 2050, AdminPort: 2052, Shaping: true, IFBName: "pp-ifb0",
			})
			if err != nil {
				b.Fatal(err)
			}
			want := make([]Client, 0, n)
			for i := 0; i < n; i++ {
				off := uint32(2 + i)
				want = append(want, Client{
					IP:       netip.AddrFrom4([4]byte{198, 51, byte(off >> 8), byte(off)}),
					MAC:      net.HardwareAddr{0x02, 0, 0x5e, 0x10, byte(off >> 8), byte(off)},
					RateDown: 8_000_000, RateUp: 8_000_000,
				})
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
