package radius

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	rad "layeh.com/radius"
)

// Session is what accounting needs to know about one visitor session.
type Session struct {
	// ID is sent as Acct-Session-Id; unique and stable across restarts
	// (the daemon stores it).
	ID string
	// Phone, in E.164, is sent as User-Name.
	Phone string
	// MAC is sent as Calling-Station-Id AA-BB-CC-DD-EE-FF.
	MAC net.HardwareAddr
	// IP is sent as Framed-IP-Address (Framed-IPv6-Address for IPv6).
	IP    netip.Addr
	Start time.Time
	// Counters from the visitor's point of view: In is what the visitor
	// sent (upload), which is what RFC 2866 calls Input at the NAS port.
	BytesIn, BytesOut, PacketsIn, PacketsOut uint64
	// Class is echoed from the Access-Accept.
	Class []byte
}

// TerminateCause is an RFC 2866 Acct-Terminate-Cause value.
type TerminateCause uint32

// Acct-Terminate-Cause values (RFC 2866 §5.10) a captive portal uses.
const (
	TerminateUserRequest    TerminateCause = 1
	TerminateLostCarrier    TerminateCause = 2
	TerminateLostService    TerminateCause = 3
	TerminateIdleTimeout    TerminateCause = 4
	TerminateSessionTimeout TerminateCause = 5
	TerminateAdminReset     TerminateCause = 6
	TerminateAdminReboot    TerminateCause = 7
	TerminatePortError      TerminateCause = 8
	TerminateNASError       TerminateCause = 9
	TerminateNASRequest     TerminateCause = 10
	TerminateNASReboot      TerminateCause = 11
)

// Acct-Status-Type values (RFC 2866 §5.1).
const (
	statusStart   = 1
	statusStop    = 2
	statusInterim = 3
	statusOn      = 7
	statusOff     = 8
)

// Bucket names. The package owns every bucket named radius_* and no other.
var (
	bucketQueue = []byte("radius_acct_queue")
	bucketMeta  = []byte("radius_acct_meta")
	keyDropped  = []byte("dropped")
	keyRestart  = []byte("restarting")
)

// recordVersion prefixes every queued record so the format can change.
const recordVersion = 1

// AccountingConfig configures Accounting.
type AccountingConfig struct {
	// Client talks to the accounting servers (port 1813).
	Client *Client
	NAS    NAS
	// DB holds the queue in buckets named radius_*; the caller opens and
	// closes it. It must not be opened with NoSync: the queue's promise
	// that a record survives a crash once enqueued rests on bbolt's fsync
	// at commit.
	DB *bbolt.DB
	// MaxQueue bounds the queue (default 10000 records, a day of interim
	// updates for a busy park). When full, the oldest Interim-Update is
	// dropped and counted (Dropped): a later interim or the Stop carries
	// the session's totals anyway, while a Start or Stop is the session's
	// record itself. Only a queue of nothing but those loses its oldest.
	MaxQueue int
	// RetryMin and RetryMax bound the sender's exponential backoff
	// between delivery attempts once the Client gave up (1s and 5m).
	RetryMin, RetryMax time.Duration
	Logger             *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Continuing says the caller restores sessions from an earlier run
	// (after a crash, a reboot, any stop): they go on, so no
	// Accounting-On is sent, since servers take it to mean this NAS has
	// no sessions and close every one still open for it.
	Continuing bool
}

// Accounting reports sessions to the RADIUS accounting servers (RFC 2866).
// Every record is committed to bbolt before the call that made it returns;
// one sender goroutine delivers records strictly in order, retrying with
// backoff, and removes a record only once a server acknowledged it. Reopening
// the same database resumes the queue.
type Accounting struct {
	cfg AccountingConfig
	log *slog.Logger

	// mu serialises queue writes with the length counter, so the bound
	// is exact without counting the bucket on every enqueue.
	mu       sync.Mutex
	length   atomic.Int64
	dropped  atomic.Uint64
	resumed  bool
	wake     chan struct{} // one slot: records waiting
	progress chan struct{} // one slot: a record was delivered
	cancel   context.CancelFunc
	done     chan struct{}

	closeOnce sync.Once
	closed    atomic.Bool
}

