package shaper

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

const lan24 = "198.51.100.0/24"

var eight = Rate{Down: 8 * mbit, Up: 8 * mbit}

func TestOneVisitorShaped(t *testing.T) {
	p := newPark(t, 1)
	s := p.shaper(lan24, 0, 0)
	if err := s.Set(p.addrs[0], eight); err != nil {
		t.Fatal(err)
	}
	down := p.parallel([]int{0}, true, 3)
	checkRate(t, "download", down[0], 8*mbit, 0.10)
	up := p.parallel([]int{0}, false, 3)
	checkRate(t, "upload", up[0], 8*mbit, 0.10)

	c, err := s.Counters()
	if err != nil {
		t.Fatal(err)
	}
	got := c[p.addrs[0]]
	t.Logf("counters: %+v", got)
	// 3+1 s at 8 Mbit/s is about 4 MB each way.
	if got.BytesDown < 2_000_000 || got.BytesUp < 2_000_000 || got.PacketsDown == 0 || got.PacketsUp == 0 {
		t.Errorf("counters %+v: want megabytes both ways", got)
	}
}

func TestFourVisitorsAtOnce(t *testing.T) {
	p := newPark(t, 4)
	s := p.shaper(lan24, 0, 0)
	for _, a := range p.addrs {
		if err := s.Set(a, eight); err != nil {
			t.Fatal(err)
		}
	}
	for _, reverse := range []bool{true, false} {
		dir := map[bool]string{true: "download", false: "upload"}[reverse]
		rates := p.parallel([]int{0, 1, 2, 3}, reverse, 3)
		// A flow above its rate is the shaper's fault and fails at once.
		// One below it can be the machine's: on a busy two-core VM an
		// iperf3 sender that is not scheduled for a few hundred ms reads
		// 7.0-7.2 Mbit/s while its three neighbours read 7.6 (seen in 2
		// of 5 runs of the whole suite). Such a round is measured once
		// more, longer, and only that one counts.
		if slow := slowFlows(rates, 8*mbit, 0.10); len(slow) > 0 && !anyFast(rates, 8*mbit, 0.10) {
			t.Logf("%s: flows %v below 8 Mbit/s -10%% (%s Mbit/s); measuring again for 5 s", dir, slow, mbits(rates))
			rates = p.parallel([]int{0, 1, 2, 3}, reverse, 5)
		}
		for i, r := range rates {
			checkRate(t, fmt.Sprintf("%s visitor %d", dir, i+1), r, 8*mbit, 0.10)
		}
	}
}

// slowFlows lists the flows (1-based) that measured below want by more
// than tol.
func slowFlows(rates []float64, want, tol float64) []int {
	var slow []int
	for i, r := range rates {
		if r < want*(1-tol) {
			slow = append(slow, i+1)
		}
	}
	return slow
}

// anyFast reports whether a flow measured above want by more than tol.
func anyFast(rates []float64, want, tol float64) bool {
	for _, r := range rates {
		if r > want*(1+tol) {
			return true
		}
	}
	return false
}

func mbits(rates []float64) string {
	s := make([]string, len(rates))
	for i, r := range rates {
		s[i] = fmt.Sprintf("%.2f", r/mbit)
	}
	return strings.Join(s, " ")
}

