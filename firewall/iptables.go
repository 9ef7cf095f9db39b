package firewall

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

// backendIPTables keeps the gate in iptables chains (set up with
// go-iptables, which runs the iptables command: only at start, on drift
// and on policy changes) and two ipsets changed over netlink per visitor.
// It is for hosts without nf_tables; elsewhere backendNFTables is the
// default.
//
// Fail-closed: "iptables -F" empties every chain of the filter table,
// ours and the jumps to them, and "-t nat -F" the nat table. So the
// forward and input chains have a guard in another table, derived from
// the same rules (rejects become drops; rate limits stay in filter): no
// single-table flush lets a captive visitor out, and the monitor repairs
// the flushed table within a second. Without nat the portal redirect is
// gone, and port 80 meets the forward chains' drop.
//
// The guard lives in the security table, which the kernel runs after
// filter: what filter rejects (HTTPS, with a reset that makes a phone give
// up at once) never reaches it, and what filter would have rejected when
// flushed, it drops. Legacy iptables without the security table
// (iptable_security) get the guard in mangle, which runs before filter:
// there captive HTTPS is dropped rather than reset.
type backendIPTables struct {
	log        *slog.Logger
	ipt4, ipt6 ruleTable // ipt6 nil when the host has no ip6tables
	lan        string
	prefix     netip.Prefix
	allowSet   string // bitmap:ip,mac: who may leave, and their upload counters
	downSet    string // bitmap:ip: download counters
	guardTable string // "security", or "mangle" where there is none

	// listed holds each chain's listing (iptables -S) as read right
	// after we built or checked it, with the rules it was read for. A
	// check compares the chain's listing with it: one fork per chain
	// instead of an `iptables -C` per rule (some 80 forks, most of a
	// resync's 3 s here, more on a router). Guarded by the firewall's
	// chainsMu, as every build and check is.
	listed map[string]listing
}

// listing is a chain's `iptables -S` output, and the rules it holds.
type listing struct {
	rules string // the wanted rules, joined (see rulesKey)
	lines []string
}

// rulesKey joins a chain's wanted rules into one comparable string.
func rulesKey(rules [][]string) string {
	var b strings.Builder
	for _, r := range rules {
		b.WriteString(strings.Join(r, " "))
		b.WriteByte('\n')
	}
	return b.String()
}

// key names spec's chain in listed.
func (spec iptChain) key() string {
	fam := "4"
	if spec.v6 {
		fam = "6"
	}
	return fam + "/" + spec.table + "/" + spec.name
}

// ruleTable is the iptables abstraction the chains need; *iptables.IPTables
// satisfies it and tests use a fake.
type ruleTable interface {
	ChainExists(table, chain string) (bool, error)
	NewChain(table, chain string) error
	ClearChain(table, chain string) error
	ClearAndDeleteChain(table, chain string) error
	RenameChain(table, oldChain, newChain string) error
	List(table, chain string) ([]string, error)
	Exists(table, chain string, rulespec ...string) (bool, error)
	Insert(table, chain string, pos int, rulespec ...string) error
	Append(table, chain string, rulespec ...string) error
	DeleteIfExists(table, chain string, rulespec ...string) error
}

var _ ruleTable = (*iptables.IPTables)(nil)

func newIPTables(cfg Config) (*backendIPTables, error) {
	ipt4, err := iptables.NewWithProtocol(iptables.ProtocolIPv4)
	if err != nil {
		return nil, fmt.Errorf("finding iptables: %w", err)
	}
	b := &backendIPTables{
		log: cfg.Logger, ipt4: ipt4, lan: cfg.LANIface, prefix: cfg.LANPrefix,
		allowSet: cfg.SetName, downSet: cfg.SetName + "-down", guardTable: "security",
	}
	if _, err := ipt4.ChainExists("security", "FORWARD"); err != nil {
		b.guardTable = "mangle"
		b.log.Warn("iptables has no security table (iptable_security); the fail-closed guard goes into mangle, where captive visitors' HTTPS is dropped rather than reset", "err", err)
	}
	if ipt6, err := iptables.NewWithProtocol(iptables.ProtocolIPv6); err == nil {
		b.ipt6 = ipt6
	} else {
		// Not fatal: a host without IPv6 needs neither chain. One with
		// IPv6 is left open, so the warning names what is exposed.
		b.log.Warn("ip6tables not found; parkportal blocks neither IPv6 forwarding from visitors nor their IPv6 access to the gateway (admin console, DAS)", "err", err)
	}
	return b, nil
}

