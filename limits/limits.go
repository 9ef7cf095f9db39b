// Package limits enforces the portal's abuse limits: how many PIN SMS a
// number, a device and the whole site may trigger, and how fast a PIN may be
// guessed.
//
// The counters live in bbolt, in buckets named limits_*, so restarting the
// daemon (or a crash loop an attacker provokes) does not hand out a fresh
// allowance. The rest of the database belongs to other packages and is
// never touched.
package limits

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Config sets the limits. A zero field takes the default from
// DefaultConfig; a negative count or duration switches that limit off.
type Config struct {
	// SMSPerNumber caps PIN messages to one number within
	// SMSPerNumberWindow (sliding). It stops SMS-bombing a stranger's
	// phone through our portal.
	SMSPerNumber       int
	SMSPerNumberWindow time.Duration
	// SMSPerDevice caps PIN messages one device (MAC) may trigger within
	// SMSPerDeviceWindow (sliding), whatever numbers it types.
	SMSPerDevice       int
	SMSPerDeviceWindow time.Duration
	// DailyBudget caps all PIN messages of the site per calendar day in
	// Location; the last line of defence against SMS-pumping fraud, where
	// bots with rotating MACs make us pay for messages.
	DailyBudget int
	Location    *time.Location // nil means time.Local
	// ResendGap is the minimum time between two messages to one number.
	ResendGap time.Duration

	// After PINFreeFailures wrong PINs in a row (a streak ends once the
	// visitor has left it alone for PINFailureWindow after the back-off
	// ran out), each further try waits PINBackoff, doubling per failure,
	// at most PINBackoffMax.
	PINFreeFailures  int
	PINFailureWindow time.Duration
	PINBackoff       time.Duration
	PINBackoffMax    time.Duration
}

// DefaultConfig returns the limits used when Config fields are zero.
//
//   - 3 SMS per number per hour: the first PIN plus two resends covers a
//     slow delivery; beyond that the number is wrong or being bombed.
//   - 5 SMS per device per hour: a visitor who mistypes their number can
//     correct it a couple of times; MAC addresses are cheap to change, so
//     this is a speed bump and the site budget the wall.
//   - 2000 SMS per site per day: above the busiest day of a large park
//     (a few thousand visitors, most returning on a still-valid session),
//     and a known ceiling on what an SMS-pumping attack can cost.
//   - 60 s between messages to one number: an SMS normally arrives within
//     seconds; resending sooner mostly produces duplicate texts.
//   - PIN back-off after 3 wrong PINs: 30 s, doubling, capped at 15 min,
//     streak forgotten after 15 quiet minutes. A typo costs nothing; a
//     guesser gets about four tries an hour against a million PINs.
func DefaultConfig() Config {
	return Config{
		SMSPerNumber:       3,
		SMSPerNumberWindow: time.Hour,
		SMSPerDevice:       5,
		SMSPerDeviceWindow: time.Hour,
		DailyBudget:        2000,
		Location:           time.Local,
		ResendGap:          time.Minute,
		PINFreeFailures:    3,
		PINFailureWindow:   15 * time.Minute,
		PINBackoff:         30 * time.Second,
		PINBackoffMax:      15 * time.Minute,
	}
}

// Effective returns the limits c stands for, as Open applies them: each
// zero field is DefaultConfig's, a negative one is off; an error when c
// is contradictory. It is the limiter's validator: the site policy that
// feeds it (settings, config) never passes a zero that would mean
// something else there, which cmd/parkportal's tests check.
func (c Config) Effective() (Config, error) { return c.withDefaults() }

