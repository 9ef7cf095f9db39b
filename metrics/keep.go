package metrics

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The dashboard's figures live in the store too, so a gateway that
// reboots at 15:00 still shows the day's logins and SMS and the last
// 24 hours of charts. Prometheus counters start again from zero, as
// Prometheus expects of a restarted process.
var (
	bucketSamples = []byte("metrics_samples") // big-endian Unix seconds → Sample (JSON)
	bucketToday   = []byte("metrics_today")   // "today" → savedToday (JSON)
	keyToday      = []byte("today")
)

type savedToday struct {
	Day   time.Time `json:"day"` // local midnight the counters belong to
	Today Today     `json:"today"`
}

// Keep loads what an earlier run saved in db and makes TakeSample and
// Save write to it: one small transaction per sample interval (every
// five minutes), which is kind to a router's flash. A sample that cannot
// be saved is logged to log and kept in memory. Call it once, before
// Run.
func (m *Metrics) Keep(db *bolt.DB, log *slog.Logger) error {
	var ring []Sample
	var saved savedToday
	err := db.Update(func(tx *bolt.Tx) error {
		sb, err := tx.CreateBucketIfNotExists(bucketSamples)
		if err != nil {
			return err
		}
		tb, err := tx.CreateBucketIfNotExists(bucketToday)
		if err != nil {
			return err
		}
		cut := m.now().Add(-24 * time.Hour)
		c := sb.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var s Sample
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("decoding dashboard sample %x: %w", k, err)
			}
			if s.Time.After(cut) {
				ring = append(ring, s)
			}
		}
		if v := tb.Get(keyToday); v != nil {
			if err := json.Unmarshal(v, &saved); err != nil {
				return fmt.Errorf("decoding today's dashboard counters: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("loading dashboard history: %w", err)
	}
	if len(ring) > ringSize {
		ring = ring[len(ring)-ringSize:]
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.db = db
	if log != nil {
		m.log = log
	}
	m.ring = append(ring, m.ring...)
	m.rollLocked()
	if saved.Day.Equal(m.day) {
		m.today = addToday(saved.Today, m.today)
	}
	return nil
}

func addToday(a, b Today) Today {
	return Today{
		Logins: a.Logins + b.Logins, PINOK: a.PINOK + b.PINOK, PINFailed: a.PINFailed + b.PINFailed,
		SMSSent: a.SMSSent + b.SMSSent, SMSFailed: a.SMSFailed + b.SMSFailed, SMSRefused: a.SMSRefused + b.SMSRefused,
	}
}

// Save writes today's counters, and sample s if it is not nil, and
// forgets samples older than 24 hours. Without Keep it does nothing.
// The daemon calls it when it stops, so a planned restart loses nothing.
func (m *Metrics) Save() error { return m.save(nil) }

func (m *Metrics) save(s *Sample) error {
	m.mu.Lock()
	db := m.db
	m.rollLocked()
	today := savedToday{Day: m.day, Today: m.today}
	cut := m.now().Add(-24 * time.Hour)
	m.mu.Unlock()
	if db == nil {
		return nil
	}
	err := db.Update(func(tx *bolt.Tx) error {
		sb, tb := tx.Bucket(bucketSamples), tx.Bucket(bucketToday)
		if sb == nil || tb == nil {
			return errors.New("buckets missing (Keep not called on this file)")
		}
		if s != nil {
			v, err := json.Marshal(s)
			if err != nil {
				return err
			}
			if err := sb.Put(sampleKey(s.Time), v); err != nil {
				return err
			}
		}
		// Forget what History would no longer show (at or before cut).
		c, cutKey := sb.Cursor(), sampleKey(cut)
		for k, _ := c.First(); k != nil && bytes.Compare(k, cutKey) <= 0; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		v, err := json.Marshal(today)
		if err != nil {
			return err
		}
		return tb.Put(keyToday, v)
	})
	if err != nil {
		return fmt.Errorf("saving dashboard figures: %w", err)
	}
	return nil
}

func sampleKey(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(t.Unix()))
}
