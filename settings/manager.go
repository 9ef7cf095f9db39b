package settings

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/parkwifi/parkportal/internal/boltx"
	"github.com/parkwifi/parkportal/sms"
)

// Buckets this package owns in the daemon's bbolt file.
var (
	bucketSite  = []byte("settings_site")
	bucketAudit = []byte("settings_audit")
	keyCurrent  = []byte("current")
)

// maxAudit bounds the audit log; the oldest records go first. Ten
// thousand changes is years of a park's history and a few MB of flash.
const maxAudit = 10000

// AuditRecord is one changed field: who changed it, when, and its value
// before and after, as compact JSON.
type AuditRecord struct {
	Seq   uint64    `json:"seq"`
	Time  time.Time `json:"time"`
	Actor string    `json:"actor"`
	Field string    `json:"field"`
	Old   string    `json:"old"`
	New   string    `json:"new"`
}

// Manager holds the current site policy, persists changes and tells
// listeners about them.
type Manager struct {
	db  *bolt.DB
	now func() time.Time

	mu        sync.Mutex // serialises updates and listener calls
	cur       Site
	listeners []func(Site)
	checks    []func(Site) FieldErrors
	report    []FileOption
	// radiusFile: the RADIUS policy is the config file's (see
	// RADIUSFromFile).
	radiusFile bool
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// Open loads the site policy from db and reconciles it with file, what
// the config file says (FromFile): on the first start file is the
// policy; after that each option the file carries applies when it
// changed in the file since the previous start and the stored value
// otherwise, the ID and the RADIUS policy are always the file's, and
// FileReport says what differed and what applied (see file.go). Every
// process that opens the store (the daemon, each CLI command) opens the
// policy this one way, so whichever runs first seeds the same policy.
func Open(db *bolt.DB, file Site, now func() time.Time) (*Manager, error) {
	if now == nil {
		now = time.Now
	}
	m := &Manager{db: db, now: now}
	// Committed only if something changed (the first start, an edited
	// config file, an upgrade): every CLI call opens the policy, and a
	// read must not write the router's flash.
	err := boltx.UpdateIfChanged(db, func(tx *bolt.Tx) (bool, error) {
		created, err := boltx.CreateBuckets(tx, bucketSite, bucketAudit)
		if err != nil {
			return false, err
		}
		b := tx.Bucket(bucketSite)
		v := bytes.Clone(b.Get(keyCurrent))
		if v == nil {
			m.cur = file.Clone()
			if _, _, _, err := reconcileFile(tx, m.cur, file); err != nil {
				return false, err
			}
			return true, m.putCurrent(tx)
		}
		seen := bytes.Clone(b.Get(keyFileSeen))
		var stored Site
		if err := json.Unmarshal(v, &stored); err != nil {
			return false, fmt.Errorf("decoding stored site policy: %w", err)
		}
		// A site still on an earlier default PIN text never chose
		// it: it gets the current one, worded with plurals.
		for lang, t := range stored.SMSTemplates {
			stored.SMSTemplates[lang] = sms.Upgrade(lang, t)
		}
		stamp := now().UTC()
		recs := migrateStored(&stored)
		if err := writeAudit(tx, "parkportal-upgrade", stamp, recs); err != nil {
			return false, err
		}
		next, report, changes, err := reconcileFile(tx, stored, file)
		if err != nil {
			return false, err
		}
		for i, o := range report {
			report[i].LastChange = lastChange(tx, o.Field)
		}
		m.cur, m.report = next, report
		if err := writeAudit(tx, FileActor, stamp, changes); err != nil {
			return false, err
		}
		if err := m.putCurrent(tx); err != nil {
			return false, err
		}
		changed := created || len(recs) > 0 || len(changes) > 0 ||
			!bytes.Equal(seen, b.Get(keyFileSeen)) || !bytes.Equal(v, b.Get(keyCurrent))
		return changed, nil
	})
	if err != nil {
		return nil, fmt.Errorf("opening site settings: %w", err)
	}
	return m, nil
}

func (m *Manager) putCurrent(tx *bolt.Tx) error {
	enc, err := json.Marshal(m.cur)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketSite).Put(keyCurrent, enc)
}

// lastChange finds the audit log's latest record of field (a bounded
// walk back: the log holds at most maxAudit records).
func lastChange(tx *bolt.Tx, field string) AuditRecord {
	c := tx.Bucket(bucketAudit).Cursor()
	for k, v := c.Last(); k != nil; k, v = c.Prev() {
		var r AuditRecord
		if json.Unmarshal(v, &r) == nil && r.Field == field {
			return r
		}
	}
	return AuditRecord{}
}

