package firewall

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// fakeTable is an in-memory ruleTable: chains keyed "table/chain", each
// rule its rulespec joined by spaces. Built-in chains exist from the start.
type fakeTable struct{ chains map[string][]string }

func newFakeTable() *fakeTable {
	t := &fakeTable{chains: map[string][]string{}}
	for _, c := range []string{"filter/INPUT", "filter/FORWARD", "filter/OUTPUT", "nat/PREROUTING"} {
		t.chains[c] = nil
	}
	return t
}

func (t *fakeTable) get(table, chain string) ([]string, error) {
	rules, ok := t.chains[table+"/"+chain]
	if !ok {
		return nil, fmt.Errorf("fake: no chain %s/%s", table, chain)
	}
	return rules, nil
}

func (t *fakeTable) ChainExists(table, chain string) (bool, error) {
	_, ok := t.chains[table+"/"+chain]
	return ok, nil
}

func (t *fakeTable) NewChain(table, chain string) error {
	if ok, _ := t.ChainExists(table, chain); ok {
		return fmt.Errorf("fake: chain %s/%s exists", table, chain)
	}
	t.chains[table+"/"+chain] = nil
	return nil
}

func (t *fakeTable) ClearChain(table, chain string) error {
	t.chains[table+"/"+chain] = nil
	return nil
}

func (t *fakeTable) ClearAndDeleteChain(table, chain string) error {
	delete(t.chains, table+"/"+chain)
	return nil
}

func (t *fakeTable) List(table, chain string) ([]string, error) {
	rules, err := t.get(table, chain)
	if err != nil {
		return nil, err
	}
	out := []string{"-N " + chain}
	for _, r := range rules {
		out = append(out, "-A "+chain+" "+r)
	}
	return out, nil
}

func (t *fakeTable) Exists(table, chain string, rulespec ...string) (bool, error) {
	rules, err := t.get(table, chain)
	if err != nil {
		return false, err
	}
	return slices.Contains(rules, strings.Join(rulespec, " ")), nil
}

func (t *fakeTable) Insert(table, chain string, pos int, rulespec ...string) error {
	rules, err := t.get(table, chain)
	if err != nil {
		return err
	}
	t.chains[table+"/"+chain] = slices.Insert(rules, pos-1, strings.Join(rulespec, " "))
	return nil
}

func (t *fakeTable) Append(table, chain string, rulespec ...string) error {
	rules, err := t.get(table, chain)
	if err != nil {
		return err
	}
	t.chains[table+"/"+chain] = append(rules, strings.Join(rulespec, " "))
	return nil
}

func (t *fakeTable) DeleteIfExists(table, chain string, rulespec ...string) error {
	rules, err := t.get(table, chain)
	if err != nil {
		return err
	}
	t.chains[table+"/"+chain] = slices.DeleteFunc(rules, func(r string) bool { return r == strings.Join(rulespec, " ") })
	return nil
}

// mentionsOurs lists every chain or rule of the table that names a pp- chain.
func (t *fakeTable) mentionsOurs() []string {
	var out []string
	for name, rules := range t.chains {
		if strings.Contains(name, "pp-") {
			out = append(out, name)
		}
		for _, r := range rules {
			if strings.Contains(r, "pp-") {
				out = append(out, name+": "+r)
			}
		}
	}
	return out
}

func testConfig() Config {
	return Config{
		LANIface: "lan0", LANPrefix: netip.MustParsePrefix("198.51.100.0/24"),
		GatewayIP: netip.MustParseAddr("198.51.100.1"), PortalPort: 2050,
		AdminPort: 2052, CoAPort: 3799, SetName: "pp-allow",
		TrustedMACs: []net.HardwareAddr{{0x02, 0, 0x5e, 0, 1, 0x12}},
	}
}

func testFirewall(cfg Config, ipt4, ipt6 ruleTable) *Firewall {
	return &Firewall{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil)), ipt4: ipt4, ipt6: ipt6}
}

func specNamed(t *testing.T, specs []chainSpec, chain string) chainSpec {
	t.Helper()
	for _, s := range specs {
		if s.chain == chain {
			return s
		}
	}
	t.Fatalf("no chain %s in the desired ruleset", chain)
	return chainSpec{}
}

