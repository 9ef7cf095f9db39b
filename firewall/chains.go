package firewall

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

// Our chains. Every name starts with "pp-" so nothing we add or remove can
// touch another tool's rules (fw4, docker, an operator's own chains).
const (
	chainPrerouting = "pp-prerouting" // nat: redirect unauthorised HTTP to the portal
	chainForward    = "pp-forward"    // filter: who may leave the LAN
	chainInput      = "pp-input"      // filter: what visitors may reach on the gateway
	chainForward6   = "pp-forward6"   // filter (IPv6): visitors may not leave over IPv6
	chainInput6     = "pp-input6"     // filter (IPv6): what visitors may reach on the gateway over IPv6
)

// ruleTable is the iptables abstraction chains need; *iptables.IPTables
// satisfies it and tests use a fake.
type ruleTable interface {
	ChainExists(table, chain string) (bool, error)
	NewChain(table, chain string) error
	ClearChain(table, chain string) error
	ClearAndDeleteChain(table, chain string) error
	List(table, chain string) ([]string, error)
	Exists(table, chain string, rulespec ...string) (bool, error)
	Insert(table, chain string, pos int, rulespec ...string) error
	Append(table, chain string, rulespec ...string) error
	DeleteIfExists(table, chain string, rulespec ...string) error
}

var _ ruleTable = (*iptables.IPTables)(nil)

// chainSpec is one of our chains: where it hooks in and what it holds.
type chainSpec struct {
	v6    bool
	table string
	chain string
	hook  string   // built-in chain we jump from
	jump  []string // the jump rule in hook
	rules [][]string
}

