package session

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/internal/fake"
	"github.com/parkwifi/parkportal/store"
)

// flakyEnsureGate fails its first fails Ensure calls, as the iptables
// backend does when someone deletes the chain a repair is filling.
type flakyEnsureGate struct {
	*fake.Gate
	fails, calls atomic.Int32
}

func (g *flakyEnsureGate) Ensure() (int, error) {
	if g.calls.Add(1) <= g.fails.Load() {
		return 0, errors.New("clearing chain filter/pp-forward: No chain/target/match by that name")
	}
	return g.Gate.Ensure()
}

// TestFailedResyncIsRetried: a resync that fails is tried again soon, not
// at the next tick (an hour here), until it succeeds; then the retries
// stop.
func TestFailedResyncIsRetried(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "pp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	g := &flakyEnsureGate{Gate: fake.NewGate()}
	m := NewManager(Options{Store: st, Gate: g, Site: "park", Policy: policy, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := m.Restore(); err != nil {
		t.Fatal(err)
	}
	g.calls.Store(0)
	g.fails.Store(2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx, time.Hour, time.Hour) }()
	defer func() { cancel(); <-done }()
	m.RequestResync()
	deadline := time.Now().Add(10 * time.Second)
	for g.calls.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := g.calls.Load(); n < 3 {
		t.Fatalf("%d resync attempts in 10 s after two failures; want a third (the hourly tick is far off)", n)
	}
	// Succeeded on the third: no more attempts (the next retry would
	// have come within a second).
	time.Sleep(1500 * time.Millisecond)
	if n := g.calls.Load(); n != 3 {
		t.Errorf("%d resync attempts; want 3, none after the one that succeeded", n)
	}
}