// TestInput6ClosesAdminAndDAS: the IPv6 input chain hooks INPUT for
// packets from the LAN, lets trusted staff devices pass, drops the admin
// and DAS ports before it accepts anything, and ends in a DROP (nothing
// else on the gateway is for visitors over IPv6 either).
func TestInput6ClosesAdminAndDAS(t *testing.T) {
	for _, coa := range []int{3799, 0} {
		cfg := testConfig()
		cfg.CoAPort = coa
		in6 := specNamed(t, testFirewall(cfg, nil, nil).chainSpecs(), chainInput6)
		if !in6.v6 || in6.table != "filter" || in6.hook != "INPUT" || strings.Join(in6.jump, " ") != "-i lan0 -j pp-input6" {
			t.Fatalf("pp-input6 hooks %+v", in6)
		}
		rules := make([]string, len(in6.rules))
		for i, r := range in6.rules {
			rules[i] = strings.Join(r, " ")
		}
		if !strings.Contains(rules[0], "--mac-source 02:00:5E:00:01:12 -j RETURN") {
			t.Errorf("CoAPort %d: first rule %q, want the trusted device's RETURN", coa, rules[0])
		}
		want := []string{"-p tcp -m tcp --dport 2052 -j DROP"}
		if coa != 0 {
			want = append(want, "-p udp -m udp --dport 3799 -j DROP")
		}
		firstAccept := slices.IndexFunc(rules, func(r string) bool { return strings.HasSuffix(r, "-j ACCEPT") })
		for _, w := range want {
			i := slices.Index(rules, w)
			if i < 0 || i > firstAccept {
				t.Errorf("CoAPort %d: %q at %d, want it before the first ACCEPT (%d):\n%s", coa, w, i, firstAccept, strings.Join(rules, "\n"))
			}
		}
		if coa == 0 && slices.ContainsFunc(rules, func(r string) bool { return strings.Contains(r, "--dport 0 ") }) {
			t.Errorf("without a DAS, a rule for port 0:\n%s", strings.Join(rules, "\n"))
		}
		if last := rules[len(rules)-1]; last != "-j DROP" {
			t.Errorf("last rule %q, want -j DROP", last)
		}
		for _, r := range rules {
			// The allowlist set is IPv4: ip6tables refuses to match it.
			if strings.Contains(r, "--match-set") {
				t.Errorf("IPv6 rule %q names the IPv4 allowlist set", r)
			}
		}
	}
}

