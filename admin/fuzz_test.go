package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// apiRoutes are the API's writing and searching endpoints, with %s where
// the fuzzer's id goes (path-escaped; query-escaped after '?').
var apiRoutes = []struct{ method, path string }{
	{"POST", "/api/v1/sessions/%s/extend"},
	{"POST", "/api/v1/sessions/%s/rate"},
	{"POST", "/api/v1/sessions/%s/kick"},
	{"PATCH", "/api/v1/site"},
	{"PUT", "/api/v1/site"},
	{"POST", "/api/v1/site/import?keep_names=%s"},
	{"POST", "/api/v1/users"},
	{"PATCH", "/api/v1/users/%s"},
	{"POST", "/api/v1/users/%s/tokens"},
	{"DELETE", "/api/v1/users/%s/tokens/%s"},
	{"GET", "/api/v1/sessions?q=%s"},
	{"GET", "/api/v1/audit?limit=%s"},
}

// FuzzAdminAPI sends arbitrary bodies and ids to the admin API as an
// admin (the role that reaches every handler): a staff script's typo or
// a hostile token holder gets a 4xx with a JSON error, never a 500 or a
// panic, and the site settings stay valid whatever was accepted.
func FuzzAdminAPI(f *testing.F) {
	f.Add(uint8(0), "s1", `{"by":"30m"}`)
	f.Add(uint8(1), "s1", `{"down":"4mbit","up":"1mbit"}`)
	f.Add(uint8(1), "s1", `{"down":"-1"}`)
	f.Add(uint8(2), "s2", ``)
	f.Add(uint8(3), "", `{"rate_down":"6mbit","walled_garden":["203.0.113.0/24"]}`)
	f.Add(uint8(3), "", `{"session_timeout":"99999h"}`)
	f.Add(uint8(4), "", `{"id":"park"}`)
	f.Add(uint8(5), "1", "parkportal site profile v1\n{}")
	f.Add(uint8(6), "", `{"name":"zed","role":"viewer","password":"a long password"}`)
	f.Add(uint8(7), "viewer", `{"role":"root"}`)
	f.Add(uint8(8), "viewer", `{"label":"ci"}`)
	f.Add(uint8(9), "viewer", ``)
	f.Add(uint8(10), "33 12", ``)
	f.Add(uint8(11), "-5", ``)
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, route uint8, id, body string) {
		rt := apiRoutes[int(route)%len(apiRoutes)]
		path := rt.path
		if q := strings.IndexByte(path, '?'); q >= 0 {
			path = path[:q] + strings.ReplaceAll(path[q:], "%s", url.QueryEscape(id))
		}
		path = strings.ReplaceAll(path, "%s", url.PathEscape(id))
		req := httptest.NewRequest(rt.method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.tokens[Admin])
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		e.srv.ServeHTTP(w, req)
		desc := fmt.Sprintf("%s %s %q", rt.method, path, body)
		if w.Code >= 500 {
			t.Fatalf("%s: %d\n%s", desc, w.Code, w.Body)
		}
		if w.Code >= 400 && w.Code != http.StatusNotFound && w.Code != http.StatusMethodNotAllowed {
			var apiErr apiError
			if err := json.Unmarshal(w.Body.Bytes(), &apiErr); err != nil || apiErr.Error == "" {
				t.Fatalf("%s: %d without a JSON error: %q", desc, w.Code, w.Body)
			}
		}
		if err := e.settings.Get().Validate(); err != nil {
			t.Fatalf("%s left invalid settings: %v", desc, err)
		}
	})
}

// validSettingsForm is the settings form as the console fills it in for
// the defaults: the fuzzer changes one field of it at a time, so every
// other field stays valid and the one it changes reaches the parser.
func validSettingsForm() url.Values {
	return url.Values{
		"name_ar": {"حديقة"}, "name_en": {"Park"},
		"session_timeout": {"3h"}, "idle_timeout": {"20m"}, "pin_ttl": {"5m"}, "pin_max_tries": {"5"},
		"rate_down": {"8mbit"}, "rate_up": {"8mbit"}, "uplink_down": {"0"}, "uplink_up": {"0"},
		"walled_garden":    {"203.0.113.0/24\n198.51.100.7"},
		"sms_templates.ar": {"رمز الدخول {pin}"}, "sms_templates.en": {"Your PIN is {pin}"},
		"phone_region": {"QA"}, "allowed_prefixes": {"+974"},
		"sms_per_number_hour": {"3"}, "sms_per_device_hour": {"5"}, "sms_daily_budget": {"2000"},
		"terms_ar": {""}, "terms_en": {""}, "privacy_url": {""},
		"radius.fail_policy": {"open"},
	}
}

