// Package chrome holds what the browser tests share about running
// headless Chromium: the staff console's (admin) and the visitors' pages
// in the lab (e2e). Only tests import it.
package chrome

import (
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"
)

// Find returns the Chromium binary, or skips tb when none is installed.
func Find(tb testing.TB) string {
	tb.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	tb.Skip("chromium not installed (scripts/deps.sh or apt-get install -y chromium); skipping the browser test")
	return ""
}

// Options are the flags every test browser runs with: headless, no
// sandbox (the tests run as root), no GPU, no QUIC, and none of
// Chromium's own background traffic (updates, sync, safe-browsing
// fetches), which would cross the lab's networks and spoil the pages'
// measured weight. profile is the browser's own user-data directory.
func Options(exe, profile string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
	}
}
