package devwatch

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)

func TestDecodeEvents(t *testing.T) {
	withOpts := func(m dhcpMsg, f func(*dhcpMsg)) dhcpMsg { f(&m); return m }
	tests := []struct {
		name  string
		frame func(testing.TB) []byte
		want  Event
	}{{
		name: "ack with hostname and vendor",
		frame: withOpts(ackMsg(phoneIP), func(m *dhcpMsg) {
			m.hostname, m.vendor = []byte("amal-phone"), []byte("android-dhcp-14")
		}).frame,
		want: Event{Kind: DHCPAck, MAC: phoneMAC, IP: phoneIP, Hostname: "amal-phone", Vendor: "android-dhcp-14"},
	}, {
		name: "ack to inform falls back to ciaddr",
		frame: withOpts(ackMsg(netip.Addr{}), func(m *dhcpMsg) {
			m.ciaddr = phoneIP2
		}).frame,
		want: Event{Kind: DHCPAck, MAC: phoneMAC, IP: phoneIP2},
	}, {
		name: "request selecting with requested-ip option",
		frame: withOpts(clientMsg(msgRequest), func(m *dhcpMsg) {
			m.requested, m.hostname, m.vendor = phoneIP, []byte("Amals-iPhone"), []byte("MSFT 5.0")
		}).frame,
		want: Event{Kind: DHCPRequest, MAC: phoneMAC, IP: phoneIP, Hostname: "Amals-iPhone", Vendor: "MSFT 5.0"},
	}, {
		name: "request renewing uses ciaddr",
		frame: withOpts(clientMsg(msgRequest), func(m *dhcpMsg) {
			m.srcIP, m.dstIP, m.ciaddr = phoneIP2, gwIP, phoneIP2
		}).frame,
		want: Event{Kind: DHCPRequest, MAC: phoneMAC, IP: phoneIP2},
	}, {
		name: "release",
		frame: withOpts(clientMsg(msgRelease), func(m *dhcpMsg) {
			m.srcIP, m.dstIP, m.ciaddr = phoneIP, gwIP, phoneIP
		}).frame,
		want: Event{Kind: DHCPRelease, MAC: phoneMAC, IP: phoneIP},
	}, {
		name: "hostname control characters, bidi overrides and invalid utf-8 dropped",
		frame: withOpts(clientMsg(msgRequest), func(m *dhcpMsg) {
			m.requested = phoneIP
			m.hostname = []byte("  am\x00al\r\n\x1b[31m\u202eenohp\xff\xfe ")
			m.vendor = []byte("vendor\x07")
		}).frame,
		want: Event{Kind: DHCPRequest, MAC: phoneMAC, IP: phoneIP, Hostname: "amal[31menohp", Vendor: "vendor"},
	}, {
		name: "utf-8 hostname kept, cut to 64 bytes on a rune boundary",
		frame: withOpts(clientMsg(msgRequest), func(m *dhcpMsg) {
			m.requested = phoneIP
			m.hostname = []byte("x" + strings.Repeat("هاتف", 10)) // 81 bytes, 2-byte runes
		}).frame,
		want: Event{Kind: DHCPRequest, MAC: phoneMAC, IP: phoneIP, Hostname: "x" + strings.Repeat("هاتف", 7) + "هات"},
	}, {
		name: "arp request",
		frame: func(tb testing.TB) []byte {
			return arpFrame(tb, arpRequest, phoneMAC, phoneMAC, phoneIP, make(net.HardwareAddr, 6), gwIP)
		},
		want: Event{Kind: ARP, MAC: phoneMAC, IP: phoneIP},
	}, {
		name: "arp reply",
		frame: func(tb testing.TB) []byte {
			return arpFrame(tb, arpReply, phoneMAC, phoneMAC, phoneIP, gwMAC, gwIP)
		},
		want: Event{Kind: ARP, MAC: phoneMAC, IP: phoneIP},
	}, {
		name:  "gratuitous arp",
		frame: func(tb testing.TB) []byte { return gratuitousARP(tb, phoneIP2) },
		want:  Event{Kind: ARP, MAC: phoneMAC, IP: phoneIP2},
	}, {
		name: "arp probe has no address yet",
		frame: func(tb testing.TB) []byte {
			return arpFrame(tb, arpRequest, phoneMAC, phoneMAC, netip.Addr{}, make(net.HardwareAddr, 6), phoneIP)
		},
		want: Event{Kind: ARP, MAC: phoneMAC},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := tt.frame(t)
			got, ok := Decode(frame, t0)
			if !ok {
				t.Fatalf("Decode = false, want %+v", tt.want)
			}
			tt.want.Time = t0
			if !eventEqual(got, tt.want) {
				t.Errorf("Decode =\n %+v\nwant\n %+v", got, tt.want)
			}
			// The event must not alias the frame: Run reuses its buffer.
			for i := range frame {
				frame[i] ^= 0xff
			}
			if !eventEqual(got, tt.want) {
				t.Errorf("event changed with the frame buffer: %+v", got)
			}
		})
	}
}

func eventEqual(a, b Event) bool {
	return a.Kind == b.Kind && bytes.Equal(a.MAC, b.MAC) && a.IP == b.IP &&
		a.Hostname == b.Hostname && a.Vendor == b.Vendor && a.Time.Equal(b.Time)
}

