package tz

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// goZoneinfo reads the zone database of the Go toolchain that runs the
// test (the one zones.go is generated from), zone by zone.
func goZoneinfo(t *testing.T) map[string][]byte {
	t.Helper()
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found; cannot find the toolchain's zoneinfo.zip")
	}
	root, err := exec.Command(gocmd, "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	zr, err := zip.OpenReader(filepath.Join(strings.TrimSpace(string(root)), "lib", "time", "zoneinfo.zip"))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name] = b
	}
	return out
}

// TestCompiledZonesMatchDatabase: every zone built from the table gives
// the offset and abbreviation the full database gives, at instants
// spread over 2025-2035 (every 25 hours, so every hour of the day and
// every DST change's week are visited).
func TestCompiledZonesMatchDatabase(t *testing.T) {
	db := goZoneinfo(t)
	if len(zones) != len(db) {
		t.Errorf("table has %d zones, the database %d", len(zones), len(db))
	}
	from, to := time.Date(2025, 1, 1, 0, 30, 0, 0, time.UTC), time.Date(2035, 1, 1, 0, 0, 0, 0, time.UTC)
	step := 25 * time.Hour
	if testing.Short() {
		step = 97 * time.Hour
	}
	for _, name := range Names() {
		full, err := time.LoadLocationFromTZData(name, db[name])
		if err != nil {
			t.Errorf("%s: not in the database: %v", name, err)
			continue
		}
		ours, err := loadCompiled(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		for at := from; at.Before(to); at = at.Add(step) {
			on, oo := at.In(ours).Zone()
			fn, fo := at.In(full).Zone()
			if on != fn || oo != fo {
				t.Errorf("%s at %s: %s %+d, the database says %s %+d", name, at.Format(time.RFC3339), on, oo, fn, fo)
				break
			}
		}
	}
}

// TestQatarWithoutDatabase: the default zone resolves from the table
// alone, UTC+3 all year, midnight where the site's day starts.
func TestQatarWithoutDatabase(t *testing.T) {
	loc, err := loadCompiled("Asia/Qatar")
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Time{time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC), time.Date(2026, 7, 15, 12, 0, 0, 0, time.UTC)} {
		if name, off := at.In(loc).Zone(); name != "+03" || off != 3*3600 {
			t.Errorf("Asia/Qatar at %s: %s %+d, want +03 +10800", at, name, off)
		}
	}
	// 21:00 UTC is the next local day's first second.
	if got := time.Date(2026, 3, 1, 21, 0, 0, 0, time.UTC).In(loc); got.Day() != 2 || got.Hour() != 0 {
		t.Errorf("2026-03-01 21:00 UTC in Asia/Qatar = %s, want 2026-03-02 00:00", got)
	}
	// A zone with daylight saving, southern hemisphere.
	syd, err := loadCompiled("Australia/Sydney")
	if err != nil {
		t.Fatal(err)
	}
	if name, off := time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC).In(syd).Zone(); name != "AEDT" || off != 11*3600 {
		t.Errorf("Australia/Sydney in January: %s %+d", name, off)
	}
	if name, off := time.Date(2026, 7, 15, 0, 0, 0, 0, time.UTC).In(syd).Zone(); name != "AEST" || off != 10*3600 {
		t.Errorf("Australia/Sydney in July: %s %+d", name, off)
	}
}

func TestLoad(t *testing.T) {
	if _, err := Load("Nowhere/Atlantis"); err == nil {
		t.Error("Load(Nowhere/Atlantis) succeeded")
	}
	if _, err := loadCompiled("Nowhere/Atlantis"); err == nil {
		t.Error("loadCompiled(Nowhere/Atlantis) succeeded")
	}
	if loc, err := Load("UTC"); err != nil || loc != time.UTC {
		t.Errorf("Load(UTC) = %v, %v", loc, err)
	}
	if loc, err := Load("Asia/Qatar"); err != nil || loc.String() != "Asia/Qatar" {
		t.Errorf("Load(Asia/Qatar) = %v, %v", loc, err)
	}
}

// TestTableCurrent regenerates zones.go from this toolchain's database
// and fails if the committed table differs: run `go generate
// ./internal/tz/` after a Go upgrade.
func TestTableCurrent(t *testing.T) {
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	out := filepath.Join(t.TempDir(), "zones.go")
	if b, err := exec.Command(gocmd, "run", "./internal/gen", "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("go run ./internal/gen: %v\n%s", err, b)
	}
	fresh, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("zones.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, committed) {
		t.Error("internal/tz/zones.go is stale: run `go generate ./internal/tz/` and commit it")
	}
}
