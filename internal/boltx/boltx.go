// Package boltx has what the packages that keep state in the one bbolt
// file share beyond bbolt itself.
package boltx

import (
	"errors"

	bolt "go.etcd.io/bbolt"
)

// errUnchanged rolls back a transaction that found nothing to write.
var errUnchanged = errors.New("nothing to write")

// UpdateIfChanged runs fn in a read-write transaction and commits it only
// if fn reports a change. bbolt's commit writes the freelist and a meta
// page and syncs the file twice even when nothing changed; the opening
// steps every process runs (the store's schema, the accounts' buckets,
// the site policy) found nothing to change on all but the first start,
// and each CLI call, a read included, wrote the router's flash three
// times over for it. fn must not report false after changing anything:
// the change would be rolled back.
func UpdateIfChanged(db *bolt.DB, fn func(tx *bolt.Tx) (changed bool, err error)) error {
	err := db.Update(func(tx *bolt.Tx) error {
		changed, err := fn(tx)
		if err == nil && !changed {
			return errUnchanged
		}
		return err
	})
	if errors.Is(err, errUnchanged) {
		return nil
	}
	return err
}

// CreateBuckets creates the named top-level buckets that are missing and
// reports whether it created any.
func CreateBuckets(tx *bolt.Tx, names ...[]byte) (created bool, err error) {
	for _, name := range names {
		if tx.Bucket(name) != nil {
			continue
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return created, err
		}
		created = true
	}
	return created, nil
}