// FuzzConsoleForms posts the console's forms as a logged-in admin with
// one field set to anything: each answer is a page or a redirect, never
// a 500, and the stored settings stay valid.
func FuzzConsoleForms(f *testing.F) {
	routes := []string{"/settings", "/sessions/%s/rate", "/sessions/%s/extend", "/sessions/%s/kick", "/accounts", "/accounts/%s", "/sessions"}
	for _, field := range []string{"session_timeout", "rate_down", "walled_garden", "pin_max_tries", "sms_templates.ar", "phone_region", "allowed_prefixes", "radius.enabled"} {
		f.Add(uint8(0), "", field, "x")
	}
	f.Add(uint8(0), "", "session_timeout", "-1h")
	f.Add(uint8(0), "", "rate_down", "99999999999gbit")
	f.Add(uint8(1), "s1", "down", "2mbit")
	f.Add(uint8(2), "s1", "by", "1h")
	f.Add(uint8(3), "s2", "", "")
	f.Add(uint8(4), "", "name", "zed")
	f.Add(uint8(5), "viewer", "action", "role")
	f.Add(uint8(5), "viewer", "action", "token")
	f.Add(uint8(6), "", "q", "+974")
	e := newEnv(f)
	b := e.login("admin")
	base, _ := url.Parse(e.ts.URL)
	cookies := b.Jar.Cookies(base)
	post := func(path string, form url.Values) *httptest.ResponseRecorder {
		form.Set("csrf", b.csrf)
		req := httptest.NewRequest("POST", path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for _, c := range cookies {
			req.AddCookie(c)
		}
		w := httptest.NewRecorder()
		e.srv.ServeHTTP(w, req)
		return w
	}
	// The untouched form must be accepted, or the fuzzer would only ever
	// see one field error after another.
	if w := post("/settings", validSettingsForm()); w.Code != http.StatusSeeOther {
		f.Fatalf("the valid settings form was refused: %d\n%s", w.Code, w.Body)
	}
	f.Fuzz(func(t *testing.T, route uint8, id, field, value string) {
		path := strings.ReplaceAll(routes[int(route)%len(routes)], "%s", url.PathEscape(id))
		form := url.Values{}
		if path == "/settings" {
			form = validSettingsForm()
		}
		if path == "/accounts" || strings.HasPrefix(path, "/accounts/") {
			form.Set("role", "viewer")
			form.Set("password", testPassword)
		}
		if field != "" && field != "csrf" {
			form.Set(field, value)
		}
		w := post(path, form)
		if w.Code >= 500 {
			t.Fatalf("POST %s %s=%q: %d\n%s", path, field, value, w.Code, w.Body)
		}
		if err := e.settings.Get().Validate(); err != nil {
			t.Fatalf("POST %s %s=%q left invalid settings: %v", path, field, value, err)
		}
	})
}

// FuzzAccept: any Accept header a client sends gives each type a
// quality from 0 to 1, and text only when it is preferred to JSON.
func FuzzAccept(f *testing.F) {
	for _, s := range []string{"text/plain", "*/*", "application/json;q=0.5, text/*", "text/plain;q=x", "text/plain;;q=1,", `text/plain;q="0.9"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, accept string) {
		text, json := acceptQuality(accept, "text", "plain"), acceptQuality(accept, "application", "json")
		if text < 0 || text > 1 || json < 0 || json > 1 {
			t.Fatalf("%q: qualities %v, %v", accept, text, json)
		}
		r, _ := http.NewRequest("GET", "/", nil)
		r.Header.Set("Accept", accept)
		if wantsText(r) != (text > json) {
			t.Fatalf("%q: wantsText %v with text %v, json %v", accept, wantsText(r), text, json)
		}
	})
}
