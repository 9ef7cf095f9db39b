package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/parkwifi/parkportal/config"
	"github.com/parkwifi/parkportal/metrics"
	"github.com/parkwifi/parkportal/portal"
	"github.com/parkwifi/parkportal/radius"
	"github.com/parkwifi/parkportal/session"
	"github.com/parkwifi/parkportal/sms"
	"github.com/parkwifi/parkportal/store"
)

// nas wires package radius to the session manager and the portal: the
// gateway as a RADIUS NAS, as CoovaChilli deployments know it. All of its
// policy is the config file's `config radius` section (infrastructure:
// the console shows it and cannot change it).
type nas struct {
	cfg  config.Radius
	log  *slog.Logger
	st   *store.Store
	mgr  *session.Manager
	acct *radius.Accounting // nil without accounting
	das  *radius.DAS        // nil when not listening
	info radius.NAS
	// secret is shared with the servers (from the config file, never the
	// console); empty when the config names none.
	secret string

	auth       *radius.Authorizer // nil: no central authorisation
	authClient *radius.Client
	acctClient *radius.Client
	// authTimeout bounds the wait for one authorisation server (5 s;
	// tests shorten it).
	authTimeout time.Duration

	// wake asks the outbox drain to run (one slot, never blocks).
	wake chan struct{}

	// mu serialises what goes into the accounting queue for a session:
	// the drain's Start and Stop and the interim loop's Interim-Updates,
	// so no Interim can be queued after its session's Stop.
	mu sync.Mutex
	// open holds the sessions whose Start is queued and whose Stop is
	// not, with the time of their latest record (Start or Interim).
	open map[string]time.Time

	hmu    sync.Mutex
	health map[string]serverState // "auth 192.0.2.10:1812", "das 192.0.2.10"
	met    *metrics.Metrics
}

// serverState is what nas knows of one server or DAS client.
type serverState struct {
	role, addr string
	problem    radius.Problem
	detail     string
}

// drainBatch bounds the events moved in one bbolt transaction.
const drainBatch = 256

