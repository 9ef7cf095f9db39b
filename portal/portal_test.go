package portal

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/limits"
	"github.com/parkwifi/parkportal/session"
	"github.com/parkwifi/parkportal/sms"
	"github.com/parkwifi/parkportal/store"
)

// req is one request as a browser on the portal host would send it.
type req struct {
	method, path string
	form         url.Values
	from         visitor
	host         string // portalHost unless set
	origin       string // portalOrigin for POST unless set; "-" for none
	header       http.Header
	cookies      []*http.Cookie
	body         string // raw body instead of form
}

func (p *park) do(t testing.TB, r req) *httptest.ResponseRecorder {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	var body io.Reader
	switch {
	case r.body != "":
		body = strings.NewReader(r.body)
	case r.form != nil:
		body = strings.NewReader(r.form.Encode())
	}
	hr := httptest.NewRequest(r.method, "/", body)
	u, err := url.ParseRequestURI(r.path)
	if err != nil {
		t.Fatalf("bad test path %q: %v", r.path, err)
	}
	hr.URL, hr.RequestURI = u, r.path
	hr.Host = portalHost
	if r.host != "" {
		hr.Host = r.host
	}
	hr.RemoteAddr = r.from.ip.String() + ":51234"
	if body != nil {
		hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if r.method == http.MethodPost && r.origin != "-" {
		o := portalOrigin
		if r.origin != "" {
			o = r.origin
		}
		hr.Header.Set("Origin", o)
	}
	for k, vs := range r.header {
		for _, v := range vs {
			hr.Header.Add(k, v)
		}
	}
	for _, c := range r.cookies {
		hr.AddCookie(c)
	}
	w := httptest.NewRecorder()
	p.srv.ServeHTTP(w, hr)
	return w
}

func (p *park) get(t testing.TB, v visitor, path string) *httptest.ResponseRecorder {
	t.Helper()
	return p.do(t, req{path: path, from: v})
}

func (p *park) post(t testing.TB, v visitor, path string, form url.Values) *httptest.ResponseRecorder {
	t.Helper()
	return p.do(t, req{method: http.MethodPost, path: path, from: v, form: form})
}

func (p *park) sendPIN(t testing.TB, v visitor, number string) *httptest.ResponseRecorder {
	t.Helper()
	return p.post(t, v, "/sms", url.Values{"phone": {number}})
}

func (p *park) enterPIN(t testing.TB, v visitor, pin string) *httptest.ResponseRecorder {
	t.Helper()
	return p.post(t, v, "/pin", url.Values{"pin": {pin}})
}

var (
	dataCode = regexp.MustCompile(`data-code="([^"]*)"`)
	htmlTag  = regexp.MustCompile(`<html lang="([a-z]+)" dir="([a-z]+)">`)
)

// problemCode returns the data-code of the page's problem box, or "".
func problemCode(w *httptest.ResponseRecorder) string {
	m := dataCode.FindStringSubmatch(w.Body.String())
	if m == nil {
		return ""
	}
	return m[1]
}

// expect checks a response's status and problem code ("" for none).
func expect(t testing.TB, what string, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if w.Code != status || problemCode(w) != code {
		t.Fatalf("%s: status %d, problem %q; want %d, %q\n%s", what, w.Code, problemCode(w), status, code, w.Body.String())
	}
}

// pageLang returns the lang and dir attributes of the page.
func pageLang(t testing.TB, w *httptest.ResponseRecorder) (string, string) {
	t.Helper()
	m := htmlTag.FindStringSubmatch(w.Body.String())
	if m == nil {
		t.Fatalf("no <html lang dir> in\n%s", w.Body.String())
	}
	return m[1], m[2]
}

// otherPIN returns a valid PIN different from pin.
func otherPIN(pin string) string {
	return fmt.Sprintf("%d", (pin[0]-'0'+1)%10) + pin[1:]
}

func TestRedirectsOtherHosts(t *testing.T) {
	v := newVisitor(1)
	p := newPark(t, v)
	hosts := []string{"evil.example", "captive.apple.com", "connectivitycheck.gstatic.com", "198.51.100.1", "198.51.100.1:80", "198.51.100.1:2050.evil.example", "203.0.113.10"}
	paths := []string{"/", "//evil.example/", "/generate_204", "/hotspot-detect.html", "/connecttest.txt", "/canonical.html", "/?next=http://evil.example/", "/%0d%0aSet-Cookie:x=1", "/\\evil.example"}
	for _, host := range hosts {
		for _, path := range paths {
			for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodHead} {
				w := p.do(t, req{method: method, path: path, host: host, from: v, origin: "-"})
				if w.Code != http.StatusFound {
					t.Fatalf("%s %s%s: status %d, want 302", method, host, path, w.Code)
				}
				if loc := w.Header().Get("Location"); loc != "http://198.51.100.1:2050/" {
					t.Fatalf("%s %s%s: Location %q, want the portal URL", method, host, path, loc)
				}
				if h := w.Header().Get("Set-Cookie"); h != "" {
					t.Fatalf("%s %s%s: Set-Cookie %q on a redirect", method, host, path, h)
				}
			}
		}
	}
	if p.sms.count() != 0 {
		t.Errorf("a redirected POST sent an SMS")
	}
}

