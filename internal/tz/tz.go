// Package tz finds the configured time zone on a router, which usually
// has no zone database: OpenWrt ships /usr/share/zoneinfo only as
// optional zoneinfo-* packages and keeps the system's zone as a POSIX TZ
// string in /etc/TZ.
//
// Load asks the system's database first (time.LoadLocation, which also
// honours $ZONEINFO), so a machine that has one gets its full history.
// Otherwise it builds the zone from zones.go: every zone's current rule
// as a POSIX TZ string, generated from the database the Go toolchain
// ships, about 30 KB in the binary where time/tzdata would be 450 KB.
// A rule gives the right offsets from 2025 on, which is all the daemon
// asks of a zone: when today's local midnight is (the SMS budget's day,
// the console's "today"). The few zones whose database lists changes
// ahead that a rule cannot express (Morocco's Ramadan months) are kept
// whole.
package tz

//go:generate go run ./internal/gen -o zones.go

import (
	"encoding/binary"
	"fmt"
	"sort"
	"time"
)

type zone struct {
	name string
	rule string // POSIX TZ string, e.g. "<+03>-3" or "EST5EDT,M3.2.0,M11.1.0"
	tzif string // the zone's whole TZif data, where rule is not enough
}

// Load returns the zone called name (an IANA name such as Asia/Qatar):
// from the system's zone database if it has the zone, else from the
// compiled rules.
func Load(name string) (*time.Location, error) {
	if loc, err := time.LoadLocation(name); err == nil {
		return loc, nil
	}
	return loadCompiled(name)
}

// loadCompiled builds the zone from the compiled table.
func loadCompiled(name string) (*time.Location, error) {
	i := sort.Search(len(zones), func(i int) bool { return zones[i].name >= name })
	if i == len(zones) || zones[i].name != name {
		return nil, fmt.Errorf("unknown time zone %q", name)
	}
	z := zones[i]
	data := []byte(z.tzif)
	if z.tzif == "" {
		data = RuleTZif(z.rule)
	}
	loc, err := time.LoadLocationFromTZData(name, data)
	if err != nil {
		return nil, fmt.Errorf("loading time zone %q from its compiled rule: %w", name, err)
	}
	return loc, nil
}

// Names returns every zone Load knows without a zone database.
func Names() []string {
	names := make([]string, len(zones))
	for i, z := range zones {
		names[i] = z.name
	}
	return names
}

// RuleTZif returns TZif data (RFC 8536, version 2) that has no
// transitions and rule as its footer: Go's loader then takes every
// instant's offset from the rule. The one local time type it must have
// (UTC) is never used while the rule parses.
func RuleTZif(rule string) []byte {
	var b []byte
	block := func() {
		b = append(b, "TZif2"...)
		b = append(b, make([]byte, 15)...)
		// isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
		for _, n := range []uint32{0, 0, 0, 0, 1, 4} {
			b = binary.BigEndian.AppendUint32(b, n)
		}
		// One local time type: offset 0, not DST, abbreviation at 0.
		b = append(b, 0, 0, 0, 0, 0, 0)
		b = append(b, "UTC\x00"...)
	}
	block() // version 1 data, which readers of version 2 skip
	block() // version 2 data
	b = append(b, '\n')
	b = append(b, rule...)
	return append(b, '\n')
}
