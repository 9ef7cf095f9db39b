// Package shaper limits each authorised visitor's bandwidth in the kernel
// with HTB classes and u32 hash filters, programmed through netlink.
//
// Download (towards the visitor) is shaped by an HTB qdisc on the LAN
// interface, classified on the destination address. Upload cannot be shaped
// where it arrives, so an ingress qdisc on the LAN interface redirects every
// frame to an IFB device whose HTB qdisc holds the same class tree,
// classified on the source address. Both trees put every visitor under a
// "site" class at the uplink capacity, and everything that is not a visitor
// (portal pages, DHCP, DNS) in a fast default class.
//
// Only HTB, ingress, u32 and mirred are used: they exist both on the
// development kernels and as OpenWrt kmods (no fw, flower, police, fq_codel).
package shaper

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/parkwifi/parkportal/internal/lowprio"
	"github.com/parkwifi/parkportal/internal/mapsnap"
	"github.com/parkwifi/parkportal/internal/nldump"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	// unlimitedRate stands for "no site cap" and is the default class's rate:
	// high enough never to be the bottleneck on a park gateway.
	unlimitedRate = 10_000_000_000 // bit/s

	// guaranteeRate is the HTB "rate" (guaranteed share) of a visitor class;
	// its ceil is the visitor's Rate. HTB lets a class under its own rate
	// send without asking its parent, so rate = ceil would let the visitors
	// together exceed the site class. With a tiny guarantee every visitor
	// borrows from the site class, which then caps the sum and shares it
	// fairly (equal quantum, round robin).
	guaranteeRate = 8_000 // bit/s

	// burstHZ is the timer frequency tc assumes when the kernel does not
	// report one: burst = rate/HZ + MTU, i.e. 10 ms of traffic. The psched
	// clock of modern kernels reports 1 GHz, which makes tc's and netlink's
	// default burst collapse to one MTU, too small for GSO packets on veth
	// and bridges, and the measured ceiling then drops.
	burstHZ = 100
	mtu     = 1600

	// ifbTxQLen is the IFB's queue length: HTB's leaf pfifo queues take
	// their limit from it, and the IFB default of 32 packets drops bursts.
	ifbTxQLen = 1000

	maxDumpRetries = 10
)

// Config says where to shape and how much the site may use in total.
type Config struct {
	// NetNS is the network namespace to shape in; 0: the current one
	// (tests pass netns.GetFromName of their gateway).
	NetNS                netns.NsHandle
	LANIface             string       // visitors' interface, e.g. "br-lan"
	IFBName              string       // e.g. "pp-ifb0" (created if missing)
	LANPrefix            netip.Prefix // visitors' IPv4 range, /16 to /30
	UplinkDown, UplinkUp uint64       // site capacity in bit/s; 0 = effectively unlimited
	Logger               *slog.Logger
}

// Rate is a visitor's limit in bit/s in each direction.
type Rate struct{ Down, Up uint64 }

// Counters are a visitor's traffic totals as counted by its HTB classes.
type Counters struct{ BytesDown, BytesUp, PacketsDown, PacketsUp uint64 }

// Shaper programs the kernel for one LAN interface. It keeps the desired
// state (visitors and their rates) in memory, because Set must not list
// anything and Dump reads classes only, not the u32 entries.
type Shaper struct {
	mu sync.Mutex
	h  *netlink.Handle
	// dump reads classes for Dump on a socket of its own, so that a dump
	// of thousands of classes never holds the socket Set needs.
	dump     *nldump.Conn
	cfg      Config
	lay      layout
	log      *slog.Logger
	lanIdx   int
	ifbIdx   int
	down, up uint64 // site capacity, bit/s (never 0)
	visitors map[netip.Addr]Rate
	// visitorsGen changes when visitors is replaced by another map
	// (Teardown), for PlanSync's copy of it (mapsnap.Copy).
	visitorsGen uint64
	// visitorsBuf is PlanSync's copy of visitors, kept between resyncs
	// (a fresh map of thousands of entries each time was garbage),
	// guarded by planMu.
	planMu      sync.Mutex
	visitorsBuf map[netip.Addr]Rate
	// refreshVisitors, presentBuf (per direction) and missingBuf are
	// RefreshFilters' working sets, kept between refreshes, guarded by
	// refreshMu.
	refreshMu       sync.Mutex
	refreshVisitors map[netip.Addr]Rate
	presentBuf      [2]map[uint32]bool
	missingBuf      []netip.Addr
	// fullCheck makes ensure check the u32 hash tables even under an
	// intact root qdisc: until the first successful ensure.
	fullCheck bool
	// warm holds devices whose classes Prepare made before they logged
	// in, with when; Sync drops those unused after warmTTL.
	warm  map[netip.Addr]time.Time
	now   func() time.Time
	ready bool // Ensure succeeded since New
}

// warmTTL is how long a prepared device's classes wait for its login:
// ample for reading an SMS and typing a PIN, short enough that the
// devices that never log in do not pile classes up.
const warmTTL = 30 * time.Minute

// direction describes one of the two HTB trees.
type direction struct {
	name    string
	link    int
	ipOff   int32 // offset of the matched address in the IPv4 header
	siteBPS uint64
}

