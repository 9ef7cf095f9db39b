// Package admin is the ministry staff's side of parkportal: a console
// (server-rendered pages in Arabic and English, no scripts, no external
// resources), a JSON API for automation, staff accounts with roles, and
// the Prometheus endpoint. It listens apart from the visitors' portal
// (admin_listen, loopback by default; the firewall closes its port to the
// LAN).
//
// The package depends on narrow interfaces (Sessions, Stats) and on the
// settings manager, so it is tested without a kernel.
package admin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/parkwifi/parkportal/metrics"
	"github.com/parkwifi/parkportal/settings"
	"github.com/parkwifi/parkportal/store"
)

// Sessions is what the console does to visitors' sessions.
// SessionsAdapter implements it over session.Manager and store.Store.
type Sessions interface {
	// List returns active sessions whose phone, MAC or IP contains q
	// (all active sessions when q is empty).
	List(q string) ([]*store.Session, error)
	End(id string, reason store.EndReason) (*store.Session, error)
	Extend(id string, d time.Duration) (*store.Session, error)
	SetRate(id string, down, up uint64) (*store.Session, error)
}

// Stats feeds the dashboard; *metrics.Metrics implements it.
type Stats interface {
	Snapshot() metrics.Snapshot
	History() []metrics.Sample
}

// Options configure a Server.
type Options struct {
	Users    *Users
	Settings *settings.Manager
	Sessions Sessions
	Stats    Stats        // nil shows zeros
	Metrics  http.Handler // served at /metrics; nil for none
	// OpenMetrics serves /metrics without a token, for a Prometheus
	// scraping over loopback or a management network.
	OpenMetrics bool
	Logger      *slog.Logger
	Now         func() time.Time
	// Location is the site's time zone, in which the console shows
	// times; nil means the process's (which on OpenWrt is UTC).
	Location *time.Location
	// SessionTTL is how long a console login lasts without use.
	SessionTTL time.Duration
	// Alerts, when set, returns what staff must know now, in lang ("ar"
	// or "en"), such as a RADIUS server whose answers cannot be
	// trusted; every console page shows it above its content.
	Alerts func(lang string) []string
}

// Server is the admin http.Handler.
type Server struct {
	o       Options
	log     *slog.Logger
	now     func() time.Time
	handler func() http.Handler // the console, the API and /metrics; built on first use
	local   http.Handler
	// localRoutes is the local API's routes, built on first use (see
	// serveLocal).
	localRoutes func() http.Handler

	// Failed console passwords are limited per source and per account;
	// failed API tokens apart from them, per token (see bearer), so a
	// script with a revoked token cannot lock staff out.
	limitSource *loginLimiter
	limitUser   *loginLimiter
	limitToken  *loginLimiter

	mu       sync.Mutex
	sessions map[string]*consoleSession // by cookie value

	smsFault smsFaults // see SetSMSFault
}

// consoleSession is a logged-in browser. CSRF is its per-session token,
// required in every form as well as the cross-origin check.
type consoleSession struct {
	user    string
	csrf    string
	expires time.Time
	stored  time.Time // the expiry last written to the store
}

const cookieName = "pp_admin"

