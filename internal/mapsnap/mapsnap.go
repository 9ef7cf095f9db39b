// Package mapsnap copies a map that other goroutines change under a
// mutex without holding the mutex for the whole copy.
//
// The resync copies the firewall's 5,000 wanted clients and the shaper's
// 5,000 visitors under the locks every login takes: 0.2-0.3 ms at the
// median and up to 2.6 ms when the copying thread lost its processor,
// and a login arriving then waited for all of it. Copied a few hundred
// entries at a time, with the lock let go in between, a login waits for
// one chunk at most.
package mapsnap

import (
	"maps"
	"runtime"
	"sync"
)

// Chunk is how many entries Copy reads per hold of the lock: some 10-30
// µs of copying.
const Chunk = 256

// maxRestarts bounds how often Copy starts over because the map was
// replaced; after that it copies the map whole under the lock.
const maxRestarts = 3

// Copy returns a copy of the map get returns, reading Chunk entries per
// hold of mu and yielding the processor between holds, so that a
// goroutine waiting for mu runs. mu must be held when Copy is called; it
// is held again when Copy returns. get is called with mu held and
// returns the map and a generation that changes whenever the map is
// replaced by another (a replaced map is copied anew).
//
// The copy is made in dst, cleared first, if dst is not nil: a caller
// that copies thousands of entries every few seconds keeps one map for
// it instead of making garbage of a fresh one each time.
//
// An entry added, changed or removed while mu was let go may or may not
// be in the copy, or be there with its old value, as in a range loop
// over a map the loop changes. Callers must leave such entries alone:
// each change is noted under mu (the firewall's touched set), and the
// notes are read after Copy.
func Copy[K comparable, V any](dst map[K]V, mu sync.Locker, get func() (map[K]V, uint64)) map[K]V {
	for range maxRestarts {
		if ok := copyChunked(&dst, mu, get); ok {
			return dst
		}
	}
	m, _ := get()
	clear(dst)
	if dst == nil {
		return maps.Clone(m)
	}
	maps.Copy(dst, m)
	return dst
}

// copyChunked is one attempt of Copy into *dst (made if nil); false if
// the map was replaced.
func copyChunked[K comparable, V any](dst *map[K]V, mu sync.Locker, get func() (map[K]V, uint64)) bool {
	m, gen := get()
	// Making room for thousands of entries (a fresh half megabyte to
	// fault in), or clearing them, takes longer than copying a chunk:
	// not under the lock.
	size := len(m)
	mu.Unlock()
	if *dst == nil {
		*dst = make(map[K]V, size)
	} else {
		clear(*dst)
	}
	mu.Lock()
	if _, g := get(); g != gen {
		return false
	}
	out := *dst
	n := 0
	for k, v := range m {
		out[k] = v
		n++
		if n%Chunk != 0 {
			continue
		}
		mu.Unlock()
		// Without the yield this goroutine would mostly take the lock
		// back before a woken waiter ran (sync.Mutex lets a running
		// goroutine barge in).
		runtime.Gosched()
		mu.Lock()
		if _, g := get(); g != gen {
			return false
		}
	}
	return true
}
