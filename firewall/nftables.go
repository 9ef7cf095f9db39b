package firewall

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/parkwifi/parkportal/internal/nldump"
	"golang.org/x/sys/unix"
)

// backendNFTables keeps the gate in one nftables table of our own, "inet
// parkportal", built and changed over netlink in atomic transactions:
// nothing is forked, ever. The policy's "pass" is an accept here: it ends
// our table's say on the packet, not the packet's path.
//
// A table of our own is untouched by what others do to theirs: an fw4
// reload rewrites "inet fw4", "iptables -F" flushes iptables-nft's "ip
// filter", and neither reaches ours. Nftables runs every table's base
// chains on a hook and a drop in any of them is final, so ours gate the
// LAN whatever the rest of the ruleset says. Our forward and input base
// chains drop by policy and accept only at their end, and drop what our
// chains send back: emptied by a flush, either shuts rather than opens
// (the monitor then rebuilds them within a second).
type backendNFTables struct {
	log   *slog.Logger
	lan   string
	table *nftables.Table

	// wr rebuilds the table, rd reads its rules, each on its own netlink
	// socket, so a login never waits for a dump. Each has its own lock,
	// because a google/nftables Conn builds one batch at a time; wrMu
	// also orders a login's element changes (elems) after a rebuild.
	wrMu, rdMu sync.Mutex
	wr, rd     *nftables.Conn
	// listed is how many pairs the last read of the allowlist found, to
	// size the next one.
	listed atomic.Int64
	// pairs and pairMACs hold the last read without counters, reused by
	// the next (see backend.list): Reconcile's, every resync, one at a
	// time under its own lock.
	pairsMu  sync.Mutex
	pairs    []entry
	pairMACs []byte
	// dump reads the allowlist and counter sets (see list); elems
	// changes their elements, under wrMu (see changeElements).
	dump, elems *nldump.Conn

	// sets as last created, for rebuilds and checks.
	allow, up, down *nftables.Set
	// fingerprints of each chain's rules as the kernel held them after
	// our last build; a chain whose rules read back differently drifted.
	fingerprints map[string][][]byte
	// built is each chain's rules as we rendered them for that build: a
	// chain whose wanted rules render differently now (a walled-garden
	// edit) is rebuilt even though the kernel still holds the last build.
	built map[string][][]byte
}

// Names inside our table.
const (
	nftAllowSet = "allow4" // ip . mac pairs that may leave
	nftUpSet    = "up4"    // upload counters per visitor address
	nftDownSet  = "down4"  // download counters per visitor address
	nftDNSSet   = "dns4"   // pre-login DNS budget per address (dynamic)

	nftPrerouting = "prerouting"
	nftForward    = "forward"
	nftInput      = "input"
)

// dnsMeterTimeout is how long an address's DNS budget is remembered after
// its last query.
const dnsMeterTimeout = time.Minute

// nfTablesAvailable reports whether the kernel speaks nf_tables: the
// auto backend's test.
func nfTablesAvailable() bool {
	c, err := nftables.New()
	if err != nil {
		return false
	}
	_, err = c.ListTablesOfFamily(nftables.TableFamilyINet)
	return err == nil
}

func newNFTables(cfg Config) (*backendNFTables, error) {
	wr, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return nil, fmt.Errorf("opening nftables netlink socket: %w", err)
	}
	rd, err := nftables.New(nftables.AsLasting())
	if err != nil {
		wr.CloseLasting()
		return nil, fmt.Errorf("opening nftables netlink socket: %w", err)
	}
	dump, err := nldump.Dial(unix.NETLINK_NETFILTER, nldump.LargeBatch)
	if err != nil {
		wr.CloseLasting()
		rd.CloseLasting()
		return nil, fmt.Errorf("opening nftables netlink socket: %w", err)
	}
	elems, err := nldump.Dial(unix.NETLINK_NETFILTER, nldump.SmallBatch)
	if err != nil {
		wr.CloseLasting()
		rd.CloseLasting()
		dump.Close()
		return nil, fmt.Errorf("opening nftables netlink socket: %w", err)
	}
	b := &backendNFTables{
		log: cfg.Logger, lan: cfg.LANIface, wr: wr, rd: rd, dump: dump, elems: elems,
		table: &nftables.Table{Name: cfg.Table, Family: nftables.TableFamilyINet},
	}
	b.defineSets()
	return b, nil
}

