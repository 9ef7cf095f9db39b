package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/config"
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
	rt, err := startAdmin(ctx, cfg, st, mgr, settings.RADIUS{FailPolicy: "open"}, log)
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
