// Package metrics counts what the daemon does, for two readers: Prometheus
// (at /metrics on the admin listener) and the console's dashboard, which
// needs today's totals and the last 24 hours in 5-minute samples without
// a Prometheus server in the park.
//
// Every method is safe for concurrent use and cheap enough for the
// visitor's request path (atomic adds under a short lock).
//
// The exposition is written by internal/promtext, imported here as
// `prometheus`: it has the Prometheus client's names and signatures for
// what this package uses, without the client's 2.5 MiB in the router
// binary. A new metric is added as before, with prometheus.NewCounter,
// NewCounterVec, NewGauge, NewHistogram ... and m.reg.MustRegister.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	prometheus "github.com/parkwifi/parkportal/internal/promtext"
	"github.com/parkwifi/parkportal/store"
)

// The reason labels the portal passes, created at zero so that an alert
// on a rate sees 0 rather than "no data". They are the portal's problem
// codes and limits.Reason names; the portal's tests check that every
// reason it passes is listed here.
var (
	// SMSRefusedReasons: a number the site does not take, or an SMS cap.
	SMSRefusedReasons = []string{"malformed-number", "number-not-allowed", "per-number", "per-device", "site-budget", "resend-gap"}
	// SMSFailedReasons: the provider did not take the message, for now,
	// for good, or because it refused our account (sms-paused).
	SMSFailedReasons = []string{"sms-unavailable", "sms-undeliverable", "sms-paused"}
	// PINRefusedReasons: a PIN try refused before it was checked.
	PINRefusedReasons = []string{"pin-backoff"}
	// RADIUSProblems: what can be wrong with a RADIUS server or a DAS
	// client (package radius's Problem values).
	RADIUSProblems = []string{"no-message-authenticator", "wrong-secret", "unreachable"}
)

// SampleEvery is the dashboard's chart resolution; 288 samples are 24 h.
const (
	SampleEvery = 5 * time.Minute
	ringSize    = 288
)

// Sample is one 5-minute point of the dashboard's charts.
type Sample struct {
	Time    time.Time `json:"time"`
	Online  int       `json:"online"`
	Logins  uint64    `json:"logins"`   // logins during the interval
	SMSSent uint64    `json:"sms_sent"` // SMS sent during the interval
	// BitsDown and BitsUp are the mean throughput of all visitors over
	// the interval, in bit/s.
	BitsDown uint64 `json:"bits_down"`
	BitsUp   uint64 `json:"bits_up"`
}

// Today holds the counters since local midnight.
type Today struct {
	Logins     uint64 `json:"logins"`
	PINOK      uint64 `json:"pin_ok"`
	PINFailed  uint64 `json:"pin_failed"`
	SMSSent    uint64 `json:"sms_sent"`
	SMSFailed  uint64 `json:"sms_failed"`
	SMSRefused uint64 `json:"sms_refused"`
}

// Snapshot is the dashboard's "now".
type Snapshot struct {
	Time   time.Time `json:"time"`
	Online int       `json:"online"`
	Today  Today     `json:"today"`
	// BitsDown and BitsUp are the visitors' throughput over the latest
	// complete sample interval (0 until there is one).
	BitsDown uint64 `json:"bits_down"`
	BitsUp   uint64 `json:"bits_up"`
}

// Metrics is the daemon's registry. Create it with New and pass it to
// the packages that count (portal, sms, firewall resync, radius).
type Metrics struct {
	reg    *prometheus.Registry
	now    func() time.Time
	online func() int
	site   string

	logins     prometheus.Counter
	pinFail    *prometheus.CounterVec
	pinRefused *prometheus.CounterVec
	smsSent    prometheus.Counter
	smsFailed  *prometheus.CounterVec
	smsRefused *prometheus.CounterVec
	repairs    prometheus.Counter
	radiusQ    prometheus.Gauge
	radiusDrop prometheus.Gauge
	smsPaused  prometheus.Gauge
	radiusOK   *prometheus.GaugeVec
	radiusProb *prometheus.GaugeVec
	dasRefused *prometheus.CounterVec
	bytes      *prometheus.CounterVec

	handlerOnce sync.Once
	handler     http.Handler

	mu          sync.Mutex
	day         time.Time // local midnight of the current Today
	today       Today
	bytesDown   uint64 // totals since start, for throughput
	bytesUp     uint64
	last        Sample // interval counters being accumulated
	lastSampled time.Time
	lastBytes   [2]uint64
	ring        []Sample
	db          *bolt.DB // set by Keep; nil: figures live in memory only
	log         *slog.Logger
}

