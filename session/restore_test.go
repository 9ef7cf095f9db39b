package session

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/firewall"
	"github.com/parkwifi/parkportal/internal/fake"
	"github.com/parkwifi/parkportal/store"
)

// kernelGate is the fake gate with the kernel's refusals: like the
// allowlist (a bitmap:ip,mac set over the LAN prefix) it refuses entries
// outside its prefix, and its Reconcile adds what it can and reports each
// refusal, joined, without saying which entry it was, as the firewall's
// does. Ensure and Reconcile can be made to fail as a whole.
type kernelGate struct {
	*fake.Gate
	lan netip.Prefix

	mu         sync.Mutex
	failEnsure error
	failSync   error
	refused    []error // by the last Want
}

func (g *kernelGate) Ensure() (int, error) {
	g.mu.Lock()
	err := g.failEnsure
	g.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return g.Gate.Ensure()
}

func (g *kernelGate) Allow(c firewall.Client) error {
	if !g.lan.Contains(c.IP) {
		return fmt.Errorf("allowing %s: address outside LAN %s", c.IP, g.lan)
	}
	return g.Gate.Allow(c)
}

func (g *kernelGate) Want(mark uint64, want []firewall.Client) {
	var ok []firewall.Client
	var errs []error
	for _, c := range want {
		if g.lan.Contains(c.IP) {
			ok = append(ok, c)
		} else {
			errs = append(errs, fmt.Errorf("ipset add %s,%s: IP out of range", c.IP, c.MAC))
		}
	}
	g.mu.Lock()
	g.refused = errs
	g.mu.Unlock()
	g.Gate.Want(mark, ok)
}

func (g *kernelGate) Reconcile() (int, error) {
	g.mu.Lock()
	failSync, refused := g.failSync, g.refused
	g.mu.Unlock()
	if failSync != nil {
		return 0, failSync
	}
	n, err := g.Gate.Reconcile()
	return n, errors.Join(append(refused, err)...)
}

