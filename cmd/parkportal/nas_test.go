package main

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"errors"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	rad "layeh.com/radius"

	"github.com/parkwifi/parkportal/config"
	"github.com/parkwifi/parkportal/metrics"
	"github.com/parkwifi/parkportal/portal"
	"github.com/parkwifi/parkportal/radius"
	"github.com/parkwifi/parkportal/session"
	"github.com/parkwifi/parkportal/store"
)

const testRADIUSSecret = "testing123"

// radiusPeer is a loopback RADIUS server whose answers a test scripts.
type radiusPeer struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  []*rad.Packet
}

func newRADIUSPeer(t *testing.T, answer func(req *rad.Packet) []byte) *radiusPeer {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &radiusPeer{conn: conn}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			req, err := rad.Parse(append([]byte(nil), buf[:n]...), []byte(testRADIUSSecret))
			if err != nil {
				continue
			}
			p.mu.Lock()
			p.got = append(p.got, req)
			p.mu.Unlock()
			if answer != nil {
				if b := answer(req); b != nil {
					conn.WriteToUDP(b, from)
				}
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return p
}

func (p *radiusPeer) addr() string { return p.conn.LocalAddr().String() }

func (p *radiusPeer) received() []*rad.Packet {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*rad.Packet(nil), p.got...)
}

// answer encodes a response to req, signed with a Message-Authenticator
// (RFC 3579 §3.2) or, as FreeRADIUS 3.2.1 answers, not.
func answer(t *testing.T, req *rad.Packet, code rad.Code, signed bool, attrs ...*rad.AVP) []byte {
	p := req.Response(code)
	p.Attributes = append(p.Attributes, attrs...)
	if !signed {
		b, err := p.Encode()
		if err != nil {
			t.Error(err)
		}
		return b
	}
	p.Attributes = append(rad.Attributes{{Type: 80, Attribute: make([]byte, 16)}}, p.Attributes...)
	b, err := p.MarshalBinary()
	if err != nil {
		t.Error(err)
	}
	m := hmac.New(md5.New, []byte(testRADIUSSecret))
	m.Write(b) // the request's authenticator is in place, the MA zero
	copy(p.Attributes[0].Attribute, m.Sum(nil))
	b, err = p.Encode()
	if err != nil {
		t.Error(err)
	}
	return b
}

// testNAS builds a nas for cfg's radius section on a fresh store.
func testNAS(t *testing.T, edit func(*config.Config)) (*nas, *store.Store, *session.Manager, *logBuffer) {
	t.Helper()
	_, cfg := labConfig(t)
	cfg.Radius.Secret = testRADIUSSecret
	edit(cfg)
	st, err := store.Open(cfg.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logBuf := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logBuf, nil))
	mgr := session.NewManager(session.Options{Store: st, Gate: storeOnlyGate{}, Site: cfg.Site.ID, Logger: log})
	n, err := startNAS(cfg, st, mgr, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.close() })
	return n, st, mgr, logBuf
}

// logBuffer is a log destination goroutines write to while a test reads.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestAuthorizeFailPolicyWithSilentServer: a RADIUS server that takes
// requests and never answers (the usual way one fails: a dead process
// behind a live host, a firewall dropping UDP) must lead to the site's
// fail policy within the portal's wait, not to a refusal after it.
func TestAuthorizeFailPolicyWithSilentServer(t *testing.T) {
	silent := newRADIUSPeer(t, nil)
	mac := net.HardwareAddr{2, 0, 0x5e, 0, 0x53, 1}
	ip := netip.MustParseAddr("198.51.100.10")
	for _, failOpen := range []bool{true, false} {
		n := &nas{log: slog.New(slog.DiscardHandler), secret: testRADIUSSecret, info: radius.NAS{Identifier: "lab-park"},
			cfg: config.Radius{FailOpen: failOpen}, health: map[string]serverState{}}
		if err := n.newAuthorizer([]string{silent.addr()}); err != nil {
			t.Fatal(err)
		}
		// The portal bounds the wait (15 s in portal.handlePIN); here 1 s,
		// shorter than the client's own 5 s per server, so the caller's
		// deadline is what ends the wait.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		start := time.Now()
		grant, err := n.Authorize(ctx, "+97433123456", mac, ip)
		cancel()
		took := time.Since(start)
		if failOpen && (err != nil || grant != nil) {
			t.Errorf("fail open: grant %+v, err %v; want the site's defaults (nil, nil)", grant, err)
		}
		if !failOpen && err == nil {
			t.Error("fail closed: the visitor was let in without an answer")
		}
		if took > 2*time.Second {
			t.Errorf("fail open=%v: the visitor waited %v for a silent server", failOpen, took)
		}
	}
}

