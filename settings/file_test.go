package settings

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/parkwifi/parkportal/config"
)

// outcomes renders a FileReport as "field=outcome" in order.
func outcomes(r []FileOption) string {
	var parts []string
	for _, o := range r {
		parts = append(parts, o.Field+"="+string(o.Outcome))
	}
	return strings.Join(parts, " ")
}

func reopen(t *testing.T, db *bolt.DB, file Site) *Manager {
	t.Helper()
	m, err := Open(db, file, func() time.Time { return time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC) })
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestFileOwnership walks the ownership rule through a park's life: the
// first start seeds from the file, a file edit (uci commit) applies at
// the next start, a console edit outlives restarts until the file's
// option changes again, and every difference is reported with both
// values.
func TestFileOwnership(t *testing.T) {
	db := openDB(t)
	file := defaults()
	m := reopen(t, db, file)
	if got := m.Get(); !equalJSON(t, got, file) || len(m.FileReport()) != 0 {
		t.Fatalf("first start: %+v, report %v", got, m.FileReport())
	}

	// uci set parkportal.park.rate_down=6mbit; uci commit.
	file.RateDown = 6_000_000
	m = reopen(t, db, file)
	if m.Get().RateDown != 6_000_000 || outcomes(m.FileReport()) != "rate_down=applied" {
		t.Fatalf("file edit: rate %v, report %s", m.Get().RateDown, outcomes(m.FileReport()))
	}
	recs, _ := m.Audit(1, 0)
	if len(recs) != 1 || recs[0].Actor != FileActor || recs[0].Field != "rate_down" || recs[0].New != `"6mbit"` {
		t.Errorf("the file's change is not in the audit log: %+v", recs)
	}

	// Staff set 4mbit in the console; restarts keep it, and say so.
	next := m.Get()
	next.RateDown = 4_000_000
	if _, err := m.Update("amal", next); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		m = reopen(t, db, file)
		r := m.FileReport()
		if m.Get().RateDown != 4_000_000 || len(r) != 1 || r[0].Outcome != FileOverridden ||
			r[0].File != `"6mbit"` || r[0].Store != `"4mbit"` || r[0].Option != "site.rate_down" || r[0].LastChange.Actor != "amal" {
			t.Fatalf("after a console edit: rate %v, report %+v", m.Get().RateDown, r)
		}
	}

	// The file changes the option again: the newest edit wins.
	file.RateDown = 5_000_000
	m = reopen(t, db, file)
	if m.Get().RateDown != 5_000_000 || outcomes(m.FileReport()) != "rate_down=applied" {
		t.Fatalf("second file edit: rate %v, report %s", m.Get().RateDown, outcomes(m.FileReport()))
	}
	// Nothing differs any more: nothing to report.
	if m = reopen(t, db, file); len(m.FileReport()) != 0 {
		t.Errorf("report with nothing differing: %+v", m.FileReport())
	}
}

// TestFileValuesThatDoNotFit: a file edit that goes only with another
// file edit applies with it; one that contradicts the stored policy is
// refused, reported at every start and tried again.
func TestFileValuesThatDoNotFit(t *testing.T) {
	db := openDB(t)
	file := defaults()
	reopen(t, db, file)

	// Raising the rate above today's uplink needs the new uplink too.
	file.UplinkDown, file.RateDown = 30_000_000, 20_000_000
	m := reopen(t, db, file)
	if m.Get().RateDown != 20_000_000 || m.Get().UplinkDown != 30_000_000 {
		t.Fatalf("edits that fit together: %+v", m.FileReport())
	}

	// Staff raise the rate to 25mbit; then the file lowers the uplink
	// below it: refused, since the console's rate would exceed it.
	next := m.Get()
	next.RateDown = 25_000_000
	if _, err := m.Update("amal", next); err != nil {
		t.Fatal(err)
	}
	file.UplinkDown = 10_000_000
	for range 2 {
		m = reopen(t, db, file)
		var up FileOption
		for _, o := range m.FileReport() {
			if o.Field == "uplink_down" {
				up = o
			}
		}
		if m.Get().UplinkDown != 30_000_000 || up.Outcome != FileRefused || up.Err.Code == "" {
			t.Fatalf("conflicting file edit: uplink %v, report %+v", m.Get().UplinkDown, m.FileReport())
		}
	}
	// Staff lower the rate: the next start applies the file's uplink.
	next = m.Get()
	next.RateDown = 8_000_000
	if _, err := m.Update("amal", next); err != nil {
		t.Fatal(err)
	}
	if m = reopen(t, db, file); m.Get().UplinkDown != 10_000_000 {
		t.Fatalf("retried file edit: uplink %v, report %+v", m.Get().UplinkDown, m.FileReport())
	}
}

