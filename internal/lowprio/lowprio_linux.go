// Package lowprio runs the daemon's bulk kernel reads (dumps of
// thousands of set elements, classes, rules) at a lower CPU priority, so
// that on a router's one or two cores they yield to logins.
//
// Only reads belong here. Work that takes a lock a login also takes must
// run at normal priority: a niced thread holding that lock is held back
// by the scheduler while the login waits for it (priority inversion).
// The traffic-control dumps are the exception, measured: each batch
// holds RTNL, which a login's tc calls need, and a niced batch can hold
// it for milliseconds; but at normal priority the resync's CPU took more
// from logins than that did (docs/BENCHMARKS.md, stop 21).
package lowprio

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// Nice is how much lower than logins the work runs.
const Nice = 10

// Run runs fn at a lower CPU priority, on a thread of its own. The
// kernel's share of a netlink dump runs in the thread that reads it, so
// it yields too. If the priority cannot be put back, the thread is not
// handed back to the runtime (it ends with the goroutine), so no other
// work inherits it.
func Run(fn func()) {
	runtime.LockOSThread()
	tid := unix.Gettid()
	// getpriority(2) returns 20 - nice.
	prev, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil || unix.Setpriority(unix.PRIO_PROCESS, tid, 20-prev+Nice) != nil {
		runtime.UnlockOSThread()
		fn()
		return
	}
	defer func() {
		if unix.Setpriority(unix.PRIO_PROCESS, tid, 20-prev) == nil {
			runtime.UnlockOSThread()
		}
	}()
	fn()
}
