// Package firewall owns the gateway's kernel state for parkportal: the
// gate (our rules, the allowlist, per-visitor counters) in one of two
// backends, visitors' shaping, their open connections, and the neighbour
// table lookups that tell which device is asking.
//
// The gate fails closed: a stop, a crash, a flush of the host's tables,
// an fw4 reload or a rebuild of our own rules never lets a captive
// visitor out, and drift is repaired within a second of the kernel
// announcing it. Only Teardown (parkportal cleanup) removes the gate.
//
// Per-visitor changes are netlink messages, never a forked process, so
// authorising the thousandth visitor costs what authorising the first
// did. The nftables backend forks nothing at all; the iptables backend
// runs iptables only to build and repair our own chains.
package firewall

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/parkwifi/parkportal/firewall/shaper"
	"github.com/parkwifi/parkportal/internal/lowprio"
	"github.com/parkwifi/parkportal/internal/mapsnap"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Config describes the LAN the firewall guards.
type Config struct {
	LANIface     string
	LANPrefix    netip.Prefix
	GatewayIP    netip.Addr
	PortalPort   int
	TLSPort      int // the portal's HTTPS port; 0 when not listening
	AdminPort    int // dropped from the LAN, over IPv4 and IPv6
	CoAPort      int // RADIUS dynamic authorisation, dropped like AdminPort; 0 when not listening
	WalledGarden []netip.Prefix
	// TrustedMACs pass every one of our chains (staff devices).
	TrustedMACs []net.HardwareAddr
	// Backend is "nftables", "iptables" or "" / "auto" (nftables where
	// the kernel has nf_tables, else iptables).
	Backend string
	// SetName is the iptables backend's allowlist ipset ("pp-allow"; its
	// download counters are SetName+"-down"); Table the nftables
	// backend's table ("parkportal"). Tests may pick others.
	SetName string
	Table   string
	// Shaping gives every visitor their own HTB class each way (package
	// shaper) on LANIface and the IFB device IFBName, under the site's
	// uplink capacity (0: unlimited).
	Shaping              bool
	IFBName              string
	UplinkDown, UplinkUp uint64
	Logger               *slog.Logger
}

// Client is one authorised device: the MAC and IP pair the allowlist
// holds, and the rates its traffic is shaped to (bit/s).
type Client struct {
	MAC              net.HardwareAddr
	IP               netip.Addr
	RateDown, RateUp uint64
}

// clientKey is a Client's identity in the allowlist: the pair.
type clientKey struct {
	ip  netip.Addr
	mac [6]byte
}

func (c Client) key() clientKey {
	k := clientKey{ip: c.IP}
	copy(k.mac[:], c.MAC)
	return k
}

// Usage is a client's traffic as the kernel counted it: Packets and
// Bytes from the visitor, PacketsDown and BytesDown to the visitor. Both
// directions are counted at the same place, IP packets the gateway
// forwards (not its own portal pages or DNS answers), so a RADIUS
// server's totals match what crossed the uplink.
type Usage struct {
	Packets, Bytes         uint64
	PacketsDown, BytesDown uint64
}

// backend is the kernel facility that holds the gate: our rules, the
// allowlist and its counters. backendNFTables and backendIPTables render
// the same chains (see rules.go).
type backend interface {
	String() string
	// ensure builds our rules and sets, or repairs them, so that they
	// are chains. Rebuilding never leaves a moment in which a captive
	// visitor gets out. clients returns the allowlist, for a backend
	// that has to rebuild its sets (they are restored in the same step);
	// it takes the lock logins take, so it is called only then.
	ensure(chains []chain, clients func() []Client) (repairs int, err error)
	add(Client) error
	del(Client) error
	// list dumps the allowlist, with each pair's counters if counted
	// (Usage). Reconcile needs only the pairs, and on nftables the
	// counters are two more dumps and maps of thousands of entries.
	// Without counters the slice, MACs included, may be the backend's,
	// valid until the next list without counters.
	list(counted bool) ([]entry, error)
	teardown(chains []chain) error
	// present reports whether any part of our gate is in the kernel.
	present(chains []chain) (bool, error)
}

