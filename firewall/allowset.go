package firewall

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/parkwifi/parkportal/internal/nldump"
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
//
// The set is read with nldump rather than netlink's IpsetList, whose
// decoder starts a goroutine for every attribute list it walks: at 5,000
// visitors each resync's reads of the two sets took some 3 s, most of it
// goroutines handing attributes to each other.
func listAllowSet(name string) ([]setEntry, error) {
	c, err := nldump.Dial(unix.NETLINK_NETFILTER, nldump.LargeBatch)
	if err != nil {
		return nil, fmt.Errorf("listing ipset %s: %w", name, err)
	}
	defer c.Close()
	req := ipsetRequest(name)
	typ := uint16(unix.NFNL_SUBSYS_IPSET<<8 | nl.IPSET_CMD_LIST)
	out, err := nldump.Retry(func() ([]setEntry, error) {
		var out []setEntry
		err := c.Dump(typ, req, func(_ uint16, msg []byte) error {
			return parseIPSetList(msg, func(e setEntry) { out = append(out, e) })
		})
		return out, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing ipset %s: %w", name, err)
	}
	return out, nil
}

// ipsetRequest is the payload of a request about set name: a struct
// nfgenmsg, the protocol version and the name.
func ipsetRequest(name string) []byte {
	req := []byte{unix.AF_NETLINK, unix.NFNETLINK_V0, 0, 0}
	req = nldump.AppendAttr(req, nl.IPSET_ATTR_PROTOCOL, []byte{nl.IPSET_PROTOCOL})
	return nldump.AppendAttr(req, nl.IPSET_ATTR_SETNAME, append([]byte(name), 0))
}

// ipsetExists asks for set name's header (IPSET_CMD_HEADER): whether the
// set is there, without reading its thousands of entries, as every
// resync checks.
func ipsetExists(name string) (bool, error) {
	c, err := nldump.Dial(unix.NETLINK_NETFILTER, nldump.SmallBatch)
	if err != nil {
		return false, fmt.Errorf("looking for ipset %s: %w", name, err)
	}
	defer c.Close()
	err = c.Exec([]nldump.Request{{Type: unix.NFNL_SUBSYS_IPSET<<8 | nl.IPSET_CMD_HEADER, Flags: unix.NLM_F_ACK, Payload: ipsetRequest(name)}})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.ENOENT):
		return false, nil
	default:
		return false, fmt.Errorf("looking for ipset %s: %w", name, err)
	}
}

// parseIPSetList reads one IPSET_CMD_LIST message of a dump: a struct
// nfgenmsg, the set's header attributes, and its entries, each an
// IPSET_ATTR_DATA in IPSET_ATTR_ADT. Entries without an IPv4 address are
// skipped.
func parseIPSetList(msg []byte, each func(setEntry)) error {
	if len(msg) < 4 {
		return fmt.Errorf("ipset list message of %d bytes", len(msg))
	}
	a := nldump.NewAttrs(msg[4:])
	for a.Next() {
		if a.Type() != nl.IPSET_ATTR_ADT {
			continue
		}
		adt := nldump.NewAttrs(a.Data())
		for adt.Next() {
			if adt.Type() != nl.IPSET_ATTR_DATA {
				continue
			}
			e, err := parseIPSetEntry(adt.Data())
			if err != nil {
				return err
			}
			if e.ip.IsValid() {
				each(e)
			}
		}
		if err := adt.Err(); err != nil {
			return err
		}
	}
	return a.Err()
}

// parseIPSetEntry reads one entry: its address (IPSET_ATTR_IP holding an
// IPSET_ATTR_IPADDR_IPV4), MAC and counters (64-bit, network order).
func parseIPSetEntry(b []byte) (setEntry, error) {
	var e setEntry
	a := nldump.NewAttrs(b)
	for a.Next() {
		d := a.Data()
		switch a.Type() {
		case nl.IPSET_ATTR_IP:
			ip := nldump.NewAttrs(d)
			for ip.Next() {
				if ip.Type() == nl.IPSET_ATTR_IPADDR_IPV4 && len(ip.Data()) == 4 {
					e.ip = netip.AddrFrom4([4]byte(ip.Data()))
				}
			}
			if err := ip.Err(); err != nil {
				return e, err
			}
		case nl.IPSET_ATTR_ETHER:
			if len(d) == 6 {
				e.mac = net.HardwareAddr(d).String()
			}
		case nl.IPSET_ATTR_PACKETS:
			if len(d) == 8 {
				e.packets = binary.BigEndian.Uint64(d)
			}
		case nl.IPSET_ATTR_BYTES:
			if len(d) == 8 {
				e.bytes = binary.BigEndian.Uint64(d)
			}
		}
	}
	return e, a.Err()
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
	if ok, err := ipsetExists(name); err != nil || !ok {
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
