package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/config"
	"github.com/parkwifi/parkportal/internal/fake"
	"github.com/parkwifi/parkportal/internal/tz"
	"github.com/parkwifi/parkportal/metrics"
	"github.com/parkwifi/parkportal/session"
	"github.com/parkwifi/parkportal/settings"
	"github.com/parkwifi/parkportal/store"
)

// labConfig writes the lab config with its database in a temp dir.
func labConfig(t *testing.T) (string, *config.Config) {
	t.Helper()
	dir := t.TempDir()
	src := strings.Replace(config.LabDefault, "/tmp/parkportal-lab/parkportal.db", filepath.Join(dir, "pp.db"), 1)
	src = strings.Replace(src, "127.0.0.1:2052", "127.0.0.1:0", 1)
	path := filepath.Join(dir, "parkportal.uci")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, cfg
}

// run calls a command with stdin and returns what it printed.
func runCmd(t *testing.T, stdin string, fn func([]string) error, args ...string) (string, error) {
	t.Helper()
	inR, inW, _ := os.Pipe()
	outR, outW, _ := os.Pipe()
	oldIn, oldOut := os.Stdin, os.Stdout
	os.Stdin, os.Stdout = inR, outW
	go func() { io.WriteString(inW, stdin); inW.Close() }()
	err := fn(args)
	outW.Close()
	os.Stdin, os.Stdout = oldIn, oldOut
	b, _ := io.ReadAll(outR)
	return string(b), err
}

func exercise(t *testing.T, path string) {
	t.Helper()
	if _, err := runCmd(t, "a long password\n", cmdAdmin, "add-user", "--config", path, "--role", "admin", "amal"); err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(t, "", cmdAdmin, "list", "--config", path)
	if err != nil || !strings.Contains(out, "amal") || !strings.Contains(out, "admin") {
		t.Fatalf("admin list: %v\n%s", err, out)
	}
	if _, err := runCmd(t, "short\n", cmdAdmin, "passwd", "--config", path, "amal"); err == nil {
		t.Fatal("short password accepted")
	}
	if _, err := runCmd(t, "", cmdSite, "set", "--config", path, "rate_down=4mbit", "allowed_prefixes=+9743,+9745", "radius.fail_policy=open"); err != nil {
		t.Fatal(err)
	}
	// RADIUS is the config file's: the CLI says where to change it.
	_, err = runCmd(t, "", cmdSite, "set", "--config", path, "radius.fail_policy=closed")
	if err == nil || !strings.Contains(err.Error(), "radius.fail_policy") || !strings.Contains(err.Error(), "config file") {
		t.Fatalf("site set radius.fail_policy: %v", err)
	}
	_, err = runCmd(t, "", cmdSite, "set", "--config", path, "rate_down=0")
	if err == nil || !strings.Contains(err.Error(), "rate_down") {
		t.Fatalf("invalid set: %v", err)
	}
	if _, err := runCmd(t, "", cmdSite, "set", "--config", path, "rate_dwon=1mbit"); err == nil {
		t.Fatal("typo accepted")
	}
	out, err = runCmd(t, "", cmdSite, "get", "--config", path)
	if err != nil || !strings.Contains(out, `"rate_down": "4mbit"`) || !strings.Contains(out, `"fail_policy": "open"`) {
		t.Fatalf("site get: %v\n%s", err, out)
	}
	prof := filepath.Join(t.TempDir(), "profile.json")
	if _, err := runCmd(t, "", cmdSite, "export", "--config", path, prof); err != nil {
		t.Fatal(err)
	}
	if _, err := runCmd(t, "", cmdSite, "import", "--config", path, "--keep-names", prof); err != nil {
		t.Fatal(err)
	}
	out, err = runCmd(t, "", cmdSessions, "list", "--config", path)
	if err != nil || !strings.Contains(out, "PHONE") {
		t.Fatalf("sessions list: %v\n%s", err, out)
	}
	if _, err := runCmd(t, "", cmdSessions, "kick", "--config", path, "nosuch"); err == nil {
		t.Fatal("kicking an unknown session succeeded")
	}
}

// TestCLIOffline runs the commands with no daemon: on the store directly.
func TestCLIOffline(t *testing.T) {
	path, _ := labConfig(t)
	exercise(t, path)
}