func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	fillInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	fillDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	fillInt(&c.SMSPerNumber, d.SMSPerNumber)
	fillDur(&c.SMSPerNumberWindow, d.SMSPerNumberWindow)
	fillInt(&c.SMSPerDevice, d.SMSPerDevice)
	fillDur(&c.SMSPerDeviceWindow, d.SMSPerDeviceWindow)
	fillInt(&c.DailyBudget, d.DailyBudget)
	fillDur(&c.ResendGap, d.ResendGap)
	fillInt(&c.PINFreeFailures, d.PINFreeFailures)
	fillDur(&c.PINFailureWindow, d.PINFailureWindow)
	fillDur(&c.PINBackoff, d.PINBackoff)
	fillDur(&c.PINBackoffMax, d.PINBackoffMax)
	if c.Location == nil {
		c.Location = d.Location
	}
	if c.SMSPerNumber > 0 && c.SMSPerNumberWindow < 0 || c.SMSPerDevice > 0 && c.SMSPerDeviceWindow < 0 {
		return c, errors.New("configuring limits: an SMS count limit needs a positive window")
	}
	if c.PINBackoff > 0 && c.PINBackoffMax > 0 && c.PINBackoffMax < c.PINBackoff {
		return c, errors.New("configuring limits: PIN back-off maximum is below its start")
	}
	if c.PINFailureWindow < 0 {
		c.PINFailureWindow = 0
	}
	return c, nil
}

// Reason says which limit decided.
type Reason int

const (
	None       Reason = iota // allowed
	PerNumber                // too many SMS to this number
	PerDevice                // too many SMS from this device
	SiteBudget               // the site's daily SMS budget is spent
	ResendGap                // too soon after the last SMS to this number
	PINBackoff               // too many wrong PINs; wait
)

// String returns a short stable name for logs and metrics.
func (r Reason) String() string {
	switch r {
	case None:
		return "none"
	case PerNumber:
		return "per-number"
	case PerDevice:
		return "per-device"
	case SiteBudget:
		return "site-budget"
	case ResendGap:
		return "resend-gap"
	case PINBackoff:
		return "pin-backoff"
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// Decision is the answer to a request. When several limits refuse, Reason
// is the one that lasts longest and RetryAfter is when every refusing
// limit will have cleared, so the portal never tells a visitor a time
// at which they would be refused again.
type Decision struct {
	Allowed    bool
	Reason     Reason
	RetryAfter time.Duration
	// Reserved is the time ReserveSMS recorded an allowed SMS under
	// (zero otherwise). It names that one reservation, so ReleaseSMS can
	// give back exactly it and not a concurrent request's.
	Reserved time.Time
}

// Bucket names. All ours start with limits_; the layout version lives in
// limits_meta so a later format can migrate instead of misreading.
var (
	bucketMeta      = []byte("limits_meta")
	bucketSMSNumber = []byte("limits_sms_number")
	bucketSMSDevice = []byte("limits_sms_device")
	bucketSMSDay    = []byte("limits_sms_day")
	bucketPINNumber = []byte("limits_pin_number")
	bucketPINDevice = []byte("limits_pin_device")
	allBuckets      = [][]byte{bucketMeta, bucketSMSNumber, bucketSMSDevice, bucketSMSDay, bucketPINNumber, bucketPINDevice}
	keyVersion      = []byte("version")
)

const layoutVersion = 1

// futureSlack is how far in the future a stored time may lie before we
// treat it as written under a wrong clock and drop it. Routers without a
// battery-backed clock boot at their build date and jump once NTP answers;
// a record from a clock running years ahead must not block a number for
// years.
const futureSlack = 5 * time.Minute

// sweepEvery is how often a writing call also prunes records that no
// longer matter, keeping the buckets bounded by recent activity.
const sweepEvery = 10 * time.Minute

// Limiter checks and records the limits. It is safe for concurrent use;
// bbolt serialises the writes.
type Limiter struct {
	db  *bolt.DB
	cfg Config
	now func() time.Time

	mu        sync.Mutex
	lastSweep time.Time
}

// Open prepares the limits_* buckets in db and returns a Limiter. now is
// the clock (nil for time.Now); tests inject a fake one.
func Open(db *bolt.DB, cfg Config, now func() time.Time) (*Limiter, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("creating bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyVersion); v != nil {
			if len(v) != 4 || binary.BigEndian.Uint32(v) != layoutVersion {
				return fmt.Errorf("limits layout version %x, want %d", v, layoutVersion)
			}
			return nil
		}
		return meta.Put(keyVersion, binary.BigEndian.AppendUint32(nil, layoutVersion))
	})
	if err != nil {
		return nil, fmt.Errorf("opening limits: %w", err)
	}
	return &Limiter{db: db, cfg: cfg, now: now}, nil
}

