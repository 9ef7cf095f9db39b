package firewall

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/parkwifi/parkportal/internal/netnstest"
	"github.com/vishvananda/netlink"
)

// kernelFirewall builds a Firewall on backend be for a veth "lan0" in a
// private network namespace that the test's thread stays in; it skips
// without root.
func kernelFirewall(t testing.TB, be string) *Firewall {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds a network namespace and firewall rules")
	}
	for _, tool := range []string{"nft", "iptables-save", "ip6tables-save"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (apt-get install -y nftables iptables)", tool)
		}
	}
	netnstest.Enter(t, "ppk"+be[:3])
	lan := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "lan0"}, PeerName: "lan0p"}
	if err := netlink.LinkAdd(lan); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Backend = be
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if f.Backend() != be {
		t.Fatalf("asked for %s, got %s", be, f.Backend())
	}
	t.Cleanup(func() { f.Teardown() })
	return f
}

// run runs a command in the test's namespace (exec'd from its locked
// thread) and returns its output.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

var counterRE = regexp.MustCompile(`\[\d+:\d+\]`)

// kernelView is what the kernel says our gate is, in its own words:
// "nft list table" for nftables, the pp- lines of iptables-save for
// iptables.
func kernelView(t *testing.T, f *Firewall) string {
	t.Helper()
	if f.Backend() == "nftables" {
		return run(t, "nft", "list", "table", "inet", f.cfg.Table)
	}
	var b strings.Builder
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		table := ""
		for _, l := range strings.Split(run(t, tool), "\n") {
			if strings.HasPrefix(l, "*") {
				table = l
			}
			if strings.Contains(l, "pp-") && !strings.HasPrefix(l, "#") {
				b.WriteString(tool + " " + table + " " + counterRE.ReplaceAllString(l, "") + "\n")
			}
		}
	}
	return b.String()
}

// TestGateOnKernel builds the gate with each backend on the real kernel
// and checks, in the kernel's own rendering against a reviewed golden
// file, that it holds our policy; that a second Ensure finds nothing to
// repair (every rule reads back as written); that the allowlist and its
// counters work; that a flush of our rules is repaired back to exactly
// the golden state; and that Teardown leaves nothing.
func TestGateOnKernel(t *testing.T) {
	for _, be := range []string{"nftables", "iptables"} {
		t.Run(be, func(t *testing.T) {
			f := kernelFirewall(t, be)
			if n, err := f.Ensure(); err != nil || n != 0 {
				t.Fatalf("first Ensure = %d, %v; want 0 repairs", n, err)
			}
			if n, err := f.Ensure(); err != nil || n != 0 {
				t.Fatalf("second Ensure = %d, %v; want 0 repairs: a rule does not read back as written", n, err)
			}
			view := kernelView(t, f)
			golden(t, "kernel."+be+".golden", view)

			c := Client{IP: netip.MustParseAddr("198.51.100.20"), MAC: net.HardwareAddr{2, 0, 0x5e, 0, 0x53, 0x20}, RateDown: 8e6, RateUp: 8e6}
			if err := f.Allow(c); err != nil {
				t.Fatal(err)
			}
			u, err := f.Usage()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := u[c.IP]; !ok || len(u) != 1 {
				t.Fatalf("Usage after Allow = %v, want only %s", u, c.IP)
			}

			// Drift: our rules emptied by hand. The repair restores them
			// exactly, and the allowlist survives.
			if be == "nftables" {
				run(t, "nft", "flush", "chain", "inet", f.cfg.Table, chainForward)
			} else {
				run(t, "iptables", "-F")
				run(t, "iptables", "-t", "nat", "-F")
			}
			if n, err := f.Ensure(); err != nil || n == 0 {
				t.Fatalf("Ensure after a flush = %d, %v; want repairs", n, err)
			}
			if got := kernelView(t, f); !sameGate(got, view) {
				t.Errorf("after the repair the kernel holds:\n%s\nwant:\n%s", got, view)
			}
			if u, _ := f.Usage(); len(u) != 1 {
				t.Errorf("the allowlist lost its entry in the repair: %v", u)
			}

			if be == "nftables" {
				// The whole table gone (nft flush ruleset): rebuilt with
				// the allowlist in it, in one transaction.
				run(t, "nft", "delete", "table", "inet", f.cfg.Table)
				if n, err := f.Ensure(); err != nil || n == 0 {
					t.Fatalf("Ensure after the table was deleted = %d, %v; want a repair", n, err)
				}
				if u, _ := f.Usage(); len(u) != 1 {
					t.Errorf("the rebuilt table lost the allowlist: %v", u)
				}
			}

			// A device that logs in again starts from zero (an ipset bitmap
			// keeps a deleted entry's counters for an add that sets none).
			if be == "iptables" { // traffic, as the kernel would have counted it
				run(t, "ipset", "add", "pp-allow", c.IP.String()+","+c.MAC.String(), "packets", "1234", "bytes", "1234", "-exist")
			}
			if err := f.Deny(c); err != nil {
				t.Fatal(err)
			}
			if err := f.Allow(c); err != nil {
				t.Fatal(err)
			}
			if u, _ := f.Usage(); u[c.IP] != (Usage{}) {
				t.Errorf("a client allowed again starts with counters %+v, want zero", u[c.IP])
			}

			if err := f.Deny(c); err != nil {
				t.Fatal(err)
			}
			if err := f.Deny(c); err != nil {
				t.Errorf("a second Deny of the same client: %v", err)
			}
			if u, _ := f.Usage(); len(u) != 0 {
				t.Errorf("Usage after Deny = %v", u)
			}
			if err := f.Teardown(); err != nil {
				t.Fatalf("Teardown: %v", err)
			}
			if be == "nftables" {
				if out := run(t, "nft", "list", "tables"); strings.Contains(out, f.cfg.Table) {
					t.Errorf("after Teardown: %s", out)
				}
			} else if left := kernelView(t, f); left != "" {
				t.Errorf("after Teardown the kernel still has:\n%s", left)
			}
		})
	}
}