// TestEnsureChainsIPv6: pp-input6 is built, left alone when intact,
// repaired when flushed or unhooked, and removed with the others.
func TestEnsureChainsIPv6(t *testing.T) {
	ipt4, ipt6 := newFakeTable(), newFakeTable()
	f := testFirewall(testConfig(), ipt4, ipt6)
	if n, err := f.ensureChains(); err != nil || n != 0 {
		t.Fatalf("first ensureChains = %d, %v; want 0 repairs (setup is not a repair)", n, err)
	}
	spec := specNamed(t, f.chainSpecs(), chainInput6)
	if got, _ := ipt6.get("filter", chainInput6); len(got) != len(spec.rules) {
		t.Fatalf("pp-input6 has %d rules, want %d", len(got), len(spec.rules))
	}
	if ok, _ := ipt6.Exists("filter", "INPUT", spec.jump...); !ok {
		t.Fatal("no jump from ip6 INPUT to pp-input6")
	}
	if ok, _ := ipt4.ChainExists("filter", chainInput6); ok {
		t.Error("pp-input6 was made in the IPv4 table")
	}
	if n, err := f.ensureChains(); err != nil || n != 0 {
		t.Errorf("ensureChains on intact chains = %d, %v; want 0", n, err)
	}
	for _, drift := range []struct {
		name    string
		breakIt func()
	}{
		{"ip6tables -F pp-input6", func() { ipt6.ClearChain("filter", chainInput6) }},
		{"jump from ip6 INPUT deleted", func() { ipt6.DeleteIfExists("filter", "INPUT", spec.jump...) }},
		{"pp-input6 deleted", func() {
			ipt6.DeleteIfExists("filter", "INPUT", spec.jump...)
			ipt6.ClearAndDeleteChain("filter", chainInput6)
		}},
		{"one rule gone", func() {
			r, _ := ipt6.get("filter", chainInput6)
			ipt6.chains["filter/"+chainInput6] = slices.Delete(r, 1, 2)
		}},
	} {
		drift.breakIt()
		n, err := f.ensureChains()
		if err != nil {
			t.Errorf("%s: ensureChains: %v", drift.name, err)
		}
		got, _ := ipt6.get("filter", chainInput6)
		hooked, _ := ipt6.Exists("filter", "INPUT", spec.jump...)
		if len(got) != len(spec.rules) || !hooked {
			t.Errorf("%s: not repaired (%d rules, hooked %v)", drift.name, len(got), hooked)
		}
		// A chain rebuilt from nothing counts as setup, like at start.
		if drift.name != "pp-input6 deleted" && n != 1 {
			t.Errorf("%s: %d repairs, want 1", drift.name, n)
		}
	}
	if err := f.removeChains(); err != nil {
		t.Fatal(err)
	}
	for name, tbl := range map[string]*fakeTable{"iptables": ipt4, "ip6tables": ipt6} {
		if left := tbl.mentionsOurs(); len(left) > 0 {
			t.Errorf("after removeChains, %s still has %v", name, left)
		}
	}
	if err := f.removeChains(); err != nil {
		t.Errorf("removeChains with nothing left: %v", err)
	}
}

// TestNoIP6tables: a host without ip6tables gets its IPv4 chains and no
// error; there is nothing to put the IPv6 ones in.
func TestNoIP6tables(t *testing.T) {
	ipt4 := newFakeTable()
	f := testFirewall(testConfig(), ipt4, nil)
	if _, err := f.ensureChains(); err != nil {
		t.Fatalf("ensureChains without ip6tables: %v", err)
	}
	if ok, _ := ipt4.ChainExists("filter", chainInput); !ok {
		t.Error("pp-input missing")
	}
	if ok, _ := ipt4.ChainExists("filter", chainInput6); ok {
		t.Error("pp-input6 made in the IPv4 table")
	}
	if err := f.removeChains(); err != nil {
		t.Fatalf("removeChains without ip6tables: %v", err)
	}
	if left := ipt4.mentionsOurs(); len(left) > 0 {
		t.Errorf("after removeChains, iptables still has %v", left)
	}
}

// TestChainsOnKernel runs the real iptables and ip6tables in a private
// network namespace: every rule we write must read back as itself
// (iptables -C), or each resync would "repair" an intact chain forever;
// Teardown must leave no pp- chain in either family.
func TestChainsOnKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds a network namespace and iptables chains")
	}
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (apt-get install -y iptables)", tool)
		}
	}
	enterPrivateNS(t, "ppfwt")
	cfg := testConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if f.ipt6 == nil {
		t.Fatal("ip6tables not found (apt-get install -y iptables)")
	}
	defer f.Teardown()
	if _, err := f.Ensure(); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	if n, err := f.Ensure(); err != nil || n != 0 {
		t.Errorf("second Ensure = %d, %v; want 0 repairs: a rule does not read back as written", n, err)
	}
	// Exec'd from this locked thread, the tools see our namespace.
	save := func(tool string) string {
		out, err := exec.Command(tool).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", tool, err, out)
		}
		return string(out)
	}
	if out := save("ip6tables-save"); !strings.Contains(out, "-A INPUT -i lan0 -j pp-input6") ||
		!strings.Contains(out, "-A pp-input6 -p tcp -m tcp --dport 2052 -j DROP") {
		t.Errorf("ip6tables has no hooked pp-input6 dropping the admin port:\n%s", out)
	}
	if err := f.Teardown(); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		if out := save(tool); strings.Contains(out, "pp-") {
			t.Errorf("after Teardown, %s still mentions pp-:\n%s", tool, out)
		}
	}
}