// New returns the admin server.
func New(o Options) (*Server, error) {
	if o.Users == nil || o.Settings == nil || o.Sessions == nil {
		return nil, fmt.Errorf("admin: Users, Settings and Sessions are required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.SessionTTL == 0 {
		o.SessionTTL = 8 * time.Hour
	}
	s := &Server{
		o: o, log: o.Logger, now: o.Now,
		// Ten failed passwords per source and five per account per 15
		// minutes: enough for staff who mistype, far too few to guess a
		// password. The per-account limit is what protects an account
		// when every staff member shares one source (loopback, an SSH
		// tunnel); the per-source one slows a spray across names.
		limitSource: newLoginLimiter(10, 15*time.Minute, o.Now),
		limitUser:   newLoginLimiter(5, 15*time.Minute, o.Now),
		limitToken:  newLoginLimiter(10, 15*time.Minute, o.Now),
		sessions:    map[string]*consoleSession{},
	}
	// The console's routes are built when it is first served: the CLI
	// builds a Server offline for LocalHandler only, and registering the
	// console's patterns (each looks up its caller's file and line) costs
	// a short-lived process memory it never uses.
	s.handler = sync.OnceValue(func() http.Handler {
		mux := http.NewServeMux()
		s.routesConsole(mux)
		s.routesAPI(mux, s.bearer)
		if o.Metrics != nil {
			if o.OpenMetrics {
				mux.Handle("GET /metrics", o.Metrics)
			} else {
				mux.Handle("GET /metrics", s.bearer(Viewer, func(w http.ResponseWriter, r *http.Request, _ *User) { o.Metrics.ServeHTTP(w, r) }))
			}
		}
		cop := http.NewCrossOriginProtection()
		cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "cross-origin request refused", http.StatusForbidden)
		}))
		return securityHeaders(cop.Handler(mux))
	})

	s.localRoutes = sync.OnceValue(func() http.Handler {
		mux := http.NewServeMux()
		s.routesAPI(mux, s.localRoot)
		return mux
	})
	s.local = securityHeaders(http.HandlerFunc(s.serveLocal))
	return s, nil
}

// serveLocal serves the local API (see LocalHandler). The reads the CLI
// makes (accounts, site policy, sessions: GETs without path parameters)
// go straight to the handlers the routes would choose; everything else
// goes through the routes. With the daemon stopped the CLI builds a
// Server on the store for each call, which makes one request, and
// registering the API's patterns (net/http looks up each one's caller
// in the binary's line tables) would cost that call a few hundred KiB
// of a router's memory for nothing (issue 14).
func (s *Server) serveLocal(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		if h := s.localRead(r.URL.Path); h != nil {
			h.ServeHTTP(w, r)
			return
		}
	}
	s.localRoutes().ServeHTTP(w, r)
}

// localRead returns the handler of a read the CLI makes, as routesAPI
// registers it for GET path on the local API, or nil for any other path.
func (s *Server) localRead(path string) http.Handler {
	switch path {
	case "/api/v1/users":
		return s.localRoot(Admin, s.apiUsers)
	case "/api/v1/site":
		return s.localRoot(Viewer, s.apiSite)
	case "/api/v1/sessions":
		return s.localRoot(Viewer, s.apiSessions)
	}
	return nil
}

// ServeHTTP serves the console, the API and /metrics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler().ServeHTTP(w, r) }

// LocalHandler serves the API only, treating every request as the box's
// root ("local-root", role admin). Serve it only on a unix socket that
// only root can open: the CLI on the box uses it to create the first
// account and to act while the daemon holds the database.
func (s *Server) LocalHandler() http.Handler { return s.local }

// localRoot authenticates nothing: see LocalHandler.
func (s *Server) localRoot(need Role, h authed) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h(w, r, &User{Name: LocalRoot, Role: Admin})
	})
}

// LocalRoot is the actor recorded for changes made over the local socket
// or by the CLI on the store directly.
const LocalRoot = "local-root"

type authed func(http.ResponseWriter, *http.Request, *User)

