package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/parkwifi/parkportal/admin"
	"github.com/parkwifi/parkportal/config"
	"github.com/parkwifi/parkportal/firewall"
	"github.com/parkwifi/parkportal/metrics"
	"github.com/parkwifi/parkportal/netlimit"
	"github.com/parkwifi/parkportal/session"
	"github.com/parkwifi/parkportal/settings"
	"github.com/parkwifi/parkportal/store"
)

// adminSocketPath is where the daemon serves the admin API to root on the
// box: next to the database, in a directory only root can enter, so the
// file system is the authentication.
func adminSocketPath(cfg *config.Config) string { return cfg.DBPath + ".admin.sock" }

// AdminRuntime is what startAdmin wires up; serve hands Metrics to the
// packages that count and Settings to those that follow site policy.
type AdminRuntime struct {
	Settings *settings.Manager
	Metrics  *metrics.Metrics
	Server   *admin.Server
	// Listener is the console's TCP listener, capped per source.
	Listener *netlimit.Listener
}

// adminConnsPerSource caps the console's concurrent connections per
// source address, as the portal's listener does per device: a client
// holding many slow connections costs a goroutine and buffers each until
// the timeouts fire. Every staff member on loopback or an SSH tunnel is
// one source, so the cap leaves room for several browsers (about six
// connections each) and a Prometheus scraper.
const adminConnsPerSource = 32

// siteClock returns now in the park's time zone. The dashboard's "today"
// and the SMS budget left start at midnight of now().Location(); the
// SMS limiter counts the budget per day in the same zone, so both must
// use it. On OpenWrt Go sees UTC (there is no zoneinfo for time.Local),
// which would put the dashboard's day three hours out of step in Qatar.
func siteClock(tz *time.Location, now func() time.Time) func() time.Time {
	if tz == nil {
		return now
	}
	return func() time.Time { return now().In(tz) }
}

// radiusSecretConfigured reports whether the config file (or the
// environment, as startNAS reads it) gives a RADIUS shared secret.
func radiusSecretConfigured(rc config.Radius) bool {
	return rc.Secret != "" || rc.SecretFile != "" || os.Getenv(radiusSecretEnv) != ""
}

// radiusSecretEnv names the environment variable that may hold the
// RADIUS shared secret instead of the config file.
const radiusSecretEnv = "PARKPORTAL_RADIUS_SECRET"

// openSettings opens the site policy the one way the daemon and every
// CLI command do: reconciled with what the config file says (see
// settings.Open), the RADIUS policy the file's alone. Whichever runs
// first on a new store seeds it with the same policy.
func openSettings(cfg *config.Config, st *store.Store) (*settings.Manager, error) {
	set, err := settings.Open(st.DB(), settings.FromFile(cfg), nil)
	if err != nil {
		return nil, err
	}
	set.RADIUSFromFile()
	return set, nil
}

// logFileReport says, at every start, each site option whose value in
// the config file differs from the store's, and which one applies, so
// an operator's edit of the file is never silently ignored.
func logFileReport(set *settings.Manager, log *slog.Logger) {
	for _, o := range set.FileReport() {
		file, stored := plainJSON(o.File), plainJSON(o.Store)
		switch o.Outcome {
		case settings.FileApplied:
			log.Info("config file option changed since the last start: its value applies", "option", o.Option, "file", file, "was", stored)
		case settings.FileRefused:
			log.Error("config file option changed but not applied: it does not fit the rest of the site policy; the stored value stays and the file's is tried again at the next start",
				"option", o.Option, "file", file, "applies", stored, "reason", o.Err.In("en"))
		case settings.FileOverridden:
			args := []any{"option", o.Option, "file", file, "applies", stored,
				"to_use_the_file", "parkportal site set " + o.Field + "=" + siteSetValue(o.File)}
			if o.LastChange.Actor != "" {
				args = append(args, "set_by", o.LastChange.Actor, "set_at", o.LastChange.Time.Format(time.RFC3339))
			}
			log.Warn("config file option overridden: the site policy in the store (set in the console, the API or the CLI after the file) applies", args...)
		}
	}
}

// plainJSON shows a JSON value in a log line: strings without quotes.
func plainJSON(v string) string {
	var s string
	if json.Unmarshal([]byte(v), &s) == nil {
		return s
	}
	return v
}

// siteSetValue writes a JSON value the way `parkportal site set` takes
// it: lists comma-separated, strings bare.
func siteSetValue(v string) string {
	var list []string
	if json.Unmarshal([]byte(v), &list) == nil {
		return strings.Join(list, ",")
	}
	return plainJSON(v)
}