// New checks the configuration; it does not touch the kernel until Ensure.
func New(cfg Config) (*Shaper, error) {
	lay, err := newLayout(cfg.LANPrefix)
	if err != nil {
		return nil, fmt.Errorf("configuring shaper: %w", err)
	}
	if cfg.LANIface == "" || cfg.IFBName == "" {
		return nil, errors.New("configuring shaper: LANIface and IFBName are required")
	}
	if len(cfg.IFBName) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("configuring shaper: IFB name %q too long", cfg.IFBName)
	}
	h, dump, err := openNetlink(cfg.NetNS)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Shaper{
		h: h, dump: dump, cfg: cfg, lay: lay, log: log,
		down:      orUnlimited(cfg.UplinkDown),
		up:        orUnlimited(cfg.UplinkUp),
		visitors:  make(map[netip.Addr]Rate),
		fullCheck: true,
		warm:      make(map[netip.Addr]time.Time),
		now:       time.Now,
	}, nil
}

// openNetlink opens the shaper's two sockets in ns (0: the current
// network namespace): a handle for changes and a socket for dumps.
func openNetlink(ns netns.NsHandle) (*netlink.Handle, *nldump.Conn, error) {
	var (
		h    *netlink.Handle
		dump *nldump.Conn
		err  error
	)
	if ns == 0 {
		h, err = netlink.NewHandle()
	} else {
		h, err = netlink.NewHandleAt(ns)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("opening netlink handle: %w", err)
	}
	// Small batches: a class dump holds RTNL, which logins' class and
	// filter changes wait for, while it fills each one.
	if ns == 0 {
		dump, err = nldump.Dial(unix.NETLINK_ROUTE, nldump.SmallBatch)
	} else {
		dump, err = nldump.DialAt(unix.NETLINK_ROUTE, nldump.SmallBatch, ns)
	}
	if err != nil {
		h.Close()
		return nil, nil, fmt.Errorf("opening netlink socket for dumps: %w", err)
	}
	return h, dump, nil
}

func orUnlimited(r uint64) uint64 {
	if r == 0 {
		return unlimitedRate
	}
	return r
}

func (s *Shaper) dirs() [2]direction {
	return [2]direction{
		{name: "download", link: s.lanIdx, ipOff: 16, siteBPS: s.down},
		{name: "upload", link: s.ifbIdx, ipOff: 12, siteBPS: s.up},
	}
}

// Ensure creates whatever is missing of the static setup: IFB device up,
// HTB roots with site and default classes, the ingress redirect and the u32
// hash tables. It is safe to call at every start and every resync.
func (s *Shaper) Ensure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.ensure()
	return err
}

// ensure returns how many static objects it had to (re)create.
func (s *Shaper) ensure() (repairs int, err error) {
	lan, err := s.h.LinkByName(s.cfg.LANIface)
	if err != nil {
		return 0, fmt.Errorf("finding LAN interface %q: %w", s.cfg.LANIface, err)
	}
	s.lanIdx = lan.Attrs().Index
	n, err := s.ensureIFB()
	if err != nil {
		return repairs, err
	}
	repairs += n
	for _, d := range s.dirs() {
		n, err := s.ensureTree(d)
		repairs += n
		if err != nil {
			return repairs, err
		}
	}
	n, err = s.ensureRedirect()
	repairs += n
	if err != nil {
		return repairs, err
	}
	s.ready = true
	s.fullCheck = false
	return repairs, nil
}

func (s *Shaper) ensureIFB() (int, error) {
	repairs := 0
	l, err := s.h.LinkByName(s.cfg.IFBName)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		attrs := netlink.NewLinkAttrs()
		attrs.Name = s.cfg.IFBName
		attrs.TxQLen = ifbTxQLen
		if err := s.h.LinkAdd(&netlink.Ifb{LinkAttrs: attrs}); err != nil {
			return 0, fmt.Errorf("creating IFB %q: %w", s.cfg.IFBName, err)
		}
		if l, err = s.h.LinkByName(s.cfg.IFBName); err != nil {
			return 0, fmt.Errorf("finding new IFB %q: %w", s.cfg.IFBName, err)
		}
		repairs++
		s.log.Info("created IFB", "name", s.cfg.IFBName)
	case err != nil:
		return 0, fmt.Errorf("finding IFB %q: %w", s.cfg.IFBName, err)
	case l.Type() != "ifb":
		return 0, fmt.Errorf("interface %q is a %s, not an ifb", s.cfg.IFBName, l.Type())
	}
	if l.Attrs().TxQLen < ifbTxQLen {
		if err := s.h.LinkSetTxQLen(l, ifbTxQLen); err != nil {
			return repairs, fmt.Errorf("setting IFB %q queue length: %w", s.cfg.IFBName, err)
		}
	}
	if l.Attrs().Flags&unix.IFF_UP == 0 {
		if err := s.h.LinkSetUp(l); err != nil {
			return repairs, fmt.Errorf("bringing IFB %q up: %w", s.cfg.IFBName, err)
		}
		repairs++
	}
	s.ifbIdx = l.Attrs().Index
	return repairs, nil
}

// classes lists a link's classes, retrying interrupted dumps.
func (s *Shaper) classes(link int) ([]netlink.Class, error) {
	return retryDump(func() ([]netlink.Class, error) {
		return s.h.ClassList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: link}}, 0)
	})
}

// retryDump repeats a netlink dump (netlink's or nldump's) that the
// kernel interrupted because the table changed under it; the result of an
// interrupted dump may be partial.
func retryDump[T any](f func() (T, error)) (T, error) {
	for i := 0; ; i++ {
		v, err := f()
		interrupted := errors.Is(err, netlink.ErrDumpInterrupted) || errors.Is(err, nldump.ErrInterrupted)
		if interrupted && i < maxDumpRetries {
			continue
		}
		return v, err
	}
}

