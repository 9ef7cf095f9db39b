package session

import (
	"slices"
	"testing"
	"time"

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

	// Nothing changed during the read: the copy is returned as read.
	active, err = f.m.lockedActive()
	if err != nil {
		t.Fatal(err)
	}
	f.m.mu.Unlock()
	if len(active) != 3 {
		t.Errorf("a quiet read returned %d sessions, want 3", len(active))
	}
}
