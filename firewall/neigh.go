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
	n, err := f.neighbor(ip)
	if err != nil {
		return nil, err
	}
	if n == nil || n.State&(unix.NUD_FAILED|unix.NUD_INCOMPLETE|unix.NUD_NOARP) != 0 || len(n.HardwareAddr) != 6 {
		return nil, fmt.Errorf("%s: %w", ip, ErrNoNeighbor)
	}
	return n.HardwareAddr, nil
}

// neighbor returns the LAN's neighbour entry for ip, or nil if there is
// none. It asks the kernel for that one address (RTM_GETNEIGH without
// dump, Linux 4.20+), so the cost per request does not grow with the
// number of devices on the LAN; older kernels get a full dump.
func (f *Firewall) neighbor(ip netip.Addr) (*netlink.Neigh, error) {
	idx, err := f.lanIndex(false)
	if err != nil {
		return nil, err
	}
	e, found, err := f.neigh.get(idx, ip)
	if err != nil && errors.Is(err, unix.ENODEV) {
		// The LAN interface was recreated (netifd does that): look it up again.
		if idx, err = f.lanIndex(true); err != nil {
			return nil, err
		}
		e, found, err = f.neigh.get(idx, ip)
	}
	switch {
	case err == nil && !found:
		return nil, nil
	case err == nil:
		return &netlink.Neigh{LinkIndex: idx, IP: net.IP(ip.AsSlice()), State: int(e.state), HardwareAddr: e.mac}, nil
	case !errors.Is(err, errNeighGetUnsupported):
		return nil, err
	}
	// Fall back to a dump (kernels before 4.20 answer EINVAL).
	var neighs []netlink.Neigh
	for attempt := 0; attempt < 5; attempt++ {
		neighs, err = netlink.NeighList(idx, unix.AF_INET)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("listing neighbours on %s: %w", f.cfg.LANIface, err)
	}
	for i := range neighs {
		if a, ok := netip.AddrFromSlice(neighs[i].IP); ok && a.Unmap() == ip {
			return &neighs[i], nil
		}
	}
	return nil, nil
}

// InUse reports whether ip may still be mac's: the neighbour table has
// an entry for ip with that MAC in any state but FAILED or INCOMPLETE. A
// session is moved off an address only when this says no, so a device
// that copies a logged-in visitor's MAC (with another address) cannot
// pull the session to itself while the visitor's entry lingers; a real
// address change is learnt from the DHCP server's answer instead.
func (f *Firewall) InUse(ip netip.Addr, mac net.HardwareAddr) bool {
	n, err := f.neighbor(ip)
	if err != nil {
		return true // unknown: be conservative
	}
	if n == nil {
		return false
	}
	gone := n.State&(unix.NUD_FAILED|unix.NUD_INCOMPLETE) != 0
	return !gone && n.HardwareAddr.String() == mac.String()
}

// lanIndex returns the LAN interface's index, looked up once and again
// when refresh is set.
func (f *Firewall) lanIndex(refresh bool) (int, error) {
	if i := f.lanIdx.Load(); i > 0 && !refresh {
		return int(i), nil
	}
	link, err := netlink.LinkByName(f.cfg.LANIface)
	if err != nil {
		return 0, fmt.Errorf("finding LAN interface %s: %w", f.cfg.LANIface, err)
	}
	f.lanIdx.Store(int32(link.Attrs().Index))
	return link.Attrs().Index, nil
}
