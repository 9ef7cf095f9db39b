package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/parkwifi/parkportal/internal/boltx"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/argon2"
)

// Role is what an account may do. Each role includes the ones below it.
type Role string

const (
	// Viewer sees the dashboard, sessions, settings and audit log.
	Viewer Role = "viewer"
	// Operator also kicks, extends and re-rates sessions.
	Operator Role = "operator"
	// Admin also changes site settings and manages accounts.
	Admin Role = "admin"
)

func (r Role) level() int {
	switch r {
	case Viewer:
		return 1
	case Operator:
		return 2
	case Admin:
		return 3
	}
	return 0
}

// Allows reports whether r includes need.
func (r Role) Allows(need Role) bool { return r.level() > 0 && r.level() >= need.level() }

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if r.level() == 0 {
		return "", fmt.Errorf("unknown role %q (want viewer, operator or admin)", s)
	}
	return r, nil
}

// Buckets this package owns in the daemon's bbolt file.
var (
	bucketUsers  = []byte("admin_users")
	bucketTokens = []byte("admin_tokens") // sha256(token) → TokenInfo
	// sha256(console cookie) → storedConsoleSession (see consolesessions.go)
	bucketConsoleSessions = []byte("admin_console_sessions")
)

// User is a staff account. Hash is an argon2id PHC string; the password
// itself is never stored or logged.
type User struct {
	Name    string    `json:"name"`
	Role    Role      `json:"role"`
	Hash    string    `json:"hash,omitempty"`
	Created time.Time `json:"created"`
}

// TokenInfo is what the store keeps for an API token: only the SHA-256
// of the token (tokens are 256 random bits, so a fast hash suffices).
type TokenInfo struct {
	ID      string    `json:"id"` // public, to list and revoke
	User    string    `json:"user"`
	Label   string    `json:"label"`
	Created time.Time `json:"created"`
}

// Errors callers distinguish.
var (
	ErrNoUser    = errors.New("no such account")
	ErrUserTaken = errors.New("an account with that name exists")
	ErrLastAdmin = errors.New("the last admin account cannot be removed or demoted")
	ErrBadLogin  = errors.New("wrong name or password")
	// ErrBusy: every password-hashing slot stayed taken while the caller
	// waited (see withHashSlot). Nothing was checked or changed.
	ErrBusy = errors.New("busy checking other passwords; try again in a moment")
)

// Users keeps accounts and API tokens in bbolt.
type Users struct {
	db  *bolt.DB
	now func() time.Time
}

// OpenUsers creates the account buckets if needed.
func OpenUsers(db *bolt.DB, now func() time.Time) (*Users, error) {
	if now == nil {
		now = time.Now
	}
	err := boltx.UpdateIfChanged(db, func(tx *bolt.Tx) (bool, error) {
		return boltx.CreateBuckets(tx, bucketUsers, bucketTokens, bucketConsoleSessions)
	})
	if err != nil {
		return nil, fmt.Errorf("opening admin accounts: %w", err)
	}
	return &Users{db: db, now: now}, nil
}

