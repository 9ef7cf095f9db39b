package settings

// Who owns each option: the config file, the store, or both in turn.
//
//   - Infrastructure is the file's, always: everything outside the site
//     section, and the RADIUS policy (radius.authorization, auth_server,
//     fail_policy), which Open copies from the file at every start and
//     which Update refuses to change once the daemon called
//     RADIUSFromFile. The site ID is the file's too.
//   - Site policy the file carries (the site section) is the latest
//     writer's: the file's value applies when it changed in the file since
//     the previous start (a `uci commit`), otherwise the store's (the
//     console, the API or `parkportal site set` may have changed it since).
//     Every start reports each option where the two differ and which one
//     applies (FileReport), so an edit of the file is never silently
//     ignored.
//   - Site policy the file does not carry (terms texts, SMS templates)
//     is the store's.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/parkwifi/parkportal/config"
)

// FileActor is the audit log's actor for changes the config file made.
const FileActor = "config-file"

// keyFileSeen holds, per file-carried field, the file's value as of the
// latest start (JSON), to tell a file edited since from one that is not.
var keyFileSeen = []byte("file_seen")

// fileField is one site option the config file carries.
type fileField struct {
	field  string // settings' JSON name
	option string // the file's section.option
	ptr    func(*Site) any
}

// fileFields lists them, in the order of the site section's
// documentation.
var fileFields = []fileField{
	{"name_ar", "site.name_ar", func(s *Site) any { return &s.NameAR }},
	{"name_en", "site.name_en", func(s *Site) any { return &s.NameEN }},
	{"session_timeout", "site.session_timeout", func(s *Site) any { return &s.SessionTimeout }},
	{"idle_timeout", "site.idle_timeout", func(s *Site) any { return &s.IdleTimeout }},
	{"pin_ttl", "site.pin_ttl", func(s *Site) any { return &s.PINTTL }},
	{"pin_max_tries", "site.pin_max_tries", func(s *Site) any { return &s.PINMaxTries }},
	{"rate_down", "site.rate_down", func(s *Site) any { return &s.RateDown }},
	{"rate_up", "site.rate_up", func(s *Site) any { return &s.RateUp }},
	{"uplink_down", "site.uplink_down", func(s *Site) any { return &s.UplinkDown }},
	{"uplink_up", "site.uplink_up", func(s *Site) any { return &s.UplinkUp }},
	{"phone_region", "site.phone_region", func(s *Site) any { return &s.PhoneRegion }},
	{"allowed_prefixes", "site.allowed_prefix", func(s *Site) any { return &s.AllowedPrefixes }},
	{"sms_per_number_hour", "site.sms_per_number", func(s *Site) any { return &s.SMSPerNumberHour }},
	{"sms_per_device_hour", "site.sms_per_device", func(s *Site) any { return &s.SMSPerDeviceHour }},
	{"sms_daily_budget", "site.sms_daily_budget", func(s *Site) any { return &s.SMSDailyBudget }},
	{"walled_garden", "site.walled_garden", func(s *Site) any { return &s.WalledGarden }},
	{"privacy_url", "site.privacy_url", func(s *Site) any { return &s.PrivacyURL }},
	{"venue_url", "site.venue_url", func(s *Site) any { return &s.VenueURL }},
	{"require_terms", "site.require_terms", func(s *Site) any { return &s.RequireTerms }},
	{"terms_url", "site.terms_url", func(s *Site) any { return &s.TermsURL }},
}

// FileOptionOf names the config file's option for a settings field
// ("rate_down" → "site.rate_down", "radius.servers" →
// "radius.auth_server"), for messages about the file.
func FileOptionOf(field string) string {
	for _, f := range fileFields {
		if f.field == field {
			return f.option
		}
	}
	switch field {
	case "radius.enabled":
		return "radius.authorization"
	case "radius.servers":
		return "radius.auth_server"
	case "radius.fail_policy":
		return "radius.fail_policy"
	}
	return "site." + field
}

func (f fileField) value(s *Site) json.RawMessage {
	b, _ := json.Marshal(f.ptr(s))
	return b
}

func (f fileField) copy(dst, src *Site) {
	reflect.ValueOf(f.ptr(dst)).Elem().Set(reflect.ValueOf(f.ptr(src)).Elem())
}

// FileOutcome says which value of a site option applies after a start.
type FileOutcome string

const (
	// FileApplied: the option changed in the file since the previous
	// start, and the file's value now applies.
	FileApplied FileOutcome = "applied"
	// FileOverridden: the option did not change in the file, and the
	// store's value (set in the console, the API or the CLI since, or
	// before this rule existed) applies.
	FileOverridden FileOutcome = "overridden"
	// FileRefused: the option changed in the file, but its value does not
	// go with the rest of the policy (Err says why): the store's value
	// applies, and the file's is tried again at the next start.
	FileRefused FileOutcome = "refused"
)