// sameGate compares two kernel views, ignoring set elements (the
// allowlist is not part of the policy).
func sameGate(a, b string) bool {
	strip := func(s string) string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if !strings.Contains(l, "elements =") && !strings.HasPrefix(strings.TrimSpace(l), "counter packets") {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n")
	}
	return strip(a) == strip(b)
}

// TestWatchSeesOthersNotUs: the monitor reports a flush by another
// process within a second, and does not report our own allowlist
// changes (every login is one).
func TestWatchSeesOthersNotUs(t *testing.T) {
	for _, be := range []string{"nftables", "iptables"} {
		t.Run(be, func(t *testing.T) {
			f := kernelFirewall(t, be)
			if _, err := f.Ensure(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			drift := make(chan struct{}, 10)
			// Watch listens in the namespace of the thread that calls it:
			// the test's locked one.
			if err := f.Watch(ctx, func() { drift <- struct{}{} }); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				c := Client{IP: netip.AddrFrom4([4]byte{198, 51, 100, byte(30 + i)}), MAC: net.HardwareAddr{2, 0, 0x5e, 0, 0x53, byte(30 + i)}, RateDown: 8e6, RateUp: 8e6}
				if err := f.Allow(c); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-drift:
				t.Fatal("our own allowlist changes were reported as drift")
			case <-time.After(700 * time.Millisecond):
			}
			start := time.Now()
			if be == "nftables" {
				run(t, "nft", "flush", "chain", "inet", f.cfg.Table, chainForward)
			} else {
				run(t, "iptables", "-F")
			}
			select {
			case <-drift:
				t.Logf("drift reported %v after the flush", time.Since(start).Round(time.Millisecond))
			case <-time.After(3 * time.Second):
				t.Fatal("a flush by another process was not reported")
			}
		})
	}
}

