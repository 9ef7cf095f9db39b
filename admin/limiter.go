package admin

import (
	"sync"
	"time"
)

// loginLimiter slows password guessing: each key (a source address, an
// account name) may fail at most max times per window; further attempts
// are refused until the window that began with the first failure ends.
//
// Try counts an attempt as a failure before the password is checked, in
// the same critical section as the check of the limit: concurrent
// attempts cannot all pass the check before any of them has failed (a
// burst of 100 parallel guesses gets max through, not 100). A success
// then clears the key (Succeed); an attempt that could not be judged
// (the server was busy) gives its count back (Undo).
//
// It is in memory: a restart clears it, which an attacker cannot cause
// from the network.
type loginLimiter struct {
	mu     sync.Mutex
	now    func() time.Time
	max    int
	window time.Duration
	fails  map[string]*failRecord
}

type failRecord struct {
	n     int
	start time.Time
}

// maxTracked bounds the limiter's memory under a spray of sources or
// names.
const maxTracked = 10000

func newLoginLimiter(max int, window time.Duration, now func() time.Time) *loginLimiter {
	return &loginLimiter{now: now, max: max, window: window, fails: map[string]*failRecord{}}
}

// liveLocked returns key's record if its window is still open,
// forgetting an expired one.
func (l *loginLimiter) liveLocked(key string, now time.Time) *failRecord {
	r := l.fails[key]
	if r != nil && !now.Before(r.start.Add(l.window)) {
		delete(l.fails, key)
		return nil
	}
	return r
}

// allowedLocked reports whether every key may try now, and if not, how
// long until it may.
func (l *loginLimiter) allowedLocked(now time.Time, keys []string) (bool, time.Duration) {
	var wait time.Duration
	for _, k := range keys {
		r := l.liveLocked(k, now)
		if r == nil {
			continue
		}
		if end := r.start.Add(l.window); r.n >= l.max && end.Sub(now) > wait {
			wait = end.Sub(now)
		}
	}
	return wait == 0, wait
}

// Try reports whether every key may make an attempt now and, if so,
// counts the attempt as a failure for each of them; a refused attempt
// counts nothing. n is the highest count among keys afterwards (1: the
// first failure in a window).
func (l *loginLimiter) Try(keys ...string) (ok bool, wait time.Duration, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if ok, wait := l.allowedLocked(now, keys); !ok {
		return false, wait, l.max
	}
	return true, 0, l.failLocked(now, keys)
}

// failLocked counts a failure for every key and returns the highest
// count.
func (l *loginLimiter) failLocked(now time.Time, keys []string) int {
	if len(l.fails) >= maxTracked {
		for k := range l.fails {
			l.liveLocked(k, now)
		}
	}
	most := 0
	for _, k := range keys {
		r := l.liveLocked(k, now)
		if r == nil {
			if len(l.fails) >= maxTracked {
				continue // full of live records: the other keys still count
			}
			r = &failRecord{start: now}
			l.fails[k] = r
		}
		r.n++
		most = max(most, r.n)
	}
	return most
}

// Undo gives back one attempt counted by Try, for an attempt that was
// never judged.
func (l *loginLimiter) Undo(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		if r := l.fails[k]; r != nil {
			if r.n--; r.n <= 0 {
				delete(l.fails, k)
			}
		}
	}
}

// Succeed clears keys' failures.
func (l *loginLimiter) Succeed(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		delete(l.fails, k)
	}
}
