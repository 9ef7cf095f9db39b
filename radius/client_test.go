package radius

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	rad "layeh.com/radius"
)

// fakeServer is a loopback RADIUS server whose answers a test scripts.
type fakeServer struct {
	conn   *net.UDPConn
	secret []byte
	answer func(req *rad.Packet, wire []byte) [][]byte

	mu   sync.Mutex
	got  [][]byte
	done chan struct{}
}

func newFakeServer(t *testing.T, answer func(req *rad.Packet, wire []byte) [][]byte) *fakeServer {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{conn: conn, secret: []byte(testSecret), answer: answer, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 4096)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			wire := append([]byte(nil), buf[:n]...)
			s.mu.Lock()
			s.got = append(s.got, wire)
			s.mu.Unlock()
			req, err := rad.Parse(wire, s.secret)
			if err != nil {
				continue
			}
			s.mu.Lock()
			answer := s.answer
			s.mu.Unlock()
			if answer == nil {
				continue
			}
			for _, r := range answer(req, wire) {
				_, _ = conn.WriteToUDP(r, from)
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-s.done })
	return s
}

func (s *fakeServer) setAnswer(f func(req *rad.Packet, wire []byte) [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answer = f
}

func (s *fakeServer) addr() string { return s.conn.LocalAddr().String() }

func (s *fakeServer) received() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.got...)
}

// reply encodes a response to req, with or without Message-Authenticator.
func reply(t testing.TB, req *rad.Packet, code rad.Code, withMA bool, attrs ...*rad.AVP) []byte {
	p := req.Response(code)
	p.Attributes = append(p.Attributes, attrs...)
	var b []byte
	var err error
	if withMA {
		b, err = encodeSigned(p)
	} else {
		b, err = p.Encode()
	}
	if err != nil {
		t.Error(err)
	}
	return b
}

// TestClientRequiresMessageAuthenticatorOnAccessAccept: an Access-Accept
// with a wrong Message-Authenticator is a forgery and ignored (the request
// is retransmitted, then the server counts as unreachable); a genuine one
// without any (FreeRADIUS 3.2.1) is not used either, but it ends the
// exchange with ErrUnverifiable, which is not ErrUnreachable: a fail-open
// policy must not turn what may have been a reject into an accept.
func TestClientRequiresMessageAuthenticatorOnAccessAccept(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mangle  func([]byte) []byte
		withMA  bool
		want    error
		packets int
	}{
		{"missing", nil, false, ErrUnverifiable, 1},
		{"wrong", func(b []byte) []byte {
			// Corrupt the MA and fix up the Response Authenticator so
			// only the MA check can catch it.
			b[25] ^= 0xff
			return b
		}, true, ErrUnreachable, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFakeServer(t, nil)
			srv.setAnswer(func(req *rad.Packet, wire []byte) [][]byte {
				b := reply(t, req, rad.CodeAccessAccept, tc.withMA)
				if tc.mangle != nil {
					b = tc.mangle(b)
					p, _ := rad.Parse(b, srv.secret)
					p.Authenticator = req.Authenticator
					b, _ = p.Encode()
				}
				return [][]byte{b}
			})
			client := fastClient(t, srv.addr())
			az, _ := NewAuthorizer(AuthConfig{Client: client, NAS: testNAS, Logger: testLogger(t)})
			_, err := az.Authorize(context.Background(), "+447700900001", nil, netip.Addr{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want == ErrUnverifiable && errors.Is(err, ErrUnreachable) {
				t.Fatalf("err = %v also says unreachable: a fail-open policy would let the visitor in", err)
			}
			got := srv.received()
			if len(got) != tc.packets {
				t.Fatalf("server got %d packets, want %d", len(got), tc.packets)
			}
			if len(got) == 2 && string(got[0]) != string(got[1]) {
				t.Error("retransmission differs from the original")
			}
			h := client.Health()[0]
			switch tc.want {
			case ErrUnverifiable:
				if h.Problem != ProblemNoMessageAuthenticator {
					t.Errorf("health after an unsigned Access-Accept: %+v", h)
				}
			case ErrUnreachable:
				if h.Problem != ProblemUnreachable {
					t.Errorf("health after forged answers only: %+v", h)
				}
			}
		})
	}
}

