package store

// Bounding what is kept: sessions past the retention period (phone
// numbers are personal data) and, beyond that, the oldest ended sessions
// over the store's size bound.

import (
	"container/heap"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Purge deletes sessions that ended before cutoff and returns how many
// went. Phone numbers are personal data: they are kept only for the
// configured retention period.
func (s *Store) Purge(cutoff time.Time) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSessions).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			sess, err := decodeSession(v)
			if err != nil || sess.State == Active || !sess.Ended.Before(cutoff) {
				continue
			}
			if err := c.Delete(); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// PurgeExcess deletes the oldest ended sessions beyond bound stored
// sessions and returns how many went. With the retention period it bounds
// the file on a router's small flash whatever the park's traffic.
//
// It runs hourly in a daemon whose heap is held to a few tens of MiB, on
// a store that may hold tens of thousands of sessions: it counts keys
// without decoding anything, returns at once when under the bound, and
// otherwise keeps only the end time and id of the oldest ended sessions
// it will delete, reading each record only for its state and end time.
func (s *Store) PurgeExcess(bound int) (int, error) {
	bound = max(bound, 0)
	var total int
	if err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSessions).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			total++
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("counting stored sessions: %w", err)
	}
	if total <= bound {
		return 0, nil
	}
	victims, err := s.oldestEnded(total - bound)
	if err != nil {
		return 0, err
	}
	// Delete in batches: a transaction's dirty pages stay in memory until
	// it commits, and lowering max_sessions can leave most of the file to
	// delete at once.
	n := 0
	for batch := range slices.Chunk(victims, purgeBatch) {
		deleted := 0
		err := s.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketSessions)
			for _, v := range batch {
				// Ended is final, so a victim is still ended unless a
				// purge got to it first; check anyway rather than trust
				// the earlier read.
				if e, ok := endOf(b.Get([]byte(v.id))); !ok || !e.Equal(v.ended) {
					continue
				}
				if err := b.Delete([]byte(v.id)); err != nil {
					return err
				}
				deleted++
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("deleting the oldest ended sessions: %w", err)
		}
		n += deleted
	}
	return n, nil
}

// purgeBatch is how many sessions one purge transaction deletes at most.
const purgeBatch = 1000

// victim is what PurgeExcess keeps of a session it may delete.
type victim struct {
	ended time.Time
	id    string
}

// oldestEnded returns the n ended sessions that ended first, oldest
// first. It walks the sessions once, holding at most n candidates in a
// max-heap on end time: each record read replaces the newest candidate
// when it ended earlier.
func (s *Store) oldestEnded(n int) ([]victim, error) {
	h := make(victimHeap, 0, min(n, 1024))
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSessions).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			ended, ok := endOf(v)
			switch {
			case !ok:
			case len(h) < n:
				heap.Push(&h, victim{ended, string(k)})
			case ended.Before(h[0].ended):
				h[0] = victim{ended, string(k)}
				heap.Fix(&h, 0)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("finding the oldest ended sessions: %w", err)
	}
	sort.Slice(h, func(i, j int) bool { return h[i].ended.Before(h[j].ended) })
	return h, nil
}

// endOf reads a stored session's end time, and whether it has ended,
// without decoding the rest of the record. Records that do not decode
// are left alone (as Purge leaves them), for `db check` to report.
func endOf(v []byte) (time.Time, bool) {
	var x struct {
		State State     `json:"state"`
		Ended time.Time `json:"ended"`
	}
	if v == nil || json.Unmarshal(v, &x) != nil || x.State == Active {
		return time.Time{}, false
	}
	return x.Ended, true
}

// victimHeap is a max-heap on end time: its root is the candidate that
// ended last, the first to give way to an older one.
type victimHeap []victim

func (h victimHeap) Len() int           { return len(h) }
func (h victimHeap) Less(i, j int) bool { return h[j].ended.Before(h[i].ended) }
func (h victimHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *victimHeap) Push(x any)        { *h = append(*h, x.(victim)) }
func (h *victimHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
