package firewall

import (
	"flag"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// -update rewrites the golden files from what the code renders now.
var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func testConfig() Config {
	return Config{
		LANIface: "lan0", LANPrefix: netip.MustParsePrefix("198.51.100.0/24"),
		GatewayIP: netip.MustParseAddr("198.51.100.1"), PortalPort: 2050, TLSPort: 2051,
		AdminPort: 2052, CoAPort: 3799, SetName: "pp-allow", Table: "parkportal",
		TrustedMACs:  []net.HardwareAddr{{0x02, 0, 0x5e, 0, 1, 0x12}},
		WalledGarden: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/28"), netip.MustParsePrefix("203.0.113.77/32")},
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func chainNamed(t *testing.T, chs []chain, name string) chain {
	t.Helper()
	for _, c := range chs {
		if c.name == name {
			return c
		}
	}
	t.Fatalf("no chain %s in the policy", name)
	return chain{}
}

func ruleTexts(c chain) []string {
	out := make([]string, len(c.rules))
	for i, r := range c.rules {
		out[i] = r.String()
	}
	return out
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from what the code renders (go test -update rewrites it after review):\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}

// TestPolicyGolden pins the backend-neutral policy and both renderings
// of it: a change to what the gate enforces shows as a reviewed diff of
// each.
func TestPolicyGolden(t *testing.T) {
	chs := chains(testConfig())
	var policy strings.Builder
	for _, c := range chs {
		policy.WriteString("chain " + c.name + " {\n")
		for _, r := range ruleTexts(c) {
			policy.WriteString("\t" + r + "\n")
		}
		policy.WriteString("}\n")
	}
	golden(t, "policy.golden", policy.String())

	b := &backendIPTables{lan: "lan0", allowSet: "pp-allow", downSet: "pp-allow-down", guardTable: "security", ipt4: newFakeTable(), ipt6: newFakeTable()}
	var ipt strings.Builder
	for _, s := range b.specs(chs) {
		fam := "iptables"
		if s.v6 {
			fam = "ip6tables"
		}
		ipt.WriteString(fam + " -t " + s.table + " -I " + s.hook + " " + strings.Join(s.jump, " ") + "\n")
		for _, r := range s.rules {
			ipt.WriteString(fam + " -t " + s.table + " -A " + s.name + " " + strings.Join(r, " ") + "\n")
		}
	}
	golden(t, "iptables.golden", ipt.String())
}

// TestInput6ClosesAdminAndDAS: over IPv6 visitors reach only what a LAN
// needs; trusted staff devices pass first, the admin and DAS ports are
// dropped before anything is accepted, and the chain ends in a drop.
func TestInput6ClosesAdminAndDAS(t *testing.T) {
	for _, coa := range []int{3799, 0} {
		cfg := testConfig()
		cfg.CoAPort = coa
		in6 := chainNamed(t, chains(cfg), chainInput6)
		if in6.family != ipv6 || in6.hook != hookInput || in6.out {
			t.Fatalf("pp-input6 hooks %+v", in6)
		}
		rules := ruleTexts(in6)
		if rules[0] != "ether saddr 02:00:5e:00:01:12 accept" {
			t.Errorf("CoAPort %d: first rule %q, want the trusted device's accept", coa, rules[0])
		}
		want := []string{"tcp dport 2052 counter drop"}
		if coa != 0 {
			want = append(want, "udp dport 3799 counter drop")
		}
		// The first accept of a visitor's packet (staff devices aside).
		firstAccept := slices.IndexFunc(in6.rules, func(r rule) bool { return r.verdict == accept && r.srcMAC == nil })
		for _, w := range want {
			if i := slices.Index(rules, w); i < 0 || i > firstAccept {
				t.Errorf("CoAPort %d: %q at %d, want it before the first accept (%d):\n%s", coa, w, i, firstAccept, strings.Join(rules, "\n"))
			}
		}
		if coa == 0 && slices.ContainsFunc(rules, func(r string) bool { return strings.Contains(r, "dport 0 ") }) {
			t.Errorf("without a DAS, a rule for port 0:\n%s", strings.Join(rules, "\n"))
		}
		if last := rules[len(rules)-1]; last != "counter drop" {
			t.Errorf("last rule %q, want counter drop", last)
		}
		for _, r := range in6.rules {
			if r.allowed || r.download || r.dst.IsValid() {
				t.Errorf("IPv6 rule %q uses IPv4 addresses", r)
			}
		}
	}
}

// TestDNSBudgetBeforeEstablished: a captive visitor's DNS over its budget
// is dropped before the conntrack accept, which would otherwise let a
// tunnel's one socket through once its first query was answered.
func TestDNSBudgetBeforeEstablished(t *testing.T) {
	rules := ruleTexts(chainNamed(t, chains(testConfig()), chainInput))
	budget := slices.IndexFunc(rules, func(r string) bool { return strings.HasPrefix(r, "udp dport 53 update @dns4") })
	over := slices.Index(rules, "udp dport 53 counter drop")
	est := slices.Index(rules, "ct state established,related accept")
	if budget < 0 || over != budget+1 || est < over {
		t.Errorf("budget at %d, over-budget drop at %d, established accept at %d; want budget, drop, then established:\n%s",
			budget, over, est, strings.Join(rules, "\n"))
	}
	if i := slices.Index(rules, "ip saddr . ether saddr @allow4 udp dport 53 accept"); i < 0 || i > budget {
		t.Errorf("logged-in visitors' DNS must pass before the budget (at %d):\n%s", i, strings.Join(rules, "\n"))
	}
}

// TestGuardsMirrorFilter: the iptables backend's guards let through
// exactly what the filter chains let through (rate limits aside), and
// drop where the filter rejects, so flushing the filter table opens
// nothing.
func TestGuardsMirrorFilter(t *testing.T) {
	b := &backendIPTables{lan: "lan0", allowSet: "pp-allow", downSet: "pp-allow-down", guardTable: "security"}
	specs := b.specs(chains(testConfig()))
	byName := make(map[string]iptChain)
	for _, s := range specs {
		byName[s.name] = s
	}
	for _, name := range []string{chainForward, chainInput, chainForward6, chainInput6} {
		filter, guard := byName[name], byName[name+guardSuffix]
		if guard.table != "security" || guard.hook != filter.hook || guard.v6 != filter.v6 {
			t.Fatalf("%s guard: %+v", name, guard)
		}
		if len(guard.rules) != len(filter.rules) {
			t.Fatalf("%s: guard has %d rules, filter %d", name, len(guard.rules), len(filter.rules))
		}
		for i, g := range guard.rules {
			gs := strings.Join(g, " ")
			if strings.Contains(gs, "REJECT") || strings.Contains(gs, "hashlimit") {
				t.Errorf("%s guard rule %q: REJECT and hashlimit are filter-only", name, gs)
			}
			if strings.Contains(gs, "--match-set") && !strings.Contains(gs, "! --update-counters") {
				t.Errorf("%s guard rule %q counts: a guarded packet would be counted twice", name, gs)
			}
			f := strings.Join(filter.rules[i], " ")
			if strings.Contains(f, "REJECT") && !strings.HasSuffix(gs, "-j DROP") {
				t.Errorf("%s: filter rejects (%q) where the guard does not drop (%q)", name, f, gs)
			}
		}
		if last := strings.Join(guard.rules[len(guard.rules)-1], " "); last != "-j DROP" {
			t.Errorf("%s guard ends in %q, want -j DROP", name, last)
		}
	}
	if _, ok := byName[chainPrerouting+guardSuffix]; ok {
		t.Error("the nat chain has a guard: flushing nat only removes the redirect, which opens nothing")
	}
}

func netipPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
