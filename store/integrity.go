package store

// Keeping a damaged file from crashing the daemon: page checks, panics
// from bbolt turned into errors, the read-only check behind `parkportal
// db check`, and compaction.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrCorrupt marks a store file whose pages are not what bbolt wrote:
// its consistency check failed, or bbolt panicked reading it.
var ErrCorrupt = errors.New("the file is damaged")

// damaged is the refusal for a corrupt file: what is wrong, where, and
// what the operator does about it.
func damaged(path string, err error) error {
	return fmt.Errorf("opening %s: %w\nparkportal cannot use this file. Move it aside (mv %s %s.damaged) and start parkportal again: "+
		"it begins with an empty store, so visitors log in again and staff accounts and site settings are set up again. "+
		"`parkportal db check --config FILE` shows the damage", path, err, path, path)
}

// guard runs fn and turns a panic into an ErrCorrupt error. It is for
// bbolt calls on a file not yet known to be sound: bbolt asserts rather
// than returns errors when a page is not what it expects.
func guard(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	return fn()
}

// openBolt is bolt.Open with a panic while reading the file (its
// freelist page, say) turned into an ErrCorrupt error. bbolt leaves the
// file open, mapped and locked when it panics, so the file is taken
// through OpenFile and unlocked and closed here, and a later open in this
// process (a test, a check after a refusal) is not told the file is in
// use. The lock is released explicitly: the memory map, which cannot be
// reached from here and is left behind, keeps the open file alive after
// Close, and the lock with it.
func openBolt(path string, o bolt.Options) (db *bolt.DB, err error) {
	var f *os.File
	o.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		var err error
		f, err = os.OpenFile(name, flag, perm)
		return f, err
	}
	defer func() {
		if r := recover(); r != nil {
			if f != nil {
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}
			db, err = nil, fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	return bolt.Open(path, 0o600, &o)
}

// maxProblems bounds the problems one check reports: a badly damaged
// file has one per page, and the first few say what there is to say.
const maxProblems = 10

// checkPages runs bbolt's consistency check over every page of db, read
// only. Its problems come back as one ErrCorrupt error.
func checkPages(db *bolt.DB) error {
	return guard(func() error {
		return db.View(func(tx *bolt.Tx) error {
			var errs []error
			n := 0
			// Drain the channel whatever happens: the check's goroutine
			// blocks on each send until it is read.
			for err := range tx.Check() {
				if n < maxProblems {
					errs = append(errs, err)
				}
				n++
			}
			if n == 0 {
				return nil
			}
			if n > maxProblems {
				errs = append(errs, fmt.Errorf("and %d more problems", n-maxProblems))
			}
			return fmt.Errorf("%w: %w", ErrCorrupt, errors.Join(errs...))
		})
	})
}

// Check walks every page of the file and reports inconsistencies as an
// ErrCorrupt error.
func (s *Store) Check() error { return checkPages(s.db) }

// Summary is what a check of a sound file found.
type Summary struct {
	Schema           uint64 // the file's schema version, which may be older than SchemaVersion
	Sessions, Active int
}

// CheckFile checks the file at path without changing it, for `parkportal
// db check`: it opens the file read-only (nothing is migrated, no page
// is written, so checking cannot make a damaged file worse), runs bbolt's
// page check before anything else reads it, and then reads every session
// record, as the daemon would. A damaged file gives an ErrCorrupt error
// naming it and saying what to do; so do records that do not decode.
func CheckFile(path string) (Summary, error) {
	if _, err := os.Stat(path); err != nil {
		return Summary{}, fmt.Errorf("checking %s: %w", path, err)
	}
	db, err := openBolt(path, bolt.Options{Timeout: 3 * time.Second, ReadOnly: true})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return Summary{}, fmt.Errorf("checking %s: another parkportal is using it (stop it first)", path)
	case errors.Is(err, ErrCorrupt):
		return Summary{}, damaged(path, err)
	case err != nil:
		// bbolt's own refusals (invalid or mismatched meta pages, a bad
		// checksum) are damage too.
		return Summary{}, damaged(path, fmt.Errorf("%w: %w", ErrCorrupt, err))
	}
	defer db.Close()
	if err := checkPages(db); err != nil {
		return Summary{}, damaged(path, err)
	}
	var sum Summary
	err = guard(func() error {
		return db.View(func(tx *bolt.Tx) error {
			if meta := tx.Bucket(bucketMeta); meta != nil {
				if b := meta.Get(keySchema); len(b) == 8 {
					sum.Schema = binary.BigEndian.Uint64(b)
				}
			}
			b := tx.Bucket(bucketSessions)
			if b == nil {
				return nil
			}
			var bad []error
			c := b.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				sum.Sessions++
				sess, err := decodeSession(v)
				if err != nil {
					if len(bad) < maxProblems {
						bad = append(bad, fmt.Errorf("session %q: %w", k, err))
					}
					continue
				}
				if sess.State == Active {
					sum.Active++
				}
			}
			if len(bad) > 0 {
				return fmt.Errorf("%w: session records that do not decode: %w", ErrCorrupt, errors.Join(bad...))
			}
			return nil
		})
	})
	if err != nil {
		return Summary{}, damaged(path, err)
	}
	if sum.Schema > SchemaVersion {
		return sum, fmt.Errorf("checking %s: database schema %d is newer than this parkportal understands (%d); upgrade parkportal", path, sum.Schema, SchemaVersion)
	}
	return sum, nil
}

// CompactIfBloated rewrites the file at path when more than half of it is
// free pages (bbolt never shrinks a file by itself). It must run before
// Open, while nobody holds the file. Small files are left alone: a
// rewrite costs flash wear and saves little.
//
// A damaged file makes bbolt panic while it copies; that becomes an
// error, the half-written copy is removed and the file is left as it
// was, so Open can refuse it with a message an operator can act on.
func CompactIfBloated(path string) (compacted bool, err error) {
	fi, err := os.Stat(path)
	if err != nil || fi.Size() < 4<<20 {
		return false, nil
	}
	// A read-only bbolt leaves the freelist unread unless asked, and its
	// free page count then reads 0: the file would never look bloated.
	src, err := openBolt(path, bolt.Options{Timeout: 3 * time.Second, ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		return false, fmt.Errorf("opening %s for compaction: %w", path, err)
	}
	defer func() {
		if src != nil {
			src.Close()
		}
	}()
	st := src.Stats()
	free := st.FreePageN + st.PendingPageN
	pageSize := src.Info().PageSize
	if int64(free*pageSize) < fi.Size()/2 {
		return false, nil
	}
	tmp := path + ".compact"
	os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, nil)
	if err != nil {
		return false, fmt.Errorf("creating %s: %w", tmp, err)
	}
	err = guard(func() error { return bolt.Compact(dst, src, 1<<20) })
	if cerr := src.Close(); err == nil {
		err = cerr
	}
	src = nil
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return false, fmt.Errorf("compacting %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, fmt.Errorf("replacing %s with its compacted copy: %w", path, err)
	}
	return true, nil
}
