package firewall

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// The gate as data. chains() describes what parkportal enforces once, in
// terms of the LAN (trusted devices, the allowlist, the walled garden, our
// ports), and each backend renders it: backendIPTables to iptables rule
// specs, backendNFTables to nftables expressions. Golden tests pin both
// renderings, so a change to the policy shows up as a diff of each.

// family is the IP version a chain filters.
type family uint8

const (
	ipv4 family = iota
	ipv6
)

// hook is where the kernel runs a chain.
type hook uint8

const (
	hookNAT     hook = iota // prerouting, nat: before the routing decision
	hookForward             // filter: traffic the gateway forwards
	hookInput               // filter: traffic to the gateway itself
)

// verdict is what a matching rule does with the packet.
type verdict uint8

const (
	// pass leaves our chain: our rules let the packet be, and whatever
	// else the host runs decides (RETURN, or nft return).
	pass verdict = iota
	accept
	drop
	rejectTCP  // TCP reset: the phone gives up at once instead of timing out
	rejectPort // ICMP(v6) port unreachable
	redirect   // to the portal port (nat only)
	countOnly  // no verdict: the rule exists for its set's counters
)

// refuses reports whether v turns a packet away. Such rules count what
// they refuse (iptables counts every rule; nftables rules get a counter):
// staff see who probed the admin port or kept trying to get out.
func (v verdict) refuses() bool { return v == drop || v == rejectTCP || v == rejectPort }

// proto is a transport protocol a rule matches.
type proto uint8

const (
	anyProto proto = 0
	tcp      proto = 6
	udp      proto = 17
	icmp     proto = 1
	icmpv6   proto = 58
)

// rule is one line of a chain: every match it sets must hold for its
// verdict to apply.
type rule struct {
	srcMAC  net.HardwareAddr // a trusted (staff) device
	allowed bool             // source address and MAC are a pair in the allowlist
	// countUp: this is the rule whose matches count a visitor's upload
	// (the allowlist's accepted packets in pp-forward). Other rules that
	// look the pair up must not count, or a connection's first packet
	// would be counted twice (nat, then filter).
	countUp   bool
	download  bool         // destination address is in the download counters
	dst       netip.Prefix // destination address or prefix
	proto     proto
	dport     uint16
	icmp6Type uint8 // with proto icmpv6
	// established: conntrack says the packet belongs to (or is related
	// to) a connection the gateway already let through.
	established bool
	// dnsBudget: the source is within its pre-login DNS budget (per
	// address, whatever its ports: 10 queries/s, bursts of 30).
	dnsBudget bool
	verdict   verdict
	toPort    uint16 // with redirect
}

// The pre-login DNS budget, per visitor address.
const (
	dnsRate  = 10 // queries per second
	dnsBurst = 30
)

// chain is one of our chains: what it holds and where the kernel runs it.
type chain struct {
	name   string
	family family
	hook   hook
	// out: the chain sees packets leaving towards the LAN (downloads),
	// not packets arriving from it.
	out   bool
	rules []rule
}

// Our chain names. Every one starts with "pp-" so nothing we add or remove
// can touch another tool's rules (fw4, docker, an operator's own chains).
const (
	chainPrerouting = "pp-prerouting" // redirect unauthorised HTTP to the portal
	chainForward    = "pp-forward"    // who may leave the LAN
	chainCount      = "pp-count"      // downloads, counted per visitor
	chainInput      = "pp-input"      // what visitors may reach on the gateway
	chainForward6   = "pp-forward6"   // visitors may not leave over IPv6
	chainInput6     = "pp-input6"     // what visitors may reach on the gateway over IPv6
)

// icmp6Types are the ICMPv6 messages a LAN needs to work at all, by
// their iptables names.
var icmp6Types = []struct {
	name string
	typ  uint8
}{
	{"router-solicitation", 133},
	{"neighbour-solicitation", 135},
	{"neighbour-advertisement", 136},
	{"echo-request", 128},
}

