// Package pin makes and checks the one-time PINs sent by SMS.
//
// A PIN is never stored: only HMAC-SHA256(key, device | phone | PIN) is,
// with a per-install key, so neither the database nor a log line lets
// anyone log in. Binding the device and the number into the MAC means a
// PIN sent for one phone on one device is worthless anywhere else.
package pin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"
)

// Digits is the length of a PIN.
const Digits = 6

// KeySize is the length of the per-install HMAC key.
const KeySize = 32

// Generate returns a uniformly random PIN of Digits decimal digits read
// from r (crypto/rand.Reader in production; a fixed stream in tests).
func Generate(r io.Reader) (string, error) {
	max := big.NewInt(1_000_000) // 10^Digits
	n, err := rand.Int(r, max)
	if err != nil {
		return "", fmt.Errorf("generating PIN: %w", err)
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// Hash returns the value stored for a PIN sent to phone for device mac.
func Hash(key []byte, mac, phone, pin string) []byte {
	h := hmac.New(sha256.New, key)
	// Length-prefixed fields: no concatenation ambiguity.
	for _, f := range []string{mac, phone, pin} {
		fmt.Fprintf(h, "%d:%s|", len(f), f)
	}
	return h.Sum(nil)
}

// Check reports, in constant time, whether pin matches the stored hash.
func Check(key []byte, stored []byte, mac, phone, pin string) bool {
	return hmac.Equal(stored, Hash(key, mac, phone, pin))
}

// Clean reads what a visitor typed into a PIN: it folds Arabic-Indic
// digits to ASCII and drops spaces. It reports false when the result is
// not exactly Digits digits, so malformed input never reaches Check.
func Clean(input string) (string, bool) {
	var b strings.Builder
	for _, r := range input {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r >= '٠' && r <= '٩':
			b.WriteRune('0' + (r - '٠'))
		case r >= '۰' && r <= '۹':
			b.WriteRune('0' + (r - '۰'))
		case r == ' ' || r == '-' || r == '\u00a0':
		default:
			return "", false
		}
		if b.Len() > Digits {
			return "", false
		}
	}
	return b.String(), b.Len() == Digits
}

// LoadOrCreateKey reads the HMAC key at path, creating it (0600) with
// fresh random bytes on first start.
func LoadOrCreateKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err == nil {
		if len(key) != KeySize {
			return nil, fmt.Errorf("PIN key %s: want %d bytes, found %d (delete it to make a new one; pending PINs become invalid)", path, KeySize, len(key))
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading PIN key: %w", err)
	}
	key = make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generating PIN key: %w", err)
	}
	// Written to a temporary file and renamed, so a crash never leaves a
	// short key behind.
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating PIN key: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing PIN key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("syncing PIN key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("closing PIN key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("installing PIN key: %w", err)
	}
	return key, nil
}
