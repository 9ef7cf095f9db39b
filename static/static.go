// Package static serves a web front end's embedded assets (style sheets,
// icons) for both the visitors' portal and the staff console.
//
// http.FileServerFS alone is not quite right for a captive portal: it
// lists directories, and a name io/fs refuses to look up (invalid UTF-8,
// "..", an empty element) comes back as a 500, which would put any
// visitor's junk URL into the operator's error metrics and alerts.
package static

import (
	"io/fs"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Handler serves the files of fsys under prefix (for example "/static/").
// Every response that is not a file is a plain 404; files are sent with
// cacheControl so a phone fetches the style sheet once per visit, not per
// page.
func Handler(prefix string, fsys fs.FS, cacheControl string) http.Handler {
	files := http.FileServerFS(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok || !utf8.ValidString(name) || !fs.ValidPath(name) || name == "." {
			http.NotFound(w, r)
			return
		}
		if info, err := fs.Stat(fsys, name); err != nil || info.IsDir() {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", cacheControl)
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + name
		r2.URL.RawPath = ""
		files.ServeHTTP(w, r2)
	})
}