// TestCLIThroughDaemon runs them while a daemon's admin server holds the
// database: through its socket.
func TestCLIThroughDaemon(t *testing.T) {
	path, cfg := labConfig(t)
	st, err := store.Open(cfg.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.DiscardHandler)
	mgr := session.NewManager(session.Options{Store: st, Gate: storeOnlyGate{}, Site: cfg.Site.ID, Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rt, err := startAdmin(ctx, cfg, st, mgr, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	exercise(t, path)
	if got := mgr.Policy().RateDown; got != 4_000_000 {
		t.Fatalf("the running daemon's session policy has rate %d after `site set`", got)
	}
	if recs, _ := rt.Settings.Audit(50, 0); len(recs) == 0 || recs[0].Actor != "local-root" {
		t.Fatalf("audit = %+v", recs)
	}
	cancel()
	time.Sleep(50 * time.Millisecond)
}

// startTestAdmin runs startAdmin on cfg until the test ends.
func startTestAdmin(t *testing.T, cfg *config.Config) *AdminRuntime {
	t.Helper()
	st, err := store.Open(cfg.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	mgr := session.NewManager(session.Options{Store: st, Gate: storeOnlyGate{}, Site: cfg.Site.ID, Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	rt, err := startAdmin(ctx, cfg, st, mgr, nil, log)
	if err != nil {
		cancel()
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		// Serve shuts down on ctx; the listener's close makes it return.
		rt.Listener.Close()
		st.Close()
	})
	return rt
}

// TestAdminListenerCapsPerSource: the console's listener holds at most
// adminConnsPerSource connections from one address; one more is refused
// at once while those stay open, and they are still served.
func TestAdminListenerCapsPerSource(t *testing.T) {
	_, cfg := labConfig(t)
	rt := startTestAdmin(t, cfg)
	addr := rt.Listener.Addr().String()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	get := func(c net.Conn) (*http.Response, error) {
		if _, err := io.WriteString(c, "GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
			return nil, err
		}
		return http.ReadResponse(bufio.NewReader(c), nil)
	}
	for i := range adminConnsPerSource + 1 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			if i < adminConnsPerSource {
				t.Fatal(err)
			}
			break // refused so fast that connect saw the reset
		}
		conns = append(conns, c)
		if i == adminConnsPerSource {
			// Accept takes connections in order, so this one comes after
			// the others are held: it must be reset, not served.
			if resp, err := get(c); err == nil {
				resp.Body.Close()
				t.Fatalf("connection %d from one source was served (%s), want it refused", i+1, resp.Status)
			}
		}
	}
	for rt.Listener.Refused() == 0 { // the reset is seen before it is counted
		time.Sleep(time.Millisecond)
	}
	if n := rt.Listener.Open(netip.MustParseAddr("127.0.0.1")); n != adminConnsPerSource {
		t.Fatalf("%d connections open from 127.0.0.1, want %d", n, adminConnsPerSource)
	}
	resp, err := get(conns[0])
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("a connection under the cap: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestDashboardDayIsTheSiteDay: the dashboard's "today" (and so the SMS
// budget left) ends at midnight in the site's time zone, as the SMS
// limiter's day does, whatever zone the process runs in.
func TestDashboardDayIsTheSiteDay(t *testing.T) {
	qatar, err := tz.Load("Asia/Qatar") // UTC+3, no daylight saving; no zone database needed
	if err != nil {
		t.Fatal(err)
	}
	clk := fake.NewClock(time.Date(2026, 3, 1, 20, 59, 0, 0, time.UTC)) // 23:59 in Qatar
	m := metrics.New("park", nil, siteClock(qatar, clk.Now))
	m.SMSSent()
	clk.Advance(2 * time.Minute) // 21:01 UTC: still 1 March in UTC, 2 March in Qatar
	if got := m.Snapshot().Today.SMSSent; got != 0 {
		t.Fatalf("after midnight in Qatar the day's SMS count is %d, want 0 (a new day)", got)
	}

	// And startAdmin wires it: the daemon's metrics tell time in the
	// config's zone, not the process's.
	_, cfg := labConfig(t)
	cfg.Timezone = qatar
	if time.Local.String() == qatar.String() {
		cfg.Timezone = time.FixedZone("UTC-5", -5*3600)
	}
	rt := startTestAdmin(t, cfg)
	if loc := rt.Metrics.Snapshot().Time.Location(); loc != cfg.Timezone {
		t.Fatalf("the dashboard's clock is in %v, want the site's %v", loc, cfg.Timezone)
	}
}

// TestRADIUSPolicyIsTheFiles: the RADIUS policy is the config file's,
// for the daemon and the offline CLI alike: neither can change it, and a
// CLI command run before the first serve seeds the file's (it used to
// seed authorisation off).
func TestRADIUSPolicyIsTheFiles(t *testing.T) {
	path, _ := labConfig(t)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, "\nconfig radius\n\toption authorization '1'\n\tlist auth_server '192.0.2.5:1812'\n\toption secret 'x'\n\toption fail_policy 'closed'\n"...)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// Before any serve: the CLI opens the store first.
	out, err := runCmd(t, "", cmdSite, "get", "--config", path)
	if err != nil || !strings.Contains(out, `"enabled": true`) || !strings.Contains(out, `"192.0.2.5:1812"`) || !strings.Contains(out, `"fail_policy": "closed"`) {
		t.Fatalf("site get before the first serve: %v\n%s", err, out)
	}
	_, err = runCmd(t, "", cmdSite, "set", "--config", path, "radius.enabled=false")
	if err == nil || !strings.Contains(err.Error(), "config file") {
		t.Fatalf("offline site set radius.enabled=false: %v", err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rt := startTestAdmin(t, cfg)
	if got := rt.Settings.Get().RADIUS; !got.Enabled || got.FailPolicy != "closed" {
		t.Fatalf("daemon's RADIUS policy: %+v", got)
	}
	next := rt.Settings.Get()
	next.RADIUS.Servers = []string{"192.0.2.6:1812"}
	var fe settings.FieldErrors
	if _, err := rt.Settings.Update("test", next); !errors.As(err, &fe) || fe["radius.servers"].Code != "radius_in_config" {
		t.Fatalf("daemon: changing the RADIUS servers: %v", err)
	}
}

// TestFileEditsAndOverridesAtStart: the daemon applies a site option
// edited in the file since the last start, and logs, with both values,
// every option where the store's (set in the console) applies instead.
func TestFileEditsAndOverridesAtStart(t *testing.T) {
	path, _ := labConfig(t)
	// The console (here the offline CLI) sets the idle timeout.
	if _, err := runCmd(t, "", cmdSite, "set", "--config", path, "idle_timeout=30m"); err != nil {
		t.Fatal(err)
	}
	// uci: rate_down and idle_timeout change in the file.
	b, _ := os.ReadFile(path)
	src := strings.Replace(string(b), "option rate_down '8mbit'", "option rate_down '6mbit'", 1)
	src = strings.Replace(src, "option idle_timeout '20m'", "option idle_timeout '25m'", 1)
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	start := func() (*AdminRuntime, string) {
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.Open(cfg.DBPath)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		logBuf := &logBuffer{}
		log := slog.New(slog.NewTextHandler(logBuf, nil))
		mgr := session.NewManager(session.Options{Store: st, Gate: storeOnlyGate{}, Site: cfg.Site.ID, Logger: log})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		rt, err := startAdmin(ctx, cfg, st, mgr, nil, log)
		if err != nil {
			t.Fatal(err)
		}
		rt.Listener.Close()
		cancel()
		// The offline CLI must not find this "daemon's" socket.
		for i := 0; i < 200; i++ {
			if _, err := os.Stat(adminSocketPath(cfg)); os.IsNotExist(err) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		return rt, logBuf.String()
	}
	rt, logged := start()
	got := rt.Settings.Get()
	if got.RateDown != 6_000_000 || got.IdleTimeout.D() != 25*time.Minute {
		t.Fatalf("file edits not applied: rate %v, idle %v", got.RateDown, got.IdleTimeout)
	}
	for _, want := range []string{"option=site.rate_down file=6mbit was=8mbit", "option=site.idle_timeout file=25m was=30m"} {
		if !strings.Contains(logged, want) {
			t.Errorf("start log lacks %q:\n%s", want, logged)
		}
	}
	// The console sets it again; the file keeps 25m: the store applies,
	// and every start says so with both values and how to change it.
	if _, err := runCmd(t, "", cmdSite, "set", "--config", path, "idle_timeout=40m"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		rt, logged = start()
		if rt.Settings.Get().IdleTimeout.D() != 40*time.Minute {
			t.Fatalf("console value lost at a restart: %v", rt.Settings.Get().IdleTimeout)
		}
		want := `level=WARN msg="config file option overridden: the site policy in the store (set in the console, the API or the CLI after the file) applies" option=site.idle_timeout file=25m applies=40m to_use_the_file="parkportal site set idle_timeout=25m" set_by=local-root`
		if !strings.Contains(logged, want) {
			t.Errorf("start log lacks the override:\n%s", logged)
		}
	}
}

// TestConfigCheckUsesTheSiteValidator: a file the console would refuse
// (a visitor's rate above the uplink) is refused by every command, with
// the option named, before anything starts.
func TestConfigCheckUsesTheSiteValidator(t *testing.T) {
	path, _ := labConfig(t)
	b, _ := os.ReadFile(path)
	src := strings.Replace(string(b), "option rate_down '8mbit'", "option rate_down '8mbit'\n\toption uplink_down '4mbit'", 1)
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := runCmd(t, "", cmdConfigCheck, "--config", path)
	if err == nil || !strings.Contains(err.Error(), "site.rate_down: higher than the uplink (4mbit)") {
		t.Fatalf("config check: %v", err)
	}
}