// startNAS builds whatever `config radius` turns on. With nothing on it
// returns a nas whose methods do nothing but drain the session event
// outbox (nobody needs the events then).
func startNAS(cfg *config.Config, st *store.Store, mgr *session.Manager, log *slog.Logger) (*nas, error) {
	rc := cfg.Radius
	n := &nas{cfg: rc, log: log, st: st, mgr: mgr, open: map[string]time.Time{}, wake: make(chan struct{}, 1), health: map[string]serverState{}}
	id := rc.NASIdentifier
	if id == "" {
		id = cfg.Site.ID
	}
	ip, why := nasIP(cfg)
	var lanMAC net.HardwareAddr
	if ifc, err := net.InterfaceByName(cfg.LANIface); err == nil {
		lanMAC = ifc.HardwareAddr
	}
	n.info = radius.NAS{Identifier: id, IP: ip, CalledStationID: radius.CalledStationID(lanMAC, rc.CalledStationID)}
	if rc.Accounting || rc.Authorization || rc.DASListen != "" {
		log.Info("RADIUS NAS identity", "nas_identifier", id, "nas_ip", ip, "nas_ip_from", why)
	}

	if radiusSecretConfigured(rc) {
		secret, err := sms.LoadSecret(rc.Secret, rc.SecretFile, radiusSecretEnv)
		if err != nil {
			return nil, fmt.Errorf("radius.secret: %w", err)
		}
		n.secret = secret
	}
	if (rc.Accounting || rc.Authorization) && n.secret == "" {
		return nil, fmt.Errorf("radius.secret: RADIUS is on but no secret is configured")
	}
	if rc.Accounting {
		c, err := radius.NewClient(radius.ClientConfig{Servers: n.servers(rc.AcctServers), Logger: log, OnHealth: n.onHealth("acct")})
		if err != nil {
			return nil, fmt.Errorf("radius accounting client: %w", err)
		}
		n.acctClient = c
		// Sessions outlive the daemon: after any stop, crash or reboot
		// the active ones in the store are restored and go on, so the
		// server must keep them open: Accounting-On only when there are
		// none to restore (and not after a planned restart), and only
		// after the Stops of sessions that ended while the daemon was
		// down, which wait in the outbox.
		active, err := st.ActiveSessions()
		if err != nil {
			return nil, fmt.Errorf("radius accounting: reading active sessions: %w", err)
		}
		n.acct, err = radius.NewAccounting(radius.AccountingConfig{
			Client: c, NAS: n.info, DB: st.DB(), Logger: log, Continuing: true, MaxQueue: rc.AcctQueueMax,
		})
		if err != nil {
			return nil, fmt.Errorf("radius accounting: %w", err)
		}
		if err := n.drain(); err != nil {
			return nil, err
		}
		if !n.acct.Resumed() && len(active) == 0 {
			if err := n.acct.On(); err != nil {
				return nil, fmt.Errorf("radius accounting: %w", err)
			}
		}
		// Sessions restored from the store had their Start queued by an
		// earlier run: they are open, their next Interim due from their
		// start as before.
		n.mu.Lock()
		for _, s := range active {
			if _, ok := n.open[s.ID]; !ok {
				n.open[s.ID] = s.Start
			}
		}
		n.mu.Unlock()
	} else if err := n.drain(); err != nil {
		return nil, err
	}
	mgr.AddObserver(n)
	if rc.Authorization {
		if err := n.newAuthorizer(rc.AuthServers); err != nil {
			return nil, err
		}
	}
	if rc.DASListen != "" {
		secret, err := sms.LoadSecret(rc.DASSecret, rc.DASSecretFile, "PARKPORTAL_DAS_SECRET")
		if err != nil {
			return nil, fmt.Errorf("radius.das_secret: %w", err)
		}
		var clients []radius.DASClient
		for _, a := range rc.DASClients {
			clients = append(clients, radius.DASClient{IP: a, Secret: []byte(secret)})
		}
		n.das, err = radius.ListenDAS(radius.DASConfig{Addr: rc.DASListen, Clients: clients, Controller: dasController{mgr}, NAS: n.info, Logger: log, OnRequest: n.onDASRequest})
		if err != nil {
			return nil, fmt.Errorf("radius dynamic authorisation: %w", err)
		}
		log.Info("listening for RADIUS Disconnect/CoA", "addr", rc.DASListen, "clients", len(clients))
	}
	return n, nil
}

// nasIP is the NAS-IP-Address: radius.nas_ip when set; else the address
// the DAS listens on, where the server sends Disconnect and CoA requests
// and which it records from our requests for that; else the address this
// gateway sends from to reach the first RADIUS server (the route's
// source), which the server sees; else gateway_ip. why names the source.
// (It used to default to gateway_ip, the LAN address, where no DAS
// listens and which the server may not even reach.)
func nasIP(cfg *config.Config) (ip netip.Addr, why string) {
	rc := cfg.Radius
	if rc.NASIP.IsValid() {
		return rc.NASIP, "radius.nas_ip"
	}
	if ap, err := netip.ParseAddrPort(rc.DASListen); err == nil && !ap.Addr().IsUnspecified() {
		return ap.Addr().Unmap(), "radius.das_listen"
	}
	for _, srv := range append(append([]string{}, rc.AcctServers...), rc.AuthServers...) {
		if a := routeSource(srv); a.IsValid() {
			return a, "route to " + srv
		}
	}
	return cfg.GatewayIP, "parkportal.gateway_ip"
}

// routeSource is the address the kernel picks to send to server (a UDP
// connect sends nothing), or the zero Addr.
func routeSource(server string) netip.Addr {
	c, err := net.Dial("udp", server)
	if err != nil {
		return netip.Addr{}
	}
	defer c.Close()
	ua, ok := c.LocalAddr().(*net.UDPAddr)
	if !ok {
		return netip.Addr{}
	}
	a, _ := netip.AddrFromSlice(ua.IP)
	return a.Unmap()
}

func (n *nas) servers(addrs []string) []radius.Server {
	var out []radius.Server
	for _, a := range addrs {
		out = append(out, radius.Server{Addr: a, Secret: []byte(n.secret)})
	}
	return out
}