// NewAccounting opens the queue and starts the sender. It enqueues an
// Accounting-On, telling the server that no session of this NAS survived,
// unless the previous Close was a planned restart: then the sessions are
// still alive and the server must keep them open (see Resumed).
func NewAccounting(cfg AccountingConfig) (*Accounting, error) {
	if cfg.Client == nil || cfg.DB == nil {
		return nil, errors.New("radius accounting: Client and DB are required")
	}
	if _, err := cfg.NAS.attrs(); err != nil {
		return nil, fmt.Errorf("radius accounting: %w", err)
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = 10000
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = time.Second
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(5*time.Minute, cfg.RetryMin)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Accounting{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "radius-acct"),
		wake:     make(chan struct{}, 1),
		progress: make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	err := cfg.DB.Update(func(tx *bbolt.Tx) error {
		q, err := tx.CreateBucketIfNotExists(bucketQueue)
		if err != nil {
			return err
		}
		m, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		a.length.Store(int64(q.Stats().KeyN))
		if v := m.Get(keyDropped); len(v) == 8 {
			a.dropped.Store(binary.BigEndian.Uint64(v))
		}
		if m.Get(keyRestart) != nil {
			a.resumed = true
			return m.Delete(keyRestart)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("radius accounting: opening queue: %w", err)
	}
	if !a.resumed && !cfg.Continuing {
		if err := a.enqueueNAS(statusOn); err != nil {
			return nil, err
		}
	}
	a.log.Info("accounting started", "queued", a.QueueLen(), "resumed_after_restart", a.resumed, "sessions_continue", cfg.Continuing)
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go a.run(ctx)
	a.kick()
	return a, nil
}

// Resumed reports whether the previous Close was a planned restart, so no
// Accounting-On was sent and the caller's restored sessions continue.
func (a *Accounting) Resumed() bool { return a.resumed }

// QueueLen is the number of records not yet acknowledged by a server.
func (a *Accounting) QueueLen() int { return int(a.length.Load()) }

// oldestExpendable returns the key of the record to drop from a full
// queue: the oldest Interim-Update, else the oldest record. Walking the
// queue costs a scan of at most MaxQueue small records, and only when the
// server has been away long enough to fill it.
func oldestExpendable(q *bbolt.Bucket) []byte {
	c := q.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(v) > 9 && recordStatus(v[9:]) == statusInterim {
			return append([]byte(nil), k...)
		}
	}
	if k, _ := c.First(); k != nil {
		return append([]byte(nil), k...)
	}
	return nil
}

// recordStatus reads Acct-Status-Type from a queued record's attributes
// (0 when absent or malformed).
func recordStatus(attrs []byte) uint32 {
	for len(attrs) >= 2 {
		t, l := attrs[0], int(attrs[1])
		if l < 2 || l > len(attrs) {
			return 0
		}
		if rad.Type(t) == attrAcctStatusType && l == 6 {
			return binary.BigEndian.Uint32(attrs[2:6])
		}
		attrs = attrs[l:]
	}
	return 0
}

// Dropped is how many records were discarded because the queue was full,
// since the database was created.
func (a *Accounting) Dropped() uint64 { return a.dropped.Load() }

// Start records the start of a session.
func (a *Accounting) Start(s Session) error {
	return a.Enqueue(Record{Kind: RecordStart, Session: s})
}

// Interim records an interim update with the session's current counters.
func (a *Accounting) Interim(s Session) error {
	return a.Enqueue(Record{Kind: RecordInterim, Session: s})
}

// Stop records the end of a session with its final counters.
func (a *Accounting) Stop(s Session, cause TerminateCause) error {
	return a.Enqueue(Record{Kind: RecordStop, Session: s, Cause: cause})
}

// RecordKind says which Accounting-Request a Record becomes.
type RecordKind uint32

// Record kinds, valued as their Acct-Status-Type.
const (
	RecordStart   RecordKind = statusStart
	RecordInterim RecordKind = statusInterim
	RecordStop    RecordKind = statusStop
)

// Record is one session event to report, at the time it happened.
type Record struct {
	Kind    RecordKind
	Session Session
	// Cause is the Stop's Acct-Terminate-Cause (User-Request when 0).
	Cause TerminateCause
	// At is when the event happened (zero: now). It is sent as
	// Event-Timestamp, Acct-Delay-Time counts from it, and a Stop's
	// Acct-Session-Time runs from the session's start to it: an event
	// queued late (found in a store written while the daemon was down)
	// still tells the server when it happened.
	At time.Time
}

// Enqueue commits r to the queue.
func (a *Accounting) Enqueue(r Record) error {
	attrs, at, err := a.recordAttrs(r)
	if err != nil {
		return err
	}
	return a.enqueue(attrs, at)
}

// recordAttrs builds r's attributes and the time it is stamped with.
func (a *Accounting) recordAttrs(r Record) (rad.Attributes, time.Time, error) {
	switch r.Kind {
	case RecordStart, RecordInterim, RecordStop:
	default:
		return nil, time.Time{}, fmt.Errorf("radius accounting for session %q: unknown record kind %d", r.Session.ID, r.Kind)
	}
	at := r.At
	if at.IsZero() {
		at = a.cfg.Now()
	}
	attrs, err := a.sessionAttrs(r.Session, uint32(r.Kind), r.Cause, at)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("radius accounting for session %q: %w", r.Session.ID, err)
	}
	attrs.Add(attrEventTimestamp, unixSeconds(at))
	return attrs, at, nil
}

// Transfer moves records into the queue in one bbolt transaction with
// the caller's own bookkeeping: fill runs inside the transaction, may
// change the caller's buckets in tx (say, delete the events it read
// from an outbox) and returns the records to queue. Both commit
// together or not at all, so a record is neither lost nor queued twice
// across a crash. It returns how many records were queued.
func (a *Accounting) Transfer(fill func(tx *bbolt.Tx) ([]Record, error)) (int, error) {
	if a.closed.Load() {
		return 0, errors.New("radius accounting: closed")
	}
	var n int
	var delta int64
	var droppedNow uint64
	// The queue lock before bbolt's writer lock, as in enqueue and ack.
	a.mu.Lock()
	defer a.mu.Unlock()
	err := a.cfg.DB.Update(func(tx *bbolt.Tx) error {
		recs, err := fill(tx)
		if err != nil {
			return err
		}
		delta, droppedNow, n = 0, 0, 0
		for _, r := range recs {
			attrs, at, err := a.recordAttrs(r)
			if err != nil {
				// One record we cannot encode must not hold the
				// others back for ever.
				a.log.Error("dropping an accounting record that cannot be encoded", "session", r.Session.ID, "err", err)
				continue
			}
			d, dropped, err := a.putLocked(tx, attrs, at, delta)
			if err != nil {
				return err
			}
			delta += d
			droppedNow += dropped
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("radius accounting: transferring records: %w", err)
	}
	a.committed(delta, droppedNow)
	return n, nil
}

// On records an Accounting-On: this NAS has (re)started and has no
// sessions. NewAccounting sends one by itself.
func (a *Accounting) On() error { return a.enqueueNAS(statusOn) }

// Off records an Accounting-Off: this NAS is going away and all its sessions
// end. Close sends one by itself unless restarting.
func (a *Accounting) Off() error { return a.enqueueNAS(statusOff) }

// CloseOptions tunes Close.
type CloseOptions struct {
	// Restarting marks a planned restart: no Accounting-Off is sent and
	// the next NewAccounting on the same database sends no
	// Accounting-On, so the server keeps the sessions open.
	Restarting bool
}

// Close enqueues Accounting-Off (unless restarting), waits until the queue
// is delivered or ctx ends (at most 10 s when ctx has no deadline), then
// stops the sender. Undelivered records stay in the database for the next
// start. The database is left open.
func (a *Accounting) Close(ctx context.Context, opts CloseOptions) error {
	var err error
	a.closeOnce.Do(func() {
		if opts.Restarting {
			err = a.cfg.DB.Update(func(tx *bbolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(keyRestart, []byte{1})
			})
			if err != nil {
				err = fmt.Errorf("radius accounting: marking restart: %w", err)
			}
		} else {
			err = a.Off()
		}
		a.closed.Store(true)
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
		}
		for a.QueueLen() > 0 && ctx.Err() == nil {
			select {
			case <-a.progress:
			case <-ctx.Done():
			}
		}
		if n := a.QueueLen(); n > 0 {
			a.log.Warn("accounting stopped with records queued", "queued", n)
		}
		a.cancel()
		<-a.done
	})
	return err
}

// sessionAttrs builds the attributes common to Start, Interim and Stop.
func (a *Accounting) sessionAttrs(s Session, status uint32, cause TerminateCause, now time.Time) (rad.Attributes, error) {
	var attrs rad.Attributes
	attrs.Add(attrAcctStatusType, rad.NewInteger(status))
	if err := addText(&attrs, attrAcctSessionID, s.ID); err != nil {
		return nil, fmt.Errorf("session ID: %w", err)
	}
	if err := addText(&attrs, attrUserName, s.Phone); err != nil {
		return nil, fmt.Errorf("phone as User-Name: %w", err)
	}
	if len(s.MAC) > 0 {
		attrs.Add(attrCallingStationID, rad.Attribute(formatMAC(s.MAC)))
	}
	addFramedIP(&attrs, s.IP)
	attrs.Add(attrNASPortType, rad.NewInteger(nasPortTypeWireless))
	if len(s.Class) > 0 {
		if len(s.Class) > 253 {
			return nil, fmt.Errorf("class of %d octets, want at most 253", len(s.Class))
		}
		attrs.Add(attrClass, append(rad.Attribute(nil), s.Class...))
	}
	if status == statusInterim || status == statusStop {
		// Octets as 32 low bits plus Gigawords (RFC 2869 §5.1); packet
		// counters are 32-bit and wrap, as on any NAS.
		attrs.Add(attrAcctInputOctets, rad.NewInteger(uint32(s.BytesIn)))
		attrs.Add(attrAcctOutputOctets, rad.NewInteger(uint32(s.BytesOut)))
		attrs.Add(attrAcctInputGigawords, rad.NewInteger(uint32(s.BytesIn>>32)))
		attrs.Add(attrAcctOutputGigawords, rad.NewInteger(uint32(s.BytesOut>>32)))
		attrs.Add(attrAcctInputPackets, rad.NewInteger(uint32(s.PacketsIn)))
		attrs.Add(attrAcctOutputPackets, rad.NewInteger(uint32(s.PacketsOut)))
		secs := now.Sub(s.Start) / time.Second
		if s.Start.IsZero() || secs < 0 {
			secs = 0
		}
		attrs.Add(attrAcctSessionTime, rad.NewInteger(uint32(min(int64(secs), math.MaxUint32))))
	}
	if status == statusStop {
		if cause == 0 {
			cause = TerminateUserRequest
		}
		attrs.Add(attrAcctTerminateCause, rad.NewInteger(uint32(cause)))
	}
	return attrs, nil
}

// enqueueNAS queues Accounting-On or -Off. Their Acct-Session-Id is made
// unique from the time, as RFC 2866 wants one in every request.
func (a *Accounting) enqueueNAS(status uint32) error {
	now := a.cfg.Now()
	var attrs rad.Attributes
	attrs.Add(attrAcctStatusType, rad.NewInteger(status))
	attrs.Add(attrAcctSessionID, rad.Attribute(fmt.Sprintf("nas-%x", now.UnixNano())))
	attrs.Add(attrEventTimestamp, unixSeconds(now))
	return a.enqueue(attrs, now)
}

// enqueue commits one record (bbolt fsyncs at commit) and wakes the sender.
// attrs carry their Event-Timestamp; NAS attributes and Acct-Delay-Time
// (counted from at) are added at each send.
func (a *Accounting) enqueue(attrs rad.Attributes, at time.Time) error {
	if a.closed.Load() && !isOnOff(attrs) {
		return errors.New("radius accounting: closed")
	}
	var delta int64
	var droppedNow uint64
	a.mu.Lock()
	defer a.mu.Unlock()
	err := a.cfg.DB.Update(func(tx *bbolt.Tx) error {
		var err error
		delta, droppedNow, err = a.putLocked(tx, attrs, at, 0)
		return err
	})
	if err != nil {
		return fmt.Errorf("radius accounting: enqueueing record: %w", err)
	}
	a.committed(delta, droppedNow)
	return nil
}

// putLocked writes one record in tx, first dropping what a full queue
// gives up. pending is how much earlier records of the same transaction
// already changed the queue's length. It returns the length change and
// how many records were dropped; the caller holds a.mu and, once tx
// committed, passes both to committed.
func (a *Accounting) putLocked(tx *bbolt.Tx, attrs rad.Attributes, at time.Time, pending int64) (delta int64, droppedNow uint64, err error) {
	size, err := rad.AttributesEncodedLen(attrs)
	if err != nil {
		return 0, 0, fmt.Errorf("encoding record: %w", err)
	}
	p := &rad.Packet{Attributes: attrs}
	wire, err := p.MarshalBinary()
	if err != nil {
		return 0, 0, fmt.Errorf("encoding record: %w", err)
	}
	rec := make([]byte, 9, 9+size)
	rec[0] = recordVersion
	binary.BigEndian.PutUint64(rec[1:9], uint64(at.UnixNano()))
	rec = append(rec, wire[20:]...)

	q := tx.Bucket(bucketQueue)
	for n := a.length.Load() + pending; n >= int64(a.cfg.MaxQueue); n-- {
		k := oldestExpendable(q)
		if k == nil {
			break
		}
		if err := q.Delete(k); err != nil {
			return 0, 0, err
		}
		delta--
		droppedNow++
	}
	if droppedNow > 0 {
		m := tx.Bucket(bucketMeta)
		var total uint64
		if v := m.Get(keyDropped); len(v) == 8 {
			total = binary.BigEndian.Uint64(v)
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], total+droppedNow)
		if err := m.Put(keyDropped, b[:]); err != nil {
			return 0, 0, err
		}
	}
	seq, err := q.NextSequence()
	if err != nil {
		return 0, 0, err
	}
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	delta++
	return delta, droppedNow, q.Put(k[:], rec)
}

// committed accounts for a committed write and wakes the sender.
func (a *Accounting) committed(delta int64, droppedNow uint64) {
	a.length.Add(delta)
	if droppedNow > 0 {
		a.dropped.Add(droppedNow)
		a.log.Warn("accounting queue full, dropped oldest records", "dropped", droppedNow, "max", a.cfg.MaxQueue)
	}
	a.kick()
}

func isOnOff(attrs rad.Attributes) bool {
	v, _ := rad.Integer(attrs.Get(attrAcctStatusType))
	return v == statusOn || v == statusOff
}

func (a *Accounting) kick() {
	select {
	case a.wake <- struct{}{}:
	default: // the sender already has a wake-up pending
	}
}

// head returns the oldest queued record.
func (a *Accounting) head() (key []byte, rec []byte, err error) {
	err = a.cfg.DB.View(func(tx *bbolt.Tx) error {
		k, v := tx.Bucket(bucketQueue).Cursor().First()
		if k != nil {
			key = append([]byte(nil), k...)
			rec = append([]byte(nil), v...)
		}
		return nil
	})
	return key, rec, err
}

// ack removes a delivered record; it may already be gone if the queue
// overflowed meanwhile.
func (a *Accounting) ack(key []byte) error {
	var removed bool
	a.mu.Lock()
	defer a.mu.Unlock()
	err := a.cfg.DB.Update(func(tx *bbolt.Tx) error {
		q := tx.Bucket(bucketQueue)
		if q.Get(key) == nil {
			return nil
		}
		removed = true
		return q.Delete(key)
	})
	if err != nil {
		return fmt.Errorf("radius accounting: removing delivered record: %w", err)
	}
	if removed {
		a.length.Add(-1)
	}
	select {
	case a.progress <- struct{}{}:
	default:
	}
	return nil
}

// run is the sender: oldest record first, the next one only after it was
// acknowledged, so the server sees Start, Interim and Stop in order.
func (a *Accounting) run(ctx context.Context) {
	defer close(a.done)
	backoff := a.cfg.RetryMin
	wait := func(d time.Duration) bool {
		t := time.NewTimer(jitter(d))
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for ctx.Err() == nil {
		key, rec, err := a.head()
		if err != nil {
			a.log.Error("reading accounting queue", "err", err)
			if !wait(backoff) {
				return
			}
			continue
		}
		if key == nil {
			select {
			case <-a.wake:
			case <-ctx.Done():
				return
			}
			continue
		}
		if err := a.send(ctx, rec); err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Warn("accounting delivery failed, will retry", "retry_in", backoff, "queued", a.QueueLen(), "err", err)
			if !wait(backoff) {
				return
			}
			backoff = min(2*backoff, a.cfg.RetryMax)
			continue
		}
		backoff = a.cfg.RetryMin
		if err := a.ack(key); err != nil {
			a.log.Error("acknowledging accounting record", "err", err)
		}
	}
}

// decodeRecord splits a queued record into its enqueue time and attributes.
func decodeRecord(rec []byte) (time.Time, rad.Attributes, error) {
	if len(rec) < 9 || rec[0] != recordVersion {
		return time.Time{}, nil, fmt.Errorf("%w: queued accounting record", ErrMalformed)
	}
	at := time.Unix(0, int64(binary.BigEndian.Uint64(rec[1:9])))
	attrs, err := rad.ParseAttributes(rec[9:])
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("%w: queued accounting record: %w", ErrMalformed, err)
	}
	return at, attrs, nil
}

// send delivers one record. Acct-Delay-Time is the time since it was
// enqueued; as it changes between sends, each send is a new packet with a
// new Identifier (RFC 5080 §2.2.1), while the Client's retransmissions within
// one send stay identical.
func (a *Accounting) send(ctx context.Context, rec []byte) error {
	at, attrs, err := decodeRecord(rec)
	if err != nil {
		// A record we cannot read would block the queue for ever.
		a.log.Error("discarding unreadable accounting record", "err", err)
		return nil
	}
	nasAttrs, err := a.cfg.NAS.attrs()
	if err != nil {
		return err
	}
	delay := a.cfg.Now().Sub(at) / time.Second
	if delay < 0 {
		delay = 0
	}
	build := func(secret []byte) (*rad.Packet, error) {
		p := rad.New(rad.CodeAccountingRequest, secret)
		p.Attributes = append(p.Attributes, attrs...)
		p.Attributes = append(p.Attributes, nasAttrs...)
		p.Add(attrAcctDelayTime, rad.NewInteger(uint32(min(int64(delay), math.MaxUint32))))
		return p, nil
	}
	if _, err := a.cfg.Client.exchange(ctx, build); err != nil {
		return fmt.Errorf("sending accounting record: %w", err)
	}
	return nil
}