func (b *backendNFTables) String() string { return "nftables" }

func (b *backendNFTables) defineSets() {
	b.allow = &nftables.Set{
		Table: b.table, Name: nftAllowSet, Concatenation: true,
		KeyType: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeEtherAddr),
	}
	b.up = &nftables.Set{Table: b.table, Name: nftUpSet, KeyType: nftables.TypeIPAddr, Counter: true}
	b.down = &nftables.Set{Table: b.table, Name: nftDownSet, KeyType: nftables.TypeIPAddr, Counter: true}
}

func (b *backendNFTables) dnsSet() *nftables.Set {
	return &nftables.Set{
		Table: b.table, Name: nftDNSSet, KeyType: nftables.TypeIPAddr,
		Dynamic: true, HasTimeout: true, Timeout: dnsMeterTimeout, Size: 65535,
	}
}

// baseChains are our hooks into the kernel. Forward and input drop by
// policy and end in an accept, so that emptied they shut the LAN out
// instead of opening it; only traffic arriving on (or, to count it,
// leaving to) the LAN is sent into our chains.
func (b *backendNFTables) baseChains() []*nftables.Chain {
	policy := func(p nftables.ChainPolicy) *nftables.ChainPolicy { return &p }
	prio := func(p int32) *nftables.ChainPriority { return nftables.ChainPriorityRef(nftables.ChainPriority(p)) }
	return []*nftables.Chain{
		// Before fw4's dstnat (-100), so our redirect wins.
		{Name: nftPrerouting, Table: b.table, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPrerouting, Priority: prio(-110), Policy: policy(nftables.ChainPolicyAccept)},
		{Name: nftForward, Table: b.table, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookForward, Priority: prio(-10), Policy: policy(nftables.ChainPolicyDrop)},
		{Name: nftInput, Table: b.table, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookInput, Priority: prio(-10), Policy: policy(nftables.ChainPolicyDrop)},
	}
}

// baseRules are the base chains' rules: jumps into our chains for
// traffic from the LAN, a drop for whatever comes back from them, jumps
// for traffic to the LAN (counters), and the accept that ends the chain.
// Our chains accept what they let through (for this table: the rest of
// the ruleset still decides), so a packet that returns from one found no
// rule to pass it, which only an emptied chain does: the drop after the
// jumps makes a flushed pp-forward or pp-input shut instead of open.
func (b *backendNFTables) baseRules(chs []chain) map[string][][]expr.Any {
	out := make(map[string][][]expr.Any)
	base := func(c chain) string {
		switch c.hook {
		case hookNAT:
			return nftPrerouting
		case hookInput:
			return nftInput
		}
		return nftForward
	}
	jump := func(c chain) []expr.Any {
		key := expr.MetaKeyIIFNAME
		if c.out {
			key = expr.MetaKeyOIFNAME
		}
		nfproto := byte(unix.NFPROTO_IPV4)
		if c.family == ipv6 {
			nfproto = unix.NFPROTO_IPV6
		}
		return []expr.Any{
			&expr.Meta{Key: key, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(b.lan)},
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
			&expr.Verdict{Kind: expr.VerdictJump, Chain: c.name},
		}
	}
	for _, c := range chs {
		if !c.out {
			out[base(c)] = append(out[base(c)], jump(c))
		}
	}
	for _, name := range []string{nftForward, nftInput} {
		out[name] = append(out[name], []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(b.lan)},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		})
	}
	for _, c := range chs {
		if c.out {
			out[base(c)] = append(out[base(c)], jump(c))
		}
	}
	for _, name := range []string{nftForward, nftInput} {
		out[name] = append(out[name], []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}})
	}
	return out
}

// ifname is an interface name as nftables compares it (IFNAMSIZ bytes).
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