// startAdmin opens the site settings (see openSettings), logs what the
// config file and the store disagree on, applies the policy to the
// session manager now and on every change, and serves the console and
// API on cfg.AdminListen and the local socket until ctx ends. alerts
// (may be nil) feeds the console's banner.
func startAdmin(ctx context.Context, cfg *config.Config, st *store.Store, mgr *session.Manager, alerts func(lang string) []string, log *slog.Logger) (*AdminRuntime, error) {
	set, err := openSettings(cfg, st)
	if err != nil {
		return nil, err
	}
	logFileReport(set, log)
	users, err := admin.OpenUsers(st.DB(), nil)
	if err != nil {
		return nil, err
	}
	online := func() int {
		a, err := st.ActiveSessions()
		if err != nil {
			return 0
		}
		return len(a)
	}
	m := metrics.New(cfg.Site.ID, online, siteClock(cfg.Timezone, time.Now))
	if err := m.Keep(st.DB(), log); err != nil {
		// The charts start empty; nothing else depends on them.
		log.Warn("dashboard history not loaded", "err", err)
	}
	mgr.AddObserver(m)
	apply := func(s settings.Site) {
		mgr.SetPolicy(session.Policy{
			SessionTimeout: s.SessionTimeout.D(), IdleTimeout: s.IdleTimeout.D(),
			RateDown: uint64(s.RateDown), RateUp: uint64(s.RateUp),
		})
	}
	apply(set.Get())
	set.OnChange(func(s settings.Site) {
		apply(s)
		log.Info("site settings applied", "rate_down", uint64(s.RateDown), "rate_up", uint64(s.RateUp))
	})
	srv, err := admin.New(admin.Options{
		Users: users, Settings: set, Sessions: admin.SessionsAdapter{Manager: mgr, Store: st},
		Stats: m, Metrics: m.Handler(), Logger: log, Location: cfg.Timezone, Alerts: alerts,
	})
	if err != nil {
		return nil, err
	}
	plainLn, err := net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		return nil, fmt.Errorf("listening for the admin console on %s: %w", cfg.AdminListen, err)
	}
	ln := netlimit.Listen(plainLn, adminConnsPerSource, log)
	sock := adminSocketPath(cfg)
	os.Remove(sock) // a stale socket from a crash; we hold the database lock
	old := unix.Umask(0o177)
	uln, err := net.Listen("unix", sock)
	unix.Umask(old)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("listening on the admin socket %s: %w", sock, err)
	}
	go m.Run(ctx)
	go func() {
		if err := srv.Serve(ctx, ln, srv); err != nil {
			log.Error("admin console stopped", "err", err)
		}
	}()
	go func() {
		if err := srv.Serve(ctx, uln, srv.LocalHandler()); err != nil {
			log.Error("admin socket stopped", "err", err)
		}
		os.Remove(sock)
	}()
	if n, _ := users.Count(); n == 0 {
		log.Warn("no admin account yet: create one with `parkportal admin add-user --role admin NAME`")
	}
	log.Info("admin console listening", "addr", ln.Addr().String(), "socket", sock)
	return &AdminRuntime{Settings: set, Metrics: m, Server: srv, Listener: ln}, nil
}

// apiClient talks to the admin API: over the running daemon's socket, or
// (when the daemon is down) to an admin server built in this process on
// the store itself. Both act as local root, so the commands behave the
// same either way.
type apiClient struct {
	send    func(*http.Request) (apiAnswer, error)
	close   func()
	offline bool
}

// apiAnswer is an API response read whole: status ("404 Not Found"),
// code and body.
type apiAnswer struct {
	status string
	code   int
	body   []byte
}

// apiTimeout bounds one request to the daemon, connecting included.
const apiTimeout = 30 * time.Second

