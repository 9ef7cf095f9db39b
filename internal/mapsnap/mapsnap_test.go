package mapsnap

import (
	"maps"
	"sync"
	"testing"
)

func filled(n int) map[int]int {
	m := make(map[int]int, n)
	for i := range n {
		m[i] = i * 10
	}
	return m
}

func TestCopyOfAnUntouchedMapIsEqual(t *testing.T) {
	for _, n := range []int{0, 1, Chunk - 1, Chunk, Chunk + 1, 10 * Chunk} {
		var mu sync.Mutex
		m := filled(n)
		mu.Lock()
		got := Copy(nil, &mu, func() (map[int]int, uint64) { return m, 0 })
		mu.Unlock()
		if !maps.Equal(got, m) {
			t.Errorf("%d entries: copy differs (%d entries)", n, len(got))
		}
	}
}

// TestWaiterGetsInDuringCopy: a goroutine waiting for the lock gets it
// before a long copy ends. Fails if Copy holds the lock throughout.
func TestWaiterGetsInDuringCopy(t *testing.T) {
	var mu sync.Mutex
	m := filled(200 * Chunk)
	copying := true
	gotIn := make(chan bool, 1)
	mu.Lock()
	go func() {
		mu.Lock()
		gotIn <- copying
		mu.Unlock()
	}()
	Copy(nil, &mu, func() (map[int]int, uint64) { return m, 0 })
	copying = false
	mu.Unlock()
	if !<-gotIn {
		t.Error("the waiting goroutine got the lock only after the copy")
	}
}

// TestChangesDuringCopy: entries changed while the copy runs (each
// noted, as the firewall notes touched addresses) may be anything in the
// copy; every other entry is there with its value, and nothing else is.
// Run with -race: every access to the map is under the lock.
func TestChangesDuringCopy(t *testing.T) {
	for round := range 20 {
		var mu sync.Mutex
		m := filled(20 * Chunk)
		touched := map[int]bool{}
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := (i*7919 + round) % (25 * Chunk) // some beyond the map: additions
				mu.Lock()
				touched[k] = true
				if i%3 == 0 {
					delete(m, k)
				} else {
					m[k] = -i
				}
				mu.Unlock()
			}
		}()
		mu.Lock()
		got := Copy(nil, &mu, func() (map[int]int, uint64) { return m, 0 })
		// The notes are read under the lock, after the copy.
		noted := maps.Clone(touched)
		mu.Unlock()
		close(stop)
		<-done
		for k := range 25 * Chunk {
			if noted[k] {
				continue
			}
			v, ok := got[k]
			want, wantOK := k*10, k < 20*Chunk
			if ok != wantOK || (ok && v != want) {
				t.Fatalf("round %d: untouched key %d: copy has %d,%v, want %d,%v", round, k, v, ok, want, wantOK)
			}
		}
	}
}

// TestReplacedMapIsCopiedAnew: when the map is replaced between chunks,
// the copy is of the new map, not a mix. Fails if the generation is not
// checked.
func TestReplacedMapIsCopiedAnew(t *testing.T) {
	var mu sync.Mutex
	m, gen := filled(50*Chunk), uint64(0)
	calls := 0
	get := func() (map[int]int, uint64) {
		calls++
		if calls == 3 { // during the first copy: replaced once
			m = map[int]int{1: 1, 2: 2}
			gen++
		}
		return m, gen
	}
	mu.Lock()
	got := Copy(nil, &mu, get)
	mu.Unlock()
	if !maps.Equal(got, map[int]int{1: 1, 2: 2}) {
		t.Errorf("copy has %d entries, want the replacing map's 2", len(got))
	}
}

// TestEndlessReplacementEndsInAWholeCopy: a map replaced at every chunk
// is copied whole under the lock after maxRestarts tries.
func TestEndlessReplacementEndsInAWholeCopy(t *testing.T) {
	var mu sync.Mutex
	var gen uint64
	get := func() (map[int]int, uint64) {
		gen++
		return filled(3 * Chunk), gen
	}
	for _, dst := range []map[int]int{nil, {-1: -1}} {
		mu.Lock()
		got := Copy(dst, &mu, get)
		mu.Unlock()
		if !maps.Equal(got, filled(3*Chunk)) {
			t.Errorf("copy (into %v) has %d entries, want %d", dst, len(got), 3*Chunk)
		}
	}
}

// TestCopyIntoAMapKeepsNothingOld: a map handed in for the copy is
// cleared first, and is the map returned.
func TestCopyIntoAMapKeepsNothingOld(t *testing.T) {
	var mu sync.Mutex
	m := filled(3 * Chunk)
	dst := map[int]int{-1: 1, 5: 99}
	mu.Lock()
	got := Copy(dst, &mu, func() (map[int]int, uint64) { return m, 0 })
	mu.Unlock()
	if !maps.Equal(got, m) || !maps.Equal(dst, m) {
		t.Errorf("copy into a used map: %d entries (dst %d), want the %d of the source", len(got), len(dst), len(m))
	}
}
