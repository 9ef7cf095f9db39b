package admin

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// restartServer replaces e's server with a new one on the same store, as
// a daemon restart does, keeping the browsers' cookies.
func (e *env) restartServer() {
	e.t.Helper()
	srv, err := New(Options{Users: e.users, Settings: e.settings, Sessions: e.sessions, Stats: e.metrics,
		Metrics: e.metrics.Handler(), Now: e.clock.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		e.t.Fatal(err)
	}
	e.srv = srv
	e.ts.Config.Handler = srv
}

// loggedIn reports whether b's cookie still opens the dashboard.
func loggedIn(t *testing.T, b *browser) bool {
	t.Helper()
	resp, err := b.Get(b.e.ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// TestConsoleLoginSurvivesRestart: a daemon restart does not log staff
// out; a logout, a password change and expiry still end the login, also
// across restarts; the store holds no cookie in clear.
func TestConsoleLoginSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	b := e.login("admin")
	e.restartServer()
	if !loggedIn(t, b) {
		t.Fatal("a restart logged the admin out")
	}
	// The CSRF token came back with the login: a form still works.
	resp := b.post("/sessions/s1/extend", url.Values{"by": {"30m"}}, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("a form after the restart: %s", resp.Status)
	}

	var cookie string
	for _, c := range b.Jar.Cookies(mustURL(t, e.ts.URL)) {
		if c.Name == cookieName {
			cookie = c.Value
		}
	}
	e.users.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketConsoleSessions).ForEach(func(k, v []byte) error {
			if strings.Contains(string(k)+string(v), cookie) {
				t.Error("the store holds the cookie in clear")
			}
			return nil
		})
	})

	resp = b.post("/logout", nil, nil)
	resp.Body.Close()
	e.restartServer()
	if loggedIn(t, b) {
		t.Error("a logout did not survive the restart")
	}

	op := e.login("operator")
	if err := e.srv.setPassword(&User{Name: "admin", Role: Admin}, "operator", "another long password"); err != nil {
		t.Fatal(err)
	}
	e.restartServer()
	if loggedIn(t, op) {
		t.Error("a password change did not end the stored login")
	}

	v := e.login("viewer")
	e.clock.Advance(e.srv.o.SessionTTL + time.Minute)
	e.restartServer()
	if loggedIn(t, v) {
		t.Error("an expired login came back after a restart")
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
