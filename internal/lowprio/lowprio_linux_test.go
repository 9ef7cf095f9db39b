package lowprio

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRunLowersPriority: the work runs niced, and the thread
// gets its priority back afterwards (other goroutines run on it next).
func TestRunLowersPriority(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	before, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		t.Fatal(err)
	}
	var inside int
	var insideTID int
	Run(func() {
		insideTID = unix.Gettid()
		inside, _ = unix.Getpriority(unix.PRIO_PROCESS, insideTID)
	})
	after, _ := unix.Getpriority(unix.PRIO_PROCESS, tid)
	// getpriority(2) returns 20 - nice.
	if insideTID != tid {
		t.Fatalf("the work ran on thread %d, not the caller's locked thread %d", insideTID, tid)
	}
	if inside != before-Nice {
		t.Errorf("during the work: nice %d, want %d", 20-inside, 20-before+Nice)
	}
	if after != before {
		t.Errorf("after the work: nice %d, want it back at %d", 20-after, 20-before)
	}
}
