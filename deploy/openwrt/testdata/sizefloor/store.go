//go:build bbolt

package main

import (
	"log/slog"

	bolt "go.etcd.io/bbolt"
	"layeh.com/radius"
	"layeh.com/radius/rfc2866"
)

func init() {
	uses = append(uses, func() {
		db, err := bolt.Open("/tmp/sizefloor.db", 0o600, nil)
		if err != nil {
			return
		}
		_ = db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("s"))
			if err != nil {
				return err
			}
			return b.Put([]byte("k"), []byte("v"))
		})
		p := radius.New(radius.CodeAccountingRequest, []byte("secret"))
		_ = rfc2866.AcctStatusType_Set(p, rfc2866.AcctStatusType_Value_Start)
		_, err = p.Encode()
		slog.Info("radius", "err", err)
	})
}
