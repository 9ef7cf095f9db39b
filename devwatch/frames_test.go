package devwatch

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
)

// Addresses used by the tests: documentation ranges and locally
// administered MACs only.
var (
	gwMAC      = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x01}
	phoneMAC   = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x42}
	spooferMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x66}
	bcastMAC   = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	gwIP       = netip.MustParseAddr("198.51.100.1")
	phoneIP    = netip.MustParseAddr("198.51.100.42")
	phoneIP2   = netip.MustParseAddr("198.51.100.43")
)

// DHCP message types the decoder does not name (RFC 2132, option 53).
const msgNak = 6

// dhcpMsg describes a DHCP message to build.
type dhcpMsg struct {
	src, dst         net.HardwareAddr // Ethernet
	srcIP, dstIP     netip.Addr
	toServer         bool // client→server (ports 68→67) rather than server→client
	op               byte // BOOTP op: bootRequest or bootReply
	msgType          byte // option 53
	chaddr           net.HardwareAddr
	ciaddr, yiaddr   netip.Addr
	requested        netip.Addr // option 50
	hostname, vendor []byte     // options 12 and 60, omitted when nil
}

// clientMsg is a DHCP message from phoneMAC to the broadcast address.
func clientMsg(t byte) dhcpMsg {
	return dhcpMsg{
		src: phoneMAC, dst: bcastMAC,
		srcIP: netip.IPv4Unspecified(), dstIP: netip.MustParseAddr("255.255.255.255"),
		toServer: true, op: bootRequest, msgType: t, chaddr: phoneMAC,
	}
}

// ackMsg is the gateway's DHCP ACK giving ip to phoneMAC.
func ackMsg(ip netip.Addr) dhcpMsg {
	return dhcpMsg{
		src: gwMAC, dst: phoneMAC, srcIP: gwIP, dstIP: ip,
		op: bootReply, msgType: msgAck, chaddr: phoneMAC, yiaddr: ip,
	}
}

// ip4 returns a's four bytes, 0.0.0.0 for the zero Addr.
func ip4(a netip.Addr) []byte {
	if !a.IsValid() {
		return make([]byte, 4)
	}
	b := a.As4()
	return b[:]
}

// ethFrame returns an Ethernet frame carrying payload, padded with zeros
// to the 60-byte minimum (without the FCS) as a NIC would send it.
func ethFrame(src, dst net.HardwareAddr, etherType uint16, payload []byte) []byte {
	f := make([]byte, ethHeaderLen, max(60, ethHeaderLen+len(payload)))
	copy(f[0:6], dst)
	copy(f[6:12], src)
	binary.BigEndian.PutUint16(f[12:14], etherType)
	f = append(f, payload...)
	return f[:cap(f)]
}

// checksum is the Internet checksum (RFC 1071) of the concatenated parts.
func checksum(parts ...[]byte) uint16 {
	var sum uint32
	var odd []byte
	for _, p := range parts {
		p = append(odd, p...)
		for ; len(p) >= 2; p = p[2:] {
			sum += uint32(binary.BigEndian.Uint16(p))
		}
		odd = append([]byte(nil), p...)
	}
	if len(odd) == 1 {
		sum += uint32(odd[0]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// ipv4Packet is an IPv4 header (TTL 64, the given options, flags and
// fragment offset) with its length and checksum filled in, followed by
// payload.
func ipv4Packet(proto byte, src, dst netip.Addr, options []byte, frag uint16, payload []byte) []byte {
	h := make([]byte, ipv4MinHeader+len(options))
	h[0] = 4<<4 | byte(len(h)/4)
	binary.BigEndian.PutUint16(h[2:4], uint16(len(h)+len(payload)))
	binary.BigEndian.PutUint16(h[6:8], frag)
	h[8] = 64
	h[9] = proto
	copy(h[12:16], ip4(src))
	copy(h[16:20], ip4(dst))
	copy(h[20:], options)
	binary.BigEndian.PutUint16(h[10:12], checksum(h))
	return append(h, payload...)
}

// udpPacket is an IPv4 packet carrying a UDP datagram, checksummed.
func udpPacket(src, dst netip.Addr, sp, dp uint16, options []byte, frag uint16, payload []byte) []byte {
	u := make([]byte, udpHeaderLen, udpHeaderLen+len(payload))
	binary.BigEndian.PutUint16(u[0:2], sp)
	binary.BigEndian.PutUint16(u[2:4], dp)
	binary.BigEndian.PutUint16(u[4:6], uint16(udpHeaderLen+len(payload)))
	u = append(u, payload...)
	pseudo := append(append(ip4(src), ip4(dst)...), 0, protoUDP, byte(len(u)>>8), byte(len(u)))
	c := checksum(pseudo, u)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:8], c)
	return ipv4Packet(protoUDP, src, dst, options, frag, u)
}

// bootp returns the DHCP message: BOOTP header, magic cookie, the options
// and an end option.
func (m dhcpMsg) bootp() []byte {
	b := make([]byte, bootpLen)
	b[0] = m.op
	b[1] = hwTypeEther
	b[2] = byte(len(m.chaddr))
	binary.BigEndian.PutUint32(b[4:8], 0x5ca1ab1e) // xid
	copy(b[12:16], ip4(m.ciaddr))
	copy(b[16:20], ip4(m.yiaddr))
	copy(b[28:44], m.chaddr)
	binary.BigEndian.PutUint32(b[236:240], dhcpMagic)
	opt := func(typ byte, data []byte) { b = append(append(b, typ, byte(len(data))), data...) }
	opt(optMsgType, []byte{m.msgType})
	if m.requested.IsValid() {
		opt(optRequestIP, ip4(m.requested))
	}
	if m.hostname != nil {
		opt(optHostname, m.hostname)
	}
	if m.vendor != nil {
		opt(optClassID, m.vendor)
	}
	return append(b, optEnd)
}

func (m dhcpMsg) frame(tb testing.TB) []byte {
	tb.Helper()
	sp, dp := uint16(serverPort), uint16(clientPort)
	if m.toServer {
		sp, dp = dp, sp
	}
	return ethFrame(m.src, m.dst, etherTypeIPv4, udpPacket(m.srcIP, m.dstIP, sp, dp, nil, 0, m.bootp()))
}

// arpFrame builds an ARP frame sent by src, claiming sha/spa.
func arpFrame(tb testing.TB, op uint16, src, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	tb.Helper()
	dst := bcastMAC
	if op == arpReply {
		dst = tha
	}
	a := make([]byte, arpLen)
	binary.BigEndian.PutUint16(a[0:2], hwTypeEther)
	binary.BigEndian.PutUint16(a[2:4], etherTypeIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], op)
	copy(a[8:14], sha)
	copy(a[14:18], ip4(spa))
	copy(a[18:24], tha)
	copy(a[24:28], ip4(tpa))
	return ethFrame(src, dst, etherTypeARP, a)
}

