package firewall

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrNoNeighbor means the gateway has no usable link-layer address for
// the requesting IP: the device is not directly on the LAN (or its ARP
// entry failed), so it cannot be bound into the allowlist.
var ErrNoNeighbor = errors.New("no MAC address known for this device")

// LookupMAC returns the MAC the kernel's neighbour table holds for ip on
// the LAN interface. The portal uses it to learn which device made a
// request; it never trusts a MAC the client claims.
func (f *Firewall) LookupMAC(ip netip.Addr) (net.HardwareAddr, error) {
	link, err := netlink.LinkByName(f.cfg.LANIface)
	if err != nil {
		return nil, fmt.Errorf("finding LAN interface %s: %w", f.cfg.LANIface, err)
	}
	var neighs []netlink.Neigh
	for attempt := 0; attempt < 5; attempt++ {
		neighs, err = netlink.NeighList(link.Attrs().Index, unix.AF_INET)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("listing neighbours on %s: %w", f.cfg.LANIface, err)
	}
	for _, n := range neighs {
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok || a.Unmap() != ip {
			continue
		}
		if n.State&(unix.NUD_FAILED|unix.NUD_INCOMPLETE|unix.NUD_NOARP) != 0 || len(n.HardwareAddr) != 6 {
			continue
		}
		return n.HardwareAddr, nil
	}
	return nil, fmt.Errorf("%s: %w", ip, ErrNoNeighbor)
}

// InUse reports whether the neighbour table shows ip actively used by
// mac right now (reachable, or being confirmed). A session is only moved
// off an address that is not in use, so a device that copies a logged-in
// visitor's MAC cannot pull the session away while the visitor is there.
func (f *Firewall) InUse(ip netip.Addr, mac net.HardwareAddr) bool {
	link, err := netlink.LinkByName(f.cfg.LANIface)
	if err != nil {
		return true // unknown: be conservative
	}
	neighs, err := netlink.NeighList(link.Attrs().Index, unix.AF_INET)
	if err != nil {
		return true
	}
	for _, n := range neighs {
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok || a.Unmap() != ip {
			continue
		}
		live := n.State&(unix.NUD_REACHABLE|unix.NUD_DELAY|unix.NUD_PROBE|unix.NUD_PERMANENT) != 0
		return live && n.HardwareAddr.String() == mac.String()
	}
	return false
}