// exprs renders one rule as nftables expressions, the ones nft itself
// generates for the rule's text (rule.String), so that "nft list"
// shows our rules as that text.
func (b *backendNFTables) exprs(r rule) []expr.Any {
	var e []expr.Any
	cmp := func(data []byte) expr.Any { return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data} }
	meta := func(k expr.MetaKey) expr.Any { return &expr.Meta{Key: k, Register: 1} }
	ipv4Dep := func() {
		e = append(e, meta(expr.MetaKeyNFPROTO), cmp([]byte{unix.NFPROTO_IPV4}))
	}
	etherDep := func() {
		e = append(e, meta(expr.MetaKeyIIFTYPE), cmp(binaryutil.NativeEndian.PutUint16(unix.ARPHRD_ETHER)))
	}
	if r.srcMAC != nil {
		etherDep()
		e = append(e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6},
			cmp(r.srcMAC))
	}
	if r.allowed {
		ipv4Dep()
		etherDep()
		e = append(e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6},
			&expr.Lookup{SourceRegister: 1, SetName: nftAllowSet})
	}
	if r.countUp {
		e = append(e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Lookup{SourceRegister: 1, SetName: nftUpSet})
	}
	if r.download {
		ipv4Dep()
		e = append(e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Lookup{SourceRegister: 1, SetName: nftDownSet})
	}
	if r.dst.IsValid() {
		ipv4Dep()
		e = append(e, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4})
		addr := r.dst.Masked().Addr().As4()
		if !r.dst.IsSingleIP() {
			mask := net.CIDRMask(r.dst.Bits(), 32)
			e = append(e, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)})
		}
		e = append(e, cmp(addr[:]))
	}
	switch {
	case r.proto == icmpv6:
		e = append(e, meta(expr.MetaKeyNFPROTO), cmp([]byte{unix.NFPROTO_IPV6}),
			meta(expr.MetaKeyL4PROTO), cmp([]byte{byte(icmpv6)}))
		if r.icmp6Type != 0 {
			e = append(e,
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
				cmp([]byte{r.icmp6Type}))
		}
	case r.proto != anyProto:
		e = append(e, meta(expr.MetaKeyL4PROTO), cmp([]byte{byte(r.proto)}))
		if r.dport != 0 {
			e = append(e,
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				cmp(binaryutil.BigEndian.PutUint16(r.dport)))
		}
	}
	if r.dnsBudget {
		ipv4Dep()
		e = append(e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Dynset{SrcRegKey: 1, SetName: nftDNSSet, Operation: unix.NFT_DYNSET_OP_UPDATE,
				Exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: dnsRate, Unit: expr.LimitTimeSecond, Burst: dnsBurst}}})
	}
	if r.established {
		e = append(e,
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
				Xor:  make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)})
	}
	if r.verdict.refuses() {
		e = append(e, &expr.Counter{})
	}
	switch r.verdict {
	case pass, accept:
		// Accept ends our base chain, not the packet's path: the rest of
		// the ruleset (fw4) still decides. See baseRules for why our
		// chains do not return.
		e = append(e, &expr.Verdict{Kind: expr.VerdictAccept})
	case countOnly:
		// Falls through to the next rule of the base chain.
		e = append(e, &expr.Verdict{Kind: expr.VerdictAccept})
	case drop:
		e = append(e, &expr.Verdict{Kind: expr.VerdictDrop})
	case rejectTCP:
		e = append(e, &expr.Reject{Type: unix.NFT_REJECT_TCP_RST})
	case rejectPort:
		e = append(e, &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH})
	case redirect:
		e = append(e,
			&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(r.toPort)},
			&expr.Redir{RegisterProtoMin: 1, RegisterProtoMax: 1, Flags: unix.NF_NAT_RANGE_PROTO_SPECIFIED})
	}
	return e
}

// ensure checks our table and repairs what drifted: a chain whose rules
// changed is refilled, and a missing table, set or base chain rebuilds the
// whole table with the allowlist in it. Each repair is one transaction,
// which the kernel applies atomically: packets see the old rules or the
// new ones, never none.
func (b *backendNFTables) ensure(chs []chain, clients func() []Client) (repairs int, err error) {
	structural, err := b.structureIntact()
	if err != nil {
		return 0, err
	}
	if !structural {
		existed := b.fingerprints != nil
		if err := b.rebuildTable(chs, clients()); err != nil {
			return 0, err
		}
		if existed {
			b.log.Warn("rebuilt the nftables table: it, a set or a base chain was gone", "table", b.table.Name)
			return 1, nil
		}
		return 0, nil
	}
	want := b.chainRules(chs)
	have, err := b.readFingerprints(want)
	if err != nil {
		return 0, err
	}
	rendered, err := renderRules(byte(b.table.Family), want)
	if err != nil {
		return 0, err
	}
	var drifted, changed []string
	for name := range want {
		switch {
		case !sameFingerprints(have[name], b.fingerprints[name]):
			drifted = append(drifted, name)
		case !sameFingerprints(rendered[name], b.built[name]):
			changed = append(changed, name)
		}
	}
	if len(drifted)+len(changed) == 0 {
		return 0, nil
	}
	known := b.fingerprints != nil
	if err := b.refillChains(want, append(drifted, changed...)); err != nil {
		return 0, err
	}
	if !known {
		return 0, nil // first look at a table a previous run left: not a repair
	}
	for _, name := range drifted {
		b.log.Warn("repaired nftables chain", "table", b.table.Name, "chain", name)
	}
	for _, name := range changed {
		b.log.Info("rebuilt nftables chain for new rules", "table", b.table.Name, "chain", name)
	}
	return len(drifted), nil
}

