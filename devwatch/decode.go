// Package devwatch watches the LAN for devices that obtain or announce an
// IPv4 address, so that a visitor's allowlist entry and shaping can follow
// the device when its DHCP lease moves it to a new IP.
//
// It captures DHCP and ARP with a pure-Go AF_PACKET socket (gopacket's
// pcapgo.EthernetHandle, no cgo) behind a classic BPF filter and decodes the
// frames with gopacket's layers. Every byte it decodes is controlled by a
// visitor, so decoding validates lengths itself before handing bytes to
// gopacket (two of gopacket v1.1.19's decoders panic on hostile lengths) and
// never retains a slice of the frame.
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

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Kind says what a frame told about a device.
type Kind uint8

const (
	// DHCPAck: a DHCP server acknowledged a lease; IP is the address the
	// device now holds. Run only reports ACKs sent by the gateway itself
	// (or a server passed to TrustDHCPServer), because anyone on the LAN can
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
	var d decoder
	ev, _, res := d.decode(frame, now)
	return ev, res == decoded
}

// result says why a frame did or did not give an event; Run counts them.
type result uint8

const (
	decoded   result = iota
	ignored          // well-formed, but nothing we report (other traffic, DISCOVER, NAK...)
	malformed        // truncated or inconsistent
)

// decoder holds the layers reused across frames, so that Run decodes
// without allocating per layer. A decoder is not safe for concurrent use.
type decoder struct {
	eth  layers.Ethernet
	ip4  layers.IPv4
	udp  layers.UDP
	arp  layers.ARP
	dhcp layers.DHCPv4
	fb   feedback
}

// feedback records gopacket's "truncated" signal: its IPv4 and UDP decoders
// cut a length field that overruns the frame and carry on instead of failing.
type feedback struct{ truncated bool }

func (f *feedback) SetTruncated() { f.truncated = true }

// decode returns the event, the frame's Ethernet source MAC (aliasing frame,
// for Run's policy checks only) and the result.
func (d *decoder) decode(frame []byte, now time.Time) (Event, net.HardwareAddr, result) {
	df := gopacket.NilDecodeFeedback
	if err := d.eth.DecodeFromBytes(frame, df); err != nil {
		return Event{}, nil, malformed
	}
	src := d.eth.SrcMAC
	switch d.eth.EthernetType {
	case layers.EthernetTypeARP:
		ev, res := d.decodeARP(d.eth.Payload, now)
		return ev, src, res
	case layers.EthernetTypeIPv4:
		ev, res := d.decodeIPv4(d.eth.Payload, now)
		return ev, src, res
	}
	return Event{}, src, ignored
}

// arpLen is the length of an ARP packet for Ethernet and IPv4.
const arpLen = 8 + 2*6 + 2*4

func (d *decoder) decodeARP(b []byte, now time.Time) (Event, result) {
	// gopacket's ARP decoder computes the packet length in uint8 and can
	// slice out of range on hostile address sizes: check them first.
	if len(b) < arpLen {
		return Event{}, malformed
	}
	if binary.BigEndian.Uint16(b[0:2]) != uint16(layers.LinkTypeEthernet) ||
		binary.BigEndian.Uint16(b[2:4]) != uint16(layers.EthernetTypeIPv4) ||
		b[4] != 6 || b[5] != 4 {
		return Event{}, malformed
	}
	if err := d.arp.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
		return Event{}, malformed
	}
	if d.arp.Operation != layers.ARPRequest && d.arp.Operation != layers.ARPReply {
		return Event{}, ignored
	}
	mac := net.HardwareAddr(d.arp.SourceHwAddress)
	if !unicastMAC(mac) {
		return Event{}, malformed
	}
	ip := netip.AddrFrom4([4]byte(d.arp.SourceProtAddress))
	switch {
	case ip.IsUnspecified():
		ip = netip.Addr{} // RFC 5227 probe: the device holds no address yet
	case !ip.IsGlobalUnicast() && !ip.IsLinkLocalUnicast():
		return Event{}, malformed // broadcast, multicast, loopback: not a device's address
	}
	return Event{Kind: ARP, MAC: clone(mac), IP: ip, Time: now}, decoded
}

