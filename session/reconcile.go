package session

// Keeping the kernel equal to the store: restore at start, periodic and
// on-demand resync, and the sweep that ends expired and idle sessions.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"time"

	"github.com/parkwifi/parkportal/firewall"
	"github.com/parkwifi/parkportal/store"
)

// Restore makes the kernel match the store at start: it ensures our
// rules, sets and qdiscs, then loads every active session into them.
//
// Only a failure to build our kernel state (or to read the store) is
// returned: without it no visitor can be served. One session the kernel
// will not take must not keep the daemon from starting, since under procd
// a failed start is a respawn loop in which no session ever expires.
// Sessions the kernel cannot take back (see ReasonUnrestorable) are
// ended, with a log line each; other failures to load sessions are logged
// and left to the periodic resync to retry.
func (m *Manager) Restore() error {
	if _, err := m.gate.Ensure(); err != nil {
		return fmt.Errorf("ensuring firewall: %w", err)
	}
	if _, err := m.syncAllowlist(); err != nil {
		var load loadError
		if errors.As(err, &load) {
			return err
		}
		m.log.Error("some active sessions could not be restored into the kernel; the next resync retries them", "err", err)
		m.RequestResync()
	}
	return nil
}

// Resync compares kernel and store and repairs drift; it returns the
// number of repairs. It holds the session lock only to hand the gate the
// active sessions: the kernel dumps and the repairs run without it, so
// logins do not wait behind them. (The gate runs its dumps at a lower
// CPU priority; see firewall.Reconcile.)
func (m *Manager) Resync() (repairs int, err error) {
	return m.resyncNow()
}

func (m *Manager) resyncNow() (int, error) {
	r1, err := m.gate.Ensure()
	if err != nil {
		return r1, fmt.Errorf("ensuring firewall: %w", err)
	}
	r2, err := m.syncAllowlist()
	return r1 + r2, err
}

// loadError is a failure to read the active sessions from the store.
type loadError struct{ error }

func (e loadError) Unwrap() error { return e.error }

// syncAllowlist makes the gate's allowlist the active sessions, after
// ending those the kernel cannot take.
//
// The session lock, which every login takes, is held only to collect the
// cached sessions and mark the moment (WantMark): some 0.1 ms at 5,000
// visitors, where reading each session and handing the gate a map of
// them took 1.3 ms, once per resync, and a login that came meanwhile
// waited for it. Cached sessions are never changed in place (a change
// stores a new one), so they are read after letting go.
func (m *Manager) syncAllowlist() (int, error) {
	m.handoverMu.Lock()
	defer m.handoverMu.Unlock()
	if err := m.lockActive(); err != nil {
		return 0, loadError{fmt.Errorf("loading active sessions: %w", err)}
	}
	sessions := m.handoverSessions[:0]
	for _, s := range m.cache {
		sessions = append(sessions, s)
	}
	mark := m.gate.WantMark()
	m.mu.Unlock()
	defer func() {
		clear(sessions) // no ended session kept alive by the buffer
		m.handoverSessions = sessions[:0]
	}()

	want := m.handoverClients[:0]
	type unrestorable struct {
		s   *store.Session
		why string
	}
	var bad []unrestorable
	for _, s := range sessions {
		if why := m.unrestorable(s); why != "" {
			bad = append(bad, unrestorable{s, why})
			continue
		}
		want = append(want, clientOf(s))
	}
	if len(bad) > 0 {
		m.mu.Lock()
		for _, b := range bad {
			if m.cache[b.s.ID] != b.s {
				continue // changed since: the next resync looks again
			}
			// The gate never held it (its allowlist covers the LAN
			// prefix only): end it without asking the gate to remove it.
			if _, err := m.finishLocked(b.s.ID, store.ReasonUnrestorable, false); err != nil {
				m.log.Error("ending a session the kernel cannot take", "session", b.s.ID, "err", err)
			} else {
				m.log.Warn("ended a session the kernel cannot take", "session", b.s.ID, "ip", b.s.IP, "mac", b.s.MAC.String(), "why", b.why)
			}
		}
		m.mu.Unlock()
	}
	m.gate.Want(mark, want)
	clear(want)
	m.handoverClients = want[:0]
	n, err := m.gate.Reconcile()
	if err != nil {
		return n, fmt.Errorf("syncing allowlist: %w", err)
	}
	return n, nil
}