func TestPortalHostPathsStayLocal(t *testing.T) {
	v := newVisitor(1)
	p := newPark(t, v)
	for _, path := range []string{"//evil.example/", "///evil.example/", "/./evil.example", "/a/../evil.example", "/unknown", "/generate_204", "/static/../sms"} {
		w := p.get(t, v, path)
		if w.Code >= 500 {
			t.Fatalf("GET %s: status %d", path, w.Code)
		}
		loc := w.Header().Get("Location")
		if loc == "" {
			continue
		}
		u, err := url.Parse(loc)
		if err != nil || strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, `/\`) || (u.Host != "" && u.Host != portalHost) {
			t.Errorf("GET %s on the portal host redirects to %q: off-site", path, loc)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	v := newVisitor(1)
	p := newPark(t, v)
	w := p.get(t, v, "/")
	for k, want := range map[string]string{
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "same-origin",
		"Content-Type":           "text/html; charset=utf-8",
	} {
		if got := w.Header().Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "form-action 'self'") {
		t.Errorf("CSP = %q", csp)
	}
	css := p.get(t, v, "/static/style.css")
	if css.Code != http.StatusOK || !strings.HasPrefix(css.Header().Get("Content-Type"), "text/css") {
		t.Errorf("style.css: %d %q", css.Code, css.Header().Get("Content-Type"))
	}
}

func TestSplashLanguages(t *testing.T) {
	v := newVisitor(1)
	p := newPark(t, v)

	w := p.get(t, v, "/")
	expect(t, "splash", w, http.StatusOK, "")
	if lang, dir := pageLang(t, w); lang != "ar" || dir != "rtl" {
		t.Errorf("default page lang=%s dir=%s, want ar rtl", lang, dir)
	}
	if !strings.Contains(w.Body.String(), "حديقة المختبر") || !strings.Contains(w.Body.String(), `href="/?lang=en"`) {
		t.Errorf("Arabic splash lacks the Arabic park name or the English link")
	}

	w = p.get(t, v, "/?lang=en")
	if lang, dir := pageLang(t, w); lang != "en" || dir != "ltr" {
		t.Errorf("?lang=en page lang=%s dir=%s", lang, dir)
	}
	if !strings.Contains(w.Body.String(), "Lab Park") {
		t.Errorf("English splash lacks the English park name")
	}
	var langCookie *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == "lang" {
			langCookie = c
		}
	}
	if langCookie == nil || langCookie.Value != "en" || !langCookie.HttpOnly {
		t.Fatalf("?lang=en set cookie %+v", langCookie)
	}
	w = p.do(t, req{path: "/", from: v, cookies: []*http.Cookie{langCookie}})
	if lang, _ := pageLang(t, w); lang != "en" {
		t.Errorf("with the lang cookie: page in %s, want en", lang)
	}
	w = p.do(t, req{path: "/?lang=ar", from: v, cookies: []*http.Cookie{langCookie}})
	if lang, _ := pageLang(t, w); lang != "ar" {
		t.Errorf("?lang=ar with an en cookie: page in %s, want ar", lang)
	}

	for al, want := range map[string]string{
		"en-US,en;q=0.9":                 "en",
		"EN":                             "en",
		"fr-FR, en;q=0.5":                "en",
		"ar-QA,en;q=0.8":                 "ar",
		"fr, de":                         "ar",
		"":                               "ar",
		"hi, en-GB;q=0.1":                "en",
		strings.Repeat("x", 300) + ",en": "ar", // beyond the 256 bytes read
	} {
		w := p.do(t, req{path: "/", from: v, header: http.Header{"Accept-Language": {al}}})
		if lang, _ := pageLang(t, w); lang != want {
			t.Errorf("Accept-Language %.40q: page in %s, want %s", al, lang, want)
		}
	}
	w = p.do(t, req{path: "/?lang=xx", from: v, header: http.Header{"Accept-Language": {"en"}}})
	if lang, _ := pageLang(t, w); lang != "en" || w.Header().Get("Set-Cookie") != "" {
		t.Errorf("?lang=xx: page in %s, cookie %q", lang, w.Header().Get("Set-Cookie"))
	}
}

func TestBadNumbers(t *testing.T) {
	v := newVisitor(1)
	p := newPark(t, v)
	cases := []struct {
		number string
		status int
		code   string
	}{
		{"123", http.StatusBadRequest, "malformed-number"},
		{"", http.StatusBadRequest, "malformed-number"},
		{"hello", http.StatusBadRequest, "malformed-number"},
		{strings.Repeat("3", 100), http.StatusBadRequest, "malformed-number"},
		{"44123456", http.StatusForbidden, "number-not-allowed"}, // landline
		{"+447400123456", http.StatusForbidden, "number-not-allowed"},
		{"+12025550123", http.StatusForbidden, "number-not-allowed"},
	}
	for _, c := range cases {
		for _, lang := range []string{"ar", "en"} {
			w := p.post(t, v, "/sms", url.Values{"phone": {c.number}, "lang": {lang}})
			expect(t, fmt.Sprintf("number %q (%s)", c.number, lang), w, c.status, c.code)
			body := w.Body.String()
			pr := map[string]*problem{"malformed-number": errMalformedNumber, "number-not-allowed": errNumberNotAllowed}[c.code]
			if !strings.Contains(body, pr.AR) || !strings.Contains(body, pr.EN) {
				t.Errorf("number %q (%s): problem not shown in both languages", c.number, lang)
			}
			if l, _ := pageLang(t, w); l != lang {
				t.Errorf("number %q: page in %s, want %s", c.number, l, lang)
			}
		}
	}
	if p.sms.count() != 0 {
		t.Errorf("%d SMS sent to bad numbers", p.sms.count())
	}
	if _, err := p.st.Pending(v.mac.String()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("pending PIN after bad numbers: %v", err)
	}
}

func TestLoginFlow(t *testing.T) {
	v, other := newVisitor(1), newVisitor(2)
	p := newPark(t, v, other)

	expect(t, "splash", p.get(t, v, "/"), http.StatusOK, "")

	w := p.sendPIN(t, v, "٣٣١٢ ٣٤٥٦")
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/?lang=ar" {
		t.Fatalf("POST /sms: %d %q\n%s", w.Code, w.Header().Get("Location"), w.Body.String())
	}
	msg, pin := p.sms.last(t)
	if msg.To != "+97433123456" {
		t.Errorf("SMS to %q, want +97433123456", msg.To)
	}
	if !strings.Contains(msg.Body, "حديقة المختبر") || !strings.Contains(msg.Body, "صالح 5 دقائق.") {
		t.Errorf("SMS body %q lacks the park name or the validity", msg.Body)
	}
	pend, err := p.st.Pending(v.mac.String())
	if err != nil || pend.Phone != "+97433123456" || !pend.Expires.Equal(p.clock.Now().Add(5*time.Minute)) {
		t.Fatalf("pending = %+v, %v", pend, err)
	}
	if strings.Contains(string(pend.Hash), pin) {
		t.Error("the PIN is stored in clear")
	}

	w = p.get(t, v, "/?lang=ar")
	expect(t, "PIN page", w, http.StatusOK, "")
	if !strings.Contains(w.Body.String(), `action="/pin"`) || !strings.Contains(w.Body.String(), "974••••3456") {
		t.Errorf("PIN page lacks the form or the masked number:\n%s", w.Body.String())
	}
	if strings.Contains(w.Body.String(), pin) {
		t.Error("the PIN page shows the PIN")
	}

	// A malformed entry costs no try.
	expect(t, "malformed PIN", p.enterPIN(t, v, "12ab"), http.StatusBadRequest, "malformed-pin")
	w = p.enterPIN(t, v, otherPIN(pin))
	expect(t, "wrong PIN", w, http.StatusBadRequest, "wrong-pin")
	if !strings.Contains(w.Body.String(), "Wrong code. 4 tries left.") || !strings.Contains(w.Body.String(), "الرمز غير صحيح. بقيت 4 محاولات.") {
		t.Errorf("wrong PIN page does not say 4 tries left in both languages")
	}
	// The other device cannot use this device's PIN.
	expect(t, "PIN from another device", p.enterPIN(t, other, pin), http.StatusBadRequest, "no-pending-pin")

	p.clock.Advance(2 * time.Minute)
	// Typed in Arabic-Indic digits with a space.
	arabic := strings.Map(func(r rune) rune { return r - '0' + '٠' }, pin[:3]) + " " + pin[3:]
	w = p.enterPIN(t, v, arabic)
	expect(t, "right PIN", w, http.StatusOK, "")
	if !strings.Contains(w.Body.String(), `id="connected"`) || !strings.Contains(w.Body.String(), `data-seconds="14400"`) || !strings.Contains(w.Body.String(), ">4 ساعات<") {
		t.Errorf("status page after login:\n%s", w.Body.String())
	}
	if !p.gate.Has(v.ip, v.mac) || p.gate.Len() != 1 {
		t.Errorf("gate does not hold exactly %s %s", v.ip, v.mac)
	}
	active, _ := p.st.ActiveSessions()
	if len(active) != 1 || active[0].Phone != "+97433123456" || active[0].MAC.String() != v.mac.String() || active[0].Lang != "ar" {
		t.Fatalf("active sessions = %+v", active)
	}

	p.clock.Advance(90 * time.Minute)
	w = p.get(t, v, "/?lang=en")
	expect(t, "status", w, http.StatusOK, "")
	if !strings.Contains(w.Body.String(), ">2 hours and 30 minutes<") || !strings.Contains(w.Body.String(), `data-seconds="9000"`) {
		t.Errorf("status page 90 min later:\n%s", w.Body.String())
	}

	// Reuse of the PIN, from the same device or another.
	expect(t, "PIN reuse", p.enterPIN(t, v, pin), http.StatusBadRequest, "no-pending-pin")
	expect(t, "PIN reuse elsewhere", p.enterPIN(t, other, pin), http.StatusBadRequest, "no-pending-pin")

	// The second device stays out.
	w = p.get(t, other, "/")
	expect(t, "second device", w, http.StatusOK, "")
	if strings.Contains(w.Body.String(), `id="connected"`) || p.gate.Has(other.ip, other.mac) || p.gate.Len() != 1 {
		t.Errorf("second device let out")
	}
	expect(t, "second device logout", p.post(t, other, "/logout", nil), http.StatusOK, "")
	if !p.gate.Has(v.ip, v.mac) {
		t.Errorf("another device's logout ended the first device's session")
	}

	// Logout.
	w = p.post(t, v, "/logout", url.Values{"lang": {"en"}})
	expect(t, "logout", w, http.StatusOK, "")
	if !strings.Contains(w.Body.String(), "You have logged out.") {
		t.Errorf("logout page lacks the notice:\n%s", w.Body.String())
	}
	if p.gate.Len() != 0 {
		t.Errorf("gate still holds a client after logout")
	}
	s, _ := p.st.Session(active[0].ID)
	if s.State != store.Ended || s.EndReason != store.ReasonLogout {
		t.Errorf("session after logout = %+v", s)
	}
	expect(t, "splash after logout", p.get(t, v, "/"), http.StatusOK, "")

	logs := p.log.String()
	if strings.Contains(logs, pin) {
		t.Errorf("the PIN %s appears in the log:\n%s", pin, logs)
	}
	if strings.Contains(logs, "33123456") || strings.Contains(logs, "3312 3456") {
		t.Errorf("the full phone number appears in the log:\n%s", logs)
	}
	if !strings.Contains(logs, "PIN sent") || !strings.Contains(logs, "session started") {
		t.Errorf("log lacks the expected events:\n%s", logs)
	}
}

func TestEnglishSMS(t *testing.T) {
	v := newVisitor(1)
	p := newPark(t, v)
	w := p.post(t, v, "/sms", url.Values{"phone": {"+974 5512 3456"}, "lang": {"en"}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/?lang=en" {
		t.Fatalf("POST /sms: %d %q", w.Code, w.Header().Get("Location"))
	}
	msg, _ := p.sms.last(t)
	if msg.To != "+97455123456" || !strings.Contains(msg.Body, "Lab Park") || !strings.Contains(msg.Body, "Valid for 5 minutes.") || strings.Contains(msg.Body, "حديقة") {
		t.Errorf("SMS = %+v", msg)
	}
}

func TestTooManyTries(t *testing.T) {
	v := newVisitor(1)
	p := newPark(t, v)
	p.sendPIN(t, v, "33123456")
	_, pin := p.sms.last(t)
	wrong := otherPIN(pin)
	for i := 1; i < 5; i++ {
		w := p.enterPIN(t, v, wrong)
		expect(t, fmt.Sprintf("wrong try %d", i), w, http.StatusBadRequest, "wrong-pin")
		// Arabic has a form for 3–10, two and one; English for one.
		wantEN := map[int]string{1: "4 tries left.", 2: "3 tries left.", 3: "2 tries left.", 4: "1 try left."}[i]
		wantAR := map[int]string{1: "بقيت 4 محاولات.", 2: "بقيت 3 محاولات.", 3: "بقيت محاولتان.", 4: "بقيت محاولة واحدة."}[i]
		for _, want := range []string{wantEN, wantAR} {
			if !strings.Contains(w.Body.String(), want) {
				t.Errorf("try %d: page lacks %q", i, want)
			}
		}
	}
	expect(t, "fifth wrong try", p.enterPIN(t, v, wrong), http.StatusTooManyRequests, "too-many-tries")
	if _, err := p.st.Pending(v.mac.String()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PIN not void after too many tries: %v", err)
	}
	expect(t, "right PIN after the limit", p.enterPIN(t, v, pin), http.StatusBadRequest, "no-pending-pin")
	if p.gate.Len() != 0 {
		t.Error("let out after too many tries")
	}
	if strings.Contains(p.log.String(), pin) {
		t.Error("the PIN appears in the log")
	}
	// A new PIN works.
	p.sendPIN(t, v, "33123456")
	_, pin2 := p.sms.last(t)
	expect(t, "new PIN", p.enterPIN(t, v, pin2), http.StatusOK, "")
}

func TestExpiredPIN(t *testing.T) {
	v := newVisitor(1)
	p := newPark(t, v)
	p.sendPIN(t, v, "33123456")
	_, pin := p.sms.last(t)
	p.clock.Advance(5*time.Minute - time.Second)
	expect(t, "PIN page before expiry", p.get(t, v, "/"), http.StatusOK, "")
	p.clock.Advance(time.Second)
	w := p.get(t, v, "/")
	if strings.Contains(w.Body.String(), `action="/pin"`) {
		t.Error("the PIN page is shown for an expired PIN")
	}
	expect(t, "expired PIN", p.enterPIN(t, v, pin), http.StatusBadRequest, "expired-pin")
	expect(t, "expired PIN again", p.enterPIN(t, v, pin), http.StatusBadRequest, "no-pending-pin")
	if p.gate.Len() != 0 {
		t.Error("let out with an expired PIN")
	}
}

func TestResendReplacesPIN(t *testing.T) {
	v := newVisitor(1)
	p := newPark(t, v)
	p.sendPIN(t, v, "33123456")
	_, first := p.sms.last(t)
	p.enterPIN(t, v, otherPIN(first))
	p.sendPIN(t, v, "+97433123456")
	_, second := p.sms.last(t)
	if first == second {
		t.Skip("the deterministic stream gave the same PIN twice")
	}
	pend, _ := p.st.Pending(v.mac.String())
	if pend.Tries != 0 {
		t.Errorf("resent PIN starts with %d tries", pend.Tries)
	}
	expect(t, "old PIN", p.enterPIN(t, v, first), http.StatusBadRequest, "wrong-pin")
	expect(t, "new PIN", p.enterPIN(t, v, second), http.StatusOK, "")
}

func TestCancel(t *testing.T) {
	v := newVisitor(1)
	p := newPark(t, v)
	p.sendPIN(t, v, "33123456")
	_, pin := p.sms.last(t)
	w := p.post(t, v, "/cancel", url.Values{"lang": {"en"}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/?lang=en" {
		t.Fatalf("cancel: %d %q", w.Code, w.Header().Get("Location"))
	}
	expect(t, "PIN after cancel", p.enterPIN(t, v, pin), http.StatusBadRequest, "no-pending-pin")
}

func TestDeviceNotVisible(t *testing.T) {
	v, unknown := newVisitor(1), newVisitor(9)
	p := newPark(t, v)
	expect(t, "unknown device splash", p.get(t, unknown, "/"), http.StatusBadRequest, "device-not-visible")
	expect(t, "unknown device SMS", p.sendPIN(t, unknown, "33123456"), http.StatusBadRequest, "device-not-visible")
	expect(t, "unknown device PIN", p.enterPIN(t, unknown, "123456"), http.StatusBadRequest, "device-not-visible")
	expect(t, "unknown device logout", p.post(t, unknown, "/logout", nil), http.StatusBadRequest, "device-not-visible")

	p.neigh.setErr(errNoNeighbour)
	w := p.sendPIN(t, v, "33123456")
	expect(t, "lookup error", w, http.StatusBadRequest, "device-not-visible")
	if !strings.Contains(w.Body.String(), errNoDevice.AR) || !strings.Contains(w.Body.String(), errNoDevice.EN) {
		t.Error("device-not-visible not shown in both languages")
	}
	if p.sms.count() != 0 {
		t.Errorf("SMS sent for an unseen device")
	}
}

func TestSMSFailures(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"permanent", &sms.Error{Kind: sms.Permanent, Code: "21211", Provider: "twilio"}, http.StatusBadRequest, "sms-undeliverable"},
		{"wrapped permanent", fmt.Errorf("retrying: %w", &sms.Error{Kind: sms.Permanent}), http.StatusBadRequest, "sms-undeliverable"},
		{"temporary", &sms.Error{Kind: sms.Temporary, Code: "20429", Provider: "twilio"}, http.StatusServiceUnavailable, "sms-unavailable"},
		// Our account refused (no credit, bad token): try later, never
		// "try another number".
		{"operator fault", &sms.Error{Kind: sms.Operator, Code: "http-402", Provider: "http"}, http.StatusServiceUnavailable, "sms-paused"},
		{"breaker open on an operator fault", fmt.Errorf("x: %w", &sms.Error{Kind: sms.Operator, Code: "20003", Err: sms.ErrCircuitOpen}), http.StatusServiceUnavailable, "sms-paused"},
		{"unclassified", errors.New("connection reset"), http.StatusServiceUnavailable, "sms-unavailable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := newVisitor(1)
			p := newPark(t, v)
			p.sms.setErr(c.err)
			for _, lang := range []string{"ar", "en"} {
				w := p.post(t, v, "/sms", url.Values{"phone": {"33123456"}, "lang": {lang}})
				expect(t, "send", w, c.status, c.code)
				if c.code == "sms-paused" && (strings.Contains(w.Body.String(), "another number") || !strings.Contains(w.Body.String(), "try again later")) {
					t.Errorf("operator fault page does not say to try later:\n%s", w.Body.String())
				}
				if l, _ := pageLang(t, w); l != lang {
					t.Errorf("page in %s, want %s", l, lang)
				}
			}
			if _, err := p.st.Pending(v.mac.String()); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("pending PIN left after a failed send: %v", err)
			}
			if strings.Contains(p.get(t, v, "/").Body.String(), `action="/pin"`) {
				t.Error("PIN page shown after a failed send")
			}
			p.sms.setErr(nil)
			p.sendPIN(t, v, "33123456")
			_, pin := p.sms.last(t)
			expect(t, "after recovery", p.enterPIN(t, v, pin), http.StatusOK, "")
		})
	}
}

func TestCrossOriginRefused(t *testing.T) {
	v := newVisitor(1)
	p := newPark(t, v)
	for _, path := range []string{"/sms", "/pin", "/cancel", "/logout"} {
		w := p.do(t, req{method: http.MethodPost, path: path, from: v, origin: "http://evil.example", form: url.Values{"phone": {"33123456"}, "pin": {"123456"}}})
		if w.Code != http.StatusForbidden {
			t.Errorf("cross-origin POST %s: %d, want 403", path, w.Code)
		}
		w = p.do(t, req{method: http.MethodPost, path: path, from: v, origin: "-", header: http.Header{"Sec-Fetch-Site": {"cross-site"}}, form: url.Values{"phone": {"33123456"}}})
		if w.Code != http.StatusForbidden {
			t.Errorf("Sec-Fetch-Site: cross-site POST %s: %d, want 403", path, w.Code)
		}
	}
	if p.sms.count() != 0 {
		t.Error("a cross-origin POST sent an SMS")
	}
	// Same-origin by Sec-Fetch-Site, and no Origin at all (not a browser),
	// both pass.
	w := p.do(t, req{method: http.MethodPost, path: "/sms", from: v, origin: "-", header: http.Header{"Sec-Fetch-Site": {"same-origin"}}, form: url.Values{"phone": {"33123456"}}})
	if w.Code != http.StatusSeeOther {
		t.Errorf("same-origin POST: %d", w.Code)
	}

	// A logged-in visitor is not logged out by another site.
	_, pin := p.sms.last(t)
	expect(t, "login", p.enterPIN(t, v, pin), http.StatusOK, "")
	p.do(t, req{method: http.MethodPost, path: "/logout", from: v, origin: "http://evil.example"})
	if !p.gate.Has(v.ip, v.mac) {
		t.Error("cross-origin POST /logout logged the visitor out")
	}
}

func TestOversizedBody(t *testing.T) {
	v := newVisitor(1)
	p := newPark(t, v)
	big := url.Values{"phone": {"33123456"}, "pin": {"123456"}, "pad": {strings.Repeat("x", 10<<10)}}.Encode()
	for _, path := range []string{"/sms", "/pin", "/cancel", "/logout"} {
		w := p.do(t, req{method: http.MethodPost, path: path, from: v, body: big})
		if w.Code >= 500 {
			t.Errorf("oversized POST %s: %d", path, w.Code)
		}
	}
	w := p.do(t, req{method: http.MethodPost, path: "/sms", from: v, body: big})
	expect(t, "oversized /sms", w, http.StatusBadRequest, "bad-request")
	if p.sms.count() != 0 {
		t.Error("an oversized request sent an SMS")
	}
}

func TestActivateFailureKeepsPIN(t *testing.T) {
	v := newVisitor(1)
	p := newPark(t, v)
	p.sendPIN(t, v, "33123456")
	_, pin := p.sms.last(t)
	p.gate.FailAllow(errors.New("netlink: no buffer space"))
	w := p.enterPIN(t, v, pin)
	expect(t, "gate failure", w, http.StatusInternalServerError, "internal")
	if active, _ := p.st.ActiveSessions(); len(active) != 0 {
		t.Errorf("active after a gate failure: %+v", active)
	}
	// The page says "nothing was changed. Please try again": trying the
	// same PIN again must work once the gate recovers.
	p.gate.FailAllow(nil)
	expect(t, "retry after gate failure", p.enterPIN(t, v, pin), http.StatusOK, "")
}

func TestRebindOnNewAddress(t *testing.T) {
	v := newVisitor(1)
	p := newPark(t, v)
	p.sendPIN(t, v, "33123456")
	_, pin := p.sms.last(t)
	expect(t, "login", p.enterPIN(t, v, pin), http.StatusOK, "")

	// DHCP gave the device a new address; the old one is still in use by
	// it: no move, and the new address is not let out.
	moved := visitor{ip: newVisitor(50).ip, mac: v.mac}
	p.neigh.set(moved.ip, moved.mac)
	p.neigh.mu.Lock()
	p.neigh.inUse[gateKey(v.ip, v.mac)] = true
	p.neigh.mu.Unlock()
	w := p.get(t, moved, "/")
	if strings.Contains(w.Body.String(), `id="connected"`) || p.gate.Has(moved.ip, moved.mac) {
		t.Error("session moved while the old address is in use")
	}
	// Once the old address is gone, the session follows the device.
	p.neigh.mu.Lock()
	p.neigh.inUse[gateKey(v.ip, v.mac)] = false
	p.neigh.mu.Unlock()
	w = p.get(t, moved, "/")
	if !strings.Contains(w.Body.String(), `id="connected"`) {
		t.Errorf("status not shown at the new address:\n%s", w.Body.String())
	}
	if !p.gate.Has(moved.ip, moved.mac) || p.gate.Has(v.ip, v.mac) {
		t.Errorf("gate did not follow the device")
	}
}

// TestPINInputAcceptsWhatCleanAccepts: the browser validates the PIN
// field's pattern before submitting, so every form Clean accepts must
// also pass the pattern, or a visitor typing it is blocked in the browser.
func TestPINInputAcceptsWhatCleanAccepts(t *testing.T) {
	v := newVisitor(1)
	p := newPark(t, v)
	p.sendPIN(t, v, "33123456")
	body := p.get(t, v, "/").Body.String()
	m := regexp.MustCompile(`<input id="pin"[^>]* pattern="([^"]*)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no pattern on the PIN input:\n%s", body)
	}
	re, err := regexp.Compile(`^(?:` + m[1] + `)$`)
	if err != nil {
		t.Fatalf("pattern %q: %v", m[1], err)
	}
	for _, in := range []string{"123456", "123 456", "١٢٣٤٥٦", "۱۲۳۴۵۶", "۱۲۳ ۴۵۶"} {
		if !re.MatchString(in) {
			t.Errorf("pattern %q refuses %q, which the server accepts", m[1], in)
		}
	}
}

