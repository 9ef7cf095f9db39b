package firewall

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// fakeTable is an in-memory ruleTable: chains keyed "table/chain", each
// rule its rulespec joined by spaces. Built-in chains exist from the
// start. check, when set, runs after every change (the gap tests).
type fakeTable struct {
	chains map[string][]string
	check  func(op string)
	// ruleChecks counts Exists calls on our own chains: each is a fork
	// of `iptables -C` on the kernel.
	ruleChecks int
}

func newFakeTable() *fakeTable {
	t := &fakeTable{chains: map[string][]string{}}
	for _, c := range []string{"filter/INPUT", "filter/FORWARD", "filter/OUTPUT", "nat/PREROUTING", "security/FORWARD", "security/INPUT"} {
		t.chains[c] = nil
	}
	return t
}

func (t *fakeTable) changed(op string) {
	if t.check != nil {
		t.check(op)
	}
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
	t.changed("new " + chain)
	return nil
}

func (t *fakeTable) ClearChain(table, chain string) error {
	t.chains[table+"/"+chain] = nil
	t.changed("clear " + chain)
	return nil
}

func (t *fakeTable) ClearAndDeleteChain(table, chain string) error {
	for name, rules := range t.chains {
		if strings.HasPrefix(name, table+"/") && slices.ContainsFunc(rules, func(r string) bool { return strings.HasSuffix(r, "-j "+chain) }) {
			return fmt.Errorf("fake: chain %s/%s is still jumped to from %s", table, chain, name)
		}
	}
	delete(t.chains, table+"/"+chain)
	t.changed("delete " + chain)
	return nil
}

// RenameChain renames the chain and, as the kernel does, the jumps to it.
func (t *fakeTable) RenameChain(table, oldChain, newChain string) error {
	rules, err := t.get(table, oldChain)
	if err != nil {
		return err
	}
	if ok, _ := t.ChainExists(table, newChain); ok {
		return fmt.Errorf("fake: chain %s/%s exists", table, newChain)
	}
	delete(t.chains, table+"/"+oldChain)
	t.chains[table+"/"+newChain] = rules
	for name, rs := range t.chains {
		if !strings.HasPrefix(name, table+"/") {
			continue
		}
		for i, r := range rs {
			if strings.HasSuffix(r, "-j "+oldChain) {
				rs[i] = strings.TrimSuffix(r, oldChain) + newChain
			}
		}
	}
	t.changed("rename " + oldChain)
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
	if strings.HasPrefix(chain, "pp-") {
		t.ruleChecks++
	}
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
	t.changed("insert into " + chain)
	return nil
}

func (t *fakeTable) Append(table, chain string, rulespec ...string) error {
	rules, err := t.get(table, chain)
	if err != nil {
		return err
	}
	t.chains[table+"/"+chain] = append(rules, strings.Join(rulespec, " "))
	t.changed("append to " + chain)
	return nil
}

