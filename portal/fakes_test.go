package portal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/internal/fake"
	"github.com/parkwifi/parkportal/limits"
	"github.com/parkwifi/parkportal/session"
	"github.com/parkwifi/parkportal/sms"
	"github.com/parkwifi/parkportal/store"
)

func gateKey(ip netip.Addr, mac net.HardwareAddr) string { return ip.String() + "/" + mac.String() }

// fakeNeigh is the LAN's neighbour table: IP → MAC, and which old
// addresses a device still uses.
type fakeNeigh struct {
	mu    sync.Mutex
	macs  map[netip.Addr]net.HardwareAddr
	inUse map[string]bool // gateKey → still used
	err   error           // returned by every lookup when set
}

func (n *fakeNeigh) LookupMAC(ip netip.Addr) (net.HardwareAddr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.err != nil {
		return nil, n.err
	}
	mac, ok := n.macs[ip]
	if !ok {
		return nil, fmt.Errorf("no neighbour entry for %s", ip)
	}
	return mac, nil
}

func (n *fakeNeigh) InUse(ip netip.Addr, mac net.HardwareAddr) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.inUse[gateKey(ip, mac)]
}

func (n *fakeNeigh) set(ip netip.Addr, mac net.HardwareAddr) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.macs[ip] = mac
}

func (n *fakeNeigh) setErr(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.err = err
}

// fakeSMS records messages, or fails with err.
type fakeSMS struct {
	mu   sync.Mutex
	sent []sms.Message
	err  error
}

func (s *fakeSMS) Send(ctx context.Context, m sms.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.sent = append(s.sent, m)
	return nil
}

func (s *fakeSMS) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

func (s *fakeSMS) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sent)
}

var pinInBody = regexp.MustCompile(`[0-9]{6}`)

// lastPIN returns the PIN of the last message, failing the test when
// there is none.
func (s *fakeSMS) last(t *testing.T) (sms.Message, string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sent) == 0 {
		t.Fatal("no SMS sent")
	}
	m := s.sent[len(s.sent)-1]
	p := pinInBody.FindString(m.Body)
	if p == "" {
		t.Fatalf("no 6-digit PIN in SMS %q", m.Body)
	}
	return m, p
}

// fakeLimits allows everything unless told to refuse.
type fakeLimits struct {
	mu       sync.Mutex
	sms, pin limits.Decision // returned when not Allowed-zero
	err      error
	resets   int
	released int
}

func (l *fakeLimits) decide(d limits.Decision) (limits.Decision, error) {
	if l.err != nil {
		return limits.Decision{}, l.err
	}
	if d.Reason == limits.None {
		return limits.Decision{Allowed: true}, nil
	}
	return d, nil
}

func (l *fakeLimits) ReserveSMS(phone, mac string) (limits.Decision, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.decide(l.sms)
}

func (l *fakeLimits) ReleaseSMS(phone, mac string, reserved time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.released++
	return nil
}

func (l *fakeLimits) TryPIN(phone, mac string) (limits.Decision, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.decide(l.pin)
}

func (l *fakeLimits) ResetPIN(phone, mac string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.resets++
	return nil
}

func (l *fakeLimits) set(fn func(*fakeLimits)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fn(l)
}

// fakeEvents records the login flow's events as "kind reason" lines.
type fakeEvents struct {
	mu  sync.Mutex
	got []string
}

func (e *fakeEvents) add(kind, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, strings.TrimSpace(kind+" "+reason))
}

func (e *fakeEvents) SMSSent()                 { e.add("sms-sent", "") }
func (e *fakeEvents) SMSFailed(reason string)  { e.add("sms-failed", reason) }
func (e *fakeEvents) SMSRefused(reason string) { e.add("sms-refused", reason) }
func (e *fakeEvents) PINAccepted()             { e.add("pin-accepted", "") }
func (e *fakeEvents) PINFailed(outcome string) { e.add("pin-failed", outcome) }
func (e *fakeEvents) PINRefused(reason string) { e.add("pin-refused", reason) }

// events returns the events so far.
func (e *fakeEvents) events() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.got)
}