// deviceKey normalises a MAC so "AA:BB…" and "aa:bb…" are one device.
func deviceKey(mac string) string { return strings.ToLower(strings.TrimSpace(mac)) }

// ReserveSMS decides whether an SMS to phone, requested by the device with
// MAC mac, may be sent, and if so records it, all in one transaction so
// two concurrent requests cannot both take the last slot. An empty mac
// (a client we only know by IP) skips the per-device limit.
//
// Call it before sending. If the send fails, give the slot back with
// ReleaseSMS only when no message can have gone out (see there); a send
// that may have reached the provider stays counted, because it may have
// cost money and reached a phone, and an attacker must not be able to
// retry for free.
func (l *Limiter) ReserveSMS(phone, mac string) (Decision, error) {
	if phone == "" {
		return Decision{}, errors.New("reserving SMS: empty phone number")
	}
	mac = deviceKey(mac)
	now := l.now()
	var d Decision
	err := l.db.Update(func(tx *bolt.Tx) error {
		nb, devB, day := tx.Bucket(bucketSMSNumber), tx.Bucket(bucketSMSDevice), tx.Bucket(bucketSMSDay)
		numTimes := liveTimes(nb.Get([]byte(phone)), now, l.cfg.SMSPerNumberWindow, l.cfg.ResendGap)
		var devTimes []time.Time
		if mac != "" {
			devTimes = liveTimes(devB.Get([]byte(mac)), now, l.cfg.SMSPerDeviceWindow, 0)
		}
		dayKey := []byte(now.In(l.cfg.Location).Format(time.DateOnly))
		used := getUint(day.Get(dayKey))

		var refusals []Decision
		if l.cfg.ResendGap > 0 && len(numTimes) > 0 {
			if wait := numTimes[len(numTimes)-1].Add(l.cfg.ResendGap).Sub(now); wait > 0 {
				refusals = append(refusals, Decision{Reason: ResendGap, RetryAfter: wait})
			}
		}
		if wait, full := windowFull(inWindow(numTimes, now, l.cfg.SMSPerNumberWindow), l.cfg.SMSPerNumber, l.cfg.SMSPerNumberWindow, now); full {
			refusals = append(refusals, Decision{Reason: PerNumber, RetryAfter: wait})
		}
		if wait, full := windowFull(devTimes, l.cfg.SMSPerDevice, l.cfg.SMSPerDeviceWindow, now); mac != "" && full {
			refusals = append(refusals, Decision{Reason: PerDevice, RetryAfter: wait})
		}
		if l.cfg.DailyBudget > 0 && used >= uint64(l.cfg.DailyBudget) {
			refusals = append(refusals, Decision{Reason: SiteBudget, RetryAfter: untilMidnight(now, l.cfg.Location)})
		}
		if len(refusals) > 0 {
			d = slices.MaxFunc(refusals, func(a, b Decision) int { return int(a.RetryAfter - b.RetryAfter) })
			return nil
		}

		d = Decision{Allowed: true, Reserved: now}
		if err := nb.Put([]byte(phone), encodeTimes(keepLast(append(numTimes, now), max(l.cfg.SMSPerNumber, 1)))); err != nil {
			return err
		}
		if mac != "" {
			if err := devB.Put([]byte(mac), encodeTimes(keepLast(append(devTimes, now), max(l.cfg.SMSPerDevice, 1)))); err != nil {
				return err
			}
		}
		if err := day.Put(dayKey, binary.BigEndian.AppendUint64(nil, used+1)); err != nil {
			return err
		}
		return l.maybeSweep(tx, now)
	})
	if err != nil {
		return Decision{}, fmt.Errorf("reserving SMS: %w", err)
	}
	return d, nil
}

