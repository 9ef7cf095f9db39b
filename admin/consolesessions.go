package admin

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Console logins are kept in the store as well as in memory, so that a
// daemon restart (an upgrade, a reboot, a changed setting that needs
// one) does not log every member of staff out mid-task. Only the
// cookie's SHA-256 is stored: someone who copies the file cannot log in
// with it. The sliding expiry is written back only when it has moved by
// consolePersistStep, so browsing the console does not write to flash
// on every click.

// consolePersistStep is how far a session's expiry may slide in memory
// before the stored copy is brought up to date.
const consolePersistStep = 10 * time.Minute

type storedConsoleSession struct {
	User    string    `json:"user"`
	CSRF    string    `json:"csrf"`
	Expires time.Time `json:"expires"`
}

func consoleKey(cookie string) []byte {
	h := sha256.Sum256([]byte(cookie))
	return h[:]
}

// saveConsoleSession stores cs under cookie, dropping expired ones.
func (u *Users) saveConsoleSession(cookie string, cs *consoleSession) error {
	v, err := json.Marshal(storedConsoleSession{User: cs.user, CSRF: cs.csrf, Expires: cs.expires})
	if err != nil {
		return err
	}
	now := u.now()
	err = u.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketConsoleSessions)
		err := deleteWhere(b, func(v []byte) bool {
			var s storedConsoleSession
			return json.Unmarshal(v, &s) != nil || now.After(s.Expires)
		})
		if err != nil {
			return err
		}
		return b.Put(consoleKey(cookie), v)
	})
	if err != nil {
		return fmt.Errorf("saving console login of %s: %w", cs.user, err)
	}
	return nil
}

// loadConsoleSession returns the stored, unexpired session for cookie,
// or nil.
func (u *Users) loadConsoleSession(cookie string) *consoleSession {
	var s storedConsoleSession
	found := false
	u.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketConsoleSessions).Get(consoleKey(cookie)); v != nil {
			found = json.Unmarshal(v, &s) == nil
		}
		return nil
	})
	if !found || u.now().After(s.Expires) {
		return nil
	}
	return &consoleSession{user: s.User, csrf: s.CSRF, expires: s.Expires, stored: s.Expires}
}

// deleteConsoleSessions removes the stored sessions of the cookies given,
// and every one of user when user is not empty.
func (u *Users) deleteConsoleSessions(user string, cookies ...string) error {
	return u.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketConsoleSessions)
		for _, c := range cookies {
			if err := b.Delete(consoleKey(c)); err != nil {
				return err
			}
		}
		if user == "" {
			return nil
		}
		return deleteWhere(b, func(v []byte) bool {
			var s storedConsoleSession
			return json.Unmarshal(v, &s) == nil && s.User == user
		})
	})
}
