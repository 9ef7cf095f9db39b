package store

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestPurge: retention deletes exactly the sessions that ended before the
// cutoff (phone numbers are personal data), in runs long enough to span
// pages; active sessions, sessions that ended at or after the cutoff and
// records that do not decode stay.
func TestPurge(t *testing.T) {
	s, _ := openTemp(t)
	ids := fill(t, s, 600) // ended t0, t0+1m, ... t0+599m, keys in no time order
	if _, err := s.Activate(newSession("active", mac(1), "198.51.100.20"), ""); err != nil {
		t.Fatal(err)
	}
	s.DB().Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).Put([]byte("bad"), []byte(`{"id":"bad",`))
	})
	cutoff := t0.Add(450 * time.Minute)
	n, err := s.Purge(cutoff)
	if n != 450 || err != nil {
		t.Fatalf("Purge(t0+450m) = %d, %v; want 450", n, err)
	}
	left := storedIDs(t, s)
	for i, id := range ids {
		if left[id] != (i >= 450) {
			t.Fatalf("session that ended at t0+%dm kept = %v; want kept only from the cutoff on", i, left[id])
		}
	}
	if !left["active"] || !left["bad"] {
		t.Errorf("Purge deleted the active session or the undecodable record: %v %v", left["active"], left["bad"])
	}
	if n, err := s.Purge(cutoff); n != 0 || err != nil {
		t.Errorf("second Purge(t0+450m) = %d, %v; want 0", n, err)
	}
	// An active session is kept however old its start.
	if n, err := s.Purge(t0.Add(1000 * time.Hour)); n != 150 || err != nil {
		t.Errorf("Purge(far future) = %d, %v; want the other 150", n, err)
	}
	if left := storedIDs(t, s); len(left) != 2 || !left["active"] {
		t.Errorf("after purging all ended left %v", left)
	}
}

// TestExportCSV checks the ministry's CSV against a golden header and row,
// and that rows come oldest first.
func TestExportCSV(t *testing.T) {
	s, _ := openTemp(t)
	older := &Session{
		ID: "a1b2c3d4e5f60718", MAC: net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x20, 0x30}, IP: netip.MustParseAddr("198.51.100.23"),
		Phone: "+97433123456", Site: "al-bidda", Lang: "ar",
		Start: time.Date(2026, 3, 1, 9, 15, 0, 0, time.FixedZone("AST", 3*3600)), Expires: t0.Add(4 * time.Hour),
		State: Ended, EndReason: ReasonIdle, Ended: time.Date(2026, 3, 1, 7, 40, 30, 0, time.UTC),
		BytesDown: 123456789, BytesUp: 9876543,
	}
	newer := newSession("ffff000011112222", mac(9), "198.51.100.99")
	newer.Start = older.Start.Add(time.Hour)
	if _, err := s.Activate(newer, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Activate(older, ""); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Export(&buf, "csv"); err != nil {
		t.Fatal(err)
	}
	want := "id,site,phone,mac,ip,start,end,end_reason,state,bytes_down,bytes_up\n" +
		"a1b2c3d4e5f60718,al-bidda,+97433123456,02:00:5e:10:20:30,198.51.100.23,2026-03-01T06:15:00Z,2026-03-01T07:40:30Z,idle-timeout,ended,123456789,9876543\n" +
		"ffff000011112222,park,+97433123456,02:00:00:00:00:09,198.51.100.99,2026-03-01T07:15:00Z,,,active,0,0\n"
	if got := buf.String(); got != want {
		t.Errorf("CSV export:\n%s\nwant:\n%s", got, want)
	}
}

func TestExportJSONAndUnknownFormat(t *testing.T) {
	s, _ := openTemp(t)
	if _, err := s.Activate(newSession("s1", mac(1), "198.51.100.10"), ""); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Export(&buf, "json"); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, `"mac":"02:00:00:00:00:01"`) || !strings.Contains(got, `"phone":"+97433123456"`) {
		t.Errorf("JSON export = %s", got)
	}
	err := s.Export(&buf, "xml")
	if err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Errorf("Export(xml) = %v, want an error naming the format", err)
	}
}
