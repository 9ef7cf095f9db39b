package admin

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/parkwifi/parkportal/internal/chrome"
)

// screenshotDir is where the console's screenshots go, as CI artifacts
// (gitignored).
const screenshotDir = "../artifacts/screenshots"

// TestConsoleInChromium drives the real console in headless Chromium:
// log in, see the dashboard in Arabic and English (screenshots, desktop
// and phone), change the site's rate, kick a session.
func TestConsoleInChromium(t *testing.T) {
	exe := chrome.Find(t)
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	e := newEnv(t)
	// A day of samples, so the charts have something to draw.
	for i := 0; i < 24*12; i++ {
		for j := 0; j < (i/7)%5; j++ {
			e.metrics.Login()
		}
		e.metrics.AddBytes(uint64(i%97)<<22, uint64(i%31)<<20)
		e.clock.Advance(5 * time.Minute)
		e.metrics.TakeSample()
	}
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := append(chrome.Options(exe, t.TempDir()), chromedp.WindowSize(1280, 900))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// Start the browser on a context without a deadline (a deadline on
	// the first call would bound the browser's life), then bound the steps.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	sctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	defer cancelT()

	shot := func(name string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			buf, err := chromedp.CaptureScreenshot()(ctx, tg)
			if err != nil {
				return chromedp.Void{}, err
			}
			return chromedp.Void{}, os.WriteFile(filepath.Join(screenshotDir, name), buf, 0o644)
		}
	}
	// into stores an action's value and lets it run among the steps.
	into := func(dst *string, a chromedp.Action[string]) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			v, err := a(ctx, tg)
			*dst = v
			return chromedp.Void{}, err
		}
	}
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	var online, title, flash string
	err := chromedp.Do(sctx,
		chromedp.Navigate(e.ts.URL+"/login?lang=ar"),
		chromedp.WaitVisible(css("#name")),
		shot("login-ar.png"),
		chromedp.SendKeys(css("#name"), "admin"),
		chromedp.SendKeys(css("#password"), testPassword),
		chromedp.Click(css("#login")),
		chromedp.WaitVisible(css("#online")),
		into(&online, chromedp.Text(css("#online"))),
		shot("dashboard-ar.png"),
		chromedp.Navigate(e.ts.URL+"/?lang=en"),
		chromedp.WaitVisible(css("#online")),
		into(&title, chromedp.Title()),
		shot("dashboard-en.png"),
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Navigate(e.ts.URL+"/?lang=ar"),
		chromedp.WaitVisible(css("#online")),
		shot("dashboard-ar-phone.png"),
		chromedp.Navigate(e.ts.URL+"/sessions?lang=en"),
		chromedp.WaitVisible(css("#kick-s1")),
		shot("sessions-en-phone.png"),
		chromedp.EmulateViewport(1280, 900),
		// Change the visitors' rate.
		chromedp.Navigate(e.ts.URL+"/settings"),
		chromedp.WaitVisible(css("#f-rate_down")),
		chromedp.SetValue(css("#f-rate_down"), "5mbit"),
		chromedp.Click(css("#save")),
		chromedp.WaitVisible(css("p.ok")),
		into(&flash, chromedp.Text(css("p.ok"))),
		shot("settings-en.png"),
		// Kick a session.
		chromedp.Navigate(e.ts.URL+"/sessions"),
		chromedp.WaitVisible(css("#kick-s1")),
		chromedp.Click(css("#kick-s1")),
		chromedp.WaitVisible(css("p.ok")),
		shot("sessions-en.png"),
	)
	if err != nil {
		t.Fatalf("driving chromium: %v", err)
	}
	if strings.TrimSpace(online) != "2" {
		t.Errorf("dashboard shows %q visitors online, want 2", online)
	}
	if title != "Park Wi-Fi console" {
		t.Errorf("English title = %q", title)
	}
	if !strings.Contains(flash, "Saved") {
		t.Errorf("after saving: %q", flash)
	}
	if got := e.settings.Get().RateDown; got != 5_000_000 {
		t.Errorf("rate_down = %d after saving 5mbit", got)
	}
	if recs, _ := e.settings.Audit(5, 0); len(recs) == 0 || recs[0].Actor != "admin" || recs[0].Field != "rate_down" {
		t.Errorf("audit = %+v", recs)
	}
	if k := e.sessions.Kicked(); len(k) != 1 || k[0] != "s1" {
		t.Errorf("kicked = %v, want [s1]", k)
	}
	abs, _ := filepath.Abs(screenshotDir)
	t.Logf("screenshots in %s", abs)
}