// TestRestoreAfterLANChanged: lan_cidr went from 198.51.100.0/24 to
// 198.51.100.0/25 with visitors online. A session now outside the prefix
// (or on its broadcast address) cannot be restored; the daemon must still
// start, end those sessions with a reason RADIUS and staff can see, and
// restore the rest. Before, Restore failed and procd respawned the daemon
// forever.
func TestRestoreAfterLANChanged(t *testing.T) {
	f := newFixture(t)
	inside := f.activate(t, login(1))                                               // .11
	outside := f.activate(t, Login{MAC: hw(2), IP: ip(200), Phone: "+97433123402"}) // .200
	bcast := f.activate(t, Login{MAC: hw(3), IP: ip(127), Phone: "+97433123403"})   // .127, the /25's broadcast
	ended := f.activate(t, Login{MAC: hw(4), IP: ip(201), Phone: "+97433123404"})   // already over
	if _, err := f.m.End(ended.ID, store.ReasonLogout); err != nil {
		t.Fatal(err)
	}

	lan := netip.MustParsePrefix("198.51.100.0/25")
	gate := &kernelGate{Gate: fake.NewGate(), lan: lan}
	obs := &recorder{}
	m := NewManager(Options{Store: f.st, Gate: gate, Site: "park", Policy: policy, Now: f.clock.Now, LANPrefix: lan,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	m.AddObserver(obs)
	if err := m.Restore(); err != nil {
		t.Fatalf("Restore with sessions outside the new LAN = %v; want the daemon to start", err)
	}
	if want := []string{"198.51.100.11/02:00:00:00:00:01 8000000/4000000"}; !slices.Equal(gate.State(), want) {
		t.Errorf("gate after Restore = %q, want %q", gate.State(), want)
	}
	for _, s := range []*store.Session{outside, bcast} {
		if got := f.stored(t, s.ID); got.State != store.Ended || got.EndReason != store.ReasonUnrestorable || !got.Ended.Equal(f.clock.Now()) {
			t.Errorf("session at %s after Restore = %s/%s, want ended as %s", s.IP, got.State, got.EndReason, store.ReasonUnrestorable)
		}
	}
	if got := f.stored(t, inside.ID); got.State != store.Active {
		t.Errorf("session inside the LAN = %s, want active", got.State)
	}
	if got := f.stored(t, ended.ID); got.EndReason != store.ReasonLogout {
		t.Errorf("an already ended session was re-ended: %s", got.EndReason)
	}
	ev := obs.take()
	slices.Sort(ev)
	want := []string{"ended " + outside.ID + " unrestorable", "ended " + bcast.ID + " unrestorable"}
	slices.Sort(want)
	if !slices.Equal(ev, want) {
		t.Errorf("observers heard %q, want %q (RADIUS sends their Accounting-Stop)", ev, want)
	}
	// The resync that follows finds nothing left to fail on.
	if n, err := m.Resync(); n != 0 || err != nil {
		t.Errorf("Resync after Restore = %d, %v; want nothing to repair", n, err)
	}
}

// TestRestoreFailures: only a failure to build our kernel state stops the
// start; a failed allowlist load is left to the resync, which is asked
// for at once.
func TestRestoreFailures(t *testing.T) {
	f := newFixture(t)
	a := f.activate(t, login(1))
	lan := netip.MustParsePrefix("198.51.100.0/24")
	gate := &kernelGate{Gate: fake.NewGate(), lan: lan}
	m := NewManager(Options{Store: f.st, Gate: gate, Site: "park", Policy: policy, Now: f.clock.Now, LANPrefix: lan,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})

	gate.failEnsure = errors.New("iptables: no chain/target/match by that name")
	if err := m.Restore(); err == nil || !strings.Contains(err.Error(), "no chain") {
		t.Errorf("Restore with Ensure failing = %v, want that error", err)
	}
	gate.failEnsure = nil

	gate.failSync = errors.New("netlink: device or resource busy")
	if err := m.Restore(); err != nil {
		t.Errorf("Restore with the allowlist load failing = %v, want a start", err)
	}
	select {
	case <-m.resync:
	default:
		t.Error("no resync requested after a failed allowlist load")
	}
	if got := f.stored(t, a.ID); got.State != store.Active {
		t.Errorf("a session was ended over a failed allowlist load: %s/%s", got.State, got.EndReason)
	}
	gate.failSync = nil
	if n, err := m.Resync(); n != 1 || err != nil || !gate.Has(a.IP, a.MAC) {
		t.Errorf("Resync after the failure = %d, %v; want the session restored", n, err)
	}
}

// neighbours is a neighbour table: the devices present, as "ip/mac".
type neighbours struct {
	mu      sync.Mutex
	present map[string]bool
}

func (n *neighbours) InUse(ip netip.Addr, mac net.HardwareAddr) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.present[ip.String()+"/"+mac.String()]
}

func (n *neighbours) set(ip netip.Addr, mac net.HardwareAddr, here bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.present[ip.String()+"/"+mac.String()] = here
}

// TestActivateRefusesAddressCopier: a device that takes a logged-in
// visitor's address cannot log in with its own number and knock the
// visitor offline while the visitor is still there, whether the neighbour
// table still names the visitor or (having been answered by the copier
// since) names the copier while the visitor's traffic goes on. Once the
// visitor has gone, the address's next holder logs in and the old session
// ends.
func TestActivateRefusesAddressCopier(t *testing.T) {
	f := newFixture(t)
	nb := &neighbours{present: map[string]bool{}}
	f.m.neigh = nb
	visitor := f.activate(t, login(1)) // 02:..:01 at .11
	nb.set(visitor.IP, visitor.MAC, true)
	f.obs.take()
	copier := Login{MAC: hw(2), IP: visitor.IP, Phone: "+97433999999", Lang: "en"}
	refused := func(when string) {
		t.Helper()
		s, err := f.m.Activate(copier)
		if !errors.Is(err, ErrAddressInUse) || s != nil {
			t.Fatalf("%s: Activate by a device copying the visitor's address = %v, %v; want ErrAddressInUse", when, s, err)
		}
		if got := f.stored(t, visitor.ID); got.State != store.Active {
			t.Errorf("%s: the visitor's session = %s/%s, want still active", when, got.State, got.EndReason)
		}
		if want := []string{"198.51.100.11/02:00:00:00:00:01 8000000/4000000"}; !slices.Equal(f.gate.State(), want) {
			t.Errorf("%s: gate = %q, want only the visitor %q", when, f.gate.State(), want)
		}
		if _, err := f.m.ActiveByMAC(hw(2)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: the copier got a session: %v", when, err)
		}
		if ev := f.obs.take(); len(ev) != 0 {
			t.Errorf("%s: observers heard %q after a refused login", when, ev)
		}
	}
	refused("neighbour table names the visitor")

	// The copier's ARP answers took over the neighbour entry, but the
	// visitor's own traffic goes on through its allowlist entry.
	nb.set(visitor.IP, visitor.MAC, false)
	f.clock.Advance(15 * time.Minute)
	f.gate.Traffic(visitor.IP, 10)
	if _, err := f.m.Sweep(); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(15 * time.Minute)
	refused("visitor's traffic 15 minutes ago")

	// The visitor leaves: no traffic for its idle timeout, no neighbour
	// entry. (The sweep that would end it as idle has not run yet.)
	f.clock.Advance(policy.IdleTimeout - 15*time.Minute)
	next := f.activate(t, copier)
	if got := f.stored(t, visitor.ID); got.State != store.Ended || got.EndReason != store.ReasonReplaced {
		t.Errorf("the departed visitor's session = %s/%s, want ended as replaced", got.State, got.EndReason)
	}
	if want := []string{"198.51.100.11/02:00:00:00:00:02 8000000/4000000"}; !slices.Equal(f.gate.State(), want) {
		t.Errorf("gate = %q, want only the new device %q", f.gate.State(), want)
	}
	// The same device logging in again is never refused, whatever the
	// neighbour table says.
	nb.set(next.IP, next.MAC, true)
	f.activate(t, copier)
}
