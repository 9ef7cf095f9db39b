// Command sizefloor measures what the parts of parkportal cost in binary
// size on a router, by building the same small program with one part
// switched on at a time (see ../../sizes.sh).
//
// With no build tag it is a reference point, the floor of this program:
// the runtime, an HTTP server that also speaks TLS (RFC 8908's API over
// HTTPS), an HTTPS client (Twilio, the operator's SMS gateway) and
// html/template (the pages). It is not a bound on parkportal: parts
// share code with it and with each other. Each tag adds one part, used
// the way parkportal uses it, so the linker keeps what parkportal keeps.
package main

import (
	"html/template"
	"log/slog"
	"net/http"
	"os"
)

// uses collects the tagged files' entry points so none is dead code.
var uses []func()

func main() {
	page := template.Must(template.New("page").Parse(`<p>{{.}}</p>`))
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { _ = page.Execute(w, r.URL.Path) })
	resp, err := http.Get("https://203.0.113.1/")
	slog.Info("client", "response", resp, "err", err)
	for _, use := range uses {
		use()
	}
	go func() { _ = http.ListenAndServeTLS(":8443", "cert.pem", "key.pem", nil) }()
	_ = http.ListenAndServe(":8080", nil)
	os.Exit(1)
}