// FileReport lists the site options whose config-file and stored values
// differed when Open reconciled them, and which one applies; the daemon
// logs it at every start.
func (m *Manager) FileReport() []FileOption {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.report)
}

// RADIUSFromFile makes the RADIUS policy (radius.enabled, servers,
// fail_policy) the config file's alone, as the daemon and the CLI use
// it: Update refuses to change it (with a message saying where it is
// set) and Import keeps this gateway's. Open copied it from the file.
func (m *Manager) RADIUSFromFile() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.radiusFile = true
}

// RADIUSFile reports whether the RADIUS policy is the config file's
// (RADIUSFromFile), so that forms show it without offering to edit it.
func (m *Manager) RADIUSFile() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.radiusFile
}

// Get returns a copy of the current policy.
func (m *Manager) Get() Site {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cur.Clone()
}

// OnChange registers fn to be called with the new policy after every
// successful update, in the order registered. The daemon uses it to apply
// changes live (session policy, walled garden, SMS templates).
func (m *Manager) OnChange(fn func(Site)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.listeners = append(m.listeners, fn)
}

// AddCheck adds a check that Update (and Check) run after Validate, for
// what a policy needs beyond itself: the gateway's config file, which
// this package does not read. A policy the daemon could store but not
// apply must be refused before it is saved, audited and shown as in
// force. fn returns nil or an error per field, like Validate.
func (m *Manager) AddCheck(fn func(Site) FieldErrors) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.checks = append(m.checks, fn)
}

// Check returns what Update would refuse in next: Validate's errors and
// the added checks', or nil.
func (m *Manager) Check(next Site) FieldErrors {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.checkLocked(next)
}

func (m *Manager) checkLocked(next Site) FieldErrors {
	fe := next.Validate()
	if m.radiusFile {
		for k, e := range m.radiusChangesLocked(next) {
			if fe == nil {
				fe = FieldErrors{}
			}
			fe[k] = e
		}
	}
	for _, check := range m.checks {
		for k, e := range check(next) {
			if fe == nil {
				fe = FieldErrors{}
			}
			if !fe.has(k) {
				fe[k] = e
			}
		}
	}
	return fe
}

// radiusChangesLocked refuses every RADIUS field next changes.
func (m *Manager) radiusChangesLocked(next Site) FieldErrors {
	var fe FieldErrors
	a, b := m.cur.RADIUS, next.RADIUS
	for field, changed := range map[string]bool{
		"radius.enabled":     a.Enabled != b.Enabled,
		"radius.servers":     !slices.Equal(a.Servers, b.Servers),
		"radius.fail_policy": a.FailPolicy != b.FailPolicy,
	} {
		if changed {
			if fe == nil {
				fe = FieldErrors{}
			}
			fe[field] = fieldError("radius_in_config")
		}
	}
	return fe
}

// RequireRADIUSSecret returns a check for AddCheck: when the config file
// names no RADIUS shared secret (hasSecret false), RADIUS authorisation
// cannot work, so turning it on is refused on the radius.enabled field.
func RequireRADIUSSecret(hasSecret bool) func(Site) FieldErrors {
	return func(s Site) FieldErrors {
		if s.RADIUS.Enabled && !hasSecret {
			return FieldErrors{"radius.enabled": fieldError("radius_no_secret")}
		}
		return nil
	}
}

// Update validates next (Validate and the added checks), stores it,
// records every changed field in the audit log under actor, and calls
// the listeners. A validation failure returns FieldErrors and changes
// nothing. The site ID cannot change.
func (m *Manager) Update(actor string, next Site) (Site, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next = next.Clone()
	next.ID = m.cur.ID
	if fe := m.checkLocked(next); fe != nil {
		return m.cur.Clone(), fe
	}
	changes, err := diff(m.cur, next)
	if err != nil {
		return m.cur.Clone(), err
	}
	if len(changes) == 0 {
		return m.cur.Clone(), nil
	}
	enc, err := json.Marshal(next)
	if err != nil {
		return m.cur.Clone(), fmt.Errorf("encoding site policy: %w", err)
	}
	now := m.now().UTC()
	err = m.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketSite).Put(keyCurrent, enc); err != nil {
			return err
		}
		return writeAudit(tx, actor, now, changes)
	})
	if err != nil {
		return m.cur.Clone(), fmt.Errorf("storing site policy: %w", err)
	}
	m.cur = next
	for _, fn := range m.listeners {
		fn(next.Clone())
	}
	return next.Clone(), nil
}