// chainSpecs renders the desired ruleset from the config. Every value in
// it comes from parsed types (netip, ints), never from request data.
func (f *Firewall) chainSpecs() []chainSpec {
	c := f.cfg
	lan := c.LANIface
	allowed := []string{"-m", "set", "--match-set", c.SetName, "src,src"}
	gw := c.GatewayIP.String()

	var garden [][]string
	for _, p := range c.WalledGarden {
		garden = append(garden, []string{"-d", p.String(), "-j", "RETURN"})
	}

	pre := [][]string{
		append(append([]string{}, allowed...), "-j", "RETURN"),
		{"-d", gw + "/32", "-j", "RETURN"},
	}
	pre = append(pre, garden...)
	pre = append(pre, []string{"-p", "tcp", "-m", "tcp", "--dport", "80", "-j", "REDIRECT", "--to-ports", strconv.Itoa(c.PortalPort)})

	fwd := [][]string{append(append([]string{}, allowed...), "-j", "RETURN")}
	fwd = append(fwd, garden...)
	fwd = append(fwd,
		// HTTPS cannot be intercepted without forging certificates, so it
		// fails fast: a reset makes the phone give up at once instead of
		// spinning until a timeout.
		[]string{"-p", "tcp", "-m", "tcp", "--dport", "443", "-j", "REJECT", "--reject-with", "tcp-reset"},
		[]string{"-j", "DROP"},
	)

	in := [][]string{
		// The staff console and the RADIUS CoA port are never for visitors.
		{"-p", "tcp", "-m", "tcp", "--dport", strconv.Itoa(c.AdminPort), "-j", "DROP"},
		{"-p", "tcp", "-m", "tcp", "--dport", strconv.Itoa(c.PortalPort), "-j", "ACCEPT"},
		{"-p", "udp", "-m", "udp", "--dport", "67", "-j", "ACCEPT"},
		// DNS: unlimited once logged in. Before that, a budget per device
		// (10 queries/s, bursts of 30) that a phone's page loads never
		// reach and that makes tunnelling a connection through the
		// gateway's resolver useless; DNS over TCP, which only tunnels
		// and zone transfers need before login, waits for the login.
		append(append([]string{}, allowed...), "-p", "udp", "-m", "udp", "--dport", "53", "-j", "ACCEPT"),
		append(append([]string{}, allowed...), "-p", "tcp", "-m", "tcp", "--dport", "53", "-j", "ACCEPT"),
		{"-p", "udp", "-m", "udp", "--dport", "53", "-m", "hashlimit", "--hashlimit-upto", "10/sec", "--hashlimit-burst", "30",
			"--hashlimit-mode", "srcip", "--hashlimit-name", "pp-dns", "-j", "ACCEPT"},
		{"-p", "icmp", "-j", "ACCEPT"},
		// Anything else on the gateway (ssh, LuCI, ...) is not for a
		// public park's visitors.
		{"-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"},
		{"-j", "DROP"},
	}
	if c.TLSPort != 0 {
		in = append([][]string{{"-p", "tcp", "-m", "tcp", "--dport", strconv.Itoa(c.TLSPort), "-j", "ACCEPT"}}, in...)
	}
	if c.CoAPort != 0 {
		in = append([][]string{{"-p", "udp", "-m", "udp", "--dport", strconv.Itoa(c.CoAPort), "-j", "DROP"}}, in...)
	}

	// Staff devices go first in every chain: never captive, never
	// limited to the portal on the gateway.
	var trusted [][]string
	for _, m := range c.TrustedMACs {
		trusted = append(trusted, []string{"-m", "mac", "--mac-source", strings.ToUpper(m.String()), "-j", "RETURN"})
	}
	pre = append(append([][]string{}, trusted...), pre...)
	fwd = append(append([][]string{}, trusted...), fwd...)
	in = append(append([][]string{}, trusted...), in...)

	// IPv6 to the gateway itself. The LAN always has IPv6 (link-local
	// addresses, and OpenWrt adds a ULA prefix) and a wildcard listener
	// (net.Listen on "0.0.0.0:N" is a dual-stack socket on Linux) hears
	// it, so pp-input alone would leave the console, the DAS, ssh and
	// LuCI open to visitors over IPv6. The portal is IPv4-only and
	// visitors are not forwarded over IPv6, so the chain goes further
	// than those two ports: it keeps only what IPv6 on a LAN needs to
	// work at all (neighbour discovery, router solicitations, echo as
	// pp-input allows ICMP, DHCPv6) and drops the rest. DNS over IPv6 is
	// refused rather than served: a per-device budget cannot hold there
	// (a visitor can mint addresses at will, and the allowlist is IPv4),
	// and a quick refusal makes a phone whose router advertisement named
	// an IPv6 resolver move on to the IPv4 one at once. Router
	// advertisements from the LAN are dropped: the gateway is the LAN's
	// router, so any other is a rogue.
	//
	// The admin and DAS drops come first although the final DROP would
	// catch them: they must win over every ACCEPT below whatever port
	// the operator picked, and their counters show who probed them.
	in6 := [][]string{
		{"-p", "tcp", "-m", "tcp", "--dport", strconv.Itoa(c.AdminPort), "-j", "DROP"},
	}
	if c.CoAPort != 0 {
		in6 = append(in6, []string{"-p", "udp", "-m", "udp", "--dport", strconv.Itoa(c.CoAPort), "-j", "DROP"})
	}
	for _, typ := range []string{"router-solicitation", "neighbour-solicitation", "neighbour-advertisement", "echo-request"} {
		in6 = append(in6, []string{"-p", "ipv6-icmp", "-m", "icmp6", "--icmpv6-type", typ, "-j", "ACCEPT"})
	}
	in6 = append(in6,
		[]string{"-p", "udp", "-m", "udp", "--dport", "547", "-j", "ACCEPT"},
		[]string{"-p", "udp", "-m", "udp", "--dport", "53", "-j", "REJECT", "--reject-with", "icmp6-port-unreachable"},
		[]string{"-p", "tcp", "-m", "tcp", "--dport", "53", "-j", "REJECT", "--reject-with", "tcp-reset"},
		[]string{"-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"},
		[]string{"-j", "DROP"},
	)
	in6 = append(append([][]string{}, trusted...), in6...)

	return []chainSpec{
		{table: "nat", chain: chainPrerouting, hook: "PREROUTING", jump: []string{"-i", lan, "-j", chainPrerouting}, rules: pre},
		{table: "filter", chain: chainForward, hook: "FORWARD", jump: []string{"-i", lan, "-j", chainForward}, rules: fwd},
		{table: "filter", chain: chainInput, hook: "INPUT", jump: []string{"-i", lan, "-j", chainInput}, rules: in},
		// IPv6: the allowlist set is IPv4 (bitmap:ip,mac), so visitors are
		// kept off IPv6 forwarding entirely rather than half-authorised;
		// the portal and the Internet are reached over IPv4.
		{v6: true, table: "filter", chain: chainForward6, hook: "FORWARD", jump: []string{"-i", lan, "-j", chainForward6},
			rules: append(append([][]string{}, trusted...),
				[]string{"-p", "tcp", "-m", "tcp", "--dport", "443", "-j", "REJECT", "--reject-with", "tcp-reset"},
				[]string{"-j", "DROP"},
			)},
		{v6: true, table: "filter", chain: chainInput6, hook: "INPUT", jump: []string{"-i", lan, "-j", chainInput6}, rules: in6},
	}
}

