package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/parkwifi/parkportal/config"
)

// TestHelp builds the binary (with the lab, whose help it checks too;
// TestRouterBuildHasNoLab covers the router build's answer) and asks
// every command for --help: each
// exits 0, prints its usage on stdout and lists exactly its own flags
// (admin's --role only for add-user, site's --keep-names only for
// import).
func TestHelp(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "parkportal")
	if out, err := exec.Command("go", "build", "-tags", "lab", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building: %v\n%s", err, out)
	}
	cfgFlags := []string{"config", "lab-defaults"}
	cases := []struct {
		args  string
		flags []string // nil: a command group's list, no flags
	}{
		{"--help", nil}, {"help", nil}, {"-h", nil},
		{"serve --help", append(cfgFlags, "keep-firewall")},
		{"lab --help", []string{"check", "visitors"}},
		{"config --help", nil},
		{"config check --help", cfgFlags},
		{"db --help", nil},
		{"db check -h", cfgFlags},
		{"db export --help", append(cfgFlags, "format")},
		{"cleanup --help", cfgFlags},
		{"close-gate --help", cfgFlags},
		{"admin --help", nil},
		{"admin add-user --help", append(cfgFlags, "role")},
		{"admin passwd --help", cfgFlags},
		{"admin role --help", cfgFlags},
		{"admin token --help", append(cfgFlags, "label")},
		{"admin list --help", cfgFlags},
		{"site help", nil},
		{"site get --help", cfgFlags},
		{"site set --help", cfgFlags},
		{"site export --help", cfgFlags},
		{"site import --help", append(cfgFlags, "keep-names")},
		{"sessions --help", nil},
		{"sessions list --help", cfgFlags},
		{"sessions kick --help", cfgFlags},
		{"sessions extend --help", cfgFlags},
	}
	flagRE := regexp.MustCompile(`(?m)^  -([a-z-]+)`)
	for _, c := range cases {
		cmd := exec.Command(bin, strings.Fields(c.args)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("parkportal %s: %v (stderr %q)", c.args, err, stderr.String())
			continue
		}
		if !strings.HasPrefix(string(out), "usage:") {
			t.Errorf("parkportal %s: stdout does not start with the usage:\n%s", c.args, out)
		}
		var got []string
		for _, m := range flagRE.FindAllStringSubmatch(string(out), -1) {
			got = append(got, m[1])
		}
		want := slices.Clone(c.flags)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("parkportal %s lists flags %q, want %q", c.args, got, want)
		}
	}
	// A wrong flag is still an error, with the usage on stderr.
	cmd := exec.Command(bin, "admin", "list", "--role", "x")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "usage: parkportal admin list") {
		t.Errorf("admin list --role: err %v, stderr %q", err, stderr.String())
	}
}

// TestNoSilentLabDefaults: without --config a command reads
// /etc/config/parkportal if it exists and otherwise refuses, naming
// both ways out; the lab's embedded config only with --lab-defaults.
func TestNoSilentLabDefaults(t *testing.T) {
	dir := t.TempDir()
	saved := defaultConfigPath
	t.Cleanup(func() { defaultConfigPath = saved })

	defaultConfigPath = filepath.Join(dir, "missing")
	_, err := runCmd(t, "", cmdConfigCheck)
	if err == nil || !strings.Contains(err.Error(), "--config FILE") || !strings.Contains(err.Error(), "--lab-defaults") || !strings.Contains(err.Error(), defaultConfigPath) {
		t.Errorf("no config and no default file: %v", err)
	}
	if _, err := runCmd(t, "", cmdDBCheck); err == nil {
		t.Error("db check used a config nobody gave")
	}
	out, err := runCmd(t, "", cmdConfigCheck, "--lab-defaults")
	if err != nil || !strings.Contains(out, `config ok: site "lab-park"`) {
		t.Errorf("--lab-defaults: %v\n%s", err, out)
	}
	if _, err := runCmd(t, "", cmdConfigCheck, "--lab-defaults", "--config", "x"); err == nil {
		t.Error("--config and --lab-defaults together accepted")
	}

	// The OpenWrt path, when it exists, is the default.
	defaultConfigPath = filepath.Join(dir, "parkportal")
	uci := strings.Replace(config.LabDefault, "config site 'lab-park'", "config site 'park-07'", 1)
	if err := os.WriteFile(defaultConfigPath, []byte(uci), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runCmd(t, "", cmdConfigCheck)
	if err != nil || !strings.Contains(out, `config ok: site "park-07"`) || !strings.Contains(out, "SMS via console") {
		t.Errorf("default file: %v\n%s", err, out)
	}
}

// TestConfigCheckValidatesSMS: config check builds the SMS sender, so a
// gateway option the sms package refuses fails the check.
func TestConfigCheckValidatesSMS(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parkportal")
	uci := strings.Replace(config.LabDefault, "option provider 'console'",
		"option provider 'http'\n\toption http_url 'https://sms.example.org/send'\n\toption http_number_format 'national'", 1)
	if err := os.WriteFile(path, []byte(uci), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := runCmd(t, "", cmdConfigCheck, "--config", path)
	if err == nil || !strings.Contains(err.Error(), "country calling code") {
		t.Errorf("national format without a country code: %v", err)
	}
}