func (b *backendIPTables) String() string { return "iptables" }

// iptChain is a chain rendered for iptables: its table, the built-in chain
// that jumps to it and the jump rule, and its rule specs.
type iptChain struct {
	v6    bool
	table string
	name  string
	hook  string
	jump  []string
	rules [][]string
}

// guardSuffix names a chain's guard (see backendIPTables).
const guardSuffix = "-guard"

// specs renders the policy for iptables: each chain where its hook runs
// it, and for the forward and input chains a guard in b.guardTable.
func (b *backendIPTables) specs(chs []chain) []iptChain {
	var out []iptChain
	for _, c := range chs {
		dir := "-i"
		if c.out {
			dir = "-o"
		}
		spec := iptChain{v6: c.family == ipv6, name: c.name}
		switch c.hook {
		case hookNAT:
			spec.table, spec.hook = "nat", "PREROUTING"
		case hookForward:
			spec.table, spec.hook = "filter", "FORWARD"
		case hookInput:
			spec.table, spec.hook = "filter", "INPUT"
		}
		spec.jump = []string{dir, b.lan, "-j", c.name}
		for _, r := range c.rules {
			spec.rules = append(spec.rules, b.ruleSpec(r, c.family, false))
		}
		out = append(out, spec)
		if c.hook == hookNAT || c.out {
			continue // flushing nat or the counters opens nothing
		}
		guard := spec
		guard.table, guard.name = b.guardTable, c.name+guardSuffix
		guard.jump = []string{dir, b.lan, "-j", guard.name}
		guard.rules = nil
		for _, r := range c.rules {
			guard.rules = append(guard.rules, b.ruleSpec(r, c.family, true))
		}
		out = append(out, guard)
	}
	return out
}