// entry is one allowlist member as the kernel reports it.
type entry struct {
	Client
	Usage
}

// Firewall is the real, kernel-backed implementation.
type Firewall struct {
	log *slog.Logger
	be  backend
	shp *shaper.Shaper // nil without shaping

	neigh  neighGetter  // the portal's per-request MAC lookups
	lanIdx atomic.Int32 // LAN interface index, cached for them

	// chainsMu serialises building our rules (Ensure, SetWalledGarden)
	// and guards cfg's walled garden. Logins never take it.
	chainsMu sync.Mutex
	cfg      Config
	// otherGone: the other backend's leftovers were removed (once, after
	// the first successful Ensure).
	otherGone bool

	// mu serialises per-visitor kernel changes and guards desired: the
	// clients the allowlist must hold. Reconcile dumps the kernel without
	// it and takes it only to apply what it found wrong, so a login never
	// waits behind a dump of thousands of entries.
	mu      sync.Mutex
	desired map[netip.Addr]Client
	// desiredGen changes whenever desired is replaced by another map
	// (Want, Teardown), for Reconcile's copy of it (mapsnap.Copy).
	desiredGen uint64
	// spareDesired is the map Want replaced, for the next Want to fill
	// (guarded by wantMu, and never read: see Want).
	wantMu       sync.Mutex
	spareDesired map[netip.Addr]Client
	// touched collects the addresses Allow and Deny changed while a
	// Reconcile was dumping: its dump may predate them, so it leaves
	// them alone.
	touched map[netip.Addr]bool
	// gen counts Allow and Deny calls, and changedAt holds the gen of
	// each address's last one since the last hand-over (WantMark, Want):
	// a list read before them is handed over after them.
	gen       uint64
	changedAt map[netip.Addr]uint64
	// reconciles counts Reconcile calls: every refreshEvery-th one also
	// re-adds the shaper's filters (see shaper.RefreshFilters).
	reconciles int

	reconcileMu sync.Mutex // one Reconcile at a time (touched is its own)
	// Reconcile's working maps, kept between resyncs and cleared for the
	// next (clear keeps a map's storage), guarded by reconcileMu. Each
	// holds thousands of entries; made anew every resync they were
	// garbage, and the collections it woke slowed the logins of the time
	// (docs/BENCHMARKS.md, the resync's garbage).
	wantBuf     map[netip.Addr]Client
	ratesBuf    map[netip.Addr]shaper.Rate
	inKernelBuf map[clientKey]bool
	snapBuf     shaper.Snapshot
}

// refreshEvery: with the default 30 s resync, shaping filters deleted
// alone (tc filter del) come back within 10 minutes. Anything bigger
// (a qdisc deleted) is repaired at the next resync.
const refreshEvery = 20