// bearer authenticates an API request by its token and checks the role.
//
// A valid token is always accepted, whatever failed before it from the
// same source: staff behind loopback or an SSH tunnel all share one
// source address, and a forgotten job still sending a revoked token must
// not lock them out. Guessing is not the threat this limit meets: a
// token is 256 random bits, so even unlimited requests would never hit
// one. Failed tokens are limited per token (by its SHA-256), which turns
// a stale client's stream of 401s into 429s with Retry-After, a signal
// to back off, and keeps the warning log to one line per stale token per
// window; a person mistyping a different token still gets a plain 401.
// They never count against the console's password limits.
func (s *Server) bearer(need Role, h authed) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="parkportal"`)
			writeJSONError(w, http.StatusUnauthorized, "missing bearer token")
			return
		}
		tok = strings.TrimSpace(tok)
		usr, err := s.o.Users.ByToken(tok)
		switch {
		case err == nil:
		case errors.Is(err, ErrBadLogin):
			s.tokenFailed(w, r, tok)
			return
		default:
			s.log.Error("checking an API token", "err", err)
			writeJSONError(w, http.StatusInternalServerError, "checking the token failed")
			return
		}
		if !usr.Role.Allows(need) {
			writeJSONError(w, http.StatusForbidden, fmt.Sprintf("this needs the %s role; %s is %s", need, usr.Name, usr.Role))
			return
		}
		h(w, r, usr)
	})
}

// tokenFailed answers a request whose token is unknown or revoked: 401,
// or 429 once that token has failed too often (see bearer).
func (s *Server) tokenFailed(w http.ResponseWriter, r *http.Request, tok string) {
	key := fmt.Sprintf("tok:%x", tokenKey(tok)[:16])
	ok, wait, n := s.limitToken.Try(key)
	if !ok {
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
		writeJSONError(w, http.StatusTooManyRequests, "this token keeps failing: it is unknown or was revoked; stop using it (try again later)")
		return
	}
	if n == 1 {
		// Once per token per window; never the token itself. The path and
		// client name help staff find the forgotten job.
		s.log.Warn("API request with an unknown or revoked token", "source", r.RemoteAddr, "path", r.URL.Path, "client", r.UserAgent())
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="parkportal", error="invalid_token"`)
	writeJSONError(w, http.StatusUnauthorized, "invalid token")
}

// sourceKey is the rate limiter's key for the client's address. Proxies
// are not trusted: the admin listener is reached directly.
func sourceKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "src:" + host
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		// No scripts at all; styles and images only from ourselves (the
		// charts are inline SVG elements, not images).
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newConsoleSession logs user in and returns the session's cookie value.
func (s *Server) newConsoleSession(user string) (string, *consoleSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, cs := range s.sessions {
		if now.After(cs.expires) {
			delete(s.sessions, k)
		}
	}
	id := randomToken()
	cs := &consoleSession{user: user, csrf: randomToken(), expires: now.Add(s.o.SessionTTL)}
	cs.stored = cs.expires
	s.sessions[id] = cs
	if err := s.o.Users.saveConsoleSession(id, cs); err != nil {
		// The login works until the daemon restarts.
		s.log.Warn("console login kept in memory only", "user", user, "err", err)
	}
	return id, cs
}

// consoleSessionOf returns the request's live console session, sliding
// its expiry.
func (s *Server) consoleSessionOf(r *http.Request) (string, *consoleSession) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return "", nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.sessions[c.Value]
	if cs == nil {
		// Logged in before the daemon restarted?
		if cs = s.o.Users.loadConsoleSession(c.Value); cs == nil {
			return "", nil
		}
		s.sessions[c.Value] = cs
	}
	now := s.now()
	if now.After(cs.expires) {
		delete(s.sessions, c.Value)
		s.o.Users.deleteConsoleSessions("", c.Value)
		return "", nil
	}
	cs.expires = now.Add(s.o.SessionTTL)
	if cs.expires.Sub(cs.stored) >= consolePersistStep {
		if err := s.o.Users.saveConsoleSession(c.Value, cs); err == nil {
			cs.stored = cs.expires
		}
	}
	return c.Value, cs
}

func (s *Server) endConsoleSession(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, id)
	if err := s.o.Users.deleteConsoleSessions("", id); err != nil {
		s.log.Error("forgetting a stored console login", "err", err)
	}
}

// endConsoleSessionsOf logs user out everywhere (password change,
// deletion, demotion).
func (s *Server) endConsoleSessionsOf(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, cs := range s.sessions {
		if cs.user == user {
			delete(s.sessions, k)
		}
	}
	if err := s.o.Users.deleteConsoleSessions(user); err != nil {
		s.log.Error("forgetting stored console logins", "user", user, "err", err)
	}
}

// Serve serves s on ln until ctx ends, with the same client-bounding
// timeouts as the portal.
func (s *Server) Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		return fmt.Errorf("serving admin on %s: %w", ln.Addr(), err)
	}
	return nil
}
