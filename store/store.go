// Package store keeps parkportal's durable state in one bbolt file:
// sessions and pending PINs here, and buckets that other packages own
// (limits_*, radius_*) through DB.
//
// The store is the truth across restarts; the kernel's allowlist and
// shaping are rebuilt from it. Every write that a visitor is told about
// ("you are connected") is fsynced before the answer leaves.
package store

import (
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/parkwifi/parkportal/internal/boltx"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout this code reads and writes. Open migrates
// older files forward and refuses newer ones.
//
// History:
//
//	1: sessions and pending PINs.
//	2: indexes of active sessions by MAC and by IP, so a request is matched
//	   to its session without scanning every stored session.
const SchemaVersion = 2

var (
	bucketMeta     = []byte("meta")
	bucketSessions = []byte("sessions")
	bucketPending  = []byte("pending")
	bucketByMAC    = []byte("active_by_mac")
	bucketByIP     = []byte("active_by_ip")
	keySchema      = []byte("schema")
)

// ErrNotFound is returned when a session or pending PIN does not exist.
var ErrNotFound = errors.New("not found")

// Store wraps the bbolt database. Every session start and end it stores
// also goes into the event outbox (see TakeEvents).
type Store struct {
	db *bolt.DB
}

// Open opens (creating if needed) the database at path. If another
// parkportal holds the file, it fails after a short wait instead of
// hanging, naming the file.
//
// The file's pages are checked before anything is written to it, and a
// damaged file is refused with an error that names it and says what to
// do. bbolt trusts the pages it reads and panics on one it does not
// expect; under procd a panic is a crash loop that nobody reads, where a
// refusal with the path is one log line an operator can act on. The
// check also keeps a write (which takes pages off a possibly damaged
// freelist) from spreading the damage, and catches damage that the
// start-up's own reads would not touch but the first purge or sweep
// would, later, as a panic.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	db, err := openBolt(path, bolt.Options{Timeout: 3 * time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("opening %s: another parkportal is using it (stop it first)", path)
	}
	if errors.Is(err, ErrCorrupt) {
		return nil, damaged(path, err)
	}
	if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) {
		// Both meta pages are unreadable: damage bbolt reports itself.
		return nil, damaged(path, fmt.Errorf("%w: %w", ErrCorrupt, err))
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w (if the file is corrupt, run `parkportal db check --config ...`, then move it aside to start with an empty store)", path, err)
	}
	if err := checkPages(db); err != nil {
		db.Close()
		return nil, damaged(path, err)
	}
	s := &Store{db: db}
	if err := guard(s.init); err != nil {
		db.Close()
		if errors.Is(err, ErrCorrupt) {
			return nil, damaged(path, err)
		}
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	return s, nil
}

// init creates the buckets and migrates the schema, writing nothing when
// the file is already current (boltx.UpdateIfChanged).
func (s *Store) init() error {
	return boltx.UpdateIfChanged(s.db, func(tx *bolt.Tx) (bool, error) {
		// The event outbox needs no migration: an older file simply has
		// no events yet, and an older parkportal ignores the bucket.
		created, err := boltx.CreateBuckets(tx, bucketMeta, bucketSessions, bucketPending, bucketEvents)
		if err != nil {
			return false, err
		}
		meta := tx.Bucket(bucketMeta)
		v := uint64(0)
		if b := meta.Get(keySchema); len(b) == 8 {
			v = binary.BigEndian.Uint64(b)
		}
		if v > SchemaVersion {
			return false, fmt.Errorf("database schema %d is newer than this parkportal understands (%d); upgrade parkportal", v, SchemaVersion)
		}
		if v == SchemaVersion {
			return created, nil
		}
		// Each migration runs in this same transaction: a crash midway
		// leaves the file at the old version, to be migrated again.
		for ; v < SchemaVersion; v++ {
			if m := migrations[v]; m != nil {
				if err := m(tx); err != nil {
					return false, fmt.Errorf("migrating schema %d to %d: %w", v, v+1, err)
				}
			}
		}
		return true, meta.Put(keySchema, binary.BigEndian.AppendUint64(nil, SchemaVersion))
	})
}

// migrations[v] moves a file from schema v to v+1. Version 0 is a file
// created empty just now: nothing to move.
var migrations = map[uint64]func(*bolt.Tx) error{
	1: migrateIndexes,
}

// migrateIndexes (1 → 2) builds the active-session indexes.
func migrateIndexes(tx *bolt.Tx) error {
	for _, b := range [][]byte{bucketByMAC, bucketByIP} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
		sess, err := decodeSession(v)
		if err != nil {
			return fmt.Errorf("session %q: %w", k, err)
		}
		return index(tx, nil, sess)
	})
}

