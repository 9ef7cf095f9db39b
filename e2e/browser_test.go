package e2e

// The visitor's minute in a real browser: headless Chromium, inside a
// visitor's network namespace, so that every byte it loads goes through
// the gateway's firewall exactly as a phone's would.
//
// How Chromium gets into the namespace, and how the test talks to it
// (tried and verified on the CI image, Chromium 156, chromedp v0.23.0):
//
//   - chromedp's ExecAllocator starts Chromium itself and, unless it is
//     given a debugging port or a websocket dialer, talks to it over
//     --remote-debugging-pipe: file descriptors 3 and 4 of the browser.
//   - ModifyCmdFunc turns that command into lab.Cmd(ns, chromium, args...),
//     i.e. `ip netns exec <ns> /usr/bin/chromium ...`. ip enters the
//     namespace and execs Chromium in place (same PID, inherited pipes),
//     so the browser and every renderer, zygote and network-service
//     process it forks live in the visitor's namespace, while the DevTools
//     channel is a pipe, which no namespace boundary affects. The test
//     checks this: every process started with the test's --user-data-dir
//     has the visitor's network namespace.
//   - No DevTools port is opened anywhere. The alternatives do not work:
//     a port on the visitor's 198.51.100.x address is unreachable from the
//     root namespace (no route, and the address only exists in the
//     namespace), and a goroutine locked into the namespace with
//     netns.Set would have to do every websocket read and write from that
//     one thread, which chromedp's connection does not promise.
//   - Pdeathsig is set (as chromedp does itself), and t.Cleanup kills any
//     process still using the test's profile directory, before the park's
//     own cleanup removes the namespaces.

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/parkwifi/parkportal/internal/chrome"
	"github.com/parkwifi/parkportal/lab"
)

// screenshotDir is where the pages' screenshots go, as CI artifacts
// (gitignored), relative to this package's directory.
const screenshotDir = "../artifacts/screenshots"

// splashBudget is the most the splash page with all its assets may
// transfer (issue 8): 30 KB.
const splashBudget = 30 * 1024

// portalHost is the only host the pages may load anything from.
var portalHost = mustHost(portalURL)

func mustHost(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		panic(err)
	}
	return p.Host
}

// needChromium returns Chromium's path or skips the test.
func needChromium(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs Chromium inside a visitor's network namespace")
	}
	return chrome.Find(t)
}

// browser is one headless Chromium running in a visitor's namespace, with
// one tab.
type browser struct {
	t    *testing.T
	name string
	v    lab.Visitor
	ctx  context.Context // the tab
	dir  string          // profile directory, unique to this browser

	mu   sync.Mutex
	reqs []request // every request the tab made, in order
}

type request struct {
	id    network.RequestID
	url   string
	bytes float64 // encoded bytes on the wire, headers included; -1 until finished
}

// Mobile viewport of the pages: a common small Android phone.
const (
	phoneWidth, phoneHeight = 360, 740
	phoneScale              = 2
)

// startBrowser starts Chromium in visitor v's namespace. acceptLang is
// the browser's language list (its Accept-Language header). With
// scriptsOff the tab runs no JavaScript, like a locked-down captive
// mini-browser.
func startBrowser(t *testing.T, exe, name string, v lab.Visitor, acceptLang string, scriptsOff bool) *browser {
	t.Helper()
	b := &browser{t: t, name: name, v: v, dir: t.TempDir()}
	opts := append(chrome.Options(exe, b.dir),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter"),
		chromedp.Flag("accept-lang", acceptLang),
		chromedp.WindowSize(phoneWidth, phoneHeight),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			in := lab.Cmd(v.NS, cmd.Path, cmd.Args[1:]...)
			cmd.Path, cmd.Args = in.Path, in.Args
			// What chromedp's default does: the browser dies with the
			// thread that started it (chromedp keeps that thread for
			// the browser's life).
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		}),
	)
	actx, cancelA := chromedp.NewExecAllocator(t.Context(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelA()
		killProfile(b.dir)
	})
	// Start the browser on a context without a deadline (a deadline on
	// the first call would bound the browser's life), bounded from here.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("%s: starting chromium in %s: %v", name, v.NS, err)
		}
	case <-time.After(30 * time.Second):
		cancelA()
		t.Fatalf("%s: chromium did not start within 30 s", name)
	}
	b.ctx = ctx
	b.checkNamespace()

	if err := chromedp.Listen(ctx, b.record); err != nil {
		t.Fatal(err)
	}
	steps := []chromedp.Action[chromedp.Void]{
		chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateScale(phoneScale), chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait),
		// A marker set by a script at every page load: present when
		// JavaScript runs, absent when it is off.
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
				Source: `document.addEventListener("DOMContentLoaded", () => document.documentElement.setAttribute("data-js", "ran"))`,
			})
			return err
		}),
	}
	if scriptsOff {
		steps = append(steps, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		}))
	}
	b.do("setting up the tab", steps...)
	return b
}

