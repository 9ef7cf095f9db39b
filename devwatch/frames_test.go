package devwatch

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
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

// dhcpMsg describes a DHCP message to build.
type dhcpMsg struct {
	src, dst         net.HardwareAddr // Ethernet
	srcIP, dstIP     netip.Addr
	toServer         bool // client→server (ports 68→67) rather than server→client
	op               layers.DHCPOp
	msgType          layers.DHCPMsgType
	chaddr           net.HardwareAddr
	ciaddr, yiaddr   netip.Addr
	requested        netip.Addr // option 50
	hostname, vendor []byte     // options 12 and 60, omitted when nil
}

// clientMsg is a DHCP message from phoneMAC to the broadcast address.
func clientMsg(t layers.DHCPMsgType) dhcpMsg {
	return dhcpMsg{
		src: phoneMAC, dst: bcastMAC,
		srcIP: netip.IPv4Unspecified(), dstIP: netip.MustParseAddr("255.255.255.255"),
		toServer: true, op: layers.DHCPOpRequest, msgType: t, chaddr: phoneMAC,
	}
}

// ackMsg is the gateway's DHCP ACK giving ip to phoneMAC.
func ackMsg(ip netip.Addr) dhcpMsg {
	return dhcpMsg{
		src: gwMAC, dst: phoneMAC, srcIP: gwIP, dstIP: ip,
		op: layers.DHCPOpReply, msgType: layers.DHCPMsgTypeAck, chaddr: phoneMAC, yiaddr: ip,
	}
}

func ip4(a netip.Addr) net.IP {
	if !a.IsValid() {
		return net.IPv4zero.To4()
	}
	b := a.As4()
	return net.IP(b[:])
}

// serialize builds a frame with lengths and checksums filled in.
func serialize(tb testing.TB, ls ...gopacket.SerializableLayer) []byte {
	tb.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		tb.Fatalf("serializing frame: %v", err)
	}
	return buf.Bytes()
}

func (m dhcpMsg) frame(tb testing.TB) []byte {
	tb.Helper()
	sp, dp := layers.UDPPort(serverPort), layers.UDPPort(clientPort)
	if m.toServer {
		sp, dp = dp, sp
	}
	eth := &layers.Ethernet{SrcMAC: m.src, DstMAC: m.dst, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: ip4(m.srcIP), DstIP: ip4(m.dstIP)}
	udp := &layers.UDP{SrcPort: sp, DstPort: dp}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		tb.Fatal(err)
	}
	d := &layers.DHCPv4{
		Operation: m.op, HardwareType: layers.LinkTypeEthernet, HardwareLen: 6,
		Xid: 0x5ca1ab1e, ClientIP: ip4(m.ciaddr), YourClientIP: ip4(m.yiaddr),
		NextServerIP: ip4(netip.Addr{}), RelayAgentIP: ip4(netip.Addr{}), ClientHWAddr: m.chaddr,
	}
	d.Options = append(d.Options, layers.NewDHCPOption(layers.DHCPOptMessageType, []byte{byte(m.msgType)}))
	if m.requested.IsValid() {
		d.Options = append(d.Options, layers.NewDHCPOption(layers.DHCPOptRequestIP, ip4(m.requested)))
	}
	if m.hostname != nil {
		d.Options = append(d.Options, layers.NewDHCPOption(layers.DHCPOptHostname, m.hostname))
	}
	if m.vendor != nil {
		d.Options = append(d.Options, layers.NewDHCPOption(layers.DHCPOptClassID, m.vendor))
	}
	return serialize(tb, eth, ip, udp, d)
}

// arpFrame builds an ARP frame sent by src, claiming sha/spa.
func arpFrame(tb testing.TB, op uint16, src, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	tb.Helper()
	dst := bcastMAC
	if op == layers.ARPReply {
		dst = tha
	}
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeARP}
	a := &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: op,
		SourceHwAddress: sha, SourceProtAddress: ip4(spa),
		DstHwAddress: tha, DstProtAddress: ip4(tpa),
	}
	return serialize(tb, eth, a)
}

// gratuitousARP is phoneMAC announcing ip (a request for its own address).
func gratuitousARP(tb testing.TB, ip netip.Addr) []byte {
	return arpFrame(tb, layers.ARPRequest, phoneMAC, phoneMAC, ip, make(net.HardwareAddr, 6), ip)
}
