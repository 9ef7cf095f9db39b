package devwatch

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// seedFrames are the frames the fuzzer starts from, also committed as the
// corpus in testdata/fuzz/FuzzDecode: valid frames of every kind, the two
// frames that panicked gopacket's decoders (which devwatch used before it
// decoded by hand), and hostileFrames.
func seedFrames(tb testing.TB) map[string][]byte {
	req := clientMsg(msgRequest)
	req.requested, req.hostname, req.vendor = phoneIP, []byte("amal-phone"), []byte("android-dhcp-14")
	ack := ackMsg(phoneIP)
	ack.hostname = []byte("\x1b[2Jam\u202eal")
	rel := clientMsg(msgRelease)
	rel.ciaddr = phoneIP
	ackFrame := ack.frame(tb)
	hlen := bytes.Clone(ackFrame[:14+20+8+bootpLen])
	hlen[14+20+8+2] = 255
	arpWrap := gratuitousARP(tb, phoneIP)
	arpWrap[14+4], arpWrap[14+5] = 128, 0
	seeds := map[string][]byte{
		"dhcp-request":   req.frame(tb),
		"dhcp-ack":       ackFrame,
		"dhcp-release":   rel.frame(tb),
		"arp-gratuitous": gratuitousARP(tb, phoneIP2),
		"arp-reply":      arpFrame(tb, arpReply, phoneMAC, phoneMAC, phoneIP, gwMAC, gwIP),
		"dhcp-hlen-255":  hlen,
		"arp-size-wrap":  arpWrap,
	}
	for name, frame := range hostileFrames(tb) {
		seeds[name] = frame
	}
	return seeds
}

// policySeed is one input of FuzzPolicy: a frame and what the kernel said
// about it.
type policySeed struct {
	frame    []byte
	outgoing bool
	vlan     uint16
}

// policySeeds are FuzzPolicy's starting points, also committed as its
// corpus in testdata/fuzz/FuzzPolicy.
func policySeeds(tb testing.TB) map[string]policySeed {
	forged := ackMsg(phoneIP2) // a visitor's broadcast with the gateway's MAC
	forged.dst = bcastMAC
	routed := ackMsg(phoneIP2) // routed onto the LAN from outside
	routed.srcIP = netip.MustParseAddr("203.0.113.66")
	return map[string]policySeed{
		"ack-outgoing":          {ackMsg(phoneIP).frame(tb), true, 0},
		"ack-forged-incoming":   {forged.frame(tb), false, 0},
		"ack-routed-outgoing":   {routed.frame(tb), true, 0},
		"ack-outgoing-vlan":     {ackMsg(phoneIP).frame(tb), true, 7},
		"arp-incoming":          {gratuitousARP(tb, phoneIP), false, 0},
		"arp-outgoing":          {arpFrame(tb, arpRequest, gwMAC, gwMAC, gwIP, make(net.HardwareAddr, 6), phoneIP), true, 0},
		"arp-posing-as-gateway": {arpFrame(tb, arpRequest, gwMAC, gwMAC, phoneIP2, make(net.HardwareAddr, 6), gwIP), false, 0},
		"arp-spoofed-sender":    {arpFrame(tb, arpReply, spooferMAC, phoneMAC, phoneIP2, gwMAC, gwIP), false, 0},
	}
}

// FuzzPolicy feeds Run's policy frames with what the kernel says about
// them, and checks the promises that keep one device from speaking for
// another: a DHCP ACK counts only if the gateway transmitted it from one
// of its own addresses; anything else counts only if it arrived from the
// LAN, from the MAC it is about, and that MAC is not the gateway's.
func FuzzPolicy(f *testing.F) {
	for _, s := range policySeeds(f) {
		f.Add(s.frame, s.outgoing, s.vlan)
	}
	fc := newFake()
	w, err := newWatcher("lan0", slog.New(slog.DiscardHandler), func() (capture, error) { return fc, nil })
	if err != nil {
		f.Fatal(err)
	}
	w.live, w.relinkEvery = fc, time.Hour
	if err := w.relink(fc); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, frame []byte, outgoing bool, vlan uint16) {
		ev, ok := w.handle(bytes.Clone(frame), frameMeta{at: t0, outgoing: outgoing, vlan: vlan})
		if !ok {
			return
		}
		_, o, _ := decode(frame, t0)
		switch {
		case vlan != 0:
			t.Fatalf("event %+v from VLAN %d", ev, vlan)
		case ev.Kind == DHCPAck && (!outgoing || o.ipSrc != gwIP):
			t.Fatalf("ACK %+v accepted: outgoing %v, IP source %v", ev, outgoing, o.ipSrc)
		case ev.Kind != DHCPAck && outgoing:
			t.Fatalf("the gateway's own %s became an event %+v", ev.Kind, ev)
		case ev.Kind != DHCPAck && (!bytes.Equal(o.src, ev.MAC) || bytes.Equal(o.src, gwMAC)):
			t.Fatalf("%s from %v accepted for %v", ev.Kind, o.src, ev.MAC)
		}
	})
}

func FuzzDecode(f *testing.F) {
	for _, frame := range seedFrames(f) {
		f.Add(frame)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		in := bytes.Clone(frame)
		ev, ok := Decode(in, t0)
		if !ok {
			return
		}
		if ev.Kind < DHCPAck || ev.Kind > ARP {
			t.Fatalf("bad kind %d", ev.Kind)
		}
		if len(ev.MAC) != 6 || ev.MAC[0]&1 != 0 {
			t.Fatalf("bad MAC %v", ev.MAC)
		}
		if ev.IP.IsValid() && (!ev.IP.Is4() || ev.IP.IsMulticast() || ev.IP.IsLoopback() || ev.IP.IsUnspecified()) {
			t.Fatalf("bad IP %v", ev.IP)
		}
		for _, s := range []string{ev.Hostname, ev.Vendor} {
			if len(s) > maxText || !utf8.ValidString(s) {
				t.Fatalf("unsanitised text %q", s)
			}
			for _, r := range s {
				if !unicode.IsPrint(r) {
					t.Fatalf("unprintable %U in %q", r, s)
				}
			}
		}
		// The event must not alias the input.
		mac := bytes.Clone(ev.MAC)
		for i := range in {
			in[i] = ^in[i]
		}
		if !bytes.Equal(mac, ev.MAC) {
			t.Fatalf("event MAC aliases the frame")
		}
	})
}

// TestWriteFuzzCorpus regenerates testdata/fuzz/FuzzDecode and
// testdata/fuzz/FuzzPolicy from seedFrames and policySeeds when
// DEVWATCH_WRITE_CORPUS=1; otherwise it checks that every seed is there.
func TestWriteFuzzCorpus(t *testing.T) {
	corpus := map[string]map[string]string{"FuzzDecode": {}, "FuzzPolicy": {}}
	for name, frame := range seedFrames(t) {
		corpus["FuzzDecode"][name] = fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", frame)
	}
	for name, s := range policySeeds(t) {
		corpus["FuzzPolicy"][name] = fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbool(%v)\nuint16(%d)\n", s.frame, s.outgoing, s.vlan)
	}
	write := os.Getenv("DEVWATCH_WRITE_CORPUS") == "1"
	for target, files := range corpus {
		dir := filepath.Join("testdata", "fuzz", target)
		if write {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for name, body := range files {
			path := filepath.Join(dir, name)
			if write {
				if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			} else if _, err := os.Stat(path); err != nil {
				t.Errorf("committed fuzz corpus lacks %s (regenerate with DEVWATCH_WRITE_CORPUS=1): %v", path, err)
			}
		}
	}
}