func TestDecodeRejects(t *testing.T) {
	withOpts := func(m dhcpMsg, f func(*dhcpMsg)) []byte { f(&m); return m.frame(t) }
	ack := ackMsg(phoneIP).frame(t)
	arp := gratuitousARP(t, phoneIP)
	tests := map[string][]byte{
		"nil":                                nil,
		"short":                              {0x01, 0x02, 0x03},
		"ethernet header only":               ack[:14],
		"garbage":                            bytes.Repeat([]byte{0xa5}, 600),
		"arp truncated":                      arp[:14+20],
		"dhcp truncated in the bootp header": ack[:14+20+8+100],
		"dhcp cut inside the ip length":      ack[:len(ack)-3],
		"discover is not reported":           clientMsg(msgDiscover).frame(t),
		"nak is not reported":                withOpts(ackMsg(phoneIP), func(m *dhcpMsg) { m.msgType = msgNak }),
		"ack sent to the server port":        withOpts(ackMsg(phoneIP), func(m *dhcpMsg) { m.toServer = true }),
		"request as a bootp reply":           withOpts(clientMsg(msgRequest), func(m *dhcpMsg) { m.op = bootReply }),
		"multicast chaddr":                   withOpts(ackMsg(phoneIP), func(m *dhcpMsg) { m.chaddr = bcastMAC }),
		"ack of a broadcast address":         ackMsg(netip.MustParseAddr("255.255.255.255")).frame(t),
		"ack of a multicast address":         ackMsg(netip.MustParseAddr("224.0.0.251")).frame(t),
		"arp from a multicast sender": arpFrame(t, arpRequest, phoneMAC, bcastMAC, phoneIP,
			make(net.HardwareAddr, 6), gwIP),
		"arp claiming loopback": arpFrame(t, arpRequest, phoneMAC, phoneMAC, netip.MustParseAddr("127.0.0.1"),
			make(net.HardwareAddr, 6), gwIP),
		"arp with an unknown operation": arpFrame(t, 9, phoneMAC, phoneMAC, phoneIP, make(net.HardwareAddr, 6), gwIP),
	}
	// Frames that crash gopacket v1.1.19's own decoders when handed over
	// unchecked: DHCP hlen 255 on a minimal packet, ARP address sizes whose
	// uint8 length sum wraps around.
	hlen := bytes.Clone(ack)
	hlen[14+20+8+2] = 255
	tests["dhcp hlen 255 (gopacket panic)"] = hlen[:14+20+8+240]
	arpWrap := bytes.Clone(arp)
	arpWrap[14+4], arpWrap[14+5] = 128, 0
	tests["arp address sizes wrapping uint8 (gopacket panic)"] = arpWrap
	badType := bytes.Clone(ack)
	i := bytes.Index(badType[14+20+8+240:], []byte{53, 1}) + 14 + 20 + 8 + 240
	badType[i+1] = 2 // message type option of length 2
	tests["message type option with a bad length"] = badType
	for name, frame := range hostileFrames(t) {
		tests[name] = frame
	}

	for name, frame := range tests {
		t.Run(name, func(t *testing.T) {
			if ev, ok := Decode(frame, t0); ok {
				t.Errorf("Decode = %+v, true; want false", ev)
			}
		})
	}
}

// TestDecodePrefixes feeds every prefix of valid frames: none may panic,
// and none shorter than the frame's headers (and, for DHCP, than its IP
// length) may decode.
func TestDecodePrefixes(t *testing.T) {
	m := clientMsg(msgRequest)
	m.requested, m.hostname, m.vendor = phoneIP, []byte("amal-phone"), []byte("android-dhcp-14")
	req, ack := m.frame(t), ackMsg(phoneIP).frame(t)
	for _, tc := range []struct {
		frame []byte
		min   int
	}{{req, len(req)}, {ack, len(ack)}, {gratuitousARP(t, phoneIP), 14 + arpLen}} {
		for n := range len(tc.frame) {
			ev, ok := Decode(tc.frame[:n], t0)
			if ok && n < tc.min {
				t.Errorf("Decode(first %d bytes) = %+v, want false", n, ev)
			}
		}
	}
}

func TestSanitise(t *testing.T) {
	tests := map[string]string{
		"":                            "",
		"plain":                       "plain",
		"\x00\x00":                    "",
		"tab\tnew\nline":              "tabnewline",
		"  padded  \x00":              "padded",
		"zero\u200bwidth":             "zerowidth",
		strings.Repeat("a", 65):       strings.Repeat("a", 64),
		"é" + strings.Repeat("a", 63): "é" + strings.Repeat("a", 62),
	}
	for in, want := range tests {
		if got := sanitise([]byte(in)); got != want {
			t.Errorf("sanitise(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDecodeHostileWhy checks that each hostile frame is refused for its
// own reason (not because an edit broke something before it): tags and
// fragments are other traffic, the rest is malformed.
func TestDecodeHostileWhy(t *testing.T) {
	want := map[string]result{"vlan-tag-in-frame": ignored, "ip-more-fragments": ignored}
	for name, frame := range hostileFrames(t) {
		w, ok := want[name]
		if !ok {
			w = malformed
		}
		if _, _, got := decode(frame, t0); got != w {
			t.Errorf("%s: result %d, want %d", name, got, w)
		}
	}
	// The frame they are all edited from decodes.
	ack := ackMsg(phoneIP)
	ack.hostname = []byte("amal-phone")
	if _, o, res := decode(ack.frame(t), t0); res != decoded || o.ipSrc != gwIP || !bytes.Equal(o.src, gwMAC) {
		t.Errorf("unedited ACK: result %d, origin %+v", res, o)
	}
}
