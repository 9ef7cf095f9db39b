package shaper

import (
	"errors"
	"net/netip"
	"testing"
)

func TestMinorMapping(t *testing.T) {
	cases := []struct {
		prefix, ip string
		minor      uint16
		wantErr    bool
	}{
		{"198.51.100.0/24", "198.51.100.1", 3, false},
		{"198.51.100.0/24", "198.51.100.254", 256, false},
		{"198.51.100.0/24", "198.51.100.0", 0, true},   // network
		{"198.51.100.0/24", "198.51.100.255", 0, true}, // broadcast
		{"198.51.100.0/24", "192.0.2.1", 0, true},      // outside
		{"198.51.100.64/30", "198.51.100.65", 3, false},
		{"198.51.100.64/30", "198.51.100.66", 4, false},
		{"198.51.100.64/30", "198.51.100.67", 0, true},
		{"198.51.0.0/16", "198.51.100.10", 100*256 + 10 + 2, false},
		{"198.51.0.0/16", "198.51.255.253", 0xffff, false},
		{"198.51.0.0/16", "198.51.255.254", 0, true}, // minor would not fit
		{"198.51.96.0/20", "198.51.100.10", 4*256 + 10 + 2, false},
	}
	for _, c := range cases {
		l, err := newLayout(netip.MustParsePrefix(c.prefix))
		if err != nil {
			t.Fatalf("newLayout(%s): %v", c.prefix, err)
		}
		ip := netip.MustParseAddr(c.ip)
		m, err := l.minor(ip)
		if c.wantErr {
			if !errors.Is(err, ErrNotVisitor) {
				t.Errorf("minor(%s in %s) = %d, %v; want ErrNotVisitor", c.ip, c.prefix, m, err)
			}
			continue
		}
		if err != nil || m != c.minor {
			t.Errorf("minor(%s in %s) = %d, %v; want %d", c.ip, c.prefix, m, err, c.minor)
			continue
		}
		if back, ok := l.addrOfMinor(m); !ok || back != ip {
			t.Errorf("addrOfMinor(%d) in %s = %s, %v; want %s", m, c.prefix, back, ok, ip)
		}
	}
}

func TestMinorRoundTripAndReserved(t *testing.T) {
	for _, p := range []string{"198.51.0.0/16", "198.51.100.0/22", "198.51.100.0/24", "198.51.100.128/25", "198.51.100.4/30"} {
		l, err := newLayout(netip.MustParsePrefix(p))
		if err != nil {
			t.Fatal(err)
		}
		seen := make(map[uint16]bool)
		for off := uint32(0); off < l.size; off++ {
			ip := u32Addr(l.base + off)
			m, err := l.minor(ip)
			if err != nil {
				continue
			}
			if m == siteMinor || m == defaultMinor || m == 0 {
				t.Fatalf("%s: %s got reserved minor %d", p, ip, m)
			}
			if seen[m] {
				t.Fatalf("%s: minor %d used twice", p, m)
			}
			seen[m] = true
			if back, ok := l.addrOfMinor(m); !ok || back != ip {
				t.Fatalf("%s: addrOfMinor(%d) = %s, want %s", p, m, back, ip)
			}
		}
		for _, m := range []uint16{0, siteMinor, defaultMinor} {
			if _, ok := l.addrOfMinor(m); ok {
				t.Errorf("%s: reserved minor %d maps to a visitor", p, m)
			}
		}
	}
}

func TestLayoutRejectsPrefixes(t *testing.T) {
	for _, p := range []string{"198.51.0.0/15", "198.51.100.0/31", "198.51.100.1/32", "2001:db8::/64"} {
		if _, err := newLayout(netip.MustParsePrefix(p)); err == nil {
			t.Errorf("newLayout(%s) accepted", p)
		}
	}
}

func TestFilterHandles(t *testing.T) {
	l24, _ := newLayout(netip.MustParsePrefix("198.51.100.0/24"))
	h, hash := l24.visitorFilter(netip.MustParseAddr("198.51.100.37"))
	if h != 0x10025001 || hash != 0x10025000 {
		t.Errorf("/24 handle %s hash %s; want 100:25:1 in 100:25:", u32Str(h), u32Str(hash))
	}
	if l24.twoLevel() || l24.blocks() != 1 {
		t.Errorf("/24: twoLevel %v blocks %d", l24.twoLevel(), l24.blocks())
	}

	l16, _ := newLayout(netip.MustParsePrefix("198.51.0.0/16"))
	h, hash = l16.visitorFilter(netip.MustParseAddr("198.51.100.37"))
	// block 100 → table 0x100+100 = 0x164, bucket 0x25.
	if h != 0x16425001 || hash != 0x16425000 {
		t.Errorf("/16 handle %s hash %s; want 164:25:1 in 164:25:", u32Str(h), u32Str(hash))
	}
	if !l16.twoLevel() || l16.blocks() != 256 {
		t.Errorf("/16: twoLevel %v blocks %d", l16.twoLevel(), l16.blocks())
	}
	// Every table id stays below the kernel's automatic ids (0x800 and up).
	if blockHTID(l16.blocks()-1) >= rootHTID || thirdHTID >= blockHTID0 {
		t.Errorf("table ids overlap")
	}

	// Distinct visitors never share a filter handle.
	l20, _ := newLayout(netip.MustParsePrefix("198.51.96.0/20"))
	seen := make(map[uint32]netip.Addr)
	for off := uint32(1); off < l20.size-1; off++ {
		ip := u32Addr(l20.base + off)
		h, _ := l20.visitorFilter(ip)
		if prev, ok := seen[h]; ok {
			t.Fatalf("%s and %s share handle %s", prev, ip, u32Str(h))
		}
		seen[h] = ip
	}
}

func TestBurstAndQuantum(t *testing.T) {
	// 8 Mbit/s = 1e6 B/s: 10 ms of traffic plus one MTU.
	if got := burstBytes(1_000_000); got != 11_600 {
		t.Errorf("burstBytes(1e6) = %d, want 11600", got)
	}
	if got := quantum(1_000_000); got != 20_000 {
		t.Errorf("quantum(1e6) = %d, want 20000", got)
	}
	if got := quantum(1_000); got != 2*mtu {
		t.Errorf("quantum(1e3) = %d, want %d", got, 2*mtu)
	}
	if got := quantum(unlimitedRate / 8); got != 60_000 {
		t.Errorf("quantum(10G) = %d, want 60000", got)
	}
}

// TestVisitorRatesMatchTheClass: PlanSync compares dumped classes with
// visitorRates instead of making each class; both must agree on every
// rate, including those under the guaranteed share.
func TestVisitorRatesMatchTheClass(t *testing.T) {
	s := &Shaper{}
	for _, ceil := range []uint64{1_000, guaranteeRate - 1, guaranteeRate, 4e6, 8e6, 8e6 + 7, 1e9} {
		c := s.visitorClass(direction{link: 3}, 10, ceil)
		rate, ceilB := visitorRates(ceil)
		if rate != c.Rate || ceilB != c.Ceil {
			t.Errorf("ceil %d bit/s: visitorRates = %d, %d; the class has %d, %d", ceil, rate, ceilB, c.Rate, c.Ceil)
		}
	}
}