// New returns a Firewall for cfg. It changes nothing until Ensure.
func New(cfg Config) (*Firewall, error) {
	if cfg.SetName == "" {
		cfg.SetName = "pp-allow"
	}
	if cfg.Table == "" {
		cfg.Table = "parkportal"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if !cfg.LANPrefix.Addr().Is4() || cfg.LANPrefix.Bits() < 16 {
		return nil, fmt.Errorf("LAN prefix %s: want IPv4 /16 or narrower", cfg.LANPrefix)
	}
	be, err := newBackend(cfg)
	if err != nil {
		return nil, err
	}
	f := &Firewall{cfg: cfg, log: cfg.Logger, be: be, desired: make(map[netip.Addr]Client)}
	if cfg.Shaping {
		f.shp, err = shaper.New(shaper.Config{
			LANIface: cfg.LANIface, IFBName: cfg.IFBName, LANPrefix: cfg.LANPrefix,
			UplinkDown: cfg.UplinkDown, UplinkUp: cfg.UplinkUp, Logger: cfg.Logger,
		})
		if err != nil {
			return nil, fmt.Errorf("setting up shaping: %w", err)
		}
	}
	return f, nil
}

// CloseGate puts the gate in the kernel with nobody on the allowlist,
// unless some of it is there already, and reports whether it did. It is
// for a boot, before the LAN comes up: the kernel starts with no gate, so
// until the daemon has started (or forever, if it cannot) the LAN would
// forward as the base firewall alone says. A gate already there belongs
// to a daemon, running or stopped, and holds its visitors: it is left
// alone. Shaping is the daemon's (it needs the LAN device).
func (f *Firewall) CloseGate() (bool, error) {
	f.chainsMu.Lock()
	defer f.chainsMu.Unlock()
	chs := chains(f.cfg)
	present, err := f.be.present(chs)
	if err != nil {
		return false, fmt.Errorf("looking for a gate in the kernel: %w", err)
	}
	if present {
		return false, nil
	}
	if err := setBridgeNetfilter(f.cfg.LANIface, f.log); err != nil {
		return false, err
	}
	if _, err := f.be.ensure(chs, func() []Client { return nil }); err != nil {
		return false, fmt.Errorf("closing the gate: %w", err)
	}
	return true, nil
}

// Backend names the backend in use: "nftables" or "iptables".
func (f *Firewall) Backend() string { return f.be.String() }

// Ensure builds (or repairs) our rules, sets and qdiscs. It is safe to
// call at every start and every resync; it returns how many pieces it had
// to repair. It never takes the lock logins take, except to copy the
// allowlist for a backend that must rebuild its sets.
//
// The backend's check (dumps of our rules and sets, or iptables-save)
// runs at a lower CPU priority (lowprio); the shaper's, which holds the
// lock its logins take, does not. A repair after drift (rare: the
// monitor's notifications bring most) runs within the backend's check
// and so at the lower priority too, holding the backend's write lock,
// which logins wait for meanwhile.
func (f *Firewall) Ensure() (repairs int, err error) {
	f.chainsMu.Lock()
	defer f.chainsMu.Unlock()
	if err := setBridgeNetfilter(f.cfg.LANIface, f.log); err != nil {
		return 0, err
	}
	lowprio.Run(func() { repairs, err = f.be.ensure(chains(f.cfg), f.clients) })
	if err == nil && !f.otherGone {
		// Our gate is up; a gate of the other backend from an earlier run
		// (an upgrade, a changed firewall_backend) would hold visitors
		// back whatever ours says.
		if o := otherBackend(f.cfg, f.be); o != nil {
			if terr := o.teardown(chains(f.cfg)); terr != nil {
				f.log.Warn("removing the other firewall backend's leftovers", "backend", o.String(), "err", terr)
			}
		}
		f.otherGone = true
	}
	if f.shp != nil {
		if serr := f.shp.Ensure(); serr != nil {
			err = errors.Join(err, fmt.Errorf("ensuring shaping: %w", serr))
		}
	}
	return repairs, err
}

// clients copies the allowlist the kernel must hold.
func (f *Firewall) clients() []Client {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Client, 0, len(f.desired))
	for _, c := range f.desired {
		out = append(out, c)
	}
	return out
}

