package firewall

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The iptables backend's sets. The allowlist is an ipset of type
// bitmap:ip,mac covering the LAN prefix. A packet matches only when both its source address and its
// source MAC are a pair we added, so a device that copies an authorised
// visitor's IP (or MAC) alone gets nothing. Membership changes are single
// netlink messages: their cost does not depend on how many visitors are
// already in the set, unlike one iptables rule per visitor.

// createBitmapSet creates a bitmap:ip,mac or bitmap:ip set over prefix,
// with counters. netlink's IpsetCreate sends no address range for bitmap
// types, which the kernel needs, so the request is built here.
func createBitmapSet(name, typ string, prefix netip.Prefix) error {
	first := prefix.Masked().Addr()
	last := lastAddr(prefix)

	req := nl.NewNetlinkRequest(nl.IPSET_CMD_CREATE|(unix.NFNL_SUBSYS_IPSET<<8), nl.GetIpsetFlags(nl.IPSET_CMD_CREATE))
	req.AddData(&nl.Nfgenmsg{NfgenFamily: uint8(unix.AF_NETLINK), Version: nl.NFNETLINK_V0})
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_PROTOCOL, nl.Uint8Attr(nl.IPSET_PROTOCOL)))
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_SETNAME, nl.ZeroTerminated(name)))
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_TYPENAME, nl.ZeroTerminated(typ)))
	// Revision 3 is the kernel's bitmap:ip,mac and bitmap:ip with
	// counters, comments and skbinfo; OpenWrt's kmod-ipt-ipset has it too.
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_REVISION, nl.Uint8Attr(3)))
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_FAMILY, nl.Uint8Attr(unix.AF_INET)))

	data := nl.NewRtAttr(nl.IPSET_ATTR_DATA|int(nl.NLA_F_NESTED), nil)
	data.AddChild(nl.NewRtAttr(nl.IPSET_ATTR_IP|int(nl.NLA_F_NESTED), ipv4Attr(first)))
	data.AddChild(nl.NewRtAttr(nl.IPSET_ATTR_IP_TO|int(nl.NLA_F_NESTED), ipv4Attr(last)))
	// Per-entry packet and byte counters: which visitors are idle, and
	// what each one moved (RADIUS accounting).
	data.AddChild(&nl.Uint32Attribute{Type: nl.IPSET_ATTR_CADT_FLAGS | nl.NLA_F_NET_BYTEORDER, Value: nl.IPSET_FLAG_WITH_COUNTERS})
	req.AddData(data)

	_, err := req.Execute(unix.NETLINK_NETFILTER, 0)
	if err != nil {
		var errno unix.Errno
		if errors.As(err, &errno) && int(errno) >= nl.IPSET_ERR_PRIVATE {
			err = nl.IPSetError(uintptr(errno))
		}
		return fmt.Errorf("creating ipset %s (%s %s-%s): %w", name, typ, first, last, err)
	}
	return nil
}

func ipv4Attr(a netip.Addr) []byte {
	b := a.As4()
	return nl.NewRtAttr(nl.IPSET_ATTR_IPADDR_IPV4|int(nl.NLA_F_NET_BYTEORDER), b[:]).Serialize()
}

// lastAddr returns the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// setEntry is one allowlist member as the kernel reports it.
type setEntry struct {
	ip      netip.Addr
	mac     string
	packets uint64
	bytes   uint64
}

// listAllowSet dumps the set, retrying when a concurrent change
// interrupts the dump.
func listAllowSet(name string) ([]setEntry, error) {
	var (
		res *netlink.IPSetResult
		err error
	)
	for attempt := 0; attempt < 5; attempt++ {
		res, err = netlink.IpsetList(name)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("listing ipset %s: %w", name, err)
	}
	out := make([]setEntry, 0, len(res.Entries))
	for _, e := range res.Entries {
		ip, ok := netip.AddrFromSlice(e.IP)
		if !ok {
			continue
		}
		se := setEntry{ip: ip.Unmap(), mac: e.MAC.String()}
		if e.Packets != nil {
			se.packets = *e.Packets
		}
		if e.Bytes != nil {
			se.bytes = *e.Bytes
		}
		out = append(out, se)
	}
	return out, nil
}

// setAdd adds ip (with mac for bitmap:ip,mac) to the set with its
// counters at zero. The request is built here because netlink's IpsetAdd
// sends no counter values, and an add without them keeps whatever the
// kernel has for the slot: a bitmap set keeps a deleted entry's counters,
// so a device logging in again would start with its last session's
// traffic.
func setAdd(name string, ip netip.Addr, mac net.HardwareAddr) error {
	req := nl.NewNetlinkRequest(nl.IPSET_CMD_ADD|(unix.NFNL_SUBSYS_IPSET<<8), nl.GetIpsetFlags(nl.IPSET_CMD_ADD))
	req.AddData(&nl.Nfgenmsg{NfgenFamily: uint8(unix.AF_NETLINK), Version: nl.NFNETLINK_V0})
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_PROTOCOL, nl.Uint8Attr(nl.IPSET_PROTOCOL)))
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_SETNAME, nl.ZeroTerminated(name)))
	data := nl.NewRtAttr(nl.IPSET_ATTR_DATA|int(nl.NLA_F_NESTED), nil)
	data.AddChild(nl.NewRtAttr(nl.IPSET_ATTR_IP|int(nl.NLA_F_NESTED), ipv4Attr(ip)))
	if mac != nil {
		data.AddChild(nl.NewRtAttr(nl.IPSET_ATTR_ETHER, mac))
	}
	zero := make([]byte, 8)
	data.AddChild(nl.NewRtAttr(nl.IPSET_ATTR_PACKETS|int(nl.NLA_F_NET_BYTEORDER), zero))
	data.AddChild(nl.NewRtAttr(nl.IPSET_ATTR_BYTES|int(nl.NLA_F_NET_BYTEORDER), zero))
	data.AddChild(&nl.Uint32Attribute{Type: nl.IPSET_ATTR_LINENO | nl.NLA_F_NET_BYTEORDER, Value: 0})
	req.AddData(data)
	if _, err := req.Execute(unix.NETLINK_NETFILTER, 0); err != nil {
		var errno unix.Errno
		if errors.As(err, &errno) && int(errno) >= nl.IPSET_ERR_PRIVATE {
			err = nl.IPSetError(uintptr(errno))
		}
		return fmt.Errorf("adding %s %s to ipset %s: %w", mac, ip, name, err)
	}
	return nil
}

func setDel(name string, ip netip.Addr, mac net.HardwareAddr) error {
	err := netlink.IpsetDel(name, &netlink.IPSetEntry{IP: net.IP(ip.AsSlice()), MAC: mac})
	if err != nil && !isNotInSet(err) {
		return fmt.Errorf("removing %s %s from ipset %s: %w", mac, ip, name, err)
	}
	return nil
}

// destroySet removes the set if it exists.
func destroySet(name string) error {
	if _, err := listAllowSet(name); err != nil {
		return nil
	}
	if err := netlink.IpsetDestroy(name); err != nil {
		return fmt.Errorf("destroying ipset %s: %w", name, err)
	}
	return nil
}

// isNotInSet reports the "element not in set" answer, which a delete of
// an already-absent member gets; that is the state we wanted.
func isNotInSet(err error) bool {
	var e nl.IPSetError
	if errors.As(err, &e) {
		return int(e) == nl.IPSET_ERR_EXIST
	}
	var errno unix.Errno
	return errors.As(err, &errno) && int(errno) == nl.IPSET_ERR_EXIST
}
