package admin

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/settings"
)

func TestPasswordHash(t *testing.T) {
	saveT, saveM := argonTime, argonMemory
	argonTime, argonMemory = 2, 19*1024
	defer func() { argonTime, argonMemory = saveT, saveM }()
	h1, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := HashPassword("correct horse battery")
	if h1 == h2 {
		t.Fatal("two hashes of one password are equal: salt missing")
	}
	if !strings.HasPrefix(h1, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q is not an argon2id PHC string with the intended cost", h1)
	}
	if !VerifyPassword(h1, "correct horse battery") || !VerifyPassword(h2, "correct horse battery") {
		t.Fatal("right password refused")
	}
	if VerifyPassword(h1, "correct horse batterY") {
		t.Fatal("wrong password accepted")
	}
	tampered := h1[:len(h1)-2] + "AA"
	for _, bad := range []string{"", "$argon2i$v=19$m=1,t=1,p=1$AA$AA", tampered, strings.Replace(h1, "m=19456", "m=99999999", 1)} {
		if VerifyPassword(bad, "correct horse battery") {
			t.Fatalf("accepted against %q", bad)
		}
	}
	if err := CheckPassword("short"); err == nil {
		t.Fatal("short password accepted")
	}
}

func TestConsoleCSRF(t *testing.T) {
	e := newEnv(t)
	b := e.login("operator")

	// No token in the form.
	resp := b.post("/sessions/s1/kick", url.Values{"csrf": {""}}, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("kick without CSRF token: %s", resp.Status)
	}
	// Right token, but the browser says the request came from another site.
	resp = b.post("/sessions/s1/kick", nil, map[string]string{"Sec-Fetch-Site": "cross-site"})
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site kick: %s", resp.Status)
	}
	resp = b.post("/sessions/s1/kick", nil, map[string]string{"Origin": "https://evil.example"})
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin kick: %s", resp.Status)
	}
	if k := e.sessions.Kicked(); len(k) != 0 {
		t.Fatalf("a refused request kicked %v", k)
	}
	// Same-origin with the token works.
	resp = b.post("/sessions/s1/kick", url.Values{"q": {"3312"}}, map[string]string{"Sec-Fetch-Site": "same-origin"})
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "ok=kicked") {
		t.Fatalf("kick: %s %s", resp.Status, resp.Header.Get("Location"))
	}
	if k := e.sessions.Kicked(); len(k) != 1 || k[0] != "s1" {
		t.Fatalf("kicked = %v", k)
	}
	// The API is protected the same way against a browser's cross-site POST.
	req, _ := http.NewRequest("POST", e.ts.URL+"/api/v1/sessions/s2/kick", nil)
	req.Header.Set("Authorization", "Bearer "+e.tokens[Operator])
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	r2, _ := http.DefaultClient.Do(req)
	r2.Body.Close()
	if r2.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site API call: %s", r2.Status)
	}
}

