// Package session runs visitors' sessions from login to end: it writes
// them to the store (the truth) and tells the gate (the kernel) to follow,
// ends them on timeout, idleness, logout or kick, and periodically makes
// the kernel match the store again.
package session

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/parkwifi/parkportal/firewall"
	"github.com/parkwifi/parkportal/store"
)

// Gate is the kernel side of sessions; *firewall.Firewall implements it
// and tests use a fake.
type Gate interface {
	Ensure() (repairs int, err error)
	Allow(firewall.Client) error
	Deny(firewall.Client) error
	// WantMark and Want hand the gate the clients its allowlist must
	// hold: WantMark (cheap) under the session lock, where the list is
	// read, so that the list is ordered with Allow and Deny; Want after
	// letting go, and the gate keeps what Allow and Deny changed since
	// the mark. Reconcile then makes the kernel match, without the lock.
	// Want must not keep clients: the manager reuses it.
	WantMark() uint64
	Want(mark uint64, clients []firewall.Client)
	Reconcile() (repairs int, err error)
	Usage() (map[netip.Addr]firewall.Usage, error)
}

// Preparer is a Gate that can get a device ready for its login before
// it logs in (firewall.Firewall makes its shaping classes, whose creation
// cost grows with the number of visitors, so the login itself stays
// fast). It must let nothing through.
type Preparer interface {
	Prepare(ip netip.Addr, down, up uint64) error
}

// Neighbors tells whether a device is still on the LAN at an address;
// *firewall.Firewall implements it from the kernel's neighbour table.
type Neighbors interface {
	// InUse reports whether ip may still be mac's; when it cannot tell,
	// it says yes.
	InUse(ip netip.Addr, mac net.HardwareAddr) bool
}

// ErrAddressInUse is Activate's refusal of a login from an address that
// another device's active session holds while that device is still on
// the LAN at it: the new device copied the visitor's address, and letting
// it log in would end the visitor's session. The visitor should try
// again once the address is free (or after renewing its DHCP lease).
var ErrAddressInUse = errors.New("the address belongs to another device's active session and that device is still on the network")

// Policy is the part of the site's settings sessions need.
type Policy struct {
	SessionTimeout   time.Duration
	IdleTimeout      time.Duration
	RateDown, RateUp uint64
}

// Observer hears about session changes (RADIUS accounting, metrics).
// Calls are made synchronously after the store and the kernel agree, and
// must not block for long.
type Observer interface {
	SessionStarted(*store.Session)
	SessionEnded(*store.Session)
}

// Manager owns the lifecycle of sessions.
type Manager struct {
	store *store.Store
	gate  Gate
	now   func() time.Time
	log   *slog.Logger
	site  string
	lan   netip.Prefix
	neigh Neighbors

	mu sync.Mutex // serialises lifecycle changes
	// handoverMu makes one hand-over of the allowlist to the gate at a
	// time (WantMark to Want, see syncAllowlist); logins never take it.
	handoverMu sync.Mutex
	// handoverSessions and handoverClients are syncAllowlist's lists of
	// thousands, kept between resyncs (guarded by handoverMu) instead of
	// made anew as garbage every time.
	handoverSessions []*store.Session
	handoverClients  []firewall.Client
	// gen counts lifecycle changes (start, end, move, extension, rate,
	// timeouts), and changed holds, per session, the gen of its last
	// change: a loop that read the store without the lock re-reads only
	// the sessions that changed since (see lockedActive).
	gen     uint64
	changed map[string]uint64
	// forgotten is the gen at which changed was last emptied: changes
	// before it are no longer known.
	forgotten uint64
	// cache is the active sessions as of cacheGen (nil: not read yet),
	// read in full at cacheAt (see lockedActive).
	cache     map[string]*store.Session
	cacheGen  uint64
	cacheAt   time.Time
	policy    Policy
	observers []Observer
	// activity remembers the last allowlist packet count per IP, so a
	// session counts as active only when the kernel saw its traffic.
	activity map[netip.Addr]uint64
	// live holds each active session's traffic totals. Kernel counters
	// restart from zero when an entry is re-added (resync, new IP); the
	// totals carry on.
	live map[string]*traffic
	// devices remembers what DHCP said about recently seen devices, so a
	// session started after the device's DHCP exchange still gets it.
	devices map[string]DeviceInfo
	// usage is the latest reading of the kernel's counters taken to end
	// sessions, and usageAt when (monotonic): a sweep that ends many
	// sessions reads them once per usageMaxAge, not once per session.
	usage   map[netip.Addr]firewall.Usage
	usageAt time.Time

	resync chan struct{}

	// testHookSnapshot runs between lockedActive's read of the store
	// (whole, or the sessions changed since its last) and its taking the
	// lock: tests change sessions there.
	testHookSnapshot func()

	onRepair  func(int)
	onTraffic func(down, up uint64)
}

