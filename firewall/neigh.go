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

// InUse reports whether ip may still be mac's: the neighbour table has
// an entry for ip with that MAC in any state but FAILED or INCOMPLETE. A
// session is moved off an address only when this says no, so a device
// that copies a logged-in visitor's MAC (with another address) cannot
// pull the session to itself while the visitor's entry lingers; a real
// address change is learnt from the DHCP server's answer instead.
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
		gone := n.State&(unix.NUD_FAILED|unix.NUD_INCOMPLETE) != 0
		return !gone && n.HardwareAddr.String() == mac.String()
	}
	return false
}