// Allow lets c out at its rates: one netlink message (or one nftables
// transaction) for the allowlist, and (with shaping) a few for its classes
// and filters. Calling it again for a known client changes its rates in
// place; its connections carry on. Shaping is set up first, so a client
// is never out unshaped.
func (f *Firewall) Allow(c Client) error {
	if !f.cfg.LANPrefix.Contains(c.IP) {
		return fmt.Errorf("allowing %s: address outside LAN %s", c.IP, f.cfg.LANPrefix)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.touch(c.IP)
	if old, ok := f.desired[c.IP]; ok && old.MAC.String() != c.MAC.String() {
		// The address changed hands: the old pair goes first.
		if err := f.be.del(old); err != nil {
			return fmt.Errorf("replacing %s at %s: %w", old.MAC, c.IP, err)
		}
		delete(f.desired, c.IP)
	}
	if f.shp != nil {
		if err := f.shp.Set(c.IP, shaper.Rate{Down: c.RateDown, Up: c.RateUp}); err != nil {
			return fmt.Errorf("shaping %s: %w", c.IP, err)
		}
	}
	if old, ok := f.desired[c.IP]; ok && old.key() == c.key() {
		// Already let out: only the rates changed. Adding it again would
		// restart its counters mid-session.
		f.desired[c.IP] = c
		return nil
	}
	if err := f.be.add(c); err != nil {
		return err
	}
	f.desired[c.IP] = c
	return nil
}

// touch notes that Allow or Deny changed ip, for a running Reconcile and
// a hand-over under way. Call with mu held.
func (f *Firewall) touch(ip netip.Addr) {
	if f.touched != nil {
		f.touched[ip] = true
	}
	if f.changedAt == nil {
		f.changedAt = make(map[netip.Addr]uint64)
	}
	f.gen++
	f.changedAt[ip] = f.gen
}

// Prepare gets a device's shaping ready while it is still on the
// splash page, so that its login only changes existing classes instead
// of creating them (see shaper.Prepare for why that matters with
// thousands of visitors). It lets nothing through: the allowlist is not
// touched and the classes have no filter until Allow. Without shaping it
// does nothing.
func (f *Firewall) Prepare(ip netip.Addr, down, up uint64) error {
	if f.shp == nil {
		return nil
	}
	if !f.cfg.LANPrefix.Contains(ip) {
		return fmt.Errorf("preparing %s: address outside LAN %s", ip, f.cfg.LANPrefix)
	}
	if err := f.shp.Prepare(ip, shaper.Rate{Down: down, Up: up}); err != nil {
		return fmt.Errorf("preparing shaping for %s: %w", ip, err)
	}
	return nil
}

// Deny removes c from the allowlist and cuts its open connections, so a
// visitor whose session ended cannot keep a download running on an old
// conntrack entry.
func (f *Firewall) Deny(c Client) error {
	f.mu.Lock()
	f.touch(c.IP)
	err := f.be.del(c)
	if cur, ok := f.desired[c.IP]; ok && cur.MAC.String() == c.MAC.String() {
		delete(f.desired, c.IP)
	}
	if f.shp != nil {
		if serr := f.shp.Remove(c.IP); serr != nil {
			err = errors.Join(err, fmt.Errorf("removing shaping of %s: %w", c.IP, serr))
		}
	}
	f.mu.Unlock()
	return errors.Join(err, f.cutConnections(c.IP))
}

// cutConnections deletes the conntrack entries of ip's connections
// through the gateway, so an open download stops at once. Its connections
// to the gateway itself (the portal page that is just answering "you have
// logged out", DNS) are kept: they were never the allowlist's to give.
func (f *Firewall) cutConnections(ip netip.Addr) error {
	_, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, throughGateway{visitor: ip, gateway: f.cfg.GatewayIP})
	if err != nil {
		return fmt.Errorf("deleting connections of %s: %w", ip, err)
	}
	return nil
}

// throughGateway matches the flows of one visitor that cross the gateway.
type throughGateway struct{ visitor, gateway netip.Addr }

func (m throughGateway) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	src, _ := netip.AddrFromSlice(flow.Forward.SrcIP)
	dst, _ := netip.AddrFromSlice(flow.Forward.DstIP)
	rsrc, _ := netip.AddrFromSlice(flow.Reverse.SrcIP)
	src, dst, rsrc = src.Unmap(), dst.Unmap(), rsrc.Unmap()
	if src != m.visitor && dst != m.visitor {
		return false
	}
	// To or from the gateway itself, including requests redirected to
	// the portal (their reply comes from the gateway).
	return dst != m.gateway && src != m.gateway && rsrc != m.gateway
}

// WantMark marks the moment a caller reads the clients it then hands to
// Want. Call it under the lock that orders the caller's own Allow and
// Deny calls, and read the list under that lock; it is cheap.
func (f *Firewall) WantMark() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gen
}