func TestConsoleRoles(t *testing.T) {
	e := newEnv(t)
	v := e.login("viewer")
	for _, p := range []string{"/", "/sessions", "/settings", "/audit"} {
		if body := v.get(p); !strings.Contains(body, `name="csrf"`) {
			t.Errorf("viewer cannot see %s", p)
		}
	}
	resp, _ := v.Get(e.ts.URL + "/accounts")
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("viewer on /accounts: %s", resp.Status)
	}
	for _, p := range []string{"/sessions/s1/kick", "/sessions/s1/extend", "/sessions/s1/rate", "/settings", "/accounts"} {
		resp := v.post(p, url.Values{"by": {"1h"}, "down": {"1mbit"}}, nil)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("viewer POST %s: %s", p, resp.Status)
		}
	}
	if strings.Contains(v.get("/sessions"), "/kick") {
		t.Error("viewer is shown kick buttons")
	}
	o := e.login("operator")
	resp = o.post("/settings", url.Values{"rate_down": {"1mbit"}}, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("operator saves settings: %s", resp.Status)
	}
	resp = o.post("/sessions/s2/extend", url.Values{"by": {"1h"}}, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || e.sessions.extended["s2"] != time.Hour {
		t.Errorf("operator extend: %s %v", resp.Status, e.sessions.extended)
	}
	// Not logged in: to the login page.
	resp, _ = http.Get(e.ts.URL + "/sessions")
	resp.Body.Close()
	if resp.Request.URL.Path != "/login" {
		t.Errorf("anonymous /sessions ended at %s", resp.Request.URL)
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t)
	try := func(name, pw string) int {
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.PostForm(e.ts.URL+"/login", url.Values{"name": {name}, "password": {pw}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := 0; i < 5; i++ {
		if c := try("admin", "wrong password!"); c != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, c)
		}
	}
	if c := try("admin", testPassword); c != http.StatusTooManyRequests {
		t.Fatalf("right password after 5 failures: %d, want 429", c)
	}
	// Other accounts from the same source still work until the source's
	// own limit (10) is reached; a successful login clears the source's
	// count, so the next person on the same loopback starts afresh.
	if c := try("viewer", testPassword); c != http.StatusSeeOther {
		t.Fatalf("other account: %d", c)
	}
	for i := 0; i < 9; i++ {
		if c := try(fmt.Sprintf("nobody%d", i), "wrong password!"); c != http.StatusUnauthorized {
			t.Fatalf("unknown account %d: %d", i, c)
		}
	}
	if c := try("viewer", testPassword); c != http.StatusSeeOther {
		t.Fatalf("after 9 failures since a success: %d, want a login (the success cleared the source)", c)
	}
	for i := 0; i < 10; i++ {
		try(fmt.Sprintf("nobody%d", i), "wrong password!")
	}
	if c := try("viewer", testPassword); c != http.StatusTooManyRequests {
		t.Fatalf("after 10 failures from one source: %d, want 429", c)
	}
	e.clock.Advance(16 * time.Minute)
	if c := try("admin", testPassword); c != http.StatusSeeOther {
		t.Fatalf("after the window: %d", c)
	}
}

func TestCookieAndHeaders(t *testing.T) {
	e := newEnv(t)
	ts := httptest.NewTLSServer(e.srv)
	defer ts.Close()
	c := ts.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.PostForm(ts.URL+"/login", url.Values{"name": {"admin"}, "password": {testPassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var ck *http.Cookie
	for _, x := range resp.Cookies() {
		if x.Name == cookieName {
			ck = x
		}
	}
	if ck == nil || !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie = %+v", ck)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Fatalf("CSP = %q", csp)
	}
	// Over plain HTTP the cookie is not Secure (it would not come back).
	resp, _ = http.PostForm(e.ts.URL+"/login", url.Values{"name": {"admin"}, "password": {testPassword}})
	resp.Body.Close()
}

func TestConsoleEscapesAndSettingsForm(t *testing.T) {
	e := newEnv(t)
	a := e.login("admin")
	body := a.get("/sessions?q=" + url.QueryEscape(`"><script>x</script>`))
	if strings.Contains(body, "<script>") {
		t.Fatal("search echoed unescaped")
	}
	body = a.get("/sessions")
	if strings.Contains(body, "97466<script>") || !strings.Contains(body, "97466&lt;script&gt;") {
		t.Fatal("a phone number was not escaped")
	}

	// A rejected form shows each field's error and saves nothing.
	form := url.Values{}
	for k, v := range formOf(e.settings.Get()).V {
		form.Set(k, v)
	}
	form.Set("rate_down", "fast")
	form.Set("allowed_prefixes", "9743")
	resp := a.post("/settings?lang=en", form, nil)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(b), "want a rate like 8mbit") || !strings.Contains(string(b), "want &#43; and digits like &#43;9743") {
		t.Fatalf("bad form: %s\n%s", resp.Status, b)
	}
	if e.settings.Get().RateDown != 8_000_000 {
		t.Fatal("a rejected form changed a setting")
	}
	form.Set("rate_down", "3mbit")
	form.Set("allowed_prefixes", "+9743\n+9745")
	resp = a.post("/settings", form, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || e.settings.Get().RateDown != 3_000_000 || len(e.settings.Get().AllowedPrefixes) != 2 {
		t.Fatalf("good form: %s, rate %v", resp.Status, e.settings.Get().RateDown)
	}
	if !strings.Contains(a.get("/audit"), "rate_down") {
		t.Fatal("the audit page does not show the change")
	}
	if !strings.Contains(a.get("/?lang=en"), "Visitors online") || !strings.Contains(a.get("/?lang=ar"), `dir="rtl"`) {
		t.Fatal("language switch")
	}
}

// fieldErrorOf returns the text of the error shown under field id in a
// settings page, "" for none.
func fieldErrorOf(page, id string) string {
	i := strings.Index(page, `id="f-`+id+`"`)
	if i < 0 {
		return ""
	}
	rest := page[i:]
	end := strings.Index(rest, "</label>")
	if end < 0 {
		return ""
	}
	m := regexp.MustCompile(`<span class="field-error"[^>]*>([^<]*)</span>`).FindStringSubmatch(rest[:end])
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// TestSettingsErrorsInArabic: the Arabic console shows each field's
// error in Arabic, in the page's direction, values isolated; the English
// console and the API in English.
func TestSettingsErrorsInArabic(t *testing.T) {
	e := newEnv(t)
	a := e.login("admin")
	form := validSettingsForm()
	form.Set("rate_down", "fast")
	form.Set("walled_garden", "example.org")
	form.Set("pin_max_tries", "many")
	resp := a.post("/settings?lang=ar", form, nil)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(b)
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("bad form: %s", resp.Status)
	}
	for id, want := range map[string]string{
		"rate_down":     "المطلوب سرعة مثل 8mbit أو 512kbit، والمُدخل \u2068\"fast\"\u2069",
		"walled_garden": "المطلوب عناوين IPv4 أو نطاقات مثل 203.0.113.0/28، والمُدخل \u2068\"example.org\"\u2069",
		"pin_max_tries": "المطلوب عدد صحيح",
	} {
		if got := fieldErrorOf(page, id); got != want {
			t.Errorf("%s: Arabic console shows %q, want %q", id, got, want)
		}
	}
	if strings.Contains(page, `class="field-error" dir="ltr"`) {
		t.Error("field errors are forced left-to-right in the Arabic console")
	}
	resp = a.post("/settings?lang=en", form, nil)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := fieldErrorOf(string(b), "rate_down"); got != `want a rate like 8mbit or 512kbit, got "fast"` {
		t.Errorf("English console: %q", got)
	}
	r := e.api(Admin, "PATCH", "/api/v1/site", `{"walled_garden":["example.org"]}`)
	var ae apiError
	json.NewDecoder(r.Body).Decode(&ae)
	r.Body.Close()
	if r.StatusCode != http.StatusUnprocessableEntity || ae.Fields["walled_garden"] != `want IPv4 addresses or prefixes like 203.0.113.0/28, got "example.org"` {
		t.Errorf("API: %s %+v", r.Status, ae)
	}
	// The dashboard's uplink tile has no English left in Arabic.
	s := e.settings.Get()
	s.UplinkDown, s.UplinkUp = 100_000_000, 20_000_000
	if _, err := e.settings.Update("test", s); err != nil {
		t.Fatal(err)
	}
	dash := a.get("/?lang=ar")
	if !strings.Contains(dash, "</bdi> من <bdi") || strings.Contains(dash, " of ") {
		t.Errorf("Arabic dashboard's uplink tile:\n%s", dash)
	}
}

// TestRADIUSWithoutSecretRefused: with no RADIUS secret in the config
// file, turning RADIUS on in the console or the API is refused on the
// field, before it is saved, audited or applied.
func TestRADIUSWithoutSecretRefused(t *testing.T) {
	e := newEnv(t)
	e.settings.AddCheck(settings.RequireRADIUSSecret(false))
	applied := 0
	e.settings.OnChange(func(settings.Site) { applied++ })
	a := e.login("admin")
	form := validSettingsForm()
	form.Set("radius.enabled", "on")
	form.Set("radius.servers", "192.0.2.5:1812")
	for _, lang := range []string{"en", "ar"} {
		resp := a.post("/settings?lang="+lang, form, nil)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		msg := fieldErrorOf(string(b), "radius.enabled")
		want := "the config file has no shared secret"
		if lang == "ar" {
			want = "ملف الإعداد لا يحتوي على السر المشترك"
		}
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(msg, want) {
			t.Fatalf("%s: enabling RADIUS without a secret: %s, field error %q", lang, resp.Status, msg)
		}
	}
	r := e.api(Admin, "PATCH", "/api/v1/site", `{"radius":{"enabled":true,"servers":["192.0.2.5:1812"]}}`)
	var ae apiError
	json.NewDecoder(r.Body).Decode(&ae)
	r.Body.Close()
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(ae.Fields["radius.enabled"], "secret_file") {
		t.Fatalf("API: %s %+v", r.Status, ae)
	}
	recs, _ := e.settings.Audit(10, 0)
	if e.settings.Get().RADIUS.Enabled || applied != 0 || len(recs) != 0 {
		t.Fatalf("refused change kept: enabled %v, applied %d, audit %v", e.settings.Get().RADIUS.Enabled, applied, recs)
	}
}

// TestConsoleTimesInSiteZone: the console shows times in the site's
// zone, not the process's (UTC on OpenWrt).
func TestConsoleTimesInSiteZone(t *testing.T) {
	e := newEnv(t)
	zone := time.FixedZone("site", 3*3600+30*60) // unlike any test machine's
	srv, err := New(Options{Users: e.users, Settings: e.settings, Sessions: e.sessions, Now: e.clock.Now,
		Location: zone, Logger: e.srv.log})
	if err != nil {
		t.Fatal(err)
	}
	e.ts = httptest.NewServer(srv)
	defer e.ts.Close()
	if err := e.settings.Record("amal", "rate_down", `"8mbit"`, `"6mbit"`); err != nil {
		t.Fatal(err)
	}
	want := e.clock.Now().In(zone).Format("2006-01-02 15:04")
	if page := e.login("admin").get("/audit"); !strings.Contains(page, want) {
		t.Fatalf("audit page lacks %s (the site's time):\n%s", want, page)
	}
}

// TestRADIUSFromFileReadOnly: where the config file owns the RADIUS
// policy, the settings page shows its fields disabled with a note saying
// where to change them, in the page's language, and saving the rest of
// the form works and leaves the file's RADIUS policy as it was.
func TestRADIUSFromFileReadOnly(t *testing.T) {
	e := newEnv(t)
	a := e.login("admin")
	before := e.settings.Get().RADIUS
	if page := a.get("/settings?lang=en"); !strings.Contains(page, `name="radius.fail_policy" >`) {
		t.Fatal("without the file owning RADIUS its fields are not editable: the test proves nothing")
	}
	e.settings.RADIUSFromFile()
	for lang, note := range map[string]string{"en": "Set in the config file", "ar": "تُضبط في ملف الإعداد"} {
		page := a.get("/settings?lang=" + lang)
		if !strings.Contains(page, note) {
			t.Errorf("%s: no note saying where RADIUS is set", lang)
		}
		for _, field := range []string{`id="f-radius.enabled"  disabled>`, `name="radius.fail_policy" disabled>`} {
			if !strings.Contains(page, field) {
				t.Errorf("%s: %s not disabled", lang, field)
			}
		}
		if strings.Count(page, " disabled") < 3 {
			t.Errorf("%s: the servers list is editable", lang)
		}
	}
	// The browser sends no disabled field: the rest saves.
	form := url.Values{}
	for k, v := range formOf(e.settings.Get()).V {
		if !strings.HasPrefix(k, "radius.") {
			form.Set(k, v)
		}
	}
	form.Set("rate_down", "5mbit")
	resp := a.post("/settings?lang=en", form, nil)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("saving with RADIUS from the file: %s\n%s", resp.Status, b)
	}
	got := e.settings.Get()
	if got.RateDown != 5_000_000 {
		t.Errorf("rate_down = %v, want 5mbit", got.RateDown)
	}
	if got.RADIUS.Enabled != before.Enabled || got.RADIUS.FailPolicy != before.FailPolicy || strings.Join(got.RADIUS.Servers, ",") != strings.Join(before.Servers, ",") {
		t.Errorf("RADIUS changed from %+v to %+v", before, got.RADIUS)
	}
}