// gratuitousARP is phoneMAC announcing ip (a request for its own address).
func gratuitousARP(tb testing.TB, ip netip.Addr) []byte {
	return arpFrame(tb, arpRequest, phoneMAC, phoneMAC, ip, make(net.HardwareAddr, 6), ip)
}

// dhcpFrame wraps a DHCP message (BOOTP header and options) the way m.frame
// does, so that a test can hand-edit the message first.
func (m dhcpMsg) dhcpFrame(bootp []byte) []byte {
	sp, dp := uint16(serverPort), uint16(clientPort)
	if m.toServer {
		sp, dp = dp, sp
	}
	return ethFrame(m.src, m.dst, etherTypeIPv4, udpPacket(m.srcIP, m.dstIP, sp, dp, nil, 0, bootp))
}

// Offsets into a frame from dhcpMsg.frame: the IPv4 header, the UDP
// header and the BOOTP message.
const (
	offIP    = ethHeaderLen
	offUDP   = offIP + ipv4MinHeader
	offBOOTP = offUDP + udpHeaderLen
)

// hostileFrames are frames a visitor can put on the LAN to break a
// hand-written decoder: every one must be refused, none may panic. The
// fuzzer starts from them too.
func hostileFrames(tb testing.TB) map[string][]byte {
	ack := ackMsg(phoneIP)
	ack.hostname = []byte("amal-phone")
	good := ack.frame(tb)
	edit := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	bootp := func(f func(b []byte) []byte) []byte { return ack.dhcpFrame(f(ack.bootp())) }
	vlan := append(append(bytes.Clone(good[:12]), 0x81, 0x00, 0x00, 0x07), good[12:]...)
	return map[string][]byte{
		"vlan-tag-in-frame": vlan, // an 802.1Q header the kernel left in place
		"ip-version-6":      edit(func(b []byte) { b[offIP] = 6<<4 | 5 }),
		"ip-ihl-4":          edit(func(b []byte) { b[offIP] = 4<<4 | 4 }),
		"ip-ihl-beyond-total": edit(func(b []byte) {
			b[offIP] = 4<<4 | 15
			binary.BigEndian.PutUint16(b[offIP+2:], 40)
		}),
		"ip-total-below-header":  edit(func(b []byte) { binary.BigEndian.PutUint16(b[offIP+2:], 12) }),
		"ip-total-beyond-frame":  edit(func(b []byte) { binary.BigEndian.PutUint16(b[offIP+2:], 0xffff) }),
		"ip-more-fragments":      edit(func(b []byte) { b[offIP+6] |= 0x20 }),
		"udp-length-below-8":     edit(func(b []byte) { binary.BigEndian.PutUint16(b[offUDP+4:], 4) }),
		"udp-length-beyond-ip":   edit(func(b []byte) { binary.BigEndian.PutUint16(b[offUDP+4:], 2000) }),
		"dhcp-bad-magic":         edit(func(b []byte) { b[offBOOTP+236] ^= 0xff }),
		"dhcp-htype-not-ether":   edit(func(b []byte) { b[offBOOTP+1] = 6 }),
		"dhcp-no-message-type":   bootp(func(b []byte) []byte { return append(b[:bootpLen], optPad, optPad, optPad, optEnd) }),
		"dhcp-two-message-types": bootp(func(b []byte) []byte { return append(b[:len(b)-1], optMsgType, 1, msgAck, optEnd) }),
		"dhcp-option-overrun": bootp(func(b []byte) []byte {
			i := bytes.Index(b[bootpLen:], []byte("amal-phone")) + bootpLen
			b[i-1] = 200 // the hostname's length runs past the message
			return b
		}),
		"dhcp-option-length-missing": bootp(func(b []byte) []byte { return append(b[:len(b)-1], optHostname) }),
		"dhcp-requested-ip-3-bytes":  bootp(func(b []byte) []byte { return append(b[:len(b)-1], optRequestIP, 3, 198, 51, 100, optEnd) }),
	}
}
