package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/internal/fake"
	"github.com/parkwifi/parkportal/session"
	"github.com/parkwifi/parkportal/store"
)

// TestDBCheckDamagedFile: `parkportal db check` on a file whose pages
// were overwritten reports the damage with the path and what to do, and
// neither panics nor changes the file. A sound file passes.
func TestDBCheckDamagedFile(t *testing.T) {
	cfgPath, cfg := labConfig(t)
	st, err := store.Open(cfg.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		s := &store.Session{ID: fmt.Sprintf("s%04d", i), MAC: net.HardwareAddr{2, 0, 0x5e, 0, 0x53, byte(i)},
			IP: netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i%200)}), Phone: "+97433123456",
			Start: time.Now(), Expires: time.Now().Add(time.Hour), State: store.Ended, Ended: time.Now()}
		if _, err := st.Activate(s, ""); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	out, err := runCmd(t, "", cmdDBCheck, "--config", cfgPath)
	if err != nil || !strings.Contains(out, "db ok") || !strings.Contains(out, "200 sessions (0 active)") {
		t.Fatalf("db check of a sound file: %v\n%s", err, out)
	}

	// Overwrite every page after the two meta pages.
	b, err := os.ReadFile(cfg.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	for i := 2 * page; i < len(b); i++ {
		b[i] = byte(i*7 + 3)
	}
	if err := os.WriteFile(cfg.DBPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("db check panicked on a damaged file: %v", r)
			}
		}()
		out, err = runCmd(t, "", cmdDBCheck, "--config", cfgPath)
	}()
	if err == nil || !strings.Contains(err.Error(), cfg.DBPath) || !strings.Contains(err.Error(), "Move it aside") {
		t.Errorf("db check of a damaged file = %v\n%s\nwant a refusal naming %s and saying to move it aside", err, out, cfg.DBPath)
	}
	if after, _ := os.ReadFile(cfg.DBPath); string(after) != string(b) {
		t.Error("db check changed the damaged file")
	}
	// serve's Open refuses the same file the same way.
	if _, err := store.Open(cfg.DBPath); err == nil || !strings.Contains(err.Error(), "Move it aside (mv "+cfg.DBPath) {
		t.Errorf("store.Open of the damaged file = %v", err)
	}
}

// slowGate records the order of kernel work, and takes a while over a
// resync, as iptables does on a router.
type slowGate struct {
	*fake.Gate
	mu      sync.Mutex
	events  []string
	started chan struct{}
}

func (g *slowGate) record(e string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.events = append(g.events, e)
}

func (g *slowGate) Ensure() (int, error) {
	select {
	case g.started <- struct{}{}:
	default:
	}
	time.Sleep(200 * time.Millisecond)
	g.record("ensure")
	return g.Gate.Ensure()
}

// TestStopWaitsForLoops: the stop returns only after a resync in flight
// has finished, so the firewall's teardown that follows cannot be undone
// by it.
func TestStopWaitsForLoops(t *testing.T) {
	_, cfg := labConfig(t)
	st, err := store.Open(cfg.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	gate := &slowGate{Gate: fake.NewGate(), started: make(chan struct{}, 1)}
	mgr := session.NewManager(session.Options{Store: st, Gate: gate, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	bg := newBackground(context.Background())
	bg.Go(func(ctx context.Context) { mgr.Run(ctx, time.Hour, time.Hour) })
	mgr.RequestResync()
	select {
	case <-gate.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the resync never started")
	}
	bg.Stop()
	gate.record("teardown")
	bg.Stop() // a second stop (the deferred one) returns at once
	gate.mu.Lock()
	defer gate.mu.Unlock()
	if got := strings.Join(gate.events, ","); got != "ensure,teardown" {
		t.Errorf("kernel work in order %q; want the resync's ensure before the teardown", got)
	}
}