// renderRules is each chain's wanted rules as ruleFingerprint renders
// them.
func renderRules(family byte, want map[string][][]expr.Any) (map[string][][]byte, error) {
	out := make(map[string][][]byte, len(want))
	for name, rules := range want {
		fps := make([][]byte, 0, len(rules))
		for _, r := range rules {
			fp, err := ruleFingerprint(family, r)
			if err != nil {
				return nil, fmt.Errorf("rendering a rule of %s: %w", name, err)
			}
			fps = append(fps, fp)
		}
		out[name] = fps
	}
	return out, nil
}

func (b *backendNFTables) present([]chain) (bool, error) {
	b.rdMu.Lock()
	defer b.rdMu.Unlock()
	tables, err := b.rd.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("listing nftables tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == b.table.Name {
			return true, nil
		}
	}
	return false, nil
}

// chainRules is every chain of ours with its rules' expressions.
func (b *backendNFTables) chainRules(chs []chain) map[string][][]expr.Any {
	out := b.baseRules(chs)
	for _, c := range chs {
		rules := make([][]expr.Any, 0, len(c.rules))
		for _, r := range c.rules {
			rules = append(rules, b.exprs(r))
		}
		out[c.name] = rules
	}
	return out
}

// structureIntact reports whether our table, sets and base chains are all
// there as we make them.
func (b *backendNFTables) structureIntact() (bool, error) {
	b.rdMu.Lock()
	defer b.rdMu.Unlock()
	tables, err := b.rd.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("listing nftables tables: %w", err)
	}
	found := false
	for _, t := range tables {
		found = found || t.Name == b.table.Name
	}
	if !found {
		return false, nil
	}
	sets, err := b.rd.GetSets(b.table)
	if err != nil {
		return false, fmt.Errorf("listing sets of %s: %w", b.table.Name, err)
	}
	haveSet := make(map[string]*nftables.Set, len(sets))
	for _, s := range sets {
		haveSet[s.Name] = s
	}
	for _, s := range []*nftables.Set{b.allow, b.up, b.down, b.dnsSet()} {
		h := haveSet[s.Name]
		if h == nil || h.KeyType.Name != s.KeyType.Name || h.Dynamic != s.Dynamic {
			return false, nil
		}
	}
	chains, err := b.rd.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("listing chains of %s: %w", b.table.Name, err)
	}
	haveChain := make(map[string]*nftables.Chain)
	for _, c := range chains {
		if c.Table.Name == b.table.Name {
			haveChain[c.Name] = c
		}
	}
	for _, want := range b.baseChains() {
		h := haveChain[want.Name]
		if h == nil || h.Hooknum == nil || *h.Hooknum != *want.Hooknum || h.Priority == nil || *h.Priority != *want.Priority ||
			h.Type != want.Type || h.Policy == nil || *h.Policy != *want.Policy {
			return false, nil
		}
	}
	return true, nil
}

