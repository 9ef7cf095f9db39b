package store

import (
	"encoding/binary"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// writeV1 builds a schema-1 file the way parkportal 1 wrote it: sessions
// and pending PINs, no active-session indexes.
func writeV1(t *testing.T, path string, sessions ...*Session) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucket(bucketMeta)
		sb, _ := tx.CreateBucket(bucketSessions)
		tx.CreateBucket(bucketPending)
		if err := meta.Put(keySchema, binary.BigEndian.AppendUint64(nil, 1)); err != nil {
			return err
		}
		for _, s := range sessions {
			b, err := encodeSession(s)
			if err != nil {
				return err
			}
			if err := sb.Put([]byte(s.ID), b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMigrateV1 opens a schema-1 file: the indexes are built from the
// stored sessions (active ones only), the schema is bumped, and the
// sessions are all still there.
func TestMigrateV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	now := time.Date(2026, 11, 26, 18, 0, 0, 0, time.UTC)
	mac := func(b byte) net.HardwareAddr { return net.HardwareAddr{2, 0, 0x5e, 0, 0x53, b} }
	active := &Session{ID: "a1", MAC: mac(1), IP: netip.MustParseAddr("198.51.100.11"), Phone: "+97433123456",
		Start: now, Expires: now.Add(4 * time.Hour), State: Active}
	ended := &Session{ID: "e1", MAC: mac(2), IP: netip.MustParseAddr("198.51.100.12"), Phone: "+97455123456",
		Start: now.Add(-time.Hour), Expires: now.Add(3 * time.Hour), State: Ended, EndReason: ReasonLogout, Ended: now}
	writeV1(t, path, active, ended)

	st, err := Open(path)
	if err != nil {
		t.Fatalf("opening a schema-1 file: %v", err)
	}
	defer st.Close()
	if got, err := st.ActiveByMAC(mac(1)); err != nil || got.ID != "a1" {
		t.Errorf("ActiveByMAC after migration = %v, %v; want a1", got, err)
	}
	if got, err := st.ActiveByIP(active.IP); err != nil || got.ID != "a1" {
		t.Errorf("ActiveByIP after migration = %v, %v; want a1", got, err)
	}
	if _, err := st.ActiveByMAC(mac(2)); err != ErrNotFound {
		t.Errorf("an ended session was indexed as active: %v", err)
	}
	all, err := st.Sessions(nil)
	if err != nil || len(all) != 2 {
		t.Fatalf("sessions after migration: %d, %v; want 2", len(all), err)
	}
	var v uint64
	st.DB().View(func(tx *bolt.Tx) error {
		v = binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keySchema))
		return nil
	})
	if v != SchemaVersion {
		t.Errorf("schema after migration = %d, want %d", v, SchemaVersion)
	}
	// A new login of the migrated device replaces its old session through
	// the new index.
	again := &Session{ID: "a2", MAC: mac(1), IP: active.IP, Start: now.Add(time.Minute), Expires: now.Add(5 * time.Hour), State: Active}
	replaced, err := st.Activate(again, "")
	if err != nil || len(replaced) != 1 || replaced[0].ID != "a1" {
		t.Errorf("Activate after migration replaced %v, %v; want a1", replaced, err)
	}
}

func TestPurgeExcessKeepsActiveAndNewest(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 26, 18, 0, 0, 0, time.UTC)
	for i := 0; i < 10; i++ {
		s := &Session{ID: string(rune('a' + i)), MAC: net.HardwareAddr{2, 0, 0x5e, 0, 0x53, byte(i)},
			IP: netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i)}), Start: now, Expires: now.Add(time.Hour), State: Ended,
			Ended: now.Add(time.Duration(i) * time.Minute)}
		if i >= 8 {
			s.State, s.Ended = Active, time.Time{}
		}
		if _, err := st.Activate(s, ""); err != nil {
			t.Fatal(err)
		}
	}
	n, err := st.PurgeExcess(5)
	if err != nil || n != 5 {
		t.Fatalf("PurgeExcess(5) = %d, %v; want 5", n, err)
	}
	left, _ := st.Sessions(nil)
	ids := map[string]bool{}
	for _, s := range left {
		ids[s.ID] = true
	}
	for _, want := range []string{"f", "g", "h", "i", "j"} { // newest ended three, both active
		if !ids[want] {
			t.Errorf("session %s was purged; left %v", want, ids)
		}
	}
}