func (s *Shaper) ensureTree(d direction) (int, error) {
	// The root qdisc is not listed to be checked: with thousands of
	// visitors the LAN holds thousands of leaf qdiscs, and a dump of
	// them all took longer than everything else here. Changing the site
	// class fails exactly when our HTB root is not there (deleted, or
	// replaced by another qdisc), and then the root is made.
	repairs := 0
	site := htbClass(d.link, netlink.HANDLE_ROOT, siteMinor, d.siteBPS, d.siteBPS)
	created := false
	if err := s.h.ClassReplace(site); err != nil {
		q := netlink.NewHtb(netlink.QdiscAttrs{LinkIndex: d.link, Handle: netlink.MakeHandle(qdiscMajor, 0), Parent: netlink.HANDLE_ROOT})
		q.Defcls = defaultMinor
		if err := s.h.QdiscReplace(q); err != nil {
			return 0, fmt.Errorf("creating %s HTB root: %w", d.name, err)
		}
		repairs++
		created = true
		s.log.Info("created HTB root", "direction", d.name)
		if err := s.h.ClassReplace(site); err != nil {
			return repairs, fmt.Errorf("setting %s class %s: %w", d.name, netlink.HandleStr(site.Handle), err)
		}
	}
	// The default class is replaced unconditionally, like the site
	// class: cheap, and it also repairs a changed rate.
	def := htbClass(d.link, netlink.HANDLE_ROOT, defaultMinor, unlimitedRate, unlimitedRate)
	if err := s.h.ClassReplace(def); err != nil {
		return repairs, fmt.Errorf("setting %s class %s: %w", d.name, netlink.HandleStr(def.Handle), err)
	}
	if !created && !s.fullCheck {
		// The hash tables go only with the root qdisc (or with a
		// deliberate "tc filter del"), and checking them is hundreds
		// of netlink calls: RefreshFilters does it, off the hot path.
		return repairs, nil
	}
	n, err := s.ensureTables(d)
	return repairs + n, err
}

// htbClass builds an HTB class with tc's burst computation (see burstHZ) and
// a quantum proportional to the ceiling, so that visitors borrowing from the
// site class share it in proportion to their own limits.
func htbClass(link int, parent uint32, minor uint16, rate, ceil uint64) *netlink.HtbClass {
	rateB, ceilB := rate/8, ceil/8
	c := &netlink.HtbClass{
		ClassAttrs: netlink.ClassAttrs{
			LinkIndex: link,
			Parent:    parent,
			Handle:    netlink.MakeHandle(qdiscMajor, minor),
		},
		Rate:    rateB,
		Ceil:    ceilB,
		Buffer:  netlink.Xmittime(rateB, burstBytes(rateB)),
		Cbuffer: netlink.Xmittime(ceilB, burstBytes(ceilB)),
		Quantum: quantum(ceilB),
	}
	return c
}

// burstBytes is tc's default burst for a rate in bytes/s, computed with
// burstHZ instead of the psched clock's 1 GHz.
func burstBytes(rateB uint64) uint32 {
	b := rateB/burstHZ + mtu
	if b > 1<<24 {
		b = 1 << 24
	}
	return uint32(b)
}

// quantum is the DRR quantum: ceil/50 bytes (20 kB at 8 Mbit/s), within the
// kernel's sane range so that it never warns and never starves small classes.
func quantum(ceilB uint64) uint32 {
	q := ceilB / 50
	switch {
	case q < 2*mtu:
		q = 2 * mtu
	case q > 60_000:
		q = 60_000
	}
	return uint32(q)
}

// leafQueue returns the queue under a visitor's class: a byte-limited
// FIFO holding about 200 ms at the visitor's rate (at least four GSO
// packets). HTB's default leaf is a 1000-packet pfifo, seconds deep at
// 8 Mbit/s: visitors would see that much delay under load, and flows
// sharing a full uplink would take seconds to settle to fair shares.
//
// The kernel's bfifo would do, but netlink cannot set its limit; a TBF
// whose rate is far above the class's ceiling never delays a packet (HTB
// hands it less than that) and drops what exceeds its limit, which makes
// it exactly a bounded FIFO with the features this kernel and OpenWrt's
// kmod-sched-core both have.
//
// The TBF's pacing at twice the ceiling also smooths each visitor's
// bursts, which is what lets visitors sharing a full uplink settle to
// equal shares within a second or two (a plain byte FIFO did not).
//
// Its handle is fixed per visitor (leafHandle), so a rate change can
// change it in place: replacing it would drop what it holds, a stall in
// the visitor's transfer.
func (s *Shaper) leafQueue(d direction, minor uint16, ceil uint64) *netlink.Tbf {
	rateB := 2 * ceil / 8
	limit := max(ceil/8/5, 4*65536)
	return &netlink.Tbf{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: d.link,
			Parent:    netlink.MakeHandle(qdiscMajor, minor),
			Handle:    leafHandle(minor),
		},
		Rate:   rateB,
		Limit:  uint32(limit),
		Buffer: netlink.Xmittime(rateB, max(burstBytes(rateB), 65536+mtu)),
	}
}

// leafHandle is the handle of a visitor's leaf queue: major = the class's
// minor (3 to 0xfffe), unique on the device and never 1: (the HTB root) or
// ffff: (ingress). Every queue we make has an explicit handle, so the
// kernel never picks one itself: its automatic handles (0x8001: upwards)
// could otherwise take a major a later visitor's queue needs.
func leafHandle(minor uint16) uint32 {
	return netlink.MakeHandle(minor, 0)
}

