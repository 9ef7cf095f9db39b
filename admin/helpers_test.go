package admin

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/parkwifi/parkportal/config"
	"github.com/parkwifi/parkportal/internal/fake"
	"github.com/parkwifi/parkportal/metrics"
	"github.com/parkwifi/parkportal/settings"
	"github.com/parkwifi/parkportal/store"
)

// TestMain makes password hashing cheap for the many accounts the tests
// create; TestPasswordHash checks the real cost.
func TestMain(m *testing.M) {
	argonTime, argonMemory = 1, 64
	os.Exit(m.Run())
}

// fakeSessions records what the console asked for.
type fakeSessions struct {
	mu       sync.Mutex
	sessions map[string]*store.Session
	kicked   []string
	extended map[string]time.Duration
}

func newFakeSessions(now time.Time) *fakeSessions {
	f := &fakeSessions{sessions: map[string]*store.Session{}, extended: map[string]time.Duration{}}
	add := func(id, phone, mac, ip string) {
		m, _ := net.ParseMAC(mac)
		f.sessions[id] = &store.Session{ID: id, Phone: phone, MAC: m, IP: netip.MustParseAddr(ip), Lang: "ar",
			Start: now.Add(-time.Hour), Expires: now.Add(3 * time.Hour), LastActive: now,
			RateDown: 8_000_000, RateUp: 8_000_000, BytesDown: 123 << 20, BytesUp: 5 << 20, State: store.Active}
	}
	add("s1", "+97433123456", "02:00:00:00:00:01", "198.51.100.11")
	add("s2", "+97455123456", "02:00:00:00:00:02", "198.51.100.12")
	add("s3", "+97466<script>", "02:00:00:00:00:03", "198.51.100.13")
	// Device names come from the visitor's DHCP request: any text.
	f.sessions["s1"].Hostname, f.sessions["s1"].Vendor = "Amals-iPhone", "MSFT 5.0"
	f.sessions["s2"].Hostname = "هاتف <b>سارة</b>"
	return f
}

func (f *fakeSessions) List(q string) ([]*store.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*store.Session
	for _, id := range []string{"s1", "s2", "s3"} {
		if s := f.sessions[id]; s != nil && s.State == store.Active && Matches(s, q) {
			c := *s
			out = append(out, &c)
		}
	}
	return out, nil
}

func (f *fakeSessions) get(id string) (*store.Session, error) {
	s := f.sessions[id]
	if s == nil {
		return nil, store.ErrNotFound
	}
	return s, nil
}

func (f *fakeSessions) End(id string, reason store.EndReason) (*store.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.get(id)
	if err != nil {
		return nil, err
	}
	s.State, s.EndReason = store.Ended, reason
	f.kicked = append(f.kicked, id)
	c := *s
	return &c, nil
}

func (f *fakeSessions) Extend(id string, d time.Duration) (*store.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.get(id)
	if err != nil {
		return nil, err
	}
	s.Expires = s.Expires.Add(d)
	f.extended[id] += d
	c := *s
	return &c, nil
}

func (f *fakeSessions) SetRate(id string, down, up uint64) (*store.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.get(id)
	if err != nil {
		return nil, err
	}
	if down > 0 {
		s.RateDown = down
	}
	if up > 0 {
		s.RateUp = up
	}
	c := *s
	return &c, nil
}

func (f *fakeSessions) Kicked() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.kicked...)
}

type env struct {
	t        testing.TB
	srv      *Server
	ts       *httptest.Server
	sessions *fakeSessions
	settings *settings.Manager
	users    *Users
	metrics  *metrics.Metrics
	clock    *fake.Clock
	tokens   map[Role]string
}

const testPassword = "correct horse battery"

func newEnv(t testing.TB) *env {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "admin.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := fake.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.Local))
	e := &env{t: t, clock: clk, sessions: newFakeSessions(clk.Now()), tokens: map[Role]string{}}
	if e.settings, err = settings.Open(db, settings.FromConfig(config.Defaults().Site), clk.Now); err != nil {
		t.Fatal(err)
	}
	if e.users, err = OpenUsers(db, clk.Now); err != nil {
		t.Fatal(err)
	}
	for _, r := range []Role{Viewer, Operator, Admin} {
		if err := e.users.Add(string(r), r, testPassword); err != nil {
			t.Fatal(err)
		}
		tok, _, err := e.users.NewToken(string(r), "test")
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[r] = tok
	}
	e.metrics = metrics.New("park", func() int { return 2 }, clk.Now)
	e.metrics.SMSSent()
	e.metrics.PINAccepted()
	e.metrics.AddBytes(1<<20, 1<<18)
	clk.Advance(5 * time.Minute)
	e.metrics.TakeSample()
	e.srv, err = New(Options{Users: e.users, Settings: e.settings, Sessions: e.sessions, Stats: e.metrics,
		Metrics: e.metrics.Handler(), Now: clk.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e.ts = httptest.NewServer(e.srv)
	t.Cleanup(e.ts.Close)
	return e
}

// api makes an API request with role's token ("" for none).
func (e *env) api(role Role, method, path, body string) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[role])
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

// browser is a cookie-keeping client that does not follow redirects, as
// a logged-in console user.
type browser struct {
	*http.Client
	e    *env
	csrf string
}

func (e *env) login(name string) *browser {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &browser{Client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, e: e}
	resp, err := b.PostForm(e.ts.URL+"/login", url.Values{"name": {name}, "password": {testPassword}})
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("login %s: %s", name, resp.Status)
	}
	body := b.get("/")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		e.t.Fatal("no CSRF token on the dashboard")
	}
	b.csrf = m[1]
	return b
}

func (b *browser) get(path string) string {
	b.e.t.Helper()
	resp, err := b.Get(b.e.ts.URL + path)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return sb.String()
}

// post submits a console form with the session's CSRF token unless the
// form sets its own.
func (b *browser) post(path string, form url.Values, header map[string]string) *http.Response {
	b.e.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.csrf)
	}
	req, _ := http.NewRequest("POST", b.e.ts.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	return resp
}
