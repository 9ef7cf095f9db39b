package admin

import (
	"strings"
	"time"

	"github.com/parkwifi/parkportal/session"
	"github.com/parkwifi/parkportal/store"
)

// SessionsAdapter implements Sessions over the daemon's session manager
// (which changes sessions and the kernel together) and the store (which
// lists them).
type SessionsAdapter struct {
	Manager *session.Manager
	Store   *store.Store
}

// List returns active sessions matching q (see Matches), oldest first.
func (a SessionsAdapter) List(q string) ([]*store.Session, error) {
	return a.Store.Sessions(func(s *store.Session) bool {
		return s.State == store.Active && Matches(s, q)
	})
}

// Matches reports whether session s matches the search q: a part of its
// MAC, IP, device name (DHCP hostname) or vendor class, ignoring case,
// its ID, or a part of its phone number. Phone matching ignores spaces,
// dashes and a leading "+" or "00", so staff can type a number the way a
// visitor reads it out.
func Matches(s *store.Session, q string) bool {
	q = strings.ToLower(strings.TrimSpace(q))
	if q == "" {
		return true
	}
	if strings.Contains(strings.ToLower(s.MAC.String()), q) || strings.Contains(s.IP.String(), q) || s.ID == q {
		return true
	}
	if strings.Contains(strings.ToLower(s.Hostname), q) || strings.Contains(strings.ToLower(s.Vendor), q) {
		return true
	}
	digits := func(x string) string {
		x = strings.NewReplacer(" ", "", "-", "", "+", "").Replace(x)
		return strings.TrimPrefix(x, "00")
	}
	d := digits(q)
	return d != "" && strings.Contains(digits(s.Phone), d)
}

// End ends a session (and removes it from the kernel).
func (a SessionsAdapter) End(id string, reason store.EndReason) (*store.Session, error) {
	return a.Manager.End(id, reason)
}

// Extend moves a session's hard expiry.
func (a SessionsAdapter) Extend(id string, d time.Duration) (*store.Session, error) {
	return a.Manager.Extend(id, d)
}

// SetRate changes a live session's rates.
func (a SessionsAdapter) SetRate(id string, down, up uint64) (*store.Session, error) {
	return a.Manager.SetRate(id, down, up)
}
