//go:build !linux

package lowprio

// Run runs fn; lowering a thread's priority is Linux-only here.
func Run(fn func()) { fn() }
