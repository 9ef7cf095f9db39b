package session

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/firewall"
	"github.com/parkwifi/parkportal/internal/fake"
	"github.com/parkwifi/parkportal/store"
)

// recorder is an Observer that remembers what it heard.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) SessionStarted(s *store.Session) { r.add("started " + s.ID) }
func (r *recorder) SessionEnded(s *store.Session) {
	r.add(fmt.Sprintf("ended %s %s", s.ID, s.EndReason))
}
func (r *recorder) add(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.events
	r.events = nil
	return e
}

var policy = Policy{SessionTimeout: 4 * time.Hour, IdleTimeout: 20 * time.Minute, RateDown: 8_000_000, RateUp: 4_000_000}

type fixture struct {
	m     *Manager
	st    *store.Store
	gate  *fake.Gate
	clock *fake.Clock
	obs   *recorder
	path  string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pp.db")
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, gate: fake.NewGate(), clock: fake.NewClock(time.Date(2026, 3, 1, 16, 0, 0, 0, time.UTC)), obs: &recorder{}, path: path}
	f.m = NewManager(Options{
		Store: st, Gate: f.gate, Site: "park", Policy: policy, Now: f.clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	f.m.AddObserver(f.obs)
	if err := f.m.Restore(); err != nil {
		t.Fatal(err)
	}
	return f
}

func hw(last byte) net.HardwareAddr { return net.HardwareAddr{0x02, 0, 0, 0, 0, last} }
func ip(last byte) netip.Addr       { return netip.AddrFrom4([4]byte{198, 51, 100, last}) }

func login(n byte) Login {
	return Login{MAC: hw(n), IP: ip(n + 10), Phone: fmt.Sprintf("+974331234%02d", n), Lang: "ar"}
}

func (f *fixture) activate(t *testing.T, l Login) *store.Session {
	t.Helper()
	s, err := f.m.Activate(l)
	if err != nil {
		t.Fatalf("Activate(%v): %v", l.MAC, err)
	}
	return s
}

func (f *fixture) stored(t *testing.T, id string) *store.Session {
	t.Helper()
	s, err := f.st.Session(id)
	if err != nil {
		t.Fatalf("Session(%s): %v", id, err)
	}
	return s
}

func TestActivate(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	s := f.activate(t, login(1))
	if s.ID == "" || s.State != store.Active || s.Site != "park" || s.Phone != login(1).Phone || s.Lang != "ar" {
		t.Errorf("session = %+v", s)
	}
	if !s.Start.Equal(now) || !s.Expires.Equal(now.Add(4*time.Hour)) || s.IdleTimeout != 20*time.Minute || s.RateDown != 8e6 || s.RateUp != 4e6 {
		t.Errorf("session times/rates = %+v", s)
	}
	got := f.stored(t, s.ID)
	if got.State != store.Active || got.MAC.String() != hw(1).String() || got.IP != ip(11) {
		t.Errorf("stored = %+v", got)
	}
	if want := []string{"198.51.100.11/02:00:00:00:00:01 8000000/4000000"}; !slices.Equal(f.gate.State(), want) {
		t.Errorf("gate = %q, want %q", f.gate.State(), want)
	}
	if ev := f.obs.take(); !slices.Equal(ev, []string{"started " + s.ID}) {
		t.Errorf("observer heard %q", ev)
	}
	a, err := f.m.ActiveFor(ip(11), hw(1))
	if err != nil || a.ID != s.ID {
		t.Errorf("ActiveFor = %v, %v", a, err)
	}
	if _, err := f.m.ActiveFor(ip(12), hw(1)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ActiveFor(other IP) = %v, want ErrNotFound", err)
	}
	if _, err := f.m.ActiveByMAC(hw(2)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ActiveByMAC(other device) = %v, want ErrNotFound", err)
	}
	s2 := f.activate(t, login(2))
	if s2.ID == s.ID {
		t.Error("two sessions share an id")
	}
}

func TestActivateUsesCurrentPolicy(t *testing.T) {
	f := newFixture(t)
	p := Policy{SessionTimeout: time.Hour, IdleTimeout: 5 * time.Minute, RateDown: 2e6, RateUp: 1e6}
	f.m.SetPolicy(p)
	if f.m.Policy() != p {
		t.Fatalf("Policy() = %+v", f.m.Policy())
	}
	s := f.activate(t, login(1))
	if s.Expires.Sub(s.Start) != time.Hour || s.IdleTimeout != 5*time.Minute || s.RateDown != 2e6 {
		t.Errorf("session = %+v, want the new policy", s)
	}
}

func TestActivateAllowFails(t *testing.T) {
	f := newFixture(t)
	f.gate.FailAllow(errors.New("netlink: no buffer space"))
	s, err := f.m.Activate(login(1))
	if err == nil || s != nil {
		t.Fatalf("Activate = %v, %v; want an error", s, err)
	}
	active, _ := f.st.ActiveSessions()
	if len(active) != 0 {
		t.Errorf("active after failed Activate: %+v", active)
	}
	all, _ := f.st.Sessions(nil)
	if len(all) != 1 || all[0].State != store.Ended || all[0].Ended.IsZero() {
		t.Errorf("stored = %+v, want one ended session", all)
	}
	if len(f.gate.State()) != 0 {
		t.Errorf("gate = %q", f.gate.State())
	}
	if ev := f.obs.take(); len(ev) != 0 {
		t.Errorf("observers heard %q of a session that never started", ev)
	}
}

// TestActivateAllowFailsAfterReplace: a device logging in again (same MAC
// and IP) replaces its old session, which is therefore not denied, since
// Allow of the new one would put the same entry back. When that Allow
// fails, nothing in the store is active, so nothing may stay in the gate.
func TestActivateAllowFailsAfterReplace(t *testing.T) {
	f := newFixture(t)
	old := f.activate(t, login(1))
	f.obs.take()
	f.gate.FailAllow(errors.New("netlink: no buffer space"))
	if _, err := f.m.Activate(login(1)); err == nil {
		t.Fatal("Activate succeeded with a failing gate")
	}
	if s := f.stored(t, old.ID); s.State != store.Ended || s.EndReason != store.ReasonReplaced {
		t.Errorf("old session = %+v, want ended as replaced", s)
	}
	active, _ := f.st.ActiveSessions()
	if len(active) != 0 {
		t.Fatalf("active sessions: %+v", active)
	}
	if st := f.gate.State(); len(st) != 0 {
		t.Errorf("store has no active session but the gate still lets out %q", st)
	}
	f.gate.FailAllow(nil)
	if n, err := f.m.Resync(); err != nil || n != 0 || len(f.gate.State()) != 0 {
		t.Errorf("Resync = %d, %v, gate %q; want nothing left to repair", n, err, f.gate.State())
	}
}

func TestActivateReplaces(t *testing.T) {
	f := newFixture(t)
	a := f.activate(t, login(1))
	// Same device, new address: the old entry leaves the gate.
	l := login(1)
	l.IP = ip(50)
	a2 := f.activate(t, l)
	if got := f.stored(t, a.ID); got.State != store.Ended || got.EndReason != store.ReasonReplaced {
		t.Errorf("old = %+v", got)
	}
	if f.gate.Has(ip(11), hw(1)) || !f.gate.Has(ip(50), hw(1)) {
		t.Errorf("gate = %q", f.gate.State())
	}
	// A new device on that address: the first device leaves the gate.
	l3 := login(3)
	l3.IP = ip(50)
	c := f.activate(t, l3)
	if want := []string{"198.51.100.50/02:00:00:00:00:03 8000000/4000000"}; !slices.Equal(f.gate.State(), want) {
		t.Errorf("gate = %q, want %q", f.gate.State(), want)
	}
	// Same device and address again: one entry, still allowed.
	c2 := f.activate(t, l3)
	if !f.gate.Has(ip(50), hw(3)) || len(f.gate.State()) != 1 {
		t.Errorf("gate after re-login = %q", f.gate.State())
	}
	want := []string{
		"started " + a.ID,
		"ended " + a.ID + " replaced", "started " + a2.ID,
		"ended " + a2.ID + " replaced", "started " + c.ID,
		"ended " + c.ID + " replaced", "started " + c2.ID,
	}
	if ev := f.obs.take(); !slices.Equal(ev, want) {
		t.Errorf("observer heard\n%q\nwant\n%q", ev, want)
	}
}

func TestEnd(t *testing.T) {
	f := newFixture(t)
	s := f.activate(t, login(1))
	keep := f.activate(t, login(2))
	f.obs.take()
	f.clock.Advance(10 * time.Minute)
	ended, err := f.m.End(s.ID, store.ReasonLogout)
	if err != nil {
		t.Fatal(err)
	}
	if ended.State != store.Ended || ended.EndReason != store.ReasonLogout || !ended.Ended.Equal(f.clock.Now()) {
		t.Errorf("ended = %+v", ended)
	}
	if f.gate.Has(s.IP, s.MAC) || !f.gate.Has(keep.IP, keep.MAC) {
		t.Errorf("gate = %q", f.gate.State())
	}
	if ev := f.obs.take(); !slices.Equal(ev, []string{"ended " + s.ID + " user-request"}) {
		t.Errorf("observer heard %q", ev)
	}
	// Ending again changes nothing and tells nobody.
	again, err := f.m.End(s.ID, store.ReasonKicked)
	if err != nil || again.EndReason != store.ReasonLogout {
		t.Errorf("second End = %+v, %v", again, err)
	}
	if ev := f.obs.take(); len(ev) != 0 {
		t.Errorf("second End notified %q", ev)
	}
	if _, err := f.m.End("missing", store.ReasonKicked); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("End(missing) = %v", err)
	}
}

