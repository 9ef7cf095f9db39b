// Package devwatch watches the LAN for devices that obtain or announce an
// IPv4 address, so that a visitor's allowlist entry and shaping can follow
// the device when its DHCP lease moves it to a new IP.
//
// It captures DHCP and ARP on a raw AF_PACKET socket (golang.org/x/sys/unix,
// no cgo) behind a classic BPF filter, and decodes the few header fields it
// needs by hand: Ethernet, ARP, IPv4, UDP and the BOOTP header with DHCP
// options 50, 53, 12 and 60. Every byte it decodes is controlled by a
// visitor, so each length is checked before it is used and no slice of the
// frame is retained. A general packet library would cost the router more
// than this file: gopacket's layers package filled 65,536-entry tables in
// init (about 4 MiB resident on 32-bit) and added 1.4 MiB to the binary.
package devwatch

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Kind says what a frame told about a device.
type Kind uint8

const (
	// DHCPAck: a DHCP server acknowledged a lease; IP is the address the
	// device now holds. Run only reports ACKs the gateway itself sent (its
	// own DHCP server, dnsmasq on OpenWrt), because anyone on the LAN can
	// forge an ACK for someone else's MAC.
	DHCPAck Kind = iota + 1
	// DHCPRequest: a device asks for (option 50) or renews (ciaddr) an IP.
	// It is a wish, not a lease: act on the ACK that follows.
	DHCPRequest
	// DHCPRelease: a device gives its lease (ciaddr) back.
	DHCPRelease
	// ARP: a device's ARP request, reply or gratuitous announcement; IP is
	// the sender protocol address, zero for an RFC 5227 probe.
	ARP
)

// String returns the kind's name, for logs.
func (k Kind) String() string {
	switch k {
	case DHCPAck:
		return "dhcp-ack"
	case DHCPRequest:
		return "dhcp-request"
	case DHCPRelease:
		return "dhcp-release"
	case ARP:
		return "arp"
	}
	return "unknown"
}

// Event is what one frame told about one device.
type Event struct {
	Kind Kind
	// MAC is the device's hardware address: DHCP chaddr, or the ARP sender
	// hardware address. It never aliases the captured frame.
	MAC net.HardwareAddr
	// IP is the address the device now holds or announces, zero if unknown.
	IP netip.Addr
	// Hostname is DHCP option 12, sanitised (see sanitise).
	Hostname string
	// Vendor is DHCP option 60 (vendor class), sanitised.
	Vendor string
	// Time is when the frame was captured (or the now passed to Decode).
	Time time.Time
}

// maxText bounds Hostname and Vendor in bytes: RFC 1035 labels are at most
// 63 bytes and the staff's session list has no room for more.
const maxText = 64

// Decode decodes one Ethernet frame into an Event. It reports false for
// frames that are not a DHCP client message (REQUEST, RELEASE), a DHCP ACK or
// an ARP request/reply, and for malformed ones. It is pure (no policy about
// who sent the frame: Run adds that) and safe on any input.
func Decode(frame []byte, now time.Time) (Event, bool) {
	ev, _, res := decode(frame, now)
	return ev, res == decoded
}

// result says why a frame did or did not give an event; Run counts them.
type result uint8

const (
	decoded   result = iota
	ignored          // well-formed, but nothing we report (other traffic, DISCOVER, NAK...)
	malformed        // truncated or inconsistent
)

// origin is what Run's policy needs to know about who put a frame on the
// wire, besides what the kernel says (see frameMeta).
type origin struct {
	// src is the Ethernet source MAC. It aliases the frame: use it before
	// the next read.
	src net.HardwareAddr
	// ipSrc is the IPv4 source address of a DHCP message, zero for ARP.
	ipSrc netip.Addr
}