// lockedActive returns the active sessions (copies the caller may keep)
// with m.mu held. The manager keeps the active sessions it last read and
// knows which sessions it changed since (noteChange): it re-reads only
// those instead of decoding thousands of sessions at every sweep and
// resync (tens of milliseconds here, far more on a router). Every
// fullReadEvery, and whenever too much changed to patch, it reads the
// whole store again. Either read runs without the lock (a login must
// not wait for it); what changed during the read is then re-read under
// the lock.
func (m *Manager) lockedActive() ([]*store.Session, error) {
	if err := m.lockActive(); err != nil {
		return nil, err
	}
	return m.copiesLocked(), nil
}

// lockActive takes m.mu and brings m.cache up to date (see lockedActive);
// it returns with m.mu held, or with an error and m.mu not held.
func (m *Manager) lockActive() error {
	m.mu.Lock()
	if m.cache != nil && m.cacheGen >= m.forgotten && m.now().Sub(m.cacheAt) < fullReadEvery {
		if err := m.refreshLocked(); err == nil {
			return nil
		} else if !errors.Is(err, errTooManyChanges) {
			m.mu.Unlock()
			return err
		}
	}
	gen := m.gen
	m.mu.Unlock()
	active, err := m.store.ActiveSessions()
	if err != nil {
		return err
	}
	if m.testHookSnapshot != nil {
		m.testHookSnapshot()
	}
	m.mu.Lock()
	m.cache = make(map[string]*store.Session, len(active))
	for _, s := range active {
		m.cache[s.ID] = s
	}
	m.cacheAt = m.now()
	if gen < m.forgotten {
		gen = 0 // what changed during the read is not known: read again
	}
	if err := m.patchLocked(gen); err != nil {
		if !errors.Is(err, errTooManyChanges) {
			m.cache = nil
			m.mu.Unlock()
			return err
		}
		// Too much changed during the read: read again, under the lock.
		active, err = m.store.ActiveSessions()
		if err != nil {
			m.cache = nil
			m.mu.Unlock()
			return err
		}
		m.cache = make(map[string]*store.Session, len(active))
		for _, s := range active {
			m.cache[s.ID] = s
		}
		m.cacheGen = m.gen
	}
	return nil
}

// errTooManyChanges: more sessions changed than patching is worth.
var errTooManyChanges = errors.New("too many sessions changed to patch")

// refreshLocked brings the cache, current as of m.cacheGen, up to date:
// it re-reads the sessions changed since, letting go of m.mu for the
// reads. During a rush of logins a resync found tens of sessions changed
// since the last one, and decoding them under the lock (up to 0.9 ms at
// 5,000 visitors) held up the logins meanwhile. What changed during the
// reads is re-read under the lock, usually nothing. Call with m.mu held;
// it returns with m.mu held.
func (m *Manager) refreshLocked() error {
	from := m.cacheGen
	stale, err := m.changedSinceLocked(from)
	if err != nil || len(stale) == 0 {
		if err == nil {
			m.cacheGen = m.gen
		}
		return err
	}
	at := m.gen
	m.mu.Unlock()
	read := make(map[string]*store.Session, len(stale))
	for _, id := range stale {
		s, err := m.store.Session(id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			m.mu.Lock()
			return err
		}
		read[id] = s // nil: gone
	}
	if m.testHookSnapshot != nil {
		m.testHookSnapshot()
	}
	m.mu.Lock()
	switch {
	case m.cache == nil || m.cacheGen < m.forgotten:
		// The record of changes was emptied meanwhile: what changed
		// since the cache was current is not known.
		return errTooManyChanges
	case m.cacheGen != from:
		// Another reader brought the cache up to date meanwhile.
		return m.patchLocked(m.cacheGen)
	}
	for id, s := range read {
		if m.changed[id] <= at { // else changed again: patched below
			m.cacheSet(id, s)
		}
	}
	return m.patchLocked(at)
}

