package store

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// fill stores n ended sessions directly, in one transaction, ending one
// minute apart in an order unrelated to their keys, and returns their ids
// oldest first.
func fill(t testing.TB, s *Store, n int) []string {
	t.Helper()
	ids := make([]string, n)
	err := s.DB().Update(func(tx *bolt.Tx) error {
		for i := range n {
			x := newSession(fmt.Sprintf("%016x", uint64(i)*0x9e3779b97f4a7c15), mac(byte(i)), "198.51.100.10")
			x.State, x.EndReason, x.Ended = Ended, ReasonExpired, t0.Add(time.Duration(i)*time.Minute)
			ids[i] = x.ID
			if err := putSession(tx, nil, x); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// storedIDs returns the keys of the stored sessions, decoding nothing.
func storedIDs(t *testing.T, s *Store) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	s.DB().View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).ForEach(func(k, _ []byte) error {
			ids[string(k)] = true
			return nil
		})
	})
	return ids
}

// TestPurgeExcessOldestByEndTime: the sessions deleted are the ones that
// ended first, whatever their keys' order, over several delete batches;
// active sessions and records that do not decode are never deleted; under
// the bound nothing is.
func TestPurgeExcessOldestByEndTime(t *testing.T) {
	s, _ := openTemp(t)
	ids := fill(t, s, 2500)
	if _, err := s.Activate(newSession("active", mac(1), "198.51.100.20"), ""); err != nil {
		t.Fatal(err)
	}
	s.DB().Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).Put([]byte("bad"), []byte(`{"id":"bad","state":"ended"`))
	})
	for _, bound := range []int{2502, 5000} {
		if n, err := s.PurgeExcess(bound); n != 0 || err != nil {
			t.Fatalf("PurgeExcess(%d) over 2502 sessions = %d, %v; want 0", bound, n, err)
		}
	}
	n, err := s.PurgeExcess(102)
	if n != 2400 || err != nil {
		t.Fatalf("PurgeExcess(102) = %d, %v; want 2400", n, err)
	}
	left := storedIDs(t, s)
	for i, id := range ids {
		if left[id] != (i >= 2400) {
			t.Fatalf("session %d (ended %d min in) kept = %v; want only the newest 100 ended kept", i, i, left[id])
		}
	}
	if !left["active"] {
		t.Error("the active session was purged")
	}
	if !left["bad"] {
		t.Error("an undecodable record was purged")
	}
	// Only active and undecodable left to bound: they stay.
	if n, err := s.PurgeExcess(-1); n != 100 || err != nil {
		t.Errorf("PurgeExcess(-1) = %d, %v; want the last 100 ended", n, err)
	}
	if left := storedIDs(t, s); len(left) != 2 || !left["active"] || !left["bad"] {
		t.Errorf("after PurgeExcess(-1) left %v", left)
	}
}

// allocated returns the bytes fn allocates on the heap.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestPurgeExcessMemory holds PurgeExcess to memory that does not grow
// with what it keeps: the hourly run on a store of tens of thousands of
// ended sessions once decoded every one of them (~33 MiB of heap at
// 50,000, over the daemon's 32 MiB soft limit). Figures are compared as
// ratios against decoding every session, in the same run.
func TestPurgeExcessMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("stores 5,000 sessions")
	}
	const n = 5000
	s, _ := openTemp(t)
	fill(t, s, n)
	var everything uint64
	decodeAll := testing.AllocsPerRun(3, func() {
		everything += allocated(func() {
			if _, err := s.Sessions(nil); err != nil {
				t.Fatal(err)
			}
		})
	})
	everything /= 4 // AllocsPerRun runs once more to warm up
	// Under the bound: nothing is decoded, and what little is allocated
	// does not depend on the number of sessions.
	under := testing.AllocsPerRun(10, func() {
		if k, err := s.PurgeExcess(n); k != 0 || err != nil {
			t.Fatalf("PurgeExcess(%d) = %d, %v", n, k, err)
		}
	})
	if under*100 > decodeAll {
		t.Errorf("PurgeExcess under the bound: %.0f allocations; decoding every session: %.0f; want under 1%%", under, decodeAll)
	}
	// Over the bound by a few: each record is read for its state and end
	// time only, and only the few to delete are kept. (What is allocated
	// is short-lived garbage, a few small pieces per record; what is kept
	// is the ten candidates.)
	over := allocated(func() {
		if k, err := s.PurgeExcess(n - 10); k != 10 || err != nil {
			t.Fatalf("PurgeExcess(%d) = %d, %v; want 10", n-10, k, err)
		}
	})
	if over*2 > everything {
		t.Errorf("PurgeExcess over the bound allocated %d bytes; decoding every session %d; want under half", over, everything)
	}
	t.Logf("%d sessions: decoding all %d B in %.0f allocs; PurgeExcess under the bound %.0f allocs, 10 over %d B",
		n, everything, decodeAll, under, over)
}

// BenchmarkPurgeExcess: go test ./store -run '^$' -bench PurgeExcess -benchmem
func BenchmarkPurgeExcess(b *testing.B) {
	const n = 5000
	path := b.TempDir() + "/pp.db"
	s, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	fill(b, s, n)
	b.Run("under-bound", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.PurgeExcess(n)
		}
	})
	b.Run("find-10-oldest", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.oldestEnded(10)
		}
	})
	b.Run("decode-all(old)", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Sessions(nil)
		}
	})
}