func TestSMSLimits(t *testing.T) {
	v := newVisitor(1)
	p := newPark(t, v)
	p.lim.set(func(l *fakeLimits) {
		l.sms = limits.Decision{Reason: limits.ResendGap, RetryAfter: 40 * time.Second}
	})
	w := p.post(t, v, "/sms", url.Values{"phone": {"33123456"}, "lang": {"en"}})
	expect(t, "resend gap", w, http.StatusTooManyRequests, "limit-resend-gap")
	if !strings.Contains(w.Body.String(), "40 s") || !strings.Contains(w.Body.String(), "40 ثانية") {
		t.Errorf("limit page does not say when to retry in both languages")
	}
	if p.sms.count() != 0 {
		t.Error("SMS sent past the limit")
	}
	p.lim.set(func(l *fakeLimits) { l.sms = limits.Decision{}; l.err = errors.New("bolt: closed") })
	expect(t, "limiter error", p.sendPIN(t, v, "33123456"), http.StatusInternalServerError, "internal")
	if p.sms.count() != 0 {
		t.Error("SMS sent though the limits could not be checked")
	}
}

func TestPINBackoff(t *testing.T) {
	v := newVisitor(1)
	p := newPark(t, v)
	p.sendPIN(t, v, "33123456")
	_, pin := p.sms.last(t)
	p.lim.set(func(l *fakeLimits) {
		l.pin = limits.Decision{Reason: limits.PINBackoff, RetryAfter: 5 * time.Minute}
	})
	expect(t, "back-off", p.enterPIN(t, v, pin), http.StatusTooManyRequests, "limit-pin-backoff")
	if ev := p.ev.events(); !slices.Contains(ev, "pin-refused pin-backoff") {
		t.Errorf("a try refused by the back-off is not counted; events %q", ev)
	}
	if pend, err := p.st.Pending(v.mac.String()); err != nil || pend.Tries != 0 {
		t.Errorf("a refused try touched the PIN: %+v, %v", pend, err)
	}
	p.lim.set(func(l *fakeLimits) { l.pin = limits.Decision{} })
	expect(t, "after back-off", p.enterPIN(t, v, pin), http.StatusOK, "")
	if p.lim.resets != 1 {
		t.Errorf("ResetPIN called %d times after a login, want 1", p.lim.resets)
	}
}

