package static

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func TestHandler(t *testing.T) {
	fsys := fstest.MapFS{
		"style.css":    {Data: []byte("body{}")},
		"img/logo.svg": {Data: []byte("<svg/>")},
	}
	h := Handler("/static/", fsys, "public, max-age=60")
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/static/style.css", 200, "body{}"},
		{"/static/img/logo.svg", 200, "<svg/>"},
		{"/static/", 404, ""},
		{"/static/img", 404, ""},
		{"/static/img/", 404, ""},
		{"/static/missing.css", 404, ""},
		{"/static/\x85", 404, ""},
		{"/static/../style.css", 404, ""},
		{"/static//style.css", 404, ""},
		{"/other/style.css", 404, ""},
	} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.URL.Path = tc.path
		h.ServeHTTP(w, r)
		if w.Code != tc.code {
			t.Errorf("%q: status %d, want %d", tc.path, w.Code, tc.code)
			continue
		}
		if tc.code != 200 {
			if cc := w.Header().Get("Cache-Control"); cc != "" {
				t.Errorf("%q: a %d is cached (%q)", tc.path, tc.code, cc)
			}
			continue
		}
		if !strings.Contains(w.Body.String(), tc.body) {
			t.Errorf("%q: body %q", tc.path, w.Body.String())
		}
		if cc := w.Header().Get("Cache-Control"); cc != "public, max-age=60" {
			t.Errorf("%q: Cache-Control %q", tc.path, cc)
		}
	}
}