func (n *nas) newAuthorizer(addrs []string) error {
	// A visitor waits at the PIN page for this answer, and the portal
	// gives it 15 s: each server gets authTimeout (1 s, 2 s, then 2 s
	// retransmits), so a silent primary still leaves time for a secondary,
	// and with neither answering the site's fail policy applies in time.
	t := n.authTimeout
	if t == 0 {
		t = 5 * time.Second
	}
	c, err := radius.NewClient(radius.ClientConfig{
		Servers: n.servers(addrs), Logger: n.log, OnHealth: n.onHealth("auth"),
		InitialTimeout: t / 5, MaxTimeout: 2 * t / 5, MaxRetransmits: 2, MaxDuration: t,
	})
	if err != nil {
		return fmt.Errorf("radius authorisation client: %w", err)
	}
	a, err := radius.NewAuthorizer(radius.AuthConfig{Client: c, NAS: n.info, Logger: n.log})
	if err != nil {
		return fmt.Errorf("radius authorisation: %w", err)
	}
	n.auth, n.authClient = a, c
	return nil
}

// Authorize applies the fail policy to a RADIUS decision; without central
// authorisation the visitor gets the site's defaults.
//
// fail_policy open lets a visitor in when no server answers. A server
// that answers without Message-Authenticator (ErrUnverifiable) did
// answer, and may have said no: its answer is refused like any other
// that cannot be used, whatever the fail policy, so a blocked number
// never gets in because the server is misconfigured. The operator is
// told (log, metric, console banner) by the health report.
func (n *nas) Authorize(ctx context.Context, phone string, mac net.HardwareAddr, ip netip.Addr) (*session.Grant, error) {
	if n.auth == nil {
		return nil, nil
	}
	d, err := n.auth.Authorize(ctx, phone, mac, ip)
	switch {
	case errors.Is(err, radius.ErrUnreachable) && n.cfg.FailOpen:
		n.log.Warn("RADIUS unreachable; letting the visitor in with the site's defaults (fail_policy open)", "err", err)
		return nil, nil
	case errors.Is(err, radius.ErrUnverifiable):
		n.log.Error("RADIUS answer without Message-Authenticator; refusing the login whatever fail_policy says", "fix", radius.ProblemNoMessageAuthenticator.Fix())
		return nil, err
	case err != nil:
		return nil, err
	case d.Reject:
		return nil, &portal.Rejected{Reason: radius.VisitorText(d.ReplyMessage)}
	}
	return &session.Grant{
		SessionTimeout: d.SessionTimeout, IdleTimeout: d.IdleTimeout,
		RateDown: d.RateDown, RateUp: d.RateUp,
		InterimInterval: d.InterimInterval, Class: d.Class,
	}, nil
}

func radiusSession(s *store.Session) radius.Session {
	return radius.Session{
		ID: s.ID, Phone: s.Phone, MAC: s.MAC, IP: s.IP, Start: s.Start,
		BytesIn: s.BytesUp, BytesOut: s.BytesDown, PacketsIn: s.PacketsUp, PacketsOut: s.PacketsDown,
		Class: s.Class,
	}
}

var terminateCause = map[store.EndReason]radius.TerminateCause{
	store.ReasonExpired:  radius.TerminateSessionTimeout,
	store.ReasonIdle:     radius.TerminateIdleTimeout,
	store.ReasonLogout:   radius.TerminateUserRequest,
	store.ReasonKicked:   radius.TerminateAdminReset,
	store.ReasonReplaced: radius.TerminateNASRequest,
}

// record turns a session event from the outbox into an accounting record.
func record(e store.Event) radius.Record {
	r := radius.Record{Kind: radius.RecordStart, Session: radiusSession(e.Session), At: e.At}
	if e.Kind == store.EventEnded {
		cause, ok := terminateCause[e.Session.EndReason]
		if !ok {
			cause = radius.TerminateNASError
		}
		r.Kind, r.Cause = radius.RecordStop, cause
	}
	return r
}

