package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state", "pp.db")
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func mac(last byte) net.HardwareAddr { return net.HardwareAddr{0x02, 0, 0, 0, 0, last} }

func newSession(id string, m net.HardwareAddr, ip string) *Session {
	return &Session{
		ID: id, MAC: m, IP: netip.MustParseAddr(ip), Phone: "+97433123456", Site: "park", Lang: "ar",
		Start: t0, Expires: t0.Add(4 * time.Hour), IdleTimeout: 20 * time.Minute, LastActive: t0,
		RateDown: 8e6, RateUp: 8e6, State: Active,
	}
}

func newPending(m string, expires time.Time) *Pending {
	return &Pending{MAC: m, Phone: "+97433123456", Lang: "en", Hash: []byte("hash-of-" + m), Created: t0, Expires: expires}
}

func TestReopenKeepsState(t *testing.T) {
	s, path := openTemp(t)
	sess := newSession("s1", mac(1), "198.51.100.10")
	if _, err := s.Activate(sess, ""); err != nil {
		t.Fatal(err)
	}
	p := newPending(mac(2).String(), t0.Add(5*time.Minute))
	if err := s.PutPending(p); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	got, err := s2.Session("s1")
	if err != nil {
		t.Fatal(err)
	}
	if got.MAC.String() != sess.MAC.String() || got.IP != sess.IP || !got.Expires.Equal(sess.Expires) ||
		got.State != Active || got.Phone != sess.Phone || got.RateDown != sess.RateDown || got.IdleTimeout != sess.IdleTimeout {
		t.Errorf("reopened session = %+v, want %+v", got, sess)
	}
	gp, err := s2.Pending(p.MAC)
	if err != nil {
		t.Fatal(err)
	}
	if gp.Phone != p.Phone || !bytes.Equal(gp.Hash, p.Hash) || !gp.Expires.Equal(p.Expires) || gp.Lang != "en" {
		t.Errorf("reopened pending = %+v, want %+v", gp, p)
	}
	if err := s2.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func TestNotFound(t *testing.T) {
	s, _ := openTemp(t)
	if _, err := s.Session("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Session: %v", err)
	}
	if _, err := s.Pending("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Pending: %v", err)
	}
	if _, err := s.Update("nope", func(*Session) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update: %v", err)
	}
	if err := s.DeletePending("nope"); err != nil {
		t.Errorf("DeletePending of nothing: %v", err)
	}
	if _, err := s.Activate(newSession("x", mac(1), "198.51.100.10"), "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Activate consuming a missing PIN: %v", err)
	}
	if _, err := s.Session("x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a failed Activate stored the session: %v", err)
	}
}