// TestListMatchesNft: the allowlist read with our own dump parser
// (list) holds exactly what google/nftables's decoder reads from the same
// sets, pairs and counters, over a dump of several batches, with
// counters the kernel holds at values nft set; read without counters it
// holds the same pairs.
func TestListMatchesNft(t *testing.T) {
	f := kernelFirewall(t, "nftables")
	if _, err := f.Ensure(); err != nil {
		t.Fatal(err)
	}
	for i := 2; i < 254; i++ {
		c := Client{IP: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), MAC: net.HardwareAddr{2, 0, 0x5e, 0, 0x53, byte(i)}, RateDown: 8e6, RateUp: 8e6}
		if err := f.Allow(c); err != nil {
			t.Fatal(err)
		}
	}
	// Counters as traffic would leave them, large enough to need all 64 bits.
	for i, set := range []string{nftUpSet, nftDownSet} {
		ip := fmt.Sprintf("198.51.100.%d", 7+i)
		run(t, "nft", "delete", "element", "inet", f.cfg.Table, set, "{", ip, "}")
		run(t, "nft", "add", "element", "inet", f.cfg.Table, set, "{", ip, "counter", "packets", fmt.Sprint(5_000_000_000+uint64(i)), "bytes", fmt.Sprint(7_000_000_000_000+uint64(i)), "}")
	}
	b := f.be.(*backendNFTables)
	got, err := b.list(true)
	if err != nil {
		t.Fatal(err)
	}
	pairs, err := b.rd.GetSetElements(b.allow)
	if err != nil {
		t.Fatal(err)
	}
	counters := func(s *nftables.Set) map[netip.Addr]expr.Counter {
		elems, err := b.rd.GetSetElements(s)
		if err != nil {
			t.Fatal(err)
		}
		out := make(map[netip.Addr]expr.Counter)
		for _, e := range elems {
			if ip, ok := netip.AddrFromSlice(e.Key); ok && e.Counter != nil {
				out[ip] = *e.Counter
			}
		}
		return out
	}
	up, down := counters(b.up), counters(b.down)
	want := make(map[netip.Addr]entry)
	for _, p := range pairs {
		ip := netip.AddrFrom4([4]byte(p.Key[:4]))
		e := entry{Client: Client{IP: ip, MAC: net.HardwareAddr(p.Key[4:10])}}
		e.Packets, e.Bytes = up[ip].Packets, up[ip].Bytes
		e.PacketsDown, e.BytesDown = down[ip].Packets, down[ip].Bytes
		want[ip] = e
	}
	if len(got) != 252 || len(want) != 252 {
		t.Fatalf("list read %d pairs, google/nftables %d; want 252 each", len(got), len(want))
	}
	for _, e := range got {
		w := want[e.IP]
		if e.MAC.String() != w.MAC.String() || e.Usage != w.Usage {
			t.Errorf("%s: list read %s %+v, google/nftables %s %+v", e.IP, e.MAC, e.Usage, w.MAC, w.Usage)
		}
	}
	if e := want[netip.MustParseAddr("198.51.100.8")]; e.PacketsDown != 5_000_000_001 || e.BytesDown != 7_000_000_000_001 {
		t.Errorf("download counters set by nft read back as %+v", e.Usage)
	}
	// Reconcile's read, pairs only (sized from the read above, the MACs
	// sharing one array): the same pairs, no counters read.
	pairsOnly, err := b.list(false)
	if err != nil {
		t.Fatal(err)
	}
	if len(pairsOnly) != len(want) {
		t.Fatalf("list without counters read %d pairs, want %d", len(pairsOnly), len(want))
	}
	for _, e := range pairsOnly {
		if w, ok := want[e.IP]; !ok || e.MAC.String() != w.MAC.String() || e.Usage != (Usage{}) {
			t.Errorf("%s: list without counters read %s %+v, want %s and no counters", e.IP, e.MAC, e.Usage, w.MAC)
		}
	}

	// The next read without counters fills the same storage: after
	// devices left and others took their addresses, it reads exactly the
	// kernel's pairs, none left over from the read before.
	for i := 2; i < 120; i++ {
		ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		if err := f.Deny(Client{IP: ip, MAC: net.HardwareAddr{2, 0, 0x5e, 0, 0x53, byte(i)}}); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := f.Allow(Client{IP: ip, MAC: net.HardwareAddr{2, 0, 0x5e, 0, 0x54, byte(i)}, RateDown: 8e6, RateUp: 8e6}); err != nil {
				t.Fatal(err)
			}
		}
	}
	again, err := b.list(false)
	if err != nil {
		t.Fatal(err)
	}
	if &again[0] != &pairsOnly[0] {
		t.Error("the second read without counters did not reuse the first's slice")
	}
	if pairs, err = b.rd.GetSetElements(b.allow); err != nil {
		t.Fatal(err)
	}
	kernel := make(map[netip.Addr]string)
	for _, p := range pairs {
		kernel[netip.AddrFrom4([4]byte(p.Key[:4]))] = net.HardwareAddr(p.Key[4:10]).String()
	}
	if len(again) != len(kernel) || len(kernel) != 252-59 {
		t.Fatalf("second read: %d pairs, google/nftables %d; want %d", len(again), len(kernel), 252-59)
	}
	for _, e := range again {
		if mac, ok := kernel[e.IP]; !ok || mac != e.MAC.String() {
			t.Errorf("second read: %s %s, google/nftables %q", e.IP, e.MAC, mac)
		}
	}
}