// Wire constants (IEEE 802.3, RFC 826, RFC 791, RFC 768, RFC 2131/2132).
const (
	ethHeaderLen  = 14
	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806
	hwTypeEther   = 1 // ARP htype and BOOTP htype

	arpRequest = 1
	arpReply   = 2
	// arpLen is the length of an ARP packet for Ethernet and IPv4.
	arpLen = 8 + 2*6 + 2*4

	ipv4MinHeader = 20
	protoUDP      = 17
	ipMoreFrags   = 0x2000 // in the flags + fragment offset word
	ipFragOffset  = 0x1fff
	udpHeaderLen  = 8

	// DHCP ports.
	serverPort = 67
	clientPort = 68

	// bootpLen is the fixed BOOTP header plus the DHCP magic cookie.
	bootpLen    = 240
	dhcpMagic   = 0x63825363
	bootRequest = 1
	bootReply   = 2

	optPad       = 0
	optHostname  = 12
	optRequestIP = 50
	optMsgType   = 53
	optClassID   = 60
	optEnd       = 255

	msgDiscover = 1
	msgRequest  = 3
	msgAck      = 5
	msgRelease  = 7
)

// decode returns the event, who sent the frame (for Run's policy checks
// only) and the result.
func decode(frame []byte, now time.Time) (Event, origin, result) {
	if len(frame) < ethHeaderLen {
		return Event{}, origin{}, malformed
	}
	o := origin{src: net.HardwareAddr(frame[6:12])}
	payload := frame[ethHeaderLen:]
	// An 802.1Q tag still in the frame (the kernel moves the outer one to
	// the packet's metadata, see frameMeta.vlan) or an 802.3 length field
	// lands here too: neither is the LAN's untagged DHCP or ARP.
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case etherTypeARP:
		ev, res := decodeARP(payload, now)
		return ev, o, res
	case etherTypeIPv4:
		ev, ipSrc, res := decodeIPv4(payload, now)
		o.ipSrc = ipSrc
		return ev, o, res
	}
	return Event{}, o, ignored
}

func decodeARP(b []byte, now time.Time) (Event, result) {
	if len(b) < arpLen {
		return Event{}, malformed
	}
	if binary.BigEndian.Uint16(b[0:2]) != hwTypeEther ||
		binary.BigEndian.Uint16(b[2:4]) != etherTypeIPv4 ||
		b[4] != 6 || b[5] != 4 {
		return Event{}, malformed
	}
	if op := binary.BigEndian.Uint16(b[6:8]); op != arpRequest && op != arpReply {
		return Event{}, ignored
	}
	mac := net.HardwareAddr(b[8:14])
	if !unicastMAC(mac) {
		return Event{}, malformed
	}
	ip := netip.AddrFrom4([4]byte(b[14:18]))
	switch {
	case ip.IsUnspecified():
		ip = netip.Addr{} // RFC 5227 probe: the device holds no address yet
	case !ip.IsGlobalUnicast() && !ip.IsLinkLocalUnicast():
		return Event{}, malformed // broadcast, multicast, loopback: not a device's address
	}
	return Event{Kind: ARP, MAC: clone(mac), IP: ip, Time: now}, decoded
}

