package devwatch

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
)

// fakeCapture is a capture fed by the test.
type fakeCapture struct {
	frames  chan fakeFrame
	fail    chan error
	isStale atomic.Bool
	closed  atomic.Bool
}

type fakeFrame struct {
	b         []byte
	truncated bool
}

func newFake() *fakeCapture {
	return &fakeCapture{frames: make(chan fakeFrame, 64), fail: make(chan error, 1)}
}

func (f *fakeCapture) read() ([]byte, time.Time, bool, error) {
	select {
	case fr := <-f.frames:
		return fr.b, t0, fr.truncated, nil
	case err := <-f.fail:
		return nil, time.Time{}, false, err
	case <-time.After(10 * time.Millisecond):
		return nil, time.Time{}, false, errTimeout
	}
}
func (f *fakeCapture) stale() bool               { return f.isStale.Load() }
func (f *fakeCapture) gateway() net.HardwareAddr { return gwMAC }
func (f *fakeCapture) close()                    { f.closed.Store(true) }

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

	req := clientMsg(layers.DHCPMsgTypeRequest)
	req.requested, req.hostname, req.vendor = phoneIP, []byte("amal-phone"), []byte("android-dhcp-14")
	rogueAck := ackMsg(phoneIP2)
	rogueAck.src = spooferMAC
	spoofedReq := clientMsg(layers.DHCPMsgTypeRequest)
	spoofedReq.src, spoofedReq.requested = spooferMAC, phoneIP2
	feed := []fakeFrame{
		{b: req.frame(t)},
		{b: rogueAck.frame(t)},   // rogue server moving the phone: dropped
		{b: spoofedReq.frame(t)}, // spoofer asking in the phone's name: dropped
		{b: arpFrame(t, layers.ARPReply, spooferMAC, phoneMAC, phoneIP2, gwMAC, gwIP)},              // ARP spoofing: dropped
		{b: arpFrame(t, layers.ARPRequest, gwMAC, gwMAC, gwIP, make(net.HardwareAddr, 6), phoneIP)}, // own: dropped
		{b: []byte("garbage")},
		{b: clientMsg(layers.DHCPMsgTypeDiscover).frame(t)},
		{b: gratuitousARP(t, phoneIP), truncated: true},
		{b: ackMsg(phoneIP).frame(t)}, // the gateway's ACK: reported, with the REQUEST's names
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

func TestRunTrustedServer(t *testing.T) {
	fc := newFake()
	w, _ := fakeWatcher(t, fc)
	w.TrustDHCPServer(spooferMAC)
	out := make(chan Event, 1)
	runWatcher(t, w, out)
	ack := ackMsg(phoneIP2)
	ack.src = spooferMAC
	fc.frames <- fakeFrame{b: ack.frame(t)}
	if ev := nextEvent(t, out); ev.Kind != DHCPAck || ev.IP != phoneIP2 {
		t.Errorf("event from trusted server = %+v", ev)
	}
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