// openAPI parses a CLI subcommand's flags (with --config) and connects
// to the admin API; it returns the remaining arguments.
func openAPI(fs *flags, args []string) (*apiClient, *config.Config, []string, error) {
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := newAPIClient(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	return c, cfg, fs.Args(), nil
}

func newAPIClient(cfg *config.Config) (*apiClient, error) {
	sock := adminSocketPath(cfg)
	if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
		c.Close()
		return &apiClient{send: func(r *http.Request) (apiAnswer, error) { return sendOverSocket(sock, r) }, close: func() {}}, nil
	}
	st, err := store.Open(cfg.DBPath)
	if err != nil {
		return nil, fmt.Errorf("%w\n(the daemon's admin socket %s does not answer either; is parkportal serve starting or stuck?)", err, sock)
	}
	set, err := openSettings(cfg, st)
	if err != nil {
		st.Close()
		return nil, err
	}
	users, err := admin.OpenUsers(st.DB(), nil)
	if err != nil {
		st.Close()
		return nil, err
	}
	// With the daemon down only the store changes; the daemon's restore
	// at start makes the kernel follow it.
	mgr := session.NewManager(session.Options{Store: st, Gate: storeOnlyGate{}, Site: cfg.Site.ID,
		Logger: slog.New(slog.DiscardHandler)})
	srv, err := admin.New(admin.Options{Users: users, Settings: set, Sessions: admin.SessionsAdapter{Manager: mgr, Store: st},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		st.Close()
		return nil, err
	}
	h := srv.LocalHandler()
	return &apiClient{send: func(r *http.Request) (apiAnswer, error) { return serveInProcess(h, r), nil }, close: func() { st.Close() }, offline: true}, nil
}

// sendOverSocket sends one request to the daemon's admin socket on a
// connection of its own ("Connection: close") and reads the whole answer,
// within apiTimeout. A CLI call makes a request or two, so it writes and
// reads them itself rather than through an http.Client: the Transport's
// connection pool, its reader and writer goroutines and their stacks
// cost more memory than the exchange itself, on a router where each CLI
// call has 8 MiB (issue 14).
func sendOverSocket(sock string, r *http.Request) (apiAnswer, error) {
	conn, err := net.DialTimeout("unix", sock, apiTimeout)
	if err != nil {
		return apiAnswer{}, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(apiTimeout)); err != nil {
		return apiAnswer{}, err
	}
	r.Close = true
	if err := r.Write(conn); err != nil {
		return apiAnswer{}, fmt.Errorf("sending the request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), r)
	if err != nil {
		return apiAnswer{}, fmt.Errorf("reading the answer: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return apiAnswer{}, fmt.Errorf("reading the answer: %w", err)
	}
	return apiAnswer{status: resp.Status, code: resp.StatusCode, body: b}, nil
}

// serveInProcess serves a request with the in-process admin handler.
func serveInProcess(h http.Handler, r *http.Request) apiAnswer {
	w := &memResponse{header: http.Header{}}
	h.ServeHTTP(w, r)
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return apiAnswer{status: fmt.Sprintf("%03d %s", w.code, http.StatusText(w.code)), code: w.code, body: w.body.Bytes()}
}

// memResponse is the http.ResponseWriter of an in-process request: the
// status and body kept in memory, as the daemon would have sent them.
type memResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (m *memResponse) Header() http.Header { return m.header }

func (m *memResponse) WriteHeader(code int) {
	if m.code == 0 {
		m.code = code
	}
}

func (m *memResponse) Write(b []byte) (int, error) {
	m.WriteHeader(http.StatusOK)
	return m.body.Write(b)
}

// storeOnlyGate stands in for the kernel when the daemon is down.
type storeOnlyGate struct{}

func (storeOnlyGate) Ensure() (int, error)                          { return 0, nil }
func (storeOnlyGate) Allow(firewall.Client) error                   { return nil }
func (storeOnlyGate) Deny(firewall.Client) error                    { return nil }
func (storeOnlyGate) WantMark() uint64                              { return 0 }
func (storeOnlyGate) Want(uint64, []firewall.Client)                {}
func (storeOnlyGate) Reconcile() (int, error)                       { return 0, nil }
func (storeOnlyGate) Usage() (map[netip.Addr]firewall.Usage, error) { return nil, nil }

// do sends a request and decodes a JSON answer into out (if not nil);
// API errors come back as Go errors with the server's message and any
// per-field messages.
func (c *apiClient) do(method, path string, body io.Reader, out any) error {
	req, err := http.NewRequest(method, "http://parkportal"+path, body)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.exchange(req, out)
}

// text GETs path as the daemon renders it for a terminal (Accept:
// text/plain) and copies it to w.
func (c *apiClient) text(path string, w io.Writer) error {
	req, err := http.NewRequest("GET", "http://parkportal"+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/plain")
	return c.exchange(req, w)
}

// exchange sends req and decodes the answer into out: JSON, or the body
// as it is when out is an io.Writer; an error answer becomes an error
// with the API's message and per-field messages.
func (c *apiClient) exchange(req *http.Request, out any) error {
	method, path := req.Method, req.URL.RequestURI()
	resp, err := c.send(req)
	if err != nil {
		return fmt.Errorf("calling the admin API: %w", err)
	}
	b := resp.body
	if resp.code >= 300 {
		var ae struct {
			Error  string            `json:"error"`
			Fields map[string]string `json:"fields"`
		}
		if json.Unmarshal(b, &ae) != nil || ae.Error == "" {
			return fmt.Errorf("%s %s: %s", method, path, resp.status)
		}
		msg := ae.Error
		for k, v := range ae.Fields {
			msg += fmt.Sprintf("\n  %s: %s", k, v)
		}
		return errors.New(msg)
	}
	if out != nil {
		if w, ok := out.(io.Writer); ok {
			_, err := w.Write(b)
			return err
		}
		return json.Unmarshal(b, out)
	}
	return nil
}

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

// readPassword reads a password from the terminal without echo, or one
// line from stdin when it is not a terminal (for scripts).
func readPassword(prompt string) (string, error) {
	fd := int(os.Stdin.Fd())
	if t, err := unix.IoctlGetTermios(fd, unix.TCGETS); err == nil {
		fmt.Fprint(os.Stderr, prompt)
		quiet := *t
		quiet.Lflag &^= unix.ECHO
		quiet.Lflag |= unix.ICANON | unix.ISIG
		if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err == nil {
			defer func() { unix.IoctlSetTermios(fd, unix.TCSETS, t); fmt.Fprintln(os.Stderr) }()
		}
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("reading password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// adminSynopses are each admin subcommand's usage line.
var adminSynopses = map[string]string{
	"add-user": "admin add-user [--config FILE] [--role viewer|operator|admin] NAME   (password from the terminal or stdin)",
	"passwd":   "admin passwd   [--config FILE] NAME",
	"role":     "admin role     [--config FILE] NAME viewer|operator|admin",
	"token":    "admin token    [--config FILE] [--label TEXT] NAME   (prints a new API token once)",
	"list":     "admin list     [--config FILE]",
}

func adminUsage() error {
	return errors.New(`usage:
  parkportal admin add-user [--config FILE] [--role viewer|operator|admin] NAME   (password from the terminal or stdin)
  parkportal admin passwd   [--config FILE] NAME
  parkportal admin role     [--config FILE] NAME viewer|operator|admin
  parkportal admin token    [--config FILE] [--label TEXT] NAME                    (prints a new API token once)
  parkportal admin list     [--config FILE]
With the daemon running these go through its admin socket (DB_PATH.admin.sock, root only); otherwise they open the database directly`)
}

// cmdAdmin is `parkportal admin ...`: staff accounts on the box.
func cmdAdmin(args []string) error {
	if len(args) == 0 {
		return adminUsage()
	}
	sub := args[0]
	if isHelp(sub) {
		return showHelp(adminUsage())
	}
	synopsis, ok := adminSynopses[sub]
	if !ok {
		return adminUsage()
	}
	fs := newFlags("admin "+sub, synopsis)
	role, label := new(string), new(string)
	switch sub {
	case "add-user":
		role = fs.String("role", "admin", "role of the new account: viewer, operator or admin")
	case "token":
		label = fs.String("label", "", "what the token is for (shown in the console)")
	}
	c, cfg, rest, err := openAPI(fs, args[1:])
	if err != nil {
		return err
	}
	defer c.close()
	switch {
	case sub == "list" && len(rest) == 0:
		var users []admin.User
		if err := c.do("GET", "/api/v1/users", nil, &users); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tCREATED")
		for _, u := range users {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, u.Role, u.Created.Local().Format("2006-01-02 15:04"))
		}
		return tw.Flush()
	case sub == "add-user" && len(rest) == 1:
		if err := admin.CheckName(rest[0]); err != nil {
			return err
		}
		pw, err := readNewPassword()
		if err != nil {
			return err
		}
		if err := c.do("POST", "/api/v1/users", jsonBody(map[string]string{"name": rest[0], "role": *role, "password": pw}), nil); err != nil {
			return err
		}
		fmt.Printf("account %s (%s) created; sign in at http://%s/\n", rest[0], *role, cfg.AdminListen)
		return nil
	case sub == "passwd" && len(rest) == 1:
		pw, err := readNewPassword()
		if err != nil {
			return err
		}
		if err := c.do("PATCH", "/api/v1/users/"+rest[0], jsonBody(map[string]string{"password": pw}), nil); err != nil {
			return err
		}
		fmt.Printf("password of %s changed; its console sessions were ended\n", rest[0])
		return nil
	case sub == "role" && len(rest) == 2:
		return c.do("PATCH", "/api/v1/users/"+rest[0], jsonBody(map[string]string{"role": rest[1]}), nil)
	case sub == "token" && len(rest) == 1:
		var nt admin.NewTokenResponse
		if err := c.do("POST", "/api/v1/users/"+rest[0]+"/tokens", jsonBody(map[string]string{"label": *label}), &nt); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "API token %s for %s (shown once; use as 'Authorization: Bearer TOKEN'):\n", nt.ID, rest[0])
		fmt.Println(nt.Token)
		return nil
	}
	return adminUsage()
}

func readNewPassword() (string, error) {
	pw, err := readPassword("password: ")
	if err != nil {
		return "", err
	}
	if err := admin.CheckPassword(pw); err != nil {
		return "", err
	}
	if _, err := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS); err == nil {
		again, err := readPassword("again: ")
		if err != nil {
			return "", err
		}
		if again != pw {
			return "", errors.New("the passwords differ")
		}
	}
	return pw, nil
}
