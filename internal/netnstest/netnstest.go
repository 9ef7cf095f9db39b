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
//
// Only that goroutine is in the namespace: another one the test starts
// runs on any thread, in the machine's namespace, and a firewall call
// from it that forks iptables or opens a socket changes the machine's
// rules. Such a goroutine must Join the namespace Enter returns first.
func Enter(tb testing.TB, prefix string) netns.NsHandle {
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
	return ns
}

// Join locks the calling goroutine to its thread and moves the thread
// into ns (from Enter) for the rest of the goroutine's life: the thread
// is never handed back to the runtime, so it ends with the goroutine and
// no other goroutine runs in the namespace by accident. Call it first
// thing in a goroutine the test starts; ns must still be open (the
// goroutine must end before the test's cleanup).
func Join(ns netns.NsHandle) error {
	runtime.LockOSThread()
	if err := netns.Set(ns); err != nil {
		return fmt.Errorf("joining the test's network namespace: %w", err)
	}
	return nil
}