// DHCP ports.
const (
	serverPort = 67
	clientPort = 68
)

func (d *decoder) decodeIPv4(b []byte, now time.Time) (Event, result) {
	d.fb.truncated = false
	if err := d.ip4.DecodeFromBytes(b, &d.fb); err != nil || d.fb.truncated || d.ip4.Version != 4 {
		return Event{}, malformed
	}
	if d.ip4.Protocol != layers.IPProtocolUDP {
		return Event{}, ignored
	}
	if d.ip4.Flags&layers.IPv4MoreFragments != 0 || d.ip4.FragOffset != 0 {
		// DHCP messages are never fragmented in practice; a fragment
		// cannot be decoded on its own.
		return Event{}, ignored
	}
	if err := d.udp.DecodeFromBytes(d.ip4.Payload, &d.fb); err != nil || d.fb.truncated {
		return Event{}, malformed
	}
	sp, dp := d.udp.SrcPort, d.udp.DstPort
	toServer := sp == clientPort && dp == serverPort
	toClient := sp == serverPort && dp == clientPort
	if !toServer && !toClient {
		return Event{}, ignored
	}
	// UDP checksums are not verified: frames the gateway sends are seen
	// before checksum offload fills them in, and a checksum protects
	// against corruption, not against a visitor.
	return d.decodeDHCP(d.udp.Payload, toServer, now)
}

// bootpLen is the fixed BOOTP header plus the DHCP magic cookie.
const bootpLen = 240

func (d *decoder) decodeDHCP(b []byte, toServer bool, now time.Time) (Event, result) {
	// gopacket's DHCPv4 decoder slices chaddr with the packet's hlen
	// unchecked (hlen 255 on a 240-byte packet panics): check it first.
	if len(b) < bootpLen || b[1] != byte(layers.LinkTypeEthernet) || b[2] != 6 {
		return Event{}, malformed
	}
	if err := d.dhcp.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
		return Event{}, malformed
	}
	var (
		msgType           layers.DHCPMsgType
		requested         netip.Addr
		hostname, vendor  string
		haveType, badOpts bool
	)
	for _, o := range d.dhcp.Options {
		switch o.Type {
		case layers.DHCPOptMessageType:
			if len(o.Data) != 1 || haveType {
				badOpts = true
				continue
			}
			msgType, haveType = layers.DHCPMsgType(o.Data[0]), true
		case layers.DHCPOptRequestIP:
			if len(o.Data) != 4 {
				badOpts = true
				continue
			}
			requested = netip.AddrFrom4([4]byte(o.Data))
		case layers.DHCPOptHostname:
			hostname = sanitise(o.Data)
		case layers.DHCPOptClassID:
			vendor = sanitise(o.Data)
		}
	}
	if !haveType || badOpts {
		return Event{}, malformed
	}
	mac := net.HardwareAddr(d.dhcp.ClientHWAddr)
	if !unicastMAC(mac) {
		return Event{}, malformed
	}
	ev := Event{MAC: clone(mac), Hostname: hostname, Vendor: vendor, Time: now}
	ciaddr := addr4(d.dhcp.ClientIP)
	switch {
	case toServer && d.dhcp.Operation == layers.DHCPOpRequest && msgType == layers.DHCPMsgTypeRequest:
		ev.Kind = DHCPRequest
		ev.IP = requested // SELECTING, INIT-REBOOT
		if !ev.IP.IsValid() {
			ev.IP = ciaddr // RENEWING, REBINDING
		}
	case toServer && d.dhcp.Operation == layers.DHCPOpRequest && msgType == layers.DHCPMsgTypeRelease:
		ev.Kind = DHCPRelease
		ev.IP = ciaddr
	case !toServer && d.dhcp.Operation == layers.DHCPOpReply && msgType == layers.DHCPMsgTypeAck:
		ev.Kind = DHCPAck
		ev.IP = addr4(d.dhcp.YourClientIP)
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
func addr4(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a.Unmap()
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
