package devwatch

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/gopacket/layers"
)

// seedFrames are the frames the fuzzer starts from, besides the committed
// corpus in testdata/fuzz/FuzzDecode (which includes the two frames that
// panic gopacket's own decoders).
func seedFrames(tb testing.TB) map[string][]byte {
	req := clientMsg(layers.DHCPMsgTypeRequest)
	req.requested, req.hostname, req.vendor = phoneIP, []byte("amal-phone"), []byte("android-dhcp-14")
	ack := ackMsg(phoneIP)
	ack.hostname = []byte("\x1b[2Jam\u202eal")
	rel := clientMsg(layers.DHCPMsgTypeRelease)
	rel.ciaddr = phoneIP
	ackFrame := ack.frame(tb)
	hlen := bytes.Clone(ackFrame[:14+20+8+bootpLen])
	hlen[14+20+8+2] = 255
	arpWrap := gratuitousARP(tb, phoneIP)
	arpWrap[14+4], arpWrap[14+5] = 128, 0
	return map[string][]byte{
		"dhcp-request":   req.frame(tb),
		"dhcp-ack":       ackFrame,
		"dhcp-release":   rel.frame(tb),
		"arp-gratuitous": gratuitousARP(tb, phoneIP2),
		"arp-reply":      arpFrame(tb, layers.ARPReply, phoneMAC, phoneMAC, phoneIP, gwMAC, gwIP),
		"dhcp-hlen-255":  hlen,
		"arp-size-wrap":  arpWrap,
	}
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

// TestWriteFuzzCorpus regenerates testdata/fuzz/FuzzDecode from seedFrames
// when DEVWATCH_WRITE_CORPUS=1; otherwise it checks that the corpus is there.
func TestWriteFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if os.Getenv("DEVWATCH_WRITE_CORPUS") != "1" {
		if ents, err := os.ReadDir(dir); err != nil || len(ents) == 0 {
			t.Fatalf("committed fuzz corpus missing in %s (regenerate with DEVWATCH_WRITE_CORPUS=1): %v", dir, err)
		}
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, frame := range seedFrames(t) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", frame)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