// checkNamespace verifies that every process of this browser runs in the
// visitor's network namespace.
func (b *browser) checkNamespace() {
	b.t.Helper()
	want, err := os.Stat("/run/netns/" + b.v.NS)
	if err != nil {
		b.t.Fatal(err)
	}
	pids := profilePIDs(b.dir)
	if len(pids) == 0 {
		b.t.Fatalf("%s: no Chromium process found with --user-data-dir=%s", b.name, b.dir)
	}
	for _, pid := range pids {
		got, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			continue // exited meanwhile
		}
		if !os.SameFile(want, got) {
			b.t.Fatalf("%s: Chromium process %d is not in namespace %s", b.name, pid, b.v.NS)
		}
	}
}

// profilePIDs lists the processes started with --user-data-dir=dir
// (Chromium passes it to every child).
func profilePIDs(dir string) []int {
	want := "--user-data-dir=" + dir
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		for _, arg := range strings.Split(string(cmdline), "\x00") {
			if arg == want {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// killProfile kills what is left of a browser (bounded).
func killProfile(dir string) {
	for i := 0; i < 20; i++ {
		pids := profilePIDs(dir)
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// record keeps the tab's requests; it runs in the tab's event loop.
func (b *browser) record(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		// A redirect reuses the request ID: it is a new request on the
		// wire, so it gets its own entry.
		b.reqs = append(b.reqs, request{id: ev.RequestID, url: ev.Request.URL, bytes: -1})
	case *network.EventLoadingFinished:
		for i := len(b.reqs) - 1; i >= 0; i-- {
			if b.reqs[i].id == ev.RequestID {
				// For a redirected request, Chromium reports all of
				// its hops' bytes here; keep them on the last hop.
				b.reqs[i].bytes = ev.EncodedDataLength
				break
			}
		}
	}
}

func (b *browser) requests() []request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]request(nil), b.reqs...)
}

// stepTimeout bounds every browser step.
const stepTimeout = 15 * time.Second

// do runs steps, failing the test with what the tab shows if one fails.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %s: %v (%s)", b.name, what, err, b.where())
	}
}

// where describes the tab's page, for failure messages.
func (b *browser) where() string {
	ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	code := ""
	if ids, err := chromedp.Run(ctx, chromedp.QueryNodeIDs(chromedp.CSS("#problem"), chromedp.AtLeast(0))); err == nil && len(ids) > 0 {
		a, _ := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("#problem"), "data-code", chromedp.AtLeast(0)))
		code = " problem " + a.Value
	}
	return "page " + loc + code
}

// get runs an action that returns a value, bounded.
func get[T any](b *browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %s: %v (%s)", b.name, what, err, b.where())
	}
	return v
}

// navigate loads url and returns the final response's status.
func (b *browser) navigate(u string) int64 {
	b.t.Helper()
	resp := get(b, "loading "+u, chromedp.NavigateResponse(u))
	if resp == nil {
		b.t.Fatalf("%s: loading %s: no response", b.name, u)
	}
	return resp.Status
}