func TestClientIgnoresForgedResponse(t *testing.T) {
	srv := newFakeServer(t, nil)
	srv.setAnswer(func(req *rad.Packet, wire []byte) [][]byte {
		forged := req.Response(rad.CodeAccessAccept)
		forged.Secret = []byte("attacker")
		fb, _ := encodeSigned(forged)
		return [][]byte{fb, reply(t, req, rad.CodeAccessReject, true, &rad.AVP{Type: attrReplyMessage, Attribute: rad.Attribute("no")})}
	})
	az, _ := NewAuthorizer(AuthConfig{Client: fastClient(t, srv.addr()), NAS: testNAS, Logger: testLogger(t)})
	d, err := az.Authorize(context.Background(), "+447700900001", nil, netip.Addr{})
	if err != nil || !d.Reject || d.ReplyMessage != "no" {
		t.Fatalf("decision %+v, err %v; want the genuine reject", d, err)
	}
}

func TestAccessRequestContents(t *testing.T) {
	for _, tc := range []struct{ configured, want string }{{"", "+447700900001"}, {"park-visitor", "park-visitor"}} {
		srv := newFakeServer(t, nil)
		srv.setAnswer(func(req *rad.Packet, wire []byte) [][]byte {
			return [][]byte{reply(t, req, rad.CodeAccessAccept, true)}
		})
		az, _ := NewAuthorizer(AuthConfig{Client: fastClient(t, srv.addr()), NAS: testNAS, Password: tc.configured})
		mac := net.HardwareAddr{0x02, 0, 0x5e, 0, 0x53, 0x42}
		if _, err := az.Authorize(context.Background(), "+447700900001", mac, netip.MustParseAddr("198.51.100.42")); err != nil {
			t.Fatal(err)
		}
		wire := srv.received()[0]
		present, err := verifyMessageAuthenticator(wire, (*[16]byte)(wire[4:20]), srv.secret)
		if !present || err != nil {
			t.Fatalf("Access-Request Message-Authenticator present=%v err=%v", present, err)
		}
		if wire[20] != byte(attrMessageAuthenticator) {
			t.Error("Message-Authenticator is not the first attribute")
		}
		req, _ := rad.Parse(wire, srv.secret)
		pw, err := rad.UserPassword(req.Get(attrUserPassword), srv.secret, req.Authenticator[:])
		if err != nil || string(pw) != tc.want {
			t.Errorf("User-Password = %q (%v), want %q", pw, err, tc.want)
		}
		for typ, want := range map[rad.Type]string{
			attrUserName:         "+447700900001",
			attrCallingStationID: "02-00-5E-00-53-42",
			attrNASIdentifier:    "park-gw-1",
			attrCalledStationID:  "02-00-5E-00-53-01:ParkWiFi",
			attrFramedIPAddress:  string([]byte{198, 51, 100, 42}),
			attrNASIPAddress:     string([]byte{198, 51, 100, 1}),
		} {
			if got := string(req.Get(typ)); got != want {
				t.Errorf("attribute %d = %q, want %q", typ, got, want)
			}
		}
	}
}

