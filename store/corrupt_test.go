package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// pages are the page ids of a store file that matter to the tests below,
// and its page size.
type pages struct {
	freelist, root, sessions uint64
	size                     int
}

// soundFile writes a sound store of n ended sessions at a new path and
// returns the path and its pages.
func soundFile(t *testing.T, n int) (string, pages) {
	t.Helper()
	s, path := openTemp(t)
	for i := range n {
		x := newSession(fmt.Sprintf("s%05d", i), mac(byte(i)), fmt.Sprintf("198.51.100.%d", 10+i%200))
		x.State, x.Ended = Ended, t0.Add(time.Duration(i)*time.Second)
		if _, err := s.Activate(x, ""); err != nil {
			t.Fatal(err)
		}
	}
	var p pages
	p.size = s.DB().Info().PageSize
	s.DB().View(func(tx *bolt.Tx) error {
		p.sessions = uint64(tx.Bucket(bucketSessions).Root())
		return nil
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The current meta page (the one with the higher transaction id)
	// names the root bucket's page and the freelist's. Layout: a 16-byte
	// page header, then magic, version, page size, flags (4 bytes each),
	// root pgid, sequence, freelist pgid, high-water pgid, txid.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	meta := func(i int) []byte { return b[i*p.size+16:] }
	txid := func(m []byte) uint64 { return binary.LittleEndian.Uint64(m[48:]) }
	m := meta(0)
	if txid(meta(1)) > txid(m) {
		m = meta(1)
	}
	p.root = binary.LittleEndian.Uint64(m[16:])
	p.freelist = binary.LittleEndian.Uint64(m[32:])
	if p.root < 2 || p.freelist < 2 || p.sessions < 2 || p.root == p.sessions {
		t.Fatalf("unexpected page layout %+v", p)
	}
	return path, p
}

// scribble overwrites page id of the file with junk, as a flash fault or
// a half-written copy would.
func scribble(t *testing.T, path string, size int, id uint64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	junk := make([]byte, size)
	for i := range junk {
		junk[i] = byte(i*7 + 3)
	}
	if _, err := f.WriteAt(junk, int64(id)*int64(size)); err != nil {
		t.Fatal(err)
	}
}

// wantRefusal checks the error a damaged file must give: ErrCorrupt,
// the path, and what to do.
func wantRefusal(t *testing.T, what string, err error, path string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s of a damaged file succeeded", what)
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "Move it aside (mv "+path) {
		t.Errorf("%s = %q; want ErrCorrupt naming %s and saying to move it aside", what, err, path)
	}
}

// openNoPanic calls Open and fails the test (rather than the binary) if
// it panics.
func openNoPanic(t *testing.T, path string) (s *Store, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Open panicked on a damaged file: %v", r)
		}
	}()
	return Open(path)
}

func checkNoPanic(t *testing.T, path string) (sum Summary, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("CheckFile panicked on a damaged file: %v", r)
		}
	}()
	return CheckFile(path)
}

// TestOpenRefusesDamagedFile damages, in turn, the page bbolt reads while
// opening (the freelist), the page the start-up's write transaction reads
// (the root bucket), a page only a later read would reach (the sessions
// bucket) and the meta pages bbolt checks itself: each must be refused at
// Open with the path and what to do, never a panic, and the refusal must
// release the file.
func TestOpenRefusesDamagedFile(t *testing.T) {
	for _, c := range []struct {
		name  string
		pages func(pages) []uint64
	}{
		{"freelist", func(p pages) []uint64 { return []uint64{p.freelist} }},
		{"root bucket", func(p pages) []uint64 { return []uint64{p.root} }},
		{"sessions bucket", func(p pages) []uint64 { return []uint64{p.sessions} }},
		{"both meta pages", func(p pages) []uint64 { return []uint64{0, 1} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			path, p := soundFile(t, 300)
			for _, id := range c.pages(p) {
				scribble(t, path, p.size, id)
			}
			before, _ := os.ReadFile(path)
			s, err := openNoPanic(t, path)
			if err == nil {
				s.Close()
			}
			wantRefusal(t, "Open", err, path)
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Error("Open wrote to the damaged file")
			}
			// The file is not left locked: a second try is refused for
			// the same reason, at once, not "in use" after the lock wait.
			start := time.Now()
			_, err = openNoPanic(t, path)
			wantRefusal(t, "second Open", err, path)
			if strings.Contains(err.Error(), "another parkportal") {
				t.Errorf("the refused file stayed locked: %v (after %s)", err, time.Since(start))
			}
			sum, err := checkNoPanic(t, path)
			wantRefusal(t, "CheckFile", err, path)
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Errorf("CheckFile wrote to the damaged file (summary %+v)", sum)
			}
		})
	}
}