// fakeAuth answers Authorize with grant and err.
type fakeAuth struct {
	mu    sync.Mutex
	grant *session.Grant
	err   error
	asked []string
}

func (a *fakeAuth) Authorize(ctx context.Context, phone string, mac net.HardwareAddr, ip netip.Addr) (*session.Grant, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked = append(a.asked, phone+" "+mac.String()+" "+ip.String())
	return a.grant, a.err
}

// syncBuffer is a bytes.Buffer safe for a logger used from handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

const (
	portalHost   = "198.51.100.1:2050"
	portalOrigin = "http://198.51.100.1:2050"
)

// visitor is one device in the park.
type visitor struct {
	ip  netip.Addr
	mac net.HardwareAddr
}

func newVisitor(n byte) visitor {
	return visitor{ip: netip.AddrFrom4([4]byte{198, 51, 100, 10 + n}), mac: net.HardwareAddr{0x02, 0, 0, 0, 0, n}}
}

// park is a portal.Server with its real store and session manager, over
// fakes for the kernel, the LAN and the SMS provider.
type park struct {
	srv   *Server
	st    *store.Store
	mgr   *session.Manager
	gate  *fake.Gate
	neigh *fakeNeigh
	sms   *fakeSMS
	lim   *fakeLimits
	ev    *fakeEvents
	clock *fake.Clock
	log   *syncBuffer
}

func newPark(tb testing.TB, visitors ...visitor) *park {
	tb.Helper()
	return newParkWith(tb, nil, nil, visitors...)
}

// newParkWith builds a park whose Options edit may change (central
// authorisation, terms) before the server is made.
func newParkWith(tb testing.TB, auth Authorizer, edit func(*Options), visitors ...visitor) *park {
	tb.Helper()
	st, err := store.Open(filepath.Join(tb.TempDir(), "pp.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	p := &park{
		st:    st,
		gate:  fake.NewGate(),
		neigh: &fakeNeigh{macs: map[netip.Addr]net.HardwareAddr{}, inUse: map[string]bool{}},
		sms:   &fakeSMS{},
		lim:   &fakeLimits{},
		ev:    &fakeEvents{},
		clock: fake.NewClock(time.Date(2026, 3, 1, 16, 0, 0, 0, time.UTC)),
		log:   &syncBuffer{},
	}
	for _, v := range visitors {
		p.neigh.set(v.ip, v.mac)
	}
	// No time attribute: a nanosecond timestamp could contain any six
	// digits, and the test looks for the PIN in the log.
	logger := slog.New(slog.NewTextHandler(p.log, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	p.mgr = session.NewManager(session.Options{
		Store: st, Gate: p.gate, Site: "lab-park", Now: p.clock.Now, Logger: logger,
		Policy: session.Policy{SessionTimeout: 4 * time.Hour, IdleTimeout: 20 * time.Minute, RateDown: 8e6, RateUp: 8e6},
	})
	if err := p.mgr.Restore(); err != nil {
		tb.Fatal(err)
	}
	var seed [32]byte
	copy(seed[:], "parkportal portal test rand seed")
	o := Options{
		Site: Site{
			ID: "lab-park", NameAR: "حديقة المختبر", NameEN: "Lab Park",
			PhoneRegion: "QA", AllowedPrefixes: []string{"+9743", "+9745", "+9746", "+9747"},
			PINTTL: 5 * time.Minute, PINMaxTries: 5, PrivacyURL: "http://198.51.100.1:2050/static/privacy.html",
		},
		Addr:     netip.MustParseAddrPort(portalHost),
		Sessions: p.mgr, Store: st, SMS: p.sms, Neigh: p.neigh, Limits: p.lim, Auth: auth, Events: p.ev,
		PINKey: bytes.Repeat([]byte{7}, 32),
		Rand:   rand.NewChaCha8(seed),
		Now:    p.clock.Now,
		Logger: logger,
	}
	if edit != nil {
		edit(&o)
	}
	p.srv, err = New(o)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

var errNoNeighbour = errors.New("no neighbour entry")