func TestAccountingResponsePolicy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		withMA  bool
		badMA   bool
		deliver bool
	}{{"without MA accepted", false, false, true}, {"with MA accepted", true, false, true}, {"bad MA ignored", true, true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFakeServer(t, nil)
			srv.setAnswer(func(req *rad.Packet, wire []byte) [][]byte {
				var zero [16]byte
				if ok, err := verifyMessageAuthenticator(wire, &zero, srv.secret); !ok || err != nil {
					t.Errorf("Accounting-Request Message-Authenticator ok=%v err=%v", ok, err)
				}
				if !rad.IsAuthenticRequest(wire, srv.secret) {
					t.Error("bad Accounting-Request authenticator")
				}
				b := reply(t, req, rad.CodeAccountingResponse, tc.withMA)
				if tc.badMA {
					p, _ := rad.Parse(b, srv.secret)
					p.Attributes[0].Attribute[0] ^= 1
					p.Authenticator = req.Authenticator
					b, _ = p.Encode()
				}
				return [][]byte{b}
			})
			c := fastClient(t, srv.addr())
			_, err := c.exchange(context.Background(), func(secret []byte) (*rad.Packet, error) {
				p := rad.New(rad.CodeAccountingRequest, secret)
				p.Add(attrAcctStatusType, rad.NewInteger(statusOn))
				return p, nil
			})
			if (err == nil) != tc.deliver {
				t.Fatalf("err = %v, want delivered=%v", err, tc.deliver)
			}
		})
	}
}

func TestParseDecisionStrict(t *testing.T) {
	bad := []rad.Attributes{
		{{Type: attrSessionTimeout, Attribute: rad.Attribute{0, 0, 1}}},
		{{Type: attrIdleTimeout, Attribute: rad.Attribute{0, 0, 0, 0, 1}}},
		{{Type: attrVendorSpecific, Attribute: rad.Attribute{0, 0}}},
		{{Type: attrVendorSpecific, Attribute: rad.Attribute{0, 0, 0x37, 0x2a, 8, 5, 0, 0, 0}}},
		{{Type: attrVendorSpecific, Attribute: newVSA(vendorWISPr, wisprBandwidthDown, rad.Attribute{1, 2})}},
		{{Type: attrVendorSpecific, Attribute: newVSA(vendorWISPr, wisprBandwidthDown, rad.NewInteger(1))}, {Type: attrVendorSpecific, Attribute: newVSA(vendorWISPr, wisprBandwidthDown, rad.NewInteger(2))}},
	}
	for i, attrs := range bad {
		if _, err := parseDecision(attrs); !errors.Is(err, ErrMalformed) {
			t.Errorf("case %d: err = %v, want ErrMalformed", i, err)
		}
	}
	d, err := parseDecision(rad.Attributes{
		{Type: attrVendorSpecific, Attribute: newVSA(vendorChilliSpot, chilliBandwidthDown, rad.NewInteger(2048))},
		{Type: attrVendorSpecific, Attribute: newVSA(4242, 1, rad.Attribute("ignored"))},
		{Type: attrClass, Attribute: rad.Attribute("a")},
		{Type: attrClass, Attribute: rad.Attribute("b")},
	})
	if err != nil || d.RateDown != 2048000 || string(d.Class) != "a" {
		t.Errorf("decision %+v err %v", d, err)
	}
}

// acctRecorder answers Accounting-Requests and records their status types.
func acctRecorder(t *testing.T) (*fakeServer, func() []uint32) {
	srv := newFakeServer(t, func(req *rad.Packet, wire []byte) [][]byte {
		return [][]byte{reply(t, req, rad.CodeAccountingResponse, false)}
	})
	return srv, func() []uint32 {
		var out []uint32
		for _, w := range srv.received() {
			p, _ := rad.Parse(w, srv.secret)
			v, _ := rad.Integer(p.Get(attrAcctStatusType))
			out = append(out, v)
		}
		return out
	}
}

