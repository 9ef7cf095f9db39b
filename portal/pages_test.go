package portal

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/limits"
	"github.com/parkwifi/parkportal/metrics"
	"github.com/parkwifi/parkportal/session"
)

var switchLink = regexp.MustCompile(`<a class="lang" href="([^"]*)"`)

// browse follows a link on a page the way a browser does: it resolves
// href against the page's address, sends the visitor's cookies, follows
// redirects to the portal and keeps the cookies it is given. It returns
// the final page and the cookies after it.
func (p *park) browse(t *testing.T, v visitor, page, href string, cookies []*http.Cookie) (*httptest.ResponseRecorder, []*http.Cookie) {
	t.Helper()
	base, err := url.Parse("http://" + portalHost + page)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		ref, err := url.Parse(href)
		if err != nil {
			t.Fatalf("bad link %q: %v", href, err)
		}
		u := base.ResolveReference(ref)
		if u.Host != portalHost {
			t.Fatalf("link %q from %s leaves the portal", href, page)
		}
		w := p.do(t, req{path: u.RequestURI(), from: v, cookies: cookies})
		for _, c := range w.Result().Cookies() {
			cookies = slices.DeleteFunc(cookies, func(o *http.Cookie) bool { return o.Name == c.Name })
			cookies = append(cookies, c)
		}
		if w.Code/100 != 3 {
			return w, cookies
		}
		base, href = u, w.Header().Get("Location")
	}
	t.Fatalf("too many redirects from %s", page)
	return nil, nil
}

// switchLanguage finds the page's language link and follows it.
func (p *park) switchLanguage(t *testing.T, v visitor, page string, w *httptest.ResponseRecorder, cookies []*http.Cookie) (*httptest.ResponseRecorder, []*http.Cookie) {
	t.Helper()
	m := switchLink.FindStringSubmatch(w.Body.String())
	if m == nil {
		t.Fatalf("no language link on %s:\n%s", page, w.Body.String())
	}
	return p.browse(t, v, page, m[1], cookies)
}

// TestLanguageSwitchEveryPage switches language from every page a
// visitor can see, including those served in reply to a form (at /sms,
// /pin, /logout): each lands on the same state of the flow in the other
// language, and the choice is remembered.
func TestLanguageSwitchEveryPage(t *testing.T) {
	v := newVisitor(1)
	p := newParkWith(t, nil, func(o *Options) { o.Site.TermsEN, o.Site.TermsAR = "Be kind.", "كن لطيفاً." }, v)
	check := func(what, page string, w *httptest.ResponseRecorder, marker string) {
		t.Helper()
		if lang, _ := pageLang(t, w); lang != "ar" {
			t.Fatalf("%s: page in %s before the switch", what, lang)
		}
		got, cookies := p.switchLanguage(t, v, page, w, nil)
		if got.Code != http.StatusOK {
			t.Fatalf("%s: switch ends in %d", what, got.Code)
		}
		if lang, dir := pageLang(t, got); lang != "en" || dir != "ltr" {
			t.Errorf("%s: switch to English gives lang=%s dir=%s", what, lang, dir)
		}
		if !strings.Contains(got.Body.String(), marker) {
			t.Errorf("%s: the switched page is not the same state (no %q):\n%s", what, marker, got.Body.String())
		}
		// Remembered: the next plain visit is in English too.
		if lang, _ := pageLang(t, p.do(t, req{path: "/", from: v, cookies: cookies})); lang != "en" {
			t.Errorf("%s: choice not remembered; next page in %s", what, lang)
		}
		// And back to Arabic from the English page.
		back, _ := p.switchLanguage(t, v, "/", got, cookies)
		if lang, _ := pageLang(t, back); lang != "ar" {
			t.Errorf("%s: switching back gives %s", what, lang)
		}
	}

	check("splash", "/", p.get(t, v, "/"), `action="/sms"`)
	check("terms", "/terms", p.get(t, v, "/terms"), "Be kind.")
	check("number error at /sms", "/sms", p.post(t, v, "/sms", url.Values{"phone": {"123"}}), `action="/sms"`)

	p.sendPIN(t, v, "33123456")
	_, pin := p.sms.last(t)
	check("PIN page", "/", p.get(t, v, "/"), `action="/pin"`)
	check("wrong PIN at /pin", "/pin", p.enterPIN(t, v, otherPIN(pin)), `action="/pin"`)
	check("status at /pin", "/pin", p.enterPIN(t, v, pin), `id="connected"`)
	check("status", "/", p.get(t, v, "/"), `id="connected"`)
	check("logged out at /logout", "/logout", p.post(t, v, "/logout", nil), `action="/sms"`)
}

