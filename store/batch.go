package store

import (
	bolt "go.etcd.io/bbolt"
)

// UpdateEach applies fn to each of the sessions ids in one transaction
// (one write to flash instead of one per session) and returns the
// updated sessions by id. Sessions that no longer exist are skipped; an
// error from fn skips that session only.
func (s *Store) UpdateEach(ids []string, fn func(*Session) error) (map[string]*Session, error) {
	out := make(map[string]*Session, len(ids))
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		for _, id := range ids {
			v := b.Get([]byte(id))
			if v == nil {
				continue
			}
			sess, err := decodeSession(v)
			if err != nil {
				return err
			}
			prev := *sess
			if fn(sess) != nil {
				continue
			}
			sess.ID = prev.ID // the key never changes
			if err := putSession(tx, &prev, sess); err != nil {
				return err
			}
			out[id] = sess
		}
		return nil
	})
	return out, err
}