func TestAccountingOnOffAcrossRestarts(t *testing.T) {
	srv, statuses := acctRecorder(t)
	path := filepath.Join(t.TempDir(), "state.db")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	step := func(restarting bool) *Accounting {
		db := openDB(t, path)
		a := newTestAccounting(t, db, fastClient(t, srv.addr()), nil)
		if err := a.Close(ctx, CloseOptions{Restarting: restarting}); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		return a
	}
	step(true)       // fresh start: On; planned restart: no Off
	a := step(false) // resumed: no On; clean stop: Off
	if !a.Resumed() {
		t.Error("second start did not resume")
	}
	step(false) // cold start again: On, Off
	want := []uint32{statusOn, statusOff, statusOn, statusOff}
	got := statuses()
	if len(got) != len(want) {
		t.Fatalf("status types %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("status types %v, want %v", got, want)
		}
	}
}

// TestAccountingContinuingSessions: a start that restores sessions (after
// a crash, when no planned-restart mark was left) sends no Accounting-On,
// which would make the server close sessions that go on.
func TestAccountingContinuingSessions(t *testing.T) {
	srv, statuses := acctRecorder(t)
	db := openDB(t, filepath.Join(t.TempDir(), "state.db"))
	a, err := NewAccounting(AccountingConfig{
		Client: fastClient(t, srv.addr()), NAS: testNAS, DB: db, Continuing: true,
		RetryMin: 100 * time.Millisecond, RetryMax: 300 * time.Millisecond, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := a.QueueLen(); n != 0 {
		t.Errorf("QueueLen = %d after a start with sessions to restore, want 0 (no Accounting-On)", n)
	}
	if err := a.Start(testSession); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Close(ctx, CloseOptions{Restarting: true}); err != nil {
		t.Fatal(err)
	}
	if got := statuses(); len(got) != 1 || got[0] != statusStart {
		t.Errorf("status types %v, want only the Start", got)
	}
}

// TestAccountingQueueDropsInterimsFirst: a full queue gives up the oldest
// Interim-Update, never a Start or Stop while an interim is left: those
// are the session's record, the interims only a progress report that the
// next one (or the Stop) repeats.
func TestAccountingQueueDropsInterimsFirst(t *testing.T) {
	dead := "127.0.0.1:" + strconv.Itoa(freeUDPPort(t))
	db := openDB(t, filepath.Join(t.TempDir(), "state.db"))
	a, err := NewAccounting(AccountingConfig{
		Client: fastClient(t, dead), NAS: testNAS, DB: db, MaxQueue: 4, Continuing: true,
		RetryMin: time.Hour, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	s := testSession
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.Start(s))
	for range 6 {
		must(a.Interim(s))
	}
	must(a.Stop(s, TerminateUserRequest))
	var got []uint32
	db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketQueue).ForEach(func(_, v []byte) error {
			got = append(got, recordStatus(v[9:]))
			return nil
		})
	})
	want := []uint32{statusStart, statusInterim, statusInterim, statusStop}
	if !slices.Equal(got, want) || a.Dropped() != 4 {
		t.Errorf("queue %v (dropped %d), want %v (dropped 4)", got, a.Dropped(), want)
	}
}

