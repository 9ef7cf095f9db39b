package fake

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/firewall"
)

func client(n byte, rate uint64) firewall.Client {
	return firewall.Client{
		IP:       netip.AddrFrom4([4]byte{198, 51, 100, n}),
		MAC:      net.HardwareAddr{2, 0, 0, 0, 0, n},
		RateDown: rate, RateUp: rate,
	}
}

// The session tests count repairs and read counters through this fake,
// so it must behave like the kernel gate it stands for.
func TestGate(t *testing.T) {
	g := NewGate()
	a, b, c := client(10, 8e6), client(11, 8e6), client(12, 2e6)
	if err := g.Allow(a); err != nil {
		t.Fatal(err)
	}
	if err := g.Allow(b); err != nil {
		t.Fatal(err)
	}
	g.Traffic(a.IP, 3)
	u, err := g.Usage()
	if err != nil || u[a.IP].Packets != 3 || u[a.IP].Bytes != 300 || u[b.IP].Packets != 0 {
		t.Fatalf("Usage = %v, %v", u, err)
	}
	// want {a, c}: c added, b removed.
	if n, err := g.Sync([]firewall.Client{a, c}); n != 2 || err != nil {
		t.Fatalf("Sync = %d, %v; want 2 repairs", n, err)
	}
	want := []string{"198.51.100.10/02:00:00:00:00:0a 8000000/8000000", "198.51.100.12/02:00:00:00:00:0c 2000000/2000000"}
	if got := g.State(); !slices.Equal(got, want) {
		t.Fatalf("State = %q, want %q", got, want)
	}
	if n, _ := g.Sync([]firewall.Client{a, c}); n != 0 {
		t.Errorf("second Sync repaired %d", n)
	}
	boom := errors.New("netlink: no buffer space")
	g.FailAllow(boom)
	if err := g.Allow(b); !errors.Is(err, boom) || g.Has(b.IP, b.MAC) {
		t.Errorf("failing Allow = %v, has %v", err, g.Has(b.IP, b.MAC))
	}
	g.FailDeny(boom)
	if err := g.Deny(a); !errors.Is(err, boom) || !g.Has(a.IP, a.MAC) {
		t.Errorf("failing Deny = %v", err)
	}
	g.FailDeny(nil)
	if err := g.Deny(a); err != nil || g.Has(a.IP, a.MAC) || g.Len() != 1 {
		t.Errorf("Deny = %v, len %d", err, g.Len())
	}
	g.FailUsage(boom)
	if _, err := g.Usage(); !errors.Is(err, boom) {
		t.Errorf("failing Usage = %v", err)
	}
}

func TestClock(t *testing.T) {
	start := time.Date(2026, 3, 1, 16, 0, 0, 0, time.UTC)
	c := NewClock(start)
	c.Advance(90 * time.Second)
	if got := c.Now(); !got.Equal(start.Add(90 * time.Second)) {
		t.Errorf("after Advance: %v", got)
	}
	c.Set(start)
	if !c.Now().Equal(start) {
		t.Errorf("after Set: %v", c.Now())
	}
}