// setLeaf gives a visitor's class its leaf queue for ceil: changed in
// place when it exists, created otherwise.
func (s *Shaper) setLeaf(d direction, minor uint16, ceil uint64, exists bool) error {
	q := s.leafQueue(d, minor, ceil)
	if exists {
		if err := s.h.QdiscChange(q); err == nil {
			return nil
		}
	}
	return s.h.QdiscReplace(q)
}

func (s *Shaper) visitorClass(d direction, minor uint16, ceil uint64) *netlink.HtbClass {
	return htbClass(d.link, netlink.MakeHandle(qdiscMajor, siteMinor), minor, min(guaranteeRate, ceil), ceil)
}

// visitorRates is the rate and ceil, in bytes/s as a dump reports them,
// of the class visitorClass makes for ceil bit/s: PlanSync compares
// 10,000 classes with them, without making (allocating) each one.
func visitorRates(ceil uint64) (rateB, ceilB uint64) {
	return min(guaranteeRate, ceil) / 8, ceil / 8
}

func (d direction) filterAttrs(handle uint32) netlink.FilterAttrs {
	return netlink.FilterAttrs{
		LinkIndex: d.link,
		Parent:    netlink.MakeHandle(qdiscMajor, 0),
		Priority:  filterPrio,
		Protocol:  unix.ETH_P_IP,
		Handle:    handle,
	}
}

// addOnce adds a filter unless one with the same handle exists; it reports
// whether it added one. Using EEXIST as the existence test lets Sync check
// u32 entries without listing them.
func (s *Shaper) addOnce(f netlink.Filter) (bool, error) {
	err := s.h.FilterAdd(f)
	if errors.Is(err, unix.EEXIST) {
		return false, nil
	}
	return err == nil, err
}

func (s *Shaper) ensureTables(d direction) (int, error) {
	repairs := 0
	for _, t := range s.tableFilters(d) {
		added, err := s.addOnce(t.f)
		if err != nil {
			return repairs, t.err(d, err)
		}
		if added {
			repairs++
		}
	}
	return repairs, nil
}

// tableFilter is one u32 filter of a tree's static hashing: a hash
// table, or a link from the prefix to a table.
type tableFilter struct {
	what string
	f    *netlink.U32
}

func (t tableFilter) err(d direction, err error) error {
	return fmt.Errorf("adding %s %s u32 %s: %w", d.name, t.what, u32Str(t.f.Handle), err)
}

// tableFilters lists the static u32 filters of direction d's tree:
// tables first, then the entries that link to them.
func (s *Shaper) tableFilters(d direction) []tableFilter {
	var out []tableFilter
	blocks := s.lay.blocks()
	for i := range blocks {
		out = append(out, tableFilter{"hash table", &netlink.U32{FilterAttrs: d.filterAttrs(u32Handle(blockHTID(i), 0, 0)), Divisor: 256}})
	}
	prefix := addrU32(s.lay.prefix.Addr())
	mask := ^uint32(0) << (32 - s.lay.prefix.Bits())
	rootEntry := &netlink.U32{
		FilterAttrs: d.filterAttrs(u32Handle(rootHTID, 0, 1)),
		Sel: &nl.TcU32Sel{
			Keys: []nl.TcU32Key{{Mask: mask, Val: prefix, Off: d.ipOff}},
			Hoff: int16(d.ipOff),
		},
	}
	if s.lay.twoLevel() {
		out = append(out, tableFilter{"hash table", &netlink.U32{FilterAttrs: d.filterAttrs(u32Handle(thirdHTID, 0, 0)), Divisor: 256}})
		third := prefix >> 8 & 0xff
		for i := range blocks {
			b := third + i
			out = append(out, tableFilter{"block link", &netlink.U32{
				FilterAttrs: d.filterAttrs(u32Handle(thirdHTID, b, 1)),
				Hash:        u32Handle(thirdHTID, b, 0),
				Link:        u32Handle(blockHTID(i), 0, 0),
				Sel: &nl.TcU32Sel{
					Keys:  []nl.TcU32Key{{Off: d.ipOff}}, // match any
					Hmask: 0x000000ff,
					Hoff:  int16(d.ipOff),
				},
			}})
		}
		rootEntry.Link = u32Handle(thirdHTID, 0, 0)
		rootEntry.Sel.Hmask = 0x0000ff00
	} else {
		rootEntry.Link = u32Handle(blockHTID(0), 0, 0)
		rootEntry.Sel.Hmask = 0x000000ff
	}
	return append(out, tableFilter{"prefix link", rootEntry})
}

// ensureRedirect puts an ingress qdisc on the LAN interface with one
// match-all u32 filter that redirects every frame to the IFB's egress.
func (s *Shaper) ensureRedirect() (int, error) {
	repairs := 0
	f := &netlink.U32{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: s.lanIdx,
			Parent:    netlink.MakeHandle(0xffff, 0),
			Priority:  filterPrio,
			Protocol:  unix.ETH_P_ALL,
			Handle:    u32Handle(rootHTID, 0, 1),
		},
		Sel: &nl.TcU32Sel{
			Keys:  []nl.TcU32Key{{}},
			Flags: nl.TC_U32_TERMINAL,
		},
		Actions: []netlink.Action{netlink.NewMirredAction(s.ifbIdx)},
	}
	// As for the root (see ensureTree), the ingress qdisc is not listed:
	// adding the filter fails exactly when it is missing.
	added, err := s.addOnce(f)
	if err != nil {
		q := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: s.lanIdx,
			Handle:    netlink.MakeHandle(0xffff, 0),
			Parent:    netlink.HANDLE_INGRESS,
		}}
		if qerr := s.h.QdiscReplace(q); qerr != nil {
			return 0, fmt.Errorf("adding LAN ingress qdisc: %w", qerr)
		}
		repairs++
		if added, err = s.addOnce(f); err != nil {
			return repairs, fmt.Errorf("adding redirect to IFB %q: %w", s.cfg.IFBName, err)
		}
	}
	if added {
		repairs++
	}
	return repairs, nil
}