func TestSiteCapacityShared(t *testing.T) {
	p := newPark(t, 4)
	s := p.shaper(lan24, 0, 0)
	for _, a := range p.addrs {
		if err := s.Set(a, eight); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetUplink(20*mbit, 20*mbit); err != nil {
		t.Fatal(err)
	}
	var sum float64
	for i, r := range p.parallel([]int{0, 1, 2, 3}, true, 3) {
		checkRate(t, fmt.Sprintf("visitor %d under a 20 Mbit/s site", i+1), r, 5*mbit, 0.20)
		sum += r
	}
	t.Logf("sum %.2f Mbit/s", sum/mbit)
}

func TestLiveRateChange(t *testing.T) {
	p := newPark(t, 1)
	s := p.shaper(lan24, 0, 0)
	ip := p.addrs[0]
	if err := s.Set(ip, eight); err != nil {
		t.Fatal(err)
	}
	ports := p.iperfServers(1)
	type out struct {
		r   iperfResult
		err error
	}
	done := make(chan out, 1)
	go func() {
		r, err := p.iperf(0, ports[0], true, 7)
		done <- out{r, err}
	}()
	// Change the rate while the transfer runs (iperf3 omits its first
	// second, so this lands around interval 3).
	time.Sleep(3500 * time.Millisecond)
	if err := s.Set(ip, Rate{Down: 2 * mbit, Up: 2 * mbit}); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	var before, after []float64
	for _, iv := range res.r.Intervals {
		s := iv.Sum
		t.Logf("interval %.0f-%.0f s omitted=%v: %.2f Mbit/s", s.Start, s.End, s.Omitted, s.BitsPerSecond/mbit)
		if s.Omitted {
			continue
		}
		switch {
		case s.End <= 2.01:
			before = append(before, s.BitsPerSecond)
		case s.Start >= 4.99:
			after = append(after, s.BitsPerSecond)
		}
	}
	if len(before) == 0 || len(after) == 0 {
		t.Fatalf("not enough intervals: before %v after %v", before, after)
	}
	checkRate(t, "before the change", mean(before), 8*mbit, 0.10)
	checkRate(t, "after the change", mean(after), 2*mbit, 0.15)
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func TestSyncRepairsAfterQdiscDelete(t *testing.T) {
	p := newPark(t, 2)
	s := p.shaper(lan24, 0, 0)
	want := map[netip.Addr]Rate{p.addrs[0]: eight, p.addrs[1]: eight}
	n, err := s.Sync(want)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first sync: %d repairs", n)
	if n, err = s.Sync(want); err != nil || n != 0 {
		t.Fatalf("sync of an intact kernel: %d repairs, %v; want 0", n, err)
	}

	// What an operator's `tc qdisc del dev lan root` does.
	lan, err := p.h.LinkByName(lanIface)
	if err != nil {
		t.Fatal(err)
	}
	root := netlink.NewHtb(netlink.QdiscAttrs{LinkIndex: lan.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT})
	if err := p.h.QdiscDel(root); err != nil {
		t.Fatalf("deleting root qdisc: %v", err)
	}
	unshaped := p.parallel([]int{0}, true, 2)
	t.Logf("download without the qdisc: %.1f Mbit/s", unshaped[0]/mbit)

	// Drop the second visitor from the wanted set at the same time.
	delete(want, p.addrs[1])
	n, err = s.Sync(want)
	if err != nil {
		t.Fatal(err)
	}
	// Root qdisc, two root classes are replaced silently; at least the
	// qdisc, 1 class, 1 filter, 1 hash table and the prefix link on the LAN
	// side, plus the removed visitor's upload class.
	if n < 6 {
		t.Errorf("sync after qdisc delete: %d repairs, want >= 6", n)
	}
	t.Logf("sync after qdisc delete: %d repairs", n)
	if n, err = s.Sync(want); err != nil || n != 0 {
		t.Fatalf("second sync: %d repairs, %v; want 0", n, err)
	}
	down := p.parallel([]int{0}, true, 3)
	checkRate(t, "download after sync", down[0], 8*mbit, 0.10)

	ifb, err := p.h.LinkByName(ifbName)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []netlink.Link{lan, ifb} {
		if ips := visitorClasses(t, p, s, l); len(ips) != 1 || ips[0] != p.addrs[0] {
			t.Errorf("%s visitor classes %v, want only %s", l.Attrs().Name, ips, p.addrs[0])
		}
	}
}

// visitorClasses lists the visitor classes present on a link.
func visitorClasses(t *testing.T, p *park, s *Shaper, l netlink.Link) []netip.Addr {
	t.Helper()
	cls, err := p.h.ClassList(l, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Addr
	for _, c := range cls {
		_, minor := netlink.MajorMinor(c.Attrs().Handle)
		if ip, ok := s.lay.addrOfMinor(minor); ok {
			out = append(out, ip)
		}
	}
	return out
}

func TestRemoveAndTeardown(t *testing.T) {
	p := newPark(t, 2)
	s := p.shaper(lan24, 0, 0)
	for _, a := range p.addrs {
		if err := s.Set(a, eight); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Remove(p.addrs[1]); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(p.addrs[1]); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
	lan, _ := p.h.LinkByName(lanIface)
	ifb, _ := p.h.LinkByName(ifbName)
	for _, l := range []netlink.Link{lan, ifb} {
		if ips := visitorClasses(t, p, s, l); len(ips) != 1 || ips[0] != p.addrs[0] {
			t.Errorf("%s visitor classes %v, want only %s", l.Attrs().Name, ips, p.addrs[0])
		}
		// u32 entries are not listed by netlink: ask tc (test only).
		show := run(t, "ip", "netns", "exec", p.gw, "tc", "filter", "show", "dev", l.Attrs().Name)
		kept, _ := s.lay.visitorFilter(p.addrs[0])
		gone, _ := s.lay.visitorFilter(p.addrs[1])
		if !strings.Contains(show, "fh "+u32Str(kept)+" ") || strings.Contains(show, "fh "+u32Str(gone)+" ") {
			t.Errorf("%s filters: want %s kept and %s gone:\n%s", l.Attrs().Name, u32Str(kept), u32Str(gone), show)
		}
	}
	// The removed visitor falls into the fast default class.
	free := p.parallel([]int{1}, true, 2)
	t.Logf("removed visitor downloads %.1f Mbit/s", free[0]/mbit)
	if free[0] < 12*mbit {
		t.Errorf("removed visitor still limited: %.1f Mbit/s", free[0]/mbit)
	}

	if err := s.Teardown(); err != nil {
		t.Fatal(err)
	}
	qs, err := p.h.QdiscList(lan)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if q.Type() == "htb" || q.Type() == "ingress" {
			t.Errorf("left after teardown: %s qdisc %s", q.Type(), netlink.HandleStr(q.Attrs().Handle))
		}
	}
	if _, err := p.h.LinkByName(ifbName); err == nil {
		t.Errorf("IFB %s left after teardown", ifbName)
	}
	if show := run(t, "ip", "netns", "exec", p.gw, "tc", "filter", "show", "dev", lanIface); strings.TrimSpace(show) != "" {
		t.Errorf("filters left after teardown:\n%s", show)
	}
	if err := s.Teardown(); err != nil {
		t.Errorf("second teardown: %v", err)
	}
}

func TestConcurrentSetRemove(t *testing.T) {
	p := newPark(t, 0)
	s := p.shaper(lan24, 0, 0)
	var wg sync.WaitGroup
	errs := make(chan error, 4*50*3)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(2 + g*50 + i)})
				errs <- s.Set(ip, eight)
				errs <- s.Set(ip, Rate{Down: 4 * mbit, Up: 2 * mbit})
				if i%2 == 0 {
					errs <- s.Remove(ip)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	want := make(map[netip.Addr]Rate)
	for g := range 4 {
		for i := 1; i < 50; i += 2 {
			want[netip.AddrFrom4([4]byte{198, 51, 100, byte(2 + g*50 + i)})] = Rate{Down: 4 * mbit, Up: 2 * mbit}
		}
	}
	if n, err := s.Sync(want); err != nil || n != 0 {
		t.Fatalf("sync after concurrent updates: %d repairs, %v; want 0", n, err)
	}
	c, err := s.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != len(want) {
		t.Errorf("counters for %d visitors, want %d", len(c), len(want))
	}
}

func TestSetRejectsNonVisitors(t *testing.T) {
	s, err := New(Config{LANIface: "lan", IFBName: "pp-ifb0", LANPrefix: netip.MustParsePrefix(lan24)})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"198.51.100.0", "198.51.100.255", "192.0.2.1", "2001:db8::1"} {
		if err := s.Set(netip.MustParseAddr(a), eight); err == nil {
			t.Errorf("Set(%s) accepted", a)
		}
	}
	if _, err := New(Config{LANIface: "lan", IFBName: "pp-ifb0", LANPrefix: netip.MustParsePrefix("198.51.100.0/31")}); err == nil {
		t.Error("New accepted a /31")
	}
}

// TestPrepare: a prepared device has its classes but no filter, so its
// traffic is not shaped by them yet and they count nothing; its login
// changes them and adds the filters; Sync keeps prepared classes until
// warmTTL and then removes them.
func TestPrepare(t *testing.T) {
	p := newPark(t, 2)
	s := p.shaper(lan24, 0, 0)
	two := Rate{Down: 2 * mbit, Up: 2 * mbit}
	lan, _ := p.h.LinkByName(lanIface)
	ifb, _ := p.h.LinkByName(ifbName)
	hasClass := func(l netlink.Link, ip netip.Addr) bool {
		for _, a := range visitorClasses(t, p, s, l) {
			if a == ip {
				return true
			}
		}
		return false
	}
	hasFilter := func(l netlink.Link, ip netip.Addr) bool {
		fh, _ := s.lay.visitorFilter(ip)
		show := run(t, "ip", "netns", "exec", p.gw, "tc", "filter", "show", "dev", l.Attrs().Name)
		return strings.Contains(show, "fh "+u32Str(fh)+" ")
	}

	// Prepared at 2 Mbit/s, authorised at 8: the visitor's 8 Mbit/s then
	// shows that Set changed the prepared classes. (8 Mbit/s, because
	// TCP through a 2 Mbit/s class measures low over a few seconds: its
	// start and loss recovery weigh more; see TestLiveRateChange.)
	v := p.addrs[0]
	if err := s.Prepare(v, two); err != nil {
		t.Fatal(err)
	}
	if err := s.Prepare(v, two); err != nil {
		t.Fatalf("preparing twice: %v", err)
	}
	for _, l := range []netlink.Link{lan, ifb} {
		if !hasClass(l, v) || hasFilter(l, v) {
			t.Errorf("%s after Prepare: class %v (want true), filter %v (want false)", l.Attrs().Name, hasClass(l, v), hasFilter(l, v))
		}
	}
	free := p.parallel([]int{0}, true, 2)
	t.Logf("prepared, not yet authorised: %.1f Mbit/s through the default class", free[0]/mbit)
	if free[0] < 12*mbit {
		t.Errorf("a prepared device is already limited: %.1f Mbit/s", free[0]/mbit)
	}
	if c, err := s.Counters(); err != nil || len(c) != 0 {
		t.Errorf("Counters with only a prepared device = %v, %v; want none", c, err)
	}

	if err := s.Set(v, eight); err != nil {
		t.Fatal(err)
	}
	for _, l := range []netlink.Link{lan, ifb} {
		if !hasFilter(l, v) {
			t.Errorf("%s: no filter after Set", l.Attrs().Name)
		}
	}
	down := p.parallel([]int{0}, true, 3)
	checkRate(t, "download of the visitor prepared at 2 and authorised at 8 Mbit/s", down[0], 8*mbit, 0.10)
	if c, err := s.Counters(); err != nil || c[v].BytesDown < 2_000_000 {
		t.Errorf("the visitor's class counted %+v (%v); want megabytes down", c[v], err)
	}

	// A second device is prepared and never logs in.
	w := p.addrs[1]
	if err := s.Prepare(w, eight); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Sync(map[netip.Addr]Rate{v: eight}); err != nil || n != 0 {
		t.Errorf("Sync within warmTTL = %d repairs, %v; want 0", n, err)
	}
	if !hasClass(lan, w) {
		t.Error("Sync removed a prepared device's class before warmTTL")
	}
	later := time.Now().Add(warmTTL)
	s.mu.Lock()
	s.now = func() time.Time { return later }
	s.mu.Unlock()
	if n, err := s.Sync(map[netip.Addr]Rate{v: eight}); err != nil || n != 2 {
		t.Errorf("Sync after warmTTL = %d repairs, %v; want 2 (its two classes)", n, err)
	}
	for _, l := range []netlink.Link{lan, ifb} {
		if hasClass(l, w) || !hasClass(l, v) {
			t.Errorf("%s after warmTTL: prepared class kept %v (want false), visitor's %v (want true)", l.Attrs().Name, hasClass(l, w), hasClass(l, v))
		}
	}
}

// TestLeafHandlesWidePrefix: in a /16 every visitor's leaf queue has the
// explicit handle <minor>: under its own class, also for addresses whose
// minor is past 0x7ffe; a kernel-chosen handle there could be the one a
// later visitor's queue needs. Like the benchmarks (bench16), it only
// installs kernel state in the test's own namespace: no packet is ever
// sent to or from these addresses.
func TestLeafHandlesWidePrefix(t *testing.T) {
	p := newPark(t, 0)
	s := p.shaper(bench16, 0, 0)
	ips := []netip.Addr{
		netip.MustParseAddr("198.51.0.1"),     // minor 3
		netip.MustParseAddr("198.51.128.5"),   // minor 0x8007
		netip.MustParseAddr("198.51.200.1"),   // minor 0xc803
		netip.MustParseAddr("198.51.255.252"), // minor 0xfffe, the last one
	}
	for _, ip := range ips {
		if err := s.Set(ip, eight); err != nil {
			t.Fatalf("Set(%s): %v", ip, err)
		}
	}
	for _, name := range []string{lanIface, ifbName} {
		l, _ := p.h.LinkByName(name)
		qs, err := p.h.QdiscList(l)
		if err != nil {
			t.Fatal(err)
		}
		leaves := 0
		for _, q := range qs {
			if q.Type() != "tbf" {
				continue
			}
			leaves++
			a := q.Attrs()
			major, _ := netlink.MajorMinor(a.Handle)
			pmajor, pminor := netlink.MajorMinor(a.Parent)
			if pmajor != qdiscMajor || major != pminor {
				t.Errorf("%s: leaf %s under %s, want handle <class minor>:", name, netlink.HandleStr(a.Handle), netlink.HandleStr(a.Parent))
			}
		}
		if leaves != len(ips) {
			t.Errorf("%s: %d leaf queues, want %d", name, leaves, len(ips))
		}
	}
}

// TestDumpMatchesClassList: the classes Dump reads with its own parser
// are netlink's ClassList's, handle for handle, parent and rates, over a
// dump of several batches and with rates of 2^32 bytes/s and more (sent
// in 64-bit attributes); and a visitor's class changed by hand is found
// and repaired by Sync.
func TestDumpMatchesClassList(t *testing.T) {
	p := newPark(t, 0)
	const fast = 40_000_000_000 // bit/s: 5e9 bytes/s, past 32 bits
	s := p.shaper(lan24, fast, 0)
	want := make(map[netip.Addr]Rate)
	for i := 2; i < 202; i++ {
		want[netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})] = Rate{Down: uint64(i) * mbit, Up: 4 * mbit}
	}
	want[netip.MustParseAddr("198.51.100.250")] = Rate{Down: fast, Up: 4 * mbit}
	if _, err := s.Sync(want); err != nil {
		t.Fatal(err)
	}
	var rate64 bool
	for _, name := range []string{lanIface, ifbName} {
		l, err := p.h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		cls, err := p.h.ClassList(l, 0)
		if err != nil {
			t.Fatal(err)
		}
		lib := make(map[uint32]class)
		for _, c := range cls {
			if h, ok := c.(*netlink.HtbClass); ok {
				lib[h.Handle] = class{parent: h.Parent, rate: h.Rate, ceil: h.Ceil}
			}
		}
		got := make(map[uint32]class)
		if err := dumpHTB(s.dump, l.Attrs().Index, func(h uint32, c class) { got[h] = c }); err != nil {
			t.Fatal(err)
		}
		if len(got) < 200 || len(got) != len(lib) {
			t.Fatalf("%s: dumpHTB read %d classes, ClassList %d; want the same, over 200", name, len(got), len(lib))
		}
		for h, c := range lib {
			if got[h] != c {
				t.Errorf("%s class %x: dumpHTB read %+v, ClassList %+v", name, h, got[h], c)
			}
			rate64 = rate64 || c.ceil >= 1<<32
		}
	}
	if !rate64 {
		t.Error("no class had a rate past 32 bits: the 64-bit attributes went untested")
	}

	// An operator's `tc class change` on one visitor's download class.
	ip := netip.MustParseAddr("198.51.100.9")
	snap, err := s.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if c := snap.have[0][ip]; c.ceil != 9*mbit/8 {
		t.Fatalf("Dump has %s's download class as %+v, want a ceiling of %d bytes/s", ip, c, 9*mbit/8)
	}
	lan, _ := p.h.LinkByName(lanIface)
	minor, _ := s.lay.minor(ip)
	hc := s.visitorClass(s.dirs()[0], minor, 2*mbit)
	hc.LinkIndex = lan.Attrs().Index
	if err := p.h.ClassChange(hc); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Sync(want); err != nil || n != 1 {
		t.Errorf("Sync after a class was changed by hand = %d, %v; want 1 repair", n, err)
	}
	if n, err := s.Sync(want); err != nil || n != 0 {
		t.Errorf("second Sync = %d, %v; want 0", n, err)
	}
}