// FileOption is a site option whose file and store values differed at
// Open, and what came of it.
type FileOption struct {
	Field   string // settings field, e.g. rate_down
	Option  string // the file's option, e.g. site.rate_down
	File    string // the file's value (JSON)
	Store   string // the store's value before Open (JSON)
	Outcome FileOutcome
	Err     FieldError // for FileRefused
	// LastChange is the audit log's latest change of the field (zero
	// when it has none), to tell the operator who set the store's value.
	LastChange AuditRecord
}

// FromFile returns the policy the config file states: its site section
// and its RADIUS options.
func FromFile(c *config.Config) Site {
	s := FromConfig(c.Site)
	s.RADIUS = RADIUS{Enabled: c.Radius.Authorization, Servers: slices.Clone(c.Radius.AuthServers), FailPolicy: "closed"}
	if c.Radius.FailOpen {
		s.RADIUS.FailPolicy = "open"
	}
	if s.RADIUS.Servers == nil {
		s.RADIUS.Servers = []string{}
	}
	return s
}

// reconcileFile merges the file's policy into cur (the stored policy) as
// the package documentation says, in tx, returning the policy to store,
// the report and the audit records to write.
func reconcileFile(tx *bolt.Tx, cur, file Site) (Site, []FileOption, []AuditRecord, error) {
	b := tx.Bucket(bucketSite)
	fileVals := map[string]json.RawMessage{}
	for _, f := range fileFields {
		fileVals[f.field] = f.value(&file)
	}
	seen := map[string]json.RawMessage{}
	if v := b.Get(keyFileSeen); v != nil {
		if err := json.Unmarshal(v, &seen); err != nil {
			return cur, nil, nil, fmt.Errorf("decoding the config file's last values: %w", err)
		}
	} else {
		// A store from before this rule: nothing counts as changed in
		// the file; the store applies and every difference is reported.
		for k, v := range fileVals {
			seen[k] = v
		}
	}
	next := cur.Clone()
	var report []FileOption
	var candidates []fileField
	for _, f := range fileFields {
		fv, sv := fileVals[f.field], f.value(&cur)
		if bytes.Equal(fv, sv) {
			seen[f.field] = fv
			continue
		}
		o := FileOption{Field: f.field, Option: f.option, File: string(fv), Store: string(sv), Outcome: FileOverridden}
		if !bytes.Equal(fv, seen[f.field]) {
			o.Outcome = FileApplied
			candidates = append(candidates, f)
		}
		report = append(report, o)
	}
	// The file's new values, all together if they validate so (two may
	// only make sense together), else one by one in order.
	trial := next.Clone()
	for _, f := range candidates {
		f.copy(&trial, &file)
	}
	refused := map[string]FieldError{}
	if trial.Validate() == nil {
		next = trial.Clone()
	} else {
		for _, f := range candidates {
			one := next.Clone()
			f.copy(&one, &file)
			if fe := one.Validate(); fe != nil {
				e, ok := fe[f.field]
				if !ok {
					for _, v := range fe {
						e = v
						break
					}
				}
				refused[f.field] = e
				continue
			}
			next = one.Clone()
		}
	}
	for i, o := range report {
		if o.Outcome != FileApplied {
			continue
		}
		if e, ok := refused[o.Field]; ok {
			report[i].Outcome, report[i].Err = FileRefused, e
			continue // tried again next start: not marked as seen
		}
		seen[o.Field] = fileVals[o.Field]
	}
	for _, o := range report {
		if o.Outcome == FileOverridden {
			seen[o.Field] = fileVals[o.Field]
		}
	}
	// RADIUS is infrastructure: the file's, always.
	next.RADIUS = file.Clone().RADIUS
	next.ID = file.ID

	changes, err := diff(cur, next)
	if err != nil {
		return cur, nil, nil, err
	}
	enc, err := json.Marshal(seen)
	if err != nil {
		return cur, nil, nil, err
	}
	if err := b.Put(keyFileSeen, enc); err != nil {
		return cur, nil, nil, err
	}
	return next, report, changes, nil
}

// migrateStored brings a policy stored by an older parkportal within
// today's bounds, returning the audit records of what it changed.
func migrateStored(s *Site) []AuditRecord {
	var recs []AuditRecord
	if s.SMSDailyBudget == 0 {
		// 0 used to be taken and then meant the limiter's default.
		s.SMSDailyBudget = DefaultSMSDailyBudget
		recs = append(recs, AuditRecord{Field: "sms_daily_budget", Old: "0", New: fmt.Sprint(DefaultSMSDailyBudget)})
	}
	return recs
}

// writeAudit appends recs under actor at now.
func writeAudit(tx *bolt.Tx, actor string, now time.Time, recs []AuditRecord) error {
	ab := tx.Bucket(bucketAudit)
	for _, c := range recs {
		seq, err := ab.NextSequence()
		if err != nil {
			return err
		}
		c.Seq, c.Time, c.Actor = seq, now, actor
		rec, err := json.Marshal(c)
		if err != nil {
			return err
		}
		if err := ab.Put(seqKey(seq), rec); err != nil {
			return err
		}
	}
	return trimAudit(ab)
}
