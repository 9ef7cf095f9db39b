package session

import (
	"slices"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/firewall"
	"github.com/parkwifi/parkportal/internal/fake"
	"github.com/parkwifi/parkportal/store"
)

// TestLockedActiveSeesChangesDuringItsRead: lockedActive reads the store
// without the session lock, so logins, ends and changes can land between
// that read and the lock. Whatever lands there, it must return the active
// sessions as they are once it holds the lock: a resync that handed the
// gate an older list would take a visitor who just logged in off the
// allowlist, or put back one who just logged out.
func TestLockedActiveSeesChangesDuringItsRead(t *testing.T) {
	f := newFixture(t)
	a := f.activate(t, login(1))
	b := f.activate(t, login(2))
	c := f.activate(t, login(3))
	var fresh *store.Session
	f.m.testHookSnapshot = func() {
		f.m.testHookSnapshot = nil
		if _, err := f.m.End(a.ID, store.ReasonLogout); err != nil {
			t.Fatal(err)
		}
		if _, err := f.m.Extend(b.ID, time.Hour); err != nil {
			t.Fatal(err)
		}
		fresh = f.activate(t, login(4))
	}
	active, err := f.m.lockedActive()
	if err != nil {
		t.Fatal(err)
	}
	f.m.mu.Unlock()
	byID := map[string]*store.Session{}
	var ids []string
	for _, s := range active {
		byID[s.ID] = s
		ids = append(ids, s.ID)
	}
	want := []string{b.ID, c.ID, fresh.ID}
	slices.Sort(ids)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("lockedActive returned %v, want %v (b, c and the new login; a logged out)", ids, want)
	}
	if got := byID[b.ID].Expires; !got.Equal(b.Expires.Add(time.Hour)) {
		t.Errorf("b's expiry %v: the extension made during the read is missing (want %v)", got, b.Expires.Add(time.Hour))
	}

	// From now on the manager answers from its own record, patched with
	// what it changed; it must stay equal to the store's.
	if _, err := f.m.End(c.ID, store.ReasonKicked); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.SetRate(b.ID, 2_000_000, 0); err != nil {
		t.Fatal(err)
	}
	g := f.activate(t, login(5))
	f.gate.Traffic(g.IP, 7)
	f.clock.Advance(2 * time.Minute)
	if _, err := f.m.Sweep(); err != nil {
		t.Fatal(err)
	}
	// The same phone logs in again from another address: its session is
	// replaced.
	again := login(5)
	again.IP = ip(99)
	f.activate(t, again)
	active, err = f.m.lockedActive()
	if err != nil {
		t.Fatal(err)
	}
	f.m.mu.Unlock()
	f.sameAsStore(t, active)
	// Copies: changing what lockedActive returned changes nothing kept.
	active[0].IP = ip(250)
	kept, _ := f.m.lockedActive()
	f.m.mu.Unlock()
	for _, s := range kept {
		if s.IP == ip(250) {
			t.Error("lockedActive handed out its own record, not copies")
		}
	}
}

// sameAsStore checks that active, from lockedActive, holds the store's
// active sessions as they are.
func (f *fixture) sameAsStore(t *testing.T, active []*store.Session) {
	t.Helper()
	fromStore, err := f.st.ActiveSessions()
	if err != nil {
		t.Fatal(err)
	}
	key := func(s *store.Session) string {
		return s.ID + " " + s.IP.String() + " " + s.Expires.String() + " " + s.LastActive.String() + " " +
			time.Duration(s.RateDown).String() + " " + time.Duration(s.RateUp).String()
	}
	var got, want []string
	for _, s := range active {
		got = append(got, key(s))
	}
	for _, s := range fromStore {
		want = append(want, key(s))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the manager's active sessions:\n%v\nthe store's:\n%v", got, want)
	}
}

// TestRefreshSeesChangesDuringItsReads: with its record current,
// lockedActive re-reads only the sessions changed since, without the
// lock. Changes that land during those reads (to sessions it is
// reading and to others), and another reader that brings the record up
// to date meanwhile, must still leave it equal to the store.
func TestRefreshSeesChangesDuringItsReads(t *testing.T) {
	f := newFixture(t)
	a := f.activate(t, login(1))
	b := f.activate(t, login(2))
	c := f.activate(t, login(3))
	if _, err := f.m.lockedActive(); err != nil { // the record is current
		t.Fatal(err)
	}
	f.m.mu.Unlock()
	for i, otherReader := range []bool{false, true} {
		// Changed since the record: read without the lock.
		if _, err := f.m.Extend(a.ID, time.Hour); err != nil {
			t.Fatal(err)
		}
		d := f.activate(t, login(byte(4+i)))
		hooked := false
		f.m.testHookSnapshot = func() {
			f.m.testHookSnapshot = nil
			hooked = true
			// During the reads: one of the sessions being read changes
			// again, another ends, and a new one logs in.
			if _, err := f.m.Extend(a.ID, time.Hour); err != nil {
				t.Fatal(err)
			}
			if _, err := f.m.End(d.ID, store.ReasonLogout); err != nil {
				t.Fatal(err)
			}
			if _, err := f.m.SetRate(b.ID, 2_000_000, 0); err != nil {
				t.Fatal(err)
			}
			f.activate(t, login(6))
			if otherReader {
				if _, err := f.m.lockedActive(); err != nil {
					t.Fatal(err)
				}
				f.m.mu.Unlock()
				if _, err := f.m.End(c.ID, store.ReasonKicked); err != nil {
					t.Fatal(err)
				}
			}
		}
		active, err := f.m.lockedActive()
		if err != nil {
			t.Fatal(err)
		}
		f.m.mu.Unlock()
		if !hooked {
			t.Fatal("lockedActive read nothing without the lock")
		}
		f.sameAsStore(t, active)
	}
}

// handoverGate runs during once, between the session lock's release
// and the hand-over (Want): a login or an end that lands in that window.
type handoverGate struct {
	*fake.Gate
	during func()
}

func (g *handoverGate) Want(mark uint64, want []firewall.Client) {
	if g.during != nil {
		g.during()
		g.during = nil
	}
	g.Gate.Want(mark, want)
}

// TestResyncKeepsChangesDuringHandover: the resync reads the sessions
// under the lock and hands them to the gate after letting go; a login
// and an end that come in between are newer than its list, and the
// allowlist it leaves holds the one and not the other.
func TestResyncKeepsChangesDuringHandover(t *testing.T) {
	f := newFixture(t)
	g := &handoverGate{Gate: f.gate}
	f.m.gate = g
	ending := f.activate(t, login(1))
	f.activate(t, login(2))
	g.during = func() {
		f.activate(t, login(3))
		if _, err := f.m.End(ending.ID, store.ReasonLogout); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.m.Resync(); err != nil {
		t.Fatal(err)
	}
	got := f.gate.State()
	entry := func(l Login) string { return l.IP.String() + "/" + l.MAC.String() + " 8000000/4000000" }
	want := []string{entry(login(2)), entry(login(3))}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("after the resync the gate holds %q, want %q (the login during the hand-over kept, the ended session gone)", got, want)
	}
}
