package e2e

import (
	bin "encoding/binary"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/parkwifi/parkportal/lab"
)

// TestForgedDHCPAck: a visitor forges the gateway's DHCP ACK to move a
// logged-in visitor's session (issue 13). The daemon must move sessions
// only on ACKs the gateway's own DHCP server sent, however well the
// forgery imitates one. Each case has the real dnsmasq running in the
// gateway, as in a park, and checks that the victim's session stays
// where it was and that the daemon saw and refused the forgery (so a pass
// does not just mean the frame never arrived). On both firewall backends.
func TestForgedDHCPAck(t *testing.T) {
	for _, be := range backends {
		t.Run(be, func(t *testing.T) { forgedDHCPAck(t, be) })
	}
}

func forgedDHCPAck(t *testing.T, be string) {
	unused := netip.MustParseAddr("198.51.100.77") // in the LAN, outside dnsmasq's range, no device

	t.Run("broadcast with the gateway's MAC moving the victim to the attacker", func(t *testing.T) {
		f := newForgery(t, be)
		f.sendFrame(f.v2.NS, f.forgedAck(f.v1, f.v2.IP))
		f.wantRefused("sent from the LAN with the gateway's MAC")
		f.wantUnmoved(f.v1)
		// The takeover's second half: the attacker also takes the
		// victim's MAC, which is what the moved session would have been
		// bound to (its IP, the victim's MAC). It must get the portal.
		must(t, lab.Cmd(f.v2.NS, "ip", "link", "set", "eth0", "address", f.v1.MAC).Run())
		if r := lab.Curl(f.v2.NS, 2*time.Second, "http://"+lab.InternetIP.String()+"/generate_204"); r.Code != 302 {
			t.Errorf("the attacker with the victim's MAC at its own address: got %d (curl exit %d), want the captive redirect", r.Code, r.Exit)
		}
	})

	t.Run("broadcast with the gateway's MAC moving the victim to an unused address", func(t *testing.T) {
		f := newForgery(t, be)
		f.sendFrame(f.v2.NS, f.forgedAck(f.v1, unused))
		f.wantRefused("sent from the LAN with the gateway's MAC")
		f.wantUnmoved(f.v1)
	})

	t.Run("routed onto the LAN as the reply to a logged-in attacker's flow", func(t *testing.T) {
		// This ACK the gateway itself transmits on the LAN: the attacker
		// logs in, opens a UDP flow from port 68 to port 67 of a host
		// outside that it controls, and that host answers with the ACK.
		f := newForgery(t, be)
		f.login(f.v2, "33123457")
		// (To its own address the move would be refused anyway: that
		// address has the attacker's session. To an unused one it would
		// cut the victim off.)
		f.routedAck(f.v2, ack(f.v1, unused, lab.InternetIP))
		f.wantRefused("routed through the gateway")
		f.wantUnmoved(f.v1, f.v2)
	})
}

// forgery is a park with the daemon, the gateway's dnsmasq, visitor 1
// (the victim) logged in and online, and visitor 2 (the attacker) captive.
type forgery struct {
	*testPark
	d      *daemon
	v1, v2 lab.Visitor
}

func newForgery(t *testing.T, backend string) *forgery {
	p := newPark(t, 2)
	cfg := p.config(map[string]string{"parkportal.firewall_backend": backend})
	f := &forgery{testPark: p, d: p.start(cfg), v1: p.Visitors[0], v2: p.Visitors[1]}
	p.startDHCP()
	p.login(f.v1, "33123456")
	if !online(f.v1) {
		t.Fatal("visitor 1 is not online after login")
	}
	if online(f.v2) {
		t.Fatal("visitor 2 is online without logging in")
	}
	return f
}

