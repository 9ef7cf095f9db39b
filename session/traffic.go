package session

// Per-session traffic totals from the kernel's counters, which restart
// from zero whenever a set entry or class is recreated.

import (
	"github.com/parkwifi/parkportal/firewall"
	"github.com/parkwifi/parkportal/store"
)

// traffic accumulates kernel counters into totals that survive the
// counters restarting from zero.
type traffic struct {
	base, last firewall.Usage
	// stored is what the store held when this session was picked up
	// (after a daemon restart, say); primed once the first kernel
	// reading has been reconciled with it.
	stored firewall.Usage
	primed bool
	// start is subtracted from the totals: what the kernel had counted
	// before this session, when it took over the same device and
	// address from a session it replaced (the entry is not re-created).
	start firewall.Usage
}

// newTraffic starts from what the store already counted for s.
func newTraffic(s *store.Session) *traffic {
	return &traffic{stored: firewall.Usage{Packets: s.PacketsUp, Bytes: s.BytesUp, PacketsDown: s.PacketsDown, BytesDown: s.BytesDown}}
}

// observe takes new kernel counters and returns the bytes moved since
// the previous observation.
func (t *traffic) observe(u firewall.Usage) (down, up uint64) {
	if !t.primed {
		// The kernel's entry either survived the restart (its counters
		// already include what was stored) or was re-created (they start
		// near zero): either way the totals continue from the stored
		// figures, off at most by the traffic of one sweep.
		t.primed = true
		t.base = firewall.Usage{
			Packets: sub(t.stored.Packets, u.Packets), Bytes: sub(t.stored.Bytes, u.Bytes),
			PacketsDown: sub(t.stored.PacketsDown, u.PacketsDown), BytesDown: sub(t.stored.BytesDown, u.BytesDown),
		}
		t.last = u
		return 0, 0
	}
	before := t.total()
	// A counter that went backwards was reset: bank what it had reached.
	if u.Packets < t.last.Packets || u.Bytes < t.last.Bytes {
		t.base.Packets += t.last.Packets
		t.base.Bytes += t.last.Bytes
	}
	if u.PacketsDown < t.last.PacketsDown || u.BytesDown < t.last.BytesDown {
		t.base.PacketsDown += t.last.PacketsDown
		t.base.BytesDown += t.last.BytesDown
	}
	t.last = u
	after := t.total()
	return after.BytesDown - before.BytesDown, after.Bytes - before.Bytes
}

func sub(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return 0
}

func (t *traffic) total() firewall.Usage {
	return firewall.Usage{
		Packets: t.base.Packets + t.last.Packets, Bytes: t.base.Bytes + t.last.Bytes,
		PacketsDown: t.base.PacketsDown + t.last.PacketsDown, BytesDown: t.base.BytesDown + t.last.BytesDown,
	}
}

// fill writes the totals into s; a nil traffic leaves s as it is.
func (t *traffic) fill(s *store.Session) {
	if t == nil {
		return
	}
	if !t.primed {
		return
	}
	u := t.total()
	s.PacketsUp, s.BytesUp = sub(u.Packets, t.start.Packets), sub(u.Bytes, t.start.Bytes)
	s.PacketsDown, s.BytesDown = sub(u.PacketsDown, t.start.PacketsDown), sub(u.BytesDown, t.start.BytesDown)
}

// Live returns the active sessions with their traffic counted up to the
// last sweep (for accounting updates and the staff console).
func (m *Manager) Live() ([]*store.Session, error) {
	active, err := m.store.ActiveSessions()
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range active {
		m.live[s.ID].fill(s)
	}
	return active, nil
}