// chains renders the policy from the config. Every value in it comes from
// parsed types (netip, ints, MACs), never from request data.
func chains(c Config) []chain {
	gw := netip.PrefixFrom(c.GatewayIP, 32)

	var trusted []rule
	for _, m := range c.TrustedMACs {
		trusted = append(trusted, rule{srcMAC: m, verdict: pass})
	}
	var garden []rule
	for _, p := range c.WalledGarden {
		garden = append(garden, rule{dst: p, verdict: pass})
	}
	join := func(parts ...[]rule) []rule {
		var out []rule
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}

	pre := join(trusted,
		[]rule{{allowed: true, verdict: pass}, {dst: gw, verdict: pass}},
		garden,
		[]rule{{proto: tcp, dport: 80, verdict: redirect, toPort: uint16(c.PortalPort)}},
	)

	fwd := join(trusted,
		[]rule{{allowed: true, countUp: true, verdict: pass}},
		garden,
		[]rule{
			// HTTPS cannot be intercepted without forging certificates,
			// so it fails fast.
			{proto: tcp, dport: 443, verdict: rejectTCP},
			{verdict: drop},
		},
	)

	// Staff devices first; then the ports that are never for visitors,
	// so they win over every accept below whatever port staff picked.
	var in []rule
	in = append(in, trusted...)
	if c.CoAPort != 0 {
		in = append(in, rule{proto: udp, dport: uint16(c.CoAPort), verdict: drop})
	}
	if c.TLSPort != 0 {
		in = append(in, rule{proto: tcp, dport: uint16(c.TLSPort), verdict: accept})
	}
	in = append(in,
		rule{proto: tcp, dport: uint16(c.AdminPort), verdict: drop},
		rule{proto: tcp, dport: uint16(c.PortalPort), verdict: accept},
		rule{proto: udp, dport: 67, verdict: accept},
		// DNS: unlimited once logged in. Before that, a budget per
		// address that a phone's page loads never reach and that makes
		// tunnelling through the gateway's resolver useless. The drop
		// after it comes before the conntrack accept: a tunnel's one
		// long-lived socket is "established" after its first answer.
		// DNS over TCP, which only tunnels and zone transfers need
		// before login, waits for the login.
		rule{allowed: true, proto: udp, dport: 53, verdict: accept},
		rule{allowed: true, proto: tcp, dport: 53, verdict: accept},
		rule{proto: udp, dport: 53, dnsBudget: true, verdict: accept},
		rule{proto: udp, dport: 53, verdict: drop},
		rule{proto: tcp, dport: 53, verdict: drop},
		rule{proto: icmp, verdict: accept},
		// Anything else on the gateway (ssh, LuCI, ...) is not for a
		// public park's visitors.
		rule{established: true, verdict: accept},
		rule{verdict: drop},
	)

	// IPv6 to the gateway itself. The LAN always has IPv6 (link-local
	// addresses, and OpenWrt adds a ULA prefix) and a wildcard listener
	// hears it, so the console, the DAS, ssh and LuCI would be open to
	// visitors over IPv6. The portal is IPv4-only and visitors are not
	// forwarded over IPv6, so the chain keeps only what IPv6 on a LAN
	// needs (neighbour discovery, router solicitations, echo, DHCPv6)
	// and drops the rest. DNS over IPv6 is refused rather than served: a
	// per-device budget cannot hold there (a visitor can mint addresses
	// at will), and a quick refusal makes a phone move on to the IPv4
	// resolver at once. Router advertisements from the LAN are dropped:
	// the gateway is the LAN's router, so any other is a rogue.
	var in6 []rule
	in6 = append(in6, trusted...)
	in6 = append(in6, rule{proto: tcp, dport: uint16(c.AdminPort), verdict: drop})
	if c.CoAPort != 0 {
		in6 = append(in6, rule{proto: udp, dport: uint16(c.CoAPort), verdict: drop})
	}
	for _, t := range icmp6Types {
		in6 = append(in6, rule{proto: icmpv6, icmp6Type: t.typ, verdict: accept})
	}
	in6 = append(in6,
		rule{proto: udp, dport: 547, verdict: accept},
		rule{proto: udp, dport: 53, verdict: rejectPort},
		rule{proto: tcp, dport: 53, verdict: rejectTCP},
		rule{established: true, verdict: accept},
		rule{verdict: drop},
	)

	// IPv6: the allowlist is IPv4, so visitors are kept off IPv6
	// forwarding entirely rather than half-authorised.
	fwd6 := join(trusted, []rule{{proto: tcp, dport: 443, verdict: rejectTCP}, {verdict: drop}})

	return []chain{
		{name: chainPrerouting, family: ipv4, hook: hookNAT, rules: pre},
		{name: chainForward, family: ipv4, hook: hookForward, rules: fwd},
		{name: chainCount, family: ipv4, hook: hookForward, out: true, rules: []rule{{download: true, verdict: countOnly}}},
		{name: chainInput, family: ipv4, hook: hookInput, rules: in},
		{name: chainForward6, family: ipv6, hook: hookForward, rules: fwd6},
		{name: chainInput6, family: ipv6, hook: hookInput, rules: in6},
	}
}

// String renders r as the nftables backend does (where "pass" is an
// accept of our table's), for golden tests and logs.
func (r rule) String() string {
	var b []string
	if r.srcMAC != nil {
		b = append(b, "ether saddr "+r.srcMAC.String())
	}
	if r.allowed {
		b = append(b, "ip saddr . ether saddr @"+nftAllowSet)
	}
	if r.countUp {
		b = append(b, "ip saddr @"+nftUpSet)
	}
	if r.download {
		b = append(b, "ip daddr @"+nftDownSet)
	}
	if r.dst.IsValid() {
		if r.dst.IsSingleIP() {
			b = append(b, "ip daddr "+r.dst.Addr().String())
		} else {
			b = append(b, "ip daddr "+r.dst.String())
		}
	}
	switch {
	case r.proto == icmpv6 && r.icmp6Type != 0:
		b = append(b, fmt.Sprintf("icmpv6 type %d", r.icmp6Type))
	case r.dport != 0:
		b = append(b, fmt.Sprintf("%s dport %d", r.proto, r.dport))
	case r.proto != anyProto:
		b = append(b, "meta l4proto "+r.proto.String())
	}
	if r.dnsBudget {
		b = append(b, fmt.Sprintf("update @%s { ip saddr limit rate %d/second burst %d packets }", nftDNSSet, dnsRate, dnsBurst))
	}
	if r.established {
		b = append(b, "ct state established,related")
	}
	if r.verdict.refuses() {
		b = append(b, "counter")
	}
	switch r.verdict {
	case pass, accept:
		b = append(b, "accept")
	case drop:
		b = append(b, "drop")
	case rejectTCP:
		b = append(b, "reject with tcp reset")
	case rejectPort:
		b = append(b, "reject with icmpx port-unreachable")
	case redirect:
		b = append(b, fmt.Sprintf("redirect to :%d", r.toPort))
	}
	return strings.Join(b, " ")
}

func (p proto) String() string {
	switch p {
	case tcp:
		return "tcp"
	case udp:
		return "udp"
	case icmp:
		return "icmp"
	case icmpv6:
		return "icmpv6"
	}
	return fmt.Sprintf("proto-%d", uint8(p))
}
