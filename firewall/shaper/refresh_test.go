package shaper

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// u32Handles lists, with netlink's own decoder, the handles of the u32
// filters and hash tables of our priority and protocol on link: what
// dumpU32 should read.
func u32Handles(t *testing.T, p *park, link netlink.Link) []uint32 {
	t.Helper()
	fs, err := p.h.FilterList(link, netlink.MakeHandle(qdiscMajor, 0))
	if err != nil {
		t.Fatal(err)
	}
	var out []uint32
	for _, f := range fs {
		a := f.Attrs()
		if f.Type() == "u32" && a.Priority == filterPrio && a.Protocol == unix.ETH_P_IP && a.Handle != 0 {
			out = append(out, a.Handle)
		}
	}
	slices.Sort(out)
	return out
}

// TestRefreshFiltersRepairsDeletedFilters: filters deleted alone (what
// `tc filter del` does to one visitor, which a class dump cannot see) are
// found by RefreshFilters' filter dump and added again, and only those:
// on a one-level /24 with traffic shaped again afterwards, and on a
// two-level /16 whose block links are filters too. The dump reads the
// handles netlink's FilterList reads.
func TestRefreshFiltersRepairsDeletedFilters(t *testing.T) {
	p := newPark(t, 2)
	s := p.shaper(lan24, 0, 0)
	want := map[netip.Addr]Rate{p.addrs[0]: eight, p.addrs[1]: eight}
	for i := 100; i < 300; i++ { // dumps of several batches
		want[netip.AddrFrom4([4]byte{198, 51, 100, byte(i - 50)})] = Rate{Down: 2 * mbit, Up: mbit}
	}
	syncIntact(t, p, s, want)

	// An operator deletes visitor 0's download filter, another address's
	// upload filter, and the download tree's prefix link.
	dirs := s.dirs()
	other := netip.MustParseAddr("198.51.100.77")
	minor0, _ := s.lay.minor(p.addrs[0])
	minorOther, _ := s.lay.minor(other)
	deleteFilter(t, p, s.visitorFilter(dirs[0], p.addrs[0], minor0))
	deleteFilter(t, p, s.visitorFilter(dirs[1], other, minorOther))
	tables := s.tableFilters(dirs[0])
	deleteFilter(t, p, tables[len(tables)-1].f) // the prefix link
	refreshRepairs(t, p, s, 3)
	down := p.parallel([]int{0}, true, 3)
	checkRate(t, "download after the refresh", down[0], 8*mbit, 0.10)
}

func TestRefreshFiltersWidePrefix(t *testing.T) {
	p := newPark(t, 0)
	s := p.shaper(bench16, 0, 0)
	want := map[netip.Addr]Rate{}
	for _, b := range []byte{0, 7, 128, 255} {
		for i := 2; i < 40; i++ {
			want[netip.AddrFrom4([4]byte{198, 51, b, byte(i)})] = eight
		}
	}
	syncIntact(t, p, s, want)
	dirs := s.dirs()
	ip := netip.MustParseAddr("198.51.128.9")
	minor, _ := s.lay.minor(ip)
	deleteFilter(t, p, s.visitorFilter(dirs[1], ip, minor))
	var link *netlink.U32
	for _, tf := range s.tableFilters(dirs[0]) {
		if tf.what == "block link" {
			link = tf.f
			break
		}
	}
	if link == nil {
		t.Fatal("a /16 has no block links")
	}
	deleteFilter(t, p, link)
	refreshRepairs(t, p, s, 2)
}

// syncIntact installs want and checks that the dump reads the filters
// FilterList reads and that a refresh finds nothing to repair.
func syncIntact(t *testing.T, p *park, s *Shaper, want map[netip.Addr]Rate) {
	t.Helper()
	if _, err := s.Sync(want); err != nil {
		t.Fatal(err)
	}
	checkDumpMatches(t, p, s)
	if n, err := s.RefreshFilters(); err != nil || n != 0 {
		t.Fatalf("refresh of intact filters: %d repairs, %v; want 0", n, err)
	}
}

// deleteFilter does what `tc filter del` does to one filter.
func deleteFilter(t *testing.T, p *park, f *netlink.U32) {
	t.Helper()
	if err := p.h.FilterDel(f); err != nil {
		t.Fatalf("deleting filter %s: %v", u32Str(f.Handle), err)
	}
}

// refreshRepairs checks that a refresh repairs exactly n filters, a
// second one none, and that the trees then read as FilterList reads them.
func refreshRepairs(t *testing.T, p *park, s *Shaper, n int) {
	t.Helper()
	if got, err := s.RefreshFilters(); err != nil || got != n {
		t.Fatalf("refresh after %d filters deleted: %d repairs, %v; want %d", n, got, err, n)
	}
	if got, err := s.RefreshFilters(); err != nil || got != 0 {
		t.Fatalf("second refresh: %d repairs, %v; want 0", got, err)
	}
	checkDumpMatches(t, p, s)
}

// checkDumpMatches compares dumpU32's filter handles with FilterList's
// on both trees (FilterList leaves the hash tables out), and checks that
// the dump has every hash table tableFilters makes.
func checkDumpMatches(t *testing.T, p *park, s *Shaper) {
	t.Helper()
	for i, name := range []string{lanIface, ifbName} {
		l, err := p.h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		var nodes []uint32
		tables := map[uint32]bool{}
		if err := dumpU32(s.dump, l.Attrs().Index, func(h uint32) {
			if h&0xfff == 0 { // node 0: a hash table
				tables[h] = true
			} else {
				nodes = append(nodes, h)
			}
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(nodes)
		lib := u32Handles(t, p, l)
		if len(lib) < 100 || !slices.Equal(nodes, lib) {
			t.Fatalf("%s: dumpU32 read %d filters, FilterList %d (want the same, over 100)\n%x\n%x", name, len(nodes), len(lib), nodes, lib)
		}
		for _, tf := range s.tableFilters(s.dirs()[i]) {
			if tf.what == "hash table" && !tables[tf.f.Handle] {
				t.Errorf("%s: dumpU32 lacks hash table %s", name, u32Str(tf.f.Handle))
			}
		}
	}
}