// index keeps the active-session indexes right when a session changes
// from old (nil when new) to cur.
func index(tx *bolt.Tx, old, cur *Session) error {
	byMAC, byIP := tx.Bucket(bucketByMAC), tx.Bucket(bucketByIP)
	if old != nil && old.State == Active {
		if string(byMAC.Get([]byte(old.MAC.String()))) == old.ID {
			if err := byMAC.Delete([]byte(old.MAC.String())); err != nil {
				return err
			}
		}
		if string(byIP.Get([]byte(old.IP.String()))) == old.ID {
			if err := byIP.Delete([]byte(old.IP.String())); err != nil {
				return err
			}
		}
	}
	if cur != nil && cur.State == Active {
		if err := byMAC.Put([]byte(cur.MAC.String()), []byte(cur.ID)); err != nil {
			return err
		}
		if err := byIP.Put([]byte(cur.IP.String()), []byte(cur.ID)); err != nil {
			return err
		}
	}
	return nil
}

// putSession writes cur, keeps the indexes right and records a start or
// end in the event outbox, all in tx.
func putSession(tx *bolt.Tx, old, cur *Session) error {
	b, err := encodeSession(cur)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketSessions).Put([]byte(cur.ID), b); err != nil {
		return err
	}
	if err := recordEvent(tx, old, cur); err != nil {
		return err
	}
	return index(tx, old, cur)
}

// DB exposes the bbolt handle to packages that keep their own buckets.
func (s *Store) DB() *bolt.DB { return s.db }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// State is where a session is in its life.
type State string

const (
	Active State = "active"
	Ended  State = "ended"
)

// EndReason says why a session ended; it becomes Acct-Terminate-Cause.
type EndReason string

const (
	ReasonExpired  EndReason = "session-timeout"
	ReasonIdle     EndReason = "idle-timeout"
	ReasonLogout   EndReason = "user-request"
	ReasonKicked   EndReason = "admin-reset"
	ReasonReplaced EndReason = "replaced"
	// ReasonUnrestorable: the kernel cannot take the session back, most
	// often because lan_cidr changed and its address is outside the new
	// LAN prefix. Such sessions are ended (at start, or by a resync)
	// rather than keeping the daemon from starting or failing every
	// resync until they expire.
	ReasonUnrestorable EndReason = "unrestorable"
)

// Session is one device's login.
type Session struct {
	ID    string           `json:"id"` // also the RADIUS Acct-Session-Id
	MAC   net.HardwareAddr `json:"-"`
	IP    netip.Addr       `json:"ip"`
	Phone string           `json:"phone"` // E.164
	Site  string           `json:"site"`
	Lang  string           `json:"lang"`

	Start       time.Time     `json:"start"`
	Expires     time.Time     `json:"expires"`
	IdleTimeout time.Duration `json:"idle_timeout"`
	LastActive  time.Time     `json:"last_active"`

	RateDown uint64 `json:"rate_down"` // bit/s
	RateUp   uint64 `json:"rate_up"`

	BytesDown, BytesUp     uint64 `json:",omitempty"`
	PacketsDown, PacketsUp uint64 `json:",omitempty"`

	// Class is echoed to the RADIUS accounting server (from its
	// Access-Accept); InterimInterval is how often accounting updates
	// are sent for this session (0: the site default).
	Class []byte `json:"class,omitempty"`

	// Hostname and Vendor are what the device told the DHCP server
	// (options 12 and 60), for the staff's session list.
	Hostname        string        `json:"hostname,omitempty"`
	Vendor          string        `json:"vendor,omitempty"`
	InterimInterval time.Duration `json:"interim_interval,omitempty"`

	State     State     `json:"state"`
	EndReason EndReason `json:"end_reason,omitempty"`
	Ended     time.Time `json:"ended,omitzero"`
}

// sessionJSON carries the MAC as text; net.HardwareAddr would otherwise
// marshal as base64.
type sessionJSON struct {
	Session
	MAC string `json:"mac"`
}

func encodeSession(s *Session) ([]byte, error) {
	return json.Marshal(sessionJSON{Session: *s, MAC: s.MAC.String()})
}

func decodeSession(b []byte) (*Session, error) {
	var j sessionJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, err
	}
	return fromJSON(j)
}

func fromJSON(j sessionJSON) (*Session, error) {
	mac, err := net.ParseMAC(j.MAC)
	if err != nil {
		return nil, fmt.Errorf("session %s: bad MAC %q", j.ID, j.MAC)
	}
	s := j.Session
	s.MAC = mac
	return &s, nil
}

