//go:build !lab

package main

import (
	"errors"
	"strings"
	"testing"
)

// TestRouterBuildHasNoLab: without -tags lab, `parkportal lab` (and the
// lab's internet host) say what to run instead rather than a usage text.
func TestRouterBuildHasNoLab(t *testing.T) {
	for _, args := range [][]string{{"lab"}, {"lab", "--check"}, {"lab-internet"}} {
		err := run(args)
		if !errors.Is(err, errNoLab) || !strings.Contains(err.Error(), "scripts/lab.sh") || !strings.Contains(err.Error(), "-tags lab") {
			t.Errorf("run(%q) = %v; want the router build's pointer to scripts/lab.sh", args, err)
		}
	}
}
