//go:build linux

package devwatch

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestAuxdataLayout pins the offsets auxdata reads to the kernel's struct
// tpacket_auxdata as x/sys/unix declares it for this architecture.
func TestAuxdataLayout(t *testing.T) {
	var a unix.TpacketAuxdata
	if got := unsafe.Sizeof(a); got != sizeofAuxdata {
		t.Errorf("sizeof(tpacket_auxdata) = %d, want %d", got, sizeofAuxdata)
	}
	if got := unsafe.Offsetof(a.Vlan_tci); got != 16 {
		t.Errorf("offsetof(vlan_tci) = %d, want 16", got)
	}
	// A control message as the kernel writes it: header, then the struct.
	oob := make([]byte, unix.CmsgSpace(sizeofAuxdata))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_PACKET, unix.PACKET_AUXDATA
	h.SetLen(unix.CmsgLen(sizeofAuxdata))
	data := oob[unix.CmsgLen(0):]
	ne := binary.NativeEndian
	ne.PutUint32(data[0:], unix.TP_STATUS_VLAN_VALID)
	ne.PutUint32(data[4:], 9000)
	ne.PutUint32(data[8:], snapLen)
	ne.PutUint16(data[16:], 0x2007) // priority 1, VLAN 7
	got, ok := auxdata(oob)
	want := auxData{status: unix.TP_STATUS_VLAN_VALID, length: 9000, snaplen: snapLen, vlanTCI: 0x2007}
	if !ok || got != want {
		t.Errorf("auxdata = %+v, %v; want %+v", got, ok, want)
	}
	if _, ok := auxdata(oob[:4]); ok {
		t.Error("auxdata accepted a cut control message")
	}
}

// TestHtons checks that the protocol number handed to socket(2) and
// bind(2) is in network byte order in memory, on either endianness.
func TestHtons(t *testing.T) {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], ethPAll)
	if b != [2]byte{0x00, 0x03} {
		t.Errorf("ETH_P_ALL in memory = % x, want 00 03", b)
	}
}
