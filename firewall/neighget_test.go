package firewall

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseNeigh(t *testing.T) {
	msg := make([]byte, 12)
	binary.NativeEndian.PutUint16(msg[8:], unix.NUD_REACHABLE)
	attr := func(typ uint16, v []byte) []byte {
		b := make([]byte, 4, 4+len(v)+3)
		binary.NativeEndian.PutUint16(b[0:], uint16(4+len(v)))
		binary.NativeEndian.PutUint16(b[2:], typ)
		b = append(b, v...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	msg = append(msg, attr(unix.NDA_DST, []byte{198, 51, 100, 11})...)
	msg = append(msg, attr(unix.NDA_LLADDR, []byte{2, 0, 0x5e, 0, 1, 0x11})...)
	e, ok, err := parseNeigh(msg)
	if err != nil || !ok || e.state != unix.NUD_REACHABLE || e.mac.String() != "02:00:5e:00:01:11" {
		t.Fatalf("parseNeigh = %+v, %v, %v", e, ok, err)
	}
	for _, bad := range [][]byte{msg[:8], append(append([]byte{}, msg[:12]...), 0xff, 0, 1, 0)} {
		if _, _, err := parseNeigh(bad); err == nil {
			t.Errorf("parseNeigh(% x) accepted a malformed message", bad)
		}
	}
}