func u32Str(h uint32) string {
	return fmt.Sprintf("%x:%x:%x", h>>20, h>>12&0xff, h&0xfff)
}

// visitorFilter builds the exact-match entry for a visitor in one direction.
func (s *Shaper) visitorFilter(d direction, ip netip.Addr, minor uint16) *netlink.U32 {
	handle, hash := s.lay.visitorFilter(ip)
	return &netlink.U32{
		FilterAttrs: d.filterAttrs(handle),
		Hash:        hash,
		ClassId:     netlink.MakeHandle(qdiscMajor, minor),
		Sel: &nl.TcU32Sel{
			Flags: nl.TC_U32_TERMINAL,
			Keys:  []nl.TcU32Key{{Mask: 0xffffffff, Val: addrU32(ip), Off: d.ipOff}},
		},
	}
}

func (s *Shaper) rateOf(d direction, r Rate) uint64 {
	if d.name == "download" {
		return r.Down
	}
	return r.Up
}

// Prepare creates a device's classes while it is still on the splash
// page (the daemon calls it when the device gets its address by DHCP),
// so that its login only changes them. Creating an HTB class costs time
// in proportion to the classes already on the device: the kernel walks
// every class to rebind filters (tc_bind_tclass) and searches a list of
// filter blocks (flow_indr_dev_setup_offload); changing a class does
// neither. A prepared class has no filter, so no packet reaches it
// before Set; Sync removes it if the device has not logged in within
// warmTTL. Preparing a visitor or a prepared device again is a no-op.
func (s *Shaper) Prepare(ip netip.Addr, r Rate) error {
	ip, minor, err := s.checkVisitor(ip, r)
	if err != nil {
		return fmt.Errorf("preparing %s: %w", ip, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ready {
		return nil // Set will create the classes once the trees exist
	}
	if _, ok := s.visitors[ip]; ok {
		return nil
	}
	if _, ok := s.warm[ip]; ok {
		s.warm[ip] = s.now()
		return nil
	}
	for _, d := range s.dirs() {
		if err := s.h.ClassReplace(s.visitorClass(d, minor, s.rateOf(d, r))); err != nil {
			return fmt.Errorf("preparing %s class of %s: %w", d.name, ip, err)
		}
		if err := s.setLeaf(d, minor, s.rateOf(d, r), false); err != nil {
			return fmt.Errorf("preparing %s queue of %s: %w", d.name, ip, err)
		}
	}
	s.warm[ip] = s.now()
	return nil
}

// checkVisitor returns ip's class minor after checking that ip is in the
// LAN prefix and r has both rates.
func (s *Shaper) checkVisitor(ip netip.Addr, r Rate) (netip.Addr, uint16, error) {
	ip = ip.Unmap()
	if r.Down == 0 || r.Up == 0 {
		return ip, 0, fmt.Errorf("rates must be positive, got %+v", r)
	}
	minor, err := s.lay.minor(ip)
	return ip, minor, err
}

// Set authorises a visitor or changes its rate. A known or prepared
// visitor's classes are changed in place, so its queued packets and
// transfers carry on; a new one costs two class additions (see Prepare
// for why those grow with the number of classes) and two filter
// additions. Nothing is listed.
func (s *Shaper) Set(ip netip.Addr, r Rate) error {
	ip, minor, err := s.checkVisitor(ip, r)
	if err != nil {
		return fmt.Errorf("setting %s: %w", ip, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ready {
		if _, err := s.ensure(); err != nil {
			return fmt.Errorf("setting %s: %w", ip, err)
		}
	}
	_, known := s.visitors[ip]
	_, warm := s.warm[ip]
	for _, d := range s.dirs() {
		c := s.visitorClass(d, minor, s.rateOf(d, r))
		exists := known || warm
		if exists {
			err = s.h.ClassChange(c)
			if err != nil && !known && isGone(err) {
				// Prepared, then deleted behind our back (tc qdisc del).
				exists = false
			}
		}
		if !exists {
			err = s.h.ClassReplace(c)
		}
		if err != nil {
			return fmt.Errorf("setting %s class of %s: %w", d.name, ip, err)
		}
		if err := s.setLeaf(d, minor, s.rateOf(d, r), exists); err != nil {
			return fmt.Errorf("setting %s queue of %s: %w", d.name, ip, err)
		}
		if known {
			continue
		}
		if err := s.h.FilterReplace(s.visitorFilter(d, ip, minor)); err != nil {
			return fmt.Errorf("adding %s filter of %s: %w", d.name, ip, err)
		}
	}
	s.visitors[ip] = r
	delete(s.warm, ip)
	return nil
}

// Remove deletes a visitor's filters and then its classes (HTB refuses to
// delete a class that a filter still points to). Removing an unknown visitor
// is not an error.
func (s *Shaper) Remove(ip netip.Addr) error {
	ip = ip.Unmap()
	minor, err := s.lay.minor(ip)
	if err != nil {
		return fmt.Errorf("removing %s: %w", ip, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, d := range s.dirs() {
		if err := s.removeVisitor(d, ip, minor); err != nil {
			errs = append(errs, err)
		}
	}
	delete(s.visitors, ip)
	delete(s.warm, ip)
	return errors.Join(errs...)
}

func (s *Shaper) removeVisitor(d direction, ip netip.Addr, minor uint16) error {
	if err := s.h.FilterDel(s.visitorFilter(d, ip, minor)); err != nil && !isGone(err) {
		return fmt.Errorf("deleting %s filter of %s: %w", d.name, ip, err)
	}
	c := &netlink.HtbClass{ClassAttrs: netlink.ClassAttrs{
		LinkIndex: d.link,
		Parent:    netlink.MakeHandle(qdiscMajor, siteMinor),
		Handle:    netlink.MakeHandle(qdiscMajor, minor),
	}}
	if err := s.h.ClassDel(c); err != nil && !isGone(err) {
		return fmt.Errorf("deleting %s class of %s: %w", d.name, ip, err)
	}
	return nil
}

// isGone reports errors that mean the object is already absent.
func isGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EINVAL)
}

// SetUplink changes the site capacity live (class change on both trees).
func (s *Shaper) SetUplink(down, up uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down, s.up = orUnlimited(down), orUnlimited(up)
	if !s.ready {
		return nil // applied by the next Ensure
	}
	for _, d := range s.dirs() {
		c := htbClass(d.link, netlink.HANDLE_ROOT, siteMinor, d.siteBPS, d.siteBPS)
		if err := s.h.ClassChange(c); err != nil {
			return fmt.Errorf("changing %s site capacity to %d bit/s: %w", d.name, d.siteBPS, err)
		}
	}
	return nil
}

// Sync makes the kernel match want exactly: it recreates missing static
// setup, missing or wrong visitor classes and missing filters, and removes
// visitor classes that are not wanted. It returns the number of kernel
// objects it had to fix, which is zero when nothing drifted.
func (s *Shaper) Sync(want map[netip.Addr]Rate) (repairs int, err error) {
	s.mu.Lock()
	repairs, err = s.ensure()
	s.mu.Unlock()
	if err != nil {
		return repairs, fmt.Errorf("syncing: %w", err)
	}
	snap, err := s.Dump()
	if err != nil {
		return repairs, fmt.Errorf("syncing: %w", err)
	}
	n, err := s.SyncTo(want, snap, nil)
	return repairs + n, err
}

// Snapshot is the visitor classes the kernel held when Dump read them.
type Snapshot struct {
	have [2]map[netip.Addr]class
}

// Dump reads both trees' visitor classes without holding the lock Set
// takes, on a socket of its own, so a login never waits behind a dump of
// thousands of classes. The snapshot may predate changes made while it
// was read: SyncTo's skip leaves those addresses alone.
func (s *Shaper) Dump() (Snapshot, error) {
	var snap Snapshot
	err := s.DumpInto(&snap)
	return snap, err
}

// DumpInto is Dump into snap, reusing its maps (cleared first): the
// firewall's resync keeps one Snapshot between resyncs rather than
// making two maps of thousands of classes garbage every time.
func (s *Shaper) DumpInto(snap *Snapshot) error {
	s.mu.Lock()
	dirs := s.dirs()
	s.mu.Unlock()
	for i, d := range dirs {
		have, err := retryDump(func() (map[netip.Addr]class, error) {
			have := snap.have[i]
			if have == nil {
				have = make(map[netip.Addr]class, len(snap.have[0]))
			}
			clear(have)
			err := dumpHTB(s.dump, d.link, func(handle uint32, c class) {
				if major, minor := netlink.MajorMinor(handle); major == qdiscMajor {
					if ip, ok := s.lay.addrOfMinor(minor); ok {
						have[ip] = c
					}
				}
			})
			return have, err
		})
		if err != nil {
			return fmt.Errorf("listing %s classes: %w", d.name, err)
		}
		snap.have[i] = have
	}
	return nil
}

// SyncTo is Sync against a snapshot from Dump, without Sync's check of
// the static setup (Ensure does that): PlanSync, then ApplySync.
func (s *Shaper) SyncTo(want map[netip.Addr]Rate, snap Snapshot, skip func(netip.Addr) bool) (repairs int, err error) {
	p, err := s.PlanSync(want, snap)
	if err != nil {
		return 0, err
	}
	return s.ApplySync(p, skip)
}

// Plan is what PlanSync found to repair.
type Plan struct {
	want map[netip.Addr]Rate
	// per direction, in the order of s.dirs()
	remove [2][]removal
	fix    [2][]netip.Addr
	// the shaper's own record of visitors, to be brought to want
	gone, changed []netip.Addr
	// prepared devices no longer kept warm (logged in, or expired)
	cooled []netip.Addr
}

type removal struct {
	ip       netip.Addr
	inKernel bool // a repair, not just our record catching up
}

// PlanSync compares want with a snapshot from Dump and with the shaper's
// own record, which it copies under the lock: the comparison itself,
// over thousands of visitors, runs without it. The plan refers to want:
// leave it unchanged until ApplySync.
func (s *Shaper) PlanSync(want map[netip.Addr]Rate, snap Snapshot) (Plan, error) {
	mapped := false
	for ip, r := range want {
		mapped = mapped || ip.Is4In6()
		ip = ip.Unmap()
		if _, err := s.lay.minor(ip); err != nil {
			return Plan{}, fmt.Errorf("syncing: %w", err)
		}
		if r.Down == 0 || r.Up == 0 {
			return Plan{}, fmt.Errorf("syncing %s: rates must be positive, got %+v", ip, r)
		}
	}
	norm := want
	if mapped { // the firewall's addresses never are: no copy for it
		norm = make(map[netip.Addr]Rate, len(want))
		for ip, r := range want {
			norm[ip.Unmap()] = r
		}
	}
	s.planMu.Lock()
	defer s.planMu.Unlock()
	s.mu.Lock()
	dirs := s.dirs()
	// The visitors are copied a chunk at a time, letting Set in between;
	// the addresses Set and Remove change meanwhile are the ones
	// ApplySync's skip leaves alone. The few warm devices are copied
	// whole.
	visitors := mapsnap.Copy(s.visitorsBuf, &s.mu, func() (map[netip.Addr]Rate, uint64) { return s.visitors, s.visitorsGen })
	s.visitorsBuf = visitors
	warm := maps.Clone(s.warm)
	now := s.now()
	s.mu.Unlock()

	p := Plan{want: norm}
	// Prepared devices keep their classes until warmTTL; after that, or
	// once they are visitors, they are no longer "warm".
	keep := make(map[netip.Addr]bool, len(warm))
	for ip, t := range warm {
		if _, wanted := norm[ip]; wanted || now.Sub(t) >= warmTTL {
			p.cooled = append(p.cooled, ip)
			continue
		}
		keep[ip] = true
	}
	site := netlink.MakeHandle(qdiscMajor, siteMinor)
	for i, d := range dirs {
		have := snap.have[i]
		// Unwanted: classes found in the kernel plus visitors we installed.
		for ip := range have {
			if _, ok := norm[ip]; !ok && !keep[ip] {
				p.remove[i] = append(p.remove[i], removal{ip: ip, inKernel: true})
			}
		}
		for ip := range visitors {
			_, wanted := norm[ip]
			if _, inKernel := have[ip]; !wanted && !keep[ip] && !inKernel {
				p.remove[i] = append(p.remove[i], removal{ip: ip})
			}
		}
		for ip, r := range norm {
			rate, ceil := visitorRates(s.rateOf(d, r))
			if cur, ok := have[ip]; !ok || cur.ceil != ceil || cur.rate != rate || cur.parent != site {
				p.fix[i] = append(p.fix[i], ip)
			}
		}
	}
	for ip := range visitors {
		if _, ok := norm[ip]; !ok {
			p.gone = append(p.gone, ip)
		}
	}
	for ip, r := range norm {
		if v, ok := visitors[ip]; !ok || v != r {
			p.changed = append(p.changed, ip)
		}
	}
	return p, nil
}

// ApplySync makes the repairs p found, under the lock, leaving alone the
// addresses skip reports (changed by Set or Remove since the snapshot was
// taken; nil skips none).
func (s *Shaper) ApplySync(p Plan, skip func(netip.Addr) bool) (repairs int, err error) {
	if skip == nil {
		skip = func(netip.Addr) bool { return false }
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ready {
		if repairs, err = s.ensure(); err != nil {
			return repairs, fmt.Errorf("syncing: %w", err)
		}
	}
	for _, ip := range p.cooled {
		delete(s.warm, ip)
	}
	var errs []error
	for i, d := range s.dirs() {
		for _, rm := range p.remove[i] {
			if _, warm := s.warm[rm.ip]; warm || skip(rm.ip) {
				continue // prepared or changed since the snapshot
			}
			minor, _ := s.lay.minor(rm.ip)
			if err := s.removeVisitor(d, rm.ip, minor); err != nil {
				errs = append(errs, err)
				continue
			}
			if rm.inKernel {
				repairs++
			}
		}
		for _, ip := range p.fix[i] {
			if skip(ip) {
				continue
			}
			n, err := s.repairClass(d, ip, p.want[ip])
			repairs += n
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, ip := range p.gone {
		if !skip(ip) {
			delete(s.visitors, ip)
		}
	}
	for _, ip := range p.changed {
		if !skip(ip) {
			s.visitors[ip] = p.want[ip]
		}
	}
	if repairs > 0 {
		s.log.Info("shaper repaired drift", "repairs", repairs, "visitors", len(p.want))
	}
	return repairs, errors.Join(errs...)
}

// repairClass makes ip's class in direction d anew (or changes it to r)
// and gives it its leaf queue and its filter.
func (s *Shaper) repairClass(d direction, ip netip.Addr, r Rate) (repairs int, err error) {
	minor, _ := s.lay.minor(ip)
	if err := s.h.ClassReplace(s.visitorClass(d, minor, s.rateOf(d, r))); err != nil {
		return 0, fmt.Errorf("repairing %s class of %s: %w", d.name, ip, err)
	}
	// A class made anew has HTB's default leaf: give it ours (a changed
	// class's queue is replaced to match).
	if err := s.setLeaf(d, minor, s.rateOf(d, r), false); err != nil {
		return 1, fmt.Errorf("repairing %s queue of %s: %w", d.name, ip, err)
	}
	added, err := s.addOnce(s.visitorFilter(d, ip, minor))
	if err != nil {
		return 1, fmt.Errorf("repairing %s filter of %s: %w", d.name, ip, err)
	}
	if added {
		return 2, nil
	}
	return 1, nil
}

// RefreshFilters re-adds whatever is missing of the u32 hash tables and
// the visitors' filters, which Dump does not read (so Sync cannot see
// one deleted alone). It reads each tree's filters in one dump, at a
// lower CPU priority (lowprio), and adds only what the dump lacks. It
// used to add every filter again and count the kernel's EEXIST answers:
// 10,000 netlink requests at 5,000 visitors, each taking RTNL: 150 ms
// at logins' priority and 18 MB of garbage every refresh (issue 13).
//
// The dump holds no lock of ours; each addition takes the lock for one
// visitor or one table, so logins interleave with them. A filter a login
// made after the dump is found by its EEXIST and not counted.
func (s *Shaper) RefreshFilters() (repairs int, err error) {
	s.mu.Lock()
	if !s.ready {
		s.mu.Unlock()
		return 0, nil
	}
	dirs := s.dirs()
	s.mu.Unlock()
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	// The visitors as of now, copied a chunk at a time (see PlanSync);
	// one that comes or goes meanwhile is settled under the lock below.
	s.mu.Lock()
	visitors := mapsnap.Copy(s.refreshVisitors, &s.mu, func() (map[netip.Addr]Rate, uint64) { return s.visitors, s.visitorsGen })
	s.mu.Unlock()
	s.refreshVisitors = visitors
	var errs []error
	for i, d := range dirs {
		var present map[uint32]bool
		lowprio.Run(func() {
			present, err = retryDump(func() (map[uint32]bool, error) {
				p := s.presentBuf[i]
				if p == nil {
					p = make(map[uint32]bool)
					s.presentBuf[i] = p
				}
				clear(p)
				err := dumpU32(s.dump, d.link, func(h uint32) { p[h] = true })
				return p, err
			})
		})
		if err != nil {
			return repairs, fmt.Errorf("listing %s filters: %w", d.name, err)
		}
		// Hash tables first: a visitor's filter goes into one.
		for _, t := range s.tableFilters(d) {
			if present[t.f.Handle] {
				continue
			}
			s.mu.Lock()
			added, err := s.addOnce(t.f)
			s.unlockYielding()
			if err != nil {
				return repairs, t.err(d, err)
			}
			if added {
				repairs++
			}
		}
		missing := s.missingBuf[:0]
		for ip := range visitors {
			if h, _ := s.lay.visitorFilter(ip); !present[h] {
				missing = append(missing, ip)
			}
		}
		for _, ip := range missing {
			s.mu.Lock()
			if _, ok := s.visitors[ip]; ok {
				minor, _ := s.lay.minor(ip)
				added, err := s.addOnce(s.visitorFilter(d, ip, minor))
				if err != nil {
					errs = append(errs, fmt.Errorf("repairing %s filter of %s: %w", d.name, ip, err))
				} else if added {
					repairs++
				}
			}
			s.unlockYielding()
		}
		s.missingBuf = missing[:0]
	}
	if repairs > 0 {
		s.log.Info("shaper repaired filters", "repairs", repairs)
	}
	return repairs, errors.Join(errs...)
}

// unlockYielding lets go of s.mu and of the processor, in loops that
// take the lock again at once: a login waiting for the lock was just
// woken, and without the yield the loop would mostly take the lock back
// before it ran (sync.Mutex lets a running goroutine barge in), leaving
// the login to wait for the mutex's starvation mode, a millisecond.
func (s *Shaper) unlockYielding() {
	s.mu.Unlock()
	runtime.Gosched()
}

// Counters reads every visitor class's byte and packet totals, for idle
// detection and accounting. Counters restart from zero when a class is
// recreated (after Remove or a repair).
func (s *Shaper) Counters() (map[netip.Addr]Counters, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[netip.Addr]Counters, len(s.visitors))
	for _, d := range s.dirs() {
		cls, err := s.classes(d.link)
		if err != nil {
			return nil, fmt.Errorf("listing %s classes: %w", d.name, err)
		}
		for _, c := range cls {
			a := c.Attrs()
			major, minor := netlink.MajorMinor(a.Handle)
			if major != qdiscMajor || a.Statistics == nil || a.Statistics.Basic == nil {
				continue
			}
			ip, ok := s.lay.addrOfMinor(minor)
			if _, warm := s.warm[ip]; !ok || warm {
				continue
			}
			v := out[ip]
			if d.name == "download" {
				v.BytesDown, v.PacketsDown = a.Statistics.Basic.Bytes, uint64(a.Statistics.Basic.Packets)
			} else {
				v.BytesUp, v.PacketsUp = a.Statistics.Basic.Bytes, uint64(a.Statistics.Basic.Packets)
			}
			out[ip] = v
		}
	}
	return out, nil
}

// Teardown removes the root and ingress qdiscs from the LAN interface (which
// drops all classes and filters with them) and deletes the IFB device.
func (s *Shaper) Teardown() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if lan, err := s.h.LinkByName(s.cfg.LANIface); err == nil {
		idx := lan.Attrs().Index
		root := netlink.NewHtb(netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(qdiscMajor, 0), Parent: netlink.HANDLE_ROOT})
		if err := s.h.QdiscDel(root); err != nil && !isGone(err) {
			errs = append(errs, fmt.Errorf("deleting LAN HTB root: %w", err))
		}
		ing := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_INGRESS}}
		if err := s.h.QdiscDel(ing); err != nil && !isGone(err) {
			errs = append(errs, fmt.Errorf("deleting LAN ingress qdisc: %w", err))
		}
	}
	if l, err := s.h.LinkByName(s.cfg.IFBName); err == nil {
		if err := s.h.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("deleting IFB %q: %w", s.cfg.IFBName, err))
		}
	}
	s.visitors = make(map[netip.Addr]Rate)
	s.visitorsGen++
	s.ready = false
	return errors.Join(errs...)
}
