package devwatch

import (
	"net"
	"slices"
	"testing"

	"github.com/google/gopacket/layers"
	"golang.org/x/net/bpf"
)

// TestFilterMatchesTcpdump pins the assembled program to the IPv4 half of
//
//	tcpdump -dd 'arp or (udp and (port 67 or port 68))'
//
// (tcpdump 4.99), with its ip6 branch replaced by a drop and its snap
// length by snapLen.
func TestFilterMatchesTcpdump(t *testing.T) {
	want := []bpf.RawInstruction{
		{Op: 0x28, Jt: 0, Jf: 0, K: 0x0000000c},
		{Op: 0x15, Jt: 12, Jf: 0, K: 0x00000806},
		{Op: 0x15, Jt: 0, Jf: 12, K: 0x00000800},
		{Op: 0x30, Jt: 0, Jf: 0, K: 0x00000017},
		{Op: 0x15, Jt: 0, Jf: 10, K: 0x00000011},
		{Op: 0x28, Jt: 0, Jf: 0, K: 0x00000014},
		{Op: 0x45, Jt: 8, Jf: 0, K: 0x00001fff},
		{Op: 0xb1, Jt: 0, Jf: 0, K: 0x0000000e},
		{Op: 0x48, Jt: 0, Jf: 0, K: 0x0000000e},
		{Op: 0x15, Jt: 4, Jf: 0, K: 0x00000043},
		{Op: 0x15, Jt: 3, Jf: 0, K: 0x00000044},
		{Op: 0x48, Jt: 0, Jf: 0, K: 0x00000010},
		{Op: 0x15, Jt: 1, Jf: 0, K: 0x00000043},
		{Op: 0x15, Jt: 0, Jf: 1, K: 0x00000044},
		{Op: 0x6, Jt: 0, Jf: 0, K: snapLen},
		{Op: 0x6, Jt: 0, Jf: 0, K: 0x00000000},
	}
	got, err := filter()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("filter() =\n%v\nwant\n%v", got, want)
	}
}

// TestFilterSelects runs the program in x/net/bpf's VM over sample frames.
func TestFilterSelects(t *testing.T) {
	vm, err := bpf.NewVM(filterProgram)
	if err != nil {
		t.Fatal(err)
	}
	udp := func(sp, dp layers.UDPPort, frag uint16) []byte {
		eth := &layers.Ethernet{SrcMAC: phoneMAC, DstMAC: gwMAC, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, FragOffset: frag,
			SrcIP: ip4(phoneIP), DstIP: ip4(gwIP)}
		u := &layers.UDP{SrcPort: sp, DstPort: dp}
		_ = u.SetNetworkLayerForChecksum(ip)
		return serialize(t, eth, ip, u, &layers.DNS{})
	}
	withIPOptions := func() []byte { // IHL 6: the ports move by 4 bytes
		eth := &layers.Ethernet{SrcMAC: phoneMAC, DstMAC: gwMAC, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: ip4(phoneIP), DstIP: ip4(gwIP),
			Options: []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}}
		u := &layers.UDP{SrcPort: clientPort, DstPort: serverPort}
		_ = u.SetNetworkLayerForChecksum(ip)
		return serialize(t, eth, ip, u, &layers.DNS{})
	}
	tcp := func(dp layers.TCPPort) []byte {
		eth := &layers.Ethernet{SrcMAC: phoneMAC, DstMAC: gwMAC, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: ip4(phoneIP), DstIP: ip4(gwIP)}
		tc := &layers.TCP{SrcPort: 40000, DstPort: dp, SYN: true, Window: 1024}
		_ = tc.SetNetworkLayerForChecksum(ip)
		return serialize(t, eth, ip, tc)
	}
	ip6 := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolUDP, HopLimit: 1,
		SrcIP: net.ParseIP("2001:db8::42"), DstIP: net.ParseIP("2001:db8::1")}
	u6 := &layers.UDP{SrcPort: clientPort, DstPort: serverPort}
	_ = u6.SetNetworkLayerForChecksum(ip6)
	ipv6 := serialize(t, &layers.Ethernet{SrcMAC: phoneMAC, DstMAC: gwMAC, EthernetType: layers.EthernetTypeIPv6}, ip6, u6)
	tests := []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"dhcp request", clientMsg(layers.DHCPMsgTypeRequest).frame(t), true},
		{"dhcp ack", ackMsg(phoneIP).frame(t), true},
		{"arp", gratuitousARP(t, phoneIP), true},
		{"udp from 68 only", udp(clientPort, 5353, 0), true},
		{"udp to 67 only", udp(40000, serverPort, 0), true},
		{"udp to 68 only", udp(40000, clientPort, 0), true},
		{"udp with ip options", withIPOptions(), true},
		{"dns", udp(40000, 53, 0), false},
		{"non-first fragment", udp(clientPort, serverPort, 185), false},
		{"tcp to 67", tcp(67), false},
		{"ipv6 udp 68->67", ipv6, false},
	}
	for _, tt := range tests {
		n, err := vm.Run(tt.frame)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := n > 0; got != tt.want {
			t.Errorf("%s: accepted = %v, want %v", tt.name, got, tt.want)
		}
		if n > 0 && n != snapLen {
			t.Errorf("%s: snap length %d, want %d", tt.name, n, snapLen)
		}
	}
}