// SessionStarted asks the drain to queue the Start the store recorded.
func (n *nas) SessionStarted(*store.Session) { n.kick() }

// SessionEnded asks the drain to queue the Stop the store recorded.
func (n *nas) SessionEnded(*store.Session) { n.kick() }

func (n *nas) kick() {
	select {
	case n.wake <- struct{}{}:
	default: // a drain is already due
	}
}

// drain moves the session events of the store's outbox into the
// accounting queue, each batch in one bbolt transaction, so a Start or
// Stop is neither lost nor queued twice however the daemon stops. The
// events were written in the transactions that started and ended the
// sessions, by this daemon or by a CLI command while it was down.
// Without accounting it discards them.
func (n *nas) drain() error {
	for range 1 << 20 { // bounded: the outbox holds at most a few events per session
		var moved int
		var events []store.Event
		var err error
		if n.acct == nil {
			err = n.st.DB().Update(func(tx *bbolt.Tx) error {
				evs, skipped, err := store.TakeEvents(tx, drainBatch)
				moved = len(evs) + skipped
				return err
			})
		} else {
			n.mu.Lock()
			_, err = n.acct.Transfer(func(tx *bbolt.Tx) ([]radius.Record, error) {
				evs, skipped, err := store.TakeEvents(tx, drainBatch)
				if skipped > 0 {
					n.log.Error("dropped unreadable session events from the outbox", "events", skipped)
				}
				moved, events = len(evs)+skipped, evs
				recs := make([]radius.Record, 0, len(evs))
				for _, e := range evs {
					recs = append(recs, record(e))
				}
				return recs, err
			})
			if err == nil {
				for _, e := range events {
					if e.Kind == store.EventStarted {
						n.open[e.Session.ID] = e.Session.Start
					} else {
						delete(n.open, e.Session.ID)
					}
				}
			}
			n.mu.Unlock()
		}
		if err != nil {
			return fmt.Errorf("moving session events to the accounting queue: %w", err)
		}
		if moved < drainBatch {
			return nil
		}
	}
	return nil
}

// runDrain drains the outbox when a session starts or ends, and every
// minute in case a wake-up was missed, until ctx ends.
func (n *nas) runDrain(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		case <-t.C:
		}
		if err := n.drain(); err != nil {
			n.log.Error("draining session events", "err", err)
		}
	}
}

// runInterim sends Interim-Updates for sessions whose interval passed,
// with the kernel's counters as they are when it sends them.
func (n *nas) runInterim(ctx context.Context) {
	if n.acct == nil {
		return
	}
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			live, err := n.mgr.Counted()
			if err != nil {
				n.log.Error("listing sessions for accounting", "err", err)
				continue
			}
			n.interimPass(now, live)
		}
	}
}

// interimPass queues an Interim-Update for each session of live whose
// interval passed at now. live may be older than the queue (a session
// can end while the caller read the counters): only sessions still open
// (Start queued, Stop not) get one, decided under the same lock the
// drain queues a Stop under, so an Interim never follows its Stop.
func (n *nas) interimPass(now time.Time, live []*store.Session) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range live {
		last, ok := n.open[s.ID]
		if !ok {
			continue
		}
		every := s.InterimInterval
		if every <= 0 {
			every = n.cfg.InterimInterval
		}
		if now.Sub(last) < every {
			continue
		}
		if err := n.acct.Interim(radiusSession(s)); err != nil {
			n.log.Error("queueing Interim-Update", "session", s.ID, "err", err)
			continue
		}
		n.open[s.ID] = now
	}
}

// onHealth returns the health callback for role's client: one log line
// per change, with the fix when something is wrong, and the metric.
func (n *nas) onHealth(role string) func(radius.Health) {
	return func(h radius.Health) {
		n.setState(serverState{role: role, addr: h.Server, problem: h.Problem, detail: h.Detail})
	}
}

// onDASRequest keeps the DAS clients' state: a client whose requests
// are dropped is reported like a server.
func (n *nas) onDASRequest(client netip.Addr, p radius.Problem) {
	n.hmu.Lock()
	met := n.met
	n.hmu.Unlock()
	if p != radius.ProblemNone && met != nil {
		met.DASRefused(string(p))
	}
	n.setState(serverState{role: "das", addr: client.String(), problem: p})
}

