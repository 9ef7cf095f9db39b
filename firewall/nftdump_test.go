package firewall

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/google/nftables/expr"
	"github.com/parkwifi/parkportal/internal/nldump"
	"golang.org/x/sys/unix"
)

// setElemsMsg builds an NFT_MSG_NEWSETELEM payload with one element of
// key key whose counter is given either as its one expression or in the
// expressions list.
func setElemsMsg(key []byte, packets, bytes uint64, list bool) []byte {
	be := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	var counter []byte
	counter = nldump.AppendAttr(counter, unix.NFTA_COUNTER_BYTES, be(bytes))
	counter = nldump.AppendAttr(counter, unix.NFTA_COUNTER_PACKETS, be(packets))
	var expr []byte
	expr = nldump.AppendAttr(expr, unix.NFTA_EXPR_NAME, []byte("counter\x00"))
	expr = nldump.AppendAttr(expr, unix.NFTA_EXPR_DATA|unix.NLA_F_NESTED, counter)
	var elem []byte
	elem = nldump.AppendAttr(elem, unix.NFTA_SET_ELEM_KEY|unix.NLA_F_NESTED, nldump.AppendAttr(nil, unix.NFTA_DATA_VALUE, key))
	if list {
		elem = nldump.AppendAttr(elem, nftaSetElemExpressions|unix.NLA_F_NESTED, nldump.AppendAttr(nil, unix.NFTA_LIST_ELEM|unix.NLA_F_NESTED, expr))
	} else {
		elem = nldump.AppendAttr(elem, unix.NFTA_SET_ELEM_EXPR|unix.NLA_F_NESTED, expr)
	}
	msg := []byte{unix.NFPROTO_INET, 0, 0, 0}
	msg = nldump.AppendAttr(msg, unix.NFTA_SET_ELEM_LIST_TABLE, []byte("parkportal\x00"))
	msg = nldump.AppendAttr(msg, unix.NFTA_SET_ELEM_LIST_SET, []byte("up4\x00"))
	return nldump.AppendAttr(msg, unix.NFTA_SET_ELEM_LIST_ELEMENTS|unix.NLA_F_NESTED, nldump.AppendAttr(nil, unix.NFTA_LIST_ELEM|unix.NLA_F_NESTED, elem))
}

// FuzzParseSetElems: the elements of a well-formed message read back
// with their key and counter, in both forms the kernel sends counters;
// and no message, however broken, makes the parser panic or hand out a
// key it did not find.
func FuzzParseSetElems(f *testing.F) {
	f.Add([]byte{198, 51, 100, 7}, uint64(5_000_000_001), uint64(7_000_000_000_001), false, []byte{})
	f.Add([]byte{198, 51, 100, 8, 2, 0, 0x5e, 0, 0x53, 8, 0, 0}, uint64(1), uint64(1500), true, []byte{4, 0, 3, 0})
	f.Fuzz(func(t *testing.T, key []byte, packets, bytes uint64, list bool, noise []byte) {
		msg := setElemsMsg(key, packets, bytes, list)
		n := 0
		err := parseSetElems(msg, func(k []byte, c nftCounter) {
			n++
			if string(k) != string(key) || !c.ok || c.packets != packets || c.bytes != bytes {
				t.Fatalf("read %x %+v, built %x packets %d bytes %d", k, c, key, packets, bytes)
			}
		})
		if err != nil || n != 1 {
			t.Fatalf("parseSetElems = %v after %d elements, want 1", err, n)
		}
		for _, bad := range [][]byte{noise, append(msg[:len(msg)/2:len(msg)/2], noise...)} {
			parseSetElems(bad, func(k []byte, _ nftCounter) {
				if len(k) > len(bad) {
					t.Fatalf("a %d-byte key from a %d-byte message", len(k), len(bad))
				}
			})
		}
	})
}

// TestElementChangesAreOneTransaction: a login's element changes reach
// the kernel as one netfilter batch, applied whole or not at all. A
// batch whose last part names a set that does not exist is refused
// (ENOENT) and leaves the allowlist as it was; the same changes without
// it are applied and read back.
func TestElementChangesAreOneTransaction(t *testing.T) {
	f := kernelFirewall(t, "nftables")
	if _, err := f.Ensure(); err != nil {
		t.Fatal(err)
	}
	b := f.be.(*backendNFTables)
	c := Client{IP: netip.MustParseAddr("198.51.100.21"), MAC: net.HardwareAddr{2, 0, 0x5e, 0, 0x53, 0x21}}
	bad := append(clientChanges(c), setChange{"nosuch4", addrKey(c.IP)})
	if err := b.changeElements(false, bad...); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("a batch with a missing set = %v, want ENOENT", err)
	}
	if got, err := b.list(true); err != nil || len(got) != 0 {
		t.Fatalf("after the refused batch the allowlist holds %v, %v; want nothing", got, err)
	}
	if err := b.changeElements(false, clientChanges(c)...); err != nil {
		t.Fatal(err)
	}
	got, err := b.list(true)
	if err != nil || len(got) != 1 || got[0].IP != c.IP || got[0].MAC.String() != c.MAC.String() {
		t.Fatalf("after the batch the allowlist holds %v, %v; want %s %s", got, err, c.IP, c.MAC)
	}
}

// TestFingerprintIgnoresCounts: a refusing rule's counter moves with
// traffic; the chain check must not take that for drift, and must still
// see any other difference.
func TestFingerprintIgnoresCounts(t *testing.T) {
	rule := func(packets uint64, verdict expr.VerdictKind) []expr.Any {
		return []expr.Any{&expr.Counter{Packets: packets, Bytes: 100 * packets}, &expr.Verdict{Kind: verdict}}
	}
	fp := func(e []expr.Any) []byte {
		b, err := ruleFingerprint(unix.NFPROTO_INET, e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if !bytes.Equal(fp(rule(0, expr.VerdictDrop)), fp(rule(42, expr.VerdictDrop))) {
		t.Error("a rule whose counter moved reads as another rule")
	}
	if bytes.Equal(fp(rule(0, expr.VerdictDrop)), fp(rule(0, expr.VerdictAccept))) {
		t.Error("rules with different verdicts read as the same")
	}
}

// FuzzKernelFingerprint: whatever a rule or chain message holds, reading
// it returns an error or a result, never a panic.
func FuzzKernelFingerprint(f *testing.F) {
	elem := func(name string, data []byte) []byte {
		e := nldump.AppendAttr(nil, unix.NFTA_EXPR_NAME, append([]byte(name), 0))
		e = nldump.AppendAttr(e, unix.NFTA_EXPR_DATA, data)
		return nldump.AppendAttr(nil, unix.NFTA_LIST_ELEM, e)
	}
	exprs := append(elem("counter", []byte{1, 2, 3, 4, 5, 6, 7, 8}), elem("immediate", []byte{9, 9})...)
	msg := []byte{unix.NFPROTO_INET, 0, 0, 0}
	msg = nldump.AppendAttr(msg, unix.NFTA_RULE_TABLE, []byte("parkportal\x00"))
	msg = nldump.AppendAttr(msg, unix.NFTA_RULE_CHAIN, []byte("pp-forward\x00"))
	msg = nldump.AppendAttr(msg, unix.NFTA_RULE_EXPRESSIONS, exprs)
	f.Add(msg)
	f.Add(exprs[:7])
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, e, err := parseRuleOrChain(b, unix.NFTA_RULE_TABLE, unix.NFTA_RULE_CHAIN, unix.NFTA_RULE_EXPRESSIONS)
		if err == nil {
			kernelFingerprint(e)
		}
		kernelFingerprint(b)
	})
}