func trimAudit(b *bolt.Bucket) error {
	extra := b.Stats().KeyN - maxAudit
	c := b.Cursor()
	for k, _ := c.First(); k != nil && extra > 0; k, _ = c.First() {
		if err := b.Delete(k); err != nil {
			return err
		}
		extra--
	}
	return nil
}

// diff compares a and b field by field (one level into radius and
// sms_templates), returning a record per changed field.
func diff(a, b Site) ([]AuditRecord, error) {
	fa, err := flatten(a)
	if err != nil {
		return nil, err
	}
	fb, err := flatten(b)
	if err != nil {
		return nil, err
	}
	keys := map[string]bool{}
	for k := range fa {
		keys[k] = true
	}
	for k := range fb {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	var out []AuditRecord
	for _, k := range sorted {
		if !bytes.Equal(fa[k], fb[k]) {
			out = append(out, AuditRecord{Field: k, Old: string(fa[k]), New: string(fb[k])})
		}
	}
	return out, nil
}

func flatten(s Site) (map[string]json.RawMessage, error) {
	enc, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(enc, &top); err != nil {
		return nil, err
	}
	out := map[string]json.RawMessage{}
	for k, v := range top {
		if k == "radius" || k == "sms_templates" {
			var sub map[string]json.RawMessage
			if json.Unmarshal(v, &sub) == nil {
				for sk, sv := range sub {
					out[k+"."+sk] = sv
				}
				continue
			}
		}
		out[k] = v
	}
	return out, nil
}

// Audit returns up to limit audit records, newest first, older than
// before (0 means from the newest).
func (m *Manager) Audit(limit int, before uint64) ([]AuditRecord, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	var out []AuditRecord
	err := m.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		var k, v []byte
		if before == 0 {
			k, v = c.Last()
		} else {
			c.Seek(binary.BigEndian.AppendUint64(nil, before))
			k, v = c.Prev()
		}
		for ; k != nil && len(out) < limit; k, v = c.Prev() {
			var r AuditRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decoding audit record %x: %w", k, err)
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// ErrUnknownField is wrapped by DecodeJSON for a field Site does not have,
// so a typo in a profile or an API call is an error, not a silent no-op.
var ErrUnknownField = errors.New("unknown field")

// maxJSON bounds a settings document: terms texts are the bulk of it.
const maxJSON = 256 << 10

// DecodeJSON reads a complete Site from JSON strictly: unknown fields,
// trailing data and oversized documents are errors. It does not validate.
func DecodeJSON(b []byte) (Site, error) {
	var s Site
	if len(b) > maxJSON {
		return s, fmt.Errorf("settings document larger than %d bytes", maxJSON)
	}
	if err := checkKeys(b); err != nil {
		return Site{}, fmt.Errorf("decoding site settings: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Site{}, fmt.Errorf("decoding site settings: %w", err)
	}
	if dec.More() {
		return Site{}, errors.New("decoding site settings: trailing data after the object")
	}
	return s, nil
}

// checkKeys refuses field names that are not spelled exactly as
// documented. encoding/json matches names case-insensitively, which would
// let "Rate_Down" through here yet make Patch and the audit log disagree.
func checkKeys(b []byte) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return err
	}
	known, _ := json.Marshal(Site{})
	var fields map[string]json.RawMessage
	json.Unmarshal(known, &fields)
	for k, v := range top {
		if _, ok := fields[k]; !ok {
			return fmt.Errorf("%w %q", ErrUnknownField, k)
		}
		if k == "radius" {
			var sub map[string]json.RawMessage
			if json.Unmarshal(v, &sub) == nil {
				for sk := range sub {
					if sk != "enabled" && sk != "servers" && sk != "fail_policy" {
						return fmt.Errorf("%w %q", ErrUnknownField, "radius."+sk)
					}
				}
			}
		}
	}
	return nil
}

// Patch applies a partial JSON object (only the fields to change) to base
// and returns the result, not yet validated. Nested objects (radius,
// sms_templates) are merged one level deep.
func Patch(base Site, patch []byte) (Site, error) {
	if len(patch) > maxJSON {
		return base, fmt.Errorf("settings patch larger than %d bytes", maxJSON)
	}
	var p map[string]json.RawMessage
	if err := json.Unmarshal(patch, &p); err != nil {
		return base, fmt.Errorf("decoding settings patch: %w", err)
	}
	enc, err := json.Marshal(base)
	if err != nil {
		return base, err
	}
	var cur map[string]json.RawMessage
	if err := json.Unmarshal(enc, &cur); err != nil {
		return base, err
	}
	for k, v := range p {
		if _, ok := cur[k]; !ok {
			return base, fmt.Errorf("decoding settings patch: %w %q", ErrUnknownField, k)
		}
		if k == "radius" || k == "sms_templates" {
			var sub, old map[string]json.RawMessage
			if json.Unmarshal(v, &sub) == nil && json.Unmarshal(cur[k], &old) == nil && old != nil {
				for sk, sv := range sub {
					old[sk] = sv
				}
				if v, err = json.Marshal(old); err != nil {
					return base, err
				}
			}
		}
		cur[k] = v
	}
	merged, err := json.Marshal(cur)
	if err != nil {
		return base, err
	}
	return DecodeJSON(merged)
}

// Profile is the file `parkportal site export` writes and `import`
// reads: a site's policy without its ID, so it can be applied to another
// gateway.
type Profile struct {
	Format   string    `json:"format"`
	Version  int       `json:"version"`
	Exported time.Time `json:"exported"`
	From     string    `json:"from_site"`
	Site     Site      `json:"site"`
}

const profileFormat = "parkportal-site-profile"

// Export writes the current policy as an indented profile.
func (m *Manager) Export(w io.Writer) error {
	s := m.Get()
	p := Profile{Format: profileFormat, Version: 1, Exported: m.now().UTC(), From: s.ID, Site: s}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(p); err != nil {
		return fmt.Errorf("writing site profile: %w", err)
	}
	return nil
}

// ReadProfile decodes a profile strictly.
func ReadProfile(r io.Reader) (Profile, error) {
	var p Profile
	b, err := io.ReadAll(io.LimitReader(r, maxJSON+1))
	if err != nil {
		return p, fmt.Errorf("reading site profile: %w", err)
	}
	var raw struct {
		Format   string          `json:"format"`
		Version  int             `json:"version"`
		Exported time.Time       `json:"exported"`
		From     string          `json:"from_site"`
		Site     json.RawMessage `json:"site"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return p, fmt.Errorf("reading site profile: %w", err)
	}
	if raw.Format != profileFormat || raw.Version != 1 {
		return p, fmt.Errorf("reading site profile: not a version 1 %s (format %q, version %d)", profileFormat, raw.Format, raw.Version)
	}
	s, err := DecodeJSON(raw.Site)
	if err != nil {
		return p, fmt.Errorf("reading site profile: %w", err)
	}
	return Profile{Format: raw.Format, Version: raw.Version, Exported: raw.Exported, From: raw.From, Site: s}, nil
}

// Import applies a profile as actor: everything but the site ID, which
// stays this gateway's. keepNames also keeps this park's names.
func (m *Manager) Import(actor string, r io.Reader, keepNames bool) (Site, error) {
	p, err := ReadProfile(r)
	if err != nil {
		return m.Get(), err
	}
	cur := m.Get()
	if keepNames {
		p.Site.NameAR, p.Site.NameEN = cur.NameAR, cur.NameEN
	}
	m.mu.Lock()
	radiusFile := m.radiusFile
	m.mu.Unlock()
	if radiusFile {
		// Another gateway's RADIUS servers are its infrastructure, not
		// this one's: this gateway's config file keeps deciding.
		p.Site.RADIUS = cur.RADIUS
	}
	return m.Update(actor, p.Site)
}

// Record appends one audit record that is not a site field, such as an
// account change, so the audit log is the one place to look.
func (m *Manager) Record(actor, field, old, new string) error {
	rec := AuditRecord{Time: m.now().UTC(), Actor: actor, Field: field, Old: old, New: new}
	err := m.db.Update(func(tx *bolt.Tx) error {
		ab := tx.Bucket(bucketAudit)
		seq, err := ab.NextSequence()
		if err != nil {
			return err
		}
		rec.Seq = seq
		enc, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		if err := ab.Put(seqKey(seq), enc); err != nil {
			return err
		}
		return trimAudit(ab)
	})
	if err != nil {
		return fmt.Errorf("recording audit %s: %w", field, err)
	}
	return nil
}