func TestAccountingQueueBound(t *testing.T) {
	dead := "127.0.0.1:" + strconv.Itoa(freeUDPPort(t))
	path := filepath.Join(t.TempDir(), "state.db")
	db := openDB(t, path)
	a, err := NewAccounting(AccountingConfig{
		Client: fastClient(t, dead), NAS: testNAS, DB: db, MaxQueue: 3,
		RetryMin: time.Hour, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	s := testSession
	for range 5 {
		if err := a.Interim(s); err != nil {
			t.Fatal(err)
		}
	}
	if a.QueueLen() != 3 || a.Dropped() != 3 { // On + 5 interims, 3 kept
		t.Fatalf("QueueLen %d Dropped %d, want 3 and 3", a.QueueLen(), a.Dropped())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := a.Close(ctx, CloseOptions{Restarting: true}); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(s); err == nil {
		t.Error("Start after Close succeeded")
	}
	db.Close()

	db = openDB(t, path)
	a2 := newTestAccounting(t, db, fastClient(t, dead), nil)
	if a2.QueueLen() != 3 || a2.Dropped() != 3 {
		t.Errorf("after reopening: QueueLen %d Dropped %d, want 3 and 3", a2.QueueLen(), a2.Dropped())
	}
	if err := a2.Start(Session{Phone: "+447700900001"}); err == nil {
		t.Error("Start without a session ID succeeded")
	}
}

func TestClientFailback(t *testing.T) {
	c, err := NewClient(ClientConfig{
		Servers:       []Server{{Addr: "127.0.0.1:1", Secret: []byte("a")}, {Addr: "127.0.0.1:2", Secret: []byte("b")}},
		FailbackAfter: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	c.succeeded(1)
	if got := c.order(); got[0] != 1 {
		t.Errorf("order right after failover = %v, want the secondary first", got)
	}
	c.mu.Lock()
	c.failedAt = time.Now().Add(-2 * time.Minute)
	c.mu.Unlock()
	if got := c.order(); got[0] != 0 || got[1] != 1 {
		t.Errorf("order after FailbackAfter = %v, want the primary first", got)
	}
	if s := (Server{Addr: "x:1", Secret: []byte("hunter2")}).LogValue().String(); s != "x:1" {
		t.Errorf("Server logs as %q", s)
	}
}

// FuzzParseDecision feeds arbitrary attribute bytes, as an Access-Accept
// from a misconfigured or hostile server would carry them, to the reply
// decoder: it never panics, rejects only with ErrMalformed, and whatever
// it accepts decodes the same way twice (no state kept between replies).
func FuzzParseDecision(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed[1:])
	}
	f.Add([]byte{byte(attrClass), 2})
	f.Add([]byte{byte(attrReplyMessage), 5, 'h', 'i', '!', byte(attrReplyMessage), 3, '?'})
	f.Fuzz(func(t *testing.T, data []byte) {
		attrs, err := rad.ParseAttributes(data)
		if err != nil {
			return // the packet layer rejects it before we see it
		}
		d, err := parseDecision(attrs)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not marked malformed: %v", err)
			}
			return
		}
		again, err := parseDecision(attrs)
		if err != nil || !reflect.DeepEqual(d, again) {
			t.Fatalf("second decode differs: %+v / %+v, %v", d, again, err)
		}
	})
}

// TestSilentServerPastDeadline: when the caller's deadline passes before
// any server answers, the error still means "unreachable", so the site's
// fail-open policy can apply; a cancelled context is the caller giving
// up, which is not.
func TestSilentServerPastDeadline(t *testing.T) {
	srv := newFakeServer(t, func(*rad.Packet, []byte) [][]byte { return nil }) // never answers
	client := fastClient(t, srv.addr())
	az, _ := NewAuthorizer(AuthConfig{Client: client, NAS: testNAS, Logger: testLogger(t)})

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := az.Authorize(ctx, "+447700900001", nil, netip.Addr{})
	if !errors.Is(err, ErrUnreachable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("past the deadline: err = %v, want ErrUnreachable and DeadlineExceeded", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err = az.Authorize(ctx, "+447700900001", nil, netip.Addr{})
	if errors.Is(err, ErrUnreachable) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v, want context.Canceled only", err)
	}
}

func TestCalledStationID(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x53, 0x01}
	for _, tc := range []struct{ configured, want string }{
		{"", "02-00-5E-00-53-01"},
		{":ParkWiFi", "02-00-5E-00-53-01:ParkWiFi"},
		{"AA-BB-CC-DD-EE-FF:Other", "AA-BB-CC-DD-EE-FF:Other"},
	} {
		if got := CalledStationID(mac, tc.configured); got != tc.want {
			t.Errorf("CalledStationID(%q) = %q, want %q", tc.configured, got, tc.want)
		}
	}
	if got := CalledStationID(nil, ":ParkWiFi"); got != "" {
		t.Errorf("without a MAC: %q, want none", got)
	}
}