// Pending is a PIN that was sent and not yet used. Only its HMAC is kept.
type Pending struct {
	MAC     string    `json:"mac"` // key: one pending PIN per device
	Phone   string    `json:"phone"`
	Lang    string    `json:"lang"`
	Hash    []byte    `json:"hash"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Tries   int       `json:"tries"`
}

// PutPending records (or replaces) the device's pending PIN.
func (s *Store) PutPending(p *Pending) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPending).Put([]byte(p.MAC), b)
	})
}

// Pending returns the device's pending PIN, or ErrNotFound.
func (s *Store) Pending(mac string) (*Pending, error) {
	var p *Pending
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPending).Get([]byte(mac))
		if b == nil {
			return ErrNotFound
		}
		p = new(Pending)
		return json.Unmarshal(b, p)
	})
	return p, err
}

// DeletePending removes the device's pending PIN, if any.
func (s *Store) DeletePending(mac string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPending).Delete([]byte(mac))
	})
}

// PrunePending deletes pending PINs that expired before now and returns
// how many went.
func (s *Store) PrunePending(now time.Time) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketPending).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var p Pending
			if json.Unmarshal(v, &p) != nil || now.After(p.Expires) {
				if err := c.Delete(); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	})
	return n, err
}

// Activate stores sess as the device's active session in one transaction:
// the device's pending PIN is consumed and any other active session for
// the same MAC or IP is ended as replaced (returned, so the caller can
// tear its kernel state down). Consuming the PIN in the same transaction
// makes it single-use even under concurrent submissions.
func (s *Store) Activate(sess *Session, consumePendingOf string) (replaced []*Session, err error) {
	return s.ActivateWithFinal(sess, consumePendingOf, nil)
}

// ActivateWithFinal is Activate that lets final (when not nil) complete
// each session it ends as replaced before that is written: the caller
// fills in the final traffic counters, which the session's end event
// then carries.
func (s *Store) ActivateWithFinal(sess *Session, consumePendingOf string, final func(*Session)) (replaced []*Session, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		pb := tx.Bucket(bucketPending)
		if consumePendingOf != "" {
			if pb.Get([]byte(consumePendingOf)) == nil {
				return ErrNotFound
			}
			if err := pb.Delete([]byte(consumePendingOf)); err != nil {
				return err
			}
		}
		sb := tx.Bucket(bucketSessions)
		seen := map[string]bool{}
		for _, id := range [][]byte{
			tx.Bucket(bucketByMAC).Get([]byte(sess.MAC.String())),
			tx.Bucket(bucketByIP).Get([]byte(sess.IP.String())),
		} {
			if id == nil || seen[string(id)] {
				continue
			}
			seen[string(id)] = true
			v := sb.Get(id)
			if v == nil {
				continue
			}
			old, err := decodeSession(v)
			if err != nil || old.State != Active {
				continue
			}
			prev := *old
			old.State, old.EndReason, old.Ended = Ended, ReasonReplaced, sess.Start
			if final != nil {
				final(old)
			}
			if err := putSession(tx, &prev, old); err != nil {
				return err
			}
			replaced = append(replaced, old)
		}
		return putSession(tx, nil, sess)
	})
	return replaced, err
}

// ActiveByMAC returns the device's active session, or ErrNotFound.
func (s *Store) ActiveByMAC(mac net.HardwareAddr) (*Session, error) {
	return s.activeBy(bucketByMAC, mac.String())
}

// ActiveByIP returns the active session holding ip, or ErrNotFound.
func (s *Store) ActiveByIP(ip netip.Addr) (*Session, error) {
	return s.activeBy(bucketByIP, ip.String())
}

func (s *Store) activeBy(bucket []byte, key string) (*Session, error) {
	var out *Session
	err := s.db.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucket).Get([]byte(key))
		if id == nil {
			return ErrNotFound
		}
		v := tx.Bucket(bucketSessions).Get(id)
		if v == nil {
			return ErrNotFound
		}
		sess, err := decodeSession(v)
		if err != nil {
			return err
		}
		if sess.State != Active {
			return ErrNotFound
		}
		out = sess
		return nil
	})
	return out, err
}

// Update applies fn to the stored session id and writes it back.
func (s *Store) Update(id string, fn func(*Session) error) (*Session, error) {
	var out *Session
	err := s.db.Update(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSessions).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		sess, err := decodeSession(v)
		if err != nil {
			return err
		}
		prev := *sess
		if err := fn(sess); err != nil {
			return err
		}
		sess.ID = prev.ID // the key never changes
		out = sess
		return putSession(tx, &prev, sess)
	})
	return out, err
}

// Session returns the stored session id.
func (s *Store) Session(id string) (*Session, error) {
	var out *Session
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSessions).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		var err error
		out, err = decodeSession(v)
		return err
	})
	return out, err
}

// Sessions returns every stored session for which keep returns true
// (all of them when keep is nil).
func (s *Store) Sessions(keep func(*Session) bool) ([]*Session, error) {
	var out []*Session
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
			sess, err := decodeSession(v)
			if err != nil {
				return fmt.Errorf("decoding session %q: %w", k, err)
			}
			if keep == nil || keep(sess) {
				out = append(out, sess)
			}
			return nil
		})
	})
	return out, err
}

// ActiveSessions returns the sessions the kernel should let out. It walks
// the active-by-MAC index, not the whole session log: the sweep calls it
// every few seconds, and the log holds up to max_sessions ended sessions.
func (s *Store) ActiveSessions() ([]*Session, error) {
	var out []*Session
	err := s.db.View(func(tx *bolt.Tx) error {
		sb := tx.Bucket(bucketSessions)
		return tx.Bucket(bucketByMAC).ForEach(func(mac, id []byte) error {
			v := sb.Get(id)
			if v == nil {
				return nil
			}
			sess, err := decodeSession(v)
			if err != nil {
				return fmt.Errorf("decoding session %q: %w", id, err)
			}
			if sess.State == Active {
				out = append(out, sess)
			}
			return nil
		})
	})
	return out, err
}

// Outcome is the result of checking a PIN against a pending record.
type Outcome int

const (
	// PINAccepted: the PIN matched; the pending record is consumed.
	PINAccepted Outcome = iota
	// PINWrong: no match; tries remain.
	PINWrong
	// PINExhausted: no match and that was the last try; the record is void.
	PINExhausted
	// PINExpired: the record outlived its TTL; it is void.
	PINExpired
	// PINNone: no pending PIN for this device (never sent, used, or void).
	PINNone
)

// VerifyPending checks a PIN for device mac in one transaction: match
// consumes the record, a miss counts a try, the last allowed miss or an
// expired record voids it. Doing all of it in one write transaction makes
// the PIN single-use and the try limit exact even when a visitor submits
// many guesses at once.
func (s *Store) VerifyPending(mac string, now time.Time, maxTries int, matches func(*Pending) bool) (Outcome, *Pending, error) {
	out, p := PINNone, (*Pending)(nil)
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPending)
		v := b.Get([]byte(mac))
		if v == nil {
			return nil
		}
		p = new(Pending)
		if err := json.Unmarshal(v, p); err != nil {
			out = PINNone
			return b.Delete([]byte(mac))
		}
		switch {
		case !now.Before(p.Expires):
			out = PINExpired
			return b.Delete([]byte(mac))
		case matches(p):
			out = PINAccepted
			return b.Delete([]byte(mac))
		}
		p.Tries++
		if p.Tries >= maxTries {
			out = PINExhausted
			return b.Delete([]byte(mac))
		}
		out = PINWrong
		nb, err := json.Marshal(p)
		if err != nil {
			return err
		}
		return b.Put([]byte(mac), nb)
	})
	return out, p, err
}

// Export writes every stored session as CSV or JSON lines, for the
// ministry's records.
func (s *Store) Export(w io.Writer, format string) error {
	list, err := s.Sessions(nil)
	if err != nil {
		return err
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Start.Before(list[j].Start) })
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		for _, sess := range list {
			if err := enc.Encode(sessionJSON{Session: *sess, MAC: sess.MAC.String()}); err != nil {
				return err
			}
		}
		return nil
	case "csv":
		cw := csv.NewWriter(w)
		cw.Write([]string{"id", "site", "phone", "mac", "ip", "start", "end", "end_reason", "state", "bytes_down", "bytes_up"})
		for _, x := range list {
			end := ""
			if !x.Ended.IsZero() {
				end = x.Ended.UTC().Format(time.RFC3339)
			}
			cw.Write([]string{x.ID, x.Site, x.Phone, x.MAC.String(), x.IP.String(), x.Start.UTC().Format(time.RFC3339), end,
				string(x.EndReason), string(x.State), strconv.FormatUint(x.BytesDown, 10), strconv.FormatUint(x.BytesUp, 10)})
		}
		cw.Flush()
		return cw.Error()
	}
	return fmt.Errorf("unknown export format %q (csv or json)", format)
}
