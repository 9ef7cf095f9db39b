//go:build linux

package devwatch

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// lan is a two-namespace LAN: the gateway (where the Watcher runs) and a
// phone, joined by a veth pair, with documentation addresses and the MACs
// of frames_test.go.
type lan struct {
	gwNS, phoneNS string
	gwIf, phoneIf string
}

var lanSeq atomic.Int32

// newLAN builds the LAN with names unique to this process and test, and
// removes it in t.Cleanup, also when the test fails.
func newLAN(t *testing.T) *lan {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces and AF_PACKET sockets (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: iproute2's ip command is not installed")
	}
	p := fmt.Sprintf("ppdw%d-%d", os.Getpid(), lanSeq.Add(1))
	l := &lan{gwNS: p + "-gw", phoneNS: p + "-ph", gwIf: p + "g", phoneIf: p + "p"}
	if len(l.gwIf) > 15 {
		t.Fatalf("interface name %q too long", l.gwIf)
	}
	t.Cleanup(func() {
		for _, ns := range []string{l.gwNS, l.phoneNS} {
			_ = exec.Command("ip", "netns", "del", ns).Run() // takes its veth end along
		}
	})
	run(t, "ip", "netns", "add", l.gwNS)
	run(t, "ip", "netns", "add", l.phoneNS)
	run(t, "ip", "link", "add", l.gwIf, "address", gwMAC.String(), "netns", l.gwNS,
		"type", "veth", "peer", "name", l.phoneIf, "address", phoneMAC.String(), "netns", l.phoneNS)
	run(t, "ip", "-n", l.gwNS, "addr", "add", gwIP.String()+"/24", "dev", l.gwIf)
	run(t, "ip", "-n", l.phoneNS, "addr", "add", phoneIP.String()+"/24", "dev", l.phoneIf)
	run(t, "ip", "-n", l.gwNS, "link", "set", l.gwIf, "up")
	run(t, "ip", "-n", l.phoneNS, "link", "set", l.phoneIf, "up")
	return l
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// inNS runs f on a goroutine whose OS thread is locked into namespace ns.
// The thread is never unlocked, so the runtime discards it when f returns
// instead of reusing a thread that is in the wrong namespace.
func inNS(t *testing.T, ns string, f func() error) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromName(ns)
		if err != nil {
			done <- fmt.Errorf("opening namespace %s: %w", ns, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			done <- fmt.Errorf("entering namespace %s: %w", ns, err)
			return
		}
		done <- f()
	}()
	return done
}

// startWatcher runs a Watcher on the gateway's side of the LAN until the
// returned stop is called (or the test ends). stop returns how long Run
// took to return after its context was cancelled.
func startWatcher(t *testing.T, l *lan, out chan Event) (w *Watcher, stop func() time.Duration) {
	return startWatcherOn(t, l.gwNS, l.gwIf, out, nil)
}

// startWatcherOn runs a Watcher on iface in namespace ns; tune, if not
// nil, changes it before Run starts.
func startWatcherOn(t *testing.T, ns, iface string, out chan Event, tune func(*Watcher)) (w *Watcher, stop func() time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *Watcher, 1)
	done := inNS(t, ns, func() error {
		w, err := New(iface, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
		if err != nil {
			close(ready)
			return err
		}
		if tune != nil {
			tune(w)
		}
		ready <- w
		return w.Run(ctx, out)
	})
	w, ok := <-ready
	if !ok {
		cancel()
		t.Fatalf("New: %v", <-done)
	}
	var took time.Duration
	var stopped bool
	stop = func() time.Duration {
		if stopped {
			return took
		}
		stopped = true
		start := time.Now()
		cancel()
		select {
		case err := <-done:
			took = time.Since(start)
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return within 30s of cancel")
		}
		return took
	}
	t.Cleanup(func() { stop() })
	return w, stop
}

