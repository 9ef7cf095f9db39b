// Package firewall owns the gateway's kernel state for parkportal: our
// iptables chains (set up once, repaired when they drift), the allowlist
// ipset, visitors' open connections, and the neighbour table lookups that
// tell which device is asking.
//
// Per-visitor changes are netlink messages, never a forked iptables or
// ipset process, so authorising the thousandth visitor costs what
// authorising the first did. iptables runs only to build and remove our
// own chains.
package firewall

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/coreos/go-iptables/iptables"
	"github.com/parkwifi/parkportal/firewall/shaper"
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
	// SetName is the allowlist ipset; "pp-allow" unless tests need another.
	SetName string
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

func (c Client) key() string { return c.IP.String() + "/" + c.MAC.String() }

// Usage is a client's traffic as the kernel counted it. Packets and Bytes
// are from the visitor (the allowlist's counters); PacketsDown and
// BytesDown are to the visitor (the shaping class's counters, when
// shaping is on).
type Usage struct {
	Packets, Bytes         uint64
	PacketsDown, BytesDown uint64
}

// Firewall is the real, kernel-backed implementation.
type Firewall struct {
	cfg  Config
	log  *slog.Logger
	ipt4 ruleTable
	ipt6 ruleTable      // nil when the host has no ip6tables
	shp  *shaper.Shaper // nil without shaping

	neigh  neighGetter  // the portal's per-request MAC lookups
	lanIdx atomic.Int32 // LAN interface index, cached for them

	mu sync.Mutex // serialises set changes with Sync
}