// ruleSpec renders one rule. For a guard, rejects become drops (REJECT is
// filter-only), the DNS budget is left to the filter chain and lookups do
// not count.
func (b *backendIPTables) ruleSpec(r rule, fam family, guard bool) []string {
	var s []string
	if r.srcMAC != nil {
		s = append(s, "-m", "mac", "--mac-source", strings.ToUpper(r.srcMAC.String()))
	}
	if r.allowed {
		s = append(s, "-m", "set", "--match-set", b.allowSet, "src,src")
		if !r.countUp || guard {
			s = append(s, "!", "--update-counters")
		}
	}
	if r.download {
		s = append(s, "-m", "set", "--match-set", b.downSet, "dst")
	}
	if r.dst.IsValid() {
		s = append(s, "-d", r.dst.String())
	}
	switch r.proto {
	case tcp, udp:
		s = append(s, "-p", r.proto.String(), "-m", r.proto.String())
		if r.dport != 0 {
			s = append(s, "--dport", strconv.Itoa(int(r.dport)))
		}
	case icmp:
		s = append(s, "-p", "icmp")
	case icmpv6:
		s = append(s, "-p", "ipv6-icmp")
		if r.icmp6Type != 0 {
			s = append(s, "-m", "icmp6", "--icmpv6-type", icmp6Name(r.icmp6Type))
		}
	}
	if r.dnsBudget && !guard {
		s = append(s, "-m", "hashlimit", "--hashlimit-upto", strconv.Itoa(dnsRate)+"/sec", "--hashlimit-burst", strconv.Itoa(dnsBurst),
			"--hashlimit-mode", "srcip", "--hashlimit-name", "pp-dns")
	}
	if r.established {
		s = append(s, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED")
	}
	v := r.verdict
	if guard && (v == rejectTCP || v == rejectPort) {
		v = drop
	}
	switch v {
	case pass:
		s = append(s, "-j", "RETURN")
	case accept:
		s = append(s, "-j", "ACCEPT")
	case drop:
		s = append(s, "-j", "DROP")
	case rejectTCP:
		s = append(s, "-j", "REJECT", "--reject-with", "tcp-reset")
	case rejectPort:
		if fam == ipv6 {
			s = append(s, "-j", "REJECT", "--reject-with", "icmp6-port-unreachable")
		} else {
			s = append(s, "-j", "REJECT", "--reject-with", "icmp-port-unreachable")
		}
	case redirect:
		s = append(s, "-j", "REDIRECT", "--to-ports", strconv.Itoa(int(r.toPort)))
	}
	return s
}

func icmp6Name(t uint8) string {
	for _, x := range icmp6Types {
		if x.typ == t {
			return x.name
		}
	}
	return strconv.Itoa(int(t))
}

func (b *backendIPTables) tableFor(spec iptChain) ruleTable {
	if spec.v6 {
		return b.ipt6
	}
	return b.ipt4
}

// ensure builds (or repairs) the sets and our chains; it returns how many
// chains or jumps it had to repair.
func (b *backendIPTables) ensure(chs []chain, _ func() []Client) (repairs int, err error) {
	// The sets must exist before rules that name them.
	for _, set := range []struct{ name, typ string }{{b.allowSet, "bitmap:ip,mac"}, {b.downSet, "bitmap:ip"}} {
		if ok, err := ipsetExists(set.name); err != nil || !ok {
			if err := createBitmapSet(set.name, set.typ, b.prefix); err != nil {
				return 0, err
			}
		}
	}
	return b.ensureChains(chs)
}

// ensureChains makes our chains hold exactly their rules and be jumped to.
// It only rebuilds a chain that drifted, so a periodic call costs a few
// `iptables -C` and no gap in enforcement.
func (b *backendIPTables) ensureChains(chs []chain) (repairs int, err error) {
	var errs []error
	for _, spec := range b.specs(chs) {
		ipt := b.tableFor(spec)
		if ipt == nil {
			continue
		}
		known, ok := b.listed[spec.key()]
		if !ok || known.rules != rulesKey(spec.rules) {
			known.lines = nil // not read for these rules: check rule by rule
		}
		fixed, lines, err := ensureChain(ipt, spec, known.lines)
		if b.listed == nil {
			b.listed = make(map[string]listing)
		}
		if err != nil || lines == nil {
			delete(b.listed, spec.key())
		} else {
			b.listed[spec.key()] = listing{rules: rulesKey(spec.rules), lines: lines}
		}
		if err != nil {
			errs = append(errs, err)
		}
		if fixed {
			repairs++
			b.log.Warn("repaired firewall chain", "table", spec.table, "chain", spec.name, "ipv6", spec.v6)
		}
	}
	return repairs, errors.Join(errs...)
}

// newSuffix names the chain a drifted chain is rebuilt in.
const newSuffix = "-new"

// ensureChain makes spec's chain hold exactly its rules and be jumped to,
// and returns its listing as it now is (nil when that is not known).
// known is the chain's listing when it last held exactly its rules (nil:
// not known): a listing equal to it needs no rule-by-rule check.
//
// A drifted chain that is in use is never emptied in place: the new one
// is filled under another name, jumped to, and only then the old jump and
// chain go and the new chain takes the name. Every packet meets one
// complete chain (for a moment, both), never an empty one.
func ensureChain(ipt ruleTable, spec iptChain, known []string) (fixed bool, listed []string, err error) {
	fixed, listed, err = repairChain(ipt, spec, known)
	if err != nil || listed != nil {
		return fixed, listed, err
	}
	// Built or rebuilt: read back what the kernel now holds.
	lines, err := ipt.List(spec.table, spec.name)
	if err != nil || len(lines)-1 != len(spec.rules) {
		return fixed, nil, nil // checked rule by rule next time
	}
	return fixed, lines, nil
}

// repairChain is ensureChain's work; it returns the listing it read when
// the chain's rules were found whole, nil when it changed them.
func repairChain(ipt ruleTable, spec iptChain, known []string) (fixed bool, listed []string, err error) {
	tmp := spec.name + newSuffix
	exists, err := ipt.ChainExists(spec.table, spec.name)
	if err != nil {
		return false, nil, fmt.Errorf("checking chain %s/%s: %w", spec.table, spec.name, err)
	}
	tmpExists, err := ipt.ChainExists(spec.table, tmp)
	if err != nil {
		return false, nil, fmt.Errorf("checking chain %s/%s: %w", spec.table, tmp, err)
	}
	if tmpExists && !exists {
		// A rebuild stopped between removing the old chain and renaming
		// the new one: the new one is the chain (checked below).
		if err := ipt.RenameChain(spec.table, tmp, spec.name); err != nil {
			return false, nil, fmt.Errorf("renaming chain %s/%s: %w", spec.table, tmp, err)
		}
		exists, tmpExists = true, false
	}
	jump := func(name string) []string { return append(spec.jump[:len(spec.jump)-1:len(spec.jump)-1], name) }
	hooked := false
	if exists {
		if hooked, err = ipt.Exists(spec.table, spec.hook, spec.jump...); err != nil {
			return false, nil, fmt.Errorf("checking jump to %s: %w", spec.name, err)
		}
	}
	matches := false
	var lines []string
	if exists {
		if matches, lines, err = chainMatches(ipt, spec.table, spec.name, spec.rules, known); err != nil {
			return false, nil, err
		}
	}
	switch {
	case !exists:
		if err := fillChain(ipt, spec.table, spec.name, spec.rules); err != nil {
			return false, nil, err
		}
	case !matches && !hooked:
		fixed = true
		if err := ipt.ClearChain(spec.table, spec.name); err != nil {
			return fixed, nil, fmt.Errorf("clearing chain %s/%s: %w", spec.table, spec.name, err)
		}
		if err := appendRules(ipt, spec.table, spec.name, spec.rules); err != nil {
			return fixed, nil, err
		}
	case !matches && hooked:
		fixed = true
		if tmpExists {
			if err := ipt.DeleteIfExists(spec.table, spec.hook, jump(tmp)...); err != nil {
				return fixed, nil, fmt.Errorf("removing jump to %s: %w", tmp, err)
			}
			if err := ipt.ClearAndDeleteChain(spec.table, tmp); err != nil {
				return fixed, nil, fmt.Errorf("removing chain %s/%s: %w", spec.table, tmp, err)
			}
			tmpExists = false
		}
		if err := fillChain(ipt, spec.table, tmp, spec.rules); err != nil {
			return fixed, nil, err
		}
		if err := ipt.Insert(spec.table, spec.hook, 1, jump(tmp)...); err != nil {
			return fixed, nil, fmt.Errorf("adding jump %s -> %s: %w", spec.hook, tmp, err)
		}
		if err := ipt.DeleteIfExists(spec.table, spec.hook, spec.jump...); err != nil {
			return fixed, nil, fmt.Errorf("removing jump to %s: %w", spec.name, err)
		}
		if err := ipt.ClearAndDeleteChain(spec.table, spec.name); err != nil {
			return fixed, nil, fmt.Errorf("removing chain %s/%s: %w", spec.table, spec.name, err)
		}
		if err := ipt.RenameChain(spec.table, tmp, spec.name); err != nil {
			return fixed, nil, fmt.Errorf("renaming chain %s/%s: %w", spec.table, tmp, err)
		}
		return fixed, nil, nil // the renamed chain carries its jump
	}
	if !hooked {
		if err := ipt.Insert(spec.table, spec.hook, 1, spec.jump...); err != nil {
			return fixed, nil, fmt.Errorf("adding jump %s -> %s: %w", spec.hook, spec.name, err)
		}
		fixed = fixed || exists
	}
	if tmpExists {
		// Left over from an interrupted rebuild; the chain is whole now.
		if err := ipt.DeleteIfExists(spec.table, spec.hook, jump(tmp)...); err != nil {
			return fixed, nil, fmt.Errorf("removing jump to %s: %w", tmp, err)
		}
		if err := ipt.ClearAndDeleteChain(spec.table, tmp); err != nil {
			return fixed, nil, fmt.Errorf("removing chain %s/%s: %w", spec.table, tmp, err)
		}
	}
	if !matches {
		return fixed, nil, nil
	}
	return fixed, lines, nil
}

// fillChain creates a chain and appends its rules. Nothing jumps to it yet.
func fillChain(ipt ruleTable, table, name string, rules [][]string) error {
	if err := ipt.NewChain(table, name); err != nil {
		return fmt.Errorf("creating chain %s/%s: %w", table, name, err)
	}
	return appendRules(ipt, table, name, rules)
}

func appendRules(ipt ruleTable, table, name string, rules [][]string) error {
	for _, r := range rules {
		if err := ipt.Append(table, name, r...); err != nil {
			return fmt.Errorf("adding rule %q to %s/%s: %w", strings.Join(r, " "), table, name, err)
		}
	}
	return nil
}

// chainMatches reports whether the chain holds exactly rules, and
// returns its listing: the right count and, when known (the listing it
// had when it last held them) is given, the same listing; otherwise each
// rule present (iptables -C, a fork each).
func chainMatches(ipt ruleTable, table, name string, rules [][]string, known []string) (bool, []string, error) {
	list, err := ipt.List(table, name)
	if err != nil {
		return false, nil, fmt.Errorf("listing %s/%s: %w", table, name, err)
	}
	// List starts with the chain's own "-N name" line.
	if len(list)-1 != len(rules) {
		return false, list, nil
	}
	if known != nil {
		return slices.Equal(list, known), list, nil
	}
	for _, r := range rules {
		ok, err := ipt.Exists(table, name, r...)
		if err != nil {
			return false, nil, fmt.Errorf("checking rule in %s/%s: %w", table, name, err)
		}
		if !ok {
			return false, list, nil
		}
	}
	return true, list, nil
}

func (b *backendIPTables) present(chs []chain) (bool, error) {
	for _, spec := range b.specs(chs) {
		ipt := b.tableFor(spec)
		if ipt == nil {
			continue
		}
		exists, err := ipt.ChainExists(spec.table, spec.name)
		if err != nil {
			return false, fmt.Errorf("checking chain %s/%s: %w", spec.table, spec.name, err)
		}
		if exists {
			return true, nil
		}
	}
	ok, err := ipsetExists(b.allowSet)
	return ok && err == nil, nil
}

// teardown deletes our jumps, chains and sets. Missing pieces are fine:
// cleanup must work after a crash left half a setup.
func (b *backendIPTables) teardown(chs []chain) error {
	err := b.removeChains(chs)
	for _, set := range []string{b.allowSet, b.downSet} {
		err = errors.Join(err, destroySet(set))
	}
	return err
}

func (b *backendIPTables) removeChains(chs []chain) error {
	var errs []error
	for _, spec := range b.specs(chs) {
		ipt := b.tableFor(spec)
		if ipt == nil {
			continue
		}
		for _, name := range []string{spec.name, spec.name + newSuffix} {
			exists, err := ipt.ChainExists(spec.table, name)
			if err != nil {
				errs = append(errs, fmt.Errorf("checking chain %s: %w", name, err))
				continue
			}
			// Without the chain there can be no jump to it (and iptables
			// cannot even check for one).
			if !exists {
				continue
			}
			jump := append(spec.jump[:len(spec.jump)-1:len(spec.jump)-1], name)
			if err := ipt.DeleteIfExists(spec.table, spec.hook, jump...); err != nil {
				errs = append(errs, fmt.Errorf("removing jump to %s: %w", name, err))
			}
			if err := ipt.ClearAndDeleteChain(spec.table, name); err != nil {
				errs = append(errs, fmt.Errorf("removing chain %s/%s: %w", spec.table, name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// add lets c out: its pair into the allowlist, its address into the
// download counters. Each is one netlink message.
func (b *backendIPTables) add(c Client) error {
	if err := setAdd(b.allowSet, c.IP, c.MAC); err != nil {
		return err
	}
	return setAdd(b.downSet, c.IP, nil)
}

func (b *backendIPTables) del(c Client) error {
	return errors.Join(setDel(b.allowSet, c.IP, c.MAC), setDel(b.downSet, c.IP, nil))
}

// list returns the allowlist, with each pair's counters if counted:
// upload from the allowlist itself, download from the counter set. Both
// count IP packets in the forward path (the filter table), so the two
// directions are measured at the same place.
func (b *backendIPTables) list(counted bool) ([]entry, error) {
	allowed, err := listAllowSet(b.allowSet)
	if err != nil {
		return nil, err
	}
	var down []setEntry
	if counted {
		if down, err = listAllowSet(b.downSet); err != nil {
			return nil, err
		}
	}
	downOf := make(map[netip.Addr]setEntry, len(down))
	for _, d := range down {
		downOf[d.ip] = d
	}
	out := make([]entry, 0, len(allowed))
	for _, a := range allowed {
		mac, err := net.ParseMAC(a.mac)
		if err != nil {
			continue
		}
		d := downOf[a.ip]
		out = append(out, entry{
			Client: Client{IP: a.ip, MAC: mac},
			Usage:  Usage{Packets: a.packets, Bytes: a.bytes, PacketsDown: d.packets, BytesDown: d.bytes},
		})
	}
	return out, nil
}