// submit clicks sel, waits for the page it leads to and returns its
// status.
func (b *browser) submit(sel string) int64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil || resp == nil {
		b.t.Fatalf("%s: clicking %s: %v (%s)", b.name, sel, err, b.where())
	}
	return resp.Status
}

// typeInto types text into the field, as a visitor's keyboard does.
func (b *browser) typeInto(sel, text string) {
	b.t.Helper()
	b.do("typing into "+sel, chromedp.Clear(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), text))
}

func (b *browser) attr(sel, name string) string {
	b.t.Helper()
	return get(b, "reading "+sel+"@"+name, chromedp.AttributeValue(chromedp.CSS(sel), name)).Value
}

// problem returns the page's problem code ("" for none).
func (b *browser) problem() string {
	b.t.Helper()
	ids := get(b, "looking for #problem", chromedp.QueryNodeIDs(chromedp.CSS("#problem"), chromedp.AtLeast(0)))
	if len(ids) == 0 {
		return ""
	}
	return b.attr("#problem", "data-code")
}

// shot saves a full-page screenshot as artifacts/screenshots/portal-<name>.png.
func (b *browser) shot(name string) {
	b.t.Helper()
	png := get(b, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(screenshotDir, "portal-"+name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// wantPage checks the page's language and direction.
func (b *browser) wantPage(lang, dir string) {
	b.t.Helper()
	if got := b.attr("html", "lang"); got != lang {
		b.t.Errorf("%s: <html lang=%q>, want %q (%s)", b.name, got, lang, b.where())
	}
	if got := b.attr("html", "dir"); got != dir {
		b.t.Errorf("%s: <html dir=%q>, want %q (%s)", b.name, got, dir, b.where())
	}
}

// scriptsRan reports whether page scripts ran on the current page.
func (b *browser) scriptsRan() bool {
	b.t.Helper()
	ids := get(b, "looking for the script marker", chromedp.QueryNodeIDs(chromedp.CSS("html[data-js]"), chromedp.AtLeast(0)))
	return len(ids) > 0
}

// onlyPortal fails the test if the tab requested anything but the portal
// (or the probe URLs the test itself opened, which the gateway answers).
func (b *browser) onlyPortal(opened ...string) {
	b.t.Helper()
	for _, r := range b.requests() {
		u, err := url.Parse(r.url)
		if err != nil {
			b.t.Errorf("%s: unparsable request URL %q", b.name, r.url)
			continue
		}
		switch {
		case u.Scheme == "data":
		case u.Scheme == "http" && u.Host == portalHost:
		case contains(opened, r.url):
		default:
			b.t.Errorf("%s: the page requested %s: only %s may be used", b.name, r.url, portalHost)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// splashWeight loads the splash page with the cache off and returns the
// bytes it transferred with all its assets, and the URLs.
func (b *browser) splashWeight(u string) (float64, []string) {
	b.t.Helper()
	setCache := func(disabled bool) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: disabled})
			return err
		})
	}
	b.do("turning the cache off", setCache(true))
	defer b.do("turning the cache on", setCache(false))
	mark := len(b.requests())
	if st := b.navigate(u); st != 200 {
		b.t.Fatalf("%s: splash %s: status %d", b.name, u, st)
	}
	// Subresources finish before the load event; a late one (an icon)
	// gets a moment, bounded.
	for i := 0; i < 20; i++ {
		done := true
		for _, r := range b.requests()[mark:] {
			if r.bytes < 0 && !strings.HasPrefix(r.url, "data:") {
				done = false
			}
		}
		if done {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var total float64
	var urls []string
	for _, r := range b.requests()[mark:] {
		urls = append(urls, fmt.Sprintf("%s (%.0f B)", r.url, max(r.bytes, 0)))
		total += max(r.bytes, 0)
	}
	return total, urls
}

// a11yReport is what the accessibility script finds on a page.
type a11yReport struct {
	Lang       string     `json:"lang"`
	Dir        string     `json:"dir"`
	H1         int        `json:"h1"`
	Unlabelled []string   `json:"unlabelled"`
	NoAlt      []string   `json:"noAlt"`
	Unnamed    []string   `json:"unnamed"`
	Small      []string   `json:"small"`
	Contrast   []contrast `json:"contrast"`
}

type contrast struct {
	What  string  `json:"what"`
	FG    string  `json:"fg"`
	BG    string  `json:"bg"`
	Ratio float64 `json:"ratio"`
}

// a11yScript inspects the page: labels, alt texts, names of buttons, tap
// target sizes, and the contrast of every element that shows text (its
// computed colour against the first opaque background up its ancestors),
// with the WCAG 2 relative-luminance formula.
const a11yScript = `(() => {
  const rgb = s => { const m = /rgba?\(([^)]*)\)/.exec(s); if (!m) return null;
    const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const lin = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  const lum = c => 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2]);
  const bgOf = el => { for (let e = el; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c && c[3] > 0) return c; } return [255, 255, 255, 1]; };
  const shown = el => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
  const name = el => (el.id ? "#" + el.id : el.tagName.toLowerCase() + (el.className ? "." + el.className : "")) + " " + JSON.stringify((el.textContent || el.value || "").trim().slice(0, 30));
  const r = { lang: document.documentElement.lang, dir: document.documentElement.dir, h1: document.querySelectorAll("h1").length,
    unlabelled: [], noAlt: [], unnamed: [], small: [], contrast: [] };
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea"))
    if (!(el.labels && el.labels.length) && !el.getAttribute("aria-label") && !el.getAttribute("aria-labelledby")) r.unlabelled.push(name(el));
  for (const el of document.querySelectorAll("img, [role=img], input[type=image]"))
    if (!el.hasAttribute("alt") && !el.getAttribute("aria-label")) r.noAlt.push(el.src || name(el));
  for (const el of document.querySelectorAll("button, a[href]"))
    if (!el.textContent.trim() && !el.getAttribute("aria-label")) r.unnamed.push(name(el));
  for (const el of document.querySelectorAll("button, input:not([type=hidden]):not([type=checkbox]), a.lang")) {
    if (!shown(el)) continue;
    const b = el.getBoundingClientRect();
    if (b.height < 44 || b.width < 44) r.small.push(name(el) + " " + Math.round(b.width) + "x" + Math.round(b.height));
  }
  const els = [document.body, ...document.body.querySelectorAll("*")];
  for (const el of els) {
    if (!shown(el)) continue;
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()) || (el.tagName === "INPUT" && el.value);
    if (!own) continue;
    const fg = rgb(getComputedStyle(el).color), bg = bgOf(el);
    if (!fg) continue;
    const a = lum(fg), b = lum(bg);
    r.contrast.push({ what: name(el), fg: getComputedStyle(el).color, bg: "rgb(" + bg.slice(0, 3).join(", ") + ")",
      ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05) });
  }
  return r;
})()`

// checkA11y checks the current page: every input labelled, images with
// alt, lang and dir set, one h1, tap targets of at least 44 CSS px, text
// contrast of at least 4.5:1, and no horizontal overflow at 200% zoom
// (a 360 px phone at 200% lays pages out 180 CSS px wide). zoomShot, if
// set, names a screenshot taken at 200%.
func (b *browser) checkA11y(page, zoomShot string) {
	b.t.Helper()
	r := get(b, "accessibility script on "+page, chromedp.Evaluate[a11yReport](a11yScript))
	if r.Lang == "" || r.Dir == "" {
		b.t.Errorf("%s %s: <html> lacks lang or dir: lang=%q dir=%q", b.name, page, r.Lang, r.Dir)
	}
	if r.H1 != 1 {
		b.t.Errorf("%s %s: %d h1 elements, want 1", b.name, page, r.H1)
	}
	for _, s := range r.Unlabelled {
		b.t.Errorf("%s %s: input without a label: %s", b.name, page, s)
	}
	for _, s := range r.NoAlt {
		b.t.Errorf("%s %s: image without alt: %s", b.name, page, s)
	}
	for _, s := range r.Unnamed {
		b.t.Errorf("%s %s: button or link without text: %s", b.name, page, s)
	}
	for _, s := range r.Small {
		b.t.Errorf("%s %s: tap target under 44x44 CSS px: %s", b.name, page, s)
	}
	if len(r.Contrast) < 3 {
		b.t.Errorf("%s %s: contrast check saw only %d text elements", b.name, page, len(r.Contrast))
	}
	worst := contrast{Ratio: 21}
	for _, c := range r.Contrast {
		if c.Ratio < 4.5 {
			b.t.Errorf("%s %s: contrast %.2f:1 under 4.5:1 for %s (%s on %s)", b.name, page, c.Ratio, c.What, c.FG, c.BG)
		}
		if c.Ratio < worst.Ratio {
			worst = c
		}
	}
	b.t.Logf("%s %s: %d text elements, lowest contrast %.1f:1 (%s)", b.name, page, len(r.Contrast), worst.Ratio, worst.What)

	// 200% zoom.
	b.do("zooming to 200%", chromedp.EmulateViewport(phoneWidth/2, phoneHeight/2, chromedp.EmulateScale(2*phoneScale), chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait))
	type widths struct {
		Scroll int `json:"scroll"`
		Client int `json:"client"`
	}
	w := get(b, "measuring widths", chromedp.Evaluate[widths](`({scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth})`))
	if w.Client > phoneWidth/2 || w.Scroll > w.Client {
		b.t.Errorf("%s %s at 200%% zoom: content %d CSS px wide in a %d px viewport (horizontal scrolling)", b.name, page, w.Scroll, w.Client)
	}
	if zoomShot != "" {
		b.shot(zoomShot)
	}
	b.do("zooming back", chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateScale(phoneScale), chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait))
}

// checkTabOrder focuses from and presses Tab: the focus must land on to.
func (b *browser) checkTabOrder(page, from, to string) {
	b.t.Helper()
	b.do("tabbing from "+from, chromedp.Focus(chromedp.CSS(from)), chromedp.KeyEvent("\t"))
	ok := get(b, "reading the focus", chromedp.Evaluate[bool](`document.activeElement === document.querySelector(`+strconv.Quote(to)+`)`))
	if !ok {
		what := get(b, "reading the focus", chromedp.Evaluate[string](`document.activeElement.outerHTML.slice(0, 120)`))
		b.t.Errorf("%s %s: Tab from %s went to %s, want %s", b.name, page, from, what, to)
	}
}

// arabicDigits writes ASCII digits as Arabic-Indic ones (٠١٢…), as an
// Arabic phone keyboard types them.
func arabicDigits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return '٠' + (r - '0')
		}
		return r
	}, s)
}

