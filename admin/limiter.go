package admin

import (
	"sync"
	"time"
)

// loginLimiter slows password guessing: each source address and each
// account name may fail at most max times per window; further attempts
// are refused until the window that began with the first failure ends.
// A successful login clears the account's and the source's record.
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

// maxTracked bounds the limiter's memory under a spray of sources.
const maxTracked = 10000

func newLoginLimiter(max int, window time.Duration, now func() time.Time) *loginLimiter {
	return &loginLimiter{now: now, max: max, window: window, fails: map[string]*failRecord{}}
}

// Allowed reports whether every key may try now, and if not, how long
// until it may.
func (l *loginLimiter) Allowed(keys ...string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, k := range keys {
		r := l.fails[k]
		if r == nil {
			continue
		}
		if end := r.start.Add(l.window); !now.Before(end) {
			delete(l.fails, k)
			continue
		} else if r.n >= l.max && end.Sub(now) > wait {
			wait = end.Sub(now)
		}
	}
	return wait == 0, wait
}

// Fail records a failed attempt for every key.
func (l *loginLimiter) Fail(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.fails) >= maxTracked {
		for k, r := range l.fails {
			if !now.Before(r.start.Add(l.window)) {
				delete(l.fails, k)
			}
		}
	}
	for _, k := range keys {
		r := l.fails[k]
		if r == nil || !now.Before(r.start.Add(l.window)) {
			if len(l.fails) >= maxTracked {
				continue // full of live records: the per-user key still counts
			}
			r = &failRecord{start: now}
			l.fails[k] = r
		}
		r.n++
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
