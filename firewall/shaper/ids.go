package shaper

import (
	"errors"
	"fmt"
	"net/netip"
)

// The kernel objects are addressed by pure functions of (LANPrefix, address)
// so that every handle can be recomputed after a restart, and every
// per-visitor object can be found and deleted without listing anything.
//
// Classes (the same tree on the LAN device and on the IFB):
//
//	1:      HTB qdisc, default class 1:2
//	1:1     site class, rate = ceil = uplink capacity
//	1:2     default class (portal, DHCP, DNS, non-visitors), high rate
//	1:(2+offset)  one class per visitor, child of 1:1
//
// offset is the address's position inside LANPrefix; the network address
// (offset 0) and the broadcast address are never visitors, so minor 2 is free
// for the default class. In a /16 the last host address (offset 0xfffe) would
// need minor 0x10000 and is refused.
//
// u32 hash tables (prio 10, protocol ip, on both HTB qdiscs):
//
//	800:        root table (created by the kernel); entry 800::1 matches
//	            LANPrefix and hashes on an address octet
//	10:         (prefixes wider than /24 only) 256 buckets on the 3rd octet;
//	            bucket b holds entry 10:b:1 linking to that /24's table
//	100+i:      one table per /24 block i of LANPrefix, 256 buckets on the
//	            4th octet; bucket o holds the visitor's exact-match entry
//	            (100+i):o:1 pointing at the visitor's class
//
// So a packet is classified with at most three table lookups and one
// comparison, whatever the number of visitors.
const (
	qdiscMajor   = 0x1
	siteMinor    = 0x1
	defaultMinor = 0x2
	visitorBase  = 0x2

	filterPrio = 10

	rootHTID   = 0x800
	thirdHTID  = 0x010
	blockHTID0 = 0x100
)

// ErrNotVisitor is returned for addresses that cannot be a visitor in the
// configured LAN prefix (outside it, the network or broadcast address, or the
// one /16 address whose class id would not fit in 16 bits).
var ErrNotVisitor = errors.New("address cannot be a visitor in the LAN prefix")

// layout holds the address-to-handle mapping for one LAN prefix.
type layout struct {
	prefix netip.Prefix
	base   uint32 // network address as a host-order integer
	size   uint32 // number of addresses in the prefix
}

func newLayout(p netip.Prefix) (layout, error) {
	p = p.Masked()
	if !p.Addr().Is4() {
		return layout{}, fmt.Errorf("LAN prefix %s: only IPv4 is shaped", p)
	}
	if p.Bits() < 16 || p.Bits() > 30 {
		return layout{}, fmt.Errorf("LAN prefix %s: length must be between /16 and /30", p)
	}
	return layout{prefix: p, base: addrU32(p.Addr()), size: 1 << (32 - p.Bits())}, nil
}

func addrU32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func u32Addr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// offset returns the address's position in the prefix, refusing addresses
// that are not usable visitor addresses.
func (l layout) offset(ip netip.Addr) (uint32, error) {
	ip = ip.Unmap()
	if !ip.Is4() || !l.prefix.Contains(ip) {
		return 0, fmt.Errorf("%s not in %s: %w", ip, l.prefix, ErrNotVisitor)
	}
	off := addrU32(ip) - l.base
	if off == 0 || off == l.size-1 || off+visitorBase > 0xffff {
		return 0, fmt.Errorf("%s in %s: %w", ip, l.prefix, ErrNotVisitor)
	}
	return off, nil
}

// minor returns the HTB class minor id of a visitor.
func (l layout) minor(ip netip.Addr) (uint16, error) {
	off, err := l.offset(ip)
	if err != nil {
		return 0, err
	}
	return uint16(off + visitorBase), nil
}

// addrOfMinor is the inverse of minor; ok is false for minors that are not
// visitor classes of this prefix.
func (l layout) addrOfMinor(m uint16) (netip.Addr, bool) {
	if uint32(m) <= visitorBase {
		return netip.Addr{}, false
	}
	off := uint32(m) - visitorBase
	if off >= l.size-1 {
		return netip.Addr{}, false
	}
	return u32Addr(l.base + off), true
}

// twoLevel reports whether the prefix spans more than one /24, so that the
// root entry hashes on the third octet first.
func (l layout) twoLevel() bool { return l.prefix.Bits() < 24 }

// blocks is the number of /24 tables (1 for /24 and narrower).
func (l layout) blocks() uint32 {
	if l.twoLevel() {
		return l.size >> 8
	}
	return 1
}

// blockHTID is the hash table id of /24 block i.
func blockHTID(i uint32) uint32 { return blockHTID0 + i }

// blockOf returns the /24 block index of an address inside the prefix.
func (l layout) blockOf(ip netip.Addr) uint32 {
	if !l.twoLevel() {
		return 0
	}
	return (addrU32(ip) - l.base) >> 8
}

// u32Handle composes a u32 filter handle: htid(12 bits):bucket(8):node(12).
func u32Handle(htid, bucket, node uint32) uint32 {
	return htid<<20 | (bucket&0xff)<<12 | node&0xfff
}

// visitorFilter returns the handle of a visitor's exact-match entry and the
// table:bucket it lives in (the TCA_U32_HASH value).
func (l layout) visitorFilter(ip netip.Addr) (handle, hash uint32) {
	htid := blockHTID(l.blockOf(ip))
	last := addrU32(ip) & 0xff
	return u32Handle(htid, last, 1), u32Handle(htid, last, 0)
}