// New returns a Metrics for site. online reports the visitors online now
// (the daemon passes a count of active sessions); now may be nil.
func New(site string, online func() int, now func() time.Time) *Metrics {
	if now == nil {
		now = time.Now
	}
	if online == nil {
		online = func() int { return 0 }
	}
	m := &Metrics{reg: prometheus.NewRegistry(), now: now, online: online, site: site, log: slog.New(slog.DiscardHandler)}
	constLabels := prometheus.Labels{"site": site}
	m.logins = prometheus.NewCounter(prometheus.CounterOpts{Name: "parkportal_logins_total", Help: "Visitor logins (sessions started).", ConstLabels: constLabels})
	m.pinFail = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parkportal_pin_failures_total", Help: "PIN entries that did not log in, by outcome (wrong, exhausted, expired, none).", ConstLabels: constLabels}, []string{"outcome"})
	m.smsSent = prometheus.NewCounter(prometheus.CounterOpts{Name: "parkportal_sms_sent_total", Help: "PIN messages accepted by the SMS provider.", ConstLabels: constLabels})
	m.smsFailed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parkportal_sms_failed_total", Help: "PIN messages the provider did not take, by error class.", ConstLabels: constLabels}, []string{"reason"})
	m.pinRefused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parkportal_pin_refused_total", Help: "PIN entries refused before they were checked, by reason (pin-backoff: too many wrong PINs from this number or device).", ConstLabels: constLabels}, []string{"reason"})
	m.smsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parkportal_sms_refused_total", Help: "PIN messages parkportal refused to send, by reason (malformed-number, number-not-allowed, per-number, per-device, site-budget, resend-gap).", ConstLabels: constLabels}, []string{"reason"})
	m.repairs = prometheus.NewCounter(prometheus.CounterOpts{Name: "parkportal_firewall_repairs_total", Help: "Kernel state repaired by resync (chains, set entries, classes).", ConstLabels: constLabels})
	m.radiusQ = prometheus.NewGauge(prometheus.GaugeOpts{Name: "parkportal_radius_queue_length", Help: "RADIUS accounting records waiting to be delivered.", ConstLabels: constLabels})
	m.radiusDrop = prometheus.NewGauge(prometheus.GaugeOpts{Name: "parkportal_radius_dropped_records", Help: "RADIUS accounting records a full queue gave up (oldest interim updates first), since the database was created.", ConstLabels: constLabels})
	m.smsPaused = prometheus.NewGauge(prometheus.GaugeOpts{Name: "parkportal_sms_paused", Help: "1 while the SMS provider refuses parkportal's account (credentials, credit, suspension: HTTP 401/402/403, Twilio 20003, 20005, …) and sending is paused; staff must fix the account.", ConstLabels: constLabels})
	m.radiusOK = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "parkportal_radius_server_ok", Help: "1 when the RADIUS server (role auth or acct) answers and its answers can be verified, 0 when not (see parkportal_radius_server_problem).", ConstLabels: constLabels}, []string{"role", "server"})
	m.radiusProb = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "parkportal_radius_server_problem", Help: "1 for what is wrong with the RADIUS server now (no-message-authenticator: its Access-Accept/Reject cannot be trusted and logins that need it are refused; wrong-secret; unreachable), 0 for the rest.", ConstLabels: constLabels}, []string{"role", "server", "problem"})
	m.dasRefused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parkportal_radius_das_refused_total", Help: "Disconnect/CoA requests from configured clients dropped, by problem (no-message-authenticator, wrong-secret).", ConstLabels: constLabels}, []string{"problem"})
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parkportal_visitor_bytes_total", Help: "Bytes carried for visitors, by direction.", ConstLabels: constLabels}, []string{"direction"})
	onlineGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "parkportal_visitors_online", Help: "Visitors with an active session.", ConstLabels: constLabels}, func() float64 { return float64(m.online()) })
	m.reg.MustRegister(m.logins, m.pinFail, m.pinRefused, m.smsSent, m.smsFailed, m.smsRefused, m.repairs, m.radiusQ, m.radiusDrop, m.smsPaused,
		m.radiusOK, m.radiusProb, m.dasRefused, m.bytes, onlineGauge,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector())
	// Make the labelled series visible at zero, so dashboards and alerts
	// do not see "no data" before the first event.
	for _, o := range []string{"wrong", "exhausted", "expired", "none"} {
		m.pinFail.WithLabelValues(o)
	}
	for _, r := range PINRefusedReasons {
		m.pinRefused.WithLabelValues(r)
	}
	for _, r := range SMSRefusedReasons {
		m.smsRefused.WithLabelValues(r)
	}
	for _, r := range SMSFailedReasons {
		m.smsFailed.WithLabelValues(r)
	}
	for _, d := range []string{"down", "up"} {
		m.bytes.WithLabelValues(d)
	}
	for _, p := range RADIUSProblems[:2] {
		m.dasRefused.WithLabelValues(p)
	}
	m.day = midnight(now())
	m.lastSampled = now()
	return m
}

