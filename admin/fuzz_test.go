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
