package boltx

import (
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestUpdateIfChanged: a transaction that reports no change leaves the
// file as it was (bbolt's transaction id does not move, so nothing was
// committed); one that reports a change is committed; an error is
// returned and rolls back.
func TestUpdateIfChanged(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "x.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	txid := func() int {
		var id int
		db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
		return id
	}
	b := []byte("b")
	if err := UpdateIfChanged(db, func(tx *bolt.Tx) (bool, error) { return CreateBuckets(tx, b) }); err != nil {
		t.Fatal(err)
	}
	first := txid()
	if err := UpdateIfChanged(db, func(tx *bolt.Tx) (bool, error) { return CreateBuckets(tx, b) }); err != nil {
		t.Fatal(err)
	}
	if txid() != first {
		t.Errorf("a transaction that changed nothing was committed (txid %d -> %d)", first, txid())
	}
	err = UpdateIfChanged(db, func(tx *bolt.Tx) (bool, error) {
		return true, tx.Bucket(b).Put([]byte("k"), []byte("v"))
	})
	if err != nil || txid() != first+1 {
		t.Fatalf("a change: err %v, txid %d, want %d", err, txid(), first+1)
	}
	boom := errors.New("boom")
	err = UpdateIfChanged(db, func(tx *bolt.Tx) (bool, error) {
		tx.Bucket(b).Put([]byte("k"), []byte("w"))
		return true, boom
	})
	var v string
	db.View(func(tx *bolt.Tx) error { v = string(tx.Bucket(b).Get([]byte("k"))); return nil })
	if !errors.Is(err, boom) || v != "v" {
		t.Errorf("a failing transaction: err %v, value %q; want boom and the old value", err, v)
	}
}