// Options configure a Manager.
type Options struct {
	Store  *store.Store
	Gate   Gate
	Site   string
	Policy Policy
	Now    func() time.Time // nil means time.Now
	Logger *slog.Logger
	// LANPrefix is the visitors' address range, the one the gate's
	// allowlist covers (lan_cidr). When set, sessions whose address the
	// kernel cannot take (outside it, after lan_cidr changed) are ended
	// as store.ReasonUnrestorable by Restore and Resync.
	LANPrefix netip.Prefix
	// Neighbors, when set, lets Activate refuse a login that would take
	// the address of another device's session while that device is still
	// there (see ErrAddressInUse).
	Neighbors Neighbors
	// OnRepair hears how many pieces of kernel state a resync repaired;
	// OnTraffic the bytes visitors moved since the last sweep. Both are
	// for metrics and may be nil.
	OnRepair  func(n int)
	OnTraffic func(down, up uint64)
}

// NewManager returns a Manager; call Restore before serving visitors.
func NewManager(o Options) *Manager {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Manager{
		store: o.Store, gate: o.Gate, now: o.Now, log: o.Logger, site: o.Site, lan: o.LANPrefix.Masked(), neigh: o.Neighbors,
		policy: o.Policy, activity: map[netip.Addr]uint64{}, live: map[string]*traffic{}, devices: map[string]DeviceInfo{},
		resync:   make(chan struct{}, 1),
		onRepair: o.OnRepair, onTraffic: o.OnTraffic,
	}
}

// AddObserver registers o for future session changes.
func (m *Manager) AddObserver(o Observer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.observers = append(m.observers, o)
}

// SetPolicy changes the site policy. New sessions get all of it; active
// sessions that run at the site's old rates move to the new rates at once
// (their classes change in place, connections carry on), while sessions
// whose rate was set for them (RADIUS, staff) keep theirs. Timeouts of
// active sessions are left as they were granted.
func (m *Manager) SetPolicy(p Policy) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.policy
	m.policy = p
	if old.RateDown == p.RateDown && old.RateUp == p.RateUp {
		return
	}
	active, err := m.store.ActiveSessions()
	if err != nil {
		m.log.Error("applying new site rates to active sessions", "err", err)
		return
	}
	moved := 0
	for _, s := range active {
		down, up := s.RateDown, s.RateUp
		if down == old.RateDown {
			down = p.RateDown
		}
		if up == old.RateUp {
			up = p.RateUp
		}
		if down == s.RateDown && up == s.RateUp {
			continue
		}
		m.noteChange(s.ID)
		ns, err := m.store.Update(s.ID, func(x *store.Session) error {
			x.RateDown, x.RateUp = down, up
			return nil
		})
		if err != nil {
			m.log.Error("applying new site rates", "session", s.ID, "err", err)
			continue
		}
		if err := m.gate.Allow(clientOf(ns)); err != nil {
			m.log.Error("applying new site rates", "session", s.ID, "err", err)
			m.requestResyncLocked()
			continue
		}
		moved++
	}
	if moved > 0 {
		m.log.Info("site rates changed for active sessions", "sessions", moved, "down", p.RateDown, "up", p.RateUp)
	}
}

// Policy returns the current site policy.
func (m *Manager) Policy() Policy {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.policy
}

