package devwatch

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeCapture is a capture fed by the test.
type fakeCapture struct {
	frames  chan fakeFrame
	fail    chan error
	isStale atomic.Bool
	closed  atomic.Bool
	links   atomic.Int32 // calls of link

	mu    sync.Mutex
	mac   net.HardwareAddr
	addrs []netip.Addr
}

type fakeFrame struct {
	b         []byte
	truncated bool
	outgoing  bool // the gateway transmitted it
	vlan      uint16
}

// newFake returns a capture on an interface with gwMAC and gwIP.
func newFake() *fakeCapture {
	return &fakeCapture{frames: make(chan fakeFrame, 64), fail: make(chan error, 1),
		mac: gwMAC, addrs: []netip.Addr{gwIP}}
}

func (f *fakeCapture) read() ([]byte, frameMeta, error) {
	select {
	case fr := <-f.frames:
		return fr.b, frameMeta{at: t0, truncated: fr.truncated, outgoing: fr.outgoing, vlan: fr.vlan}, nil
	case err := <-f.fail:
		return nil, frameMeta{}, err
	case <-time.After(10 * time.Millisecond):
		return nil, frameMeta{}, errTimeout
	}
}

func (f *fakeCapture) link() (linkState, error) {
	f.links.Add(1)
	if f.isStale.Load() {
		return linkState{}, errReplaced
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return linkState{mac: clone(f.mac), addrs: slices.Clone(f.addrs)}, nil
}

// readdress changes what link reports, as a bridge gaining a port or
// netifd changing the address would.
func (f *fakeCapture) readdress(mac net.HardwareAddr, addrs ...netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mac, f.addrs = mac, addrs
}

func (f *fakeCapture) close() { f.closed.Store(true) }

// fakeWatcher returns a Watcher whose opener hands out caps in turn.
func fakeWatcher(t *testing.T, caps ...*fakeCapture) (*Watcher, *atomic.Int32) {
	t.Helper()
	var opened atomic.Int32
	var mu sync.Mutex
	w, err := newWatcher("lan0", slog.New(slog.DiscardHandler), func() (capture, error) {
		mu.Lock()
		defer mu.Unlock()
		n := int(opened.Add(1)) - 1
		if n >= len(caps) {
			return nil, errors.New("no more fakes")
		}
		return caps[n], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	w.checkEvery, w.minBackoff = 50*time.Millisecond, 10*time.Millisecond
	return w, &opened
}

// runWatcher runs w until the test ends and returns its events channel.
func runWatcher(t *testing.T, w *Watcher, out chan Event) (cancel func() error) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, out) }()
	var once sync.Once
	var err error
	cancel = func() error {
		once.Do(func() {
			stop()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				err = errors.New("Run did not return within 10s of cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = cancel() })
	return cancel
}

func nextEvent(t *testing.T, out <-chan Event) Event {
	t.Helper()
	select {
	case ev := <-out:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
		return Event{}
	}
}

func TestRunPolicy(t *testing.T) {
	fc := newFake()
	w, _ := fakeWatcher(t, fc)
	out := make(chan Event)
	cancel := runWatcher(t, w, out)

	req := clientMsg(msgRequest)
	req.requested, req.hostname, req.vendor = phoneIP, []byte("amal-phone"), []byte("android-dhcp-14")
	rogueAck := ackMsg(phoneIP2)
	rogueAck.src = spooferMAC
	spoofedReq := clientMsg(msgRequest)
	spoofedReq.src, spoofedReq.requested = spooferMAC, phoneIP2
	feed := []fakeFrame{
		{b: req.frame(t)},
		{b: rogueAck.frame(t)},   // rogue server moving the phone: dropped
		{b: spoofedReq.frame(t)}, // spoofer asking in the phone's name: dropped
		{b: arpFrame(t, arpReply, spooferMAC, phoneMAC, phoneIP2, gwMAC, gwIP)},                              // ARP spoofing: dropped
		{b: arpFrame(t, arpRequest, gwMAC, gwMAC, gwIP, make(net.HardwareAddr, 6), phoneIP), outgoing: true}, // own: dropped
		{b: []byte("garbage")},
		{b: clientMsg(msgDiscover).frame(t)},
		{b: gratuitousARP(t, phoneIP), truncated: true},
		{b: ackMsg(phoneIP).frame(t), outgoing: true}, // the gateway's ACK: reported, with the REQUEST's names
		{b: gratuitousARP(t, phoneIP)},
	}
	for _, fr := range feed {
		fc.frames <- fr
	}
	want := []Event{
		{Kind: DHCPRequest, MAC: phoneMAC, IP: phoneIP, Hostname: "amal-phone", Vendor: "android-dhcp-14", Time: t0},
		{Kind: DHCPAck, MAC: phoneMAC, IP: phoneIP, Hostname: "amal-phone", Vendor: "android-dhcp-14", Time: t0},
		{Kind: ARP, MAC: phoneMAC, IP: phoneIP, Time: t0},
	}
	for _, w := range want {
		if got := nextEvent(t, out); !eventEqual(got, w) {
			t.Errorf("event\n %+v\nwant\n %+v", got, w)
		}
	}
	if err := cancel(); err != nil {
		t.Fatal(err)
	}
	got := w.Stats()
	wantStats := Stats{Frames: 10, Events: 3, Ignored: 1, Malformed: 2, Truncated: 1, Own: 1, Spoofed: 2, RogueDHCP: 1}
	if got != wantStats {
		t.Errorf("Stats = %+v\nwant    %+v", got, wantStats)
	}
	if !fc.closed.Load() {
		t.Error("capture not closed after Run returned")
	}
}

// feedAndSync feeds frames, then a gratuitous ARP from the phone, and
// waits for that ARP's event: once it comes, Run has judged every frame
// before it. It returns the events the frames themselves gave.
func feedAndSync(t *testing.T, fc *fakeCapture, out <-chan Event, frames ...fakeFrame) []Event {
	t.Helper()
	sync := netip.MustParseAddr("198.51.100.99")
	for _, fr := range frames {
		fc.frames <- fr
	}
	fc.frames <- fakeFrame{b: gratuitousARP(t, sync)}
	var evs []Event
	for {
		ev := nextEvent(t, out)
		if ev.Kind == ARP && ev.IP == sync {
			return evs
		}
		evs = append(evs, ev)
	}
}

// TestRunAckPolicy: only an ACK the gateway transmitted from one of its
// own addresses moves a device. Forged ones are refused whatever MAC they
// carry, and so are other DHCP servers' (there is no trusting a server by
// its MAC: anyone on the LAN can send with it).
func TestRunAckPolicy(t *testing.T) {
	routed := ackMsg(phoneIP2) // UDP 67->68 from a host outside, routed onto the LAN by the gateway
	routed.srcIP = netip.MustParseAddr("203.0.113.66")
	forged := ackMsg(phoneIP2) // a visitor's broadcast with the gateway's MAC
	forged.dst = bcastMAC
	otherServer := ackMsg(phoneIP2)
	otherServer.src, otherServer.srcIP = spooferMAC, netip.MustParseAddr("198.51.100.66")
	tests := []struct {
		name  string
		frame fakeFrame
		ok    bool
		want  Stats
	}{
		{"the gateway's own ACK", fakeFrame{b: ackMsg(phoneIP2).frame(t), outgoing: true}, true, Stats{}},
		{"forged with the gateway's MAC", fakeFrame{b: forged.frame(t)}, false, Stats{Forged: 1}},
		{"routed through the gateway", fakeFrame{b: routed.frame(t), outgoing: true}, false, Stats{Forged: 1}},
		{"another server on the LAN", fakeFrame{b: otherServer.frame(t)}, false, Stats{RogueDHCP: 1}},
		{"the gateway's ACK in another VLAN", fakeFrame{b: ackMsg(phoneIP2).frame(t), outgoing: true, vlan: 7}, false, Stats{Ignored: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := newFake()
			w, _ := fakeWatcher(t, fc)
			out := make(chan Event, 4)
			cancel := runWatcher(t, w, out)
			evs := feedAndSync(t, fc, out, tt.frame)
			if moved := len(evs) == 1 && evs[0].Kind == DHCPAck && evs[0].IP == phoneIP2; moved != tt.ok || len(evs) > 1 {
				t.Errorf("events %+v, want the ACK reported: %v", evs, tt.ok)
			}
			// Run counts an event once its send is done, which can be
			// after the receive above: read the counters once Run is over.
			if err := cancel(); err != nil {
				t.Fatal(err)
			}
			got := w.Stats()
			tt.want.Frames, tt.want.Events = 2, uint64(len(evs))+1
			if got != tt.want {
				t.Errorf("Stats = %+v\nwant    %+v", got, tt.want)
			}
		})
	}
}

// TestRunFollowsGatewayChanges: the gateway's MAC and addresses are read
// again when they change (a bridge takes the lowest MAC of its ports, so
// adding a port can change it; netifd can readdress the LAN), on the
// periodic check or at once when a frame shows the change.
func TestRunFollowsGatewayChanges(t *testing.T) {
	newMAC := net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x00} // a new, lower port MAC
	newIP := netip.MustParseAddr("198.51.100.254")
	posing := func(tb testing.TB) fakeFrame { // a device posing as the gateway's new MAC
		return fakeFrame{b: arpFrame(tb, arpRequest, newMAC, newMAC, newIP, make(net.HardwareAddr, 6), phoneIP)}
	}

	t.Run("an outgoing frame from a new MAC", func(t *testing.T) {
		fc := newFake()
		w, _ := fakeWatcher(t, fc)
		w.checkEvery, w.relinkEvery = time.Hour, 0
		out := make(chan Event, 4)
		runWatcher(t, w, out)
		feedAndSync(t, fc, out) // Run has read the interface
		fc.readdress(newMAC, newIP)
		gwARP := fakeFrame{b: arpFrame(t, arpRequest, newMAC, newMAC, newIP, make(net.HardwareAddr, 6), phoneIP), outgoing: true}
		ack := ackMsg(phoneIP2)
		ack.src, ack.srcIP = newMAC, newIP
		forged := ack
		forged.dst = bcastMAC
		evs := feedAndSync(t, fc, out, gwARP, posing(t), fakeFrame{b: ack.frame(t), outgoing: true}, fakeFrame{b: forged.frame(t)})
		if len(evs) != 1 || evs[0].Kind != DHCPAck || evs[0].IP != phoneIP2 {
			t.Errorf("events %+v, want only the gateway's ACK from its new address", evs)
		}
		if s := w.Stats(); s.Own != 1 || s.Spoofed != 1 || s.Forged != 1 {
			t.Errorf("Stats = %+v, want 1 own frame, 1 device posing as the gateway, 1 forged ACK", s)
		}
	})

	t.Run("the periodic check", func(t *testing.T) {
		fc := newFake()
		w, _ := fakeWatcher(t, fc)
		w.checkEvery, w.relinkEvery = 20*time.Millisecond, time.Hour
		out := make(chan Event, 4)
		runWatcher(t, w, out)
		feedAndSync(t, fc, out)
		fc.readdress(newMAC, newIP)
		deadline := time.Now().Add(10 * time.Second)
		for n := fc.links.Load(); fc.links.Load() < n+2; {
			if time.Now().After(deadline) {
				t.Fatal("Run did not re-read the interface within 10s")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if evs := feedAndSync(t, fc, out, posing(t)); len(evs) != 0 {
			t.Errorf("a device posing as the gateway's new MAC gave events %+v", evs)
		}
		if s := w.Stats(); s.Spoofed != 1 {
			t.Errorf("Stats = %+v, want 1 device posing as the gateway", s)
		}
	})

	t.Run("bounded re-reads", func(t *testing.T) {
		// ACKs routed from outside each make Run look for a new address
		// before refusing; a flood of them makes at most one read per
		// relinkEvery.
		fc := newFake()
		w, _ := fakeWatcher(t, fc)
		w.checkEvery, w.relinkEvery = time.Hour, time.Hour
		out := make(chan Event, 4)
		runWatcher(t, w, out)
		feedAndSync(t, fc, out)
		before := fc.links.Load()
		routed := ackMsg(phoneIP2)
		routed.srcIP = netip.MustParseAddr("203.0.113.66")
		var flood []fakeFrame
		for range 50 {
			flood = append(flood, fakeFrame{b: routed.frame(t), outgoing: true})
		}
		feedAndSync(t, fc, out, flood...)
		if n := fc.links.Load() - before; n != 0 {
			t.Errorf("50 routed ACKs made %d interface reads within relinkEvery, want 0", n)
		}
		if s := w.Stats(); s.Forged != 50 {
			t.Errorf("Stats = %+v, want 50 forged ACKs", s)
		}
	})
}

// TestRunStops checks both places Run can wait: a silent LAN, and a send
// that nobody receives.
func TestRunStops(t *testing.T) {
	for _, blocked := range []bool{false, true} {
		fc := newFake()
		w, _ := fakeWatcher(t, fc)
		cancel := runWatcher(t, w, make(chan Event))
		if blocked {
			fc.frames <- fakeFrame{b: gratuitousARP(t, phoneIP)}
		}
		time.Sleep(50 * time.Millisecond)
		if err := cancel(); err != nil {
			t.Fatalf("blocked on send %v: %v", blocked, err)
		}
		if !fc.closed.Load() {
			t.Errorf("blocked on send %v: capture not closed", blocked)
		}
	}
}

func TestRunReopens(t *testing.T) {
	first, second, third := newFake(), newFake(), newFake()
	w, opened := fakeWatcher(t, first, second, third)
	out := make(chan Event)
	runWatcher(t, w, out)

	first.fail <- errors.New("network is down")
	second.frames <- fakeFrame{b: gratuitousARP(t, phoneIP)}
	if ev := nextEvent(t, out); ev.IP != phoneIP {
		t.Fatalf("event after reopen = %+v", ev)
	}
	if !first.closed.Load() {
		t.Error("failed capture not closed")
	}
	second.isStale.Store(true) // checked every checkEvery
	third.frames <- fakeFrame{b: gratuitousARP(t, phoneIP2)}
	if ev := nextEvent(t, out); ev.IP != phoneIP2 {
		t.Fatalf("event after interface change = %+v", ev)
	}
	if n := opened.Load(); n != 3 {
		t.Errorf("opened %d captures, want 3", n)
	}
	if s := w.Stats(); s.Reopens != 2 || s.ReadErrors != 1 {
		t.Errorf("Stats = %+v, want 2 reopens and 1 read error", s)
	}
}

func TestRunOnce(t *testing.T) {
	w, _ := fakeWatcher(t, newFake())
	w.Close()
	if err := w.Run(context.Background(), make(chan Event)); err == nil {
		t.Error("Run after Close succeeded")
	}
}