func (t *fakeTable) DeleteIfExists(table, chain string, rulespec ...string) error {
	rules, err := t.get(table, chain)
	if err != nil {
		return err
	}
	t.chains[table+"/"+chain] = slices.DeleteFunc(rules, func(r string) bool { return r == strings.Join(rulespec, " ") })
	t.changed("delete from " + chain)
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

func testIPTables(ipt4, ipt6 ruleTable) *backendIPTables {
	cfg := testConfig()
	b := &backendIPTables{log: cfg.Logger, lan: cfg.LANIface, prefix: cfg.LANPrefix, allowSet: "pp-allow", downSet: "pp-allow-down", guardTable: "security"}
	if ipt4 != nil {
		b.ipt4 = ipt4
	}
	if ipt6 != nil {
		b.ipt6 = ipt6
	}
	return b
}

func specFor(t *testing.T, specs []iptChain, name string) iptChain {
	t.Helper()
	for _, s := range specs {
		if s.name == name {
			return s
		}
	}
	t.Fatalf("no chain %s", name)
	return iptChain{}
}

// TestEnsureChainsIPv6: pp-input6 is built, left alone when intact,
// repaired when flushed or unhooked, and removed with the others.
func TestEnsureChainsIPv6(t *testing.T) {
	ipt4, ipt6 := newFakeTable(), newFakeTable()
	b := testIPTables(ipt4, ipt6)
	chs := chains(testConfig())
	if n, err := b.ensureChains(chs); err != nil || n != 0 {
		t.Fatalf("first ensureChains = %d, %v; want 0 repairs (setup is not a repair)", n, err)
	}
	spec := specFor(t, b.specs(chs), chainInput6)
	if got, _ := ipt6.get("filter", chainInput6); len(got) != len(spec.rules) {
		t.Fatalf("pp-input6 has %d rules, want %d", len(got), len(spec.rules))
	}
	if ok, _ := ipt6.Exists("filter", "INPUT", spec.jump...); !ok {
		t.Fatal("no jump from ip6 INPUT to pp-input6")
	}
	if ok, _ := ipt4.ChainExists("filter", chainInput6); ok {
		t.Error("pp-input6 was made in the IPv4 table")
	}
	if n, err := b.ensureChains(chs); err != nil || n != 0 {
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
		n, err := b.ensureChains(chs)
		if err != nil {
			t.Errorf("%s: ensureChains: %v", drift.name, err)
		}
		got, _ := ipt6.get("filter", chainInput6)
		hooked, _ := ipt6.Exists("filter", "INPUT", spec.jump...)
		if !slices.Equal(got, joined(spec.rules)) || !hooked {
			t.Errorf("%s: not repaired (%d rules, hooked %v)", drift.name, len(got), hooked)
		}
		// A chain rebuilt from nothing counts as setup, like at start.
		if drift.name != "pp-input6 deleted" && n != 1 {
			t.Errorf("%s: %d repairs, want 1", drift.name, n)
		}
	}
	if err := b.removeChains(chs); err != nil {
		t.Fatal(err)
	}
	for name, tbl := range map[string]*fakeTable{"iptables": ipt4, "ip6tables": ipt6} {
		if left := tbl.mentionsOurs(); len(left) > 0 {
			t.Errorf("after removeChains, %s still has %v", name, left)
		}
	}
	if err := b.removeChains(chs); err != nil {
		t.Errorf("removeChains with nothing left: %v", err)
	}
}

func joined(rules [][]string) []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = strings.Join(r, " ")
	}
	return out
}

// TestNoIP6tables: a host without ip6tables gets its IPv4 chains and no
// error; there is nothing to put the IPv6 ones in.
func TestNoIP6tables(t *testing.T) {
	ipt4 := newFakeTable()
	b := testIPTables(ipt4, nil)
	chs := chains(testConfig())
	if _, err := b.ensureChains(chs); err != nil {
		t.Fatalf("ensureChains without ip6tables: %v", err)
	}
	if ok, _ := ipt4.ChainExists("filter", chainInput); !ok {
		t.Error("pp-input missing")
	}
	if ok, _ := ipt4.ChainExists("filter", chainInput6); ok {
		t.Error("pp-input6 made in the IPv4 table")
	}
	if err := b.removeChains(chs); err != nil {
		t.Fatalf("removeChains without ip6tables: %v", err)
	}
	if left := ipt4.mentionsOurs(); len(left) > 0 {
		t.Errorf("after removeChains, iptables still has %v", left)
	}
}