// TestRADIUSIsTheFiles: the RADIUS policy is the file's at every start;
// once the daemon says so, the console cannot change it and a profile
// from another gateway does not bring its own.
func TestRADIUSIsTheFiles(t *testing.T) {
	db := openDB(t)
	file := defaults()
	file.RADIUS = RADIUS{Enabled: true, Servers: []string{"192.0.2.10:1812"}, FailPolicy: "open"}
	m := reopen(t, db, file)
	if got := m.Get().RADIUS; !got.Enabled || got.FailPolicy != "open" {
		t.Fatalf("seeded RADIUS: %+v", got)
	}
	// Before this rule the console could turn it off.
	next := m.Get()
	next.RADIUS.Enabled = false
	if _, err := m.Update("amal", next); err != nil {
		t.Fatal(err)
	}
	m = reopen(t, db, file)
	if !m.Get().RADIUS.Enabled {
		t.Fatal("a start did not put the file's RADIUS policy back")
	}
	m.RADIUSFromFile()
	heard := 0
	m.OnChange(func(Site) { heard++ })
	next = m.Get()
	next.RADIUS.FailPolicy, next.RateDown = "closed", 4_000_000
	_, err := m.Update("amal", next)
	var fe FieldErrors
	if !errors.As(err, &fe) || fe["radius.fail_policy"].Code != "radius_in_config" || len(fe) != 1 || heard != 0 {
		t.Fatalf("changing fail_policy in the console: %v (heard %d)", err, heard)
	}
	for _, lang := range []string{"en", "ar"} {
		if msg := fe["radius.fail_policy"].In(lang); !strings.Contains(msg, "fail_policy") {
			t.Errorf("%s message does not name the option: %s", lang, msg)
		}
	}
	next.RADIUS = m.Get().RADIUS // other changes still save
	if _, err := m.Update("amal", next); err != nil {
		t.Fatal(err)
	}
	// A profile from a gateway with other RADIUS servers.
	other := m.Get()
	other.RADIUS = RADIUS{Enabled: false, Servers: []string{}, FailPolicy: "closed"}
	other.NameEN = "Imported"
	var buf bytes.Buffer
	json.NewEncoder(&buf).Encode(Profile{Format: profileFormat, Version: 1, Site: other})
	got, err := m.Import("amal", &buf, false)
	if err != nil || got.NameEN != "Imported" || !got.RADIUS.Enabled {
		t.Fatalf("import: %v, %+v", err, got)
	}
}

// TestUpgradedStore: a store written before this rule has no record of
// the file's values; its policy stays as it is (reported where it
// differs) and a stored daily budget of 0, which the limiter read as its
// default, becomes that default.
func TestUpgradedStore(t *testing.T) {
	db := openDB(t)
	old := defaults()
	old.RateDown, old.SMSDailyBudget = 2_000_000, 0
	enc, _ := json.Marshal(old)
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketSite)
		if err != nil {
			return err
		}
		return b.Put(keyCurrent, enc)
	}); err != nil {
		t.Fatal(err)
	}
	m := reopen(t, db, defaults())
	got := m.Get()
	if got.RateDown != 2_000_000 || got.SMSDailyBudget != DefaultSMSDailyBudget || outcomes(m.FileReport()) != "rate_down=overridden" {
		t.Fatalf("upgraded: rate %v, budget %d, report %s", got.RateDown, got.SMSDailyBudget, outcomes(m.FileReport()))
	}
	recs, _ := m.Audit(10, 0)
	if len(recs) != 1 || recs[0].Field != "sms_daily_budget" || recs[0].New != fmt.Sprint(DefaultSMSDailyBudget) {
		t.Errorf("audit: %+v", recs)
	}
}

// TestFileFieldsCoverTheSiteSection: every option of the file's site
// section, as the parser reads them, is either one Open reconciles or
// one documented as the file's alone; a new option cannot slip in
// unowned.
func TestFileFieldsCoverTheSiteSection(t *testing.T) {
	owned := map[string]string{"site.sms_resend_gap": "the file's alone: not in the console"}
	for _, f := range fileFields {
		owned[f.option] = f.field
	}
	parsed := config.SiteOptions()
	for _, o := range parsed {
		if _, ok := owned["site."+o]; !ok {
			t.Errorf("site.%s has no owner: add it to fileFields (or document it as the file's alone)", o)
		}
		delete(owned, "site."+o)
	}
	if len(owned) != 0 || len(parsed) == 0 {
		t.Errorf("owned options the parser does not read: %v (parser reads %v)", owned, parsed)
	}
}
