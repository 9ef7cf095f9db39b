package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// take empties the outbox (in batches of two, to exercise max) and
// renders the events as "kind id reason bytes".
func take(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	for range 100 {
		var evs []Event
		err := s.DB().Update(func(tx *bolt.Tx) error {
			var err error
			evs, _, err = TakeEvents(tx, 2)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return out
		}
		for _, e := range evs {
			out = append(out, fmt.Sprintf("%s %s %s %d", e.Kind, e.Session.ID, e.Session.EndReason, e.Session.BytesDown))
		}
	}
	t.Fatal("outbox does not drain")
	return nil
}

// TestEventOutbox: every start and end, however it comes about (login,
// replacement, an update that ends the session), is in the outbox in
// order, written in the same transaction; updates that neither start
// nor end a session add nothing; a failed transaction adds nothing.
func TestEventOutbox(t *testing.T) {
	s, path := openTemp(t)
	if _, err := s.Activate(newSession("a", mac(1), "198.51.100.10"), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update("a", func(x *Session) error { x.BytesDown = 10; return nil }); err != nil {
		t.Fatal(err)
	}
	// b replaces a (same MAC): a ends with the counters final() puts in.
	b := newSession("b", mac(1), "198.51.100.11")
	if _, err := s.ActivateWithFinal(b, "", func(x *Session) { x.BytesDown = 99 }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update("b", func(x *Session) error {
		x.State, x.EndReason, x.Ended, x.BytesDown = Ended, ReasonKicked, t0, 5
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// A refused change leaves no event behind.
	if _, err := s.Update("b", func(x *Session) error {
		x.State = Active
		return errors.New("refused")
	}); err == nil {
		t.Fatal("refused update succeeded")
	}
	if n, _ := s.PendingEvents(); n != 4 {
		t.Errorf("PendingEvents = %d, want 4", n)
	}
	// The outbox survives a restart (a crash before the daemon took it).
	s.Close()
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got := strings.Join(take(t, s2), "; ")
	// Activate ends the replaced session before it stores the new one.
	want := "started a  0; ended a replaced 99; started b  0; ended b admin-reset 5"
	if got != want {
		t.Errorf("events:\n got  %s\n want %s", got, want)
	}
	if n, _ := s2.PendingEvents(); n != 0 {
		t.Errorf("PendingEvents after taking all = %d", n)
	}
}

// TestTakeEventsRollsBack: events taken in a transaction that fails are
// still there afterwards.
func TestTakeEventsRollsBack(t *testing.T) {
	s, _ := openTemp(t)
	if _, err := s.Activate(newSession("a", mac(1), "198.51.100.10"), ""); err != nil {
		t.Fatal(err)
	}
	err := s.DB().Update(func(tx *bolt.Tx) error {
		evs, _, err := TakeEvents(tx, 10)
		if err != nil || len(evs) != 1 {
			t.Fatalf("took %v, %v", evs, err)
		}
		return errors.New("the RADIUS queue could not take them")
	})
	if err == nil {
		t.Fatal("transaction did not fail")
	}
	if got := take(t, s); len(got) != 1 {
		t.Errorf("after a failed hand-on: %v", got)
	}
}