// Want records the clients the allowlist must hold, as read at mark
// (WantMark), replacing the previous list; Reconcile makes the kernel
// match. Allow and Deny calls after the mark are newer than want, and
// kept. The caller hands over without holding its lock, so a login does
// not wait while thousands of clients are copied; hand-overs must not
// overlap (each forgets the changes up to its mark).
//
// The map want is put into is the one the previous hand-over replaced,
// cleared (a fresh one each resync was garbage): nothing reads a
// replaced map (Reconcile's copy notices the replacement under the lock
// and starts over), and wantMu keeps two hand-overs off the spare.
func (f *Firewall) Want(mark uint64, want []Client) {
	f.wantMu.Lock()
	defer f.wantMu.Unlock()
	m := reuse(&f.spareDesired, len(want))
	for _, c := range want {
		m[c.IP] = c
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for ip, gen := range f.changedAt {
		if gen <= mark {
			delete(f.changedAt, ip)
			continue
		}
		if c, ok := f.desired[ip]; ok {
			m[ip] = c
		} else {
			delete(m, ip)
		}
	}
	f.desired, f.spareDesired = m, f.desired
	f.desiredGen++
}

// Reconcile makes the allowlist (and the shaping) hold exactly the wanted
// clients: missing ones added, others removed and their connections cut.
// It returns how many entries it changed. Counters of entries that stay
// are kept. The kernel is read, and compared with what is wanted, without
// the lock Allow and Deny take; the lock is held only to repair, and what
// Allow and Deny changed meanwhile is left alone (the dump may predate it).
//
// The reads run at a lower CPU priority (lowprio); the repairs, under the
// locks logins take, do not.
func (f *Firewall) Reconcile() (repairs int, err error) {
	f.reconcileMu.Lock()
	defer f.reconcileMu.Unlock()
	f.mu.Lock()
	f.touched = make(map[netip.Addr]bool)
	// Copied a chunk at a time, letting logins in between: what they
	// change meanwhile is touched, and left alone below.
	want := mapsnap.Copy(f.wantBuf, &f.mu, func() (map[netip.Addr]Client, uint64) { return f.desired, f.desiredGen })
	f.wantBuf = want
	refresh := f.shp != nil && f.reconciles%refreshEvery == 0
	f.reconciles++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.touched = nil
		f.mu.Unlock()
	}()

	var have []entry
	lowprio.Run(func() { have, err = f.be.list(false) })
	if err != nil {
		return 0, err
	}
	var plan shaper.Plan
	if f.shp != nil {
		lowprio.Run(func() { err = f.shp.DumpInto(&f.snapBuf) })
		if err != nil {
			return 0, fmt.Errorf("syncing shaping: %w", err)
		}
		rates := reuse(&f.ratesBuf, len(want))
		for ip, c := range want {
			rates[ip] = shaper.Rate{Down: c.RateDown, Up: c.RateUp}
		}
		if plan, err = f.shp.PlanSync(rates, f.snapBuf); err != nil {
			return 0, fmt.Errorf("syncing shaping: %w", err)
		}
	}
	var stale, missing []Client
	inKernel := reuse(&f.inKernelBuf, len(have))
	for _, e := range have {
		inKernel[e.key()] = true
		if w, ok := want[e.IP]; !ok || w.key() != e.key() {
			stale = append(stale, e.Client)
		}
	}
	for _, c := range want {
		if !inKernel[c.key()] {
			missing = append(missing, c)
		}
	}

	f.mu.Lock()
	repairs, cut, err := f.repairLocked(stale, missing, plan)
	f.mu.Unlock()
	// Cutting connections walks the conntrack table: not under the lock.
	errs := []error{err}
	for _, ip := range cut {
		errs = append(errs, f.cutConnections(ip))
	}
	if refresh {
		n, rerr := f.shp.RefreshFilters()
		repairs += n
		errs = append(errs, rerr)
	}
	return repairs, errors.Join(errs...)
}

// reuse returns *m cleared, or a new map for about n entries if *m is
// nil (kept in *m).
func reuse[K comparable, V any](m *map[K]V, n int) map[K]V {
	if *m == nil {
		*m = make(map[K]V, n)
	}
	clear(*m)
	return *m
}