// rebuildTable replaces our table with a new one holding chains and the
// allowlist, in one transaction.
func (b *backendNFTables) rebuildTable(chs []chain, clients []Client) error {
	b.wrMu.Lock()
	defer b.wrMu.Unlock()
	b.rdMu.Lock()
	tables, err := b.rd.ListTablesOfFamily(nftables.TableFamilyINet)
	b.rdMu.Unlock()
	if err != nil {
		return fmt.Errorf("listing nftables tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == b.table.Name {
			b.wr.DelTable(b.table)
		}
	}
	b.wr.AddTable(b.table)
	b.defineSets()
	var allow, up, down []nftables.SetElement
	for _, c := range clients {
		allow = append(allow, nftables.SetElement{Key: pairKey(c)})
		up = append(up, nftables.SetElement{Key: addrKey(c.IP)})
		down = append(down, nftables.SetElement{Key: addrKey(c.IP)})
	}
	for _, s := range []struct {
		set   *nftables.Set
		elems []nftables.SetElement
	}{{b.allow, allow}, {b.up, up}, {b.down, down}, {b.dnsSet(), nil}} {
		if err := b.wr.AddSet(s.set, s.elems); err != nil {
			return fmt.Errorf("adding set %s: %w", s.set.Name, err)
		}
	}
	rules := b.chainRules(chs)
	// Regular chains first: the base chains' jumps name them.
	for _, c := range chs {
		b.wr.AddChain(&nftables.Chain{Name: c.name, Table: b.table})
	}
	for _, c := range b.baseChains() {
		b.wr.AddChain(c)
	}
	for name, rs := range rules {
		ch := &nftables.Chain{Name: name, Table: b.table}
		for _, r := range rs {
			b.wr.AddRule(&nftables.Rule{Table: b.table, Chain: ch, Exprs: r})
		}
	}
	if err := b.wr.Flush(); err != nil {
		return fmt.Errorf("building nftables table %s: %w", b.table.Name, err)
	}
	return b.recordFingerprints(rules)
}

// refillChains replaces the rules of the named chains in one transaction.
func (b *backendNFTables) refillChains(want map[string][][]expr.Any, names []string) error {
	b.wrMu.Lock()
	defer b.wrMu.Unlock()
	base := make(map[string]bool)
	for _, c := range b.baseChains() {
		base[c.Name] = true
	}
	for _, name := range names {
		ch := &nftables.Chain{Name: name, Table: b.table}
		if !base[name] {
			b.wr.AddChain(ch) // in case it was deleted; a no-op otherwise
		}
		b.wr.FlushChain(ch)
		for _, r := range want[name] {
			b.wr.AddRule(&nftables.Rule{Table: b.table, Chain: ch, Exprs: r})
		}
	}
	if err := b.wr.Flush(); err != nil {
		return fmt.Errorf("rebuilding nftables chains %v: %w", names, err)
	}
	return b.recordFingerprints(want)
}

// recordFingerprints reads back what the kernel now holds for every chain
// and remembers it as the rules we made.
func (b *backendNFTables) recordFingerprints(want map[string][][]expr.Any) error {
	have, err := b.readFingerprints(want)
	if err != nil {
		return err
	}
	built, err := renderRules(byte(b.table.Family), want)
	if err != nil {
		return err
	}
	b.fingerprints, b.built = have, built
	return nil
}

