package session

import (
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/parkwifi/parkportal/firewall"
	"github.com/parkwifi/parkportal/internal/fake"
	"github.com/parkwifi/parkportal/store"
)

// countingGate counts how often the kernel's counters are read.
type countingGate struct {
	*fake.Gate
	reads atomic.Int64
}

func (g *countingGate) Usage() (map[netip.Addr]firewall.Usage, error) {
	g.reads.Add(1)
	return g.Gate.Usage()
}

func newCountingFixture(t *testing.T) (*fixture, *countingGate) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "pp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	g := &countingGate{Gate: fake.NewGate()}
	f := &fixture{st: st, gate: g.Gate, clock: fake.NewClock(time.Date(2026, 3, 1, 16, 0, 0, 0, time.UTC)), obs: &recorder{}}
	f.m = NewManager(Options{Store: st, Gate: g, Site: "park", Policy: policy, Now: f.clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	f.m.AddObserver(f.obs)
	if err := f.m.Restore(); err != nil {
		t.Fatal(err)
	}
	return f, g
}

// endedEvent takes the outbox and returns the end event of session id.
func endedEvent(t *testing.T, st *store.Store, id string) *store.Session {
	t.Helper()
	var found *store.Session
	err := st.DB().Update(func(tx *bbolt.Tx) error {
		evs, _, err := store.TakeEvents(tx, 1000)
		for _, e := range evs {
			if e.Kind == store.EventEnded && e.Session.ID == id {
				found = e.Session
			}
		}
		return err
	})
	if err != nil || found == nil {
		t.Fatalf("no end event for %s (%v)", id, err)
	}
	return found
}

// TestEndCountsFresh: a session's final totals are the kernel's counters
// at its end, not at the last sweep (the cause of a Stop saying 7.1 MB
// after a 10 MB download), for a logout or kick, for a session a new
// login replaces, and in the end event the outbox keeps.
func TestEndCountsFresh(t *testing.T) {
	f, _ := newCountingFixture(t)
	s := f.activate(t, login(1))
	f.gate.Traffic(s.IP, 10)
	if _, err := f.m.Sweep(); err != nil {
		t.Fatal(err)
	}
	f.gate.Traffic(s.IP, 25) // after the last sweep
	ended, err := f.m.End(s.ID, store.ReasonLogout)
	if err != nil {
		t.Fatal(err)
	}
	if ended.BytesUp != 3500 || ended.PacketsUp != 35 {
		t.Errorf("End: %d bytes, %d packets; want 3500 and 35 (the counters at the end)", ended.BytesUp, ended.PacketsUp)
	}
	if ev := endedEvent(t, f.st, s.ID); ev.BytesUp != 3500 {
		t.Errorf("end event: %d bytes, want 3500", ev.BytesUp)
	}

	// Never swept at all: the totals still come from the kernel.
	s2 := f.activate(t, login(2))
	f.gate.Traffic(s2.IP, 7)
	// Same device logs in again: its first session is replaced.
	again := login(2)
	again.IP = ip(40)
	f.activate(t, again)
	if ev := endedEvent(t, f.st, s2.ID); ev.EndReason != store.ReasonReplaced || ev.BytesUp != 700 {
		t.Errorf("replaced session's end: %s, %d bytes; want replaced, 700", ev.EndReason, ev.BytesUp)
	}
	if got := f.stored(t, s2.ID); got.BytesUp != 700 {
		t.Errorf("replaced session stored with %d bytes, want 700", got.BytesUp)
	}
}

// TestSweepEndsReadCountersOnce: a sweep ending many sessions at once
// does not read every visitor's counters once per session.
func TestSweepEndsReadCountersOnce(t *testing.T) {
	f, g := newCountingFixture(t)
	for i := range byte(20) {
		f.activate(t, login(i+1))
	}
	f.clock.Advance(5 * time.Hour) // all expire
	before := g.reads.Load()
	n, err := f.m.Sweep()
	if err != nil || n != 20 {
		t.Fatalf("Sweep ended %d, %v", n, err)
	}
	// One reading for the sweep's own pass, and the ends share fresh
	// ones (more only if the sweep took longer than usageMaxAge).
	if reads := g.reads.Load() - before; reads > 3 {
		t.Errorf("%d readings of the counters to end 20 sessions", reads)
	}
}

// TestCounted: interim figures are read now, not at the last sweep.
func TestCounted(t *testing.T) {
	f, _ := newCountingFixture(t)
	s := f.activate(t, login(1))
	f.gate.Traffic(s.IP, 4)
	list, err := f.m.Counted()
	if err != nil || len(list) != 1 || list[0].BytesUp != 400 {
		t.Fatalf("Counted: %+v, %v", list, err)
	}
	f.gate.Traffic(s.IP, 1)
	if live, _ := f.m.Live(); live[0].BytesUp != 400 {
		t.Errorf("Live after Counted: %d (Live is as of the latest reading)", live[0].BytesUp)
	}
	if list, _ := f.m.Counted(); list[0].BytesUp != 500 {
		t.Errorf("Counted again: %d, want 500", list[0].BytesUp)
	}
}

// TestSameDeviceReLoginCountsFromZero: a device that logs in again at the
// same address keeps its kernel entry (and its counters): the old
// session ends with what it moved, the new one counts only what comes
// after.
func TestSameDeviceReLoginCountsFromZero(t *testing.T) {
	f, _ := newCountingFixture(t)
	a := f.activate(t, login(1))
	f.gate.Traffic(a.IP, 7)
	b := f.activate(t, login(1)) // same MAC, same IP
	if ev := endedEvent(t, f.st, a.ID); ev.BytesUp != 700 {
		t.Errorf("replaced session's end: %d bytes, want 700", ev.BytesUp)
	}
	f.gate.Traffic(b.IP, 3)
	if _, err := f.m.Sweep(); err != nil {
		t.Fatal(err)
	}
	ended, err := f.m.End(b.ID, store.ReasonLogout)
	if err != nil {
		t.Fatal(err)
	}
	if ended.BytesUp != 300 || ended.PacketsUp != 3 {
		t.Errorf("new session: %d bytes, %d packets; want 300 and 3 (not the old session's too)", ended.BytesUp, ended.PacketsUp)
	}
}

// denyWatcher records whether the store still said active when the
// session was taken out of the kernel.
type denyWatcher struct {
	*countingGate
	st           *store.Store
	activeAtDeny []bool
}

func (g *denyWatcher) Deny(c firewall.Client) error {
	s, err := g.st.ActiveByMAC(c.MAC)
	g.activeAtDeny = append(g.activeAtDeny, err == nil && s.IP == c.IP)
	return g.countingGate.Deny(c)
}

// TestEndCutsBeforeItStores: the visitor is cut off before the end is
// written (an fsync a busy flash may take seconds over), so nothing moves
// uncounted between the counters' reading and the cut.
func TestEndCutsBeforeItStores(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "pp.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g := &denyWatcher{countingGate: &countingGate{Gate: fake.NewGate()}, st: st}
	m := NewManager(Options{Store: st, Gate: g, Site: "park", Policy: policy, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := m.Restore(); err != nil {
		t.Fatal(err)
	}
	s, err := m.Activate(login(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.End(s.ID, store.ReasonKicked); err != nil {
		t.Fatal(err)
	}
	if len(g.activeAtDeny) != 1 || !g.activeAtDeny[0] {
		t.Errorf("the store said active at the cut: %v, want [true] (cut first, then store)", g.activeAtDeny)
	}
	if g.Has(s.IP, s.MAC) {
		t.Error("still allowed after the end")
	}
}