// TestLanguageOnOtherPaths: a switch link a visitor's older page still
// carries (relative, so /pin?lang=en) sets the language on the way to
// the splash page rather than losing it.
func TestLanguageOnOtherPaths(t *testing.T) {
	v := newVisitor(1)
	p := newPark(t, v)
	for _, path := range []string{"/pin?lang=en", "/logout?lang=en", "/sms?lang=en", "/unknown?lang=en"} {
		w := p.get(t, v, path)
		if w.Code != http.StatusFound || w.Header().Get("Location") != "http://"+portalHost+"/?lang=en" {
			t.Errorf("GET %s: %d %q", path, w.Code, w.Header().Get("Location"))
		}
		if c := w.Result().Cookies(); len(c) != 1 || c[0].Name != "lang" || c[0].Value != "en" {
			t.Errorf("GET %s: cookies %v, want lang=en", path, c)
		}
	}
	// Anything else is not echoed: the plain portal address, no cookie.
	for _, path := range []string{"/pin?lang=xx", "/pin?lang=en%0d%0aX:1", "/pin"} {
		w := p.get(t, v, path)
		if w.Header().Get("Location") != "http://"+portalHost+"/" || w.Header().Get("Set-Cookie") != "" {
			t.Errorf("GET %s: Location %q, Set-Cookie %q", path, w.Header().Get("Location"), w.Header().Get("Set-Cookie"))
		}
	}
}

const termsEN = "Use the service lawfully.\nBe kind to others.\n\nWe may end abusive sessions. <script>alert(1)</script>"
const termsAR = "استخدم الخدمة وفق القانون.\n\nقد ننهي الجلسات المسيئة."

// TestTermsPage: the terms staff write reach visitors, in their language,
// escaped, linked next to the checkbox the site requires.
func TestTermsPage(t *testing.T) {
	v := newVisitor(1)
	p := newParkWith(t, nil, func(o *Options) {
		o.Site.RequireTerms, o.Site.TermsAR, o.Site.TermsEN = true, termsAR, termsEN
	}, v)

	splash := p.get(t, v, "/").Body.String()
	m := regexp.MustCompile(`<input type="checkbox" id="terms"[^>]*><label for="terms">[^<]*</label> <a href="([^"]*)"`).FindStringSubmatch(splash)
	if m == nil {
		t.Fatalf("no terms link next to the checkbox:\n%s", splash)
	}
	w, _ := p.browse(t, v, "/", m[1], nil)
	body := w.Body.String()
	if w.Code != http.StatusOK || !strings.Contains(body, "استخدم الخدمة وفق القانون.") || !strings.Contains(body, "قد ننهي الجلسات المسيئة.") {
		t.Fatalf("Arabic terms page: %d\n%s", w.Code, body)
	}
	if lang, dir := pageLang(t, w); lang != "ar" || dir != "rtl" {
		t.Errorf("terms page lang=%s dir=%s", lang, dir)
	}
	if strings.Contains(body, "Use the service") {
		t.Error("the Arabic terms page shows the English terms")
	}

	w = p.get(t, v, "/terms?lang=en")
	body = w.Body.String()
	if !strings.Contains(body, "<p>Use the service lawfully.\nBe kind to others.</p>") || !strings.Contains(body, "<p>We may end abusive sessions.") {
		t.Errorf("English terms not in paragraphs:\n%s", body)
	}
	if strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;") {
		t.Errorf("terms text not escaped:\n%s", body)
	}

	// Only Arabic written: an English visitor reads it, marked as Arabic.
	site := *p.srv.site()
	site.TermsEN = ""
	p.srv.SetSite(site)
	body = p.get(t, v, "/terms?lang=en").Body.String()
	if !strings.Contains(body, `<div class="terms-text" lang="ar" dir="rtl">`) || !strings.Contains(body, "قد ننهي") {
		t.Errorf("Arabic-only terms for an English visitor:\n%s", body)
	}

	// A terms address set by staff wins over the text.
	site.TermsURL = "https://parks.example.qa/terms"
	p.srv.SetSite(site)
	if body := p.get(t, v, "/").Body.String(); !strings.Contains(body, `<a href="https://parks.example.qa/terms" id="terms-link">`) {
		t.Errorf("TermsURL not linked:\n%s", body)
	}

	// Without a requirement the terms are still linked, from the privacy
	// notice; without any terms there is no link and no page.
	site.TermsURL, site.RequireTerms = "", false
	p.srv.SetSite(site)
	if body := p.get(t, v, "/").Body.String(); strings.Contains(body, `name="terms"`) || !strings.Contains(body, `<a href="/terms?lang=ar" id="terms-link">`) {
		t.Errorf("terms not linked when not required:\n%s", body)
	}
	site.TermsAR = ""
	p.srv.SetSite(site)
	if body := p.get(t, v, "/").Body.String(); strings.Contains(body, "terms-link") {
		t.Errorf("a terms link with no terms:\n%s", body)
	}
	if w := p.get(t, v, "/terms"); w.Code != http.StatusFound {
		t.Errorf("GET /terms with no terms: %d", w.Code)
	}
}