// patchLocked re-reads into the cache the sessions changed after gen
// (gen 0: all of them, which is too many) and marks the cache current.
func (m *Manager) patchLocked(gen uint64) error {
	stale, err := m.changedSinceLocked(gen)
	if err != nil {
		return err
	}
	for _, id := range stale {
		s, err := m.store.Session(id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		m.cacheSet(id, s)
	}
	m.cacheGen = m.gen
	return nil
}

// changedSinceLocked returns the sessions changed after gen, or
// errTooManyChanges when that is all of them (gen 0) or more than
// patching is worth.
func (m *Manager) changedSinceLocked(gen uint64) ([]string, error) {
	if gen == 0 {
		return nil, errTooManyChanges
	}
	var stale []string
	for id, g := range m.changed {
		if g > gen {
			stale = append(stale, id)
		}
	}
	if len(stale) > maxPatched {
		return nil, errTooManyChanges
	}
	return stale, nil
}

// cacheSet puts s, as just read from the store, in the cache, or takes
// session id out when s is gone (nil) or no longer active.
func (m *Manager) cacheSet(id string, s *store.Session) {
	if s != nil && s.State == store.Active {
		m.cache[id] = s
	} else {
		delete(m.cache, id)
	}
}

// copiesLocked returns copies of the cached active sessions: callers
// change them (the sweep) or keep them past the lock (interims).
func (m *Manager) copiesLocked() []*store.Session {
	out := make([]*store.Session, 0, len(m.cache))
	for _, s := range m.cache {
		c := *s
		out = append(out, &c)
	}
	return out
}

// fullReadEvery bounds how long the manager trusts its own record of the
// active sessions before it reads them all from the store again.
const fullReadEvery = 10 * time.Minute

// maxPatched bounds the sessions lockedActive re-reads one by one.
const maxPatched = 256

// noteChange records that sessions ids are about to change in the store.
// Call with m.mu held.
func (m *Manager) noteChange(ids ...string) {
	m.gen++
	if m.changed == nil || len(m.changed) >= maxChanged {
		// Start afresh; a reader that began before now cannot know what
		// changed since it began, and reads everything (see forgotten).
		m.changed = make(map[string]uint64)
		m.forgotten = m.gen
	}
	for _, id := range ids {
		m.changed[id] = m.gen
	}
}

// maxChanged bounds the memory of changes.
const maxChanged = 4096

// unrestorable says why the kernel can never take s, or "" when it can:
// the allowlist (a bitmap:ip,mac set over the LAN prefix) holds only
// Ethernet addresses and IPv4 addresses inside the prefix, and the
// shaper gives no class to the prefix's network or broadcast address.
// These are what changes when lan_cidr does.
func (m *Manager) unrestorable(s *store.Session) string {
	if len(s.MAC) != 6 {
		return "not an Ethernet MAC address"
	}
	p := m.lan
	if !p.IsValid() {
		return ""
	}
	ip := s.IP.Unmap()
	if !p.Contains(ip) {
		return "address outside the LAN " + p.String()
	}
	if p.Addr().Is4() && p.Bits() <= 30 && (ip == p.Addr() || ip == broadcast(p)) {
		return "network or broadcast address of the LAN " + p.String()
	}
	return ""
}

// broadcast returns the last address of the IPv4 prefix p.
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (1<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}

// RequestResync asks the Run loop for a resync soon; it never blocks.
func (m *Manager) RequestResync() {
	select {
	case m.resync <- struct{}{}:
	default: // one is already pending
	}
}

func (m *Manager) requestResyncLocked() { m.RequestResync() }

// Sweep ends sessions past their hard expiry or idle for longer than
// their idle timeout, and drops expired pending PINs. It returns how many
// sessions it ended. The kernel's counters and the store are read before
// the session lock is taken.
func (m *Manager) Sweep() (ended int, err error) {
	now := m.now()
	if _, err := m.store.PrunePending(now); err != nil {
		m.log.Error("pruning expired PINs", "err", err)
	}
	usage, err := m.gate.Usage()
	if err != nil {
		m.log.Error("reading traffic counters; idle timeouts wait for the next sweep", "err", err)
	}
	return m.sweep(now, usage)
}

func (m *Manager) sweep(now time.Time, usage map[netip.Addr]firewall.Usage) (int, error) {
	active, err := m.lockedActive()
	if err != nil {
		return 0, fmt.Errorf("loading active sessions: %w", err)
	}
	defer m.mu.Unlock()
	// The sessions this sweep ends take their final counters from this
	// reading, not from one more dump under the lock.
	if usage != nil {
		m.usage, m.usageAt = usage, time.Now()
	}
	var due []string
	defer func() {
		if len(due) == 0 {
			return
		}
		updated, err := m.store.UpdateEach(due, func(x *store.Session) error {
			if x.State != store.Active {
				return store.ErrNotFound
			}
			x.LastActive = now
			m.live[x.ID].fill(x)
			return nil
		})
		if err != nil {
			m.log.Error("recording visitors' activity", "sessions", len(due), "err", err)
		}
		for id, x := range updated {
			if _, ok := m.cache[id]; ok {
				m.cache[id] = x // what was just stored: no re-read needed
			}
		}
	}()
	ended := 0
	for _, s := range active {
		m.observeLocked(s, usage)
		if u, ok := usage[s.IP]; ok && u.Packets != m.activity[s.IP] {
			m.activity[s.IP] = u.Packets
			// Write activity to the store at most once a minute per
			// session (enough for idle timeouts across a restart, and
			// gentle on a router's flash), all due sessions in one write.
			if now.Sub(s.LastActive) >= time.Minute {
				due = append(due, s.ID)
			}
			s.LastActive = now
		}
		var reason store.EndReason
		switch {
		case !now.Before(s.Expires):
			reason = store.ReasonExpired
		case s.IdleTimeout > 0 && usage != nil && now.Sub(s.LastActive) >= s.IdleTimeout: // without counters, idle waits
			reason = store.ReasonIdle
		default:
			continue
		}
		if _, err := m.endLocked(s.ID, reason); err != nil {
			m.log.Error("ending session", "session", s.ID, "err", err)
			continue
		}
		ended++
	}
	return ended, nil
}

// Run sweeps every sweepEvery and resyncs every resyncEvery (or when
// asked) until ctx ends. A resync that fails is tried again soon, after
// firstRetry and then twice as long each time up to resyncEvery, instead
// of at the next tick: the likeliest failure is someone else changing
// our rules at the same moment (an `iptables -F` then `-X` removed the
// chain a repair was filling), and the gate it left half repaired must
// not wait for the 30 s tick, let alone a longer configured one.
//
// Run keeps its goroutine on an OS thread of its own. Measured
// (docs/BENCHMARKS.md, stop 22: BenchmarkLoginDuringResync, nftables,
// interleaved), logins during back-to-back resyncs had a p99 2.06-2.55
// times idle when the resyncs ran on an ordinary goroutine and 1.09-1.65
// times on a locked one; why the runtime's sharing of threads costs the
// logins that much is not established.
func (m *Manager) Run(ctx context.Context, sweepEvery, resyncEvery time.Duration) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	resync := time.NewTicker(resyncEvery)
	defer resync.Stop()
	var retry <-chan time.Time
	wait := firstRetry
	run := func() {
		if m.runResync() {
			retry, wait = nil, firstRetry
			return
		}
		retry = time.After(wait)
		wait = min(2*wait, max(resyncEvery, firstRetry))
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			if _, err := m.Sweep(); err != nil {
				m.log.Error("sweeping sessions", "err", err)
			}
		case <-resync.C:
			run()
		case <-m.resync:
			run()
		case <-retry:
			run()
		}
	}
}

// firstRetry is how soon a failed resync is tried again.
const firstRetry = 250 * time.Millisecond

// runResync resyncs and logs the outcome; it reports whether the resync
// succeeded.
func (m *Manager) runResync() bool {
	n, err := m.Resync()
	if m.onRepair != nil && n > 0 {
		m.onRepair(n)
	}
	if err != nil {
		m.log.Error("resync", "err", err, "repairs", n)
		return false
	}
	if n > 0 {
		m.log.Warn("resync repaired kernel state", "repairs", n)
	}
	return true
}