// TestAuthorizeUnsignedServer: a server that answers without
// Message-Authenticator (FreeRADIUS 3.2.1) and rejects the number must
// not get the visitor in, even with fail_policy open; its problem is
// reported (log with the fix, metric, console banner in both languages)
// from the start-up probe on, before any visitor.
func TestAuthorizeUnsignedServer(t *testing.T) {
	peer := newRADIUSPeer(t, func(req *rad.Packet) []byte {
		if req.Code == rad.CodeStatusServer {
			return answer(t, req, rad.CodeAccessAccept, false)
		}
		return answer(t, req, rad.CodeAccessReject, false, &rad.AVP{Type: 18, Attribute: rad.Attribute("This number is blocked")})
	})
	n, _, _, logBuf := testNAS(t, func(c *config.Config) {
		c.Radius.Authorization, c.Radius.AuthServers, c.Radius.FailOpen = true, []string{peer.addr()}, true
	})
	n.authTimeout = time.Second
	if err := n.newAuthorizer([]string{peer.addr()}); err != nil {
		t.Fatal(err)
	}
	met := metrics.New("park", nil, nil)
	n.setMetrics(met)
	n.probe(context.Background())
	for _, lang := range []string{"en", "ar"} {
		alerts := n.alerts(lang)
		if len(alerts) != 1 || !strings.Contains(alerts[0], peer.addr()) || !strings.Contains(alerts[0], "Message-Authenticator") || !strings.Contains(alerts[0], "3.2.5") {
			t.Errorf("%s banner: %q", lang, alerts)
		}
	}
	if log := logBuf.String(); !strings.Contains(log, "problem=no-message-authenticator") || !strings.Contains(log, "update reply { &Message-Authenticator := 0x00 }") {
		t.Errorf("the start-up probe's log line lacks the problem or the fix:\n%s", log)
	}
	rec := httptest.NewRecorder()
	met.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`parkportal_radius_server_ok{role="auth",server="` + peer.addr() + `",site="park"} 0`,
		`parkportal_radius_server_problem{problem="no-message-authenticator",role="auth",server="` + peer.addr() + `",site="park"} 1`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	start := time.Now()
	grant, err := n.Authorize(context.Background(), "+97455100002", nil, netip.MustParseAddr("198.51.100.10"))
	if err == nil || grant != nil || !errors.Is(err, radius.ErrUnverifiable) {
		t.Fatalf("unsigned reject with fail_policy open: grant %+v, err %v; want a refusal", grant, err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the visitor waited %v for an answer that could not be used", took)
	}
}

// TestAuthorizeReplyMessage: a signed Access-Reject's Reply-Message
// reaches the portal cleaned and bounded.
func TestAuthorizeReplyMessage(t *testing.T) {
	peer := newRADIUSPeer(t, func(req *rad.Packet) []byte {
		return answer(t, req, rad.CodeAccessReject, true,
			&rad.AVP{Type: 18, Attribute: rad.Attribute("Blocked:\r\ncall\u202e 4400")}, &rad.AVP{Type: 18, Attribute: rad.Attribute(strings.Repeat("x", 250))})
	})
	n := &nas{log: slog.New(slog.DiscardHandler), secret: testRADIUSSecret, info: radius.NAS{Identifier: "lab-park"}, health: map[string]serverState{}}
	if err := n.newAuthorizer([]string{peer.addr()}); err != nil {
		t.Fatal(err)
	}
	_, err := n.Authorize(context.Background(), "+97455100002", nil, netip.Addr{})
	var rej *portal.Rejected
	if !errors.As(err, &rej) || !strings.HasPrefix(rej.Reason, "Blocked: call 4400xxx") || len([]rune(rej.Reason)) != radius.MaxVisitorText {
		t.Fatalf("reject: %v, reason %q", err, rej)
	}
}

// TestNoInterimAfterStop: the interim loop reads the sessions, then a
// session ends and its Stop is queued, then the loop gets to it: no
// Interim-Update may follow the Stop (a SQL accounting server would
// overwrite the Stop's octets with the Interim's). The old loop queued
// one here.
func TestNoInterimAfterStop(t *testing.T) {
	peer := newRADIUSPeer(t, func(req *rad.Packet) []byte { return answer(t, req, rad.CodeAccountingResponse, false) })
	n, st, mgr, _ := testNAS(t, func(c *config.Config) {
		c.Radius.Accounting, c.Radius.AcctServers, c.Radius.InterimInterval = true, []string{peer.addr()}, time.Minute
	})
	s, err := mgr.Activate(session.Login{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, IP: netip.MustParseAddr("198.51.100.20"), Phone: "+97433123456"})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.drain(); err != nil {
		t.Fatal(err)
	}
	live, err := mgr.Counted() // the loop's snapshot, before the end
	if err != nil || len(live) != 1 {
		t.Fatalf("Counted: %v %v", live, err)
	}
	if _, err := mgr.End(s.ID, store.ReasonLogout); err != nil {
		t.Fatal(err)
	}
	if err := n.drain(); err != nil {
		t.Fatal(err)
	}
	n.interimPass(time.Now().Add(time.Hour), live) // long overdue
	waitUntil(t, "Start and Stop delivered", func() bool { return n.acct.QueueLen() == 0 && len(statuses(peer, s.ID)) >= 2 })
	time.Sleep(100 * time.Millisecond) // an Interim would have been queued before: give it time to arrive
	if got := strings.Join(statuses(peer, s.ID), ","); got != "1,2" {
		t.Errorf("records of the session: %s, want Start (1) then Stop (2) only", got)
	}
	if _, open := n.open[s.ID]; open {
		t.Error("the ended session is still open for interims")
	}
	_ = st
}

// statuses lists the Acct-Status-Type of session id's records, in the
// order the server got them.
func statuses(p *radiusPeer, id string) []string {
	var out []string
	for _, r := range p.received() {
		if string(r.Get(44)) == id {
			v, _ := rad.Integer(r.Get(40))
			out = append(out, map[uint32]string{1: "1", 2: "2", 3: "3"}[v])
		}
	}
	return out
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 400 {
		if cond() {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestOfflineKickGetsItsStop: `parkportal sessions kick` with the daemon
// down ends the session in the store only; the Stop it owes is in the
// outbox, and the next start queues it before anything else, stamped
// with the time of the kick and the session's stored counters.
func TestOfflineKickGetsItsStop(t *testing.T) {
	peer := newRADIUSPeer(t, func(req *rad.Packet) []byte { return answer(t, req, rad.CodeAccountingResponse, false) })
	path, cfg := labConfig(t)
	cfg.Radius.Accounting, cfg.Radius.AcctServers, cfg.Radius.Secret = true, []string{peer.addr()}, testRADIUSSecret
	st, err := store.Open(cfg.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	mgr := session.NewManager(session.Options{Store: st, Gate: storeOnlyGate{}, Site: cfg.Site.ID, Logger: log})
	n, err := startNAS(cfg, st, mgr, log)
	if err != nil {
		t.Fatal(err)
	}
	s, err := mgr.Activate(session.Login{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, IP: netip.MustParseAddr("198.51.100.20"), Phone: "+97433123456"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Update(s.ID, func(x *store.Session) error { x.BytesDown = 12345; return nil }); err != nil {
		t.Fatal(err)
	}
	n.close() // the daemon stops (its Start delivered)
	st.Close()
	if got := statuses(peer, s.ID); len(got) != 1 {
		t.Fatalf("before the kick: %v", got)
	}

	kickedAt := time.Now()
	if _, err := runCmd(t, "", cmdSessions, "kick", "--config", path, s.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // so Acct-Delay-Time counts a second
	st, err = store.Open(cfg.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mgr = session.NewManager(session.Options{Store: st, Gate: storeOnlyGate{}, Site: cfg.Site.ID, Logger: log})
	n, err = startNAS(cfg, st, mgr, log)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	waitUntil(t, "the Stop", func() bool { return len(statuses(peer, s.ID)) == 2 })
	var stop *rad.Packet
	for _, r := range peer.received() {
		if v, _ := rad.Integer(r.Get(40)); v == 2 {
			stop = r
		}
	}
	cause, _ := rad.Integer(stop.Get(49))
	out, _ := rad.Integer(stop.Get(43))
	ts, _ := rad.Integer(stop.Get(55))
	delay, _ := rad.Integer(stop.Get(41))
	if cause != uint32(radius.TerminateAdminReset) || out != 12345 || int64(ts) < kickedAt.Unix()-1 || int64(ts) > kickedAt.Unix()+1 || delay < 1 {
		t.Errorf("Stop: cause %d, output octets %d, Event-Timestamp %d (kick at %d), Acct-Delay-Time %d", cause, out, ts, kickedAt.Unix(), delay)
	}
	if pending, _ := st.PendingEvents(); pending != 0 {
		t.Errorf("%d events left in the outbox", pending)
	}
}

// TestNASIPDefault: NAS-IP-Address is where the DAS listens, else the
// address the gateway reaches the RADIUS server from, not the LAN
// address where nothing RADIUS listens.
func TestNASIPDefault(t *testing.T) {
	cfg := &config.Config{GatewayIP: netip.MustParseAddr("198.51.100.1")}
	for _, tc := range []struct {
		edit func(*config.Radius)
		want string
		why  string
	}{
		{func(r *config.Radius) { r.NASIP = netip.MustParseAddr("192.0.2.77"); r.DASListen = "192.0.2.1:3799" }, "192.0.2.77", "radius.nas_ip"},
		{func(r *config.Radius) { r.DASListen = "192.0.2.1:3799"; r.AcctServers = []string{"127.0.0.1:1813"} }, "192.0.2.1", "radius.das_listen"},
		{func(r *config.Radius) { r.DASListen = "0.0.0.0:3799"; r.AcctServers = []string{"127.0.0.1:1813"} }, "127.0.0.1", "route to 127.0.0.1:1813"},
		{func(r *config.Radius) {}, "198.51.100.1", "parkportal.gateway_ip"},
	} {
		c := *cfg
		tc.edit(&c.Radius)
		ip, why := nasIP(&c)
		if ip.String() != tc.want || why != tc.why {
			t.Errorf("%+v: %s (%s), want %s (%s)", c.Radius, ip, why, tc.want, tc.why)
		}
	}
}

// TestDASProblemReported: Disconnect/CoA requests a configured client
// sends without Message-Authenticator are counted and shown on the
// console until one arrives signed.
func TestDASProblemReported(t *testing.T) {
	logBuf := &logBuffer{}
	n := &nas{log: slog.New(slog.NewTextHandler(logBuf, nil)), health: map[string]serverState{}}
	met := metrics.New("park", nil, nil)
	n.setMetrics(met)
	client := netip.MustParseAddr("192.0.2.10")
	n.onDASRequest(client, radius.ProblemNoMessageAuthenticator)
	n.onDASRequest(client, radius.ProblemNoMessageAuthenticator)
	for _, lang := range []string{"en", "ar"} {
		if a := n.alerts(lang); len(a) != 1 || !strings.Contains(a[0], "192.0.2.10") || !strings.Contains(a[0], "Disconnect/CoA") {
			t.Errorf("%s banner: %q", lang, a)
		}
	}
	rec := httptest.NewRecorder()
	met.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if want := `parkportal_radius_das_refused_total{problem="no-message-authenticator",site="park"} 2`; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("metrics lack %s", want)
	}
	if log := logBuf.String(); strings.Count(log, "DAS client's requests are dropped") != 1 || !strings.Contains(log, "Message-Authenticator = 0x00") {
		t.Errorf("want one log line with the fix:\n%s", log)
	}
	n.onDASRequest(client, radius.ProblemNone)
	if a := n.alerts("en"); len(a) != 0 {
		t.Errorf("banner after a signed request: %q", a)
	}
}
