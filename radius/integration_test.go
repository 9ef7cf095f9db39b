package radius

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

const testSecret = "parkpark-s3cret"

var testNAS = NAS{
	Identifier:      "park-gw-1",
	IP:              netip.MustParseAddr("198.51.100.1"),
	CalledStationID: "02-00-5E-00-53-01:ParkWiFi",
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// fastClient retransmits quickly so outage tests stay short.
func fastClient(t *testing.T, addrs ...string) *Client {
	t.Helper()
	var servers []Server
	for _, a := range addrs {
		servers = append(servers, Server{Addr: a, Secret: []byte(testSecret)})
	}
	c, err := NewClient(ClientConfig{
		Servers:        servers,
		InitialTimeout: 150 * time.Millisecond,
		MaxTimeout:     400 * time.Millisecond,
		MaxRetransmits: 1,
		MaxDuration:    time.Second,
		Logger:         testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFreeRADIUSAuthorize(t *testing.T) {
	fr := newFreeRADIUS(t, testSecret)
	// The primary is a loopback port nobody listens on: the first request
	// fails over to FreeRADIUS.
	dead := "127.0.0.1:" + strconv.Itoa(freeUDPPort(t))
	client := fastClient(t, dead, fr.authAddr)
	az, err := NewAuthorizer(AuthConfig{Client: client, NAS: testNAS, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mac := net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x53, 0x42}
	ip := netip.MustParseAddr("198.51.100.42")

	d, err := az.Authorize(ctx, "+447700900001", mac, ip)
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	want := Decision{
		ReplyMessage:    "Welcome to the park",
		SessionTimeout:  time.Hour,
		IdleTimeout:     10 * time.Minute,
		InterimInterval: 5 * time.Minute,
		RateDown:        8000000, // WISPr wins over ChilliSpot
		RateUp:          2000000,
		Class:           []byte("plan-basic"),
	}
	if !equalDecision(d, want) {
		t.Errorf("decision = %+v, want %+v", d, want)
	}
	if client.active != 1 {
		t.Errorf("client did not fail over to the secondary: active = %d", client.active)
	}

	d, err = az.Authorize(ctx, "+447700900003", mac, ip)
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	if d.Reject || d.RateDown != 4000000 || d.RateUp != 1000000 {
		t.Errorf("ChilliSpot-only decision = %+v, want 4000000/1000000 bit/s", d)
	}

	d, err = az.Authorize(ctx, "+447700900002", mac, ip)
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	if !d.Reject || d.ReplyMessage != "This number is blocked" {
		t.Errorf("rejected visitor's decision = %+v", d)
	}

	// With the wrong secret FreeRADIUS finds the Message-Authenticator
	// wrong and drops the request: no answer at all.
	bad, err := NewClient(ClientConfig{
		Servers:        []Server{{Addr: fr.authAddr, Secret: []byte("wrong")}},
		InitialTimeout: 100 * time.Millisecond, MaxRetransmits: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	az2, _ := NewAuthorizer(AuthConfig{Client: bad, NAS: testNAS})
	if _, err := az2.Authorize(ctx, "+447700900001", mac, ip); !errors.Is(err, ErrUnreachable) {
		t.Errorf("wrong secret: err = %v, want ErrUnreachable", err)
	}
}

func equalDecision(a, b Decision) bool {
	return a.Reject == b.Reject && a.ReplyMessage == b.ReplyMessage &&
		a.SessionTimeout == b.SessionTimeout && a.IdleTimeout == b.IdleTimeout &&
		a.InterimInterval == b.InterimInterval && a.RateDown == b.RateDown &&
		a.RateUp == b.RateUp && string(a.Class) == string(b.Class)
}

func openDB(t *testing.T, path string) *bbolt.DB {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func newTestAccounting(t *testing.T, db *bbolt.DB, client *Client, now func() time.Time) *Accounting {
	t.Helper()
	a, err := NewAccounting(AccountingConfig{
		Client:   client,
		NAS:      testNAS,
		DB:       db,
		RetryMin: 100 * time.Millisecond,
		RetryMax: 300 * time.Millisecond,
		Logger:   testLogger(t),
		Now:      now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_ = a.Close(ctx, CloseOptions{Restarting: true})
	})
	return a
}

var testSession = Session{
	ID:    "pp-0001",
	Phone: "+447700900001",
	MAC:   net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x53, 0x42},
	IP:    netip.MustParseAddr("198.51.100.42"),
	Class: []byte("plan-basic"),
}

func TestFreeRADIUSAccountingSession(t *testing.T) {
	fr := newFreeRADIUS(t, testSecret)
	db := openDB(t, filepath.Join(t.TempDir(), "state.db"))
	start := time.Now().Add(-90 * time.Second)
	a := newTestAccounting(t, db, fastClient(t, fr.acctAddr), nil)

	s := testSession
	s.Start = start
	if err := a.Start(s); err != nil {
		t.Fatal(err)
	}
	s.BytesIn, s.BytesOut, s.PacketsIn, s.PacketsOut = 1000, 5<<32+7, 10, 20
	if err := a.Interim(s); err != nil {
		t.Fatal(err)
	}
	s.BytesIn, s.BytesOut, s.PacketsIn, s.PacketsOut = 2000, 6<<32+9, 15, 30
	if err := a.Stop(s, TerminateIdleTimeout); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := a.Close(ctx, CloseOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := a.QueueLen(); n != 0 {
		t.Fatalf("QueueLen after Close = %d", n)
	}

	recs := fr.detail()
	var types []string
	for _, r := range recs {
		types = append(types, r.Get("Acct-Status-Type"))
	}
	wantTypes := []string{"Accounting-On", "Start", "Interim-Update", "Stop", "Accounting-Off"}
	if !equalStrings(types, wantTypes) {
		t.Fatalf("status types = %v, want %v", types, wantTypes)
	}
	for i, r := range recs {
		for _, name := range []string{"NAS-Identifier", "NAS-IP-Address", "Called-Station-Id", "Acct-Session-Id", "Event-Timestamp", "Acct-Delay-Time", "Message-Authenticator"} {
			if len(r[name]) != 1 {
				t.Errorf("record %d (%s): %s = %v, want exactly one", i, types[i], name, r[name])
			}
		}
		if r.Get("NAS-Identifier") != "park-gw-1" || r.Get("NAS-IP-Address") != "198.51.100.1" || r.Get("Called-Station-Id") != "02-00-5E-00-53-01:ParkWiFi" {
			t.Errorf("record %d: NAS attributes %v", i, r)
		}
	}
	for _, r := range recs[1:4] {
		check := map[string]string{
			"User-Name":          "+447700900001",
			"Acct-Session-Id":    "pp-0001",
			"Calling-Station-Id": "02-00-5E-00-53-42",
			"Framed-IP-Address":  "198.51.100.42",
			"Class":              "0x706c616e2d6261736963",
			"NAS-Port-Type":      "Wireless-802.11",
		}
		for name, want := range check {
			if got := r.Get(name); got != want {
				t.Errorf("%s: %s = %q, want %q", r.Get("Acct-Status-Type"), name, got, want)
			}
		}
	}
	interim, stop := recs[2], recs[3]
	for name, want := range map[string]string{
		"Acct-Input-Octets": "1000", "Acct-Output-Octets": "7",
		"Acct-Input-Gigawords": "0", "Acct-Output-Gigawords": "5",
		"Acct-Input-Packets": "10", "Acct-Output-Packets": "20",
	} {
		if got := interim.Get(name); got != want {
			t.Errorf("Interim %s = %q, want %q", name, got, want)
		}
	}
	for name, want := range map[string]string{
		"Acct-Input-Octets": "2000", "Acct-Output-Octets": "9",
		"Acct-Output-Gigawords": "6", "Acct-Terminate-Cause": "Idle-Timeout",
	} {
		if got := stop.Get(name); got != want {
			t.Errorf("Stop %s = %q, want %q", name, got, want)
		}
	}
	if st, _ := strconv.Atoi(stop.Get("Acct-Session-Time")); st < 90 || st > 600 {
		t.Errorf("Stop Acct-Session-Time = %q, want about 90", stop.Get("Acct-Session-Time"))
	}
	if recs[1].Get("Acct-Session-Time") != "" {
		t.Errorf("Start carries Acct-Session-Time %q", recs[1].Get("Acct-Session-Time"))
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestFreeRADIUSAccountingOutage kills FreeRADIUS while records are queued,
// restarts the daemon's accounting (planned restart, db reopened) and then
// FreeRADIUS, and checks that every record arrives once, in order, with the
// delay it waited.
func TestFreeRADIUSAccountingOutage(t *testing.T) {
	fr := newFreeRADIUS(t, testSecret)
	dbPath := filepath.Join(t.TempDir(), "state.db")
	db := openDB(t, dbPath)
	a := newTestAccounting(t, db, fastClient(t, fr.acctAddr), nil)
	waitFor(t, 10*time.Second, "Accounting-On delivered", func() bool { return a.QueueLen() == 0 })

	fr.stop()
	s := testSession
	s.Start = time.Now()
	if err := a.Start(s); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		s.BytesIn = uint64(i+1) * 100
		if err := a.Interim(s); err != nil {
			t.Fatal(err)
		}
	}
	if n := a.QueueLen(); n != 4 {
		t.Fatalf("QueueLen = %d, want 4", n)
	}
	// A planned restart of the daemon while the server is down: nothing
	// can be delivered, no Accounting-Off is queued.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := a.Close(ctx, CloseOptions{Restarting: true}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // so Acct-Delay-Time is at least 1 s

	db = openDB(t, dbPath)
	a = newTestAccounting(t, db, fastClient(t, fr.acctAddr), nil)
	if !a.Resumed() {
		t.Error("Resumed() = false after a planned restart")
	}
	if n := a.QueueLen(); n != 4 {
		t.Fatalf("QueueLen after reopening = %d, want 4 (no Accounting-On after a planned restart)", n)
	}
	fr.start()
	waitFor(t, 15*time.Second, "queue drained after FreeRADIUS came back", func() bool { return a.QueueLen() == 0 })

	// Kill it again with the sender running, then queue the Stop.
	fr.stop()
	s.BytesIn = 999
	if err := a.Stop(s, TerminateUserRequest); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	fr.start()
	waitFor(t, 15*time.Second, "Stop delivered", func() bool { return a.QueueLen() == 0 })

	recs := fr.detail()
	var got []string
	for _, r := range recs {
		got = append(got, r.Get("Acct-Status-Type")+"/"+r.Get("Acct-Input-Octets"))
	}
	want := []string{"Accounting-On/", "Start/", "Interim-Update/100", "Interim-Update/200", "Interim-Update/300", "Stop/999"}
	if !equalStrings(got, want) {
		t.Fatalf("records = %v, want %v", got, want)
	}
	for _, r := range recs[1:] {
		if d, _ := strconv.Atoi(r.Get("Acct-Delay-Time")); d < 1 {
			t.Errorf("%s: Acct-Delay-Time = %q, want >= 1", r.Get("Acct-Status-Type"), r.Get("Acct-Delay-Time"))
		}
	}
}