func TestEndDenyFailsRequestsResync(t *testing.T) {
	f := newFixture(t)
	s := f.activate(t, login(1))
	f.gate.FailDeny(errors.New("netlink: busy"))
	if _, err := f.m.End(s.ID, store.ReasonKicked); err != nil {
		t.Fatalf("End = %v; the store is the truth, so End succeeds", err)
	}
	if got := f.stored(t, s.ID); got.State != store.Ended {
		t.Errorf("stored = %+v", got)
	}
	select {
	case <-f.m.resync:
	default:
		t.Error("no resync requested after a failed Deny")
	}
	f.gate.FailDeny(nil)
	if _, err := f.m.Resync(); err != nil || len(f.gate.State()) != 0 {
		t.Errorf("Resync = %v, gate %q", err, f.gate.State())
	}
}

func TestSweepHardExpiry(t *testing.T) {
	f := newFixture(t)
	s := f.activate(t, login(1))
	f.obs.take()
	// Busy all along: traffic every 10 minutes.
	for range 23 {
		f.clock.Advance(10 * time.Minute)
		f.gate.Traffic(s.IP, 10)
		if n, err := f.m.Sweep(); n != 0 || err != nil {
			t.Fatalf("Sweep at %v = %d, %v", f.clock.Now(), n, err)
		}
	}
	f.clock.Advance(10 * time.Minute) // 4h since start
	f.gate.Traffic(s.IP, 10)
	if n, err := f.m.Sweep(); n != 1 || err != nil {
		t.Fatalf("Sweep at expiry = %d, %v", n, err)
	}
	if got := f.stored(t, s.ID); got.State != store.Ended || got.EndReason != store.ReasonExpired {
		t.Errorf("stored = %+v", got)
	}
	if len(f.gate.State()) != 0 {
		t.Errorf("gate = %q", f.gate.State())
	}
	if ev := f.obs.take(); !slices.Equal(ev, []string{"ended " + s.ID + " session-timeout"}) {
		t.Errorf("observer heard %q", ev)
	}
}