// validName is compiled on first use, not at package initialisation:
// every CLI call (`version` too) initialises this package, and few check
// a name.
var validName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,31}$`) })

// CheckName explains what an account name may be.
func CheckName(name string) error {
	if !validName().MatchString(name) {
		return fmt.Errorf("account name %q: use 1-32 lower-case letters, digits, '.', '_' or '-'", name)
	}
	return nil
}

// CheckPassword refuses passwords too short to resist guessing, or too
// long to hash cheaply.
func CheckPassword(pw string) error {
	n := utf8.RuneCountInString(pw)
	switch {
	case n < 10:
		return errors.New("password: at least 10 characters")
	case len(pw) > 256:
		return errors.New("password: at most 256 bytes")
	}
	return nil
}

// argon2id parameters: OWASP's 19 MiB / 2 passes / 1 lane, which a
// router with 128 MB of RAM can afford for a login now and then.
const (
	argonThreads = 1
	argonKeyLen  = 32
)

// argonTime and argonMemory are variables only so tests can make
// hashing cheap; VerifyPassword reads the cost from each hash.
var (
	argonTime   uint32 = 2
	argonMemory uint32 = 19 * 1024
)

// HashPassword returns an argon2id PHC string for pw with a fresh salt.
func HashPassword(pw string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("generating salt: %w", err)
	}
	key := idKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// VerifyPassword checks pw against a PHC string from HashPassword, in
// constant time. It honours the parameters stored in the hash, so they
// can be raised later without invalidating old accounts.
func VerifyPassword(hash, pw string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var v int
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || m > 1<<20 || t == 0 || t > 16 || p == 0 {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 64 {
		return false
	}
	got := idKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// idKey is argon2.IDKey; tests replace it to watch how many hashes run
// at once.
var idKey = argon2.IDKey

// maxHashes is how many argon2id computations may run at once in the
// process. Each holds argonMemory (19 MiB) for its duration; on a router
// with 64 MB, unbounded concurrent logins (for accounts that exist or
// not: both are hashed) would exhaust memory. Two keep a second staff
// member from waiting behind the first.
const maxHashes = 2

var (
	hashSlots   = make(chan struct{}, maxHashes)
	hashWaiting atomic.Int32 // callers waiting for a slot (for tests)
	// hashWait is how long a caller waits for a slot before ErrBusy: a
	// hash takes up to about a second on a router's CPU, so a few
	// seconds absorb a burst of staff logins, while a flood is turned
	// away instead of queueing without bound. A variable for tests.
	hashWait = 5 * time.Second
)

// withHashSlot runs fn, which hashes a password, once a hashing slot is
// free; it returns ErrBusy if none frees within hashWait or before ctx
// ends.
func withHashSlot(ctx context.Context, fn func()) error {
	select {
	case hashSlots <- struct{}{}:
	default:
		hashWaiting.Add(1)
		t := time.NewTimer(hashWait)
		select {
		case hashSlots <- struct{}{}:
		case <-t.C:
			hashWaiting.Add(-1)
			return ErrBusy
		case <-ctx.Done():
			t.Stop()
			hashWaiting.Add(-1)
			return ErrBusy
		}
		t.Stop()
		hashWaiting.Add(-1)
	}
	defer func() {
		<-hashSlots
		if len(hashSlots) == 0 {
			// argon2id's 19 MiB are garbage now. Left to the runtime's
			// scavenger they stay resident for seconds, over the memory a
			// small router has for the whole daemon: hand them back now
			// (a forced collection, once per staff login or password).
			debug.FreeOSMemory()
		}
	}()
	fn()
	return nil
}

// dummyHash is verified against when the account does not exist, so a
// login takes as long for an unknown name as for a wrong password: the
// same argon2id cost as a new account's hash, run in a hashing slot
// like any other. Its key is random bytes, not a hash of anything:
// verifying costs the same, no password matches it, and making it costs
// no hashing (a hash made on first use would make the first unknown
// name slower than any known one; made at start, it would cost every
// process, `parkportal version` included, 19 MiB).
var dummyHash = sync.OnceValue(func() string {
	salt, key := make([]byte, 16), make([]byte, argonKeyLen)
	rand.Read(salt)
	rand.Read(key)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
})

// hashPassword is HashPassword in a hashing slot.
func hashPassword(ctx context.Context, pw string) (hash string, err error) {
	if serr := withHashSlot(ctx, func() { hash, err = HashPassword(pw) }); serr != nil {
		return "", serr
	}
	return hash, err
}

// Add creates an account.
func (u *Users) Add(name string, role Role, password string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return err
	}
	hash, err := checkedHash(password)
	if err != nil {
		return err
	}
	return u.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsers)
		if b.Get([]byte(name)) != nil {
			return fmt.Errorf("adding %s: %w", name, ErrUserTaken)
		}
		return putUser(b, &User{Name: name, Role: role, Hash: hash, Created: u.now().UTC()})
	})
}

func putUser(b *bolt.Bucket, usr *User) error {
	enc, err := json.Marshal(usr)
	if err != nil {
		return err
	}
	return b.Put([]byte(usr.Name), enc)
}

func getUser(b *bolt.Bucket, name string) (*User, error) {
	v := b.Get([]byte(name))
	if v == nil {
		return nil, ErrNoUser
	}
	var usr User
	if err := json.Unmarshal(v, &usr); err != nil {
		return nil, fmt.Errorf("decoding account %s: %w", name, err)
	}
	return &usr, nil
}

// Get returns the account name (without its hash).
func (u *Users) Get(name string) (*User, error) {
	var usr *User
	err := u.db.View(func(tx *bolt.Tx) error {
		var err error
		usr, err = getUser(tx.Bucket(bucketUsers), name)
		return err
	})
	if usr != nil {
		usr.Hash = ""
	}
	return usr, err
}

// List returns every account by name, without hashes.
func (u *Users) List() ([]User, error) {
	var out []User
	err := u.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
			var usr User
			if err := json.Unmarshal(v, &usr); err != nil {
				return fmt.Errorf("decoding account %s: %w", k, err)
			}
			usr.Hash = ""
			out = append(out, usr)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// Count returns the number of accounts.
func (u *Users) Count() (int, error) {
	n := 0
	err := u.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketUsers).Stats().KeyN
		return nil
	})
	return n, err
}

// Authenticate checks a name and password; it returns ErrBadLogin for
// both an unknown name and a wrong password, taking the same time (an
// unknown name is checked against dummyHash, in a hashing slot like a
// known one). It returns ErrBusy, having checked nothing, when no
// hashing slot frees in time or ctx ends first.
func (u *Users) Authenticate(ctx context.Context, name, password string) (*User, error) {
	var usr *User
	err := u.db.View(func(tx *bolt.Tx) error {
		var err error
		usr, err = getUser(tx.Bucket(bucketUsers), name)
		return err
	})
	hash := ""
	switch {
	case errors.Is(err, ErrNoUser):
		hash, usr = dummyHash(), nil
	case err != nil:
		return nil, err
	default:
		hash = usr.Hash
	}
	ok := false
	if err := withHashSlot(ctx, func() { ok = VerifyPassword(hash, password) }); err != nil {
		return nil, err
	}
	if !ok || usr == nil {
		return nil, ErrBadLogin
	}
	usr.Hash = ""
	return usr, nil
}

// checkedHash refuses a weak password and hashes an acceptable one.
func checkedHash(password string) (string, error) {
	if err := CheckPassword(password); err != nil {
		return "", err
	}
	return hashPassword(context.Background(), password)
}

// SetPassword replaces an account's password.
func (u *Users) SetPassword(name, password string) error {
	hash, err := checkedHash(password)
	if err != nil {
		return err
	}
	return u.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsers)
		usr, err := getUser(b, name)
		if err != nil {
			return fmt.Errorf("setting password of %s: %w", name, err)
		}
		usr.Hash = hash
		return putUser(b, usr)
	})
}

// adminsLocked counts admin accounts other than except.
func adminsOtherThan(b *bolt.Bucket, except string) int {
	n := 0
	b.ForEach(func(k, v []byte) error {
		var usr User
		if json.Unmarshal(v, &usr) == nil && usr.Role == Admin && usr.Name != except {
			n++
		}
		return nil
	})
	return n
}

// SetRole changes an account's role. The last admin cannot be demoted,
// so the console cannot lock everyone out of account management.
func (u *Users) SetRole(name string, role Role) error {
	if _, err := ParseRole(string(role)); err != nil {
		return err
	}
	return u.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsers)
		usr, err := getUser(b, name)
		if err != nil {
			return fmt.Errorf("setting role of %s: %w", name, err)
		}
		if usr.Role == Admin && role != Admin && adminsOtherThan(b, name) == 0 {
			return ErrLastAdmin
		}
		usr.Role = role
		return putUser(b, usr)
	})
}

// Delete removes an account and its tokens; not the last admin.
func (u *Users) Delete(name string) error {
	return u.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsers)
		usr, err := getUser(b, name)
		if err != nil {
			return fmt.Errorf("deleting %s: %w", name, err)
		}
		if usr.Role == Admin && adminsOtherThan(b, name) == 0 {
			return ErrLastAdmin
		}
		if err := deleteTokensOf(tx.Bucket(bucketTokens), name, ""); err != nil {
			return err
		}
		return b.Delete([]byte(name))
	})
}

func deleteTokensOf(tb *bolt.Bucket, user, id string) error {
	return deleteWhere(tb, func(v []byte) bool {
		var ti TokenInfo
		return json.Unmarshal(v, &ti) == nil && ti.User == user && (id == "" || ti.ID == id)
	})
}

// deleteWhere deletes the records of b whose value match picks (bbolt
// forbids deleting while ForEach walks, so the keys are collected first).
func deleteWhere(b *bolt.Bucket, match func(v []byte) bool) error {
	var keys [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if match(v) {
			keys = append(keys, k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// tokenPrefix marks parkportal API tokens, so secret scanners and staff
// recognise one when it turns up where it should not.
const tokenPrefix = "ppt_"

func tokenKey(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// NewToken creates an API token for user and returns it. The token is
// shown once; only its hash is kept.
func (u *Users) NewToken(user, label string) (token string, info TokenInfo, err error) {
	if utf8.RuneCountInString(label) > 64 {
		return "", info, errors.New("token label: at most 64 characters")
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", info, fmt.Errorf("generating token: %w", err)
	}
	idb := make([]byte, 4)
	rand.Read(idb)
	token = tokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	info = TokenInfo{ID: hex.EncodeToString(idb), User: user, Label: label, Created: u.now().UTC()}
	err = u.db.Update(func(tx *bolt.Tx) error {
		if _, err := getUser(tx.Bucket(bucketUsers), user); err != nil {
			return fmt.Errorf("creating token for %s: %w", user, err)
		}
		enc, err := json.Marshal(info)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketTokens).Put(tokenKey(token), enc)
	})
	if err != nil {
		return "", TokenInfo{}, err
	}
	return token, info, nil
}

// Tokens lists user's tokens (all users' when user is empty).
func (u *Users) Tokens(user string) ([]TokenInfo, error) {
	var out []TokenInfo
	err := u.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			var ti TokenInfo
			if err := json.Unmarshal(v, &ti); err != nil {
				return fmt.Errorf("decoding token record: %w", err)
			}
			if user == "" || ti.User == user {
				out = append(out, ti)
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// RevokeToken deletes user's token id (all of user's tokens when id is
// empty).
func (u *Users) RevokeToken(user, id string) error {
	return u.db.Update(func(tx *bolt.Tx) error {
		return deleteTokensOf(tx.Bucket(bucketTokens), user, id)
	})
}

// ByToken returns the account a bearer token belongs to.
func (u *Users) ByToken(token string) (*User, error) {
	if !strings.HasPrefix(token, tokenPrefix) || len(token) > 100 {
		return nil, ErrBadLogin
	}
	var usr *User
	err := u.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketTokens).Get(tokenKey(token))
		if v == nil {
			return ErrBadLogin
		}
		var ti TokenInfo
		if err := json.Unmarshal(v, &ti); err != nil {
			return fmt.Errorf("decoding token record: %w", err)
		}
		var err error
		usr, err = getUser(tx.Bucket(bucketUsers), ti.User)
		if errors.Is(err, ErrNoUser) {
			return ErrBadLogin
		}
		return err
	})
	if usr != nil {
		usr.Hash = ""
	}
	return usr, err
}