func midnight(t time.Time) time.Time {
	y, mo, d := t.Date()
	return time.Date(y, mo, d, 0, 0, 0, 0, t.Location())
}

// Registry returns the Prometheus registry, for packages that register
// collectors of their own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the Prometheus text exposition. Call it once: it
// registers the handler's own error counter on the registry.
func (m *Metrics) Handler() http.Handler {
	m.handlerOnce.Do(func() { m.handler = prometheus.HandlerFor(m.reg) })
	return m.handler
}

// rollLocked starts a new Today at local midnight.
func (m *Metrics) rollLocked() {
	if d := midnight(m.now()); !d.Equal(m.day) {
		m.day, m.today = d, Today{}
	}
}

func (m *Metrics) count(fn func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rollLocked()
	fn()
}

// Login counts a started session.
func (m *Metrics) Login() {
	m.logins.Inc()
	m.count(func() { m.today.Logins++; m.last.Logins++ })
}

// PINAccepted counts a PIN that logged a visitor in.
func (m *Metrics) PINAccepted() { m.count(func() { m.today.PINOK++ }) }

// PINFailed counts a PIN entry that did not log in, by outcome
// (wrong, exhausted, expired, none).
func (m *Metrics) PINFailed(outcome string) {
	m.pinFail.WithLabelValues(outcome).Inc()
	m.count(func() { m.today.PINFailed++ })
}

// PINRefused counts a PIN try refused before it was checked, by reason
// (pin-backoff). It is not a PIN failure: nothing was checked, so it
// stays out of the dashboard's success rate.
func (m *Metrics) PINRefused(reason string) {
	m.pinRefused.WithLabelValues(reason).Inc()
}

// SMSSent counts a PIN message the provider accepted.
func (m *Metrics) SMSSent() {
	m.smsSent.Inc()
	m.count(func() { m.today.SMSSent++; m.last.SMSSent++ })
}

// SMSFailed counts a message the provider did not take, by error class.
func (m *Metrics) SMSFailed(reason string) {
	m.smsFailed.WithLabelValues(reason).Inc()
	m.count(func() { m.today.SMSFailed++ })
}

// SMSRefused counts a message parkportal itself refused, by reason.
func (m *Metrics) SMSRefused(reason string) {
	m.smsRefused.WithLabelValues(reason).Inc()
	m.count(func() { m.today.SMSRefused++ })
}

// FirewallRepairs counts n repairs made by a resync.
func (m *Metrics) FirewallRepairs(n int) {
	if n > 0 {
		m.repairs.Add(float64(n))
	}
}