func clientOf(s *store.Session) firewall.Client {
	return firewall.Client{MAC: s.MAC, IP: s.IP, RateDown: s.RateDown, RateUp: s.RateUp}
}

// newID returns a session id that is unique across restarts and gateways
// (it becomes the RADIUS Acct-Session-Id).
func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Login is what the portal knows once a visitor's PIN checked out.
type Login struct {
	MAC   net.HardwareAddr
	IP    netip.Addr
	Phone string
	Lang  string
	// Grant, when set, overrides the site policy for this session
	// (from a RADIUS Access-Accept); zero fields keep the site's value.
	Grant *Grant
}

// Grant is a per-session policy from central authorisation.
type Grant struct {
	SessionTimeout, IdleTimeout time.Duration
	RateDown, RateUp            uint64
	InterimInterval             time.Duration
	Class                       []byte
}

// Activate starts a session for l: first durably in the store, then in
// the kernel. Only when both hold does it return, so a visitor who is
// told "connected" is online and stays online across a daemon crash. If
// the kernel refuses, the session is ended again and an error returned:
// nothing is left half-applied.
//
// A login ends the device's earlier session, and any other device's
// session at the same address (the address was handed on). But when that
// other device is still there, the login is refused with ErrAddressInUse:
// otherwise a device that copies a visitor's address could log in with
// its own number and knock the visitor offline.
func (m *Manager) Activate(l Login) (*store.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkAddressFreeLocked(l); err != nil {
		return nil, err
	}
	now := m.now()
	p := m.policy
	s := &store.Session{
		ID: newID(), MAC: l.MAC, IP: l.IP, Phone: l.Phone, Site: m.site, Lang: l.Lang,
		Start: now, Expires: now.Add(p.SessionTimeout), IdleTimeout: p.IdleTimeout, LastActive: now,
		RateDown: p.RateDown, RateUp: p.RateUp, State: store.Active,
	}
	if d, ok := m.devices[l.MAC.String()]; ok {
		s.Hostname, s.Vendor = d.Hostname, d.Vendor
	}
	if g := l.Grant; g != nil {
		if g.SessionTimeout > 0 {
			s.Expires = now.Add(g.SessionTimeout)
		}
		if g.IdleTimeout > 0 {
			s.IdleTimeout = g.IdleTimeout
		}
		if g.RateDown > 0 {
			s.RateDown = g.RateDown
		}
		if g.RateUp > 0 {
			s.RateUp = g.RateUp
		}
		s.InterimInterval, s.Class = g.InterimInterval, g.Class
	}
	// A session this login replaces ends with the kernel's counters as
	// they are now (read only when there is one: most logins replace
	// nothing). They go into its stored end, and so into its Stop.
	m.usage = nil
	m.noteChange(s.ID)
	var carried *traffic
	replaced, err := m.store.ActivateWithFinal(s, "", func(old *store.Session) {
		usage := m.usageLocked()
		m.countLocked(old, usage)
		if u, ok := usage[old.IP]; ok && old.IP == s.IP && old.MAC.String() == s.MAC.String() {
			// The same device at the same address: the kernel's entry
			// and its counters carry on into the new session, which
			// counts from here.
			carried = &traffic{primed: true, last: u, start: u}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("storing session for %s: %w", l.MAC, err)
	}
	for _, old := range replaced {
		m.noteChange(old.ID)
		if old.IP != s.IP || old.MAC.String() != s.MAC.String() {
			if err := m.gate.Deny(clientOf(old)); err != nil {
				m.log.Error("removing replaced session from firewall", "session", old.ID, "err", err)
			}
		}
		delete(m.live, old.ID)
		m.notifyEnded(old)
	}
	if carried != nil {
		m.live[s.ID] = carried
	}
	if err := m.gate.Allow(clientOf(s)); err != nil {
		// A replaced session of this very device may still be in the
		// kernel; take it out, and have a resync settle what is left.
		if derr := m.gate.Deny(clientOf(s)); derr != nil {
			m.log.Error("removing device after failed allow", "err", derr)
		}
		m.requestResyncLocked()
		m.noteChange(s.ID)
		if _, uerr := m.store.Update(s.ID, func(x *store.Session) error {
			x.State, x.EndReason, x.Ended = store.Ended, "firewall-error", now
			return nil
		}); uerr != nil {
			err = errors.Join(err, uerr)
		}
		return nil, fmt.Errorf("allowing %s %s: %w", l.MAC, l.IP, err)
	}
	delete(m.activity, s.IP)
	for _, o := range m.observers {
		o.SessionStarted(s)
	}
	m.log.Info("session started", "session", s.ID, "mac", s.MAC.String(), "ip", s.IP, "expires", s.Expires.Format(time.RFC3339))
	return s, nil
}

// checkAddressFreeLocked refuses a login from l.IP while another device's
// active session holds that address and that device is still in use. Two
// signs say it is, and either suffices:
//
//   - the neighbour table still has that device at the address, as the
//     portal asks before it moves a session off an address;
//   - the session is not idle: it started, or the allowlist's counters
//     (which only that device's own address-and-MAC pair moves) saw its
//     traffic, within its idle timeout (LastActive, kept by the sweep).
//
// The second is needed because the first is weak exactly here: the
// portal identified the new device by the neighbour table's entry for
// the address, so at the moment of its login that entry usually names
// the new device, not the visitor (the e2e test shows it). A device that
// got the address from the DHCP server after the visitor left passes
// both, as long as leases outlast the idle timeout (OpenWrt's default
// lease is 12 h): the server does not hand an address on before the lease
// expires. A session of the same device (same MAC, at another address)
// is not checked: the device has evidently moved, and its old address
// can linger in the neighbour table long after.
func (m *Manager) checkAddressFreeLocked(l Login) error {
	if m.neigh == nil {
		return nil
	}
	old, err := m.store.ActiveByIP(l.IP)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking who holds %s: %w", l.IP, err)
	}
	if old.MAC.String() == l.MAC.String() {
		return nil
	}
	hold := old.IdleTimeout
	if hold <= 0 {
		hold = defaultAddressHold
	}
	var sign string
	switch {
	case m.neigh.InUse(old.IP, old.MAC):
		sign = "neighbour table"
	case m.now().Sub(old.LastActive) < hold:
		sign = "recent traffic"
	default:
		return nil
	}
	m.log.Warn("login refused: another device's active session holds the address and that device is still in use",
		"ip", l.IP, "mac", l.MAC.String(), "session", old.ID, "session_mac", old.MAC.String(), "sign", sign)
	return fmt.Errorf("activating %s at %s (held by session %s, %s): %w", l.MAC, l.IP, old.ID, sign, ErrAddressInUse)
}

// defaultAddressHold is how long after its last traffic a session without
// an idle timeout keeps its address from another device's login.
const defaultAddressHold = 5 * time.Minute

// End ends session id for reason and removes it from the kernel. Its
// traffic totals are read from the kernel's counters just before the
// end is stored (not taken from the last sweep, which may be seconds
// old), so its accounting Stop says what the visitor really moved.
func (m *Manager) End(id string, reason store.EndReason) (*store.Session, error) {
	// A logout or kick on its own: the counters are read now, before the
	// lock, so that logins do not wait for a dump of every visitor's; the
	// end itself (the cut, then the store) follows at once.
	usage := m.readUsage()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.usage, m.usageAt = usage, time.Now()
	return m.endLocked(id, reason)
}

// readUsage reads the kernel's counters without the lock; nil when they
// cannot be read (usageLocked then tries again under the lock).
func (m *Manager) readUsage() map[netip.Addr]firewall.Usage {
	u, err := m.gate.Usage()
	if err != nil {
		return nil
	}
	return u
}

func (m *Manager) endLocked(id string, reason store.EndReason) (*store.Session, error) {
	return m.finishLocked(id, reason, true)
}

// finishLocked ends session id in the store and tells the observers;
// with deny, it also takes the session out of the kernel. The session's
// final traffic comes from the kernel's counters read right before the
// session is cut off (within usageMaxAge when a sweep ends several), and
// is written with the end, so the end event the store records carries
// it. The kernel goes first here: the store's write (an fsync, which a
// busy flash can take seconds over) would otherwise leave the visitor
// downloading, uncounted, between the reading and the cut. Should the
// store then fail, the store still says active and the next resync lets
// the visitor back in: the two disagree only towards closed.
func (m *Manager) finishLocked(id string, reason store.EndReason, deny bool) (*store.Session, error) {
	cur, err := m.store.Session(id)
	if err != nil {
		return nil, fmt.Errorf("ending session %s: %w", id, err)
	}
	if cur.State != store.Active {
		return cur, nil
	}
	var usage map[netip.Addr]firewall.Usage
	if deny {
		// Without deny the kernel never held the session (Restore and
		// Resync end sessions it cannot take): nothing to read.
		usage = m.usageLocked()
		if err := m.gate.Deny(clientOf(cur)); err != nil {
			// The next resync removes what is left.
			m.log.Error("removing ended session from firewall", "session", id, "err", err)
			m.requestResyncLocked()
		}
	}
	var wasActive bool
	m.noteChange(id)
	s, err := m.store.Update(id, func(x *store.Session) error {
		wasActive = x.State == store.Active
		if wasActive {
			x.State, x.EndReason, x.Ended = store.Ended, reason, m.now()
			m.countLocked(x, usage)
		}
		return nil
	})
	if err != nil {
		if deny {
			m.requestResyncLocked()
		}
		return nil, fmt.Errorf("ending session %s: %w", id, err)
	}
	if !wasActive {
		return s, nil
	}
	delete(m.activity, s.IP)
	delete(m.live, id)
	m.notifyEnded(s)
	m.log.Info("session ended", "session", id, "reason", string(reason), "mac", s.MAC.String(), "ip", s.IP)
	return s, nil
}

func (m *Manager) notifyEnded(s *store.Session) {
	for _, o := range m.observers {
		o.SessionEnded(s)
	}
}

// ActiveFor returns the active session of the device at ip with mac, or
// store.ErrNotFound. Both must match: an IP alone proves nothing.
func (m *Manager) ActiveFor(ip netip.Addr, mac net.HardwareAddr) (*store.Session, error) {
	s, err := m.ActiveByMAC(mac)
	if err != nil {
		return nil, err
	}
	if s.IP != ip {
		return nil, store.ErrNotFound
	}
	return s, nil
}

// ActiveByMAC returns the device's active session, whatever its address.
func (m *Manager) ActiveByMAC(mac net.HardwareAddr) (*store.Session, error) {
	return m.store.ActiveByMAC(mac)
}

// Rebind moves the active session id to a new address of the same device
// (after a DHCP renewal). The caller must have established that the old
// address is no longer that device's.
func (m *Manager) Rebind(id string, ip netip.Addr) (*store.Session, error) {
	s, err := m.store.Session(id)
	if err != nil {
		return nil, err
	}
	return m.rebind(s, ip)
}

// rebind moves an active session to a new IP for the same device. The
// new address is allowed before the old one is removed, so the visitor's
// traffic never stops.
func (m *Manager) rebind(s *store.Session, ip netip.Addr) (*store.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if other, err := m.store.ActiveByIP(ip); err == nil && other.ID != s.ID {
		return nil, fmt.Errorf("moving session %s to %s: the address belongs to active session %s", s.ID, ip, other.ID)
	}
	old := clientOf(s)
	m.noteChange(s.ID)
	ns, err := m.store.Update(s.ID, func(x *store.Session) error {
		if x.State != store.Active {
			return store.ErrNotFound
		}
		x.IP = ip
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := m.gate.Allow(clientOf(ns)); err != nil {
		return nil, fmt.Errorf("moving session %s to %s: %w", s.ID, ip, err)
	}
	if err := m.gate.Deny(old); err != nil {
		m.log.Error("removing old address of moved session", "session", s.ID, "err", err)
	}
	m.log.Info("session moved to new address", "session", s.ID, "from", old.IP, "to", ip)
	return ns, nil
}

// Extend moves session id's hard expiry by d (negative shortens it).
func (m *Manager) Extend(id string, d time.Duration) (*store.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.noteChange(id)
	s, err := m.store.Update(id, func(x *store.Session) error {
		if x.State != store.Active {
			return fmt.Errorf("session %s is not active", id)
		}
		x.Expires = x.Expires.Add(d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("extending session %s: %w", id, err)
	}
	m.log.Info("session extended", "session", id, "by", d, "expires", s.Expires.Format(time.RFC3339))
	return s, nil
}

// SetRate changes a live session's rates (bit/s; 0 leaves that direction
// as it is). The kernel class is changed in place, so the visitor's
// connections carry on at the new rate.
func (m *Manager) SetRate(id string, down, up uint64) (*store.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.noteChange(id)
	s, err := m.store.Update(id, func(x *store.Session) error {
		if x.State != store.Active {
			return fmt.Errorf("session %s is not active", id)
		}
		if down > 0 {
			x.RateDown = down
		}
		if up > 0 {
			x.RateUp = up
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("changing rate of session %s: %w", id, err)
	}
	if err := m.gate.Allow(clientOf(s)); err != nil {
		m.requestResyncLocked()
		return s, fmt.Errorf("applying rate of session %s: %w", id, err)
	}
	m.log.Info("session rate changed", "session", id, "down", s.RateDown, "up", s.RateUp)
	return s, nil
}

// Match selects active sessions; every non-zero field must match.
type Match struct {
	ID, Phone string
	MAC       net.HardwareAddr
	IP        netip.Addr
}

// Find returns the active sessions that m selects. An empty Match
// selects nothing, so a malformed request cannot end every session.
func (m *Manager) Find(q Match) ([]*store.Session, error) {
	if q.ID == "" && q.Phone == "" && q.MAC == nil && !q.IP.IsValid() {
		return nil, nil
	}
	return m.store.Sessions(func(s *store.Session) bool {
		return s.State == store.Active &&
			(q.ID == "" || s.ID == q.ID) &&
			(q.Phone == "" || s.Phone == q.Phone) &&
			(q.MAC == nil || s.MAC.String() == q.MAC.String()) &&
			(!q.IP.IsValid() || s.IP == q.IP)
	})
}

// SetTimeouts changes a live session's limits: sessionTimeout counts from
// the session's start (as RADIUS Session-Timeout does); nil leaves a
// limit as it is.
func (m *Manager) SetTimeouts(id string, sessionTimeout, idleTimeout *time.Duration) (*store.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.noteChange(id)
	s, err := m.store.Update(id, func(x *store.Session) error {
		if x.State != store.Active {
			return fmt.Errorf("session %s is not active", id)
		}
		if sessionTimeout != nil {
			x.Expires = x.Start.Add(*sessionTimeout)
		}
		if idleTimeout != nil {
			x.IdleTimeout = *idleTimeout
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("changing timeouts of session %s: %w", id, err)
	}
	m.log.Info("session timeouts changed", "session", id, "expires", s.Expires.Format(time.RFC3339), "idle_timeout", s.IdleTimeout)
	return s, nil
}

// DeviceInfo is what the LAN's DHCP traffic says about a device.
type DeviceInfo struct {
	Hostname, Vendor string
}

// maxDevices bounds the DHCP information kept for devices that have not
// logged in (a park sees many phones that never do).
const maxDevices = 4096

// DeviceSeen records a device's DHCP-announced name and vendor, and puts
// them on its active session if it has one.
func (m *Manager) DeviceSeen(mac net.HardwareAddr, d DeviceInfo) {
	if d.Hostname == "" && d.Vendor == "" {
		return
	}
	m.mu.Lock()
	if len(m.devices) >= maxDevices {
		clear(m.devices)
	}
	m.devices[mac.String()] = d
	m.mu.Unlock()
	s, err := m.store.ActiveByMAC(mac)
	if err != nil || (s.Hostname == d.Hostname && s.Vendor == d.Vendor) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.noteChange(s.ID)
	if _, err := m.store.Update(s.ID, func(x *store.Session) error {
		x.Hostname, x.Vendor = d.Hostname, d.Vendor
		return nil
	}); err != nil {
		m.log.Error("recording device information", "session", s.ID, "err", err)
	}
}

// AddressAssigned handles the DHCP server giving mac the address ip: an
// active session of that device follows it to the new address. This is
// the authoritative sign of a move (the gateway's own DHCP server said
// so), unlike a page load or an ARP packet, which a spoofer can fake.
//
// A device without a session is most likely about to log in: the gate
// prepares it (see Preparer) at the site's rates.
func (m *Manager) AddressAssigned(mac net.HardwareAddr, ip netip.Addr) (*store.Session, error) {
	s, err := m.store.ActiveByMAC(mac)
	if errors.Is(err, store.ErrNotFound) {
		m.prepare(ip)
		return nil, nil
	}
	if err != nil || s.IP == ip {
		return nil, nil
	}
	return m.rebind(s, ip)
}

func (m *Manager) prepare(ip netip.Addr) {
	p, ok := m.gate.(Preparer)
	if !ok {
		return
	}
	m.mu.Lock()
	down, up := m.policy.RateDown, m.policy.RateUp
	m.mu.Unlock()
	if down == 0 || up == 0 {
		return
	}
	if err := p.Prepare(ip, down, up); err != nil {
		// Only the login's speed is at stake: Allow creates what is missing.
		m.log.Warn("preparing a device before its login", "ip", ip, "err", err)
	}
}

// Fill puts s's traffic, counted up to the last sweep, into s.
func (m *Manager) Fill(s *store.Session) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.live[s.ID].fill(s)
}

// usageMaxAge is how old a reading of the kernel's counters may be when a
// session ends. Ends on their own (logout, kick, RADIUS Disconnect, a
// replacing login) always read afresh; a sweep that ends many sessions
// at once (a crowd's sessions expiring together) reads at most this often
// instead of once per session, since each reading walks every visitor's
// counters.
const usageMaxAge = 250 * time.Millisecond

// usageLocked returns the kernel's per-address counters, read now unless
// a reading younger than usageMaxAge is at hand; nil when they cannot be
// read (the session then ends with its totals from the last sweep).
func (m *Manager) usageLocked() map[netip.Addr]firewall.Usage {
	if m.usage != nil && time.Since(m.usageAt) < usageMaxAge {
		return m.usage
	}
	u, err := m.gate.Usage()
	if err != nil {
		m.log.Warn("reading traffic counters for a session's end; some totals are from the last sweep", "err", err)
	}
	if u == nil {
		return nil
	}
	m.usage, m.usageAt = u, time.Now()
	return u
}

// countLocked brings s's traffic totals up to the counters in usage (if
// they have s's address) and puts them into s.
func (m *Manager) countLocked(s *store.Session, usage map[netip.Addr]firewall.Usage) {
	m.observeLocked(s, usage)
	m.live[s.ID].fill(s)
}

// observeLocked brings s's traffic totals up to the counters in usage, if
// they have s's address, and reports what moved since to onTraffic.
func (m *Manager) observeLocked(s *store.Session, usage map[netip.Addr]firewall.Usage) {
	u, ok := usage[s.IP]
	if !ok {
		return
	}
	t := m.live[s.ID]
	if t == nil {
		t = newTraffic(s)
		m.live[s.ID] = t
	}
	down, up := t.observe(u)
	if m.onTraffic != nil && (down > 0 || up > 0) {
		m.onTraffic(down, up)
	}
}

// Counted returns the active sessions with their traffic read from the
// kernel now (for RADIUS Interim-Updates: the last sweep's totals can be
// seconds behind).
func (m *Manager) Counted() ([]*store.Session, error) {
	// The counters and the store are read before the lock is taken (see
	// lockedActive): thousands of sessions must not hold logins up.
	fresh := m.readUsage()
	active, err := m.lockedActive()
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	m.usage, m.usageAt = fresh, time.Now()
	usage := m.usageLocked()
	for _, s := range active {
		m.countLocked(s, usage)
	}
	return active, nil
}
