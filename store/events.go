package store

// The session event outbox: every session start and end is recorded in
// the same bbolt transaction that makes it, so an event can be lost
// neither by a crash between the change and whoever reports it (RADIUS
// accounting) nor by a change made while the daemon is down (an offline
// `parkportal sessions kick`). The daemon takes the events out in order
// (TakeEvents), in the transaction that hands them on.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bucketEvents = []byte("session_events")

// EventKind says what happened to a session.
type EventKind string

const (
	// EventStarted: the session became active.
	EventStarted EventKind = "started"
	// EventEnded: the session stopped being active (Session.EndReason
	// says why, Session.Ended when).
	EventEnded EventKind = "ended"
)

// Event is one session start or end, with the session as it was then
// (an end carries the session's final traffic counters).
type Event struct {
	Seq     uint64
	Kind    EventKind
	At      time.Time
	Session *Session
}

type eventJSON struct {
	Kind    EventKind   `json:"kind"`
	At      time.Time   `json:"at"`
	Session sessionJSON `json:"session"`
}

// recordEvent appends the event of a session's change from old (nil when
// new) to cur, if it started or ended one, in tx.
func recordEvent(tx *bolt.Tx, old, cur *Session) error {
	wasActive := old != nil && old.State == Active
	isActive := cur.State == Active
	var e eventJSON
	switch {
	case !wasActive && isActive:
		e = eventJSON{Kind: EventStarted, At: cur.Start}
	case wasActive && !isActive:
		e = eventJSON{Kind: EventEnded, At: cur.Ended}
	default:
		return nil
	}
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.Session = sessionJSON{Session: *cur, MAC: cur.MAC.String()}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding session %s event: %w", cur.ID, err)
	}
	eb := tx.Bucket(bucketEvents)
	seq, err := eb.NextSequence()
	if err != nil {
		return err
	}
	return eb.Put(binary.BigEndian.AppendUint64(nil, seq), b)
}

// TakeEvents removes up to max of the oldest events in tx and returns
// them in order. The caller hands them on in the same transaction, so
// they are gone exactly when they are handed on. An event that cannot be
// decoded is dropped (returned with a nil Session would help nobody)
// and counted in skipped.
func TakeEvents(tx *bolt.Tx, max int) (events []Event, skipped int, err error) {
	eb := tx.Bucket(bucketEvents)
	if eb == nil {
		return nil, 0, nil
	}
	c := eb.Cursor()
	for k, v := c.First(); k != nil && len(events) < max; k, v = c.First() {
		var e eventJSON
		derr := json.Unmarshal(v, &e)
		var sess *Session
		if derr == nil {
			sess, derr = fromJSON(e.Session)
		}
		if err := c.Delete(); err != nil {
			return nil, 0, err
		}
		if derr != nil || len(k) != 8 {
			skipped++
			continue
		}
		events = append(events, Event{Seq: binary.BigEndian.Uint64(k), Kind: e.Kind, At: e.At, Session: sess})
	}
	return events, skipped, nil
}

// PendingEvents is how many session events wait in the outbox.
func (s *Store) PendingEvents() (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		if eb := tx.Bucket(bucketEvents); eb != nil {
			n = eb.Stats().KeyN
		}
		return nil
	})
	return n, err
}