// ensureChains makes our chains hold exactly the desired rules and be
// jumped to from the built-in chains. It only rewrites a chain that
// drifted, so a periodic call costs a few `iptables -C` and no gap in
// enforcement. It returns how many chains or jumps it had to repair.
func (f *Firewall) ensureChains() (repairs int, err error) {
	var errs []error
	for _, spec := range f.chainSpecs() {
		ipt := f.tableFor(spec)
		if ipt == nil {
			continue
		}
		fixed, err := ensureChain(ipt, spec)
		if err != nil {
			errs = append(errs, err)
		}
		if fixed {
			repairs++
			f.log.Warn("repaired firewall chain", "table", spec.table, "chain", spec.chain, "ipv6", spec.v6)
		}
	}
	return repairs, errors.Join(errs...)
}

func ensureChain(ipt ruleTable, spec chainSpec) (fixed bool, err error) {
	exists, err := ipt.ChainExists(spec.table, spec.chain)
	if err != nil {
		return false, fmt.Errorf("checking chain %s/%s: %w", spec.table, spec.chain, err)
	}
	if !exists {
		if err := ipt.NewChain(spec.table, spec.chain); err != nil {
			return false, fmt.Errorf("creating chain %s/%s: %w", spec.table, spec.chain, err)
		}
	}
	ok := exists
	if ok {
		ok, err = chainMatches(ipt, spec)
		if err != nil {
			return false, err
		}
	}
	if !ok {
		fixed = exists // a fresh chain is setup, not a repair
		// Rules are appended in order and DROP comes last, so while the
		// chain fills it is never more permissive than the jump allows.
		if err := ipt.ClearChain(spec.table, spec.chain); err != nil {
			return false, fmt.Errorf("clearing chain %s/%s: %w", spec.table, spec.chain, err)
		}
		for _, r := range spec.rules {
			if err := ipt.Append(spec.table, spec.chain, r...); err != nil {
				return fixed, fmt.Errorf("adding rule %q to %s/%s: %w", strings.Join(r, " "), spec.table, spec.chain, err)
			}
		}
	}
	has, err := ipt.Exists(spec.table, spec.hook, spec.jump...)
	if err != nil {
		return fixed, fmt.Errorf("checking jump to %s: %w", spec.chain, err)
	}
	if !has {
		if err := ipt.Insert(spec.table, spec.hook, 1, spec.jump...); err != nil {
			return fixed, fmt.Errorf("adding jump %s -> %s: %w", spec.hook, spec.chain, err)
		}
		fixed = fixed || exists
	}
	return fixed, nil
}

// chainMatches reports whether the chain holds exactly spec's rules: the
// right count, and each one present (iptables -C).
func chainMatches(ipt ruleTable, spec chainSpec) (bool, error) {
	list, err := ipt.List(spec.table, spec.chain)
	if err != nil {
		return false, fmt.Errorf("listing %s/%s: %w", spec.table, spec.chain, err)
	}
	// List starts with the chain's own "-N name" line.
	if len(list)-1 != len(spec.rules) {
		return false, nil
	}
	for _, r := range spec.rules {
		ok, err := ipt.Exists(spec.table, spec.chain, r...)
		if err != nil {
			return false, fmt.Errorf("checking rule in %s/%s: %w", spec.table, spec.chain, err)
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

// tableFor is the iptables (or ip6tables) a chain lives in; nil when the
// host has no ip6tables.
func (f *Firewall) tableFor(spec chainSpec) ruleTable {
	if spec.v6 {
		return f.ipt6
	}
	return f.ipt4
}

// removeChains deletes our jumps and chains. Missing pieces are fine:
// cleanup must work after a crash left half a setup.
func (f *Firewall) removeChains() error {
	var errs []error
	for _, spec := range f.chainSpecs() {
		ipt := f.tableFor(spec)
		if ipt == nil {
			continue
		}
		exists, err := ipt.ChainExists(spec.table, spec.chain)
		if err != nil {
			errs = append(errs, fmt.Errorf("checking chain %s: %w", spec.chain, err))
			continue
		}
		// Without the chain there can be no jump to it (and iptables
		// cannot even check for one).
		if !exists {
			continue
		}
		if err := ipt.DeleteIfExists(spec.table, spec.hook, spec.jump...); err != nil {
			errs = append(errs, fmt.Errorf("removing jump to %s: %w", spec.chain, err))
		}
		if err := ipt.ClearAndDeleteChain(spec.table, spec.chain); err != nil {
			errs = append(errs, fmt.Errorf("removing chain %s/%s: %w", spec.table, spec.chain, err))
		}
	}
	return errors.Join(errs...)
}