// TestWantKeepsNewerChanges: a list handed over after Allow and Deny
// calls that came after its mark does not undo them; changes before the
// mark are the list's to decide.
func TestWantKeepsNewerChanges(t *testing.T) {
	f := kernelFirewall(t, "nftables")
	if _, err := f.Ensure(); err != nil {
		t.Fatal(err)
	}
	client := func(n byte) Client {
		return Client{IP: netip.AddrFrom4([4]byte{198, 51, 100, n}), MAC: net.HardwareAddr{2, 0, 0x5e, 0, 0x53, n}, RateDown: 8e6, RateUp: 8e6}
	}
	early, ending, late := client(40), client(41), client(42)
	for _, c := range []Client{early, ending} {
		if err := f.Allow(c); err != nil {
			t.Fatal(err)
		}
	}
	mark := f.WantMark()
	// After the mark: one login, one end.
	if err := f.Allow(late); err != nil {
		t.Fatal(err)
	}
	if err := f.Deny(ending); err != nil {
		t.Fatal(err)
	}
	// The list read at the mark: ending still in it, late not yet, and
	// early gone (ended before the mark; the list decides).
	f.Want(mark, []Client{ending})
	if _, err := f.Reconcile(); err != nil {
		t.Fatal(err)
	}
	u, err := f.Usage()
	if err != nil {
		t.Fatal(err)
	}
	_, hasLate := u[late.IP]
	if len(u) != 1 || !hasLate {
		t.Errorf("after the hand-over the allowlist holds %v; want only %s", u, late.IP)
	}
}

// TestWalledGardenEditReachesNFTables: an edit rebuilds the chains whose
// rules it changes even though the kernel still holds the last build
// (no drift to notice), counts as no repair, and the next check finds
// nothing to do.
func TestWalledGardenEditReachesNFTables(t *testing.T) {
	f := kernelFirewall(t, "nftables")
	if _, err := f.Ensure(); err != nil {
		t.Fatal(err)
	}
	b := f.be.(*backendNFTables)
	read := func() map[string][][]byte {
		fps, err := b.readFingerprints(b.chainRules(chains(f.cfg)))
		if err != nil {
			t.Fatal(err)
		}
		return fps
	}
	before := read()
	if err := f.SetWalledGarden([]netip.Prefix{netip.MustParsePrefix("192.0.2.200/32")}); err != nil {
		t.Fatal(err)
	}
	after := read()
	changed := 0
	for name := range after {
		if !sameFingerprints(before[name], after[name]) {
			changed++
		}
	}
	if changed == 0 {
		t.Fatal("the walled-garden edit left every chain in the kernel as it was")
	}
	if n, err := f.Ensure(); err != nil || n != 0 {
		t.Errorf("Ensure after the edit = %d, %v; want 0 repairs", n, err)
	}
}