// sendRaw writes frames onto ifname from inside namespace ns, as a DHCP
// client or server would, through an AF_PACKET socket of its own.
func sendRaw(t *testing.T, ns, ifname string, frames ...[]byte) {
	t.Helper()
	err := <-inNS(t, ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0) // protocol 0: send only
		if err != nil {
			return fmt.Errorf("opening packet socket: %w", err)
		}
		defer unix.Close(fd)
		for _, f := range frames {
			sa := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
			copy(sa.Addr[:], f[:6])
			if err := unix.Sendto(fd, f, 0, sa); err != nil {
				return fmt.Errorf("writing frame: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("sending from %s: %v", ns, err)
	}
}

// waitFor returns the first event matching match, skipping others.
func waitFor(t *testing.T, out <-chan Event, what string, match func(Event) bool) Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-out:
			if match(ev) {
				return ev
			}
			t.Logf("skipping %s %s %s", ev.Kind, ev.MAC, ev.IP)
		case <-deadline:
			t.Fatalf("no %s within 10s", what)
		}
	}
}

// TestWatcherOnVeth runs the real capture in a namespace and talks to it
// from another: arping's gratuitous ARP, a DHCP REQUEST from the phone, the
// gateway's ACK (an outgoing frame, as dnsmasq's would be), and a rogue ACK
// from the phone that must not come through.
func TestWatcherOnVeth(t *testing.T) {
	l := newLAN(t)
	out := make(chan Event, 16)
	w, stop := startWatcher(t, l, out)

	// Gratuitous ARP: arping if installed (Debian's iputils-arping), else
	// the same frame written raw.
	if _, err := exec.LookPath("arping"); err == nil {
		run(t, "ip", "netns", "exec", l.phoneNS, "arping", "-q", "-U", "-c", "1", "-w", "1",
			"-I", l.phoneIf, phoneIP.String())
	} else {
		t.Log("arping not installed (apt-get install iputils-arping); writing the ARP frame raw")
		sendRaw(t, l.phoneNS, l.phoneIf, gratuitousARP(t, phoneIP))
	}
	ev := waitFor(t, out, "gratuitous ARP", func(ev Event) bool { return ev.Kind == ARP })
	if !bytes.Equal(ev.MAC, phoneMAC) || ev.IP != phoneIP {
		t.Errorf("ARP event = %+v, want MAC %s IP %s", ev, phoneMAC, phoneIP)
	}

	req := clientMsg(msgRequest)
	req.requested, req.hostname, req.vendor = phoneIP2, []byte("amal-\x1bphone"), []byte("android-dhcp-14")
	sendRaw(t, l.phoneNS, l.phoneIf, req.frame(t))
	ev = waitFor(t, out, "DHCP REQUEST", func(ev Event) bool { return ev.Kind == DHCPRequest })
	want := Event{Kind: DHCPRequest, MAC: phoneMAC, IP: phoneIP2, Hostname: "amal-phone", Vendor: "android-dhcp-14", Time: ev.Time}
	if !eventEqual(ev, want) {
		t.Errorf("REQUEST event = %+v, want %+v", ev, want)
	}

	rogue := ackMsg(phoneIP)
	rogue.src = phoneMAC
	rogue.dst = bcastMAC
	sendRaw(t, l.phoneNS, l.phoneIf, rogue.frame(t))
	sendRaw(t, l.gwNS, l.gwIf, ackMsg(phoneIP2).frame(t))
	ev = waitFor(t, out, "DHCP ACK", func(ev Event) bool { return ev.Kind == DHCPAck })
	want = Event{Kind: DHCPAck, MAC: phoneMAC, IP: phoneIP2, Hostname: "amal-phone", Vendor: "android-dhcp-14", Time: ev.Time}
	if !eventEqual(ev, want) {
		t.Errorf("ACK event = %+v, want %+v (the gateway's ACK, named from the REQUEST)", ev, want)
	}
	if ev.Time.IsZero() || time.Since(ev.Time) > time.Minute {
		t.Errorf("ACK time %v is not the capture time", ev.Time)
	}
	stop()
	if s := w.Stats(); s.RogueDHCP != 1 || s.Malformed != 0 {
		t.Errorf("Stats = %+v, want exactly 1 rogue ACK and no malformed frame", s)
	}
}