// ReleaseSMS gives back the slot an allowed ReserveSMS took for phone and
// mac; reserved is that decision's Reserved. It removes that one send
// from the number's and the device's records (so neither the caps nor
// the resend gap count it) and takes it off the day's budget, in one
// transaction, persisted like the reservation.
//
// Call it only when the message certainly did not go out: the request
// never reached the provider, or the provider refused it. A visitor whose
// SMS failed for a reason of ours or the provider's would otherwise be
// told "we just sent a code, wait" for a code that never came, and lose
// a third of their hourly allowance per outage.
//
// Releasing twice, or a reservation already pruned, changes nothing:
// only a send still on record comes off the day's count.
func (l *Limiter) ReleaseSMS(phone, mac string, reserved time.Time) error {
	if phone == "" || reserved.IsZero() {
		return nil
	}
	mac = deviceKey(mac)
	err := l.db.Update(func(tx *bolt.Tx) error {
		found, err := removeTime(tx.Bucket(bucketSMSNumber), []byte(phone), reserved)
		if err != nil {
			return err
		}
		if mac != "" {
			devFound, err := removeTime(tx.Bucket(bucketSMSDevice), []byte(mac), reserved)
			if err != nil {
				return err
			}
			found = found || devFound
		}
		if !found {
			return nil
		}
		day := tx.Bucket(bucketSMSDay)
		dayKey := []byte(reserved.In(l.cfg.Location).Format(time.DateOnly))
		if used := getUint(day.Get(dayKey)); used > 0 {
			return day.Put(dayKey, binary.BigEndian.AppendUint64(nil, used-1))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("releasing SMS: %w", err)
	}
	return nil
}

// removeTime deletes one record of exactly t from the send times stored
// under key, reporting whether it was there. Other times are kept as
// stored; pruning is the sweep's job.
func removeTime(b *bolt.Bucket, key []byte, t time.Time) (bool, error) {
	v := b.Get(key)
	want := uint64(t.UnixNano())
	for i := 0; i+8 <= len(v); i += 8 {
		if binary.BigEndian.Uint64(v[i:]) != want {
			continue
		}
		rest := append(slices.Clone(v[:i]), v[i+8:]...)
		if len(rest) == 0 {
			return true, b.Delete(key)
		}
		return true, b.Put(key, rest)
	}
	return false, nil
}

// windowFull reports whether times (sorted, all inside the window) already
// hold limit entries, and if so how long until the oldest that matters
// leaves the window.
func windowFull(times []time.Time, limit int, window time.Duration, now time.Time) (time.Duration, bool) {
	if limit <= 0 || len(times) < limit {
		return 0, false
	}
	// Dropping times[0..len-limit] brings the count below the limit.
	return times[len(times)-limit].Add(window).Sub(now), true
}

// untilMidnight returns the time left in now's day in loc.
func untilMidnight(now time.Time, loc *time.Location) time.Duration {
	t := now.In(loc)
	next := time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, loc)
	return next.Sub(now)
}

// SMSUsedToday returns how many SMS the site has sent today and its daily
// budget (0 when the budget is off), for the status page. If the database
// cannot be read it reports used as 0.
func (l *Limiter) SMSUsedToday() (used, budget int) {
	now := l.now()
	key := []byte(now.In(l.cfg.Location).Format(time.DateOnly))
	_ = l.db.View(func(tx *bolt.Tx) error {
		used = int(getUint(tx.Bucket(bucketSMSDay).Get(key)))
		return nil
	})
	return used, max(l.cfg.DailyBudget, 0)
}

// pinState is one streak of wrong PINs.
type pinState struct {
	count uint32
	last  time.Time
}

// backoff is the wait imposed after count failures in a row.
func (l *Limiter) backoff(count uint32) time.Duration {
	free := max(l.cfg.PINFreeFailures, 0)
	if l.cfg.PINBackoff <= 0 || int(count) < free {
		return 0
	}
	d := l.cfg.PINBackoff
	for i := free; i < int(count); i++ {
		d *= 2
		if l.cfg.PINBackoffMax > 0 && d >= l.cfg.PINBackoffMax || d > 24*time.Hour {
			break
		}
	}
	if l.cfg.PINBackoffMax > 0 {
		d = min(d, l.cfg.PINBackoffMax)
	}
	return d
}

// loadPIN decodes a stored streak, dropping it once it has expired (quiet
// for the failure window after its back-off ended) or if it was written
// under a clock far ahead of ours.
func (l *Limiter) loadPIN(v []byte, now time.Time) pinState {
	if len(v) != 12 {
		return pinState{}
	}
	s := pinState{count: binary.BigEndian.Uint32(v), last: time.Unix(0, int64(binary.BigEndian.Uint64(v[4:])))}
	if s.last.After(now.Add(futureSlack)) {
		return pinState{}
	}
	if !now.Before(s.last.Add(l.backoff(s.count)).Add(l.cfg.PINFailureWindow)) {
		return pinState{}
	}
	return s
}

func encodePIN(s pinState) []byte {
	b := binary.BigEndian.AppendUint32(make([]byte, 0, 12), s.count)
	return binary.BigEndian.AppendUint64(b, uint64(s.last.UnixNano()))
}

// wait returns how long s still blocks a try at now.
func (l *Limiter) wait(s pinState, now time.Time) time.Duration {
	if s.count == 0 {
		return 0
	}
	return max(s.last.Add(l.backoff(s.count)).Sub(now), 0)
}

// pinKey is one record a PIN call touches.
type pinKey struct {
	b *bolt.Bucket
	k []byte
}

// pinKeys returns the records for phone and mac, skipping empty ones.
func pinKeys(tx *bolt.Tx, phone, mac string) []pinKey {
	var out []pinKey
	if phone != "" {
		out = append(out, pinKey{tx.Bucket(bucketPINNumber), []byte(phone)})
	}
	if mac = deviceKey(mac); mac != "" {
		out = append(out, pinKey{tx.Bucket(bucketPINDevice), []byte(mac)})
	}
	return out
}

// PINWait returns how long the visitor must wait before another PIN try
// for phone from mac: the longer of the number's and the device's
// back-off, 0 if a try is allowed now.
func (l *Limiter) PINWait(phone, mac string) (time.Duration, error) {
	now := l.now()
	var wait time.Duration
	err := l.db.View(func(tx *bolt.Tx) error {
		for _, pk := range pinKeys(tx, phone, mac) {
			wait = max(wait, l.wait(l.loadPIN(pk.b.Get(pk.k), now), now))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("reading PIN back-off: %w", err)
	}
	return wait, nil
}

// RecordPINFailure counts a wrong PIN against both phone and mac (either
// may be empty).
func (l *Limiter) RecordPINFailure(phone, mac string) error {
	now := l.now()
	err := l.db.Update(func(tx *bolt.Tx) error {
		return l.recordFailure(tx, phone, mac, now)
	})
	if err != nil {
		return fmt.Errorf("recording PIN failure: %w", err)
	}
	return nil
}

func (l *Limiter) recordFailure(tx *bolt.Tx, phone, mac string, now time.Time) error {
	for _, pk := range pinKeys(tx, phone, mac) {
		s := l.loadPIN(pk.b.Get(pk.k), now)
		s.count++
		s.last = now
		if err := pk.b.Put(pk.k, encodePIN(s)); err != nil {
			return err
		}
	}
	return l.maybeSweep(tx, now)
}

// TryPIN is the race-free way to guard a PIN check: in one transaction it
// refuses if a back-off is running and otherwise counts this try as a
// failure up front. Call ResetPIN when the PIN turns out right. With
// PINWait followed by RecordPINFailure, a client firing many guesses in
// parallel would have them all checked before the first failure is
// recorded.
func (l *Limiter) TryPIN(phone, mac string) (Decision, error) {
	now := l.now()
	var d Decision
	err := l.db.Update(func(tx *bolt.Tx) error {
		var wait time.Duration
		for _, pk := range pinKeys(tx, phone, mac) {
			wait = max(wait, l.wait(l.loadPIN(pk.b.Get(pk.k), now), now))
		}
		if wait > 0 {
			d = Decision{Reason: PINBackoff, RetryAfter: wait}
			return nil
		}
		d = Decision{Allowed: true}
		return l.recordFailure(tx, phone, mac, now)
	})
	if err != nil {
		return Decision{}, fmt.Errorf("checking PIN back-off: %w", err)
	}
	return d, nil
}

// ResetPIN forgets the failure streaks of phone and mac after a correct
// PIN.
func (l *Limiter) ResetPIN(phone, mac string) error {
	err := l.db.Update(func(tx *bolt.Tx) error {
		for _, pk := range pinKeys(tx, phone, mac) {
			if err := pk.b.Delete(pk.k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("resetting PIN back-off: %w", err)
	}
	return nil
}

// Prune deletes every record that no longer affects a decision. Writing
// calls already do this every few minutes; the daemon may call it at
// start-up or from a maintenance timer.
func (l *Limiter) Prune() error {
	now := l.now()
	err := l.db.Update(func(tx *bolt.Tx) error { return l.sweep(tx, now) })
	if err != nil {
		return fmt.Errorf("pruning limits: %w", err)
	}
	return nil
}

func (l *Limiter) maybeSweep(tx *bolt.Tx, now time.Time) error {
	l.mu.Lock()
	due := now.Sub(l.lastSweep) >= sweepEvery || now.Before(l.lastSweep)
	if due {
		l.lastSweep = now
	}
	l.mu.Unlock()
	if !due {
		return nil
	}
	return l.sweep(tx, now)
}

func (l *Limiter) sweep(tx *bolt.Tx, now time.Time) error {
	numGone := func(v []byte) bool {
		return len(liveTimes(v, now, l.cfg.SMSPerNumberWindow, l.cfg.ResendGap)) == 0
	}
	devGone := func(v []byte) bool { return len(liveTimes(v, now, l.cfg.SMSPerDeviceWindow, 0)) == 0 }
	pinGone := func(v []byte) bool { return l.loadPIN(v, now).count == 0 }
	// Keep yesterday and tomorrow too: a clock stepped by NTP across
	// midnight must not lose the day's count.
	keepDays := map[string]bool{}
	for _, off := range []int{-1, 0, 1} {
		keepDays[now.In(l.cfg.Location).AddDate(0, 0, off).Format(time.DateOnly)] = true
	}
	dayGone := func(k []byte) bool { return !keepDays[string(k)] }

	for _, p := range []struct {
		name []byte
		gone func(k, v []byte) bool
	}{
		{bucketSMSNumber, func(_, v []byte) bool { return numGone(v) }},
		{bucketSMSDevice, func(_, v []byte) bool { return devGone(v) }},
		{bucketPINNumber, func(_, v []byte) bool { return pinGone(v) }},
		{bucketPINDevice, func(_, v []byte) bool { return pinGone(v) }},
		{bucketSMSDay, func(k, _ []byte) bool { return dayGone(k) }},
	} {
		b := tx.Bucket(p.name)
		var dead [][]byte
		if err := b.ForEach(func(k, v []byte) error {
			if p.gone(k, v) {
				dead = append(dead, slices.Clone(k))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range dead {
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("pruning %s: %w", p.name, err)
			}
		}
	}
	return nil
}

// liveTimes decodes stored send times and keeps, sorted, those that still
// matter at now: inside window, or inside gap (the resend gap outlives a
// shorter window). Times far in the future come from a wrong clock and are
// dropped.
func liveTimes(v []byte, now time.Time, window, gap time.Duration) []time.Time {
	keep := max(window, gap, 0)
	var out []time.Time
	for i := 0; i+8 <= len(v); i += 8 {
		t := time.Unix(0, int64(binary.BigEndian.Uint64(v[i:])))
		if t.After(now.Add(futureSlack)) || !t.Add(keep).After(now) {
			continue
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// inWindow returns the suffix of sorted times that lies inside window.
func inWindow(times []time.Time, now time.Time, window time.Duration) []time.Time {
	i := 0
	for i < len(times) && !times[i].Add(window).After(now) {
		i++
	}
	return times[i:]
}

func keepLast(times []time.Time, n int) []time.Time {
	if len(times) > n {
		return times[len(times)-n:]
	}
	return times
}

func encodeTimes(times []time.Time) []byte {
	b := make([]byte, 0, 8*len(times))
	for _, t := range times {
		b = binary.BigEndian.AppendUint64(b, uint64(t.UnixNano()))
	}
	return b
}

func getUint(v []byte) uint64 {
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}