// TestKernelFingerprints: the check of our chains reads the kernel's
// rules in place. A rule whose counter moved reads as before and is not
// drift; a rule changed by hand reads differently and Ensure repairs its
// chain; a chain that is not there reads as nil, an empty one as empty.
// The counts are set through google/nftables (a rule replaced with
// counter values), and read back to make sure they moved.
func TestKernelFingerprints(t *testing.T) {
	f := kernelFirewall(t, "nftables")
	if _, err := f.Ensure(); err != nil {
		t.Fatal(err)
	}
	b := f.be.(*backendNFTables)
	want := b.chainRules(chains(f.cfg))
	read := func() map[string][][]byte {
		t.Helper()
		fps, err := b.readFingerprints(want)
		if err != nil {
			t.Fatal(err)
		}
		return fps
	}
	before := read()
	// A rule with a counter, found with google/nftables's own reading.
	var counted *nftables.Rule
	var at int
	for name := range want {
		rules, err := b.rd.GetRules(b.table, &nftables.Chain{Name: name, Table: b.table})
		if err != nil {
			t.Fatal(err)
		}
		if len(rules) != len(before[name]) {
			t.Fatalf("chain %s: %d rules, fingerprints of %d", name, len(rules), len(before[name]))
		}
		for i, r := range rules {
			for _, e := range r.Exprs {
				if _, ok := e.(*expr.Counter); ok && counted == nil {
					counted, at = r, i
				}
			}
		}
	}
	if counted == nil {
		t.Fatal("no rule of ours has a counter")
	}
	replace := func(exprs []expr.Any) {
		t.Helper()
		b.rd.ReplaceRule(&nftables.Rule{Table: b.table, Chain: counted.Chain, Handle: counted.Handle, Exprs: exprs})
		if err := b.rd.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	moved := make([]expr.Any, len(counted.Exprs))
	for i, e := range counted.Exprs {
		if _, ok := e.(*expr.Counter); ok {
			e = &expr.Counter{Packets: 7, Bytes: 700}
		}
		moved[i] = e
	}
	replace(moved)
	rules, err := b.rd.GetRules(b.table, counted.Chain)
	if err != nil {
		t.Fatal(err)
	}
	var packets uint64
	for _, e := range rules[at].Exprs {
		if c, ok := e.(*expr.Counter); ok {
			packets = c.Packets
		}
	}
	if packets != 7 {
		t.Fatalf("the counter reads %d packets after the replace, want 7", packets)
	}
	name := counted.Chain.Name
	if got := read(); !sameFingerprints(got[name], before[name]) {
		t.Errorf("chain %s: a moved counter changed its fingerprints", name)
	}
	if n, err := f.Ensure(); err != nil || n != 0 {
		t.Errorf("Ensure after a counter moved = %d, %v; want 0 repairs", n, err)
	}

	// The same rule without its counter: drift.
	var changed []expr.Any
	for _, e := range counted.Exprs {
		if _, ok := e.(*expr.Counter); !ok {
			changed = append(changed, e)
		}
	}
	replace(changed)
	if got := read(); sameFingerprints(got[name], before[name]) {
		t.Errorf("chain %s: a changed rule left its fingerprints as they were", name)
	}
	if n, err := f.Ensure(); err != nil || n != 1 {
		t.Errorf("Ensure after a rule changed by hand = %d, %v; want 1 repair", n, err)
	}
	if got := read(); !sameFingerprints(got[name], before[name]) {
		t.Errorf("chain %s: not as built after the repair", name)
	}

	// Chains not there, and an empty one.
	b.rd.AddChain(&nftables.Chain{Name: "pp-test-empty", Table: b.table})
	if err := b.rd.Flush(); err != nil {
		t.Fatal(err)
	}
	fps, err := b.readFingerprints(map[string][][]expr.Any{"pp-test-empty": nil, "pp-test-missing": nil})
	if err != nil {
		t.Fatal(err)
	}
	if fps["pp-test-empty"] == nil || len(fps["pp-test-empty"]) != 0 || fps["pp-test-missing"] != nil {
		t.Errorf("empty chain read as %v (want empty, not nil), missing chain as %v (want nil)", fps["pp-test-empty"], fps["pp-test-missing"])
	}
}