// SetRADIUSQueue reports the accounting queue's length and how many
// records a full queue gave up so far.
func (m *Metrics) SetRADIUSQueue(n int, dropped uint64) {
	m.radiusQ.Set(float64(n))
	m.radiusDrop.Set(float64(dropped))
}

// SetSMSPaused reports whether SMS sending is paused because the provider
// refuses our account (an alert for staff: no visitor can log in).
func (m *Metrics) SetSMSPaused(paused bool) {
	v := 0.0
	if paused {
		v = 1
	}
	m.smsPaused.Set(v)
}

// SetRADIUSServer reports a RADIUS server's state: role is "auth" or
// "acct", problem one of RADIUSProblems or "" when it is fine.
func (m *Metrics) SetRADIUSServer(role, server, problem string) {
	ok := 0.0
	if problem == "" {
		ok = 1
	}
	m.radiusOK.WithLabelValues(role, server).Set(ok)
	for _, p := range RADIUSProblems {
		v := 0.0
		if p == problem {
			v = 1
		}
		m.radiusProb.WithLabelValues(role, server, p).Set(v)
	}
}

// DASRefused counts a Disconnect/CoA request from a configured client
// that was dropped, by problem (no-message-authenticator, wrong-secret).
func (m *Metrics) DASRefused(problem string) {
	m.dasRefused.WithLabelValues(problem).Inc()
}

// AddBytes counts bytes carried for visitors since the last call.
func (m *Metrics) AddBytes(down, up uint64) {
	m.bytes.WithLabelValues("down").Add(float64(down))
	m.bytes.WithLabelValues("up").Add(float64(up))
	m.count(func() { m.bytesDown += down; m.bytesUp += up })
}

// SessionStarted implements session.Observer: it counts a login.
func (m *Metrics) SessionStarted(*store.Session) { m.Login() }

// SessionEnded implements session.Observer; visitors online are read
// from the store, so there is nothing to count here.
func (m *Metrics) SessionEnded(*store.Session) {}

// TakeSample closes the current interval and appends it to the 24-hour
// ring. Run calls it every SampleEvery; tests call it directly.
func (m *Metrics) TakeSample() Sample {
	s := m.takeSample()
	if err := m.save(&s); err != nil {
		m.log.Warn("dashboard sample not saved; the charts keep it in memory", "err", err)
	}
	return s
}

func (m *Metrics) takeSample() Sample {
	online := m.online()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rollLocked()
	now := m.now()
	s := m.last
	s.Time, s.Online = now, online
	if secs := now.Sub(m.lastSampled).Seconds(); secs >= 1 {
		s.BitsDown = uint64(float64(m.bytesDown-m.lastBytes[0]) * 8 / secs)
		s.BitsUp = uint64(float64(m.bytesUp-m.lastBytes[1]) * 8 / secs)
	}
	m.lastBytes = [2]uint64{m.bytesDown, m.bytesUp}
	m.lastSampled = now
	m.last = Sample{}
	m.ring = append(m.ring, s)
	if len(m.ring) > ringSize {
		m.ring = append(m.ring[:0], m.ring[len(m.ring)-ringSize:]...)
	}
	return s
}

// Run takes a sample every SampleEvery until ctx ends.
func (m *Metrics) Run(ctx context.Context) {
	t := time.NewTicker(SampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.TakeSample()
		}
	}
}

// Snapshot returns the dashboard's current figures.
func (m *Metrics) Snapshot() Snapshot {
	online := m.online()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rollLocked()
	s := Snapshot{Time: m.now(), Online: online, Today: m.today}
	if n := len(m.ring); n > 0 {
		s.BitsDown, s.BitsUp = m.ring[n-1].BitsDown, m.ring[n-1].BitsUp
	}
	return s
}

// History returns the samples of the last 24 hours, oldest first.
func (m *Metrics) History() []Sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	cut := m.now().Add(-24 * time.Hour)
	out := make([]Sample, 0, len(m.ring))
	for _, s := range m.ring {
		if s.Time.After(cut) {
			out = append(out, s)
		}
	}
	return out
}