// TestWatcherStopsOnSilentLAN proves the shutdown bound on the real
// socket: with no frame passing the filter, Run sits in recvmsg(2), and
// must still return soon after its context ends. The bound is ten times
// the read timeout: it catches a hang, not a slow machine.
func TestWatcherStopsOnSilentLAN(t *testing.T) {
	l := newLAN(t)
	w, stop := startWatcher(t, l, make(chan Event))
	time.Sleep(3 * readTimeout) // let Run block in the kernel
	if took := stop(); took > 10*readTimeout {
		t.Errorf("Run returned %v after cancel, want < %v", took, 10*readTimeout)
	} else {
		t.Logf("Run returned %v after cancel", took)
	}
	// A fresh link may still announce itself (an ARP from the kernel on
	// link-up) before the LAN goes quiet; what matters is that nothing
	// became an event and no read failed.
	if s := w.Stats(); s.Events != 0 || s.ReadErrors != 0 {
		t.Errorf("Stats = %+v on a silent LAN, want no events and no read errors", s)
	}
}

// sendUDP sends payload from laddr (an address of namespace ns) to raddr
// through the kernel's own UDP stack, as dnsmasq sends its ACKs.
func sendUDP(t *testing.T, ns, laddr, raddr string, payload []byte) {
	t.Helper()
	err := <-inNS(t, ns, func() error {
		la, err := net.ResolveUDPAddr("udp4", laddr)
		if err != nil {
			return err
		}
		ra, err := net.ResolveUDPAddr("udp4", raddr)
		if err != nil {
			return err
		}
		c, err := net.DialUDP("udp4", la, ra)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(payload)
		return err
	})
	if err != nil {
		t.Fatalf("sending UDP from %s in %s: %v", laddr, ns, err)
	}
}

