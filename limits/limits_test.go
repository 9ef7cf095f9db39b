package limits

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/parkwifi/parkportal/internal/fake"
)

// qatar is Asia/Qatar without needing tzdata on the test machine: UTC+3,
// no daylight saving.
var qatar = time.FixedZone("AST", 3*60*60)

// newClock starts at 17:00 in Doha, a busy park afternoon.
func newClock() *fake.Clock { return fake.NewClock(time.Date(2026, 3, 1, 17, 0, 0, 0, qatar)) }

func openDB(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func newLimiter(t *testing.T, cfg Config) (*Limiter, *fake.Clock, *bolt.DB) {
	t.Helper()
	db := openDB(t, filepath.Join(t.TempDir(), "park.db"))
	t.Cleanup(func() { db.Close() })
	if cfg.Location == nil {
		cfg.Location = qatar
	}
	c := newClock()
	l, err := Open(db, cfg, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	return l, c, db
}

// step is one request in a table test: move the clock, then ask.
type step struct {
	advance    time.Duration
	phone, mac string
	allowed    bool
	reason     Reason
	retryAfter time.Duration
}

func runSteps(t *testing.T, l *Limiter, c *fake.Clock, steps []step) {
	t.Helper()
	for i, s := range steps {
		c.Advance(s.advance)
		d, err := l.ReserveSMS(s.phone, s.mac)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		want := Decision{Allowed: s.allowed, Reason: s.reason, RetryAfter: s.retryAfter}
		if s.allowed {
			want.Reserved = c.Now()
		}
		if d != want {
			t.Errorf("step %d (%s, %s): got %+v, want %+v", i, s.phone, s.mac, d, want)
		}
	}
}

const (
	num1 = "+97433111111"
	num2 = "+97433222222"
	mac1 = "02:00:5e:00:53:01"
	mac2 = "02:00:5e:00:53:02"
)

func TestReserveSMS(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{
			name: "per number and resend gap",
			steps: []step{
				{0, num1, mac1, true, None, 0},
				{30 * time.Second, num1, mac2, false, ResendGap, 30 * time.Second},
				{30 * time.Second, num1, mac2, true, None, 0},
				{time.Minute, num1, "", true, None, 0},
				// Three in the last hour: wait until the first (at 0) leaves it.
				{time.Minute, num1, mac2, false, PerNumber, time.Hour - 3*time.Minute},
				{time.Hour - 3*time.Minute, num1, mac2, true, None, 0},
				// Other numbers are not affected.
				{0, num2, "", true, None, 0},
			},
		},
		{
			name: "per device across numbers",
			steps: []step{
				{0, "+97433000001", mac1, true, None, 0},
				{time.Minute, "+97433000002", mac1, true, None, 0},
				{time.Minute, "+97433000003", mac1, true, None, 0},
				{time.Minute, "+97433000004", mac1, true, None, 0},
				{time.Minute, "+97433000005", mac1, true, None, 0},
				{time.Minute, "+97433000006", mac1, false, PerDevice, 55 * time.Minute},
				// Upper-case spelling of the same MAC is the same device.
				{0, "+97433000006", strings.ToUpper(mac1), false, PerDevice, 55 * time.Minute},
				{0, "+97433000006", mac2, true, None, 0},
				{55 * time.Minute, "+97433000007", mac1, true, None, 0},
			},
		},
		{
			name: "longest refusal wins",
			cfg:  Config{SMSPerNumber: 1, ResendGap: 2 * time.Minute},
			steps: []step{
				{0, num1, mac1, true, None, 0},
				// Both the gap (2 min) and the per-number cap (1 h) refuse.
				{time.Minute, num1, mac1, false, PerNumber, 59 * time.Minute},
			},
		},
		{
			name: "limits switched off",
			cfg:  Config{SMSPerNumber: -1, SMSPerDevice: -1, ResendGap: -1, DailyBudget: -1},
			steps: []step{
				{0, num1, mac1, true, None, 0},
				{0, num1, mac1, true, None, 0},
				{0, num1, mac1, true, None, 0},
				{0, num1, mac1, true, None, 0},
				{0, num1, mac1, true, None, 0},
				{0, num1, mac1, true, None, 0},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, c, _ := newLimiter(t, tt.cfg)
			runSteps(t, l, c, tt.steps)
		})
	}
}

func TestSiteBudget(t *testing.T) {
	l, c, _ := newLimiter(t, Config{DailyBudget: 3})
	c.Set(time.Date(2026, 3, 1, 23, 0, 0, 0, qatar))
	runSteps(t, l, c, []step{
		{0, "+97433000001", "", true, None, 0},
		{0, "+97433000002", "", true, None, 0},
		{0, "+97433000003", "", true, None, 0},
		// Budget spent: back at local (Doha) midnight, one hour away.
		{0, "+97433000004", "", false, SiteBudget, time.Hour},
		{59 * time.Minute, "+97433000004", "", false, SiteBudget, time.Minute},
	})
	if used, budget := l.SMSUsedToday(); used != 3 || budget != 3 {
		t.Errorf("SMSUsedToday = %d/%d, want 3/3", used, budget)
	}
	c.Advance(time.Minute) // 00:00 in Doha, 21:00 UTC
	if d, _ := l.ReserveSMS("+97433000004", ""); !d.Allowed {
		t.Errorf("after midnight: %+v", d)
	}
	if used, _ := l.SMSUsedToday(); used != 1 {
		t.Errorf("new day used = %d, want 1", used)
	}
}

func TestReserveSMSEmptyPhone(t *testing.T) {
	l, _, _ := newLimiter(t, Config{})
	if _, err := l.ReserveSMS("", mac1); err == nil {
		t.Error("empty phone accepted")
	}
}

// TestReserveSMSConcurrent shows that the check and the record are one
// transaction: of many simultaneous requests exactly the limit get through.
func TestReserveSMSConcurrent(t *testing.T) {
	l, _, _ := newLimiter(t, Config{SMSPerNumber: 3, ResendGap: -1, SMSPerDevice: -1})
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			d, err := l.ReserveSMS(num1, "")
			if err != nil {
				t.Error(err)
			}
			if d.Allowed {
				allowed.Add(1)
			}
			l.SMSUsedToday()
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != 3 {
		t.Errorf("%d concurrent reservations allowed, want 3", n)
	}
}

// TestReleaseSMS: a send that never went out gives its slot back, for
// the number, the device, the resend gap and the day's budget, and the
// release is as durable as the reservation.
func TestReleaseSMS(t *testing.T) {
	path := filepath.Join(t.TempDir(), "park.db")
	c := newClock()
	cfg := Config{Location: qatar}
	db := openDB(t, path)
	l, err := Open(db, cfg, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	reserve := func(what, phone, mac string) Decision {
		t.Helper()
		d, err := l.ReserveSMS(phone, mac)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Allowed || !d.Reserved.Equal(c.Now()) {
			t.Fatalf("%s: %+v, want allowed and reserved now", what, d)
		}
		return d
	}
	release := func(phone, mac string, d Decision) {
		t.Helper()
		if err := l.ReleaseSMS(phone, mac, d.Reserved); err != nil {
			t.Fatal(err)
		}
	}

	// Five failed sends in a row, each retried at once: none is held
	// against the visitor, neither by the resend gap nor by the caps.
	for i := range 5 {
		d := reserve(fmt.Sprintf("failed send %d", i), num1, mac1)
		release(num1, mac1, d)
		c.Advance(5 * time.Second)
	}
	if used, _ := l.SMSUsedToday(); used != 0 {
		t.Errorf("after five released sends SMSUsedToday = %d, want 0", used)
	}
	reserve("first real send", num1, mac1)

	// Releasing one reservation leaves the others alone: mac1 asks for
	// num2 a minute later; giving that back keeps num1's send on mac1's
	// record, and releasing it again changes nothing.
	c.Advance(time.Minute)
	other := reserve("other number", num2, mac1)
	release(num2, mac1, other)
	release(num2, mac1, other)
	if used, _ := l.SMSUsedToday(); used != 1 {
		t.Errorf("SMSUsedToday = %d, want 1 (the first real send)", used)
	}
	if n := storedTimes(t, db, bucketSMSDevice, mac1); n != 1 {
		t.Errorf("mac1 has %d sends on record, want 1", n)
	}
	if n := storedTimes(t, db, bucketSMSNumber, num2); n != 0 {
		t.Errorf("num2 has %d sends on record, want 0", n)
	}
	// A zero reservation (a refused decision) is no reservation.
	if err := l.ReleaseSMS(num1, mac1, time.Time{}); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	reserve("second real send", num1, mac2)

	// Survives a restart: the released sends stay released.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, path)
	defer db.Close()
	if l, err = Open(db, cfg, c.Now); err != nil {
		t.Fatal(err)
	}
	if used, _ := l.SMSUsedToday(); used != 2 {
		t.Errorf("after restart SMSUsedToday = %d, want 2", used)
	}
	// num1 has had two real sends; a third is allowed once the gap has
	// passed, a fourth is refused by the cap.
	c.Advance(time.Minute)
	reserve("third real send", num1, mac1)
	c.Advance(time.Minute)
	if d, _ := l.ReserveSMS(num1, mac1); d.Allowed || d.Reason != PerNumber {
		t.Errorf("fourth real send within the hour: %+v, want PerNumber", d)
	}
}

func TestPINBackoff(t *testing.T) {
	l, c, _ := newLimiter(t, Config{})
	type want struct {
		advance time.Duration
		fail    bool          // record a failure after the check
		wait    time.Duration // PINWait before the failure
	}
	steps := []want{
		{0, true, 0},
		{time.Second, true, 0},
		{time.Second, true, 0},            // third failure starts the back-off
		{0, false, 30 * time.Second},      //
		{30 * time.Second, true, 0},       // fourth: 60 s
		{0, false, time.Minute},           //
		{time.Minute, true, 0},            // fifth: 2 min
		{time.Minute, false, time.Minute}, //
		{time.Minute, true, 0},            // sixth: 4 min
		{4 * time.Minute, true, 0},        // seventh: 8 min
		{8 * time.Minute, true, 0},        // eighth: 16 min, capped at 15
		{0, false, 15 * time.Minute},      //
		{15 * time.Minute, true, 0},       // ninth: still capped
		{0, false, 15 * time.Minute},      //
		{14 * time.Minute, false, time.Minute},
	}
	for i, s := range steps {
		c.Advance(s.advance)
		got, err := l.PINWait(num1, mac1)
		if err != nil {
			t.Fatal(err)
		}
		if got != s.wait {
			t.Errorf("step %d: PINWait = %v, want %v", i, got, s.wait)
		}
		if s.fail {
			if err := l.RecordPINFailure(num1, mac1); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The device is blocked for other numbers too, the number from other
	// devices too.
	if w, _ := l.PINWait(num2, mac1); w != time.Minute {
		t.Errorf("same device, other number: %v", w)
	}
	if w, _ := l.PINWait(num1, mac2); w != time.Minute {
		t.Errorf("same number, other device: %v", w)
	}
	if w, _ := l.PINWait(num2, mac2); w != 0 {
		t.Errorf("unrelated pair: %v", w)
	}
	// A correct PIN clears both.
	if err := l.ResetPIN(num1, mac1); err != nil {
		t.Fatal(err)
	}
	if w, _ := l.PINWait(num1, mac1); w != 0 {
		t.Errorf("after ResetPIN: %v", w)
	}
}

func TestPINStreakExpires(t *testing.T) {
	l, c, _ := newLimiter(t, Config{})
	for range 3 {
		l.RecordPINFailure(num1, "")
	}
	// Back-off 30 s, then 15 quiet minutes forget the streak: the next
	// failure is the first of a new one.
	c.Advance(30*time.Second + 15*time.Minute)
	for range 2 {
		l.RecordPINFailure(num1, "")
	}
	if w, _ := l.PINWait(num1, ""); w != 0 {
		t.Errorf("two failures of a fresh streak give a wait of %v", w)
	}
	// Not quite long enough: the streak goes on.
	l.RecordPINFailure(num1, "")
	c.Advance(30*time.Second + 15*time.Minute - time.Second)
	l.RecordPINFailure(num1, "")
	if w, _ := l.PINWait(num1, ""); w != time.Minute {
		t.Errorf("fourth failure of a live streak: wait %v, want 1m", w)
	}
}

// TestTryPINConcurrent shows TryPIN closes the race PINWait+RecordPINFailure
// leaves open: of 20 parallel guesses only the free ones are checked.
func TestTryPINConcurrent(t *testing.T) {
	l, _, _ := newLimiter(t, Config{})
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			d, err := l.TryPIN(num1, mac1)
			if err != nil {
				t.Error(err)
			}
			if d.Allowed {
				allowed.Add(1)
			} else if d.Reason != PINBackoff || d.RetryAfter != 30*time.Second {
				t.Errorf("refusal %+v", d)
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != 3 {
		t.Errorf("%d parallel tries checked, want 3", n)
	}
}

// TestPersistence closes and reopens the database file: counters survive a
// restart of the daemon.
func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "park.db")
	c := newClock()
	cfg := Config{Location: qatar}

	db := openDB(t, path)
	l, err := Open(db, cfg, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		c.Advance(time.Minute)
		if d, err := l.ReserveSMS(num1, mac1); err != nil || !d.Allowed {
			t.Fatalf("send %d: %+v %v", i, d, err)
		}
	}
	for range 3 {
		l.RecordPINFailure(num1, mac1)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	c.Advance(time.Minute)
	db = openDB(t, path)
	defer db.Close()
	l, err = Open(db, cfg, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	d, err := l.ReserveSMS(num1, mac2)
	if err != nil {
		t.Fatal(err)
	}
	if d.Allowed || d.Reason != PerNumber || d.RetryAfter != 57*time.Minute {
		t.Errorf("after restart: %+v, want PerNumber for 57m", d)
	}
	if used, _ := l.SMSUsedToday(); used != 3 {
		t.Errorf("after restart SMSUsedToday = %d, want 3", used)
	}
	// 3 failures 1 min ago: 30 s back-off over, but a 4th doubles it.
	if w, _ := l.PINWait(num1, mac1); w != 0 {
		t.Errorf("PINWait = %v", w)
	}
	l.RecordPINFailure(num1, mac1)
	if w, _ := l.PINWait(num1, mac1); w != time.Minute {
		t.Errorf("fourth failure after restart: PINWait = %v, want 1m (streak kept)", w)
	}
}

// TestClockJumpBack covers a router that booted with its clock years ahead
// and was corrected by NTP: records from the future must not block anyone.
func TestClockJumpBack(t *testing.T) {
	l, c, _ := newLimiter(t, Config{})
	real := c.Now()
	c.Set(real.AddDate(3, 0, 0))
	for range 3 {
		l.ReserveSMS(num1, mac1)
		l.RecordPINFailure(num1, mac1)
	}
	c.Set(real)
	if d, _ := l.ReserveSMS(num1, mac1); !d.Allowed {
		t.Errorf("after the clock stepped back: %+v", d)
	}
	if w, _ := l.PINWait(num1, mac1); w != 0 {
		t.Errorf("after the clock stepped back: PINWait %v", w)
	}
}

// storedTimes returns how many send times bucket holds under key.
func storedTimes(t *testing.T, db *bolt.DB, bucket []byte, key string) int {
	t.Helper()
	n := 0
	db.View(func(tx *bolt.Tx) error {
		n = len(tx.Bucket(bucket).Get([]byte(key))) / 8
		return nil
	})
	return n
}

func bucketKeys(t *testing.T, db *bolt.DB, name []byte) int {
	t.Helper()
	n := 0
	db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(name).ForEach(func(k, v []byte) error { n++; return nil })
	})
	return n
}

func TestPrune(t *testing.T) {
	l, c, db := newLimiter(t, Config{DailyBudget: 100000})
	for i := range 200 {
		phone := fmt.Sprintf("+97433000%03d", i)
		l.ReserveSMS(phone, fmt.Sprintf("02:00:5e:00:54:%02x", i))
		l.RecordPINFailure(phone, "")
	}
	if n := bucketKeys(t, db, bucketSMSNumber); n != 200 {
		t.Fatalf("%d number records, want 200", n)
	}
	c.Advance(2 * time.Hour)
	if err := l.Prune(); err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{bucketSMSNumber, bucketSMSDevice, bucketPINNumber, bucketPINDevice} {
		if n := bucketKeys(t, db, b); n != 0 {
			t.Errorf("%s: %d records left after prune", b, n)
		}
	}
	// Today's count is kept; days long past go.
	c.Advance(72 * time.Hour)
	l.ReserveSMS(num1, "") // writes sweep automatically, at most every few minutes
	if n := bucketKeys(t, db, bucketSMSDay); n != 1 {
		t.Errorf("%d day records, want 1", n)
	}
	if n := bucketKeys(t, db, bucketSMSNumber); n != 1 {
		t.Errorf("%d number records, want 1", n)
	}
}

// TestOwnBucketsOnly checks that we create only limits_* buckets and leave
// other packages' data alone.
func TestOwnBucketsOnly(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "park.db"))
	defer db.Close()
	db.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucket([]byte("sessions"))
		return b.Put([]byte("s1"), []byte("keep me"))
	})
	c := newClock()
	l, err := Open(db, Config{Location: qatar}, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	l.ReserveSMS(num1, mac1)
	l.TryPIN(num1, mac1)
	l.ResetPIN(num1, mac1)
	c.Advance(24 * time.Hour)
	l.Prune()
	db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if string(name) == "sessions" {
				if v := b.Get([]byte("s1")); !bytes.Equal(v, []byte("keep me")) {
					t.Errorf("sessions bucket changed: %q", v)
				}
			} else if !strings.HasPrefix(string(name), "limits_") {
				t.Errorf("unexpected bucket %q", name)
			}
			return nil
		})
	})
	// Reopening an existing layout works.
	if _, err := Open(db, Config{}, c.Now); err != nil {
		t.Errorf("reopen: %v", err)
	}
}

func TestConfig(t *testing.T) {
	if _, err := (Config{PINBackoff: time.Minute, PINBackoffMax: time.Second}).withDefaults(); err == nil {
		t.Error("max below start accepted")
	}
	if _, err := (Config{SMSPerNumber: 3, SMSPerNumberWindow: -1}).withDefaults(); err == nil {
		t.Error("count limit without window accepted")
	}
	c, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultConfig()
	if c.SMSPerNumber != d.SMSPerNumber || c.DailyBudget != d.DailyBudget || c.PINBackoffMax != d.PINBackoffMax {
		t.Errorf("defaults not applied: %+v", c)
	}
}

func TestReasonString(t *testing.T) {
	for r, want := range map[Reason]string{None: "none", PerNumber: "per-number", PerDevice: "per-device",
		SiteBudget: "site-budget", ResendGap: "resend-gap", PINBackoff: "pin-backoff", Reason(99): "Reason(99)"} {
		if r.String() != want {
			t.Errorf("%d: %q, want %q", int(r), r.String(), want)
		}
	}
}