// repairLocked removes the stale entries and adds the missing ones that
// are still so (not touched since the dump), and applies the shaper's
// plan. It returns the repairs and the addresses whose connections must
// be cut. Call with mu held.
func (f *Firewall) repairLocked(stale, missing []Client, plan shaper.Plan) (repairs int, cut []netip.Addr, err error) {
	var errs []error
	for _, c := range stale {
		if f.touched[c.IP] {
			continue
		}
		if d, ok := f.desired[c.IP]; ok && d.key() == c.key() {
			continue
		}
		if err := f.be.del(c); err != nil {
			errs = append(errs, err)
			continue
		}
		cut = append(cut, c.IP)
		repairs++
		f.logRepair(repairs, "removed stale allowlist entry", "ip", c.IP, "mac", c.MAC.String())
	}
	if f.shp != nil {
		n, err := f.shp.ApplySync(plan, func(ip netip.Addr) bool { return f.touched[ip] })
		if err != nil {
			errs = append(errs, fmt.Errorf("syncing shaping: %w", err))
		}
		if n > 0 {
			f.log.Warn("repaired shaping", "repairs", n)
		}
		repairs += n
	}
	for _, c := range missing {
		if f.touched[c.IP] {
			continue
		}
		if d, ok := f.desired[c.IP]; !ok || d.key() != c.key() {
			continue
		}
		if err := f.be.add(c); err != nil {
			errs = append(errs, err)
			continue
		}
		repairs++
		f.logRepair(repairs, "restored missing allowlist entry", "ip", c.IP, "mac", c.MAC.String())
	}
	if repairs > maxRepairLines {
		f.log.Warn("allowlist repaired", "repairs", repairs, "logged", maxRepairLines)
	}
	return repairs, cut, errors.Join(errs...)
}

// Sync is Want followed by Reconcile, for callers with nothing to order
// it against.
func (f *Firewall) Sync(want []Client) (repairs int, err error) {
	f.Want(f.WantMark(), want)
	return f.Reconcile()
}

// maxRepairLines bounds the per-entry repair lines of one Reconcile: after
// a reboot thousands of entries come back at once, and one summary line
// says more than thousands of identical ones.
const maxRepairLines = 20

func (f *Firewall) logRepair(n int, msg string, args ...any) {
	if n <= maxRepairLines {
		f.log.Warn(msg, args...)
	}
}

// SetWalledGarden changes what unauthorised visitors may reach and
// rebuilds our rules to match at once (without a gap: see ensure).
func (f *Firewall) SetWalledGarden(garden []netip.Prefix) error {
	f.chainsMu.Lock()
	defer f.chainsMu.Unlock()
	f.cfg.WalledGarden = append([]netip.Prefix(nil), garden...)
	_, err := f.be.ensure(chains(f.cfg), f.clients)
	return err
}

// SetUplink changes the site's uplink capacity live.
func (f *Firewall) SetUplink(down, up uint64) error {
	if f.shp == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.shp.SetUplink(down, up)
}

// Usage returns the allowlist's per-client counters, keyed by IP: both
// directions, read fresh from the kernel at a lower CPU priority
// (lowprio).
func (f *Firewall) Usage() (map[netip.Addr]Usage, error) {
	var entries []entry
	var err error
	lowprio.Run(func() { entries, err = f.be.list(true) })
	if err != nil {
		return nil, err
	}
	out := make(map[netip.Addr]Usage, len(entries))
	for _, e := range entries {
		out[e.IP] = e.Usage
	}
	return out, nil
}

// Teardown removes the gate: our rules and sets, and the shaping. After it
// the host's own policy applies to visitors. Only `parkportal cleanup`
// (and package removal) call it: a stopping daemon leaves the gate shut.
func (f *Firewall) Teardown() error {
	f.chainsMu.Lock()
	defer f.chainsMu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.be.teardown(chains(f.cfg))
	if f.shp != nil {
		if serr := f.shp.Teardown(); serr != nil {
			err = errors.Join(err, fmt.Errorf("removing shaping: %w", serr))
		}
	}
	f.desired = make(map[netip.Addr]Client)
	f.desiredGen++
	return err
}