// TestWatcherRefusesForgedAcks: on the real socket, a phone's broadcast ACK
// that carries the gateway's MAC as its Ethernet source, and an ACK the
// gateway routes back onto the LAN for the phone, are both refused; the ACK
// the gateway's own UDP stack sends from its address is reported.
func TestWatcherRefusesForgedAcks(t *testing.T) {
	l := newLAN(t)
	out := make(chan Event, 16)
	w, stop := startWatcher(t, l, out)

	// The gateway routes: a datagram the phone sends to the gateway's MAC
	// for another LAN address goes back out on the LAN, transmitted by
	// the gateway.
	other := netip.MustParseAddr("198.51.100.77")
	run(t, "ip", "netns", "exec", l.gwNS, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	run(t, "ip", "-n", l.gwNS, "neigh", "replace", other.String(), "lladdr", spooferMAC.String(),
		"dev", l.gwIf, "nud", "permanent")

	forged := ackMsg(phoneIP2) // "the gateway gives spooferMAC the phone's second address"
	forged.src, forged.dst, forged.chaddr = gwMAC, bcastMAC, spooferMAC
	routed := ackMsg(phoneIP2)
	routed.src, routed.dst, routed.srcIP, routed.dstIP, routed.chaddr = phoneMAC, gwMAC, phoneIP, other, spooferMAC
	sendRaw(t, l.phoneNS, l.phoneIf, forged.frame(t), routed.frame(t))

	// The positive control: the gateway's own UDP stack, from its address
	// and port 67, as dnsmasq sends.
	ack := ackMsg(phoneIP2)
	ack.chaddr = spooferMAC
	sendUDP(t, l.gwNS, gwIP.String()+":67", phoneIP.String()+":68", ack.bootp())
	ev := waitFor(t, out, "the gateway's ACK", func(ev Event) bool { return ev.Kind == DHCPAck })
	if !bytes.Equal(ev.MAC, spooferMAC) || ev.IP != phoneIP2 {
		t.Errorf("ACK event = %+v, want %s at %s", ev, spooferMAC, phoneIP2)
	}
	stop()
	for {
		select {
		case ev := <-out:
			if ev.Kind == DHCPAck {
				t.Errorf("a forged ACK came through: %+v", ev)
			}
			continue
		default:
		}
		break
	}
	// Forged: the broadcast with the gateway's MAC, and the routed copy.
	// Rogue: the routed datagram as it arrived, from the phone's MAC.
	if s := w.Stats(); s.Forged != 2 || s.RogueDHCP != 1 {
		t.Errorf("Stats = %+v, want 2 forged ACKs (one with the gateway's MAC, one routed) and 1 rogue", s)
	}
}

// TestWatcherFollowsBridgeMAC: the gateway's LAN is a bridge, which takes
// the lowest MAC of its ports. When a port with a lower MAC joins, the
// gateway's next frame shows the new MAC and the watcher reads it again at
// once: a device posing as the gateway's new MAC is refused.
func TestWatcherFollowsBridgeMAC(t *testing.T) {
	l := newLAN(t)
	base := l.gwIf[:len(l.gwIf)-1]
	br, port, peer := base+"b", base+"x", base+"y"
	run(t, "ip", "-n", l.gwNS, "addr", "del", gwIP.String()+"/24", "dev", l.gwIf)
	run(t, "ip", "-n", l.gwNS, "link", "add", br, "type", "bridge")
	run(t, "ip", "-n", l.gwNS, "link", "set", l.gwIf, "master", br)
	run(t, "ip", "-n", l.gwNS, "addr", "add", gwIP.String()+"/24", "dev", br)
	run(t, "ip", "-n", l.gwNS, "link", "set", br, "up")
	if got := linkMAC(t, l.gwNS, br); got != gwMAC.String() {
		t.Fatalf("bridge MAC %s, want its one port's %s", got, gwMAC)
	}

	out := make(chan Event, 16)
	w, stop := startWatcherOn(t, l.gwNS, br, out, func(w *Watcher) {
		w.checkEvery = time.Hour // only a frame can make it look again
		w.relinkEvery = 0
	})
	newMAC := net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x00}
	run(t, "ip", "-n", l.gwNS, "link", "add", port, "address", newMAC.String(), "type", "veth", "peer", "name", peer)
	run(t, "ip", "-n", l.gwNS, "link", "set", port, "master", br, "up")
	if got := linkMAC(t, l.gwNS, br); got != newMAC.String() {
		t.Fatalf("bridge MAC %s after adding a port with %s; the kernel did not change it", got, newMAC)
	}
	// The gateway transmits: it ARPs for the phone before its ping.
	run(t, "ip", "-n", l.gwNS, "neigh", "flush", "dev", br)
	run(t, "ip", "netns", "exec", l.gwNS, "ping", "-c", "1", "-W", "2", phoneIP.String())

	posing := arpFrame(t, arpRequest, newMAC, newMAC, phoneIP2, make(net.HardwareAddr, 6), gwIP)
	sendRaw(t, l.phoneNS, l.phoneIf, posing, gratuitousARP(t, phoneIP))
	waitFor(t, out, "the phone's gratuitous ARP", func(ev Event) bool {
		if bytes.Equal(ev.MAC, newMAC) {
			t.Errorf("a device posing as the gateway's new MAC gave an event: %+v", ev)
		}
		return ev.Kind == ARP && ev.IP == phoneIP && ev.MAC.String() == phoneMAC.String()
	})
	stop()
	if s := w.Stats(); s.Own == 0 || s.Spoofed != 1 {
		t.Errorf("Stats = %+v, want the gateway's own ARP and 1 device posing as the gateway", s)
	}
}

func linkMAC(t *testing.T, ns, ifname string) string {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-br", "link", "show", ifname).CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show %s: %v\n%s", ifname, err, out)
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		t.Fatalf("ip -br link show %s: %q", ifname, out)
	}
	return f[2]
}