// wantRefused waits (bounded) for the daemon to log that it dropped a
// forged ACK, sent the way how says.
func (f *forgery) wantRefused(how string) {
	f.t.Helper()
	want := `how="` + how + `"`
	for i := 0; i < 50; i++ { // bounded: 5 s
		for _, line := range strings.Split(f.d.output(), "\n") {
			if strings.Contains(line, "dropped a forged DHCP ACK") && strings.Contains(line, want) {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	f.t.Errorf("the daemon did not report a forged ACK %s within 5 s", how)
}

// wantUnmoved checks that no session moved: the allowlist holds exactly
// the original pairs of the logged-in visitors, visitor 1 is still online
// at its address with the portal showing it connected there, and visitor
// 2, unless logged in, is still captive. The
// allowlist comes first: a visitor's request to the portal re-binds its
// session to where the device is, which would hide a move.
func (f *forgery) wantUnmoved(loggedIn ...lab.Visitor) {
	t := f.t
	t.Helper()
	var want []string
	for _, v := range loggedIn {
		want = append(want, v.IP.String()+" "+strings.ToLower(v.MAC))
	}
	slices.Sort(want)
	if got, err := f.allowlist(); err != nil {
		t.Errorf("reading the allowlist: %v", err)
	} else if !slices.Equal(got, want) {
		t.Errorf("the allowlist holds %v, want %v", got, want)
	}
	if out := f.d.output(); strings.Contains(out, "session followed its device") {
		t.Errorf("the daemon moved a session:\n%s", out)
	}
	if !online(f.v1) {
		t.Error("visitor 1 is offline after the forged ACK")
	}
	if r := lab.Curl(f.v1.NS, 3*time.Second, portalURL); !strings.Contains(r.Body, `id="connected"`) {
		t.Errorf("at its address visitor 1's session is gone from the portal (got %d)", r.Code)
	}
	if !slices.Contains(loggedIn, f.v2) && online(f.v2) {
		t.Error("visitor 2 got out without logging in")
	}
}

// gatewayMAC is the MAC of the gateway's LAN bridge.
func (p *forgery) gatewayMAC() net.HardwareAddr {
	t := p.t
	t.Helper()
	out, err := p.gw("cat", "/sys/class/net/"+lab.LANIface+"/address")
	if err != nil {
		t.Fatalf("reading the gateway's MAC: %v: %s", err, out)
	}
	mac, err := net.ParseMAC(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// forgedAck is the broadcast frame a visitor sends: the gateway's MAC as
// Ethernet source and its address as IP source, port 67 to 68, an ACK
// giving the victim's MAC the address yiaddr.
func (p *forgery) forgedAck(victim lab.Visitor, yiaddr netip.Addr) []byte {
	p.t.Helper()
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	payload := ack(victim, yiaddr, lab.GatewayLAN)
	udp := make([]byte, 8, 8+len(payload))
	bin.BigEndian.PutUint16(udp[0:2], 67)
	bin.BigEndian.PutUint16(udp[2:4], 68)
	bin.BigEndian.PutUint16(udp[4:6], uint16(8+len(payload))) // checksum 0: none (RFC 768)
	udp = append(udp, payload...)
	ip := make([]byte, 20, 20+len(udp))
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	bin.BigEndian.PutUint16(ip[2:4], uint16(20+len(udp)))
	src, dst := lab.GatewayLAN.As4(), netip.MustParseAddr("255.255.255.255").As4()
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(bin.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	bin.BigEndian.PutUint16(ip[10:12], ^uint16(sum))
	ip = append(ip, udp...)
	frame := append(append(append([]byte{}, bcast...), p.gatewayMAC()...), 0x08, 0x00)
	return append(frame, ip...)
}

// ack is a DHCPACK message (BOOTP and options) that gives the victim's
// MAC the address yiaddr, naming server as the DHCP server.
func ack(victim lab.Visitor, yiaddr, server netip.Addr) []byte {
	mac, err := net.ParseMAC(victim.MAC)
	if err != nil {
		panic(err)
	}
	b := make([]byte, 240)
	b[0], b[1], b[2] = 2, 1, 6 // BOOTREPLY, Ethernet, 6-byte MAC
	bin.BigEndian.PutUint32(b[4:8], 0x5ca1ab1e)
	yi, sv := yiaddr.As4(), server.As4()
	copy(b[16:20], yi[:])
	copy(b[28:34], mac)
	bin.BigEndian.PutUint32(b[236:240], 0x63825363)
	b = append(b, 53, 1, 5) // DHCPACK
	b = append(b, 54, 4)    // server identifier
	b = append(b, sv[:]...)
	b = append(b, 51, 4, 0, 0, 0x0e, 0x10) // lease: 1 h
	b = append(b, 1, 4, 255, 255, 255, 0)  // subnet mask
	return append(b, 255)
}

// sendFrame writes frame onto eth0 of namespace ns through a raw
// AF_PACKET socket opened there, as a visitor's forging tool would.
func (p *forgery) sendFrame(ns string, frame []byte) {
	p.t.Helper()
	var fd, ifindex int
	inNS(p.t, ns, func() {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			p.t.Fatal(err)
		}
		ifindex = ifi.Index
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0); err != nil { // protocol 0: send only
			p.t.Fatalf("opening a packet socket in %s: %v", ns, err)
		}
	})
	defer unix.Close(fd)
	sa := &unix.SockaddrLinklayer{Ifindex: ifindex, Halen: 6}
	copy(sa.Addr[:], frame[:6])
	if err := unix.Sendto(fd, frame, 0, sa); err != nil {
		p.t.Fatalf("sending the frame from %s: %v", ns, err)
	}
}

// routedAck has attacker v open a UDP flow from its port 68 to port 67 of
// the internet host, which answers with payload: the gateway routes the
// answer onto the LAN like any reply to a logged-in visitor. It fails the
// test unless the answer reached v, so that the refusal checked after it
// is of a packet that really crossed the gateway.
func (p *forgery) routedAck(v lab.Visitor, payload []byte) {
	t := p.t
	t.Helper()
	var outside, inside *net.UDPConn
	inNS(t, p.Internet, func() {
		var err error
		if outside, err = net.ListenUDP("udp4", &net.UDPAddr{IP: lab.InternetIP.AsSlice(), Port: 67}); err != nil {
			t.Fatal(err)
		}
	})
	defer outside.Close()
	inNS(t, v.NS, func() {
		var err error
		if inside, err = net.ListenUDP("udp4", &net.UDPAddr{IP: v.IP.AsSlice(), Port: 68}); err != nil {
			t.Fatal(err)
		}
	})
	defer inside.Close()
	if _, err := inside.WriteToUDP([]byte("hello"), &net.UDPAddr{IP: lab.InternetIP.AsSlice(), Port: 67}); err != nil {
		t.Fatal(err)
	}
	outside.SetDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 1500)
	_, from, err := outside.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("the attacker's datagram did not reach the host outside: %v", err)
	}
	if _, err := outside.WriteToUDP(payload, from); err != nil {
		t.Fatal(err)
	}
	inside.SetDeadline(time.Now().Add(3 * time.Second))
	if n, _, err := inside.ReadFromUDP(buf); err != nil || n != len(payload) {
		t.Fatalf("the routed ACK did not reach the attacker (%d bytes): %v", n, err)
	}
}