// TestRebuildLeavesNoGap: changing the walled garden rebuilds pp-forward,
// pp-prerouting and their guards while visitors' traffic flows. After
// every single iptables call, each chain a built-in chain jumps to must
// be complete, holding the old rules or the new ones: a packet never
// meets an emptied or half-filled chain (the old code cleared the chain
// in place, which let captive visitors out through the jump's RETURN).
func TestRebuildLeavesNoGap(t *testing.T) {
	ipt4, ipt6 := newFakeTable(), newFakeTable()
	b := testIPTables(ipt4, ipt6)
	cfg := testConfig()
	before := b.specs(chains(cfg))
	if _, err := b.ensureChains(chains(cfg)); err != nil {
		t.Fatal(err)
	}
	cfg.WalledGarden = append(cfg.WalledGarden, netipPrefix("203.0.113.128/25"))
	after := b.specs(chains(cfg))
	complete := make(map[string][][]string) // chain name -> acceptable rule lists
	for _, s := range append(before, after...) {
		complete[s.name] = append(complete[s.name], joined(s.rules))
	}
	steps := 0
	ipt4.check = func(op string) {
		steps++
		for key, rules := range ipt4.chains {
			table, builtin, _ := strings.Cut(key, "/")
			if strings.HasPrefix(builtin, "pp-") {
				continue
			}
			for _, r := range rules {
				i := strings.LastIndex(r, "-j ")
				target := r[i+3:]
				if !strings.HasPrefix(target, "pp-") {
					continue
				}
				got, _ := ipt4.get(table, target)
				name := strings.TrimSuffix(target, newSuffix)
				if !slices.ContainsFunc(complete[name], func(want []string) bool { return slices.Equal(got, want) }) {
					t.Fatalf("after %q (step %d), %s jumps to %s holding %d rules, neither the old nor the new chain:\n%s",
						op, steps, key, target, len(got), strings.Join(got, "\n"))
				}
			}
		}
	}
	n, err := b.ensureChains(chains(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 || steps == 0 {
		t.Fatalf("the garden change rebuilt nothing (%d repairs, %d steps)", n, steps)
	}
	for _, s := range after {
		if s.v6 {
			continue
		}
		got, _ := ipt4.get(s.table, s.name)
		if !slices.Equal(got, joined(s.rules)) {
			t.Errorf("%s/%s after the rebuild:\n%s", s.table, s.name, strings.Join(got, "\n"))
		}
		if ok, _ := ipt4.Exists(s.table, s.hook, s.jump...); !ok {
			t.Errorf("%s/%s is not jumped to after the rebuild", s.table, s.name)
		}
		if ok, _ := ipt4.ChainExists(s.table, s.name+newSuffix); ok {
			t.Errorf("%s%s left behind", s.name, newSuffix)
		}
	}
}

// TestInterruptedRebuildResumes: a daemon killed between removing the old
// chain and renaming the new one leaves only pp-forward-new, jumped to;
// the next start takes it as the chain and checks it.
func TestInterruptedRebuildResumes(t *testing.T) {
	ipt4 := newFakeTable()
	b := testIPTables(ipt4, nil)
	chs := chains(testConfig())
	spec := specFor(t, b.specs(chs), chainForward)
	tmp := chainForward + newSuffix
	ipt4.NewChain("filter", tmp)
	for _, r := range spec.rules {
		ipt4.Append("filter", tmp, r...)
	}
	ipt4.Insert("filter", "FORWARD", 1, "-i", "lan0", "-j", tmp)
	if _, err := b.ensureChains(chs); err != nil {
		t.Fatal(err)
	}
	if ok, _ := ipt4.ChainExists("filter", tmp); ok {
		t.Error("the interrupted rebuild's chain is still there")
	}
	got, _ := ipt4.get("filter", chainForward)
	if !slices.Equal(got, joined(spec.rules)) {
		t.Errorf("pp-forward after resuming:\n%s", strings.Join(got, "\n"))
	}
	fwd, _ := ipt4.get("filter", "FORWARD")
	if n := slices.Index(fwd, "-i lan0 -j pp-forward"); n < 0 || slices.Contains(fwd, "-i lan0 -j "+tmp) {
		t.Errorf("FORWARD after resuming: %v", fwd)
	}
}

// TestChecksCompareListings: once a chain was built or checked, a check
// compares its listing with the one recorded then (one `iptables -S`)
// instead of checking each rule with `iptables -C`; a rule changed in
// place (same count) is still found, and so are new rules of the same
// count (a walled-garden address changed) on a chain that still lists as
// recorded.
func TestChecksCompareListings(t *testing.T) {
	ipt4 := newFakeTable()
	b := testIPTables(ipt4, nil)
	cfg := testConfig()
	chs := chains(cfg)
	if _, err := b.ensureChains(chs); err != nil {
		t.Fatal(err)
	}
	ipt4.ruleChecks = 0
	if n, err := b.ensureChains(chs); err != nil || n != 0 {
		t.Fatalf("ensureChains on intact chains = %d, %v; want 0", n, err)
	}
	if ipt4.ruleChecks != 0 {
		t.Errorf("a check of intact chains ran %d rule checks (iptables -C), want none", ipt4.ruleChecks)
	}

	// A rule replaced in place by hand: same count, different rule.
	spec := specFor(t, b.specs(chs), chainForward)
	key := "filter/" + chainForward
	ipt4.chains[key][0] = "-j ACCEPT"
	if n, err := b.ensureChains(chs); err != nil || n != 1 {
		t.Fatalf("ensureChains after a rule was replaced = %d, %v; want 1 repair", n, err)
	}
	if got, _ := ipt4.get("filter", chainForward); !slices.Equal(got, joined(spec.rules)) {
		t.Errorf("after the repair %s holds %q, want %q", chainForward, got, joined(spec.rules))
	}

	// The policy changes, same number of rules: the chain still lists as
	// recorded, but it no longer holds what is wanted.
	cfg.WalledGarden[1] = netip.MustParsePrefix("203.0.113.78/32")
	chs = chains(cfg)
	spec = specFor(t, b.specs(chs), chainForward)
	if _, err := b.ensureChains(chs); err != nil {
		t.Fatal(err)
	}
	if got, _ := ipt4.get("filter", chainForward); !slices.Equal(got, joined(spec.rules)) {
		t.Errorf("after a walled-garden change %s holds %q, want %q", chainForward, got, joined(spec.rules))
	}
}
