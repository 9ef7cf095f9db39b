package session

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// backgroundNice is how much lower than logins a resync or sweep runs.
const backgroundNice = 10

// background runs fn at a lower CPU priority, on a thread of its own, so
// that a resync's or sweep's dumps of thousands of kernel entries yield
// to logins on a router's one or two cores. The kernel's share of a
// netlink dump runs in the thread that reads it, so it yields too. If the
// priority cannot be put back, the thread is not handed back to the
// runtime (it ends with the goroutine), so no other work inherits it.
func background(fn func()) {
	runtime.LockOSThread()
	tid := unix.Gettid()
	// getpriority(2) returns 20 - nice.
	prev, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil || unix.Setpriority(unix.PRIO_PROCESS, tid, 20-prev+backgroundNice) != nil {
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
