package devwatch

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

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
	dnsHeader := make([]byte, 12) // an empty DNS message
	udp := func(sp, dp uint16, frag uint16) []byte {
		return ethFrame(phoneMAC, gwMAC, etherTypeIPv4, udpPacket(phoneIP, gwIP, sp, dp, nil, frag, dnsHeader))
	}
	withIPOptions := func() []byte { // IHL 6: the ports move by 4 bytes
		return ethFrame(phoneMAC, gwMAC, etherTypeIPv4,
			udpPacket(phoneIP, gwIP, clientPort, serverPort, []byte{148, 4, 0, 0}, 0, dnsHeader))
	}
	tcp := func(dp uint16) []byte {
		h := make([]byte, 20) // SYN from port 40000, no options
		binary.BigEndian.PutUint16(h[0:2], 40000)
		binary.BigEndian.PutUint16(h[2:4], dp)
		h[12], h[13] = 5<<4, 0x02
		binary.BigEndian.PutUint16(h[14:16], 1024)
		return ethFrame(phoneMAC, gwMAC, etherTypeIPv4, ipv4Packet(6, phoneIP, gwIP, nil, 0, h))
	}
	// IPv6 carrying UDP 68->67: 40-byte header, next header UDP, hop limit 1.
	ip6 := make([]byte, 40+udpHeaderLen)
	ip6[0] = 6 << 4
	binary.BigEndian.PutUint16(ip6[4:6], udpHeaderLen)
	ip6[6], ip6[7] = protoUDP, 1
	src6, dst6 := netip.MustParseAddr("2001:db8::42").As16(), netip.MustParseAddr("2001:db8::1").As16()
	copy(ip6[8:24], src6[:])
	copy(ip6[24:40], dst6[:])
	binary.BigEndian.PutUint16(ip6[40:42], clientPort)
	binary.BigEndian.PutUint16(ip6[42:44], serverPort)
	binary.BigEndian.PutUint16(ip6[44:46], udpHeaderLen)
	ipv6 := ethFrame(phoneMAC, gwMAC, 0x86dd, ip6)
	tests := []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"dhcp request", clientMsg(msgRequest).frame(t), true},
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