func TestCentralAuthorisation(t *testing.T) {
	v := newVisitor(1)
	cases := []struct {
		name   string
		grant  *session.Grant
		err    error
		status int
		code   string
	}{
		{"defaults", nil, nil, http.StatusOK, ""},
		{"grant", &session.Grant{SessionTimeout: time.Hour, RateDown: 2e6}, nil, http.StatusOK, ""},
		{"rejected", nil, &Rejected{Reason: "blocked by staff <b>now</b>"}, http.StatusForbidden, "number-blocked"},
		{"unavailable", nil, errors.New("radius: no answer"), http.StatusServiceUnavailable, "auth-unavailable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			auth := &fakeAuth{grant: c.grant, err: c.err}
			p := newParkWith(t, auth, nil, v)
			p.sendPIN(t, v, "33123456")
			_, pin := p.sms.last(t)
			w := p.enterPIN(t, v, pin)
			expect(t, "PIN", w, c.status, c.code)
			// The server's Reply-Message reaches the visitor, escaped,
			// under the bilingual refusal.
			if note := `id="problem-note">blocked by staff &lt;b&gt;now&lt;/b&gt;</p>`; (c.name == "rejected") != strings.Contains(w.Body.String(), note) {
				t.Errorf("Reply-Message shown: %v, want %v:\n%s", !(c.name == "rejected"), c.name == "rejected", w.Body.String())
			}
			if want := "+97433123456 " + v.mac.String() + " " + v.ip.String(); len(auth.asked) != 1 || auth.asked[0] != want {
				t.Errorf("Authorize asked %q, want [%q]", auth.asked, want)
			}
			active, _ := p.st.ActiveSessions()
			if c.status != http.StatusOK {
				if len(active) != 0 || p.gate.Len() != 0 {
					t.Errorf("let out after %s", c.name)
				}
				return
			}
			if len(active) != 1 || !p.gate.Has(v.ip, v.mac) {
				t.Fatalf("not let out: %+v", active)
			}
			if c.grant != nil && (active[0].Expires.Sub(active[0].Start) != time.Hour || active[0].RateDown != 2e6 || active[0].RateUp != 8e6) {
				t.Errorf("grant not applied: %+v", active[0])
			}
		})
	}
}

