// Package netnstest puts a test into a network namespace of its own, so
// that tests of kernel state (rules, sets, qdiscs) run for real without
// touching the machine's.
package netnstest

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
)

// Enter moves the calling goroutine, locked to its thread, into a new
// network namespace named prefix+pid, and back out (deleting the
// namespace) at the test's cleanup. Tools exec'd from that thread, such
// as iptables, see the namespace too; so do netlink sockets it opens.
func Enter(tb testing.TB, prefix string) {
	tb.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		tb.Fatal(err)
	}
	name := fmt.Sprintf("%s%d", prefix, os.Getpid()%100000)
	ns, err := netns.NewNamed(name)
	if err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		err := netns.Set(orig)
		orig.Close()
		ns.Close()
		netns.DeleteNamed(name)
		if err == nil {
			runtime.UnlockOSThread() // else the thread dies with the goroutine
		}
	})
}