func (n *nas) setState(s serverState) {
	key := s.role + " " + s.addr
	n.hmu.Lock()
	old, known := n.health[key]
	n.health[key] = s
	met := n.met
	n.hmu.Unlock()
	if met != nil && s.role != "das" {
		met.SetRADIUSServer(s.role, s.addr, string(s.problem))
	}
	if known && old.problem == s.problem {
		return
	}
	switch {
	case s.problem == radius.ProblemNone && known:
		n.log.Info("RADIUS peer fine again", "role", s.role, "addr", s.addr, "was", string(old.problem))
	case s.problem == radius.ProblemNone:
		n.log.Info("RADIUS peer answers verifiably", "role", s.role, "addr", s.addr)
	case s.role == "das":
		n.log.Error("RADIUS DAS client's requests are dropped", "client", s.addr, "problem", string(s.problem),
			"fix", dasFix(s.problem))
	default:
		n.log.Error("RADIUS server misconfigured or unreachable", "role", s.role, "server", s.addr, "problem", string(s.problem),
			"seen", s.detail, "fix", s.problem.Fix())
	}
}

// dasFix says what to change where Disconnect/CoA requests come from.
func dasFix(p radius.Problem) string {
	if p == radius.ProblemNoMessageAuthenticator {
		return "the server sending Disconnect/CoA must add Message-Authenticator: with radclient, a line `Message-Authenticator = 0x00`; " +
			"in FreeRADIUS's `update coa` or `update disconnect` list, `&Message-Authenticator := 0x00`"
	}
	return "radius.das_secret (or das_secret_file) must equal the secret the server signs its Disconnect/CoA requests with"
}

// setMetrics starts reporting to met, with what is known so far.
func (n *nas) setMetrics(met *metrics.Metrics) {
	n.hmu.Lock()
	n.met = met
	states := make([]serverState, 0, len(n.health))
	for _, s := range n.health {
		states = append(states, s)
	}
	n.hmu.Unlock()
	for _, s := range states {
		if s.role != "das" {
			met.SetRADIUSServer(s.role, s.addr, string(s.problem))
		}
	}
}

// probe asks every RADIUS server how it is (Status-Server), at most
// about 4 s; the health callbacks report what changed.
func (n *nas) probe(ctx context.Context) {
	var wg sync.WaitGroup
	for _, c := range []*radius.Client{n.authClient, n.acctClient} {
		if c != nil {
			wg.Go(func() { c.Probe(ctx) })
		}
	}
	wg.Wait()
}

// runProbe probes the servers every 5 minutes until ctx ends (the first
// probe is the start's, see serve).
func (n *nas) runProbe(ctx context.Context) {
	if n.authClient == nil && n.acctClient == nil {
		return
	}
	t := time.NewTicker(5 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.probe(ctx)
		}
	}
}

// alerts is the console banner: each RADIUS peer with a problem, in
// lang, with what to do.
func (n *nas) alerts(lang string) []string {
	n.hmu.Lock()
	var bad []serverState
	for _, s := range n.health {
		if s.problem != radius.ProblemNone {
			bad = append(bad, s)
		}
	}
	n.hmu.Unlock()
	sort.Slice(bad, func(i, j int) bool { return bad[i].role+bad[i].addr < bad[j].role+bad[j].addr })
	var out []string
	for _, s := range bad {
		out = append(out, alertText(lang, s))
	}
	return out
}