// TestSplashShowsSiteRate: the splash page states the rate staff set,
// and follows a live change; the status page states the visitor's own.
func TestSplashShowsSiteRate(t *testing.T) {
	v := newVisitor(1)
	auth := &fakeAuth{grant: &session.Grant{RateDown: 2e6}}
	p := newParkWith(t, auth, func(o *Options) { o.Site.RateDown = 8e6 }, v)
	intro := func(lang string) string {
		t.Helper()
		m := regexp.MustCompile(`<p class="intro">([^<]*)</p>`).FindStringSubmatch(p.get(t, v, "/?lang="+lang).Body.String())
		if m == nil {
			t.Fatal("no intro on the splash page")
		}
		return m[1]
	}
	if en, ar := intro("en"), intro("ar"); !strings.Contains(en, "Free Internet at 8 Mbit/s.") || !strings.Contains(ar, "بسرعة 8 ميغابت في الثانية.") {
		t.Errorf("8 Mbit/s site: intro %q / %q", en, ar)
	}
	site := *p.srv.site()
	site.RateDown = 20e6
	p.srv.SetSite(site)
	if en, ar := intro("en"), intro("ar"); !strings.Contains(en, "at 20 Mbit/s.") || strings.Contains(en, "8 Mbit") || !strings.Contains(ar, "بسرعة 20 ميغابت في الثانية.") {
		t.Errorf("after staff set 20 Mbit/s: intro %q / %q", en, ar)
	}
	site.RateDown = 0
	p.srv.SetSite(site)
	if en := intro("en"); strings.Contains(en, "bit/s") || !strings.Contains(en, "Free Internet.") {
		t.Errorf("no site rate: intro %q", en)
	}

	// The RADIUS plan gave this visitor 2 Mbit/s: the status page says so.
	p.sendPIN(t, v, "33123456")
	_, pin := p.sms.last(t)
	w := p.post(t, v, "/pin", url.Values{"pin": {pin}, "lang": {"en"}})
	if !strings.Contains(w.Body.String(), "<dt>Speed</dt><dd>2 Mbit/s</dd>") {
		t.Errorf("status page lacks the visitor's rate:\n%s", w.Body.String())
	}
}

func TestFormatRate(t *testing.T) {
	for bps, want := range map[uint64]string{
		8e6: "8 Mbit/s", 1.5e6: "1.5 Mbit/s", 512e3: "512 kbit/s", 1e9: "1 Gbit/s", 2.25e6: "2.3 Mbit/s", 100e6: "100 Mbit/s",
	} {
		if got := formatRate(bps, langEN); got != want {
			t.Errorf("formatRate(%d, en) = %q, want %q", bps, got, want)
		}
	}
	if got := formatRate(8e6, langAR); got != "8 ميغابت في الثانية" {
		t.Errorf("formatRate(8e6, langAR) = %q", got)
	}
}

// TestEventReasonsKnownToMetrics: every reason the portal passes to its
// events is one metrics creates at zero, so dashboards and alerts see
// each series from the start.
func TestEventReasonsKnownToMetrics(t *testing.T) {
	var _ Events = (*metrics.Metrics)(nil)
	refused := []string{errMalformedNumber.Code, errNumberNotAllowed.Code}
	for _, r := range []limits.Reason{limits.PerNumber, limits.PerDevice, limits.SiteBudget, limits.ResendGap} {
		refused = append(refused, r.String())
	}
	for _, r := range refused {
		if !slices.Contains(metrics.SMSRefusedReasons, r) {
			t.Errorf("SMSRefused(%q) is not among metrics.SMSRefusedReasons %q", r, metrics.SMSRefusedReasons)
		}
	}
	for _, r := range []string{errSMSTemporary.Code, errSMSPermanent.Code, errSMSPaused.Code} {
		if !slices.Contains(metrics.SMSFailedReasons, r) {
			t.Errorf("SMSFailed(%q) is not among metrics.SMSFailedReasons %q", r, metrics.SMSFailedReasons)
		}
	}
	if r := limits.PINBackoff.String(); !slices.Contains(metrics.PINRefusedReasons, r) {
		t.Errorf("PINRefused(%q) is not among metrics.PINRefusedReasons %q", r, metrics.PINRefusedReasons)
	}
}

// TestPINRefusedCounted: with the real metrics, a PIN try refused by the
// back-off shows in parkportal_pin_refused_total.
func TestPINRefusedCounted(t *testing.T) {
	v := newVisitor(1)
	m := metrics.New("lab-park", nil, time.Now)
	p := newParkWith(t, nil, func(o *Options) { o.Events = m }, v)
	p.sendPIN(t, v, "33123456")
	_, pin := p.sms.last(t)
	p.lim.set(func(l *fakeLimits) { l.pin = limits.Decision{Reason: limits.PINBackoff, RetryAfter: time.Minute} })
	expect(t, "back-off", p.enterPIN(t, v, pin), http.StatusTooManyRequests, "limit-pin-backoff")
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if want := `parkportal_pin_refused_total{reason="pin-backoff",site="lab-park"} 1`; !strings.Contains(w.Body.String(), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}
