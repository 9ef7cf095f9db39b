package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
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
	// own limit (10) is reached.
	if c := try("viewer", testPassword); c != http.StatusSeeOther {
		t.Fatalf("other account: %d", c)
	}
	for i := 0; i < 5; i++ {
		try("nobody", "wrong password!")
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
	resp := a.post("/settings", form, nil)
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