// readFingerprints reads the rules of every chain in want, each as the
// bytes of its expressions (kernelFingerprint): the kernel's rendering,
// compared with itself. A chain that is not there reads as nil, an empty
// one as empty. Two dumps of our table, read in place (nldump): through
// google/nftables, which decodes every expression into structs of its
// own, this check made some 300 KB of garbage per resync.
func (b *backendNFTables) readFingerprints(want map[string][][]expr.Any) (map[string][][]byte, error) {
	out := make(map[string][][]byte, len(want))
	table := append([]byte(b.table.Name), 0)
	req := []byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0} // struct nfgenmsg
	req = nldump.AppendAttr(req, unix.NFTA_CHAIN_TABLE, table)
	_, err := nldump.Retry(func() (struct{}, error) {
		clear(out)
		err := b.dump.Dump(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETCHAIN, req, func(_ uint16, msg []byte) error {
			tbl, chain, _, err := parseRuleOrChain(msg, unix.NFTA_CHAIN_TABLE, unix.NFTA_CHAIN_NAME, 0)
			if _, wanted := want[chain]; err == nil && wanted && bytes.Equal(tbl, table) {
				out[chain] = [][]byte{}
			}
			return err
		})
		return struct{}{}, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing chains of %s: %w", b.table.Name, err)
	}
	// NFTA_RULE_TABLE is NFTA_CHAIN_TABLE's number: the same request.
	_, err = nldump.Retry(func() (struct{}, error) {
		for name, fps := range out {
			out[name] = fps[:0]
		}
		err := b.dump.Dump(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETRULE, req, func(_ uint16, msg []byte) error {
			tbl, chain, exprs, err := parseRuleOrChain(msg, unix.NFTA_RULE_TABLE, unix.NFTA_RULE_CHAIN, unix.NFTA_RULE_EXPRESSIONS)
			if err != nil {
				return err
			}
			if fps, ok := out[chain]; ok && bytes.Equal(tbl, table) {
				fp, err := kernelFingerprint(exprs)
				if err != nil {
					return fmt.Errorf("reading a rule of %s: %w", chain, err)
				}
				out[chain] = append(fps, fp)
			}
			return nil
		})
		return struct{}{}, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing rules of %s: %w", b.table.Name, err)
	}
	for name := range want {
		if _, ok := out[name]; !ok {
			out[name] = nil
		}
	}
	return out, nil
}

// parseRuleOrChain reads a NFT_MSG_NEWCHAIN or NFT_MSG_NEWRULE message of
// a dump: a struct nfgenmsg, then attributes, of which it returns the
// table's name (with its NUL), the chain's name and, if exprsAttr is not
// 0, the rule's expressions. The slices are the message's.
func parseRuleOrChain(msg []byte, tableAttr, chainAttr, exprsAttr uint16) (table []byte, chain string, exprs []byte, err error) {
	if len(msg) < 4 {
		return nil, "", nil, fmt.Errorf("nftables message of %d bytes", len(msg))
	}
	a := nldump.NewAttrs(msg[4:])
	for a.Next() {
		switch t := a.Type(); {
		case t == tableAttr:
			table = a.Data()
		case t == chainAttr:
			chain = string(bytes.TrimRight(a.Data(), "\x00"))
		case exprsAttr != 0 && t == exprsAttr:
			exprs = a.Data()
		}
	}
	return table, chain, exprs, a.Err()
}

// kernelFingerprint is a rule's expressions as the kernel lists them
// (NFTA_RULE_EXPRESSIONS: NFTA_LIST_ELEMs of a name and data), each as
// its name, a NUL and its data, with a counter's data, its values, left
// out: a refusing rule counts what it refuses, and a count that moved
// since the last check is traffic, not drift.
func kernelFingerprint(exprs []byte) ([]byte, error) {
	fp := make([]byte, 0, len(exprs))
	list := nldump.NewAttrs(exprs)
	for list.Next() {
		if list.Type() != unix.NFTA_LIST_ELEM {
			continue
		}
		var name, data []byte
		e := nldump.NewAttrs(list.Data())
		for e.Next() {
			switch e.Type() {
			case unix.NFTA_EXPR_NAME:
				name = e.Data()
			case unix.NFTA_EXPR_DATA:
				data = e.Data()
			}
		}
		if err := e.Err(); err != nil {
			return nil, err
		}
		name = bytes.TrimRight(name, "\x00")
		if string(name) == "counter" {
			data = nil
		}
		fp = append(fp, name...)
		fp = append(fp, 0, byte(len(data)>>8), byte(len(data)))
		fp = append(fp, data...)
	}
	return fp, list.Err()
}

// ruleFingerprint is a rule's expressions as bytes, with the counters'
// values left out: a refusing rule counts what it refuses, and a count
// that moved since the last check is traffic, not drift (it made every
// resync after a refused packet rebuild the chain).
func ruleFingerprint(family byte, exprs []expr.Any) ([]byte, error) {
	var fp []byte
	for _, e := range exprs {
		if _, ok := e.(*expr.Counter); ok {
			e = &expr.Counter{}
		}
		m, err := expr.Marshal(family, e)
		if err != nil {
			return nil, err
		}
		fp = append(fp, m...)
	}
	return fp, nil
}

func sameFingerprints(a, b [][]byte) bool {
	if len(a) != len(b) || a == nil != (b == nil) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// pairKey is the allowlist key: the address, the MAC and the padding
// that aligns each part of a concatenation to 4 bytes.
func pairKey(c Client) []byte {
	a := c.IP.As4()
	k := make([]byte, 12)
	copy(k, a[:])
	copy(k[4:], c.MAC)
	return k
}

func addrKey(ip netip.Addr) []byte {
	a := ip.As4()
	return a[:]
}

// teardown deletes our table and everything in it.
func (b *backendNFTables) teardown([]chain) error {
	b.wrMu.Lock()
	defer b.wrMu.Unlock()
	b.wr.DelTable(b.table)
	err := b.wr.Flush()
	b.fingerprints, b.built = nil, nil
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("deleting nftables table %s: %w", b.table.Name, err)
	}
	return nil
}