func TestSweepIdle(t *testing.T) {
	f := newFixture(t)
	idle := f.activate(t, login(1))
	busy := f.activate(t, login(2))
	quiet := f.activate(t, login(3)) // some traffic at first, then none
	f.gate.Traffic(quiet.IP, 5)
	step := func(d time.Duration) int {
		t.Helper()
		f.clock.Advance(d)
		f.gate.Traffic(busy.IP, 3)
		n, err := f.m.Sweep()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// quiet sent its packets in the first 5 minutes.
	if n := step(5 * time.Minute); n != 0 {
		t.Fatalf("ended %d at 5m", n)
	}
	if n := step(14 * time.Minute); n != 0 { // 19m: nobody idle for 20m yet
		t.Fatalf("ended %d at 19m", n)
	}
	if n := step(time.Minute); n != 1 { // 20m: idle's counters never moved
		t.Fatalf("ended %d at 20m, want 1 (idle)", n)
	}
	if got := f.stored(t, idle.ID); got.State != store.Ended || got.EndReason != store.ReasonIdle {
		t.Errorf("idle = %+v", got)
	}
	if n := step(4 * time.Minute); n != 0 { // 24m: quiet idle for 19m
		t.Fatalf("ended %d at 24m", n)
	}
	if n := step(time.Minute); n != 1 { // 25m: quiet idle for 20m
		t.Fatalf("ended %d at 25m, want 1 (quiet)", n)
	}
	if got := f.stored(t, quiet.ID); got.State != store.Ended || got.EndReason != store.ReasonIdle {
		t.Errorf("quiet = %+v", got)
	}
	for range 10 {
		if n := step(10 * time.Minute); n != 0 {
			t.Fatalf("busy session ended at %v", f.clock.Now())
		}
	}
	if got := f.stored(t, busy.ID); got.State != store.Active {
		t.Errorf("busy = %+v", got)
	}
	if want := []string{"198.51.100.12/02:00:00:00:00:02 8000000/4000000"}; !slices.Equal(f.gate.State(), want) {
		t.Errorf("gate = %q, want %q", f.gate.State(), want)
	}
}

// TestSweepIdleAcrossRestart: activity is written to the store (at most
// once a minute), so a new Manager over the same store does not end a
// session that was busy just before the restart.
func TestSweepIdleAcrossRestart(t *testing.T) {
	f := newFixture(t)
	s := f.activate(t, login(1))
	f.clock.Advance(15 * time.Minute)
	f.gate.Traffic(s.IP, 5)
	if n, _ := f.m.Sweep(); n != 0 {
		t.Fatal("ended a busy session")
	}
	if got := f.stored(t, s.ID); !got.LastActive.Equal(f.clock.Now()) {
		t.Errorf("LastActive = %v, want %v", got.LastActive, f.clock.Now())
	}
	m2 := NewManager(Options{Store: f.st, Gate: f.gate, Site: "park", Policy: policy, Now: f.clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := m2.Restore(); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(10 * time.Minute)
	if n, _ := m2.Sweep(); n != 0 {
		t.Errorf("ended after restart though active 10m ago")
	}
}

// TestSweepUsageError: while the traffic counters cannot be read, nobody
// can tell idle from busy, so idle timeouts wait (as the log line says)
// and only hard expiry applies.
func TestSweepUsageError(t *testing.T) {
	f := newFixture(t)
	busy := f.activate(t, login(1))
	for range 21 { // busy until 19:30
		f.clock.Advance(10 * time.Minute)
		f.gate.Traffic(busy.IP, 10)
		f.m.Sweep()
	}
	late := f.activate(t, login(2)) // expires 30m after busy
	f.gate.Traffic(late.IP, 10)
	if n, _ := f.m.Sweep(); n != 0 {
		t.Fatalf("ended %d busy sessions", n)
	}
	f.gate.FailUsage(errors.New("netlink: dump interrupted"))
	for range 5 { // both keep sending, unseen
		f.clock.Advance(5 * time.Minute)
		f.gate.Traffic(busy.IP, 10)
		f.gate.Traffic(late.IP, 10)
		if n, err := f.m.Sweep(); err != nil || n != 0 {
			t.Fatalf("Sweep without counters at %v = %d, %v; want no idle endings", f.clock.Now(), n, err)
		}
	}
	f.clock.Advance(5 * time.Minute) // 20:00, busy's hard expiry
	if n, err := f.m.Sweep(); err != nil || n != 1 {
		t.Errorf("Sweep without counters at expiry = %d, %v; want 1", n, err)
	}
	if got := f.stored(t, busy.ID); got.EndReason != store.ReasonExpired {
		t.Errorf("busy = %+v, want session-timeout", got)
	}
	f.gate.FailUsage(nil)
	if n, err := f.m.Sweep(); err != nil || n != 0 {
		t.Errorf("Sweep with counters back = %d, %v; want late kept (its counters moved)", n, err)
	}
	f.clock.Advance(20 * time.Minute)
	if n, err := f.m.Sweep(); err != nil || n != 1 {
		t.Errorf("Sweep 20m after the last traffic = %d, %v; want 1", n, err)
	}
}

func TestSweepPrunesPending(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	f.st.PutPending(&store.Pending{MAC: "02:00:00:00:00:01", Expires: now.Add(time.Minute)})
	f.st.PutPending(&store.Pending{MAC: "02:00:00:00:00:02", Expires: now.Add(10 * time.Minute)})
	f.clock.Advance(2 * time.Minute)
	f.m.Sweep()
	if _, err := f.st.Pending("02:00:00:00:00:01"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired PIN kept: %v", err)
	}
	if _, err := f.st.Pending("02:00:00:00:00:02"); err != nil {
		t.Errorf("live PIN pruned: %v", err)
	}
}

func TestRestoreAndResync(t *testing.T) {
	f := newFixture(t)
	a := f.activate(t, login(1))
	b := f.activate(t, login(2))
	f.st.Close()

	// A restart: new store handle, an empty kernel with a stranger in it.
	st, err := store.Open(f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	gate := fake.NewGate()
	gate.Allow(firewall.Client{MAC: hw(9), IP: ip(99)})
	m := NewManager(Options{Store: st, Gate: gate, Site: "park", Policy: policy, Now: f.clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := m.Restore(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"198.51.100.11/02:00:00:00:00:01 8000000/4000000",
		"198.51.100.12/02:00:00:00:00:02 8000000/4000000",
	}
	if !slices.Equal(gate.State(), want) || gate.Ensured() != 1 {
		t.Errorf("gate after Restore = %q (ensured %d), want %q", gate.State(), gate.Ensured(), want)
	}
	if n, err := m.Resync(); n != 0 || err != nil {
		t.Errorf("Resync with no drift = %d, %v", n, err)
	}
	// Drift: something removed a and added a stranger.
	gate.Deny(firewall.Client{MAC: a.MAC, IP: a.IP})
	gate.Allow(firewall.Client{MAC: hw(8), IP: ip(88)})
	if n, err := m.Resync(); n != 2 || err != nil {
		t.Errorf("Resync = %d, %v; want 2 repairs", n, err)
	}
	if !slices.Equal(gate.State(), want) {
		t.Errorf("gate after Resync = %q, want %q", gate.State(), want)
	}
	_ = b
}

func TestRebind(t *testing.T) {
	f := newFixture(t)
	s := f.activate(t, login(1))
	f.obs.take()
	moved, err := f.m.Rebind(s.ID, ip(77))
	if err != nil {
		t.Fatal(err)
	}
	if moved.ID != s.ID || moved.IP != ip(77) || moved.State != store.Active {
		t.Errorf("moved = %+v", moved)
	}
	if got := f.stored(t, s.ID); got.IP != ip(77) {
		t.Errorf("stored IP = %s", got.IP)
	}
	if want := []string{"198.51.100.77/02:00:00:00:00:01 8000000/4000000"}; !slices.Equal(f.gate.State(), want) {
		t.Errorf("gate = %q, want %q", f.gate.State(), want)
	}
	if ev := f.obs.take(); len(ev) != 0 {
		t.Errorf("a move notified %q", ev)
	}
	if _, err := f.m.Rebind("missing", ip(78)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Rebind(missing) = %v", err)
	}
	f.m.End(s.ID, store.ReasonLogout)
	if _, err := f.m.Rebind(s.ID, ip(79)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Rebind(ended) = %v, want ErrNotFound", err)
	}
	if len(f.gate.State()) != 0 {
		t.Errorf("gate after rebinding an ended session = %q", f.gate.State())
	}
}

// TestAddressAssigned: a DHCP lease for a device with a session moves
// the session; one for a device without a session prepares the gate at
// the site's rates and lets nothing through.
func TestAddressAssigned(t *testing.T) {
	f := newFixture(t)
	s := f.activate(t, login(1))
	moved, err := f.m.AddressAssigned(hw(1), ip(77))
	if err != nil || moved == nil || moved.ID != s.ID || moved.IP != ip(77) {
		t.Fatalf("AddressAssigned for a visitor = %+v, %v; want its session at %s", moved, err, ip(77))
	}
	if p := f.gate.Prepared(); len(p) != 0 {
		t.Errorf("a visitor's move prepared %q", p)
	}
	if got, err := f.m.AddressAssigned(hw(1), ip(77)); got != nil || err != nil {
		t.Errorf("renewal of the same address = %+v, %v; want nothing", got, err)
	}

	got, err := f.m.AddressAssigned(hw(2), ip(12))
	if got != nil || err != nil {
		t.Fatalf("AddressAssigned for a new device = %+v, %v", got, err)
	}
	if p, want := f.gate.Prepared(), []string{"198.51.100.12 8000000/4000000"}; !slices.Equal(p, want) {
		t.Errorf("prepared %q, want %q", p, want)
	}
	if f.gate.Has(ip(12), hw(2)) {
		t.Error("preparing a device let it through")
	}
	f.m.SetPolicy(Policy{SessionTimeout: time.Hour, IdleTimeout: time.Hour, RateDown: 2_000_000, RateUp: 1_000_000})
	f.m.AddressAssigned(hw(3), ip(13))
	if p, want := f.gate.Prepared(), []string{"198.51.100.13 2000000/1000000"}; !slices.Equal(p, want) {
		t.Errorf("after a policy change prepared %q, want %q", p, want)
	}
}

func TestRequestResyncNeverBlocks(t *testing.T) {
	f := newFixture(t)
	for range 5 {
		f.m.RequestResync()
	}
	if len(f.m.resync) != 1 {
		t.Errorf("%d resyncs pending, want 1", len(f.m.resync))
	}
}

func TestConcurrentActivateAndSweep(t *testing.T) {
	f := newFixture(t)
	var wg sync.WaitGroup
	for i := range byte(10) {
		wg.Go(func() {
			if _, err := f.m.Activate(login(i)); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() { f.m.Sweep() })
		wg.Go(func() { f.m.Resync() })
	}
	wg.Wait()
	active, _ := f.st.ActiveSessions()
	if len(active) != 10 || len(f.gate.State()) != 10 {
		t.Errorf("%d active, gate %q", len(active), f.gate.State())
	}
}

// TestSetPolicyMovesDefaultRates: a site rate change reaches active
// sessions on the site's rates, not those with a rate of their own.
func TestSetPolicyMovesDefaultRates(t *testing.T) {
	f := newFixture(t)
	a := f.activate(t, login(1))
	b := f.activate(t, login(2))
	if _, err := f.m.SetRate(b.ID, 2_000_000, 2_000_000); err != nil {
		t.Fatal(err)
	}
	p := f.m.Policy()
	p.RateDown, p.RateUp = 4_000_000, 4_000_000
	f.m.SetPolicy(p)
	if s := f.stored(t, a.ID); s.RateDown != 4_000_000 || s.RateUp != 4_000_000 {
		t.Errorf("session on the site rate: %d/%d, want 4000000/4000000", s.RateDown, s.RateUp)
	}
	if s := f.stored(t, b.ID); s.RateDown != 2_000_000 {
		t.Errorf("session with its own rate changed to %d", s.RateDown)
	}
}