// decodeIPv4 decodes a DHCP message in an IPv4 packet and returns the
// packet's source address with the event.
func decodeIPv4(b []byte, now time.Time) (Event, netip.Addr, result) {
	if len(b) < ipv4MinHeader || b[0]>>4 != 4 {
		return Event{}, netip.Addr{}, malformed
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	// The total length may be shorter than the payload (Ethernet pads
	// frames to 60 bytes), never longer: that is a truncated packet.
	if ihl < ipv4MinHeader || total < ihl || total > len(b) {
		return Event{}, netip.Addr{}, malformed
	}
	src := netip.AddrFrom4([4]byte(b[12:16]))
	if b[9] != protoUDP {
		return Event{}, src, ignored
	}
	if frag := binary.BigEndian.Uint16(b[6:8]); frag&(ipMoreFrags|ipFragOffset) != 0 {
		// DHCP messages are never fragmented in practice; a fragment
		// cannot be decoded on its own.
		return Event{}, src, ignored
	}
	u := b[ihl:total]
	if len(u) < udpHeaderLen {
		return Event{}, src, malformed
	}
	ulen := int(binary.BigEndian.Uint16(u[4:6]))
	if ulen < udpHeaderLen || ulen > len(u) {
		return Event{}, src, malformed
	}
	sp, dp := binary.BigEndian.Uint16(u[0:2]), binary.BigEndian.Uint16(u[2:4])
	toServer := sp == clientPort && dp == serverPort
	toClient := sp == serverPort && dp == clientPort
	if !toServer && !toClient {
		return Event{}, src, ignored
	}
	// UDP checksums are not verified: frames the gateway sends are seen
	// before checksum offload fills them in, and a checksum protects
	// against corruption, not against a visitor.
	ev, res := decodeDHCP(u[udpHeaderLen:ulen], toServer, now)
	return ev, src, res
}

func decodeDHCP(b []byte, toServer bool, now time.Time) (Event, result) {
	if len(b) < bootpLen || b[1] != hwTypeEther || b[2] != 6 ||
		binary.BigEndian.Uint32(b[236:240]) != dhcpMagic {
		return Event{}, malformed
	}
	var (
		msgType           byte
		requested         netip.Addr
		hostname, vendor  string
		haveType, badOpts bool
	)
	// Options (RFC 2132): pad and end are one byte, every other option is
	// type, length, data. One that overruns the packet makes it malformed;
	// what follows the end option is padding. Option 52 (overload: more
	// options in sname and file) is not followed: none that matters here
	// is ever sent there.
	for opts := b[bootpLen:]; len(opts) > 0; {
		typ := opts[0]
		if typ == optEnd {
			break
		}
		if typ == optPad {
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 || int(opts[1]) > len(opts)-2 {
			return Event{}, malformed
		}
		data := opts[2 : 2+int(opts[1])]
		opts = opts[2+len(data):]
		switch typ {
		case optMsgType:
			if len(data) != 1 || haveType {
				badOpts = true
				continue
			}
			msgType, haveType = data[0], true
		case optRequestIP:
			if len(data) != 4 {
				badOpts = true
				continue
			}
			requested = netip.AddrFrom4([4]byte(data))
		case optHostname:
			hostname = sanitise(data)
		case optClassID:
			vendor = sanitise(data)
		}
	}
	if !haveType || badOpts {
		return Event{}, malformed
	}
	mac := net.HardwareAddr(b[28:34])
	if !unicastMAC(mac) {
		return Event{}, malformed
	}
	ev := Event{MAC: clone(mac), Hostname: hostname, Vendor: vendor, Time: now}
	op := b[0]
	ciaddr := addr4(b[12:16])
	switch {
	case toServer && op == bootRequest && msgType == msgRequest:
		ev.Kind = DHCPRequest
		ev.IP = requested // SELECTING, INIT-REBOOT
		if !ev.IP.IsValid() {
			ev.IP = ciaddr // RENEWING, REBINDING
		}
	case toServer && op == bootRequest && msgType == msgRelease:
		ev.Kind = DHCPRelease
		ev.IP = ciaddr
	case !toServer && op == bootReply && msgType == msgAck:
		ev.Kind = DHCPAck
		ev.IP = addr4(b[16:20]) // yiaddr
		if !ev.IP.IsValid() {
			ev.IP = ciaddr // ACK to a DHCPINFORM: the client configured itself
		}
	default:
		return Event{}, ignored
	}
	if ev.IP.IsValid() && !ev.IP.IsGlobalUnicast() && !ev.IP.IsLinkLocalUnicast() {
		return Event{}, malformed
	}
	return ev, decoded
}

// addr4 converts a 4-byte BOOTP address field, mapping 0.0.0.0 to the zero
// Addr ("unknown").
func addr4(b []byte) netip.Addr {
	a := netip.AddrFrom4([4]byte(b))
	if a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}

// unicastMAC reports whether mac is a 6-byte unicast, non-zero address: a
// device's own address can be nothing else.
func unicastMAC(mac net.HardwareAddr) bool {
	return len(mac) == 6 && mac[0]&1 == 0 && !bytes.Equal(mac, make([]byte, 6))
}

// clone copies b so that an Event never aliases a capture buffer that the
// next read overwrites.
func clone(b []byte) net.HardwareAddr {
	return net.HardwareAddr(bytes.Clone(b))
}

// sanitise makes a DHCP text option safe to show and log: invalid UTF-8 and
// every rune that is not printable (control characters, bidi and other
// format controls that could reorder a staff screen) are dropped, spaces are
// trimmed, and the result is cut to maxText bytes on a rune boundary.
func sanitise(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		b = b[n:]
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			continue
		}
		if sb.Len()+utf8.RuneLen(r) > maxText {
			break
		}
		sb.WriteRune(r)
	}
	return strings.TrimSpace(sb.String())
}