// TestPortalInChromium walks visitors through the portal in headless
// Chromium at 360×740 with mobile emulation, each browser in its own
// visitor namespace behind the gateway:
//
//   - v1, an Arabic phone: an OS probe is redirected to the splash, which is
//     Arabic and right-to-left; accessibility checks; the splash's weight
//     with all assets is measured; switch to English; a malformed number;
//     then login with the SMS PIN to the status page.
//   - v2, a phone whose language is neither Arabic nor English: Arabic by
//     default; the number and the PIN typed in Arabic-Indic digits, one
//     wrong PIN first; status page; log out.
//   - v3, JavaScript off, an English phone: PIN tries run out
//     (too-many-tries), then login with another number.
//
// Screenshots of every page go to artifacts/screenshots/portal-*.png.
func TestPortalInChromium(t *testing.T) {
	exe := needChromium(t)
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	p := newPark(t, 3)
	p.start(p.config(map[string]string{
		"site.pin_max_tries": "2",
		"site.privacy_url":   "https://park.example/privacy",
	}))
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	probe := "http://" + lab.InternetIP.String()

	t.Run("arabic-phone", func(t *testing.T) {
		b := startBrowser(t, exe, "v1", p.Visitors[0], "ar-QA,ar", false)
		// A phone's connectivity probe lands on the splash page.
		b.navigate(probe + "/generate_204")
		if loc := get(b, "location", chromedp.Location()); loc != portalURL {
			t.Fatalf("probe ended at %s, want the splash page %s", loc, portalURL)
		}
		b.wantPage("ar", "rtl")
		if !b.scriptsRan() {
			t.Error("the JavaScript-on browser ran no script: the scripts-off check proves nothing")
		}
		b.shot("splash-ar")
		b.checkA11y("splash-ar", "splash-ar-zoom200")
		b.checkTabOrder("splash-ar", "#phone", `form[action="/sms"] button[type=submit]`)

		weight, urls := b.splashWeight(portalURL)
		t.Logf("splash page with all assets: %.0f bytes transferred (budget %d): %s", weight, splashBudget, strings.Join(urls, ", "))
		if weight > splashBudget {
			t.Errorf("splash page transferred %.0f bytes, budget %d", weight, splashBudget)
		}
		if weight < 1000 {
			t.Errorf("splash page measured at %.0f bytes: the measurement missed the page", weight)
		}

		// Switch to English with the link.
		if st := b.submit("a.lang"); st != 200 {
			t.Fatalf("English link: status %d", st)
		}
		b.wantPage("en", "ltr")
		b.shot("splash-en")
		b.checkA11y("splash-en", "splash-en-zoom200")

		// A malformed number.
		b.typeInto("#phone", "12ab")
		if st := b.submit(`form[action="/sms"] button[type=submit]`); st != 400 || b.problem() != "malformed-number" {
			t.Fatalf("malformed number: status %d, problem %q", st, b.problem())
		}
		b.wantPage("en", "ltr") // the choice is remembered
		b.shot("error-malformed-number")
		b.checkA11y("error-malformed-number", "")

		// Login.
		b.typeInto("#phone", "33111111")
		if st := b.submit(`form[action="/sms"] button[type=submit]`); st != 200 || b.problem() != "" {
			t.Fatalf("sending the PIN: status %d, problem %q", st, b.problem())
		}
		b.do("waiting for the PIN field", chromedp.WaitVisible(chromedp.CSS("#pin")))
		b.wantPage("en", "ltr")
		if got := b.attr("#pin", "autocomplete"); got != "one-time-code" {
			t.Errorf("#pin autocomplete=%q", got)
		}
		if got := b.attr("#pin", "inputmode"); got != "numeric" {
			t.Errorf("#pin inputmode=%q", got)
		}
		b.shot("pin-en")
		b.checkA11y("pin-en", "pin-en-zoom200")
		b.checkTabOrder("pin-en", "#pin", `form[action="/pin"] button[type=submit]`)
		code, err := lab.LastPIN(p.outbox(), "+97433111111")
		if err != nil {
			t.Fatal(err)
		}
		b.typeInto("#pin", code)
		if st := b.submit(`form[action="/pin"] button[type=submit]`); st != 200 {
			t.Fatalf("PIN: status %d (%s)", st, b.where())
		}
		b.do("waiting for the status page", chromedp.WaitVisible(chromedp.CSS("#connected")))
		if secs, _ := strconv.Atoi(b.attr("[data-seconds]", "data-seconds")); secs <= 0 {
			t.Errorf("status page shows %d seconds left", secs)
		}
		b.shot("status-en")
		b.checkA11y("status-en", "status-en-zoom200")
		if !online(p.Visitors[0]) {
			t.Error("after the browser's login the visitor is not online")
		}
		b.onlyPortal(probe + "/generate_204")
	})

	t.Run("arabic-digits", func(t *testing.T) {
		b := startBrowser(t, exe, "v2", p.Visitors[1], "fr-FR,fr", false)
		b.navigate(probe + "/hotspot-detect.html")
		b.wantPage("ar", "rtl") // neither Arabic nor English: Arabic
		b.typeInto("#phone", arabicDigits("33222222"))
		if got := get(b, "reading #phone", chromedp.Value(chromedp.CSS("#phone"))); got != "٣٣٢٢٢٢٢٢" {
			t.Errorf("#phone holds %q after typing Arabic-Indic digits", got)
		}
		if st := b.submit(`form[action="/sms"] button[type=submit]`); st != 200 || b.problem() != "" {
			t.Fatalf("sending the PIN: status %d, problem %q", st, b.problem())
		}
		b.do("waiting for the PIN field", chromedp.WaitVisible(chromedp.CSS("#pin")))
		b.wantPage("ar", "rtl")
		b.shot("pin-ar")
		b.checkA11y("pin-ar", "")
		code, err := lab.LastPIN(p.outbox(), "+97433222222")
		if err != nil {
			t.Fatal(err)
		}
		wrong := fmt.Sprintf("%06d", (atoi(code)+1)%1_000_000)
		b.typeInto("#pin", arabicDigits(wrong))
		if st := b.submit(`form[action="/pin"] button[type=submit]`); st != 400 || b.problem() != "wrong-pin" {
			t.Fatalf("wrong PIN: status %d, problem %q", st, b.problem())
		}
		b.shot("error-wrong-pin-ar")
		b.checkA11y("error-wrong-pin-ar", "")
		b.typeInto("#pin", arabicDigits(code))
		if st := b.submit(`form[action="/pin"] button[type=submit]`); st != 200 {
			t.Fatalf("PIN: status %d (%s)", st, b.where())
		}
		b.do("waiting for the status page", chromedp.WaitVisible(chromedp.CSS("#connected")))
		b.wantPage("ar", "rtl")
		b.shot("status-ar")
		b.checkA11y("status-ar", "status-ar-zoom200")
		if st := b.submit(`form[action="/logout"] button[type=submit]`); st != 200 {
			t.Fatalf("log out: status %d", st)
		}
		b.do("waiting for the splash page", chromedp.WaitVisible(chromedp.CSS(".notice")), chromedp.WaitVisible(chromedp.CSS("#phone")))
		b.shot("logged-out-ar")
		b.onlyPortal(probe + "/hotspot-detect.html")
	})

	t.Run("javascript-off", func(t *testing.T) {
		b := startBrowser(t, exe, "v3", p.Visitors[2], "en-GB,en", true)
		b.navigate(probe + "/connecttest.txt")
		b.wantPage("en", "ltr") // the browser's language
		if b.scriptsRan() {
			t.Fatal("scripts ran although script execution is disabled")
		}
		// Run out of PIN tries (the site allows 2).
		b.typeInto("#phone", "33333333")
		if st := b.submit(`form[action="/sms"] button[type=submit]`); st != 200 || b.problem() != "" {
			t.Fatalf("sending the PIN: status %d, problem %q", st, b.problem())
		}
		code, err := lab.LastPIN(p.outbox(), "+97433333333")
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 2; i++ {
			b.typeInto("#pin", fmt.Sprintf("%06d", (atoi(code)+i)%1_000_000))
			b.submit(`form[action="/pin"] button[type=submit]`)
		}
		if got := b.problem(); got != "too-many-tries" {
			t.Fatalf("after 2 wrong PINs: problem %q, want too-many-tries", got)
		}
		b.shot("error-too-many-tries")
		// Another number, the right PIN, still without JavaScript.
		b.typeInto("#phone", "55444444")
		if st := b.submit(`form[action="/sms"] button[type=submit]`); st != 200 || b.problem() != "" {
			t.Fatalf("sending the PIN: status %d, problem %q", st, b.problem())
		}
		if code, err = lab.LastPIN(p.outbox(), "+97455444444"); err != nil {
			t.Fatal(err)
		}
		b.typeInto("#pin", code)
		if st := b.submit(`form[action="/pin"] button[type=submit]`); st != 200 {
			t.Fatalf("PIN: status %d (%s)", st, b.where())
		}
		b.do("waiting for the status page", chromedp.WaitVisible(chromedp.CSS("#connected")))
		if b.scriptsRan() {
			t.Error("scripts ran on the status page although script execution is disabled")
		}
		b.shot("status-en-nojs")
		if !online(p.Visitors[2]) {
			t.Error("after the JavaScript-off login the visitor is not online")
		}
		b.onlyPortal(probe + "/connecttest.txt")
	})

	abs, _ := filepath.Abs(screenshotDir)
	t.Logf("screenshots in %s/portal-*.png", abs)
}