func TestTermsRequired(t *testing.T) {
	v := newVisitor(1)
	p := newParkWith(t, nil, func(o *Options) {
		o.Site.RequireTerms, o.Site.TermsURL = true, "http://198.51.100.1:2050/static/terms.html"
	}, v)
	if body := p.get(t, v, "/").Body.String(); !strings.Contains(body, `name="terms"`) {
		t.Errorf("splash lacks the terms checkbox")
	}
	expect(t, "no terms", p.sendPIN(t, v, "33123456"), http.StatusBadRequest, "terms-required")
	if p.sms.count() != 0 {
		t.Error("SMS sent without accepting the terms")
	}
	w := p.post(t, v, "/sms", url.Values{"phone": {"33123456"}, "terms": {"on"}})
	if w.Code != http.StatusSeeOther || p.sms.count() != 1 {
		t.Errorf("with terms: %d, %d SMS", w.Code, p.sms.count())
	}
}

func TestCaptiveAPI(t *testing.T) {
	v, unknown := newVisitor(1), newVisitor(9)
	p := newParkWith(t, nil, func(o *Options) { o.Site.VenueURL = "http://198.51.100.1:2050/venue" }, v)
	api := func(from visitor) map[string]any {
		t.Helper()
		w := p.get(t, from, "/api/captive")
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/captive+json" || w.Header().Get("Cache-Control") != "private" {
			t.Fatalf("API: %d %q %q", w.Code, w.Header().Get("Content-Type"), w.Header().Get("Cache-Control"))
		}
		var m map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatalf("API body %q: %v", w.Body.String(), err)
		}
		return m
	}
	m := api(v)
	if m["captive"] != true || m["user-portal-url"] != "http://198.51.100.1:2050/" || m["venue-info-url"] != "http://198.51.100.1:2050/venue" {
		t.Errorf("captive device: %v", m)
	}
	if m := api(unknown); m["captive"] != true {
		t.Errorf("unseen device: %v", m)
	}
	p.sendPIN(t, v, "33123456")
	_, pin := p.sms.last(t)
	p.enterPIN(t, v, pin)
	p.clock.Advance(time.Hour)
	m = api(v)
	if m["captive"] != false || m["seconds-remaining"] != float64(3*3600) {
		t.Errorf("released device: %v", m)
	}
	// The same IP with another MAC (a spoofer) is still captive.
	p.neigh.set(v.ip, newVisitor(7).mac)
	if m := api(v); m["captive"] != true {
		t.Errorf("other MAC on a released IP: %v", m)
	}
}