func TestCheckFileSound(t *testing.T) {
	path, _ := soundFile(t, 300)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Activate(newSession("live", mac(250), "198.51.100.250"), ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Errorf("Check of a sound file: %v", err)
	}
	s.Close()
	before, _ := os.ReadFile(path)
	sum, err := CheckFile(path)
	if err != nil {
		t.Fatalf("CheckFile of a sound file: %v", err)
	}
	if want := (Summary{Schema: SchemaVersion, Sessions: 301, Active: 1}); sum != want {
		t.Errorf("CheckFile = %+v, want %+v", sum, want)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("CheckFile changed a sound file")
	}
}

func TestCheckFileMissing(t *testing.T) {
	path := t.TempDir() + "/none.db"
	if _, err := CheckFile(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("CheckFile(missing) = %v, want an error naming it", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("CheckFile created %s", path)
	}
}

// TestCheckFileBadRecord: a record bbolt stores soundly but that does not
// decode is damage the daemon would trip over (every sweep lists the
// active sessions), so the check reports it, by key.
func TestCheckFileBadRecord(t *testing.T) {
	s, path := openTemp(t)
	s.Activate(newSession("ok", mac(1), "198.51.100.10"), "")
	s.DB().Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).Put([]byte("bad"), []byte(`{"id":"bad","mac":"zz"}`))
	})
	s.Close()
	_, err := CheckFile(path)
	wantRefusal(t, "CheckFile", err, path)
	if err != nil && !strings.Contains(err.Error(), `"bad"`) {
		t.Errorf("CheckFile = %v, want the bad record named", err)
	}
}

// bloat grows the file at path past the compaction floor with pages that
// are free again, as months of sessions purged by retention leave it.
func bloat(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("filler"))
		if err != nil {
			return err
		}
		for i := range 1200 {
			if err := b.Put(fmt.Appendf(nil, "%05d", i), make([]byte, 4000)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("filler")) }); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Size() < 4<<20 {
		t.Fatalf("file is %d bytes, under the compaction floor", fi.Size())
	}
}

// TestCompactIfBloated: a file mostly of free pages is rewritten smaller
// with every session kept. (A read-only bbolt reports no free pages
// unless told to read its freelist, which once kept this from ever
// compacting anything.)
func TestCompactIfBloated(t *testing.T) {
	path, _ := soundFile(t, 300)
	bloat(t, path)
	before, _ := os.Stat(path)
	ok, err := CompactIfBloated(path)
	if err != nil || !ok {
		t.Fatalf("CompactIfBloated = %v, %v; want a compaction", ok, err)
	}
	after, _ := os.Stat(path)
	if after.Size()*4 > before.Size() {
		t.Errorf("compacted file is %d bytes, was %d", after.Size(), before.Size())
	}
	sum, err := CheckFile(path)
	if err != nil || sum.Sessions != 300 || sum.Schema != SchemaVersion {
		t.Errorf("after compaction CheckFile = %+v, %v; want 300 sessions", sum, err)
	}
	// A second run finds nothing to do.
	if ok, err := CompactIfBloated(path); ok || err != nil {
		t.Errorf("second CompactIfBloated = %v, %v; want nothing done", ok, err)
	}
}

// TestCompactDamagedFile: compaction runs before Open at start. On a
// damaged file it must give an error and leave the file as it was (and
// unlocked), so that Open then refuses it clearly, rather than panic.
func TestCompactDamagedFile(t *testing.T) {
	path, p := soundFile(t, 300)
	bloat(t, path)
	scribble(t, path, p.size, p.sessions)
	before, _ := os.ReadFile(path)
	var (
		ok  bool
		err error
	)
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("CompactIfBloated panicked on a damaged file: %v", r)
			}
		}()
		ok, err = CompactIfBloated(path)
	}()
	if ok || err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Errorf("CompactIfBloated = %v, %v; want ErrCorrupt naming the file", ok, err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("compaction changed the damaged file")
	}
	if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("half-written copy left behind: %v", err)
	}
	_, err = openNoPanic(t, path)
	wantRefusal(t, "Open after compaction failed", err, path)
}
