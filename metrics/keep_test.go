package metrics

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/parkwifi/parkportal/internal/fake"
)

func openDB(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "park.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// restart builds a new Metrics on the same file, as the daemon does
// after a reboot.
func restart(t *testing.T, db *bolt.DB, clk *fake.Clock) *Metrics {
	t.Helper()
	m := New("park", func() int { return 3 }, clk.Now)
	if err := m.Keep(db, nil); err != nil {
		t.Fatal(err)
	}
	return m
}

func storedSamples(t *testing.T, db *bolt.DB) int {
	t.Helper()
	n := 0
	if err := db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketSamples).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestKeepSurvivesRestart(t *testing.T) {
	db := openDB(t)
	clk := fake.NewClock(time.Date(2026, 3, 1, 14, 0, 0, 0, time.UTC))
	m := restart(t, db, clk)
	for range 4 {
		m.Login()
		m.SMSSent()
	}
	m.PINFailed("wrong")
	clk.Advance(SampleEvery)
	first := m.TakeSample()
	if first.Logins != 4 || first.SMSSent != 4 || first.Online != 3 {
		t.Fatalf("sample = %+v", first)
	}
	m.Login() // after the last sample: only Save keeps it
	if err := m.Save(); err != nil {
		t.Fatal(err)
	}

	clk.Advance(time.Minute)
	m2 := restart(t, db, clk)
	m2.Login()
	snap := m2.Snapshot()
	if want := (Today{Logins: 6, SMSSent: 4, PINFailed: 1}); snap.Today != want {
		t.Errorf("today after restart = %+v, want %+v", snap.Today, want)
	}
	h := m2.History()
	if len(h) != 1 || !h[0].Time.Equal(first.Time) || h[0].Logins != 4 {
		t.Errorf("history after restart = %+v", h)
	}

	// The next day's run starts today's counters at zero and, a day
	// later still, the store forgets samples older than 24 hours.
	clk.Set(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	m3 := restart(t, db, clk)
	if got := m3.Snapshot().Today; got != (Today{}) {
		t.Errorf("today on the next day = %+v", got)
	}
	if len(m3.History()) != 1 {
		t.Errorf("history 19 h later = %d samples, want 1", len(m3.History()))
	}
	clk.Set(time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC))
	m3.TakeSample()
	if n := storedSamples(t, db); n != 1 {
		t.Errorf("stored samples 25 h after the first = %d, want 1 (the new one)", n)
	}
	if h := restart(t, db, clk).History(); len(h) != 1 || !h[0].Time.Equal(clk.Now()) {
		t.Errorf("history = %+v", h)
	}
}

// A day of samples stays within the ring's size on disk and in memory.
func TestKeepBounded(t *testing.T) {
	db := openDB(t)
	clk := fake.NewClock(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	m := restart(t, db, clk)
	for range 2 * ringSize {
		clk.Advance(SampleEvery)
		m.TakeSample()
	}
	if n := storedSamples(t, db); n > ringSize {
		t.Errorf("%d samples stored, want at most %d", n, ringSize)
	}
	if n := len(restart(t, db, clk).History()); n == 0 || n > ringSize {
		t.Errorf("%d samples after restart", n)
	}
}