// FuzzPortalForms sends random form values to random paths as a device
// on the portal host: whatever arrives, the portal answers without a 500
// and without panicking.
func FuzzPortalForms(f *testing.F) {
	f.Add("/sms", "33123456", "", "ar", true)
	f.Add("/sms", "٣٣١٢٣٤٥٦", "", "en", true)
	f.Add("/pin", "", "123456", "ar", true)
	f.Add("/pin", "", "١٢٣ ٤٥٦", "xx", true)
	f.Add("/pin", "", "12345678901234567890", "en", true)
	f.Add("/logout", "", "", "en", true)
	f.Add("/cancel", "+97433123456", "000000", "ar", true)
	f.Add("/?lang=en", "", "", "en", false)
	f.Add("//evil.example/", "", "", "", false)
	f.Add("/static/../sms", "33123456", "", "", true)
	f.Add("/api/captive", "", "", "", false)
	f.Add("/static/\x85", "", "0", "0", false) // once a 500 from the file server
	f.Add("/sms?lang=%ff", "\u202a+974 3312 3456\u202c", "", "\x00", true)
	v := newVisitor(1)
	p := newPark(f, v)
	p.st.DB().NoSync = true // many requests; durability is not under test
	f.Fuzz(func(t *testing.T, path, phone, pin, lang string, post bool) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		if _, err := url.ParseRequestURI(path); err != nil {
			return
		}
		r := req{path: path, from: v, form: url.Values{"phone": {phone}, "pin": {pin}, "lang": {lang}}}
		if post {
			r.method = http.MethodPost
		}
		w := p.do(t, r)
		if w.Code >= 500 {
			t.Fatalf("%s %q phone=%q pin=%q lang=%q: status %d\n%s", r.method, path, phone, pin, lang, w.Code, w.Body.String())
		}
		if loc := w.Header().Get("Location"); strings.HasPrefix(loc, "//") || strings.Contains(loc, "\n") || strings.Contains(loc, "\r") {
			t.Fatalf("%q: unsafe Location %q", path, loc)
		}
	})
}
