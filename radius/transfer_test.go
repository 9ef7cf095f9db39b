package radius

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"go.etcd.io/bbolt"
	rad "layeh.com/radius"
)

// TestAccountingTransfer: records moved from a caller's bucket are queued
// in the same transaction (both or neither), stamped with the time their
// event happened, not the time they were queued.
func TestAccountingTransfer(t *testing.T) {
	srv, _ := acctRecorder(t)
	db := openDB(t, filepath.Join(t.TempDir(), "state.db"))
	outbox := []byte("test_outbox")
	err := db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket(outbox)
		if err != nil {
			return err
		}
		return b.Put([]byte("stop"), []byte("s1"))
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	a := newTestAccounting(t, db, fastClient(t, srv.addr()), func() time.Time { return now })
	waitFor(t, 5*time.Second, "Accounting-On delivered", func() bool { return a.QueueLen() == 0 })

	ended := now.Add(-10 * time.Minute) // a CLI kick while the daemon was down
	s := testSession
	s.Start = ended.Add(-time.Hour)
	s.BytesIn, s.BytesOut = 1234, 5678

	// A failing fill changes nothing: not the queue, not the bucket.
	_, err = a.Transfer(func(tx *bbolt.Tx) ([]Record, error) {
		if err := tx.Bucket(outbox).Delete([]byte("stop")); err != nil {
			return nil, err
		}
		return []Record{{Kind: RecordStop, Session: s, At: ended}}, errors.New("disk full")
	})
	if err == nil || a.QueueLen() != 0 {
		t.Fatalf("failed fill: err %v, queue %d", err, a.QueueLen())
	}
	if !hasKey(t, db, outbox, "stop") {
		t.Fatal("a failed Transfer kept the caller's change")
	}

	srv.setAnswer(nil) // hold the record in the queue to read it
	n, err := a.Transfer(func(tx *bbolt.Tx) ([]Record, error) {
		return []Record{{Kind: RecordStop, Session: s, Cause: TerminateAdminReset, At: ended}}, tx.Bucket(outbox).Delete([]byte("stop"))
	})
	if err != nil || n != 1 || a.QueueLen() != 1 {
		t.Fatalf("Transfer: n %d, err %v, queue %d", n, err, a.QueueLen())
	}
	if hasKey(t, db, outbox, "stop") {
		t.Fatal("the caller's change was not committed with the record")
	}
	var stop *rad.Packet
	waitFor(t, 5*time.Second, "the Stop sent", func() bool {
		for _, w := range srv.received() {
			if p, _ := rad.Parse(w, srv.secret); p != nil && status(p) == statusStop {
				stop = p
				return true
			}
		}
		return false
	})
	ts, _ := rad.Integer(stop.Get(attrEventTimestamp))
	delay, _ := rad.Integer(stop.Get(attrAcctDelayTime))
	secs, _ := rad.Integer(stop.Get(attrAcctSessionTime))
	cause, _ := rad.Integer(stop.Get(attrAcctTerminateCause))
	if int64(ts) != ended.Unix() || delay != 600 || secs != 3600 || cause != uint32(TerminateAdminReset) {
		t.Errorf("Stop: Event-Timestamp %d (want %d), Acct-Delay-Time %d (want 600), Acct-Session-Time %d (want 3600), cause %d",
			ts, ended.Unix(), delay, secs, cause)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	a.Close(ctx, CloseOptions{Restarting: true})
	if _, err := a.Transfer(func(*bbolt.Tx) ([]Record, error) { return nil, nil }); err == nil {
		t.Error("Transfer after Close succeeded")
	}
}

func status(p *rad.Packet) uint32 {
	v, _ := rad.Integer(p.Get(attrAcctStatusType))
	return v
}

func hasKey(t *testing.T, db *bbolt.DB, bucket []byte, key string) bool {
	t.Helper()
	var ok bool
	if err := db.View(func(tx *bbolt.Tx) error {
		ok = tx.Bucket(bucket).Get([]byte(key)) != nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestFreeRADIUSSQLAccounting: what the gateway sends lands in FreeRADIUS's
// radacct table (the sqlite driver with FreeRADIUS's own schema and
// queries) as a billing system reads it: octets with their gigawords,
// the session's times from Event-Timestamp, the terminate cause.
func TestFreeRADIUSSQLAccounting(t *testing.T) {
	fr := newFreeRADIUS(t, testSecret)
	db := openDB(t, filepath.Join(t.TempDir(), "state.db"))
	a := newTestAccounting(t, db, fastClient(t, fr.acctAddr), nil)
	start := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	s := testSession
	s.Start = start
	ended := start.Add(90 * time.Minute)
	s.BytesIn, s.BytesOut = 3<<32+17, 123_456_789
	_, err := a.Transfer(func(*bbolt.Tx) ([]Record, error) {
		return []Record{
			{Kind: RecordStart, Session: testSessionAt(start), At: start},
			{Kind: RecordStop, Session: s, Cause: TerminateSessionTimeout, At: ended},
		}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "records delivered", func() bool { return a.QueueLen() == 0 })
	rows, err := fr.srv.RadAcct()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("radacct has %d rows, want 1: %+v", len(rows), rows)
	}
	r := rows[0]
	got := fmt.Sprintf("%s %s in=%d out=%d start=%d stop=%d time=%d cause=%s nas=%s",
		r.SessionID, r.UserName, deref(r.InputOctets), deref(r.OutputOctets), r.StartTime, deref(r.StopTime), deref(r.SessionTime), r.TerminateCause, r.NASIPAddress)
	want := fmt.Sprintf("pp-0001 +447700900001 in=%d out=123456789 start=%d stop=%d time=5400 cause=Session-Timeout nas=198.51.100.1",
		uint64(3<<32+17), start.Unix(), ended.Unix())
	if got != want {
		t.Errorf("radacct row:\n got  %s\n want %s", got, want)
	}
}

func testSessionAt(start time.Time) Session {
	s := testSession
	s.Start = start
	return s
}

func deref(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}

func TestVisitorText(t *testing.T) {
	long := ""
	for i := range 300 {
		long += strconv.Itoa(i % 10)
	}
	for _, tc := range []struct{ in, want string }{
		{"This number is blocked", "This number is blocked"},
		{"  two\r\nlines\tand\x00nul  ", "two lines and nul"},
		{"رقمك \u202eمحظور\u202c", "رقمك محظور"},
		{"bad \xff\xfe utf-8", "bad utf-8"},
		{"<b>bold</b> & 'quoted'", "<b>bold</b> & 'quoted'"}, // escaping is the template's
		{"zero\u200bwidth, join\u200dkept", "zerowidth, join\u200dkept"},
		{long, long[:MaxVisitorText-1] + "…"},
		{"", ""},
	} {
		if got := VisitorText(tc.in); got != tc.want {
			t.Errorf("VisitorText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzVisitorText: whatever a server sends, the visitor gets valid UTF-8
// of bounded length, without control or bidi-override characters, and
// cleaning twice changes nothing.
func FuzzVisitorText(f *testing.F) {
	for _, s := range []string{"This number is blocked", "a\r\nb", "\u202e\u2066x\u2069", "\xff", "رقمك محظور"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := VisitorText(s)
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8: %q", out)
		}
		if n := utf8.RuneCountInString(out); n > MaxVisitorText {
			t.Fatalf("%d characters", n)
		}
		for _, r := range out {
			if unicode.IsControl(r) || (unicode.Is(unicode.Bidi_Control, r) && r != '\u200e' && r != '\u200f') || (r != ' ' && unicode.IsSpace(r)) {
				t.Fatalf("kept %U in %q", r, out)
			}
		}
		if again := VisitorText(out); again != out {
			t.Fatalf("not stable: %q then %q", out, again)
		}
	})
}
