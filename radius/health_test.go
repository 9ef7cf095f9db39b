package radius

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	rad "layeh.com/radius"
)

// healthLog collects what OnHealth heard.
type healthLog struct {
	mu    sync.Mutex
	heard []Health
}

func (l *healthLog) add(h Health) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.heard = append(l.heard, h)
}

func (l *healthLog) problems() []Problem {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Problem
	for _, h := range l.heard {
		out = append(out, h.Problem)
	}
	return out
}

func probeClient(t *testing.T, log *healthLog, addrs ...string) *Client {
	t.Helper()
	return probeClientWith(t, log, 150*time.Millisecond, addrs...)
}

// probeClientWith sets the first retransmission timeout; the rest of the
// schedule (and the probe's bound) scale with it.
func probeClientWith(t *testing.T, log *healthLog, initial time.Duration, addrs ...string) *Client {
	t.Helper()
	var servers []Server
	for _, a := range addrs {
		servers = append(servers, Server{Addr: a, Secret: []byte(testSecret)})
	}
	c, err := NewClient(ClientConfig{
		Servers: servers, InitialTimeout: initial, MaxTimeout: 8 * initial / 3,
		MaxRetransmits: 1, MaxDuration: 20 * initial / 3, ProbeTimeout: 4 * initial, Logger: testLogger(t), OnHealth: log.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestProbe: Status-Server tells a signing server, one that answers
// unsigned (FreeRADIUS 3.2.1), an accounting port, one with another
// secret and a silent one apart; and a real signed Access-Accept
// outweighs an unsigned Status-Server answer.
func TestProbe(t *testing.T) {
	statusOnly := func(code rad.Code, signed bool) func(*rad.Packet, []byte) [][]byte {
		return func(req *rad.Packet, _ []byte) [][]byte {
			if req.Code != rad.CodeStatusServer && req.Code != rad.CodeAccessRequest {
				return nil
			}
			if req.Code == rad.CodeAccessRequest {
				return [][]byte{reply(t, req, rad.CodeAccessAccept, true)}
			}
			return [][]byte{reply(t, req, code, signed)}
		}
	}
	signed := newFakeServer(t, statusOnly(rad.CodeAccessAccept, true))
	unsigned := newFakeServer(t, statusOnly(rad.CodeAccessAccept, false))
	acct := newFakeServer(t, statusOnly(rad.CodeAccountingResponse, false))
	other := newFakeServer(t, func(req *rad.Packet, _ []byte) [][]byte {
		req.Secret = []byte("not-our-secret") // answers signed with another secret
		return [][]byte{reply(t, req, rad.CodeAccessAccept, true)}
	})
	silent := newFakeServer(t, nil)

	var log healthLog
	c := probeClient(t, &log, signed.addr(), unsigned.addr(), acct.addr(), other.addr(), silent.addr())
	got := c.Probe(context.Background())
	want := []Problem{ProblemNone, ProblemNoMessageAuthenticator, ProblemNone, ProblemWrongSecret, ProblemUnreachable}
	for i, h := range got {
		if !h.Known || h.Problem != want[i] {
			t.Errorf("server %d (%s): %+v, want %q", i, h.Server, h, want[i])
		}
	}
	if len(log.problems()) != 5 {
		t.Errorf("OnHealth heard %v, want one report per server", log.problems())
	}
	for _, srv := range []*fakeServer{signed, unsigned} {
		rec := srv.received()
		if len(rec) == 0 || rad.Code(rec[0][0]) != rad.CodeStatusServer {
			t.Fatalf("server got no Status-Server")
		}
		if ok, err := verifyMessageAuthenticator(rec[0], (*[16]byte)(rec[0][4:20]), []byte(testSecret)); !ok || err != nil {
			t.Errorf("Status-Server without a valid Message-Authenticator (RFC 5997 §3): %v %v", ok, err)
		}
	}
	// A second probe with nothing changed reports nothing new.
	c.Probe(context.Background())
	if n := len(log.problems()); n != 5 {
		t.Errorf("an unchanged probe was reported again: %v", log.problems())
	}

	// The unsigned Status-Server answerer signs real Access-Accepts: once
	// one was seen, its Status-Server answers are no longer held against
	// it.
	one := probeClient(t, &healthLog{}, unsigned.addr())
	if one.Probe(context.Background())[0].Problem != ProblemNoMessageAuthenticator {
		t.Fatal("unsigned Status-Server answer not reported")
	}
	az, _ := NewAuthorizer(AuthConfig{Client: one, NAS: testNAS, Logger: testLogger(t)})
	if _, err := az.Authorize(context.Background(), "+447700900001", nil, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	if h := one.Health()[0]; h.Problem != ProblemNone {
		t.Errorf("after a signed Access-Accept: %+v", h)
	}
	if h := one.Probe(context.Background())[0]; h.Problem != ProblemNone {
		t.Errorf("a later unsigned Status-Server answer outweighed the signed Access-Accept: %+v", h)
	}
}

// TestProbeCancelled: a probe the caller gives up on reports nothing.
func TestProbeCancelled(t *testing.T) {
	silent := newFakeServer(t, nil)
	var log healthLog
	c := probeClient(t, &log, silent.addr())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if h := c.Probe(ctx)[0]; h.Known {
		t.Errorf("cancelled probe reported %+v", h)
	}
}

// unpatch makes the FreeRADIUS copied to root an unpatched 3.2.1, which
// signs none of its answers.
func unpatch(t *testing.T, root string) {
	t.Helper()
	conf := filepath.Join(root, "conf")
	b, err := os.ReadFile(filepath.Join(conf, "sign_replies.unpatched"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "sign_replies"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestFreeRADIUSWithoutMessageAuthenticator runs Debian 12's FreeRADIUS
// as it comes (no Message-Authenticator in its answers): the probe
// reports it, and neither an accept nor a reject from it is used, nor
// taken for an unreachable server (which fail-open would let in).
func TestFreeRADIUSWithoutMessageAuthenticator(t *testing.T) {
	for _, patched := range []bool{true, false} {
		name := map[bool]string{true: "patched", false: "unpatched"}[patched]
		t.Run(name, func(t *testing.T) {
			fr := newFreeRADIUSWith(t, testSecret, func(root string) {
				if !patched {
					unpatch(t, root)
				}
			})
			// A real server under a loaded machine: generous timeouts
			// (nothing here waits for a silent server).
			var log healthLog
			auth := probeClientWith(t, &log, time.Second, fr.authAddr)
			acct := probeClientWith(t, &log, time.Second, fr.acctAddr)
			ha, hc := auth.Probe(context.Background())[0], acct.Probe(context.Background())[0]
			if hc.Problem != ProblemNone {
				t.Errorf("accounting port: %+v", hc)
			}
			az, _ := NewAuthorizer(AuthConfig{Client: auth, NAS: testNAS, Logger: testLogger(t)})
			for _, phone := range []string{"+447700900001", "+447700900002"} {
				d, err := az.Authorize(context.Background(), phone, nil, netip.Addr{})
				switch {
				case patched && err != nil:
					t.Errorf("%s: %v", phone, err)
				case patched && d.Reject != (phone == "+447700900002"):
					t.Errorf("%s: decision %+v", phone, d)
				case !patched && !errors.Is(err, ErrUnverifiable):
					t.Errorf("%s: err %v, want ErrUnverifiable", phone, err)
				case !patched && errors.Is(err, ErrUnreachable):
					t.Errorf("%s: err %v says unreachable", phone, err)
				}
			}
			if patched && ha.Problem != ProblemNone {
				t.Errorf("patched server reported: %+v", ha)
			}
			if !patched {
				if ha.Problem != ProblemNoMessageAuthenticator {
					t.Errorf("unpatched server not reported at the probe: %+v", ha)
				}
				if h := auth.Health()[0]; h.Problem != ProblemNoMessageAuthenticator {
					t.Errorf("unpatched server after real answers: %+v", h)
				}
			}
		})
	}
}