// alertText words one problem for staff. The Arabic names the fix in
// short; the full fix, with configuration lines, is in the log and the
// README in both cases.
func alertText(lang string, s serverState) string {
	ar := lang == "ar"
	addr := "\u2066" + s.addr + "\u2069"
	switch {
	case s.role == "das" && ar:
		return "خادم RADIUS " + addr + " يرسل طلبات قطع الاتصال أو تغيير الصلاحيات (Disconnect/CoA) وتُهمل: " + arabicProblem(s.problem) + ". التفاصيل والحل في سجل parkportal."
	case s.role == "das":
		return "RADIUS client " + s.addr + " sends Disconnect/CoA requests that are dropped (" + string(s.problem) + "). Fix: " + dasFix(s.problem) + "."
	case ar && s.problem == radius.ProblemNoMessageAuthenticator:
		return "خادم RADIUS " + addr + " يجيب دون Message-Authenticator، فلا يمكن الوثوق بإجاباته ويُرفض كل دخول يحتاج إليه أيًّا كانت سياسة الفشل. الحل: ترقية FreeRADIUS إلى 3.2.5 أو أحدث، أو إضافة توقيع الإجابات في إعداده (انظر سجل parkportal وملف README)."
	case ar:
		return "خادم RADIUS " + addr + " (" + s.role + "): " + arabicProblem(s.problem) + ". التفاصيل والحل في سجل parkportal."
	default:
		return "RADIUS server " + s.addr + " (" + s.role + "): " + string(s.problem) + ". " + capitalFirst(s.problem.Fix()) + "."
	}
}

func arabicProblem(p radius.Problem) string {
	switch p {
	case radius.ProblemNoMessageAuthenticator:
		return "دون Message-Authenticator"
	case radius.ProblemWrongSecret:
		return "السر المشترك لا يطابق"
	case radius.ProblemUnreachable:
		return "لا يجيب"
	}
	return string(p)
}

func capitalFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// close stops the NAS and sends no Accounting-Off, whether or not the
// firewall state was kept: either way the sessions stay
// active in the store and the next start restores them, so telling the
// server they ended would be false, and the Start of a restored session
// is not sent again. Sessions that really end, also while the daemon is
// down (their expiry passes, or a CLI kick), get their Stop: from the
// next sweep, or from the outbox, which the next start drains.
func (n *nas) close() {
	if n.das != nil {
		n.das.Close()
	}
	if err := n.drain(); err != nil {
		n.log.Error("draining session events before the stop; the next start drains them", "err", err)
	}
	if n.acct != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.acct.Close(ctx, radius.CloseOptions{Restarting: true}); err != nil {
			n.log.Error("closing accounting", "err", err)
		}
	}
}

// queueLen is the accounting queue's length, for metrics.
func (n *nas) queueLen() int {
	if n.acct == nil {
		return 0
	}
	return n.acct.QueueLen()
}

// dropped is how many accounting records a full queue gave up since the
// database was created, for metrics.
func (n *nas) dropped() uint64 {
	if n.acct == nil {
		return 0
	}
	return n.acct.Dropped()
}

// dasController lets RFC 5176 requests act on sessions.
type dasController struct{ mgr *session.Manager }

func (c dasController) find(m radius.Match) ([]*store.Session, error) {
	return c.mgr.Find(session.Match{ID: m.SessionID, Phone: m.UserName, MAC: m.MAC, IP: m.IP})
}

// Disconnect ends the matched sessions (Acct-Terminate-Cause Admin-Reset).
func (c dasController) Disconnect(m radius.Match) (int, error) {
	list, err := c.find(m)
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, s := range list {
		if _, err := c.mgr.End(s.ID, store.ReasonKicked); err != nil {
			errs = append(errs, err)
		}
	}
	return len(list), errors.Join(errs...)
}

// Change applies only the attributes the CoA carried.
func (c dasController) Change(m radius.Match, ch radius.Change) (int, error) {
	list, err := c.find(m)
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, s := range list {
		if ch.RateDown != nil || ch.RateUp != nil {
			var down, up uint64
			if ch.RateDown != nil {
				down = *ch.RateDown
			}
			if ch.RateUp != nil {
				up = *ch.RateUp
			}
			if _, err := c.mgr.SetRate(s.ID, down, up); err != nil {
				errs = append(errs, err)
			}
		}
		if ch.SessionTimeout != nil || ch.IdleTimeout != nil {
			if _, err := c.mgr.SetTimeouts(s.ID, ch.SessionTimeout, ch.IdleTimeout); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return len(list), errors.Join(errs...)
}