func TestActivateConsumesPending(t *testing.T) {
	s, _ := openTemp(t)
	m := mac(1)
	if err := s.PutPending(newPending(m.String(), t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Activate(newSession("s1", m, "198.51.100.10"), m.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pending(m.String()); !errors.Is(err, ErrNotFound) {
		t.Errorf("pending after Activate: %v, want ErrNotFound", err)
	}
	if _, err := s.Activate(newSession("s2", m, "198.51.100.10"), m.String()); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Activate with the same PIN: %v, want ErrNotFound", err)
	}
}

func TestActivateReplaces(t *testing.T) {
	s, _ := openTemp(t)
	a := newSession("a", mac(1), "198.51.100.10")
	b := newSession("b", mac(2), "198.51.100.11")
	c := newSession("c", mac(3), "198.51.100.12")
	for _, x := range []*Session{a, b, c} {
		if r, err := s.Activate(x, ""); err != nil || len(r) != 0 {
			t.Fatalf("Activate(%s) = %v, %v", x.ID, r, err)
		}
	}
	// Same MAC, new IP: replaces a.
	a2 := newSession("a2", mac(1), "198.51.100.20")
	a2.Start = t0.Add(time.Hour)
	r, err := s.Activate(a2, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(r) != 1 || r[0].ID != "a" || r[0].State != Ended || r[0].EndReason != ReasonReplaced || !r[0].Ended.Equal(a2.Start) {
		t.Fatalf("replaced = %+v, want a ended as replaced at %v", r, a2.Start)
	}
	// New MAC on b's IP: replaces b.
	d := newSession("d", mac(4), "198.51.100.11")
	r, err = s.Activate(d, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(r) != 1 || r[0].ID != "b" {
		t.Fatalf("replaced = %+v, want b", r)
	}
	// c's MAC on d's IP: replaces both.
	e := newSession("e", mac(3), "198.51.100.11")
	r, err = s.Activate(e, "")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, x := range r {
		ids[x.ID] = true
	}
	if len(r) != 2 || !ids["c"] || !ids["d"] {
		t.Fatalf("replaced = %v, want c and d", ids)
	}
	active, err := s.ActiveSessions()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, x := range active {
		got[x.ID] = true
	}
	if len(got) != 2 || !got["a2"] || !got["e"] {
		t.Errorf("active = %v, want a2 and e", got)
	}
	for _, id := range []string{"a", "b", "c", "d"} {
		x, err := s.Session(id)
		if err != nil || x.State != Ended || x.EndReason != ReasonReplaced {
			t.Errorf("session %s = %+v, %v; want ended as replaced", id, x, err)
		}
	}
	all, _ := s.Sessions(nil)
	if len(all) != 6 {
		t.Errorf("Sessions(nil) = %d sessions, want 6", len(all))
	}
}

func TestUpdate(t *testing.T) {
	s, _ := openTemp(t)
	if _, err := s.Activate(newSession("s1", mac(1), "198.51.100.10"), ""); err != nil {
		t.Fatal(err)
	}
	out, err := s.Update("s1", func(x *Session) error { x.BytesUp = 42; return nil })
	if err != nil || out.BytesUp != 42 {
		t.Fatalf("Update = %+v, %v", out, err)
	}
	boom := errors.New("boom")
	if _, err := s.Update("s1", func(x *Session) error { x.BytesUp = 99; return boom }); !errors.Is(err, boom) {
		t.Fatalf("Update error = %v, want boom", err)
	}
	got, _ := s.Session("s1")
	if got.BytesUp != 42 {
		t.Errorf("failed Update changed the session: BytesUp = %d", got.BytesUp)
	}
}

func TestVerifyPending(t *testing.T) {
	const maxTries = 3
	m := mac(1).String()
	right := func(p *Pending) bool { return true }
	wrong := func(p *Pending) bool { return false }
	s, _ := openTemp(t)
	put := func(expires time.Time) {
		t.Helper()
		if err := s.PutPending(newPending(m, expires)); err != nil {
			t.Fatal(err)
		}
	}
	gone := func(what string) {
		t.Helper()
		if _, err := s.Pending(m); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: pending still there (%v)", what, err)
		}
	}
	now := t0.Add(time.Minute)

	// None.
	out, p, err := s.VerifyPending(m, now, maxTries, right)
	if err != nil || out != PINNone || p != nil {
		t.Errorf("no pending: %v, %+v, %v; want PINNone", out, p, err)
	}

	// Accepted consumes.
	put(t0.Add(5 * time.Minute))
	out, p, err = s.VerifyPending(m, now, maxTries, right)
	if err != nil || out != PINAccepted || p == nil || p.Phone != "+97433123456" {
		t.Errorf("right PIN: %v, %+v, %v; want PINAccepted with the record", out, p, err)
	}
	gone("accepted")
	if out, _, _ := s.VerifyPending(m, now, maxTries, right); out != PINNone {
		t.Errorf("reuse: %v, want PINNone", out)
	}

	// Wrong counts tries, the last try exhausts.
	put(t0.Add(5 * time.Minute))
	for i := 1; i < maxTries; i++ {
		out, p, err = s.VerifyPending(m, now, maxTries, wrong)
		if err != nil || out != PINWrong || p.Tries != i {
			t.Fatalf("wrong try %d: %v, tries %d, %v", i, out, p.Tries, err)
		}
		stored, err := s.Pending(m)
		if err != nil || stored.Tries != i {
			t.Fatalf("after wrong try %d stored = %+v, %v", i, stored, err)
		}
	}
	out, p, err = s.VerifyPending(m, now, maxTries, wrong)
	if err != nil || out != PINExhausted || p.Tries != maxTries {
		t.Errorf("last wrong try: %v, %+v, %v; want PINExhausted", out, p, err)
	}
	gone("exhausted")
	if out, _, _ := s.VerifyPending(m, now, maxTries, right); out != PINNone {
		t.Errorf("right PIN after exhaustion: %v, want PINNone", out)
	}

	// Expired: at the expiry instant and after; matches is not consulted.
	for _, at := range []time.Time{t0.Add(5 * time.Minute), t0.Add(time.Hour)} {
		put(t0.Add(5 * time.Minute))
		called := false
		out, _, err = s.VerifyPending(m, at, maxTries, func(*Pending) bool { called = true; return true })
		if err != nil || out != PINExpired || called {
			t.Errorf("expired at %v: %v, %v, matches called %v; want PINExpired without checking", at, out, err, called)
		}
		gone("expired")
	}

	// A right PIN after wrong ones is still accepted.
	put(t0.Add(5 * time.Minute))
	s.VerifyPending(m, now, maxTries, wrong)
	if out, _, _ := s.VerifyPending(m, now, maxTries, right); out != PINAccepted {
		t.Errorf("right PIN after a miss: %v", out)
	}

	// Another device's record is untouched.
	other := mac(2).String()
	if err := s.PutPending(newPending(other, t0.Add(5*time.Minute))); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := s.VerifyPending(m, now, maxTries, right); out != PINNone {
		t.Errorf("other device's PIN used: %v", out)
	}
	if _, err := s.Pending(other); err != nil {
		t.Errorf("other device's PIN gone: %v", err)
	}
}

func TestVerifyPendingConcurrent(t *testing.T) {
	s, _ := openTemp(t)
	m := mac(1).String()
	if err := s.PutPending(newPending(m, t0.Add(5*time.Minute))); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		outcomes = map[Outcome]int{}
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			out, _, err := s.VerifyPending(m, t0.Add(time.Minute), 5, func(p *Pending) bool { return bytes.Equal(p.Hash, []byte("hash-of-"+m)) })
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			outcomes[out]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	if outcomes[PINAccepted] != 1 || outcomes[PINNone] != n-1 {
		t.Errorf("outcomes = %v, want exactly one PINAccepted and %d PINNone", outcomes, n-1)
	}
}

func TestVerifyPendingConcurrentWrong(t *testing.T) {
	// Many simultaneous wrong guesses use up exactly maxTries tries.
	s, _ := openTemp(t)
	m := mac(1).String()
	if err := s.PutPending(newPending(m, t0.Add(5*time.Minute))); err != nil {
		t.Fatal(err)
	}
	const n, maxTries = 20, 5
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		outcomes = map[Outcome]int{}
	)
	for range n {
		wg.Go(func() {
			out, _, _ := s.VerifyPending(m, t0.Add(time.Minute), maxTries, func(*Pending) bool { return false })
			mu.Lock()
			outcomes[out]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if outcomes[PINWrong] != maxTries-1 || outcomes[PINExhausted] != 1 || outcomes[PINNone] != n-maxTries {
		t.Errorf("outcomes = %v, want %d wrong, 1 exhausted, %d none", outcomes, maxTries-1, n-maxTries)
	}
}

func TestPrunePending(t *testing.T) {
	s, _ := openTemp(t)
	now := t0.Add(10 * time.Minute)
	keep := []string{mac(1).String(), mac(2).String()}
	drop := []string{mac(3).String(), mac(4).String(), mac(5).String()}
	for _, m := range keep {
		s.PutPending(newPending(m, now.Add(time.Second)))
	}
	s.PutPending(newPending(keep[1], now)) // expires exactly now: not yet before now
	for _, m := range drop {
		s.PutPending(newPending(m, now.Add(-time.Second)))
	}
	// A record that does not decode goes too.
	if err := s.DB().Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPending).Put([]byte("garbage"), []byte("{"))
	}); err != nil {
		t.Fatal(err)
	}
	n, err := s.PrunePending(now)
	if err != nil || n != len(drop)+1 {
		t.Fatalf("PrunePending = %d, %v; want %d", n, err, len(drop)+1)
	}
	for _, m := range keep {
		if _, err := s.Pending(m); err != nil {
			t.Errorf("kept %s: %v", m, err)
		}
	}
	for _, m := range append(drop, "garbage") {
		if _, err := s.Pending(m); !errors.Is(err, ErrNotFound) {
			t.Errorf("pruned %s still there: %v", m, err)
		}
	}
	if n, err := s.PrunePending(now); n != 0 || err != nil {
		t.Errorf("second prune = %d, %v", n, err)
	}
}

func TestPutPendingReplaces(t *testing.T) {
	s, _ := openTemp(t)
	m := mac(1).String()
	p := newPending(m, t0.Add(time.Minute))
	p.Tries = 3
	s.PutPending(p)
	p2 := newPending(m, t0.Add(2*time.Minute))
	p2.Hash = []byte("new")
	s.PutPending(p2)
	got, err := s.Pending(m)
	if err != nil || got.Tries != 0 || string(got.Hash) != "new" {
		t.Errorf("after resend pending = %+v, %v; want the new record with 0 tries", got, err)
	}
}

// TestOpenLocked opens the same file twice from this process: bbolt's
// flock is per open file description, so the second Open waits for the
// lock timeout and then gives up with an error that says why.
func TestOpenLocked(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 3 s lock timeout")
	}
	_, path := openTemp(t)
	done := make(chan error, 1)
	go func() {
		s2, err := Open(path)
		if err == nil {
			s2.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("second Open of a locked file succeeded")
		}
		if !strings.Contains(err.Error(), "another parkportal is using it") || !strings.Contains(err.Error(), path) {
			t.Errorf("error %q does not say the file %s is in use", err, path)
		}
	case <-time.After(time.Minute):
		t.Fatal("second Open hangs instead of timing out")
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	s, path := openTemp(t)
	if err := s.DB().Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint64(nil, SchemaVersion+1))
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), "newer") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open(newer schema) = %v, want a refusal naming the file", err)
	}
	// Refusing must not rewrite the version, and must release the file.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("file still locked after refusal: %v", err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if v := binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keySchema)); v != SchemaVersion+1 {
			t.Errorf("schema rewritten to %d", v)
		}
		return nil
	})
}

func TestOpenWritesSchema(t *testing.T) {
	s, _ := openTemp(t)
	s.DB().View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta).Get(keySchema)
		if len(b) != 8 || binary.BigEndian.Uint64(b) != SchemaVersion {
			t.Errorf("schema = %x, want %d", b, SchemaVersion)
		}
		return nil
	})
}

func TestOpenBadPath(t *testing.T) {
	dir := t.TempDir()
	// A directory where the file should be.
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("Open(directory) = %v, want an error naming it", err)
	}
}

func TestSessionsDecodeError(t *testing.T) {
	s, _ := openTemp(t)
	s.Activate(newSession("ok", mac(1), "198.51.100.10"), "")
	s.DB().Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).Put([]byte("bad"), []byte(`{"id":"bad","mac":"zz"}`))
	})
	if _, err := s.Sessions(nil); err == nil || !strings.Contains(err.Error(), `"bad"`) {
		t.Errorf("Sessions with a corrupt record = %v, want an error naming it", err)
	}
	// Activate skips records it cannot read rather than failing logins.
	if _, err := s.Activate(newSession("new", mac(2), "198.51.100.11"), ""); err != nil {
		t.Errorf("Activate next to a corrupt record: %v", err)
	}
}