// New returns a Firewall for cfg. It changes nothing until Ensure.
func New(cfg Config) (*Firewall, error) {
	if cfg.SetName == "" {
		cfg.SetName = "pp-allow"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if !cfg.LANPrefix.Addr().Is4() || cfg.LANPrefix.Bits() < 16 {
		return nil, fmt.Errorf("LAN prefix %s: want IPv4 /16 or narrower", cfg.LANPrefix)
	}
	ipt4, err := iptables.NewWithProtocol(iptables.ProtocolIPv4)
	if err != nil {
		return nil, fmt.Errorf("finding iptables: %w", err)
	}
	f := &Firewall{cfg: cfg, log: cfg.Logger, ipt4: ipt4}
	if cfg.Shaping {
		f.shp, err = shaper.New(shaper.Config{
			LANIface: cfg.LANIface, IFBName: cfg.IFBName, LANPrefix: cfg.LANPrefix,
			UplinkDown: cfg.UplinkDown, UplinkUp: cfg.UplinkUp, Logger: cfg.Logger,
		})
		if err != nil {
			return nil, fmt.Errorf("setting up shaping: %w", err)
		}
	}
	if ipt6, err := iptables.NewWithProtocol(iptables.ProtocolIPv6); err == nil {
		f.ipt6 = ipt6
	} else {
		// Not fatal: a host without IPv6 needs neither chain. One with
		// IPv6 is left open, so the warning names what is exposed.
		f.log.Warn("ip6tables not found; parkportal blocks neither IPv6 forwarding from visitors nor their IPv6 access to the gateway (admin console, DAS)", "err", err)
	}
	return f, nil
}

// Ensure builds (or repairs) the allowlist set and our chains. It is safe
// to call at every start and every resync; it returns how many pieces it
// had to repair.
func (f *Firewall) Ensure() (repairs int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// The set must exist before rules that name it.
	if _, err := listAllowSet(f.cfg.SetName); err != nil {
		if err := createAllowSet(f.cfg.SetName, f.cfg.LANPrefix); err != nil {
			return 0, err
		}
	}
	repairs, err = f.ensureChains()
	if f.shp != nil {
		if serr := f.shp.Ensure(); serr != nil {
			err = errors.Join(err, fmt.Errorf("ensuring shaping: %w", serr))
		}
	}
	return repairs, err
}

// Allow lets c out at its rates: one netlink message for the allowlist,
// and (with shaping) a few for its classes and filters. Calling it again
// for a known client changes its rates in place; its connections carry on.
// Shaping is set up first, so a client is never out unshaped.
func (f *Firewall) Allow(c Client) error {
	if !f.cfg.LANPrefix.Contains(c.IP) {
		return fmt.Errorf("allowing %s: address outside LAN %s", c.IP, f.cfg.LANPrefix)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.shp != nil {
		if err := f.shp.Set(c.IP, shaper.Rate{Down: c.RateDown, Up: c.RateUp}); err != nil {
			return fmt.Errorf("shaping %s: %w", c.IP, err)
		}
	}
	return allowSetAdd(f.cfg.SetName, c)
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
	err := allowSetDel(f.cfg.SetName, c)
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

// Sync makes the allowlist hold exactly want: missing clients added,
// others removed (and their connections cut). It returns how many
// entries it changed. Counters of entries that stay are kept.
func (f *Firewall) Sync(want []Client) (repairs int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	have, err := listAllowSet(f.cfg.SetName)
	if err != nil {
		return 0, err
	}
	wantKeys := make(map[string]Client, len(want))
	for _, c := range want {
		wantKeys[c.key()] = c
	}
	var errs []error
	haveKeys := make(map[string]bool, len(have))
	for _, e := range have {
		k := e.ip.String() + "/" + e.mac
		haveKeys[k] = true
		if _, ok := wantKeys[k]; ok {
			continue
		}
		mac, _ := net.ParseMAC(e.mac)
		stale := Client{MAC: mac, IP: e.ip}
		if err := allowSetDel(f.cfg.SetName, stale); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, f.cutConnections(e.ip))
		repairs++
		f.logRepair(repairs, "removed stale allowlist entry", "ip", e.ip, "mac", e.mac)
	}
	if f.shp != nil {
		rates := make(map[netip.Addr]shaper.Rate, len(want))
		for _, c := range want {
			rates[c.IP] = shaper.Rate{Down: c.RateDown, Up: c.RateUp}
		}
		n, err := f.shp.Sync(rates)
		if err != nil {
			errs = append(errs, fmt.Errorf("syncing shaping: %w", err))
		}
		if n > 0 {
			f.log.Warn("repaired shaping", "repairs", n)
		}
		repairs += n
	}
	for k, c := range wantKeys {
		if haveKeys[k] {
			continue
		}
		if err := allowSetAdd(f.cfg.SetName, c); err != nil {
			errs = append(errs, err)
			continue
		}
		repairs++
		f.logRepair(repairs, "restored missing allowlist entry", "ip", c.IP, "mac", c.MAC.String())
	}
	if repairs > maxRepairLines {
		f.log.Warn("allowlist repaired", "repairs", repairs, "logged", maxRepairLines)
	}
	return repairs, errors.Join(errs...)
}

// maxRepairLines bounds the per-entry repair lines of one Sync: after a
// reboot thousands of entries come back at once, and one summary line
// says more than thousands of identical ones.
const maxRepairLines = 20

func (f *Firewall) logRepair(n int, msg string, args ...any) {
	if n <= maxRepairLines {
		f.log.Warn(msg, args...)
	}
}

// SetWalledGarden changes what unauthorised visitors may reach and
// rewrites our chains to match at once.
func (f *Firewall) SetWalledGarden(garden []netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cfg.WalledGarden = append([]netip.Prefix(nil), garden...)
	_, err := f.ensureChains()
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

// Usage returns the allowlist's per-client counters, keyed by IP.
func (f *Firewall) Usage() (map[netip.Addr]Usage, error) {
	entries, err := listAllowSet(f.cfg.SetName)
	if err != nil {
		return nil, err
	}
	out := make(map[netip.Addr]Usage, len(entries))
	for _, e := range entries {
		out[e.ip] = Usage{Packets: e.packets, Bytes: e.bytes}
	}
	if f.shp != nil {
		counters, err := f.shp.Counters()
		if err != nil {
			return out, fmt.Errorf("reading shaping counters: %w", err)
		}
		for ip, c := range counters {
			if u, ok := out[ip]; ok {
				u.PacketsDown, u.BytesDown = c.PacketsDown, c.BytesDown
				out[ip] = u
			}
		}
	}
	return out, nil
}

// Teardown removes our chains and the allowlist set. Visitors' connections
// are left alone: after teardown the host's own policy applies.
func (f *Firewall) Teardown() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.removeChains()
	if f.shp != nil {
		if serr := f.shp.Teardown(); serr != nil {
			err = errors.Join(err, fmt.Errorf("removing shaping: %w", serr))
		}
	}
	if _, lerr := listAllowSet(f.cfg.SetName); lerr == nil {
		if derr := netlink.IpsetDestroy(f.cfg.SetName); derr != nil {
			err = errors.Join(err, fmt.Errorf("destroying ipset %s: %w", f.cfg.SetName, derr))
		}
	}
	return err
}
