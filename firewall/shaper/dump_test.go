package shaper

import (
	"encoding/binary"
	"testing"

	"github.com/parkwifi/parkportal/internal/nldump"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// classMsg builds an RTM_NEWTCLASS payload for an HTB class, with the
// 64-bit rate attributes when a rate does not fit 32 bits, as the
// kernel sends them.
func classMsg(kind string, handle, parent uint32, rate, ceil uint64) []byte {
	ne := binary.NativeEndian
	msg := make([]byte, nl.SizeofTcMsg)
	ne.PutUint32(msg[8:12], handle)
	ne.PutUint32(msg[12:16], parent)
	msg = nldump.AppendAttr(msg, unix.TCA_KIND, []byte(kind+"\x00"))
	parms := make([]byte, 44) // struct tc_htb_opt
	ne.PutUint32(parms[8:12], uint32(min(rate, 1<<32-1)))
	ne.PutUint32(parms[20:24], uint32(min(ceil, 1<<32-1)))
	opts := nldump.AppendAttr(nil, nl.TCA_HTB_PARMS, parms)
	if rate >= 1<<32 {
		opts = nldump.AppendAttr(opts, nl.TCA_HTB_RATE64, ne.AppendUint64(nil, rate))
	}
	if ceil >= 1<<32 {
		opts = nldump.AppendAttr(opts, nl.TCA_HTB_CEIL64, ne.AppendUint64(nil, ceil))
	}
	return nldump.AppendAttr(msg, unix.TCA_OPTIONS|unix.NLA_F_NESTED, opts)
}

// FuzzParseClass: an HTB class reads back with its handle, parent and
// rates (32- and 64-bit); another kind is not taken for HTB; and no
// message, however broken, makes the parser panic.
func FuzzParseClass(f *testing.F) {
	f.Add("htb", uint32(0x10005), uint32(0x10001), uint64(1_000_000), uint64(1_000_000), []byte{})
	f.Add("htb", uint32(0x10001), uint32(0xffffffff), uint64(5_000_000_000), uint64(5_000_000_000), []byte{8, 0, 2, 0, 1, 2, 3, 4})
	f.Add("tbf", uint32(0x50000), uint32(0x10005), uint64(2_000_000), uint64(2_000_000), []byte{1})
	f.Fuzz(func(t *testing.T, kind string, handle, parent uint32, rate, ceil uint64, noise []byte) {
		if len(kind) > 32 {
			return
		}
		h, c, isHTB, err := parseClass(classMsg(kind, handle, parent, rate, ceil))
		if err != nil {
			t.Fatal(err)
		}
		if isHTB != (kind == "htb") {
			t.Fatalf("kind %q read as HTB %v", kind, isHTB)
		}
		if isHTB && (h != handle || c != class{parent: parent, rate: rate, ceil: ceil}) {
			t.Fatalf("read %x %+v, built %x parent %x rate %d ceil %d", h, c, handle, parent, rate, ceil)
		}
		parseClass(noise)
		msg := classMsg(kind, handle, parent, rate, ceil)
		parseClass(append(msg[:len(msg)-min(len(msg), len(noise)):len(msg)-min(len(msg), len(noise))], noise...))
	})
}
