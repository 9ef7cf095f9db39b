package firewall

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/parkwifi/parkportal/internal/nldump"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// TestListAllowSetMatchesNetlink: our reader of the iptables backend's
// sets returns what netlink's IpsetList does, entry for entry, with
// counters past 32 bits set by the ipset tool; a missing set is an
// error to list and reported missing by ipsetExists (the backend then
// creates it).
func TestListAllowSetMatchesNetlink(t *testing.T) {
	f := kernelFirewall(t, "iptables")
	if _, err := f.Ensure(); err != nil {
		t.Fatal(err)
	}
	b := f.be.(*backendIPTables)
	for i := 0; i < 250; i++ {
		ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(2 + i)})
		mac := net.HardwareAddr{2, 0, 0x5e, 0, byte(i >> 8), byte(i)}
		if err := setAdd(b.allowSet, ip, mac); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "ipset", "add", b.allowSet, "198.51.100.7,02:00:5e:00:00:05", "packets", "5000000001", "bytes", "7000000000001", "-exist")
	run(t, "ipset", "add", b.allowSet, "198.51.100.9,02:00:5e:00:00:07", "packets", "12", "bytes", "3456", "-exist")

	got, err := listAllowSet(b.allowSet)
	if err != nil {
		t.Fatal(err)
	}
	res, err := netlink.IpsetList(b.allowSet)
	if err != nil {
		t.Fatal(err)
	}
	var want []setEntry
	for _, e := range res.Entries {
		ip, _ := netip.AddrFromSlice(e.IP)
		se := setEntry{ip: ip.Unmap(), mac: e.MAC.String()}
		if e.Packets != nil {
			se.packets = *e.Packets
		}
		if e.Bytes != nil {
			se.bytes = *e.Bytes
		}
		want = append(want, se)
	}
	str := func(es []setEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, fmt.Sprintf("%s %s %d %d", e.ip, e.mac, e.packets, e.bytes))
		}
		slices.Sort(out)
		return out
	}
	if g, w := str(got), str(want); !slices.Equal(g, w) || len(g) != 250 {
		t.Errorf("listAllowSet read %d entries, netlink %d; first differences:\n%s", len(g), len(w), firstDiff(g, w))
	}
	if !slices.Contains(str(got), "198.51.100.7 02:00:5e:00:00:05 5000000001 7000000000001") {
		t.Error("64-bit counters set by ipset did not read back")
	}
	if _, err := listAllowSet("pp-no-such-set"); err == nil {
		t.Error("listing a missing set succeeded")
	}
	if ok, err := ipsetExists(b.allowSet); !ok || err != nil {
		t.Errorf("ipsetExists(%s) = %v, %v; want true", b.allowSet, ok, err)
	}
	if ok, err := ipsetExists("pp-no-such-set"); ok || err != nil {
		t.Errorf("ipsetExists of a missing set = %v, %v; want false, no error", ok, err)
	}
}

func firstDiff(a, b []string) string {
	var out []string
	for i := 0; i < max(len(a), len(b)) && len(out) < 5; i++ {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			out = append(out, fmt.Sprintf("ours %q netlink %q", x, y))
		}
	}
	return strings.Join(out, "\n")
}

// ipsetListMsg builds an IPSET_CMD_LIST payload with one entry.
func ipsetListMsg(ip [4]byte, mac []byte, packets, bytes uint64) []byte {
	be := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	var entry []byte
	entry = nldump.AppendAttr(entry, nl.IPSET_ATTR_IP|unix.NLA_F_NESTED, nldump.AppendAttr(nil, nl.IPSET_ATTR_IPADDR_IPV4|unix.NLA_F_NET_BYTEORDER, ip[:]))
	entry = nldump.AppendAttr(entry, nl.IPSET_ATTR_ETHER, mac)
	entry = nldump.AppendAttr(entry, nl.IPSET_ATTR_BYTES|unix.NLA_F_NET_BYTEORDER, be(bytes))
	entry = nldump.AppendAttr(entry, nl.IPSET_ATTR_PACKETS|unix.NLA_F_NET_BYTEORDER, be(packets))
	msg := []byte{unix.AF_INET, 0, 0, 0}
	msg = nldump.AppendAttr(msg, nl.IPSET_ATTR_PROTOCOL, []byte{nl.IPSET_PROTOCOL})
	msg = nldump.AppendAttr(msg, nl.IPSET_ATTR_SETNAME, []byte("pp-allow\x00"))
	return nldump.AppendAttr(msg, nl.IPSET_ATTR_ADT|unix.NLA_F_NESTED, nldump.AppendAttr(nil, nl.IPSET_ATTR_DATA|unix.NLA_F_NESTED, entry))
}

// FuzzParseIPSetList: an entry of a well-formed message reads back with
// its address, MAC and counters; no message, however broken, makes the
// parser panic.
func FuzzParseIPSetList(f *testing.F) {
	f.Add([]byte{198, 51, 100, 7}, []byte{2, 0, 0x5e, 0, 0, 5}, uint64(5_000_000_001), uint64(7_000_000_000_001), []byte{})
	f.Add([]byte{198, 51, 100, 8}, []byte{2, 0, 0x5e, 0, 0, 6}, uint64(0), uint64(0), []byte{8, 0, 8, 0x80})
	f.Fuzz(func(t *testing.T, ip, mac []byte, packets, bytes uint64, noise []byte) {
		if len(ip) != 4 || len(mac) != 6 {
			return
		}
		msg := ipsetListMsg([4]byte(ip), mac, packets, bytes)
		var got []setEntry
		if err := parseIPSetList(msg, func(e setEntry) { got = append(got, e) }); err != nil || len(got) != 1 {
			t.Fatalf("parseIPSetList = %v after %d entries, want 1", err, len(got))
		}
		want := setEntry{ip: netip.AddrFrom4([4]byte(ip)), mac: net.HardwareAddr(mac).String(), packets: packets, bytes: bytes}
		if got[0] != want {
			t.Fatalf("read %+v, built %+v", got[0], want)
		}
		for _, bad := range [][]byte{noise, append(msg[:len(msg)/2:len(msg)/2], noise...)} {
			parseIPSetList(bad, func(setEntry) {})
		}
	})
}
